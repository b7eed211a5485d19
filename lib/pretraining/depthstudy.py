"""Chapter 3: depth, with and without pre-training, over many seeds (Erhan et al. 2010, Fig. 1-2).

The study trains classifiers with 1 to D hidden layers of equal width from three initialisations —
``"random"`` (uniform in +-1/sqrt(fan_in)), ``"rbm"`` and ``"dae"`` (greedy pre-training) — with S
seeds each, every group of S seeds as ONE batched run (members = seeds, see
:mod:`pretraining.models`). How the work is shared:

- Pre-training: per kind, ONE stack of ``max(depths)`` layers is pre-trained with members = seeds
  (:func:`pretraining.experiments.pretrained_stack`, cached); the net of depth k of seed s starts
  from the first k layers of seed s's stack. Greedy training makes this exact: layer k is trained
  on the codes of layers 1..k-1 only, so the first k layers of a deeper stack ARE the k-layer stack.
- Fine-tuning: all seeds of one (depth, initialisation) are one batched run of
  :func:`pretraining.train.finetune` (cached per setting). With several learning rates the rate is
  chosen on the validation set on the first ``select_seeds`` seeds, then all seeds run with it.
- Stream: one-hidden-layer nets trained online on distorted digits (each example seen once,
  :class:`pretraining.distort.DistortedStream`, :func:`pretraining.train.finetune_stream`); all
  members see the same stream, so the seeds differ in their initialisation (and pre-training) only.

Member seeds are ``seed * SEED_STRIDE + i`` for i in 0..S-1 (:func:`member_seeds`), the same for
every initialisation, so seed s's random net and its pre-trained nets share the minibatch order.
Errors are fractions in [0, 1] throughout; the reference numbers of :data:`REFERENCE` are percent,
as printed in the papers.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import stats
from .distort import DistortedStream, DistortionConfig
from .experiments import pretrained_stack
from .models import Classifier, Stack
from .seeding import validate_seeds
from .checks import require_int as _check_int
from .train import (DAEConfig, FinetuneConfig, RBMConfig, TrainingDiverged, evaluate, finetune,
                    finetune_stream)

__all__ = ["INITS", "KINDS", "LABELS", "REFERENCE", "SEED_STRIDE", "DepthStudy", "SettingResult",
           "StreamResult", "member_seeds", "truncated", "initial_classifier", "finetune_select",
           "study_statistics", "claim_checks", "stream_check", "verdict_of", "reference_rows", "networks_per_minute"]

Tensor = torch.Tensor

INITS = ("random", "rbm", "dae")
KINDS = ("rbm", "dae")
LABELS = {"random": "no pre-training", "rbm": "RBM pre-training", "dae": "DAE pre-training"}
SEED_STRIDE = 10_000
"""Member seeds of chapter seed c are c * SEED_STRIDE + 0, 1, ...; so n_seeds <= SEED_STRIDE."""

#: Literature values (test error in percent) for side-by-side tables. Keys of the per-depth dicts
#: are numbers of hidden layers.
REFERENCE: dict[str, dict[str, Any]] = {
    "erhan2010_fig1": {
        "citation": "Erhan, Bengio, Courville, Manzagol, Vincent & Bengio, Why does unsupervised "
                    "pre-training help deep learning?, JMLR 11 (2010), Fig. 1",
        "data": "full MNIST (50k/10k/10k), 400 seeds per depth; medians read off the box plots, about +-0.01",
        "median": {"random": {1: 1.82, 2: 1.76, 3: 1.83, 4: 2.16},
                   "pretrained": {1: 1.41, 2: 1.36, 3: 1.33, 4: 1.31, 5: 1.37}},
        "note": "without pre-training, 5 layers failed to converge",
    },
    "erhan2010_table1": {
        "citation": "Erhan et al., JMLR 11 (2010), Table 1",
        "data": "full MNIST, mean +- std over seeds, denoising auto-encoder pre-training",
        "mean": {"random": {1: 1.81, 2: 1.77}, "dae": {1: 1.41, 2: 1.37}},
        "std": {"random": {1: 0.07, 2: 0.10}, "dae": {1: 0.07, 2: 0.09}},
    },
    "erhan2010_protocol": {
        "citation": "Erhan et al., JMLR 11 (2010), Sections 4-6 (as summarised in the project's DESIGN.md)",
        "seeds_per_depth": 400, "train_digits": 50_000, "width": 800, "pretrain_epochs": 50,
        "finetune_epochs": 50,
        "note": "equal widths of 400-1200, about 800 in the depth runs; plain SGD, constant rates "
                "chosen on validation; uniform init in +-1/sqrt(fan_in)",
    },
    "larochelle2009_table3": {
        "citation": "Larochelle, Bengio, Louradour & Lamblin, Exploring strategies for training deep "
                    "neural networks, JMLR 10 (2009), Table 3",
        "data": "MNIST-small: 10k train / 2k valid / 50k test, 500 units per layer",
        "error": {"random": {1: 4.14, 2: 4.03, 3: 4.24, 4: 4.47},
                  "rbm": {1: 3.17, 2: 2.74, 3: 2.71, 4: 2.72},
                  "autoassociator": {1: 3.87, 2: 3.38, 3: 3.37, 4: 3.39}},
        "note": "'autoassociator' = stacked (ordinary, not denoising) auto-associators",
    },
}


# ----------------------------------------------------------------------------------------- checks
def _check_init(init: Any) -> str:
    if init not in INITS:
        raise ValueError(f"init={init!r} is not allowed; use one of {', '.join(map(repr, INITS))}")
    return init


def _check_depths(depths: Any) -> list[int]:
    if isinstance(depths, (str, bytes)) or not isinstance(depths, Sequence) or not depths:
        raise ValueError(f"depths={depths!r} is not allowed; give a non-empty list of ints in 1..10")
    for d in depths:
        _check_int("depths entry", d, 1, 10)
    if len(set(depths)) != len(depths) or list(depths) != sorted(depths):
        raise ValueError(f"depths={list(depths)!r} is not allowed; give distinct depths in increasing order")
    return list(depths)


def _check_lrs(lrs: Any) -> list[float]:
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence) or not lrs:
        raise ValueError(f"lrs={lrs!r} is not allowed; give a non-empty list of learning rates > 0")
    for lr in lrs:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lrs={list(lrs)!r} is not allowed; every learning rate must be a finite number > 0")
    if len(set(lrs)) != len(lrs):
        raise ValueError(f"lrs={list(lrs)!r} is not allowed; the learning rates must be distinct")
    return [float(lr) for lr in lrs]


def member_seeds(seed: int, n_seeds: int) -> list[int]:
    """The study's member seeds ``seed * SEED_STRIDE + i``, i = 0..n_seeds-1."""
    _check_int("seed", seed, 0)
    _check_int("n_seeds", n_seeds, 1, SEED_STRIDE)
    return [seed * SEED_STRIDE + i for i in range(n_seeds)]


