"""Parameter specs: what each chapter's parameters may be, their defaults and help, checked in one place.

A chapter module declares its parameters once, in a :class:`ChapterSpec`::

    SPEC = ChapterSpec("03_depth_study", claim=..., paper=..., params={
        "n_seeds": Param(10, Int(min=2), "networks per setting (the paper: 400)"),
        "depths": Param([1, 2, 3], IntList(min=1, max=10), "numbers of hidden layers, increasing"),
    }, rules=(depths_increasing,))

The spec is the one source of truth for the defaults (they are the ``quick`` profile); the
notebook's papermill ``parameters`` cell is a copy of :meth:`ChapterSpec.parameters_cell` that the
tests keep equal (``python -m pretraining sync-params`` rewrites it). The common parameters
(:data:`COMMON`: profile, device, precision, dataset, seed, executor) belong to every chapter.

Every problem is one line naming the parameter, the value and what is allowed
(:class:`ParameterError`): a wrong type or range, an unknown or missing name, or a broken
cross-parameter rule (a ``rule(params)`` function returning its problems, e.g. a batch larger than
the training set of the chosen data set, or more memory than the device has). The CLI checks a whole profile this way without starting a
kernel (``run --check``); the notebook checks again in its first call.
"""

from __future__ import annotations

import importlib
import math
import os
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ParameterError", "Spec", "Int", "Float", "Bool", "Str", "Choice", "IntList", "FloatList",
    "Param", "Executor", "ChapterSpec", "COMMON", "STACK_PARAMS", "selection_params", "rate_grid_rule", "select_seeds_rule", "PROFILES", "MAX_EPOCHS", "MAX_STEPS", "SpecNotFound", "fits_memory", "fits_split",
    "load_spec", "chapter_module",
    "not_allowed",
    "user_names",
]

CHAPTERS_ENV = "PRETRAINING_CHAPTERS"
"""The package of the chapter modules: ``pretraining.chapters`` unless this variable names another."""

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
            raise ParameterError(not_allowed(name, value, self.allowed()))

    def canonical(self, value: Any) -> Any:
        """The one spelling of an allowed value (e.g. ``1`` -> ``1.0`` for a float)."""
        return value

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

    def canonical(self, value: Any) -> float:
        return float(value)


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


class Executor(Str):
    """Where missing artifacts are computed (:func:`pretraining.book.executor.executor_problem`)."""

    def allowed(self) -> str:
        return "'auto', 'local', 'local-cluster:N' (N from 1 to 64) or 'dask://HOST:PORT'"

    def ok(self, value: Any) -> bool:
        from .executor import executor_problem

        return executor_problem(value) is None


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

    def canonical(self, value: Any) -> list:
        return [self.item.canonical(v) for v in value]


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


#: The parameters every chapter has. ``profile`` says which profile the other values come from.
COMMON: dict[str, "Param"] = {}  # filled below, after Param


def not_allowed(name: str, value: Any, allowed: str) -> str:
    """The one-line problem text ``name=value is not allowed: allowed``."""
    return f"{name}={value!r} is not allowed: {allowed}"


_TYPES = {Int: "int", Float: "float", Bool: "bool", Str: "str", Executor: "str", IntList: "list", FloatList: "list"}


@dataclass(frozen=True)
class Param:
    """One parameter: its default (the quick profile's value), what is allowed, and a help text.

    The help text is one line without ``=`` (papermill's parser skips lines with a second ``=``).
    """

    default: Any
    allowed: Spec
    help: str

    def __post_init__(self) -> None:
        if not isinstance(self.allowed, Spec):
            raise TypeError(f"Param allowed={self.allowed!r}: expected a Spec such as Int(min=1)")
        if not isinstance(self.help, str) or not self.help.strip() or "=" in self.help or "\n" in self.help:
            raise ValueError(f"Param help={self.help!r}: one non-empty line without '='")
        self.allowed.check("default", self.default)
        object.__setattr__(self, "default", self.allowed.canonical(self.default))

    @property
    def type_name(self) -> str:
        """The annotation of the parameters cell: int, float, bool, str or list."""
        if isinstance(self.allowed, Choice):
            return type(self.allowed.values[0]).__name__
        return _TYPES[type(self.allowed)]


