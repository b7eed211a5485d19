"""``python -m pretraining estimate``: what a profile's full run will cost, from a short rehearsal.

Every chapter's full run is its work plan (``work(p)`` in the chapter module, built from
:mod:`pretraining.book.workplan`): the trainings it does, at the profile's real sizes. Each distinct
training shape is rehearsed once on the device the profile would use
(:func:`pretraining.core.rehearsal.rehearse`: the real trainers, a few minibatches, 2 members, on
random inputs of the real shapes, so no data set has to be present), and the measured time per member
and step is scaled to the plan. The predictions are upper bounds in epochs (every training at its
full budget; early stopping only shortens it) and leave out pure analysis (AIS, embeddings, figures).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.device import get_device, use_precision
from ..core.rehearsal import Job, Timing, predict, rehearse
from .specs import chapter_module, load_spec

__all__ = ["ChapterEstimate", "chapter_jobs", "estimate", "report"]


@dataclass
class ChapterEstimate:
    """One chapter's plan with its rehearsals: the device and precision ("cpu/fp32"), the jobs, per job
    the timing and the predicted seconds."""

    chapter: str
    device: str
    jobs: list[Job]
    timings: list[Timing]
    seconds: list[float]

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds)

    @property
    def flop(self) -> float:
        return sum(j.flop for j in self.jobs)

    @property
    def peak_bytes(self) -> int:
        """The largest job's rough peak memory (:attr:`pretraining.core.rehearsal.Job.peak_bytes`)."""
        return max((j.peak_bytes for j in self.jobs), default=0)

    def record(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "device": self.device, "predicted_seconds": self.total_seconds,
                "flop": self.flop, "peak_bytes": self.peak_bytes,
                "jobs": [{**asdict(j), "steps": j.steps, "flop": j.flop, "predicted_seconds": s,
                          "rehearsal": asdict(t)} for j, t, s in zip(self.jobs, self.timings, self.seconds)]}


def chapter_jobs(stem: str, values: Mapping[str, Any]) -> list[Job] | None:
    """The chapter's work plan for its checked ``values``; None when its module has no ``work``."""
    work = getattr(chapter_module(stem), "work", None)
    if work is None:
        return None
    jobs = work(values)
    if not isinstance(jobs, list) or not all(isinstance(j, Job) for j in jobs):
        raise TypeError(f"{stem}: work(p) must return a list of Job, got {jobs!r}")
    return jobs


def _shape(job: Job) -> tuple:
    """What a rehearsal depends on: jobs of one shape share it."""
    return job.kind, job.sizes, job.batch_size, job.eval_examples, job.k


def estimate(plans: Sequence[tuple[str, Mapping[str, Any]]], *, repeats: int = 2,
             progress=print) -> tuple[list[ChapterEstimate], list[str]]:
    """Rehearse every chapter of ``plans`` ([(stem, changed values)] as checked by the CLI).

    Returns the estimates and one note per chapter without a work plan.
    """
    rehearsed: dict[tuple, Timing] = {}
    out, notes = [], []
    for stem, changed in plans:
        spec = load_spec(stem)
        values = spec.check({**spec.defaults(), **changed})
        jobs = chapter_jobs(stem, values)
        if jobs is None:
            notes.append(f"note: {stem} has no work plan (work(p) in its module); not estimated")
            continue
        device = get_device(values.get("device", "auto"))
        precision = use_precision(values.get("precision", "auto"), device)
        timings = []
        for job in jobs:
            key = (str(device), precision, *_shape(job))
            if key not in rehearsed:
                progress(f"  {stem}: rehearsing {job.label} ({job.kind} {'-'.join(map(str, job.sizes))}, "
                         f"batch {job.batch_size}) on {device}")
                rehearsed[key] = rehearse(job, device, repeats=repeats)
            timings.append(rehearsed[key])
        out.append(ChapterEstimate(stem, f"{device.type}/{precision}", jobs, timings,
                                   [predict(j, t) for j, t in zip(jobs, timings)]))
    return out, notes


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _bytes(n: int) -> str:
    return f"{n / 2 ** 30:.2f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MiB"


def report(profile: str, estimates: Sequence[ChapterEstimate], *, jobs: bool = False) -> str:
    """The table the command prints: per chapter FLOPs, peak memory, rehearsed throughput, predicted time."""
    lines = [f"profile {profile}: predicted wall time from rehearsals on random inputs of the real shapes (no data "
             "set needed), every training at its full epoch budget; analysis such as AIS and embeddings not counted",
             f"{'chapter':40s} {'device':8s} {'FLOP':>9s} {'peak mem':>10s} {'GFLOP/s':>8s} {'predicted':>10s}"]
    for e in estimates:
        rate = e.flop / e.total_seconds / 1e9 if e.total_seconds else float("nan")
        lines.append(f"{e.chapter:40s} {e.device:8s} {e.flop:9.2e} {_bytes(e.peak_bytes):>10s} "
                     f"{rate:8.1f} {_duration(e.total_seconds):>10s}")
        if jobs:
            for j, s in zip(e.jobs, e.seconds):
                lines.append(f"    {j.label:52s} {j.kind:8s} x{j.members:<5d} {j.flop:9.2e} FLOP "
                             f"{_duration(s):>10s}")
    total = sum(e.total_seconds for e in estimates)
    lines.append(f"{'total':40s} {'':8s} {sum(e.flop for e in estimates):9.2e} {'':>10s} {'':>8s} "
                 f"{_duration(total):>10s}")
    return "\n".join(lines)


def write_json(path: Path, profile: str, estimates: Sequence[ChapterEstimate]) -> None:
    """The estimates as JSON (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"profile": profile, "predicted_seconds": sum(e.total_seconds for e in estimates),
                               "chapters": [e.record() for e in estimates]}, indent=2) + "\n")
    tmp.replace(path)
