"""Chapter 3: depth, with and without pre-training, over many seeds (Erhan et al. 2010, Fig. 1-2).

The notebook ``chapters/03_depth_study.ipynb`` tells the story; this module does the work:

* :data:`SPEC` — the claim and the parameters, with the rules that tie them together;
* :func:`run` — every (initialisation, depth) fine-tuned over all seeds, and the one-layer nets on
  the stream of distorted digits (all through the artifact cache), then :func:`analyse`;
* one function per section — :func:`setup`, :func:`training`, :func:`error_by_depth`,
  :func:`shallow_and_deep`, :func:`statistics_table`, :func:`best_depths`, :func:`distorted_stream`,
  :func:`side_by_side`;
* :func:`claim_parts` and :func:`finish` — the claim's parts tested on the numbers, the results file.

The study trains classifiers with 1 to D hidden layers of equal width from three initialisations —
``"random"`` (uniform in +-1/sqrt(fan_in)), ``"rbm"`` and ``"dae"`` (greedy pre-training) — with S
seeds each, every group of S seeds as ONE batched run (members = seeds, see
:mod:`pretraining.core.models`). How the work is shared (:class:`DepthStudy`):

- Pre-training: per kind, ONE stack of ``max(depths)`` layers is pre-trained with members = seeds
  (:func:`pretraining.book.experiments.pretrained_stack`, cached); the net of depth k of seed s
  starts from the first k layers of seed s's stack. Greedy training makes this exact: layer k is
  trained on the codes of layers 1..k-1 only, so the first k layers of a deeper stack ARE the k-layer stack.
- Fine-tuning: all seeds of one (depth, initialisation) are one batched run of
  :func:`pretraining.core.train.finetune` (cached per setting). With several learning rates the rate
  is chosen on the validation set on the first ``select_seeds`` seeds, then all seeds run with it.
- Stream: one-hidden-layer nets trained online on distorted digits (each example seen once,
  :class:`pretraining.core.distort.DistortedStream`, :func:`pretraining.core.train.finetune_stream`);
  all members see the same stream, so the seeds differ in their initialisation (and pre-training) only.

Member seeds follow the book's one rule, :func:`pretraining.core.seeding.member_seeds` (``seed *
SEED_STRIDE + m``), the same for every initialisation, so seed s's random net and its pre-trained
nets share the minibatch order. Errors are fractions in [0, 1] throughout; the papers' numbers
(:mod:`pretraining.analysis.references`) are percent, as printed in the papers.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from ..analysis import figures, stats
from ..analysis.references import (ERHAN2010_FIG1, ERHAN2010_PROTOCOL, ERHAN2010_TABLE1,
                                   LAROCHELLE2009_TABLE3)
from ..book import claims, runtime
from ..book.experiments import pretrained_stack, stack_configs
from ..book.specs import MAX_EPOCHS, MAX_STEPS, ChapterSpec, Float, FloatList, Int, IntList, Param, fits_memory, fits_split, not_allowed
from ..core.checks import require_float, require_int
from ..core.data import SPLIT_SIZES
from ..core.memory import training_bytes
from ..core.distort import DistortedStream, DistortionConfig
from ..core.models import Classifier, Stack
from ..core.seeding import SEED_STRIDE, member_seeds, validate_seeds
from ..core.train import (DAEConfig, FinetuneConfig, RBMConfig, TrainingDiverged, evaluate, finetune,
                          finetune_stream)

__all__ = ["SPEC", "Result", "start", "run", "analyse", "setup", "training", "error_by_depth",
           "shallow_and_deep", "statistics_table", "best_depths", "distorted_stream", "side_by_side",
           "claim_parts", "finish",
           "INITS", "KINDS", "LABELS", "ALPHA", "MAX_OVERLAP", "DepthStudy", "SettingResult", "StreamResult",
           "make_study", "truncated", "initial_classifier", "finetune_select", "deep_depth", "study_statistics",
           "min_rank_p", "claim_checks", "stream_check", "stream_sentence", "reference_rows", "finetune_flops",
           "depths_text", "rates_text", "did_not_learn", "failed_sentence", "plot_error_by_depth",
           "hist_sentence", "statistics_frame", "rates_frame", "best_depth_text", "plot_stream_curves",
           "why_sentence", "results_record", "finding_sentence"]

INITS = ("random", "rbm", "dae")
KINDS = ("rbm", "dae")
STREAM_INITS = ("random", "rbm")
LABELS = {"random": "no pre-training", "rbm": "RBM pre-training", "dae": "DAE pre-training"}
ALPHA = 0.05
"""Level of the two-sided Mann-Whitney tests: a difference counts when p < ALPHA."""
MAX_OVERLAP = 0.1
"""'Barely overlap': an overlap (:func:`pretraining.analysis.stats.overlap`) of at most this."""
FAILED_FACTOR = 4.0
"""A setting 'did not learn' when its median error exceeds this many times the median of all medians."""

PART_NAMES = {"a": "pre-training lowers the error of 1 hidden layer",
              "b": "the gain is larger at {deep} layers than at 1",
              "c": "the distributions barely overlap",
              "d": "without pre-training 2 layers are best and {deep} are worse",
              "e": "with pre-training {deep} layers beat 2, with less variation",
              "f": "on the distorted stream, pre-training lowers the error of 1 hidden layer"}


# ----------------------------------------------------------------------------------------- the spec
def _depths_increasing(p: Mapping) -> list[str]:
    d = p["depths"]
    if any(b <= a for a, b in zip(d, d[1:])):
        return [not_allowed("depths", d, "increasing numbers of hidden layers without repeats, e.g. [1, 2, 4]")]
    return []


def _rates_distinct(p: Mapping) -> list[str]:
    g = p["finetune_lr_grid"]
    if len(set(g)) != len(g):
        return [not_allowed("finetune_lr_grid", g, "distinct learning rates")]
    return []


def _seeds_fit(p: Mapping) -> list[str]:
    if p["select_seeds"] > p["n_seeds"]:
        return [not_allowed("select_seeds", p["select_seeds"], f"at most n_seeds ({p['n_seeds']}): the "
                            "rate is chosen on the first select_seeds seeds")]
    return []


def _stream_batch_fits(p: Mapping) -> list[str]:
    if p["stream_batch_size"] > p["stream_examples"]:
        return [not_allowed("stream_batch_size", p["stream_batch_size"],
                            f"at most stream_examples ({p['stream_examples']})")]
    return []


def _paper_sentence() -> str:
    m = ERHAN2010_FIG1.numbers["median"]
    medians = lambda per: ", ".join(f"{per[d]:.2f}" for d in (1, 2, 3, 4))  # noqa: E731
    return (f"MNIST medians, 1-4 layers: {medians(m['random'])} % without and {medians(m['pretrained'])} % "
            "with pre-training (Erhan et al. 2010, Fig. 1).")


def _memory(p: Mapping) -> tuple[int, list[str]]:
    """Bytes of one batched run (at most member_chunk seeds of the deepest stack), and their drivers."""
    members = min(p["member_chunk"], p["n_seeds"])
    sizes = [784] + [p["width"]] * max(p["depths"]) + [10]
    batch = max(p["pretrain_batch_size"], p["finetune_batch_size"], p["stream_batch_size"])
    return (training_bytes(members, SPLIT_SIZES[p["dataset"]][0], sizes, batch),
            ["n_seeds", "member_chunk", "width", "depths"])


SPEC = ChapterSpec(
    "03_depth_study",
    claim="Pre-training lowers test error, more so for deep nets, with less variation; without it "
          "2 layers is best and 4 considerably worse.",
    paper=_paper_sentence(),
    params={
        "n_seeds": Param(10, Int(min=2, max=SEED_STRIDE), "networks per (depth, initialisation), at least 2 (the paper: 400)"),
        "depths": Param([1, 2, 3, 4, 5], IntList(min=1, max=10, max_len=10),
                        "numbers of hidden layers, increasing, each 1..10"),
        "width": Param(200, Int(min=1, max=20000), "units in every hidden layer"),
        "rbm_epochs": Param(10, Int(min=1, max=MAX_EPOCHS), "pre-training epochs per RBM layer"),
        "dae_epochs": Param(10, Int(min=1, max=MAX_EPOCHS), "pre-training epochs per denoising auto-encoder layer"),
        "rbm_lr": Param(0.05, Float(gt=0), "CD-1 learning rate of the RBMs (momentum 0.5, weight decay 2e-4)"),
        "dae_lr": Param(0.05, Float(gt=0), "SGD learning rate of the denoising auto-encoders (tied weights)"),
        "dae_noise": Param(0.25, Float(min=0, lt=1), "fraction of the auto-encoders' inputs set to 0, in [0, 1)"),
        "pretrain_batch_size": Param(50, Int(min=1), "minibatch size of pre-training"),
        "finetune_epochs": Param(20, Int(min=1, max=MAX_EPOCHS), "supervised epochs over the training set"),
        "finetune_lr_grid": Param([0.8, 2.0], FloatList(gt=0, max_len=10),
                                  "plain-SGD learning rates; with several, chosen on the validation set"),
        "finetune_batch_size": Param(50, Int(min=1), "minibatch size of fine-tuning"),
        "select_seeds": Param(2, Int(min=2), "seeds that choose among several rates (per depth and initialisation)"),
        "stream_examples": Param(60000, Int(min=1, max=MAX_STEPS), "distorted digits in the stream (each seen once)"),
        "stream_lr": Param(0.8, Float(gt=0), "learning rate on the stream"),
        "stream_batch_size": Param(50, Int(min=1), "minibatch size on the stream"),
        "member_chunk": Param(400, Int(min=2, max=SEED_STRIDE), "at most this many seeds per batched run (limits memory)"),
    },
    rules=(_depths_increasing, _rates_distinct, _seeds_fit, _stream_batch_fits,
           fits_split("train", "pretrain_batch_size", "finetune_batch_size"), fits_memory(_memory)),
)


def start(namespace: Mapping) -> runtime.Chapter:
    """Check the notebook's parameters (``globals()`` after the parameters cell) and begin."""
    return runtime.start(SPEC, namespace)