COMMON.update({
    "profile": Param("quick", Choice(*PROFILES), "profile these defaults come from (smoke, quick, paper)"),
    "device": Param("auto", Choice("auto", "cpu", "cuda", "mps"), "auto, cpu, cuda or mps"),
    "precision": Param("auto", Choice("auto", "fp32", "tf32"),
                       "float32 matmuls: auto (tf32 on CUDA, fp32 elsewhere), fp32 (exact) or tf32 (CUDA only)"),
    "dataset": Param("mnist-10k", Choice("mnist-10k", "mnist"),
                     "mnist-10k (embedded) or mnist (the full set, downloaded)"),
    "seed": Param(0, Int(min=0), "chapter seed: member m is network seed * 10000 + m"),
    "executor": Param("auto", Executor(), "where missing artifacts are computed: auto ($PRETRAINING_EXECUTOR or local), "
                      "local, local-cluster:N or dask://HOST:PORT"),
})

def _precision_fits_device(p: Mapping) -> list[str]:
    """tf32 is a CUDA feature (with device auto it is checked when the chapter starts)."""
    if p.get("precision") == "tf32" and p.get("device") in ("cpu", "mps"):
        return [f"precision='tf32' is not allowed with device={p['device']!r}: TensorFloat-32 is a CUDA feature; "
                "use precision 'auto' or 'fp32'"]
    return []


COMMON_RULES: tuple[Callable[[Mapping], list[str]], ...] = (_precision_fits_device,)
"""Rules between the common parameters, checked for every chapter before its own rules."""

MAX_EPOCHS = 10_000
"""The most epochs any parameter may ask for: more cannot be meant (the paper trains 50)."""
MAX_STEPS = 10**9
"""The most examples or updates a stream or a budget of updates may ask for."""

#: The parameters of chapter 1's stacks, declared by chapters 1 and 2 (the quick defaults; chapter 2
#: fine-tunes chapter 1's stacks, which the cache finds when the values agree).
STACK_PARAMS: dict[str, Param] = {
    "hidden_sizes": Param([500, 500, 500], IntList(min=1, max=20000, max_len=8),
                          "hidden units of each pre-trained layer, bottom up"),
    "pretrain_batch_size": Param(100, Int(min=1), "minibatch size of RBM and DAE pre-training"),
    "rbm_epochs": Param(5, Int(min=1, max=MAX_EPOCHS), "CD-1 epochs per RBM layer"),
    "rbm_lr": Param(0.05, Float(gt=0, max=10), "RBM learning rate (momentum 0.5, weight decay 2e-4)"),
    "dae_epochs": Param(5, Int(min=1, max=MAX_EPOCHS), "SGD epochs per denoising auto-encoder layer"),
    "dae_lr": Param(0.1, Float(gt=0, max=10), "denoising auto-encoder learning rate"),
    "dae_noise": Param(0.25, Float(min=0, lt=1), "masking noise: fraction of inputs zeroed"),
}


def selection_params(*, grid: Sequence[float], epochs: int, patience: int, select_seeds: int = 2,
                     max_extensions: int = 3, prefix: str = "finetune") -> dict[str, Param]:
    """The fair-fight parameters (:mod:`pretraining.core.selection`) with a chapter's defaults.

    ``prefix`` names the training they select for: ``{prefix}_lr_grid``, ``{prefix}_epochs``,
    ``{prefix}_patience``, ``{prefix}_max_extensions``, ``{prefix}_select_seeds``. Pair with the rules
    :func:`rate_grid_rule` (log spacing) and :func:`select_seeds_rule`, and build the config with
    :func:`pretraining.book.experiments.selection_config`.
    """
    return {
        f"{prefix}_lr_grid": Param(list(grid), FloatList(gt=0, min_len=5, max_len=20),
                                   "learning rates tried first: at least 5, log-spaced, spanning at least 30x"),
        f"{prefix}_epochs": Param(epochs, Int(min=1, max=MAX_EPOCHS),
                                  "epoch budget; each network stops early on its validation error"),
        f"{prefix}_patience": Param(patience, Int(min=1, max=MAX_EPOCHS),
                                    "a network stops once its validation curve has flattened over this many epochs"),
        f"{prefix}_max_extensions": Param(max_extensions, Int(min=0, max=6),
                                          "grid steps allowed beyond an edge when the best rate is on it"),
        f"{prefix}_select_seeds": Param(select_seeds, Int(min=1),
                                        "seeds that choose the rate (then every seed trains with it)"),
    }


