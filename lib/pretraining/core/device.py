"""Choose the torch device once and pass it down; the matmul precision; how the CPU threads wait."""

from __future__ import annotations

import os
import time

import torch

_ALLOWED = ("auto", "cpu", "cuda", "mps")


def get_device(name: str = "auto") -> torch.device:
    """Return the device to compute on.

    ``"auto"`` picks CUDA when available, else Apple MPS, else the CPU. Any other
    value must be one of ``cpu``, ``cuda``, ``mps`` and must be available.
    """
    if name not in _ALLOWED:
        raise ValueError(f"device={name!r} is not allowed; use one of {', '.join(_ALLOWED)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but CUDA is not available; use device='auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device='mps' was asked for but MPS is not available; use device='auto' or 'cpu'")
    return torch.device(name)


# ----------------------------------------------------------------------------------------- precision
PRECISIONS = ("auto", "fp32", "tf32")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The matmul precision to use: "fp32" (exact float32) or "tf32" (TensorFloat-32 tensor-core
    matmuls on CUDA: float32 range, a 10-bit mantissa, several times faster on recent GPUs).
    ``"auto"`` is tf32 on CUDA and fp32 elsewhere; tf32 on another device is an error."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not allowed; use one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision == "auto":
        return "tf32" if device.type == "cuda" else "fp32"
    if precision == "tf32" and device.type != "cuda":
        raise ValueError(f"precision='tf32' is not allowed on device {device.type!r}: TensorFloat-32 is a CUDA "
                         "feature; use precision 'auto' or 'fp32'")
    return precision


def use_precision(precision: str, device: torch.device) -> str:
    """Resolve ``precision`` (:func:`resolve_precision`) and set torch's float32 matmuls to it;
    returns "fp32" or "tf32"."""
    resolved = resolve_precision(precision, device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = resolved == "tf32"
    torch.set_float32_matmul_precision("high" if resolved == "tf32" else "highest")
    return resolved


# ----------------------------------------------------------------------------------------- CPU threads
def busy_cpus(seconds: float = 0.5, stat: str = "/proc/stat") -> float | None:
    """How many CPUs other work kept busy during the next ``seconds`` (from ``stat``, Linux's
    /proc/stat); None where that file cannot be read."""
    def sample() -> tuple[int, int] | None:
        try:
            with open(stat) as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    first = sample()
    if first is None:
        return None
    time.sleep(seconds)
    second = sample()
    if second is None or second[0] == first[0]:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return (total - idle) / total * (os.cpu_count() or 1)


def openmp_wait_policy(busy: float | None) -> str | None:
    """The OpenMP wait policy for a compute process given ``busy`` CPUs (:func:`busy_cpus`).

    None (OpenMP's default: a thread spins a while after each parallel region before it sleeps)
    on an idle machine: the small batched matmuls of fine-tuning run 2-2.5x faster than with
    sleeping threads (measured on 2 cores). "PASSIVE" when other work keeps half a CPU or more busy:
    spinning threads would take the CPU that the other work and our own threads need (measured:
    3-6x slower with two such processes on 2 cores), and when the load cannot be read.
    """
    return "PASSIVE" if busy is None or busy >= 0.5 else None
