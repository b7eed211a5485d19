"""Words for the chapters' prose, tables and figure titles."""

from __future__ import annotations

from ..core.checks import require_int

__all__ = ["plural"]


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """The count and the noun in the number it takes: "1 seed", "3 seeds", "10,000 digits".

    plural_form: for a noun whose plural is not noun + "s" ("1 neighbour" is regular; "1 matrix",
    plural_form="matrices")."""
    n = require_int("n", n, 0)
    if not isinstance(noun, str) or not noun:
        raise TypeError(f"noun must be a non-empty string, got {noun!r}")
    return f"{n:,} {noun if n == 1 else (plural_form or noun + 's')}"