# ----------------------------------------------------------------------------------------- networks
def truncated(stack: Stack, depth: int) -> Stack:
    """The first ``depth`` layers of ``stack`` (the same tensors, not copies)."""
    _check_int("depth", depth, 1, len(stack.layers))
    return Stack(stack.kind, stack.layers[:depth])


def initial_classifier(init: str, depth: int, width: int, seeds: Sequence[int], *,
                       stacks: Mapping[str, Stack] | None = None, n_inputs: int = 784,
                       n_classes: int = 10, device=None) -> Classifier:
    """The classifier n_inputs-width x depth-n_classes before fine-tuning, one member per seed.

    init "random": :meth:`Classifier.random`; "rbm"/"dae": hidden layers copied from the first
    ``depth`` layers of ``stacks[init]`` (members = seeds, hidden sizes all ``width``), softmax
    layer random. The stack's device wins over ``device``.
    """
    _check_init(init)
    _check_int("depth", depth, 1)
    _check_int("width", width, 1)
    seeds = validate_seeds(seeds)
    if init == "random":
        return Classifier.random([n_inputs] + [width] * depth + [n_classes], seeds, device=device)
    if stacks is None or init not in stacks:
        raise ValueError(f"init={init!r} needs stacks[{init!r}], a pre-trained stack; got keys "
                         f"{sorted(stacks) if stacks else []}")
    stack = stacks[init]
    if stack.kind != init:
        raise ValueError(f"stacks[{init!r}] is a {stack.kind!r} stack")
    if stack.n_members != len(seeds):
        raise ValueError(f"stacks[{init!r}] has {stack.n_members} members but {len(seeds)} seeds were given")
    if stack.sizes[0] != n_inputs or any(h != width for h in stack.sizes[1:]) or len(stack.layers) < depth:
        raise ValueError(f"stacks[{init!r}] has sizes {stack.sizes}; depth {depth} needs "
                         f"[{n_inputs}] + [{width}] * (at least {depth})")
    return Classifier.from_stack(truncated(stack, depth), n_classes, seeds)


