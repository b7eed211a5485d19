"""``python -m pretraining``: see :mod:`pretraining.book.cli`."""

import sys

from .book.cli import main

sys.exit(main())
