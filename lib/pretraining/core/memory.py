"""How much memory a training run needs, and how much a device has (for checks before any work).

Kept apart from the training code on purpose: these estimates are read by the parameter rules only,
so editing them never changes what a cached result depends on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from .checks import require_int

__all__ = ["training_bytes", "memory_bytes"]


def training_bytes(members: int, n_examples: int, sizes: Sequence[int], batch_size: int, *,
                   greedy: bool = True) -> int:
    """A rough upper estimate of the peak memory (bytes, float32) of training ``members`` networks.

    sizes: [V, H_1, ..., C] of each network; n_examples: the training examples (on the device).
    Counts the parameters three times (weights, velocities or gradients, a starting copy), the
    activations and deltas of a minibatch, the data, and, for greedy pre-training (``greedy``), the
    codes of two consecutive layers for every member and example, (M, N, H) each, which dominate
    for wide stacks trained on many examples.
    """
    require_int("members", members, 1)
    require_int("n_examples", n_examples, 1)
    require_int("batch_size", batch_size, 1)
    params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    floats = 3 * members * params + 3 * members * batch_size * sum(sizes) + n_examples * sizes[0]
    if greedy and len(sizes) > 2:
        floats += 2 * members * n_examples * max(sizes[1:-1])
    return 4 * floats


def memory_bytes(device: torch.device) -> int:
    """Total memory of ``device`` in bytes: the GPU's for CUDA, the machine's RAM otherwise (CPU, MPS)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
