"""The pieces of a chapter's work plan: the :class:`pretraining.core.rehearsal.Job`\\ s of the trainings
every chapter shares (a greedy stack, a condition trained by the fair-fight protocol), from checked
parameter values, for ``python -m pretraining estimate``.

Each chapter module has ``work(p) -> list[Job]``: its full run as jobs, built from these helpers and
from its own parameters (``p``: the checked values, as ``ch.params``). The plans count every
training at its full epoch budget and its grid without extensions (early stopping only shortens a
run; an extension adds one rate); the longer run of a condition that did not converge is not
counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..core.data import SPLIT_SIZES
from ..core.rehearsal import Job

__all__ = ["split_sizes", "stack_jobs", "selection_job", "protocol_job"]


def split_sizes(p: Mapping) -> tuple[int, int, int]:
    """(train, validation, test) examples of the chapter's data set."""
    return SPLIT_SIZES[p["dataset"]]


def stack_jobs(label: str, kind: str, n_visible: int, hidden_sizes: Sequence[int], *, members: int,
               examples: int, epochs: int, batch_size: int, k: int = 1) -> list[Job]:
    """One job per layer of a greedily pre-trained stack of ``kind`` ("rbm" or "dae")."""
    sizes = [n_visible, *hidden_sizes]
    return [Job(f"{label}: {kind.upper()} layer {i + 1}", kind, (a, b), members=members, examples=examples,
                epochs=epochs, batch_size=batch_size, k=k) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]


def selection_job(label: str, sizes: Sequence[int], n_seeds: int, *, grid: Sequence[float], select_seeds: int,
                  epochs: int, batch_size: int, examples: int, eval_examples: int, chunk: int | None = None) -> Job:
    """One condition trained by :func:`pretraining.core.selection.select_and_train`: every rate of
    ``grid`` on ``select_seeds`` seeds, then the other seeds at the chosen rate, each with a
    validation pass over ``eval_examples`` after every epoch. chunk: the routine's ``member_chunk``
    (None: all members at once)."""
    select = min(select_seeds, n_seeds)
    return Job(label, "finetune", tuple(sizes), members=len(grid) * select + (n_seeds - select), examples=examples,
               epochs=epochs, batch_size=batch_size, eval_examples=eval_examples, chunk=chunk)


def protocol_job(label: str, sizes: Sequence[int], p: Mapping, n_seeds: int, *, prefix: str = "finetune",
                 **given) -> Job:
    """:func:`selection_job` with the chapter's own protocol: the parameters of
    :func:`pretraining.book.specs.selection_params` (``prefix``), its ``<prefix>_batch_size`` and
    its split's training and validation sizes; ``given`` replaces any of them (e.g. ``examples``
    for a label budget)."""
    train, valid, _ = split_sizes(p)
    settings = dict(grid=p[f"{prefix}_lr_grid"], select_seeds=p[f"{prefix}_select_seeds"],
                    epochs=p[f"{prefix}_epochs"], batch_size=p[f"{prefix}_batch_size"], examples=train,
                    eval_examples=valid)
    return selection_job(label, sizes, n_seeds, **{**settings, **given})
