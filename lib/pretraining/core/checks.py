"""The argument checks every layer shares: one line naming the argument, its value and what is allowed.

    require_int("n_seeds", 0, 1)            -> ValueError: n_seeds=0 is not allowed; it must be an int >= 1
    require_float("lr", -1.0, gt=0)         -> ValueError: lr=-1.0 is not allowed; it must be a finite number > 0
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["require_int", "require_float", "rate_grid_problem"]


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


def rate_grid_problem(grid: object) -> str | None:
    """What is wrong with a learning-rate grid of the fair-fight protocol, or None: it must hold at
    least 5 increasing, log-spaced rates (neighbour ratios equal within 2 %) spanning at least 30x."""
    if isinstance(grid, (str, bytes)) or not isinstance(grid, (list, tuple)):
        return "at least 5 increasing, log-spaced rates"
    if not all(isinstance(r, (int, float, np.integer, np.floating)) and not isinstance(r, bool)
               and math.isfinite(r) and r > 0 for r in grid):
        return "rates that are finite numbers > 0"
    if len(grid) < 5:
        return "at least 5 rates"
    if any(b <= a for a, b in zip(grid, grid[1:])):
        return "increasing rates"
    if grid[-1] / grid[0] < 30 * (1 - 1e-9):
        return "rates spanning at least 30x (largest / smallest)"
    ratios = [b / a for a, b in zip(grid, grid[1:])]
    if max(ratios) / min(ratios) > 1.02:
        return "log-spaced rates (a constant ratio between neighbours), e.g. [0.1, 0.2371, 0.5623, 1.334, 3.162]"
    return None
