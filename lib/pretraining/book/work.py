"""One artifact to look up or compute: what :meth:`pretraining.book.runtime.Chapter.cached_many` takes.

Its own small module because the code hash of an artifact (:mod:`.codehash`) includes every library
module its computation's definition names: a chapter that builds a :class:`Work` names this module
only, not the chapter runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

__all__ = ["Work"]


class Work(NamedTuple):
    """One artifact, as :meth:`~pretraining.book.runtime.Chapter.cached` takes it; ``needs``: artifacts its
    computation loads (e.g. a pre-trained stack), computed first when it is missing, so that parallel
    computations do not each compute them."""

    name: str
    params: Mapping[str, Any]
    compute: Callable[[], tuple[dict[str, torch.Tensor], dict]]
    version: int
    needs: tuple[Work, ...] = ()