# ----------------------------------------------------------------------------------------- checks
def _check_init(init: Any) -> str:
    if init not in INITS:
        raise ValueError(f"init={init!r} is not allowed; use one of {', '.join(map(repr, INITS))}")
    return init


def _check_depths(depths: Any) -> list[int]:
    if isinstance(depths, (str, bytes)) or not isinstance(depths, Sequence) or not depths:
        raise ValueError(f"depths={depths!r} is not allowed; give a non-empty list of ints in 1..10")
    for d in depths:
        require_int("depths entry", d, 1, 10)
    if len(set(depths)) != len(depths) or list(depths) != sorted(depths):
        raise ValueError(f"depths={list(depths)!r} is not allowed; give distinct depths in increasing order")
    return list(depths)


def _check_lrs(lrs: Any) -> list[float]:
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence) or not lrs:
        raise ValueError(f"lrs={lrs!r} is not allowed; give a non-empty list of learning rates > 0")
    out = [require_float("lrs entry", lr, gt=0) for lr in lrs]
    if len(set(out)) != len(out):
        raise ValueError(f"lrs={list(lrs)!r} is not allowed; the learning rates must be distinct")
    return out


# ----------------------------------------------------------------------------------------- networks
def truncated(stack: Stack, depth: int) -> Stack:
    """The first ``depth`` layers of ``stack`` (the same tensors, not copies)."""
    require_int("depth", depth, 1, len(stack.layers))
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
    require_int("depth", depth, 1)
    require_int("width", width, 1)
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
    ``config.lr`` is ignored (replaced by the rates). split: a :class:`pretraining.core.data.DataSplit`.

    Returns {"lr": chosen rate, "valid_error": (S,), "test_error": (S,), "train_nll": per epoch
    (S,) lists, "grid": {rate: mean validation error of the selection seeds, or None if diverged}}.
    """
    lrs = _check_lrs(lrs)
    seeds = validate_seeds(seeds)
    require_int("select_seeds", select_seeds, 1)

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
    """One (initialisation, depth) of the study: per-seed errors (fractions, S each) and the chosen rate.

    train_nll: per epoch the S members' mean training cross-entropy; grid: {rate: mean validation
    error of the selection seeds, or None if diverged} (empty with a single rate).
    """

    init: str
    depth: int
    test_error: list[float]
    valid_error: list[float]
    lr: float
    train_nll: list[list[float]]
    grid: dict[str, float | None]


@dataclass
class StreamResult:
    """One-hidden-layer nets trained on a stream of distorted digits, one initialisation.

    test_error: S per-seed errors; steps: the last minibatch of each logged block; train_nll: per
    block the S members' mean training cross-entropy.
    """

    init: str
    test_error: list[float]
    steps: list[int]
    train_nll: list[list[float]]


class DepthStudy:
    """The whole study of one chapter run: stacks (lazy, cached), settings and stream runs (cached).

    ch: the running :class:`pretraining.book.runtime.Chapter` (data, device, cache). depths: increasing
    numbers of hidden layers; width: units per hidden layer; seeds: one per member; rbm, dae:
    pre-training configurations (one stack of ``max(depths)`` layers per kind); finetune: the
    fine-tuning configuration (its ``lr`` is replaced by ``lrs``); select_seeds: seeds used to
    choose among several rates; member_chunk: at most this many members per batched run (memory).
    """

    def __init__(self, ch, *, depths: Sequence[int], width: int, seeds: Sequence[int],
                 rbm: RBMConfig, dae: DAEConfig, finetune: FinetuneConfig, lrs: Sequence[float],
                 select_seeds: int, member_chunk: int, progress: bool = True):
        self.depths = _check_depths(depths)
        self.width = require_int("width", width, 1)
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
        self.select_seeds = require_int("select_seeds", select_seeds, 1)
        self.member_chunk = require_int("member_chunk", member_chunk, 1)
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

        tensors, meta = self.ch.cached(f"depthstudy_{init}_{depth}", key, compute, version=1)
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
        require_int("n_examples", n_examples, 1)
        require_int("batch_size", batch_size, 1, n_examples)
        require_int("stream_seed", stream_seed, 0)
        lr = require_float("lr", lr, gt=0)
        if not isinstance(distortion, DistortionConfig):
            raise TypeError(f"distortion={distortion!r} must be a DistortionConfig")
        n_steps = n_examples // batch_size
        config = dataclasses.replace(self.finetune_config, lr=lr, batch_size=batch_size)
        key = {"init": init, "width": self.width, "seeds": self.seeds, "n_steps": n_steps,
               "batch_size": batch_size, "lr": lr, "stream_seed": stream_seed,
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

        tensors, meta = self.ch.cached(f"depthstudy_stream_{init}", key, compute, version=1)
        return StreamResult(init, tensors["test_error"].tolist(), meta["steps"], meta["train_nll"])


def make_study(ch: runtime.Chapter, *, progress: bool = True) -> DepthStudy:
    """The :class:`DepthStudy` of the chapter's parameters: its seeds by the book's one seed rule."""
    p = ch.params
    configs = stack_configs(p)
    return DepthStudy(
        ch, depths=p["depths"], width=p["width"], seeds=member_seeds(p["seed"], p["n_seeds"]),
        rbm=configs["rbm"], dae=configs["dae"],
        finetune=FinetuneConfig(epochs=p["finetune_epochs"], lr=p["finetune_lr_grid"][0],
                                batch_size=p["finetune_batch_size"]),
        lrs=p["finetune_lr_grid"], select_seeds=p["select_seeds"], member_chunk=p["member_chunk"],
        progress=progress)


# ----------------------------------------------------------------------------------------- run
@dataclass
class Result:
    """What the chapter computed.

    settings: {init: {depth: SettingResult}}; streams: {"random", "rbm": StreamResult};
    errors: {init: {depth: S test errors}}; stream_errors: {init: S test errors on the clean test
    digits after the stream}; stats: :func:`study_statistics` of ``errors``; checks: the claim's
    tests (:func:`claim_checks` and :func:`stream_check`); deep: the depth the claim calls deep
    (:func:`deep_depth`); timing: seconds of fine-tuning ("train_s") and of the stream ("stream_s"),
    and the cache's hits and misses after the fine-tuning.
    """

    settings: dict[str, dict[int, SettingResult]]
    streams: dict[str, StreamResult]
    errors: dict[str, dict[int, list[float]]]
    stream_errors: dict[str, list[float]]
    stats: dict[str, Any]
    checks: list[dict[str, Any]]
    deep: int
    timing: dict[str, float] = field(default_factory=dict)


def run(ch: runtime.Chapter) -> Result:
    """Pre-train, fine-tune every (initialisation, depth) over all seeds, train on the stream (all cached)."""
    p = ch.params
    study = make_study(ch)
    t0 = time.perf_counter()
    settings = study.run_all()
    timing = {"train_s": time.perf_counter() - t0, "hits": ch.store.hits, "misses": ch.store.misses}
    t0 = time.perf_counter()
    streams = {i: study.stream(i, n_examples=p["stream_examples"], batch_size=p["stream_batch_size"],
                               lr=p["stream_lr"], stream_seed=p["seed"]) for i in STREAM_INITS}
    timing["stream_s"] = time.perf_counter() - t0
    return analyse(settings, streams, p["depths"], timing=timing)


def analyse(settings: Mapping[str, Mapping[int, SettingResult]], streams: Mapping[str, StreamResult],
            depths: Sequence[int], *, timing: Mapping[str, float] | None = None) -> Result:
    """The statistics and the claim's tests of a study's results (see :class:`Result`)."""
    depths = _check_depths(depths)
    errors = {init: {d: list(settings[init][d].test_error) for d in depths} for init in INITS}
    stream_errors = {i: list(streams[i].test_error) for i in STREAM_INITS}
    st = study_statistics(errors)
    deep = deep_depth(depths)
    checks = claim_checks(st, deep=deep) + [stream_check(stream_errors["random"], stream_errors["rbm"], "rbm")]
    return Result(settings={i: dict(v) for i, v in settings.items()}, streams=dict(streams), errors=errors,
                  stream_errors=stream_errors, stats=st, checks=checks, deep=deep, timing=dict(timing or {}))


def deep_depth(depths: Sequence[int]) -> int:
    """The depth the claim calls "deep": 4 when it was run, else the deepest one run."""
    return 4 if 4 in depths else depths[-1]


# ----------------------------------------------------------------------------------------- the sections
def setup(ch: runtime.Chapter) -> None:
    """How the experiment is run: the data, the networks, the fine-tuning, the scale beside the paper's."""
    p, data = ch.params, ch.data
    protocol = ERHAN2010_PROTOCOL.numbers
    ch.glue("n_train", len(data.train))  # numbers formatted by the text role ({glue:text}`n_train:,d`)
    ch.glue("n_valid", len(data.valid))
    ch.glue("n_test", len(data.test))
    ch.glue("dataset_name", p["dataset"], fmt="s")
    ch.glue("width", p["width"], fmt="d")
    ch.glue("depths_text", depths_text(p["depths"]), fmt="s")
    ch.glue("max_depth", p["depths"][-1], fmt="d")
    ch.glue("dae_noise", p["dae_noise"], fmt=".0%")
    ch.glue("rbm_epochs", p["rbm_epochs"], fmt="d")
    ch.glue("dae_epochs", p["dae_epochs"], fmt="d")
    ch.glue("n_seeds", p["n_seeds"], fmt="d")
    ch.glue("finetune_batch_size", p["finetune_batch_size"], fmt="d")
    ch.glue("finetune_epochs", p["finetune_epochs"], fmt="d")
    ch.glue("rates_text", rates_text(p["finetune_lr_grid"], p["select_seeds"]), fmt="s")
    flops = finetune_flops(p["depths"], p["width"], len(data.train), p["finetune_epochs"], p["n_seeds"])
    ch.glue("finetune_tflop", flops / 1e12, fmt=".1f")
    ch.glue("n_networks", p["n_seeds"] * len(p["depths"]) * len(INITS))
    ch.glue("ref_seeds", protocol["seeds_per_depth"], fmt="d")
    ch.glue("ref_train", protocol["train_digits"])
    ch.glue("ref_pretrain", protocol["pretrain_epochs_per_layer"], fmt="d")
    ch.glue("ref_finetune", protocol["finetune_epochs"], fmt="d")
    ch.glue("ref_width", protocol["width"], fmt="d")


