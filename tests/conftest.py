"""Fixtures shared by several test files."""

from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture
def work_plan():
    """work_plan(chapter_module, profile) -> (p, jobs as (kind, sizes, members, examples, epochs, batch_size,
    eval_examples) tuples, the split's (train, valid, test) sizes), after the checks every chapter's
    ``work(p)`` must pass: a non-empty list of Jobs with distinct labels, each with FLOPs (distortions,
    which are timed only, excepted)."""
    from pretraining.book.profiles import profile_values
    from pretraining.core.data import SPLIT_SIZES
    from pretraining.core.rehearsal import Job

    def plan(module, profile: str):
        p = profile_values(ROOT, module.SPEC, profile)
        jobs = module.work(p)
        assert jobs and all(isinstance(j, Job) for j in jobs)
        assert all(j.flop > 0 for j in jobs if j.kind != "distort")
        assert len({j.label for j in jobs}) == len(jobs)
        got = [(j.kind, j.sizes, j.members, j.examples, j.epochs, j.batch_size, j.eval_examples) for j in jobs]
        return p, got, SPLIT_SIZES[p["dataset"]]
    return plan
