"""Rehearsals: a few timed steps of the real trainers at a full run's shapes, to predict its wall time.

A chapter describes its full run as :class:`Job`\\ s (what it trains, at which sizes, how many
networks, how many epochs); :func:`rehearse` runs each job's trainer (the same functions the run
uses, on the same device) for a few minibatches with 2 members and measures the time per member
and step and the fixed cost of an epoch (the trainers' per-epoch monitoring, the validation pass of
early stopping). :func:`predict` scales them to the job: members x steps x time per member-step,
plus epochs x the per-epoch cost. Time per member is taken as constant, which is an upper bound where
more members batch better (a GPU) and close to right on a CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from .checks import require_int
from .data import Subset
from .distort import DistortedStream
from .memory import training_bytes
from .models import RBM, Classifier, DenoisingAutoencoder
from .train import (DAEConfig, FinetuneConfig, RBMConfig, evaluate, finetune, finetune_stream, train_dae,
                    train_rbm)

__all__ = ["Job", "Timing", "rehearse", "predict", "total", "KINDS"]

KINDS = ("rbm", "dae", "finetune", "stream", "distort")
REHEARSAL_MEMBERS = 2
REHEARSAL_STEPS = (8, 24)  # two rehearsals of one epoch each: their difference gives the time per step


@dataclass(frozen=True)
class Job:
    """One training computation of a full run.

    kind: "rbm" (CD-k of one layer, sizes [V, H]), "dae" (one denoising auto-encoder layer, [V, H]),
    "finetune" (minibatch SGD of classifiers [V, H_1, ..., C], with a validation pass of
    ``eval_examples`` after every epoch for early stopping), "stream" (online SGD, each of
    ``examples`` seen once: ``epochs`` is 1), "distort" (elastic distortions of ``examples`` digits,
    sizes [V]; members 1). members: networks trained (over the whole run, all rates and seeds);
    examples: training examples per epoch; epochs: the budget (early stopping can only shorten it,
    so the prediction is an upper bound); k: CD steps; chunk: at most this many members train at
    once (memory), None for all. label: what it is, for the table.
    """

    label: str
    kind: str
    sizes: tuple[int, ...]
    members: int
    examples: int
    epochs: int = 1
    batch_size: int = 1
    eval_examples: int = 0
    k: int = 1
    chunk: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Job.kind={self.kind!r} is not allowed; use one of {', '.join(KINDS)}")
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        want = {"rbm": 2, "dae": 2, "distort": 1}.get(self.kind)
        if (want is not None and len(self.sizes) != want) or (want is None and len(self.sizes) < 2):
            raise ValueError(f"Job {self.label!r}: sizes={list(self.sizes)} do not fit kind {self.kind!r}")
        for name in ("members", "examples", "epochs", "batch_size", "k"):
            require_int(f"Job.{name}", getattr(self, name), 1)
        require_int("Job.eval_examples", self.eval_examples, 0)
        if self.chunk is not None:
            require_int("Job.chunk", self.chunk, 1)

    @property
    def steps(self) -> int:
        """Minibatches per member over the whole job."""
        if self.kind == "distort":
            return math.ceil(self.examples / self.batch_size)
        return self.epochs * (self.examples // self.batch_size)

    @property
    def flop_per_example(self) -> float:
        """Floating-point operations of one training example of one member (distortions: 0)."""
        if self.kind == "distort":
            return 0.0
        if self.kind in ("rbm", "dae"):
            v, h = self.sizes
            # CD-k: p(h|v) once, then k x (p(v|h) + p(h|v)), and two outer products; DAE: encode and
            # decode, and twice that backwards
            return (2 + 4 * self.k + 4) * v * h if self.kind == "rbm" else 12 * v * h
        return 6 * sum(a * b for a, b in zip(self.sizes, self.sizes[1:]))

    @property
    def flop(self) -> float:
        """All training FLOPs of the job (the validation passes not counted)."""
        return self.flop_per_example * self.batch_size * self.steps * self.members

    @property
    def peak_bytes(self) -> int:
        """Rough peak memory with ``chunk`` members at once (:func:`training_bytes`)."""
        if self.kind == "distort":
            return 4 * 3 * self.batch_size * self.sizes[0]
        m = self.members if self.chunk is None else min(self.chunk, self.members)
        n = self.batch_size if self.kind == "stream" else self.examples
        return training_bytes(m, n, list(self.sizes), self.batch_size, greedy=False)


@dataclass(frozen=True)
class Timing:
    """A job's rehearsal: seconds per member and step, seconds per epoch not spent in steps (per
    member), and the measured peak memory of the rehearsal (CUDA; None elsewhere)."""

    step_seconds: float
    epoch_seconds: float
    peak_bytes: int | None


def _data(job: Job, n: int, device, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, job.sizes[0], generator=generator).to(device)


def _trainer(job: Job, steps: int, members: int, device, generator: torch.Generator) -> Callable[[], object]:
    """The job's real trainer, ready to run one epoch of ``steps`` minibatches with ``members`` members."""
    seeds, B = list(range(members)), job.batch_size
    x = _data(job, steps * B, device, generator)
    if job.kind == "rbm":
        return partial(train_rbm, RBM.init(*job.sizes, seeds, device=device), x,
                       RBMConfig(epochs=1, lr=0.01, batch_size=B, k=job.k), seeds, progress=False)
    if job.kind == "dae":
        return partial(train_dae, DenoisingAutoencoder.init(*job.sizes, seeds, device=device), x,
                       DAEConfig(epochs=1, lr=0.01, batch_size=B), seeds, progress=False)
    if job.kind == "distort":
        stream = DistortedStream(Subset(x, torch.zeros(x.shape[0], dtype=torch.int64, device=device)), 0)
        return lambda: [stream.batch(s, B) for s in range(0, x.shape[0], B)]
    clf = Classifier.random(list(job.sizes), seeds, device=device)
    y = torch.randint(0, job.sizes[-1], (x.shape[0],), generator=generator).to(device)
    config = FinetuneConfig(epochs=1, lr=0.01, batch_size=B)
    if job.kind == "stream":
        return partial(finetune_stream, clf, lambda step: (x[step * B:(step + 1) * B], y[step * B:(step + 1) * B]),
                       steps, config, progress=False)
    valid = _data(job, job.eval_examples, device, generator)
    valid_y = torch.zeros(job.eval_examples, dtype=torch.int64, device=device)

    def validate(*_) -> None:  # early stopping's validation pass after every epoch
        if job.eval_examples:
            evaluate(clf, valid, valid_y)

    return partial(finetune, clf, x, y, config, seeds, on_epoch=validate, progress=False)