def rate_grid_rule(prefix: str = "finetune") -> "Rule":
    """A rule: ``{prefix}_lr_grid`` is a fair-fight grid (:func:`pretraining.core.checks.rate_grid_problem`)."""
    def rule(p: Mapping[str, Any]) -> list[str]:
        from ..core.checks import rate_grid_problem  # no torch

        name = f"{prefix}_lr_grid"
        problem = rate_grid_problem(p[name])
        return [not_allowed(name, p[name], problem)] if problem else []
    rule.__name__ = f"rate_grid_{prefix}"
    return rule


def select_seeds_rule(prefix: str = "finetune", seeds: str = "n_seeds") -> "Rule":
    """A rule: ``{prefix}_select_seeds`` is at most the number of seeds ``seeds`` (the rate is chosen on
    the first of them)."""
    def rule(p: Mapping[str, Any]) -> list[str]:
        name = f"{prefix}_select_seeds"
        if p[name] <= p[seeds]:
            return []
        return [not_allowed(name, p[name], f"at most {seeds} ({p[seeds]}): the rate is chosen on the first "
                                           f"{name} seeds")]
    rule.__name__ = f"select_seeds_{prefix}"
    return rule


Rule = Callable[[Mapping[str, Any]], Iterable[str]]
"""A cross-parameter rule: given all (individually valid) values, the problems it finds, as lines."""

_SPLIT_PARTS = {"train": (0, "training"), "valid": (1, "validation"), "test": (2, "test")}


def fits_split(part: str, *names: str) -> Rule:
    """A rule: each named parameter is at most the number of ``part`` digits of the chosen data set.

    ``part`` is "train", "valid" or "test"; a list-valued parameter (e.g. label budgets) counts by
    its largest entry. The sizes come from :data:`pretraining.core.data.SPLIT_SIZES` (no loading).
    """
    if part not in _SPLIT_PARTS:
        raise ValueError(f"part={part!r} is not allowed: one of {', '.join(_SPLIT_PARTS)}")
    index, word = _SPLIT_PARTS[part]

    def rule(p: Mapping[str, Any]) -> list[str]:
        from ..core.data import SPLIT_SIZES  # imported here: this module needs no torch

        n = SPLIT_SIZES[p["dataset"]][index]
        return [not_allowed(name, p[name], f"at most the {n} {word} digits of {p['dataset']}")
                for name in names if (max(p[name]) if isinstance(p[name], list) else p[name]) > n]

    rule.__name__ = f"fits_{part}_" + "_".join(names)
    return rule


def fits_memory(estimate: Callable[[Mapping[str, Any]], tuple[int, Sequence[str]]]) -> Rule:
    """A rule: the memory a chapter's parameters need fits the device they will run on.

    ``estimate(p)`` returns (bytes, the names of the parameters that drive it), e.g. from
    :func:`pretraining.core.memory.training_bytes`; the device is ``p["device"]`` as the run will
    choose it, its memory :func:`pretraining.core.memory.memory_bytes`.
    """
    def rule(p: Mapping[str, Any]) -> list[str]:
        from ..core.device import get_device  # imported here: this module needs no torch
        from ..core.memory import memory_bytes

        try:
            device = get_device(p["device"])
        except ValueError as exc:  # e.g. device='cuda' on a machine without CUDA
            return [str(exc)]
        need, names = estimate(p)
        have = memory_bytes(device)
        if need <= have:
            return []
        values = ", ".join(f"{k}={p[k]!r}" for k in names)
        return [f"{values}: need about {need / 1e9:.1f} GB (a rough estimate of the networks, their "
                f"training state and the layer codes), more than the {have / 1e9:.1f} GB of the device "
                f"({device.type}); use fewer networks per batched run or smaller layers"]
    rule.__name__ = "fits_memory"
    return rule


