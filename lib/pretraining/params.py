"""Parameter specs and validation for the chapter notebooks.

A chapter declares its parameters in a papermill ``parameters`` cell and, in the next cell,
validates all of them with ONE call (usually through :func:`pretraining.book.start`)::

    check_parameters(globals(), {"n_seeds": Int(min=1), "depths": IntList(min=1, max=8)})

Every bad value raises :class:`ParameterError` with a one-line message naming the parameter,
the bad value and what is allowed, before any training starts. Names in the namespace that
belong to no spec (a typo such as ``papermill -p n_seed 3``) are reported the same way.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ParameterError", "Spec", "Int", "Float", "Bool", "Str", "Choice", "IntList", "FloatList",
    "COMMON", "PROFILES", "check_parameters", "user_names",
]

PROFILES = ("smoke", "quick", "paper")


class ParameterError(ValueError):
    """A parameter has a bad value, is unknown, or is missing. The message is one line."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of the full traceback: one line in the notebook.
        return [f"ParameterError: {self}"]


class Spec:
    """What values one parameter may take. Subclasses implement :meth:`allowed` and :meth:`ok`."""

    def allowed(self) -> str:
        raise NotImplementedError

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`ParameterError` unless ``value`` is allowed for parameter ``name``."""
        if not self.ok(value):
            raise ParameterError(f"{name}={value!r} is not allowed: {self.allowed()}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.allowed()})"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _bounds(min: float | None, max: float | None, gt: float | None = None, lt: float | None = None) -> str:
    parts = []
    if min is not None:
        parts.append(f">= {min}")
    if gt is not None:
        parts.append(f"> {gt}")
    if max is not None:
        parts.append(f"<= {max}")
    if lt is not None:
        parts.append(f"< {lt}")
    return " and ".join(parts)


def _in_bounds(v: float, min, max, gt=None, lt=None) -> bool:
    return ((min is None or v >= min) and (max is None or v <= max)
            and (gt is None or v > gt) and (lt is None or v < lt))


class Int(Spec):
    """An integer (``bool`` is refused) with optional inclusive bounds."""

    def __init__(self, *, min: int | None = None, max: int | None = None):
        self.min, self.max = min, max

    def allowed(self) -> str:
        b = _bounds(self.min, self.max)
        return "an integer" + (f" {b}" if b else "")

    def ok(self, value: Any) -> bool:
        return _is_int(value) and _in_bounds(value, self.min, self.max)


class Float(Spec):
    """A finite real number (an int is accepted, ``bool`` is not) with optional bounds.

    ``min``/``max`` are inclusive, ``gt``/``lt`` exclusive.
    """

    def __init__(self, *, min: float | None = None, max: float | None = None,
                 gt: float | None = None, lt: float | None = None):
        self.min, self.max, self.gt, self.lt = min, max, gt, lt

    def allowed(self) -> str:
        b = _bounds(self.min, self.max, self.gt, self.lt)
        return "a finite number" + (f" {b}" if b else "")

    def ok(self, value: Any) -> bool:
        return _is_real(value) and _in_bounds(value, self.min, self.max, self.gt, self.lt)


class Bool(Spec):
    """``True`` or ``False`` (not 0/1, not strings)."""

    def allowed(self) -> str:
        return "True or False"

    def ok(self, value: Any) -> bool:
        return isinstance(value, bool)


class Str(Spec):
    """Any string (optionally non-empty)."""

    def __init__(self, *, nonempty: bool = True):
        self.nonempty = nonempty

    def allowed(self) -> str:
        return "a non-empty string" if self.nonempty else "a string"

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and (bool(value) or not self.nonempty)


class Choice(Spec):
    """One of a fixed set of values, e.g. ``Choice("rbm", "dae")``."""

    def __init__(self, *values: Any):
        if not values:
            raise ValueError("Choice() needs at least one allowed value")
        self.values = values

    def allowed(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def ok(self, value: Any) -> bool:
        # type check so that True does not pass as 1 and 1 not as 1.0
        return any(type(value) is type(v) and value == v for v in self.values)


class _List(Spec):
    item: Spec
    kind = "list"

    def __init__(self, *, min_len: int = 1, max_len: int | None = None):
        self.min_len, self.max_len = min_len, max_len

    def allowed(self) -> str:
        n = f"at least {self.min_len}" if self.max_len is None else f"{self.min_len} to {self.max_len}"
        return f"a list of {n} items, each {self.item.allowed()}"

    def ok(self, value: Any) -> bool:
        return (isinstance(value, (list, tuple))
                and _in_bounds(len(value), self.min_len, self.max_len)
                and all(self.item.ok(v) for v in value))


class IntList(_List):
    """A list of integers, each within ``[min, max]``, of length ``min_len..max_len``."""

    def __init__(self, *, min: int | None = None, max: int | None = None,
                 min_len: int = 1, max_len: int | None = None):
        super().__init__(min_len=min_len, max_len=max_len)
        self.item = Int(min=min, max=max)


class FloatList(_List):
    """A list of finite numbers within the given bounds, of length ``min_len..max_len``."""

    def __init__(self, *, min: float | None = None, max: float | None = None,
                 gt: float | None = None, lt: float | None = None,
                 min_len: int = 1, max_len: int | None = None):
        super().__init__(min_len=min_len, max_len=max_len)
        self.item = Float(min=min, max=max, gt=gt, lt=lt)


#: Specs shared by every chapter. ``profile`` is required (the CLI always injects it); the
#: others are checked when the chapter declares them. A chapter spec may override one.
COMMON: dict[str, Spec] = {
    "profile": Choice(*PROFILES),
    "device": Choice("auto", "cpu", "cuda", "mps"),
    "dataset": Choice("mnist-10k", "mnist"),
    "seed": Int(min=0),
}
REQUIRED_COMMON = ("profile",)

_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


def user_names(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The user-level variables of a notebook namespace, in definition order.

    Skipped: names starting with ``_``, IPython's ``In``/``Out``/``exit``/``quit``/``get_ipython``,
    modules, and callables (functions and classes, e.g. the imported spec classes).
    """
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _IPYTHON_NAMES
            and not isinstance(v, types.ModuleType) and not callable(v)}


def check_parameters(namespace: Mapping[str, Any], spec: Mapping[str, Spec],
                     *, common: Mapping[str, Spec] = COMMON) -> dict[str, Any]:
    """Validate every parameter of a notebook at once and return them as a dict.

    ``namespace`` is the notebook's ``globals()`` right after the parameters cell;
    ``spec`` maps each chapter-specific parameter to its :class:`Spec`. The names of ``spec``
    and :data:`REQUIRED_COMMON` must be defined; any other user-level name must be in
    ``common`` or ``spec``. Raises :class:`ParameterError` (one line) on the first problem.
    """
    for k, s in spec.items():
        if not isinstance(s, Spec):
            raise TypeError(f"spec[{k!r}] is {s!r}; expected a Spec such as Int(min=1)")
    full = {**common, **spec}
    values = user_names(namespace)
    for name, value in values.items():
        if name not in full:
            raise ParameterError(
                f"unknown parameter {name}={value!r}; the parameters are: {', '.join(sorted(full))}")
    for name in (*REQUIRED_COMMON, *spec):
        if name not in values:
            raise ParameterError(f"parameter {name!r} is not defined; declare it in the parameters cell")
    for name, value in values.items():
        full[name].check(name, value)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
