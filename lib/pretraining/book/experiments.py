"""Cached training building blocks shared by several chapters.

Chapter 1 pre-trains the RBM and DAE stacks; chapter 2 fine-tunes *the same* stacks. Both declare
the stack parameters :data:`pretraining.book.specs.STACK_PARAMS` (same names, same defaults) and call
:func:`pretrained_stack` with the same arguments, so the second call is a cache hit instead of a
retraining. Chapters 3-5 pre-train their own stacks through the same function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.models import Stack
from ..core.selection import SelectionConfig
from ..core.train import DAEConfig, RBMConfig, pretrain_stack
from .work import Work

__all__ = ["stack_configs", "pretrained_stack", "stack_work", "selection_config"]

def stack_configs(params: Mapping[str, Any]) -> dict[str, RBMConfig | DAEConfig]:
    """``{"rbm": RBMConfig, "dae": DAEConfig}`` from a chapter's values of the stack parameters
    (``rbm_epochs``, ``rbm_lr``, ``dae_epochs``, ``dae_lr``, ``dae_noise``, ``pretrain_batch_size``)."""
    return {
        "rbm": RBMConfig(epochs=params["rbm_epochs"], lr=params["rbm_lr"],
                         batch_size=params["pretrain_batch_size"]),
        "dae": DAEConfig(epochs=params["dae_epochs"], lr=params["dae_lr"],
                         batch_size=params["pretrain_batch_size"], noise=params["dae_noise"]),
    }


def selection_config(params: Mapping[str, Any], prefix: str = "finetune") -> SelectionConfig:
    """The :class:`SelectionConfig` of a chapter's values of :func:`pretraining.book.specs.selection_params`."""
    return SelectionConfig(lr_grid=tuple(params[f"{prefix}_lr_grid"]), patience=params[f"{prefix}_patience"],
                           max_extensions=params[f"{prefix}_max_extensions"],
                           select_seeds=params[f"{prefix}_select_seeds"])


def stack_work(ch, kind: str, hidden_sizes: Sequence[int], config: RBMConfig | DAEConfig,
               seeds: Sequence[int], *, progress: bool = True) -> Work:
    """The cached artifact of a greedily pre-trained stack (a :class:`pretraining.book.runtime.Work`):
    its name, key, computation and version (see :func:`pretrained_stack`)."""
    key = {"kind": kind, "hidden_sizes": list(hidden_sizes),
           "config": dataclasses.asdict(config), "seeds": list(seeds)}

    def compute():
        stack, histories = pretrain_stack(kind, ch.data.train.x, hidden_sizes, config, seeds,
                                          progress=progress)
        return stack.state_dict(), {"histories": histories}

    # version 2: the per-epoch monitors in the histories use rows spread through the training set;
    # version 3: an RBM's weight gradient is written straight into its velocity (other fp32 rounding)
    return Work(f"{kind}_stack", key, compute, 3)


def pretrained_stack(ch, kind: str, hidden_sizes: Sequence[int], config: RBMConfig | DAEConfig,
                     seeds: Sequence[int], *, progress: bool = True) -> tuple[Stack, list[dict]]:
    """A greedily pre-trained stack on the chapter's training images, from the cache when possible.

    ch: the running chapter (:class:`pretraining.book.runtime.Chapter`: its data and cache).
    kind: ``"rbm"`` or ``"dae"``; hidden_sizes: e.g. ``[500, 500, 500]``; seeds: one per member.
    Returns the stack (members M = len(seeds), on ``ch.device``) and one training history per
    layer (lists of per-member values per epoch, see :func:`pretraining.core.train.pretrain_stack`).
    The key holds the kind, sizes, the whole config and the seeds, so any chapter asking for the
    same stack shares it.
    """
    work = stack_work(ch, kind, hidden_sizes, config, seeds, progress=progress)
    tensors, meta = ch.cached(work.name, work.params, work.compute, version=work.version)
    return Stack.from_state_dict(tensors, kind), meta["histories"]
