"""Choose the torch device once and pass it down."""

from __future__ import annotations

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
