"""Benchmarks of the training core (``python -m bench`` / ``make bench``); not part of the tests."""