# ----------------------------------------------------------------------------------------- fine-tuning
def finetune_select(make: Callable[[Sequence[int]], Classifier], split, config: FinetuneConfig,
                    lrs: Sequence[float], seeds: Sequence[int], *, select_seeds: int,
                    progress: bool = False) -> dict[str, Any]:
    """Fine-tune with the learning rate of ``lrs`` that is best on the validation set.

    make(seeds) -> a fresh :class:`Classifier` with one member per seed (its initialisation).
    With one rate: one batched run of all seeds. With several: each rate is tried on the first
    ``select_seeds`` seeds (one batched run per rate; a rate whose run diverges is dropped), the
    rate with the lowest mean validation error wins (ties: the first), and all seeds run with it.
    ``config.lr`` is ignored (replaced by the rates). split: a :class:`pretraining.data.DataSplit`.

    Returns {"lr": chosen rate, "valid_error": (S,), "test_error": (S,), "train_nll": per epoch
    (S,) lists, "grid": {rate: mean validation error of the selection seeds, or None if diverged}}.
    """
    lrs = _check_lrs(lrs)
    seeds = validate_seeds(seeds)
    _check_int("select_seeds", select_seeds, 1)

    def run(lr: float, run_seeds: list[int]) -> tuple[Classifier, dict]:
        clf = make(run_seeds)
        history = finetune(clf, split.train.x, split.train.y, dataclasses.replace(config, lr=lr),
                           run_seeds, progress=progress)
        return clf, history

    grid: dict[float, float | None] = {}
    if len(lrs) == 1:
        chosen = lrs[0]
    else:
        sel = seeds[:select_seeds]
        for lr in lrs:
            try:
                clf, _ = run(lr, sel)
            except TrainingDiverged:
                grid[lr] = None
                continue
            grid[lr] = float(evaluate(clf, split.valid.x, split.valid.y).error.mean())
        finite = {lr: e for lr, e in grid.items() if e is not None}
        if not finite:
            raise TrainingDiverged(f"fine-tuning diverged for every learning rate of {lrs}")
        chosen = min(finite, key=lambda lr: (finite[lr], lrs.index(lr)))
    clf, history = run(chosen, seeds)
    return {
        "lr": chosen,
        "valid_error": evaluate(clf, split.valid.x, split.valid.y).error.cpu(),
        "test_error": evaluate(clf, split.test.x, split.test.y).error.cpu(),
        "train_nll": history["train_nll"],
        "grid": {str(lr): e for lr, e in grid.items()},
    }


@dataclass
class SettingResult:
    """One (initialisation, depth) of the study: per-seed errors (fractions) and the chosen rate."""

    init: str
    depth: int
    test_error: list[float]
    valid_error: list[float]
    lr: float
    train_nll: list[list[float]]
    grid: dict[str, float | None]


@dataclass
class StreamResult:
    """One-hidden-layer nets trained on a stream of distorted digits, one initialisation."""

    init: str
    test_error: list[float]
    steps: list[int]
    train_nll: list[list[float]]


