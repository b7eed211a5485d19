"""Experiment building blocks shared by several chapters, cached through the artifact store.

Chapter 1 pre-trains the RBM and DAE stacks; chapter 2 fine-tunes *the same* stacks. Both call
:func:`pretrained_stack` with the same arguments, so the second call is a cache hit instead of a
retraining. The shared pre-training settings are the ``common:`` parameters of the profiles
(``params/*.yaml``), declared by both chapters with :data:`PRETRAIN_SPEC`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .models import Stack
from .params import Float, Int, IntList
from .train import DAEConfig, RBMConfig, pretrain_stack

__all__ = ["PRETRAIN_SPEC", "pretrain_configs", "pretrained_stack"]

#: Specs of the shared pre-training parameters (chapters 1 and 2 declare these names).
PRETRAIN_SPEC = {
    "pretrain_hidden_sizes": IntList(min=1, max=20000, max_len=8),
    "pretrain_batch_size": Int(min=1),
    "rbm_epochs": Int(min=1),
    "rbm_lr": Float(gt=0),
    "dae_epochs": Int(min=1),
    "dae_lr": Float(gt=0),
    "dae_noise": Float(min=0, lt=1),
}


def pretrain_configs(params: Mapping[str, Any]) -> dict[str, RBMConfig | DAEConfig]:
    """The RBM and DAE training configurations named by the shared parameters.

    ``params``: a chapter's validated parameters holding the names of :data:`PRETRAIN_SPEC`.
    Returns ``{"rbm": RBMConfig, "dae": DAEConfig}``.
    """
    return {
        "rbm": RBMConfig(epochs=params["rbm_epochs"], lr=params["rbm_lr"],
                         batch_size=params["pretrain_batch_size"]),
        "dae": DAEConfig(epochs=params["dae_epochs"], lr=params["dae_lr"],
                         batch_size=params["pretrain_batch_size"], noise=params["dae_noise"]),
    }


def pretrained_stack(ch, kind: str, hidden_sizes: Sequence[int], config: RBMConfig | DAEConfig,
                     seeds: Sequence[int], *, progress: bool = True) -> tuple[Stack, list[dict]]:
    """A greedily pre-trained stack on the chapter's training images, from the cache when possible.

    ch: the running :class:`pretraining.book.Chapter` (its data, device and artifact store).
    kind: ``"rbm"`` or ``"dae"``; hidden_sizes: e.g. ``[500, 500, 500]``; seeds: one per member.
    Returns the stack (members M = len(seeds), on ``ch.device``) and one training history per
    layer (lists of per-member values per epoch, see :func:`pretraining.train.pretrain_stack`).
    The cache key holds the kind, sizes, the whole config and the seeds (the data checksum and
    the library source are added by the store), so any chapter asking for the same stack shares it.
    """
    key = {"kind": kind, "hidden_sizes": list(hidden_sizes),
           "config": dataclasses.asdict(config), "seeds": list(seeds)}

    def compute():
        stack, histories = pretrain_stack(kind, ch.data.train.x, hidden_sizes, config, seeds,
                                          progress=progress)
        return stack.state_dict(), {"histories": histories}

    tensors, meta = ch.cached(f"{kind}_stack", key, compute)
    return Stack.from_state_dict(tensors, kind), meta["histories"]