def training(ch: runtime.Chapter, res: Result) -> None:
    """The training's wall time and cache use; the learning rates chosen on the validation set."""
    t = res.timing
    print(f"pre-training and fine-tuning: {t.get('train_s', 0.0):.0f} s "
          f"(cache: {t.get('hits', 0)} hits, {t.get('misses', 0)} misses)")
    if len(ch.params["finetune_lr_grid"]) > 1:
        runtime.show(rates_frame(res.settings).style.format("{:g}")
                     .set_caption("Learning rate chosen on the validation set"))


def error_by_depth(ch: runtime.Chapter, res: Result) -> None:
    """Box plots of the test error per depth and initialisation; the settings that did not learn."""
    p = ch.params
    lar = LAROCHELLE2009_TABLE3.numbers["error"]
    reference = None
    if p["dataset"] == "mnist-10k":
        reference = {LABELS[i]: {d: v for d, v in lar[i].items() if d in p["depths"]} for i in ("random", "rbm")}
        reference = {k: v for k, v in reference.items() if v}
    fig, failed = plot_error_by_depth(
        res.errors, reference=reference,
        title=f"Test error of {p['n_seeds']} networks per box, {p['width']} units per layer ({p['dataset']})")
    runtime.show(fig)
    ch.glue("failed_sentence", failed_sentence(failed), fmt="s")