class DepthStudy:
    """The whole study of one chapter run: stacks (lazy, cached), settings and stream runs (cached).

    ch: the running :class:`pretraining.book.Chapter` (data, device, cache). depths: increasing
    numbers of hidden layers; width: units per hidden layer; seeds: one per member; rbm, dae:
    pre-training configurations (one stack of ``max(depths)`` layers per kind); finetune: the
    fine-tuning configuration (its ``lr`` is replaced by ``lrs``); select_seeds: seeds used to
    choose among several rates; member_chunk: at most this many members per batched run (memory).
    """

    def __init__(self, ch, *, depths: Sequence[int], width: int, seeds: Sequence[int],
                 rbm: RBMConfig, dae: DAEConfig, finetune: FinetuneConfig, lrs: Sequence[float],
                 select_seeds: int, member_chunk: int, progress: bool = True):
        self.depths = _check_depths(depths)
        self.width = _check_int("width", width, 1)
        self.seeds = validate_seeds(seeds)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={list(seeds)!r} is not allowed; the seeds must be distinct")
        for name, value, cls in (("rbm", rbm, RBMConfig), ("dae", dae, DAEConfig),
                                 ("finetune", finetune, FinetuneConfig)):
            if not isinstance(value, cls):
                raise TypeError(f"{name}={value!r} must be a {cls.__name__}")
        self.configs: dict[str, RBMConfig | DAEConfig] = {"rbm": rbm, "dae": dae}
        self.finetune_config = finetune
        self.lrs = _check_lrs(lrs)
        self.select_seeds = _check_int("select_seeds", select_seeds, 1)
        self.member_chunk = _check_int("member_chunk", member_chunk, 1)
        self.ch, self.progress = ch, progress
        self._stacks: dict[str, Stack] = {}

    @property
    def max_depth(self) -> int:
        return self.depths[-1]

    def _chunks(self) -> list[list[int]]:
        c = self.member_chunk
        return [self.seeds[i:i + c] for i in range(0, len(self.seeds), c)]

    def _pretrain_key(self, kind: str) -> dict[str, Any]:
        return {"kind": kind, "hidden_sizes": [self.width] * self.max_depth,
                "config": dataclasses.asdict(self.configs[kind])}

    def stack(self, kind: str, chunk: int = 0) -> Stack:
        """Seed chunk ``chunk``'s pre-trained stack of ``max(depths)`` layers (members = its seeds)."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; use 'rbm' or 'dae'")
        key = f"{kind}/{chunk}"
        if key not in self._stacks:
            self._stacks[key], _ = pretrained_stack(self.ch, kind, [self.width] * self.max_depth,
                                                    self.configs[kind], self._chunks()[chunk],
                                                    progress=self.progress)
        return self._stacks[key]

    def _make(self, init: str, depth: int, chunk: int) -> Callable[[Sequence[int]], Classifier]:
        def make(seeds: Sequence[int]) -> Classifier:
            if init == "random":
                return initial_classifier("random", depth, self.width, seeds, device=self.ch.device)
            stack = self.stack(init, chunk)
            idx = [self._chunks()[chunk].index(s) for s in seeds]
            part = Stack(init, [type(layer).from_state_dict({k: v[idx] for k, v in layer.state_dict().items()})
                                for layer in stack.layers])
            return initial_classifier(init, depth, self.width, seeds, stacks={init: part})
        return make

    def run(self, init: str, depth: int) -> SettingResult:
        """Fine-tune all seeds of (init, depth) (cached); the rate is chosen on the first chunk."""
        _check_init(init)
        if depth not in self.depths:
            raise ValueError(f"depth={depth!r} is not allowed; the study's depths are {self.depths}")
        cfg = dataclasses.asdict(self.finetune_config)
        cfg.pop("lr")
        key = {"init": init, "depth": depth, "width": self.width, "seeds": self.seeds,
               "finetune": cfg, "lrs": self.lrs, "select_seeds": self.select_seeds,
               "member_chunk": self.member_chunk,
               "pretrain": None if init == "random" else self._pretrain_key(init)}

        def compute():
            parts, lrs = [], self.lrs
            for c, chunk_seeds in enumerate(self._chunks()):
                parts.append(finetune_select(self._make(init, depth, c), self.ch.data, self.finetune_config,
                                             lrs, chunk_seeds, select_seeds=self.select_seeds,
                                             progress=self.progress))
                lrs = [parts[0]["lr"]]  # later chunks reuse the rate chosen on the first
            tensors = {"test_error": torch.cat([p["test_error"] for p in parts]),
                       "valid_error": torch.cat([p["valid_error"] for p in parts])}
            nll = [sum((p["train_nll"][e] for p in parts), []) for e in range(len(parts[0]["train_nll"]))]
            return tensors, {"lr": parts[0]["lr"], "grid": parts[0]["grid"], "train_nll": nll}

        tensors, meta = self.ch.cached(f"depthstudy_{init}_{depth}", key, compute)
        return SettingResult(init, depth, tensors["test_error"].tolist(), tensors["valid_error"].tolist(),
                             meta["lr"], meta["train_nll"], meta["grid"])

    def run_all(self) -> dict[str, dict[int, SettingResult]]:
        """Every (init, depth): {init: {depth: SettingResult}}."""
        return {init: {d: self.run(init, d) for d in self.depths} for init in INITS}

    def stream(self, init: str, *, n_examples: int, batch_size: int, lr: float, stream_seed: int,
               distortion: DistortionConfig = DistortionConfig()) -> StreamResult:
        """One-hidden-layer nets (width units) trained online on ``n_examples`` distorted digits (cached).

        init "random" or a pre-training kind (the first layer of that kind's stack, pre-trained on
        the clean training digits). The stream (:class:`DistortedStream` of the training digits
        with ``stream_seed``) is shared by all members and seen once, in minibatches of
        ``batch_size``; the test error is measured on the clean test digits.
        """
        _check_init(init)
        _check_int("n_examples", n_examples, 1)
        _check_int("batch_size", batch_size, 1, n_examples)
        _check_int("stream_seed", stream_seed, 0)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr={lr!r} is not allowed; it must be a finite number > 0")
        if not isinstance(distortion, DistortionConfig):
            raise TypeError(f"distortion={distortion!r} must be a DistortionConfig")
        n_steps = n_examples // batch_size
        config = dataclasses.replace(self.finetune_config, lr=float(lr), batch_size=batch_size)
        key = {"init": init, "width": self.width, "seeds": self.seeds, "n_steps": n_steps,
               "batch_size": batch_size, "lr": float(lr), "stream_seed": stream_seed,
               "distortion": dataclasses.asdict(distortion), "member_chunk": self.member_chunk,
               "momentum": config.momentum, "weight_decay": config.weight_decay,
               "pretrain": None if init == "random" else self._pretrain_key(init)}

        def compute():
            split = self.ch.data
            data = DistortedStream(split.train, stream_seed, distortion)
            errors, nll, steps = [], None, []
            for c, chunk_seeds in enumerate(self._chunks()):
                clf = self._make(init, 1, c)(chunk_seeds)
                hist = finetune_stream(clf, lambda step: data.batch(step * batch_size, batch_size), n_steps,
                                       config, log_every=max(1, n_steps // 20), progress=self.progress)
                errors.append(evaluate(clf, split.test.x, split.test.y).error.cpu())
                steps = hist["step"]
                nll = hist["train_nll"] if nll is None else [a + b for a, b in zip(nll, hist["train_nll"])]
            return {"test_error": torch.cat(errors)}, {"steps": steps, "train_nll": nll}

        tensors, meta = self.ch.cached(f"depthstudy_stream_{init}", key, compute)
        return StreamResult(init, tensors["test_error"].tolist(), meta["steps"], meta["train_nll"])


# ----------------------------------------------------------------------------------------- statistics
def study_statistics(errors: Mapping[str, Mapping[int, Sequence[float]]], *, n_boot: int = 2000,
                     seed: int = 0) -> dict[str, Any]:
    """Statistics of a study's test errors {init: {depth: per-seed errors}} (at least 2 seeds each).

    Returns {"summary": {init: {depth: stats.summary}}, "median_ci95": {init: {depth: [lo, hi]}}
    (bootstrap interval of the median), "mannwhitney": {kind: {depth: stats.mann_whitney(kind,
    random)}} and "overlap": {kind: {depth: stats.overlap}} for every initialisation other than
    "random" (when "random" is present), "best_depth": {init: stats.best_setting over depths}
    (when there are at least 2 depths) and "vs_two": {init: {depth: stats.mann_whitney(depth,
    depth 2)}} for every depth other than 2 (when depth 2 is present).
    """
    if not isinstance(errors, Mapping) or not errors:
        raise TypeError(f"errors must be a non-empty mapping {{init: {{depth: errors}}}}, got {type(errors).__name__}")
    for init, per_depth in errors.items():
        _check_init(init)
        if not isinstance(per_depth, Mapping) or not per_depth:
            raise TypeError(f"errors[{init!r}] must be a non-empty mapping {{depth: errors}}")
    out: dict[str, Any] = {
        "summary": {i: {d: stats.summary(v) for d, v in e.items()} for i, e in errors.items()},
        "median_ci95": {i: {d: list(stats.bootstrap_ci(v, np.median, n_boot=n_boot, seed=seed))
                            for d, v in e.items()} for i, e in errors.items()},
        "mannwhitney": {}, "overlap": {}, "best_depth": {}, "vs_two": {},
    }
    if "random" in errors:
        for kind in (i for i in errors if i != "random"):
            common = [d for d in errors[kind] if d in errors["random"]]
            out["mannwhitney"][kind] = {d: stats.mann_whitney(errors[kind][d], errors["random"][d]) for d in common}
            out["overlap"][kind] = {d: stats.overlap(errors[kind][d], errors["random"][d]) for d in common}
    for init, per_depth in errors.items():
        if len(per_depth) >= 2:
            out["best_depth"][init] = stats.best_setting(per_depth, n_boot=n_boot, seed=seed)
        if 2 in per_depth:
            out["vs_two"][init] = {d: stats.mann_whitney(v, per_depth[2]) for d, v in per_depth.items() if d != 2}
    return out


def _layers(d: int) -> str:
    return f"{d} hidden layer" + ("s" if d != 1 else "")


def claim_checks(st: Mapping[str, Any], *, alpha: float = 0.05, max_overlap: float = 0.1,
                 deep: int = 4) -> list[dict[str, Any]]:
    """The claim's parts tested on the statistics of :func:`study_statistics`.

    One dict per part and pre-training kind: {"part", "kind", "holds": True/False/None (None: the
    depths needed are missing), "text": a sentence with the numbers}. The parts: (a) pre-training
    lowers the error of 1 layer (lower mean, Mann-Whitney p < alpha); (b) the gain (difference
    of means) is larger at depth ``deep`` (or the deepest depth if shallower) than at 1; (c) the
    distributions barely overlap, the pre-trained one below (overlap <= max_overlap and
    P(pre-trained < random) > 0.5 at every depth); (d) without
    pre-training 2 layers is best and ``deep`` is worse than 2 (p < alpha); (e) with pre-training
    ``deep`` has a lower mean than 2 (p < alpha) and a smaller std than random at ``deep``.
    """
    summ = st["summary"]
    if "random" not in summ:
        raise ValueError("claim_checks needs the 'random' initialisation in the statistics")
    rnd = summ["random"]
    rnd_depths = sorted(rnd)
    d_deep = deep if deep in rnd_depths else rnd_depths[-1]
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    checks: list[dict[str, Any]] = []

    def add(part: str, kind: str, holds: bool | None, text: str) -> None:
        checks.append({"part": part, "kind": kind, "holds": holds, "text": text})

    if deep != 2 and 2 in rnd and deep in rnd and "random" in st["best_depth"]:
        best, p = st["best_depth"]["random"], st["vs_two"]["random"][deep]["p"]
        worse = rnd[deep]["mean"] > rnd[2]["mean"] and p < alpha
        add("d", "random", best["best"] == 2 and worse,
            f"without pre-training the best depth is {best['best']} (lowest mean in "
            f"{100 * best['probability']:.0f} % of bootstrap replicates); {deep} layers {pct(rnd[deep]['mean'])} "
            f"vs 2 layers {pct(rnd[2]['mean'])} (Mann-Whitney p = {p:.2g})")
    else:
        add("d", "random", None, f"needs depths 2 and {deep}")
    for kind in (k for k in summ if k != "random"):
        s, mw, ov = summ[kind], st["mannwhitney"][kind], st["overlap"][kind]
        name = LABELS[kind]
        if 1 in s and 1 in rnd:
            add("a", kind, s[1]["mean"] < rnd[1]["mean"] and mw[1]["p"] < alpha,
                f"1 layer: {name} {pct(s[1]['mean'])} vs {pct(rnd[1]['mean'])} without (Mann-Whitney p = {mw[1]['p']:.2g})")
        else:
            add("a", kind, None, "needs depth 1")
        if 1 in s and d_deep in s and d_deep != 1:
            g1, gd = rnd[1]["mean"] - s[1]["mean"], rnd[d_deep]["mean"] - s[d_deep]["mean"]
            add("b", kind, gd > g1, f"{name} lowers the mean error by {100 * g1:.2f} percentage points at 1 hidden layer and "
                f"by {100 * gd:.2f} at {d_deep}")
        else:
            add("b", kind, None, "needs depth 1 and a deeper one")
        worst = max(ov, key=lambda d: ov[d] if mw[d]["effect_size"] > 0.5 else 2 - ov[d])
        least = min(mw[d]["effect_size"] for d in mw)
        beats = "in every pair of seeds" if least == 1 else f"in at least {100 * least:.0f} % of the pairs of seeds"
        add("c", kind, all(ov[d] <= max_overlap and mw[d]["effect_size"] > 0.5 for d in ov),
            f"{name} beats no pre-training {beats} at every depth; the largest overlap is {ov[worst]:.2f} "
            f"({_layers(worst)}; 0 = none, 1 = identical)")
        if deep != 2 and 2 in s and deep in s and deep in rnd:
            p = st["vs_two"][kind][deep]["p"]
            add("e", kind, s[deep]["mean"] < s[2]["mean"] and p < alpha and s[deep]["std"] < rnd[deep]["std"],
                f"{name}: {deep} layers {pct(s[deep]['mean'])} vs 2 layers {pct(s[2]['mean'])} (Mann-Whitney "
                f"p = {p:.2g}); std at {deep} layers {pct(s[deep]['std'])} vs {pct(rnd[deep]['std'])} without")
        else:
            add("e", kind, None, f"needs depths 2 and {deep}")
    return checks


def stream_check(random: Sequence[float], pretrained: Sequence[float], kind: str = "rbm", *,
                 alpha: float = 0.05) -> dict[str, Any]:
    """Part (f) of the claim: on the distorted stream, pre-trained one-layer nets have the lower
    mean error (Mann-Whitney p < alpha). Same keys as the dicts of :func:`claim_checks`."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not allowed; use 'rbm' or 'dae'")
    r, k = np.asarray(random, dtype=float), np.asarray(pretrained, dtype=float)
    mw = stats.mann_whitney(k, r)
    return {"part": "f", "kind": kind, "holds": bool(k.mean() < r.mean() and mw["p"] < alpha),
            "text": f"distorted stream, 1 layer: {LABELS[kind]} {100 * k.mean():.2f} % vs {100 * r.mean():.2f} % "
                    f"without (Mann-Whitney p = {mw['p']:.2g}, overlap {stats.overlap(k, r):.2f})"}


