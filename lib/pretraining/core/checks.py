"""The argument checks every layer shares: one line naming the argument, its value and what is allowed.

    require_int("n_seeds", 0, 1)            -> ValueError: n_seeds=0 is not allowed; it must be an int >= 1
    require_float("lr", -1.0, gt=0)         -> ValueError: lr=-1.0 is not allowed; it must be a finite number > 0
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["require_int", "require_float"]


def require_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (numpy ints accepted, bools refused)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum
    if not ok or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name}={value!r} is not allowed; it must be an int {allowed}")
    return int(value)


def require_float(name: str, value: object, *, gt: float | None = None, ge: float | None = None,
                  lt: float | None = None, le: float | None = None) -> float:
    """``value`` as a finite float within the given bounds (ints accepted, bools refused).

    ``gt``/``lt`` are exclusive bounds, ``ge``/``le`` inclusive ones.
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    ok = ok and (gt is None or value > gt) and (ge is None or value >= ge)
    ok = ok and (lt is None or value < lt) and (le is None or value <= le)
    if not ok:
        bounds = [f"{op} {b}" for op, b in ((">", gt), (">=", ge), ("<", lt), ("<=", le)) if b is not None]
        allowed = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
        raise ValueError(f"{name}={value!r} is not allowed; it must be {allowed}")
    return float(value)