def shallow_and_deep(ch: runtime.Chapter, res: Result) -> None:
    """Histograms of the test errors at 1 hidden layer and at the deep depth, as in the lecture."""
    p, depths, deep = ch.params, ch.params["depths"], res.deep
    ch.glue("deep", deep, fmt="d")
    ch.glue("hist_sentence_1", hist_sentence(res.errors, depths[0]) if depths[0] == 1 else "(depth 1 was not run)",
            fmt="s")
    ch.glue("hist_sentence_deep", hist_sentence(res.errors, deep), fmt="s")
    for d in sorted({depths[0], deep}):
        fig = figures.histograms({LABELS[i]: 100 * np.asarray(res.errors[i][d]) for i in INITS}, bins=20,
                                 xlabel="test error (%)")
        fig.axes[0].set_title(f"{_layers(d)}: test error of {p['n_seeds']} seeds per initialisation")
        runtime.show(fig)


def statistics_table(ch: runtime.Chapter, res: Result) -> None:
    """Mean, median, std with bootstrap intervals; rank test, P(beats random) and overlap per depth."""
    runtime.show(statistics_frame(res.stats, ch.params["depths"]).style.format(
        {"mean %": "{:.2f}", "median %": "{:.2f}", "std %": "{:.2f}", "Mann–Whitney p": "{:.2g}",
         "P(beats random)": "{:.2f}", "overlap": "{:.2f}"},
        na_rep="—").set_caption(f"Test error over {ch.params['n_seeds']} seeds"))


def best_depths(ch: runtime.Chapter, res: Result) -> None:
    """The best depth of each initialisation, with its bootstrap probability."""
    for i in INITS:
        ch.glue(f"best_{i}", best_depth_text(res.stats["best_depth"].get(i)), fmt="s")