def verdict_of(checks: Sequence[Mapping[str, Any]], n_seeds: int, *, min_seeds: int = 5) -> str:
    """'supported' if every applicable part holds, 'not supported' if none does, else 'partly
    supported'; 'inconclusive' with fewer than ``min_seeds`` seeds (a rank test of 4 against 4
    values cannot reach p < 0.05) or when no part is applicable."""
    applicable = [c["holds"] for c in checks if c["holds"] is not None]
    if n_seeds < min_seeds or not applicable:
        return "inconclusive"
    if all(applicable):
        return "supported"
    return "not supported" if not any(applicable) else "partly supported"


def reference_rows(summary: Mapping[str, Mapping[int, Mapping[str, float]]]) -> list[dict[str, Any]]:
    """One row per depth: this run's medians and means (percent) beside the papers' numbers.

    summary: :func:`study_statistics`'s "summary". Missing entries are None.
    """
    fig1, tab1, lar = (REFERENCE[k] for k in ("erhan2010_fig1", "erhan2010_table1", "larochelle2009_table3"))
    depths = sorted({d for per in summary.values() for d in per} | set(fig1["median"]["pretrained"]))
    rows = []
    for d in depths:
        row: dict[str, Any] = {"hidden layers": d}
        for init in INITS:
            s = summary.get(init, {}).get(d)
            row[f"this book, {init}: median"] = None if s is None else 100 * s["median"]
        row["Erhan 2010 Fig. 1 median, random"] = fig1["median"]["random"].get(d)
        row["Erhan 2010 Fig. 1 median, pre-trained"] = fig1["median"]["pretrained"].get(d)
        for init in ("random", "dae"):
            m, sd = tab1["mean"][init].get(d), tab1["std"][init].get(d)
            row[f"Erhan 2010 Table 1, {init}: mean (std)"] = None if m is None else f"{m:.2f} ({sd:.2f})"
        for init in ("random", "rbm", "autoassociator"):
            row[f"Larochelle 2009 Table 3, {init}"] = lar["error"][init].get(d)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------- throughput