_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


def user_names(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The user-level variables of a notebook namespace, in definition order.

    Skipped: names starting with ``_``, IPython's ``In``/``Out``/``exit``/``quit``/``get_ipython``,
    modules, and callables (functions and classes).
    """
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _IPYTHON_NAMES
            and not isinstance(v, types.ModuleType) and not callable(v)}


@dataclass(frozen=True)
class ChapterSpec:
    """A chapter's name, its claim (for the summary page), and its parameters with their rules.

    name: the notebook's file stem, e.g. ``"03_depth_study"``; claim: the lecture's claim in one
    sentence; paper: what the papers found, in one sentence; params: the chapter's own parameters
    in the order of the parameters cell (after :data:`COMMON`); rules: cross-parameter rules.
    """

    name: str
    claim: str
    paper: str
    params: Mapping[str, Param]
    rules: tuple[Rule, ...] = field(default=())

    def __post_init__(self) -> None:
        clash = set(self.params) & set(COMMON)
        if clash:
            raise ValueError(f"{self.name}: {sorted(clash)} are common parameters; do not declare them again")

    @property
    def all_params(self) -> dict[str, Param]:
        """COMMON, then the chapter's own parameters."""
        return {**COMMON, **self.params}

    def defaults(self) -> dict[str, Any]:
        """Every parameter's default: the quick profile."""
        return {k: p.default for k, p in self.all_params.items()}

    def problems(self, values: Mapping[str, Any]) -> list[str]:
        """Every problem of a full set of values, one line each (empty: all good).

        Unknown names, missing names and bad values first; the rules run only when every single
        value is allowed (a rule may then rely on the types and ranges).
        """
        full = self.all_params
        out = [f"unknown parameter {k}={v!r}; the parameters are: {', '.join(full)}"
               for k, v in values.items() if k not in full]
        out += [f"parameter {k!r} is not defined; declare it in the parameters cell"
                for k in full if k not in values]
        out += [not_allowed(k, values[k], p.allowed.allowed()) for k, p in full.items()
                if k in values and not p.allowed.ok(values[k])]
        if not out:
            canonical = self.canonical(values)
            for rule in (*COMMON_RULES, *self.rules):
                out += list(rule(canonical))
        return out

    def canonical(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values in parameter order with one spelling each (floats as float, lists as lists)."""
        return {k: p.allowed.canonical(values[k]) for k, p in self.all_params.items() if k in values}

    def check(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The canonical values, or :class:`ParameterError` with the first problem (one line)."""
        problems = self.problems(values)
        if problems:
            raise ParameterError(problems[0])
        return self.canonical(values)

    def parameters_cell(self) -> str:
        """The source of the notebook's papermill ``parameters`` cell, one line per parameter."""
        return "\n".join(f"{k}: {p.type_name} = {_literal(p.default)}  # {p.help}"
                         for k, p in self.all_params.items())


def _literal(value: Any) -> str:
    """Python source of a default, strings in double quotes: ``"quick"``, ``[1.0, 2.0]``, ``5``."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


class SpecNotFound(Exception):
    """A chapter notebook has no chapter module, or the module has no proper ``SPEC``."""


def chapter_module(stem: str) -> types.ModuleType:
    """The module ``ch<stem>`` of the chapters package (``pretraining.chapters``, or
    ``$PRETRAINING_CHAPTERS``) of the chapter notebook ``chapters/<stem>.ipynb``."""
    package = os.environ.get(CHAPTERS_ENV, "pretraining.chapters")
    name = f"{package}.ch{stem}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, package):
            raise
        raise SpecNotFound(f"chapters/{stem}.ipynb has no chapter module {name}") from None


def load_spec(stem: str) -> ChapterSpec:
    """The spec of the chapter notebook ``chapters/<stem>.ipynb``: ``SPEC`` of its :func:`chapter_module`."""
    module = chapter_module(stem)
    name = module.__name__
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, ChapterSpec) or spec.name != stem:
        raise SpecNotFound(f"{name}.SPEC must be a ChapterSpec named {stem!r}")
    return spec