def distorted_stream(ch: runtime.Chapter, res: Result) -> None:
    """One hidden layer trained on the stream of distorted digits: histograms and learning curves."""
    p = ch.params
    print(f"stream runs: {res.timing.get('stream_s', 0.0):.0f} s")
    ch.glue("stream_examples", p["stream_examples"])
    ch.glue("stream_batch_size", p["stream_batch_size"], fmt="d")
    ch.glue("stream_lr", p["stream_lr"], fmt="g")
    ch.glue("stream_sentence", stream_sentence(res.stream_errors["random"], res.stream_errors["rbm"], "rbm"), fmt="s")
    fig = figures.histograms({LABELS[i]: 100 * np.asarray(v) for i, v in res.stream_errors.items()}, bins=20,
                             xlabel="test error (%)")
    fig.axes[0].set_title(f"1 hidden layer trained on {p['stream_examples']:,} distorted digits: "
                          f"{p['n_seeds']} seeds each")
    runtime.show(fig, plot_stream_curves(res.streams, p["stream_batch_size"]))


def side_by_side(ch: runtime.Chapter, res: Result) -> None:
    """This run's medians beside the papers' numbers, and where the papers' numbers come from."""
    ref = pd.DataFrame(reference_rows(res.stats["summary"])).set_index("hidden layers")
    runtime.show(ref.style.format(precision=2, na_rep="—").set_caption("Test error (%)"))
    for key, r in (("erhan2010_fig1", ERHAN2010_FIG1), ("erhan2010_table1", ERHAN2010_TABLE1),
                   ("erhan2010_protocol", ERHAN2010_PROTOCOL), ("larochelle2009_table3", LAROCHELLE2009_TABLE3)):
        print(f"{key}: {r.citation} — {r.data or r.note}")


# ----------------------------------------------------------------------------------------- the claim
def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C3 (DESIGN.md) per pre-training kind, each tested on this run's numbers.

    Keys "a-rbm", "a-dae", "b-rbm", ..., "d" (no pre-training), ..., "f-rbm" (the stream), from
    :attr:`Result.checks`; a part whose rank test cannot reach p < ALPHA with the seeds run, or
    whose depths were not run, is not tested.
    """
    order = {k: i for i, k in enumerate(INITS)}
    out = []
    for c in sorted(res.checks, key=lambda c: (c["part"], order[c["kind"]])):
        key = c["part"] if c["kind"] == "random" else f"{c['part']}-{c['kind']}"
        # (d) and (e) compare with 2 layers: when no deeper depth was run they name the claim's 4
        claim = PART_NAMES[c["part"]].format(deep=res.deep if c["part"] in "abcf" or res.deep > 2 else 4)
        if c["kind"] != "random":
            claim += f" [{LABELS[c['kind']]}]"
        out.append(claims.part(key, claim, c["holds"], c["text"], **c["numbers"]))
    return out


def finish(ch: runtime.Chapter, res: Result) -> dict:
    """The claim's parts and verdict, the scale note (glued as ``why``), the results file, the provenance."""
    p = ch.params
    parts = claim_parts(ch, res)
    n_hold = sum(x.status == claims.HOLDS for x in parts)
    n_tested = sum(x.status != claims.NOT_TESTED for x in parts)
    ch.glue("why", why_sentence(claims.verdict(parts), p, len(ch.data.train)), fmt="s")
    return ch.finish(results_record(p, res), parts=parts, finding=finding_sentence(p, res, n_hold, n_tested))


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


