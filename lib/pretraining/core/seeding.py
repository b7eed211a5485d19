"""Seeds -> networks -> per-member random number generators.

**The one seed rule.** A chapter's ``seed`` parameter and a member index ``m`` give that network's
seed, in every chapter: ``network seed = seed * SEED_STRIDE + m`` (:func:`member_seeds`), so the
networks of ``seed = 0`` are 0, 1, 2, ... and those of ``seed = 1`` are 10000, 10001, ...

Every model carries a leading *members* dimension M; member ``m`` is defined by one integer
seed ``seeds[m]``. Each member owns one :class:`torch.Generator` per *purpose* (initialisation,
minibatch order, noise, evaluation, sampling) and per *layer*, so that member ``m`` of a batched run
draws exactly the random numbers it would draw when trained alone (M = 1).

Derivation (documented so results can be reproduced outside this library)::

    state = numpy.random.SeedSequence([seed, PURPOSES[purpose], layer]).generate_state(2, uint32)
    generator seed = (state[0] << 31) ^ state[1]          # a 63-bit non-negative int
                                                          # (:func:`generator`)

Generators live on the model's device; CPU and CUDA generators give different streams, so the
same seeds reproduce bit-identical results on the same device (and, on CPU, the same thread count).

``layer`` is 1-based for the layers of a greedy stack; 0 is used for whole-network work such as
fine-tuning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .checks import require_int

PURPOSES: dict[str, int] = {"init": 0, "order": 1, "noise": 2, "eval": 3, "sample": 4}

SEED_STRIDE = 10_000
"""Networks per chapter seed: member m of chapter seed s is network s * SEED_STRIDE + m."""


def member_seeds(seed: int, n: int, first: int = 0) -> list[int]:
    """The network seeds of members ``first .. first + n - 1`` of chapter seed ``seed``.

    ``seed * SEED_STRIDE + m`` for m in that range; ``first + n`` must not exceed SEED_STRIDE.
    """
    require_int("seed", seed, 0)
    require_int("first", first, 0)
    require_int("n", n, 1, SEED_STRIDE - first)
    return [seed * SEED_STRIDE + m for m in range(first, first + n)]


def validate_seeds(seeds: Sequence[int], n_members: int | None = None, *, name: str = "seeds") -> list[int]:
    """Check ``seeds`` is a non-empty sequence of ints >= 0 (of length ``n_members`` if given)."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise TypeError(f"{name}={seeds!r} must be a sequence of ints >= 0, one per member")
    if len(seeds) == 0:
        raise ValueError(f"{name}=[] is empty; give one int seed >= 0 per member")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"{name} contains {s!r}; every seed must be an int >= 0")
        out.append(int(s))
    if n_members is not None and len(out) != n_members:
        raise ValueError(f"{name} has length {len(out)} but the model has {n_members} members; give one seed per member")
    return out


def member_generators(
    seeds: Sequence[int], purpose: str, layer: int = 0, device: torch.device | str | None = None
) -> list[torch.Generator]:
    """One freshly seeded generator per member, on ``device`` (default CPU): member m's is
    ``generator(seeds[m], PURPOSES[purpose], layer)``."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose={purpose!r} is not allowed; use one of {', '.join(PURPOSES)}")
    require_int("layer", layer, 0)
    return [generator(s, PURPOSES[purpose], layer, device=device) for s in validate_seeds(seeds)]


def generator(*entropy: int, device: torch.device | str | None = None) -> torch.Generator:
    """A torch generator seeded from ``SeedSequence(entropy)`` (ints >= 0), on ``device`` (default CPU).

    The one way to seed a generator in the library (the per-member streams below use it too),
    e.g. ``generator(seed, 0x5EB5E7)`` for a labelled subset; reproducible anywhere numpy is.
    """
    if not entropy:
        raise ValueError("generator() needs at least one int >= 0 to seed from")
    for e in entropy:
        require_int("entropy", e, 0)
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2, dtype=np.uint32)
    g = torch.Generator(device=torch.device(device) if device is not None else torch.device("cpu"))
    return g.manual_seed((int(state[0]) << 31) ^ int(state[1]))


def uniform(shape: Sequence[int], generators: Sequence[torch.Generator], *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Uniform [0, 1) draws of shape (M, *shape), member ``m`` from ``generators[m]``."""
    out = torch.empty((len(generators), *shape), device=device, dtype=dtype)
    for m, g in enumerate(generators):
        torch.rand(tuple(shape), generator=g, device=device, dtype=dtype, out=out[m])
    return out


def bernoulli(p: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Binary samples with probabilities ``p`` (M, ...), member ``m`` drawn from ``generators[m]``."""
    if p.shape[0] != len(generators):
        raise ValueError(f"p has {p.shape[0]} members but {len(generators)} generators were given")
    return uniform(p.shape[1:], generators, device=p.device, dtype=p.dtype).lt_(p)  # 1.0 where u < p, in place


def permutations(n: int, generators: Sequence[torch.Generator], *, device=None) -> torch.Tensor:
    """One random permutation of range(n) per member: (M, n) int64."""
    return torch.stack([torch.randperm(n, generator=g, device=device) for g in generators])