def _once(job: Job, steps: int, members: int, device, generator: torch.Generator) -> float:
    """Seconds of one epoch of ``steps`` minibatches with ``members`` members."""
    run = _trainer(job, steps, members, device, generator)
    _sync(device)
    t0 = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - t0


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def rehearse(job: Job, device, *, repeats: int = 2, members: int = REHEARSAL_MEMBERS, seed: int = 0) -> Timing:
    """Time ``job``'s trainer at its shapes with ``members`` members: one epoch of each of
    REHEARSAL_STEPS minibatches (best of ``repeats``, after a warm-up); their difference is the time per
    step, the rest of the shorter one the time per epoch outside the steps. The validation pass of a
    "finetune" job is timed at its real size; the per-epoch monitors of RBMs and auto-encoders (on at
    most :data:`pretraining.core.train.EVAL_EXAMPLES` examples) only on the rehearsal's few examples,
    a small underestimate."""
    if not isinstance(job, Job):
        raise TypeError(f"job={job!r} must be a Job")
    require_int("repeats", repeats, 1)
    members = 1 if job.kind == "distort" else require_int("members", members, 1)
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    short, long = REHEARSAL_STEPS
    _once(job, short, members, device, generator)  # warm-up (allocations, kernels)
    t_short = min(_once(job, short, members, device, generator) for _ in range(repeats))
    t_long = min(_once(job, long, members, device, generator) for _ in range(repeats))
    per_step = max(t_long - t_short, 0.0) / (long - short)
    per_epoch = max(t_short - short * per_step, 0.0)
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return Timing(step_seconds=per_step / members, epoch_seconds=per_epoch / members, peak_bytes=peak)


def predict(job: Job, timing: Timing) -> float:
    """Predicted seconds of the whole job from its rehearsal."""
    members = 1 if job.kind == "distort" else job.members
    epochs = 0 if job.kind == "distort" else job.epochs
    return members * (job.steps * timing.step_seconds + epochs * timing.epoch_seconds)


def total(jobs: Sequence[Job], timings: Sequence[Timing]) -> float:
    """Predicted seconds of all jobs."""
    return sum(predict(j, t) for j, t in zip(jobs, timings))