def min_rank_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney test of n_a against n_b values can give.

    That is every value of one sample below every value of the other: 2 / C(n_a + n_b, n_a)
    (at most 1). 2 against 2 seeds: 1/3; 3 against 3: 0.1; 4 against 4: 0.029.
    """
    require_int("n_a", n_a, 1)
    require_int("n_b", n_b, 1)
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def _unreachable(n_a: int, n_b: int, alpha: float) -> str | None:
    """Why a rank test of n_a against n_b values cannot reach p < alpha, or None when it can."""
    p_min = min_rank_p(n_a, n_b)
    if p_min < alpha:
        return None
    seeds = f"{n_a} seeds" if n_a == n_b else f"{n_a} and {n_b} seeds"
    return f"with {seeds} no rank test can reach p < {alpha:g} (the smallest possible p is {p_min:.2g})"


def claim_checks(st: Mapping[str, Any], *, alpha: float = ALPHA, max_overlap: float = MAX_OVERLAP,
                 deep: int = 4) -> list[dict[str, Any]]:
    """The claim's parts tested on the statistics of :func:`study_statistics`.

    One dict per part and pre-training kind: {"part", "kind", "holds": True/False/None, "text": a
    sentence with the numbers, "numbers": the deciding numbers}. None: the depths needed are
    missing, or the part needs a rank test at level ``alpha`` that the numbers of seeds can never
    pass (:func:`min_rank_p`; the text says so). The parts: (a) pre-training lowers the error of 1
    layer (lower mean, Mann-Whitney p < alpha); (b) the gain (difference of means) is larger at
    depth ``deep`` (or the deepest depth if shallower) than at 1; (c) the distributions barely
    overlap, the pre-trained one below (overlap <= max_overlap and P(pre-trained < random) > 0.5 at
    every depth); (d) without pre-training 2 layers is best and ``deep`` is worse than 2 (p < alpha);
    (e) with pre-training ``deep`` has a lower mean than 2 (p < alpha) and a smaller std than random
    at ``deep``.
    """
    summ = st["summary"]
    if "random" not in summ:
        raise ValueError("claim_checks needs the 'random' initialisation in the statistics")
    rnd = summ["random"]
    rnd_depths = sorted(rnd)
    d_deep = deep if deep in rnd_depths else rnd_depths[-1]
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    checks: list[dict[str, Any]] = []
    needs_two = f"needs depths 2 and {deep}" if deep != 2 else "needs depth 2 and a deeper one"

    def add(part: str, kind: str, holds: bool | None, text: str, test_n: tuple[int, int] | None = None,
            **numbers: Any) -> None:
        # test_n: the sample sizes of the rank test the part needs at level alpha
        reason = None if holds is None or test_n is None else _unreachable(*test_n, alpha)
        if reason:
            holds, text = None, f"{text}; {reason}"
        checks.append({"part": part, "kind": kind, "holds": None if holds is None else bool(holds),
                       "text": text, "numbers": numbers})

    if deep != 2 and 2 in rnd and deep in rnd and "random" in st["best_depth"]:
        best, p = st["best_depth"]["random"], st["vs_two"]["random"][deep]["p"]
        worse = rnd[deep]["mean"] > rnd[2]["mean"] and p < alpha
        add("d", "random", best["best"] == 2 and worse,
            f"without pre-training the best depth is {best['best']} (lowest mean in "
            f"{100 * best['probability']:.0f} % of bootstrap replicates); {deep} layers {pct(rnd[deep]['mean'])} "
            f"vs 2 layers {pct(rnd[2]['mean'])} (Mann-Whitney p = {p:.2g})",
            (rnd[deep]["n"], rnd[2]["n"]), best_depth=best["best"], best_probability=best["probability"],
            mean_deep=rnd[deep]["mean"], mean_2=rnd[2]["mean"], p=p)
    else:
        add("d", "random", None, needs_two)
    for kind in (k for k in summ if k != "random"):
        s, mw, ov = summ[kind], st["mannwhitney"][kind], st["overlap"][kind]
        name = LABELS[kind]
        if 1 in s and 1 in rnd:
            add("a", kind, s[1]["mean"] < rnd[1]["mean"] and mw[1]["p"] < alpha,
                f"1 layer: {name} {pct(s[1]['mean'])} vs {pct(rnd[1]['mean'])} without (Mann-Whitney p = {mw[1]['p']:.2g})",
                (s[1]["n"], rnd[1]["n"]), mean=s[1]["mean"], mean_random=rnd[1]["mean"], p=mw[1]["p"])
        else:
            add("a", kind, None, "needs depth 1")
        if 1 in s and d_deep in s and d_deep != 1:
            g1, gd = rnd[1]["mean"] - s[1]["mean"], rnd[d_deep]["mean"] - s[d_deep]["mean"]
            add("b", kind, gd > g1, f"{name} lowers the mean error by {100 * g1:.2f} percentage points at 1 hidden layer and "
                f"by {100 * gd:.2f} at {d_deep}", gain_1=g1, gain_deep=gd, deep=d_deep)
        else:
            add("b", kind, None, "needs depth 1 and a deeper one")
        worst = max(ov, key=lambda d: ov[d] if mw[d]["effect_size"] > 0.5 else 2 - ov[d])
        least = min(mw[d]["effect_size"] for d in mw)
        beats = "in every pair of seeds" if least == 1 else f"in at least {100 * least:.0f} % of the pairs of seeds"
        add("c", kind, all(ov[d] <= max_overlap and mw[d]["effect_size"] > 0.5 for d in ov),
            f"{name} beats no pre-training {beats} at every depth; the largest overlap is {ov[worst]:.2f} "
            f"({_layers(worst)}; 0 = none, 1 = identical)",
            max_overlap=ov[worst], max_overlap_depth=worst, min_p_beats_random=least)
        if deep != 2 and 2 in s and deep in s and deep in rnd:
            p = st["vs_two"][kind][deep]["p"]
            add("e", kind, s[deep]["mean"] < s[2]["mean"] and p < alpha and s[deep]["std"] < rnd[deep]["std"],
                f"{name}: {deep} layers {pct(s[deep]['mean'])} vs 2 layers {pct(s[2]['mean'])} (Mann-Whitney "
                f"p = {p:.2g}); std at {deep} layers {pct(s[deep]['std'])} vs {pct(rnd[deep]['std'])} without",
                (s[deep]["n"], s[2]["n"]), mean_deep=s[deep]["mean"], mean_2=s[2]["mean"], p=p,
                std_deep=s[deep]["std"], std_deep_random=rnd[deep]["std"])
        else:
            add("e", kind, None, needs_two)
    return checks


def stream_sentence(random: Sequence[float], pretrained: Sequence[float], kind: str = "rbm") -> str:
    """The stream's result in one sentence: both means, the Mann-Whitney p and the overlap."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not allowed; use 'rbm' or 'dae'")
    r, k = np.asarray(random, dtype=float), np.asarray(pretrained, dtype=float)
    mw = stats.mann_whitney(k, r)
    return (f"distorted stream, 1 layer: {LABELS[kind]} {100 * k.mean():.2f} % vs {100 * r.mean():.2f} % "
            f"without (Mann-Whitney p = {mw['p']:.2g}, overlap {stats.overlap(k, r):.2f})")


def stream_check(random: Sequence[float], pretrained: Sequence[float], kind: str = "rbm", *,
                 alpha: float = ALPHA) -> dict[str, Any]:
    """Part (f) of the claim: on the distorted stream, pre-trained one-layer nets have the lower
    mean error (Mann-Whitney p < alpha). Same keys as the dicts of :func:`claim_checks` (None when
    the numbers of seeds can never reach p < alpha)."""
    text = stream_sentence(random, pretrained, kind)
    r, k = np.asarray(random, dtype=float), np.asarray(pretrained, dtype=float)
    mw = stats.mann_whitney(k, r)
    holds: bool | None = bool(k.mean() < r.mean() and mw["p"] < alpha)
    reason = _unreachable(k.size, r.size, alpha)
    if reason:
        holds, text = None, f"{text}; {reason}"
    return {"part": "f", "kind": kind, "holds": holds, "text": text,
            "numbers": {"mean": float(k.mean()), "mean_random": float(r.mean()), "p": mw["p"],
                        "overlap": stats.overlap(k, r)}}


