"""How much memory a training run needs, and how much a device has (for checks before any work).

Kept apart from the training code on purpose: these estimates are read by the parameter rules only,
so editing them never changes what a cached result depends on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from .checks import require_int

__all__ = ["training_bytes", "memory_bytes", "free_memory_bytes", "members_that_fit"]


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


def free_memory_bytes(device: torch.device, meminfo: str = "/proc/meminfo") -> int:
    """Memory of ``device`` free now, in bytes: CUDA's free memory; on the CPU (and MPS) the machine's
    available RAM (``MemAvailable`` of Linux's ``meminfo``), or its total where that cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return memory_bytes(device)


def members_that_fit(bytes_for: Callable[[int], int], budget: int, most: int) -> int:
    """The largest number of members m in [1, most] with ``bytes_for(m) <= budget`` (1 when none fits).

    bytes_for: peak bytes of a batched run of m members, non-decreasing in m (e.g. a
    :func:`training_bytes` partial); budget: bytes allowed (e.g. half of :func:`free_memory_bytes`).
    """
    require_int("most", most, 1)
    require_int("budget", budget, 0)
    low, high = 1, most
    while low < high:  # bytes_for(low) fits or low == 1; bytes_for(high + 1) does not fit or high == most
        mid = (low + high + 1) // 2
        if bytes_for(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low