def networks_per_minute(x: Tensor, y: Tensor, sizes: Sequence[int], seeds: Sequence[int],
                        config: FinetuneConfig) -> dict[str, float]:
    """Networks fine-tuned per minute: all seeds as one batched run vs a loop of single runs.

    x (N, V), y (N,): training data; sizes: e.g. [784, 200, 200, 10]; one network per seed, random
    initialisation, ``config`` as given. Returns {"batched", "loop": networks per minute of wall
    time; "batched_cpu", "loop_cpu": per minute of this process's CPU time (the fairer figure on a
    shared machine); "speedup": loop wall time / batched wall time; "max_abs_diff": largest
    |weight difference| between the two ways}. Member m of the batch is seed m trained alone up to
    float rounding (matrix products of other shapes sum in another order); over many steps with a
    large rate such rounding differences can grow, so ``max_abs_diff`` is 0 only for short runs.
    """
    seeds = validate_seeds(seeds)
    clocks = [(time.perf_counter(), time.process_time())]
    batched = Classifier.random(sizes, seeds, device=x.device)
    finetune(batched, x, y, config, seeds, progress=False)
    clocks.append((time.perf_counter(), time.process_time()))
    singles = []
    for s in seeds:
        clf = Classifier.random(sizes, [s], device=x.device)
        finetune(clf, x, y, config, [s], progress=False)
        singles.append(clf)
    clocks.append((time.perf_counter(), time.process_time()))
    looped = Classifier.stack_members(singles)
    diff = max(float((a - b).abs().max()) for a, b in zip(batched.parameters(), looped.parameters()))
    (w0, c0), (w1, c1), (w2, c2) = clocks
    n = 60.0 * len(seeds)
    return {"batched": n / (w1 - w0), "loop": n / (w2 - w1), "batched_cpu": n / max(c1 - c0, 1e-9),
            "loop_cpu": n / max(c2 - c1, 1e-9), "speedup": (w2 - w1) / (w1 - w0), "max_abs_diff": diff}