def reference_rows(summary: Mapping[str, Mapping[int, Mapping[str, float]]]) -> list[dict[str, Any]]:
    """One row per depth: this run's medians (percent) beside the papers' numbers.

    summary: :func:`study_statistics`'s "summary". The papers' numbers come from
    :mod:`pretraining.analysis.references`. Missing entries are None.
    """
    fig1 = ERHAN2010_FIG1.numbers["median"]
    tab1 = ERHAN2010_TABLE1.numbers
    lar = LAROCHELLE2009_TABLE3.numbers["error"]
    depths = sorted({d for per in summary.values() for d in per} | set(fig1["pretrained"]))
    rows = []
    for d in depths:
        row: dict[str, Any] = {"hidden layers": d}
        for init in INITS:
            s = summary.get(init, {}).get(d)
            row[f"this book, {init}: median"] = None if s is None else 100 * s["median"]
        row["Erhan 2010 Fig. 1 median, random"] = fig1["random"].get(d)
        row["Erhan 2010 Fig. 1 median, pre-trained"] = fig1["pretrained"].get(d)
        for init in ("random", "dae"):
            m, sd = tab1["mean"][init].get(d), tab1["std"][init].get(d)
            row[f"Erhan 2010 Table 1, {init}: mean (std)"] = None if m is None else f"{m:.2f} ({sd:.2f})"
        for init in ("random", "rbm", "autoassociator"):
            row[f"Larochelle 2009 Table 3, {init}"] = lar[init].get(d)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------- text and tables
def finetune_flops(depths: Sequence[int], width: int, n_train: int, epochs: int, n_seeds: int, *,
                   n_inits: int = len(INITS), n_inputs: int = 784, n_classes: int = 10) -> float:
    """FLOPs of the study's fine-tuning: 6 x weights x examples x epochs, summed over all networks.

    A net of depth d has n_inputs * width + (d - 1) * width^2 + n_classes * width weights (biases
    left out); each training example costs about 6 FLOPs per weight (forward and backward).
    """
    _check_depths(depths)
    for name, v in (("width", width), ("n_train", n_train), ("epochs", epochs), ("n_seeds", n_seeds),
                    ("n_inits", n_inits), ("n_inputs", n_inputs), ("n_classes", n_classes)):
        require_int(name, v, 1)
    n_params = {d: n_inputs * width + (d - 1) * width * width + n_classes * width for d in depths}
    return float(sum(6 * n_params[d] * n_train * epochs * n_seeds for d in depths) * n_inits)


def depths_text(depths: Sequence[int]) -> str:
    """``[1, 2, 4]`` -> ``"1, 2 or 4"``."""
    return ", ".join(map(str, depths[:-1])) + f" or {depths[-1]}" if len(depths) > 1 else str(depths[0])


def rates_text(lrs: Sequence[float], select_seeds: int) -> str:
    """How the fine-tuning rate is set: the one rate, or the grid and how it is chosen."""
    if len(lrs) == 1:
        return f"{lrs[0]:g}"
    return ("chosen per depth and initialisation among " + ", ".join(f"{r:g}" for r in lrs)
            + f" by the mean validation error of the first {select_seeds} seeds")


def did_not_learn(medians: Mapping[Any, float], factor: float = FAILED_FACTOR) -> dict[Any, float]:
    """The settings whose median error is far above all others: more than ``factor`` times the
    median of all the medians. medians: {setting: median error}; returns {setting: median}."""
    require_float("factor", factor, gt=1)
    typical = float(np.median(list(medians.values())))
    return {k: m for k, m in medians.items() if m > factor * typical}


def failed_sentence(failed: Mapping[tuple[str, int], float]) -> str:
    """The settings that did not learn ({(group label, depth): median %}) in one sentence."""
    if not failed:
        return "Every setting learned: no median is far above the others."
    text = "; ".join(f"{g} with {_layers(d)} (median {m:.1f} %)"
                     for (g, d), m in sorted(failed.items(), key=lambda kv: kv[0][1]))
    return f"Did not learn in this run: {text}."


def plot_error_by_depth(errors: Mapping[str, Mapping[int, Sequence[float]]], *,
                        reference: Mapping[str, Mapping[int, float]] | None = None,
                        title: str = "") -> tuple[Figure, dict[tuple[str, int], float]]:
    """Box plots of the test error (percent) per depth and initialisation, the settings that did
    not learn drawn off the top of the axis with an arrow and their median.

    errors: {init: {depth: S errors as fractions}}; reference: {group label: {depth: error %}}
    (diamonds, see :func:`pretraining.analysis.figures.box_by_group`). Returns the figure and
    {(group label, depth): median %} of the settings that did not learn (:func:`did_not_learn`).
    """
    box_data = {LABELS[i]: {d: 100 * np.asarray(v) for d, v in per.items()} for i, per in errors.items()}
    fig = figures.box_by_group(box_data, xlabel="hidden layers", ylabel="test error (%)", reference=reference)
    ax = fig.axes[0]
    medians = {(g, d): float(np.median(v)) for g, per in box_data.items() for d, v in per.items()}
    failed = did_not_learn(medians)
    depths = sorted({d for per in box_data.values() for d in per})
    with figures.styled():
        if failed:
            kept = np.concatenate([v for g, per in box_data.items() for d, v in per.items() if (g, d) not in failed]
                                  + [np.asarray(list(r.values()), dtype=float) for r in (reference or {}).values()])
            top = float(kept.max()) * 1.3
            bottom = 0.9 * float(kept.min())
            ax.set_ylim(bottom, top)
            groups = list(box_data)
            colours = dict(zip(groups, sns.color_palette(n_colors=len(groups))))
            for (g, d), m in failed.items():
                x = depths.index(d) + (groups.index(g) - (len(groups) - 1) / 2) * 0.8 / len(groups)
                ax.annotate(f"{g}:\nmedian {m:.0f} %\n(did not learn)", xy=(x, top),
                            xytext=(x, top - 0.25 * (top - bottom)), ha="center", va="center", fontsize=9,
                            color=colours[g], arrowprops={"arrowstyle": "-|>", "color": colours[g], "lw": 1.5})
        ax.set_title(title)
    return fig, failed


def hist_sentence(errors: Mapping[str, Mapping[int, Sequence[float]]], depth: int) -> str:
    """At ``depth``: how often each kind of pre-training beats no pre-training over all pairs of
    seeds (:func:`pretraining.analysis.stats.prob_less`), and the medians."""
    r = np.asarray(errors["random"][depth])
    parts = []
    for kind in KINDS:
        k = np.asarray(errors[kind][depth])
        parts.append(f"{LABELS[kind]} beats no pre-training in {100 * stats.prob_less(k, r):.0f} % of the pairs of "
                     f"seeds (medians {100 * np.median(k):.2f} % vs {100 * np.median(r):.2f} %)")
    return "; ".join(parts)


