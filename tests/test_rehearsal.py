"""Rehearsals (core.rehearsal) and the estimate command (book.estimate): jobs, FLOPs, predictions."""

import math

import pytest

from pretraining.core import rehearsal
from pretraining.core.rehearsal import Job, Timing, predict, rehearse


def test_a_job_counts_its_steps_and_flops_by_hand():
    ft = Job("net", "finetune", (6, 4, 3), members=5, examples=103, epochs=2, batch_size=10, eval_examples=7)
    assert ft.steps == 2 * 10  # whole minibatches only, as the trainers do
    assert ft.flop_per_example == 6 * (6 * 4 + 4 * 3)
    assert ft.flop == 6 * 36 * 10 * 20 * 5
    rbm = Job("rbm", "rbm", (6, 4), members=2, examples=20, epochs=3, batch_size=5, k=2)
    assert rbm.flop_per_example == (2 + 4 * 2 + 4) * 24  # p(h|v), 2 Gibbs steps, two outer products
    assert Job("dae", "dae", (6, 4), members=1, examples=5, batch_size=5).flop_per_example == 12 * 24
    stream = Job("s", "stream", (6, 4, 3), members=3, examples=95, batch_size=10)
    assert stream.steps == 9 and stream.epochs == 1
    distort = Job("d", "distort", (784,), members=1, examples=95, batch_size=10)
    assert distort.steps == 10 and distort.flop == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="conv"), "Job.kind='conv' is not allowed"),
    (dict(kind="rbm", sizes=(4, 3, 2)), "sizes=[4, 3, 2] do not fit kind 'rbm'"),
    (dict(members=0), "Job.members=0 is not allowed"),
    (dict(chunk=0), "Job.chunk=0 is not allowed"),
])
def test_a_bad_job_is_one_line_naming_the_field(kwargs, message):
    args = {**dict(label="x", kind="finetune", sizes=(4, 3), members=1, examples=10), **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Job(**args)


def test_a_prediction_is_members_times_steps_times_the_time_per_member_step_plus_the_epochs():
    job = Job("net", "finetune", (6, 4, 3), members=5, examples=100, epochs=3, batch_size=10)
    t = Timing(step_seconds=0.01, epoch_seconds=0.5, peak_bytes=None)
    assert predict(job, t) == pytest.approx(5 * (30 * 0.01 + 3 * 0.5))
    distort = Job("d", "distort", (784,), members=1, examples=100, batch_size=10)
    assert predict(distort, t) == pytest.approx(10 * 0.01)


@pytest.mark.parametrize("kind, sizes", [("rbm", (20, 8)), ("dae", (20, 8)), ("finetune", (20, 8, 3)),
                                         ("stream", (20, 8, 3)), ("distort", (784,))])
def test_every_kind_is_rehearsed_with_the_real_trainer(kind, sizes, monkeypatch):
    monkeypatch.setattr(rehearsal, "REHEARSAL_STEPS", (2, 4))
    job = Job("x", kind, sizes, members=3, examples=50, epochs=2, batch_size=5,
              eval_examples=30 if kind == "finetune" else 0)
    t = rehearse(job, "cpu", repeats=1)
    assert t.step_seconds >= 0 and t.epoch_seconds >= 0 and t.peak_bytes is None
    assert math.isfinite(predict(job, t))


def test_the_memory_of_a_job_counts_its_chunk_of_members():
    whole = Job("net", "finetune", (784, 500, 10), members=100, examples=1000, batch_size=10)
    chunked = Job("net", "finetune", (784, 500, 10), members=100, examples=1000, batch_size=10, chunk=10)
    assert 8 * chunked.peak_bytes < whole.peak_bytes


def test_the_paper_profile_is_rehearsed_chapter_by_chapter_on_a_tiny_slice(monkeypatch):
    """Every chapter's work plan at the paper profile, each shape rehearsed (1 and 2 minibatches):
    the paper configuration runs through the real trainers at its real sizes in make test."""
    from pathlib import Path

    from pretraining.book.cli import plan_chapters
    from pretraining.book.estimate import estimate, report

    monkeypatch.setattr(rehearsal, "REHEARSAL_STEPS", (1, 2))
    root = Path(__file__).parents[1]
    plans, _, problems = plan_chapters(root, "paper", [], [["device", "cpu"]])
    assert not problems
    estimates, missing = estimate([(doc.stem, changed) for doc, changed in plans], repeats=1,
                                  progress=lambda _: None)
    assert not missing and [e.chapter for e in estimates] == [doc.stem for doc, _ in plans]
    for e in estimates:
        assert e.device == "cpu/fp32" and e.flop > 0 and e.total_seconds > 0 and e.peak_bytes > 0
    depth = next(e for e in estimates if e.chapter == "03_depth_study")
    assert max(len(j.sizes) for j in depth.jobs) == 2 + 5  # 784, five hidden layers of 800, 10
    assert "03_depth_study" in report("paper", estimates)