def statistics_frame(st: Mapping[str, Any], depths: Sequence[int]) -> pd.DataFrame:
    """The statistics table: one row per (initialisation, depth), errors in percent, the rank test
    against no pre-training, P(beats random) and the overlap for the pre-trained rows."""
    rows = []
    for i in INITS:
        for d in depths:
            s = st["summary"][i][d]
            row = {"initialisation": LABELS[i], "hidden layers": d, "mean %": 100 * s["mean"],
                   "95% CI of mean": f"{100 * s['ci95'][0]:.2f}–{100 * s['ci95'][1]:.2f}",
                   "median %": 100 * s["median"],
                   "95% CI of median": "{:.2f}–{:.2f}".format(*(100 * v for v in st["median_ci95"][i][d])),
                   "std %": 100 * s["std"]}
            if i != "random":
                mw = st["mannwhitney"][i][d]
                row.update({"Mann–Whitney p": mw["p"], "P(beats random)": mw["effect_size"],
                            "overlap": st["overlap"][i][d]})
            rows.append(row)
    return pd.DataFrame(rows).set_index(["initialisation", "hidden layers"])


def rates_frame(settings: Mapping[str, Mapping[int, SettingResult]]) -> pd.DataFrame:
    """The learning rate chosen per depth (rows) and initialisation (columns)."""
    rates = pd.DataFrame({LABELS[i]: {d: r.lr for d, r in settings[i].items()} for i in INITS})
    rates.index.name = "hidden layers"
    return rates


def best_depth_text(best: Mapping[str, Any] | None) -> str:
    """:func:`pretraining.analysis.stats.best_setting` over depths as text (None: one depth run)."""
    if not best:
        return "only one depth was run"
    return f"{_layers(best['best'])} (in {100 * best['probability']:.0f} % of the bootstrap replicates)"


def plot_stream_curves(streams: Mapping[str, StreamResult], batch_size: int) -> Figure:
    """Training cross-entropy (mean over seeds) against distorted digits seen, one line per initialisation."""
    require_int("batch_size", batch_size, 1)
    with figures.styled():
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, r in streams.items():
            ax.plot(np.asarray(r.steps) * batch_size, np.mean(r.train_nll, axis=1), label=LABELS[i])
        ax.set_xlabel("distorted digits seen")
        ax.set_ylabel("training cross-entropy (mean over seeds)")
        ax.set_title("Learning on the stream (each point: mean over a block of minibatches)")
        ax.legend()
    return fig


def why_sentence(verdict: str, p: Mapping[str, Any], n_train: int, *, alpha: float = ALPHA) -> str:
    """Why parts may fail or were not tested: too few seeds for any rank test, or this profile's scale
    beside the paper's (nothing when every tested part holds with enough seeds)."""
    protocol = ERHAN2010_PROTOCOL.numbers
    out = []
    n = p["n_seeds"]
    if min_rank_p(n, n) >= alpha:
        out.append(f"With {n} seeds no rank test can reach p < {alpha:g}, so the parts that need one were not tested.")
    if verdict != "supported":
        if p["profile"] == "paper":
            out.append("This run is at the paper's scale.")
        else:
            epochs = (f"{p['rbm_epochs']}" if p["rbm_epochs"] == p["dae_epochs"] else
                      f"{p['rbm_epochs']} (RBM) or {p['dae_epochs']} (DAE)")
            out.append(
                "Where a part fails, the likely reasons lie in the scale of this profile — "
                f"{n} seeds instead of {protocol['seeds_per_depth']}, {p['width']} units instead of about "
                f"{protocol['width']}, {epochs} + {p['finetune_epochs']} epochs instead of "
                f"{protocol['pretrain_epochs_per_layer']} + {protocol['finetune_epochs']}, {n_train:,} training digits "
                f"instead of {protocol['train_digits']:,} — so a failing part describes this scale and is not a "
                "refutation of the paper.")
    return " ".join(out)


def _best_by_init(st: Mapping[str, Any], depths: Sequence[int]) -> dict[str, int]:
    return {i: st["best_depth"][i]["best"] if st["best_depth"].get(i) else depths[0] for i in INITS}


def results_record(p: Mapping[str, Any], res: Result) -> dict[str, Any]:
    """The results file's numbers: per-seed errors, best depths, rank tests, overlaps, rates, the stream."""
    depths, st = p["depths"], res.stats
    return {
        "depths": list(depths),
        "test_error": {i: {str(d): res.errors[i][d] for d in depths} for i in INITS},
        "best_depth": _best_by_init(st, depths),
        "mannwhitney_p": {k: {str(d): st["mannwhitney"][k][d]["p"] for d in depths} for k in KINDS},
        "overlap": {k: {str(d): st["overlap"][k][d] for d in depths} for k in KINDS},
        "finetune_lr": {i: {str(d): res.settings[i][d].lr for d in depths} for i in INITS},
        "distorted_stream": res.stream_errors,
        "n_seeds": p["n_seeds"],
        "width": p["width"],
    }


def finding_sentence(p: Mapping[str, Any], res: Result, n_hold: int, n_tested: int) -> str:
    """The chapter's finding in one sentence, for the summary table."""
    count = f"{n_hold} of {n_tested} parts of the claim hold"
    if 1 not in p["depths"]:
        return count
    deep, best = res.deep, _best_by_init(res.stats, p["depths"])
    mean = lambda i, d: 100 * res.stats["summary"][i][d]["mean"]  # noqa: E731
    return (f"{p['n_seeds']} seeds per setting, {p['width']} units per layer: mean test error at 1 / {deep} hidden "
            f"layers {mean('random', 1):.2f} / {mean('random', deep):.2f} % without pre-training, "
            f"{mean('rbm', 1):.2f} / {mean('rbm', deep):.2f} % with RBMs, {mean('dae', 1):.2f} / "
            f"{mean('dae', deep):.2f} % with DAEs; best depth {best['random']} / {best['rbm']} / {best['dae']}; "
            + count)
