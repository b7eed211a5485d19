"""Chapter 3: depth, with and without pre-training, over many seeds (Erhan et al. 2010, Fig. 1-2).

The notebook ``chapters/03_depth_study.ipynb`` tells the story; this module does the work:

* :data:`SPEC` — the claim and the parameters, with the rules that tie them together;
* :func:`run` — every (initialisation, depth) fine-tuned over all seeds, and the one-layer nets on
  the stream of distorted digits (all through the artifact cache), then :func:`analyse`;
* one function per section — :func:`setup`, :func:`training`, :func:`error_by_depth`,
  :func:`shallow_and_deep`, :func:`statistics_table`, :func:`test_set_resolution`, :func:`best_depths`,
  :func:`distorted_stream`, :func:`side_by_side`;
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

The design is paired: seed s of every initialisation shares its minibatch order, and seed s's nets of
every depth start from the first k layers of one stack (random init: they share layer 1's initial
weights and the order). So every comparison between two (initialisation, depth) settings is made seed
by seed (:func:`pretraining.analysis.stats.paired_difference`: the per-seed differences, their mean
with a Student-t interval over seeds, the Wilcoxon signed-rank test), the best depth is bootstrapped
with whole seeds resampled jointly across depths, and a part tested on paired seeds needs at least
:data:`claims.MIN_PAIRS` of them (:func:`pretraining.book.claims.paired`). Every setting also stores
each seed's per-digit correctness on the test set, so the best networks of two depths can be compared
on the same digits (:func:`resolution_rows`: McNemar's test, the paired standard error of the
difference, each net's binomial standard error).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..analysis import figures, stats
from ..analysis.references import (
    ERHAN2010_FIG1,
    ERHAN2010_PROTOCOL,
    ERHAN2010_TABLE1,
    LAROCHELLE2009_TABLE3,
)
from ..book import claims, fairness, runtime
from ..book.experiments import pretrained_stack, selection_config, stack_configs, stack_work
from ..book.specs import (
    MAX_EPOCHS,
    MAX_STEPS,
    ChapterSpec,
    Float,
    FloatList,
    Int,
    IntList,
    Param,
    fits_memory,
    fits_split,
    not_allowed,
    rate_grid_rule,
    select_seeds_rule,
    selection_params,
)
from ..book.words import plural
from ..book.work import Work
from ..book.workplan import protocol_job, split_sizes, stack_jobs
from ..core.checks import require_float, require_int
from ..core.data import SPLIT_SIZES
from ..core.distort import DistortedStream, DistortionConfig, StoredStream
from ..core.memory import free_memory_bytes, members_that_fit, training_bytes
from ..core.models import Classifier, Stack
from ..core.rehearsal import Job
from ..core.selection import LONGER_RUN, SelectionConfig, choose_rate, select_and_train, setting_converged
from ..core.seeding import SEED_STRIDE, member_seeds, validate_seeds
from ..core.train import (
    DAEConfig,
    FinetuneConfig,
    RBMConfig,
    TrainingDiverged,
    evaluate,
    finetune_stream,
    non_finite,
)

__all__ = ["SPEC", "Result", "start", "run", "work", "analyse", "setup", "training", "error_by_depth",
           "shallow_and_deep", "statistics_table", "test_set_resolution", "best_depths", "distorted_stream",
           "side_by_side", "claim_parts", "finish",
           "INITS", "KINDS", "LABELS", "ALPHA", "MAX_OVERLAP", "DepthStudy", "SettingResult", "StreamResult",
           "make_study", "truncated", "initial_classifier", "deep_depth", "study_statistics",
           "directed_overlap", "claim_checks", "stream_check",
           "stream_sentence", "reference_rows", "resolution_rows", "resolution_frame", "resolution_sentence",
           "finetune_flops", "depths_text", "rates_text", "did_not_learn", "failed_sentence", "plot_error_by_depth",
           "hist_sentence", "statistics_frame", "selection_frame", "convergence_sentence",
           "needed_settings", "gate_unconverged", "convergence_reason", "best_depth_text", "plot_stream_curves",
           "why_sentence", "results_record", "finding_sentence"]

INITS = ("random", "rbm", "dae")
KINDS = ("rbm", "dae")
STREAM_INITS = ("random", "rbm")
STORED_STREAM_BYTES = 2**30  # a stream up to this size is distorted once and kept for all its runs
LABELS = {"random": "no pre-training", "rbm": "RBM pre-training", "dae": "DAE pre-training"}
ALPHA = claims.ALPHA
"""The book's level: a tested part holds when its Holm-adjusted p < ALPHA, in the claim's direction."""
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


def _run_bytes(p: Mapping, members: int) -> int:
    """Peak bytes of one batched run of ``members`` networks of the deepest stack (pre-training or fine-tuning)."""
    sizes = [784] + [p["width"]] * max(p["depths"]) + [10]
    batch = max(p["pretrain_batch_size"], p["finetune_batch_size"], p["stream_batch_size"])
    return training_bytes(members, SPLIT_SIZES[p["dataset"]][0], sizes, batch)


def _memory(p: Mapping) -> tuple[int, list[str]]:
    """Bytes of one batched run (member_chunk seeds; one when the chunk is chosen from free memory), and their drivers."""
    return _run_bytes(p, min(p["member_chunk"] or 1, p["n_seeds"])), ["n_seeds", "member_chunk", "width", "depths"]


def member_chunk(p: Mapping, device: torch.device) -> int:
    """The members per batched run: ``member_chunk`` when set, else (0) as many as fit in half of
    the device's free memory (:func:`pretraining.core.memory.members_that_fit`), at most the
    largest run of the study (every seed, or every rate x selection seed)."""
    if p["member_chunk"]:
        return p["member_chunk"]
    select = min(p["finetune_select_seeds"], p["n_seeds"])
    most = max(p["n_seeds"], select * (len(p["finetune_lr_grid"]) + p["finetune_max_extensions"]),
               select * len(p["stream_lr_grid"]))
    return members_that_fit(lambda m: _run_bytes(p, m), free_memory_bytes(device) // 2, most)


SPEC = ChapterSpec(
    "03_depth_study",
    claim="Pre-training lowers test error, more so for deep nets, with less variation; without it "
          "2 layers is best and 4 considerably worse.",
    paper=_paper_sentence(),
    params={
        "n_seeds": Param(10, Int(min=2, max=SEED_STRIDE), "networks per (depth, initialisation), at least 2 (the paper: 400)"),
        "depths": Param([1, 2, 4], IntList(min=1, max=10, max_len=10),
                        "numbers of hidden layers, increasing, each 1..10"),
        "width": Param(150, Int(min=1, max=20000), "units in every hidden layer"),
        "rbm_epochs": Param(10, Int(min=1, max=MAX_EPOCHS), "pre-training epochs per RBM layer"),
        "dae_epochs": Param(10, Int(min=1, max=MAX_EPOCHS), "pre-training epochs per denoising auto-encoder layer"),
        "rbm_lr": Param(0.05, Float(gt=0), "CD-1 learning rate of the RBMs (momentum 0.5, weight decay 2e-4)"),
        "dae_lr": Param(0.05, Float(gt=0), "SGD learning rate of the denoising auto-encoders (tied weights)"),
        "dae_noise": Param(0.25, Float(min=0, lt=1), "fraction of the auto-encoders' inputs set to 0, in [0, 1)"),
        "pretrain_batch_size": Param(50, Int(min=1), "minibatch size of pre-training"),
        **selection_params(grid=[0.25, 0.5946, 1.414, 3.364, 8.0], epochs=60, patience=4),
        "finetune_batch_size": Param(50, Int(min=1), "minibatch size of fine-tuning"),
        "stream_examples": Param(60000, Int(min=1, max=MAX_STEPS), "distorted digits in the stream (each seen once)"),
        "stream_lr_grid": Param([0.25, 0.5946, 1.414, 3.364, 8.0], FloatList(gt=0, min_len=5, max_len=20),
                                "stream rates tried: at least 5, log-spaced, spanning at least 30x"),
        "stream_batch_size": Param(50, Int(min=1), "minibatch size on the stream"),
        "member_chunk": Param(0, Int(min=0, max=SEED_STRIDE),
                              "at most this many networks per batched run; 0: as many as fit in half the free memory"),
    },
    rules=(_depths_increasing, rate_grid_rule(), rate_grid_rule("stream"), select_seeds_rule(), _stream_batch_fits,
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


# ----------------------------------------------------------------------------------------- results
@dataclass
class SettingResult:
    """One (initialisation, depth) of the study, trained by the fair-fight protocol
    (:func:`pretraining.core.selection.select_and_train`).

    test_error, valid_error: per seed (S) at its best validation epoch, fractions; lr: the rate chosen
    on the selection seeds; selection: :meth:`pretraining.core.selection.Selection.record` (grid and
    its validation errors, best epochs, epochs run, training NLL, converged flags); curves:
    {"train_nll", "valid_error"}: per seed, one value per epoch run; test_correct: (S, N_test) bool,
    digit i of the test set classified correctly by seed s (None when not stored; not compared by ``==``).
    """

    init: str
    depth: int
    test_error: list[float]
    valid_error: list[float]
    lr: float
    selection: dict[str, Any]
    curves: dict[str, list[list[float]]] = field(default_factory=dict, repr=False)
    test_correct: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def converged(self) -> bool:
        """Every seed converged (trained off the plateau, validation curve flat), the rate off the grid's edge."""
        return setting_converged(self.selection)


@dataclass
class StreamResult:
    """One-hidden-layer nets trained on a stream of distorted digits, one initialisation.

    test_error: S per-seed errors; steps: the last minibatch of each logged block; train_nll: per
    block the S members' mean training cross-entropy; lr: the rate chosen on the selection seeds by
    their validation error after the stream; grid, grid_error: the rates tried and those errors.
    """

    init: str
    test_error: list[float]
    steps: list[int]
    train_nll: list[list[float]]
    lr: float = 0.0
    grid: list[float] = field(default_factory=list)
    grid_error: list[float | None] = field(default_factory=list)


class DepthStudy:
    """The whole study of one chapter run: stacks (lazy, cached), settings and stream runs (cached).

    ch: the running :class:`pretraining.book.runtime.Chapter` (data, device, cache). depths: increasing
    numbers of hidden layers; width: units per hidden layer; seeds: one per member; rbm, dae:
    pre-training configurations (one stack of ``max(depths)`` layers per kind); finetune: the
    fine-tuning configuration (its ``epochs`` the budget, its ``lr`` replaced by the selection's
    rates); selection: the fair-fight protocol of every setting; stream_grid: the stream's rates;
    member_chunk: at most this many members per batched run (memory).
    """

    def __init__(self, ch, *, depths: Sequence[int], width: int, seeds: Sequence[int],
                 rbm: RBMConfig, dae: DAEConfig, finetune: FinetuneConfig, selection: SelectionConfig,
                 stream_grid: Sequence[float], member_chunk: int, progress: bool = True):
        self.depths = _check_depths(depths)
        self.width = require_int("width", width, 1)
        self.seeds = validate_seeds(seeds)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={list(seeds)!r} is not allowed; the seeds must be distinct")
        for name, value, cls in (("rbm", rbm, RBMConfig), ("dae", dae, DAEConfig),
                                 ("finetune", finetune, FinetuneConfig), ("selection", selection, SelectionConfig)):
            if not isinstance(value, cls):
                raise TypeError(f"{name}={value!r} must be a {cls.__name__}")
        if selection.select_seeds > len(self.seeds):
            raise ValueError(f"selection.select_seeds={selection.select_seeds} is not allowed; at most the "
                             f"{len(self.seeds)} seeds")
        self.configs: dict[str, RBMConfig | DAEConfig] = {"rbm": rbm, "dae": dae}
        self.finetune_config = finetune
        self.selection = selection
        self.stream_selection = dataclasses.replace(selection, lr_grid=tuple(stream_grid))
        self.member_chunk = require_int("member_chunk", member_chunk, 1)
        self.ch, self.progress = ch, progress
        self._stacks: dict[str, Stack] = {}
        self._streams: dict[tuple, DistortedStream | StoredStream] = {}

    def __getstate__(self) -> dict[str, Any]:
        # sent to a Dask worker with a computation: without the loaded stacks and the stored stream
        # (the worker loads or makes its own) and without progress bars (the chapter's progress line
        # says what the workers compute)
        return {**self.__dict__, "_stacks": {}, "_streams": {}, "progress": False}

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
            self._stacks[key], _ = pretrained_stack(self.ch, *self._stack_args(kind, chunk), progress=self.progress)
        return self._stacks[key]

    def _stacks_of(self, init: str) -> tuple[Work, ...]:
        """The pre-trained stacks (one per seed chunk) that the networks of ``init`` start from."""
        if init == "random":
            return ()
        return tuple(stack_work(self.ch, *self._stack_args(init, c), progress=self.progress)
                     for c in range(len(self._chunks())))

    def _stack_args(self, kind: str, chunk: int) -> tuple[str, list[int], RBMConfig | DAEConfig, list[int]]:
        """(kind, hidden sizes, config, seeds) of seed chunk ``chunk``'s stack of ``kind``."""
        return kind, [self.width] * self.max_depth, self.configs[kind], self._chunks()[chunk]

    def _make(self, init: str, depth: int) -> Callable[[Sequence[int]], Classifier]:
        """make(seeds) -> the (init, depth) classifier of each seed (seeds of the study, repeats allowed)."""
        where = {s: (c, i) for c, chunk in enumerate(self._chunks()) for i, s in enumerate(chunk)}

        def make(seeds: Sequence[int]) -> Classifier:
            if init == "random":
                return initial_classifier("random", depth, self.width, seeds, device=self.ch.device)
            layers = []
            for k in range(depth):
                parts = [self.stack(init, where[s][0]).layers[k].state_dict() for s in seeds]
                rows = [where[s][1] for s in seeds]
                state = {name: torch.stack([part[name][r] for part, r in zip(parts, rows)]) for name in parts[0]}
                layers.append(type(self.stack(init, 0).layers[k]).from_state_dict(state))
            return initial_classifier(init, depth, self.width, seeds, stacks={init: Stack(init, layers)})
        return make

    def run(self, init: str, depth: int) -> SettingResult:
        """Fine-tune all seeds of (init, depth) by the fair-fight protocol (cached)."""
        return self._setting(init, depth, *self.ch.cached_many([self._setting_work(init, depth)])[0])

    def _setting_work(self, init: str, depth: int) -> Work:
        """The cached artifact of (init, depth): every seed by the fair-fight protocol."""
        _check_init(init)
        if depth not in self.depths:
            raise ValueError(f"depth={depth!r} is not allowed; the study's depths are {self.depths}")
        cfg = dataclasses.asdict(self.finetune_config)
        cfg.pop("lr")
        key = {"init": init, "depth": depth, "width": self.width, "seeds": self.seeds,
               "finetune": cfg, "selection": dataclasses.asdict(self.selection),
               "member_chunk": self.member_chunk,
               "pretrain": None if init == "random" else self._pretrain_key(init)}

        def compute():
            split = self.ch.data
            sel = select_and_train(self._make(init, depth), split.train, split.valid, self.finetune_config,
                                   self.selection, self.seeds, member_chunk=self.member_chunk,
                                   longer=LONGER_RUN, progress=self.progress)
            test = evaluate(sel.clf, split.test.x, split.test.y)
            tensors = {"test_error": test.error.cpu(), "valid_error": torch.tensor(sel.valid_error),
                       "test_correct": test.probs.argmax(-1).cpu() == split.test.y.cpu()}
            return tensors, {"lr": sel.lr, "selection": sel.record(), "curves": sel.curves}

        # version 4: early stopping once the validation curve flattened (version 3: the fair-fight protocol)
        return Work(f"depthstudy_{init}_{depth}", key, compute, 4, needs=self._stacks_of(init))

    @staticmethod
    def _setting(init: str, depth: int, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> SettingResult:
        return SettingResult(init, depth, tensors["test_error"].tolist(), tensors["valid_error"].tolist(),
                             meta["lr"], meta["selection"], meta["curves"],
                             test_correct=tensors["test_correct"].cpu().numpy().astype(bool))

    def run_all(self) -> dict[str, dict[int, SettingResult]]:
        """Every (init, depth): {init: {depth: SettingResult}}, the missing ones computed together by
        the chapter's executor."""
        settings = [(init, d) for init in INITS for d in self.depths]
        got = self.ch.cached_many([self._setting_work(i, d) for i, d in settings])
        out: dict[str, dict[int, SettingResult]] = {init: {} for init in INITS}
        for (init, d), (tensors, meta) in zip(settings, got):
            out[init][d] = self._setting(init, d, tensors, meta)
        return out

    def streams(self, inits: Sequence[str], **kwargs: Any) -> dict[str, StreamResult]:
        """:meth:`stream` for each of ``inits`` (the same keyword arguments), the missing ones computed
        together by the chapter's executor: {init: StreamResult}."""
        got = self.ch.cached_many([self._stream_work(i, **kwargs) for i in inits])
        return {i: self._stream(i, *r) for i, r in zip(inits, got)}

    def stream(self, init: str, *, n_examples: int, batch_size: int, stream_seed: int,
               distortion: DistortionConfig = DistortionConfig()) -> StreamResult:
        """One-hidden-layer nets (width units) trained online on ``n_examples`` distorted digits (cached).

        init "random" or a pre-training kind (the first layer of that kind's stack, pre-trained on
        the clean training digits). The stream (:class:`DistortedStream` of the training digits
        with ``stream_seed``) is shared by all members and seen once, in minibatches of
        ``batch_size``. The rate is chosen by :func:`pretraining.core.selection.choose_rate` on the
        selection seeds (every rate x seed one member of one batched run) by the validation error
        after the stream; then every seed runs with it. The test error is measured on the clean test digits.
        """
        return self.streams([init], n_examples=n_examples, batch_size=batch_size, stream_seed=stream_seed,
                            distortion=distortion)[init]

    def _stream_work(self, init: str, *, n_examples: int, batch_size: int, stream_seed: int,
                     distortion: DistortionConfig = DistortionConfig()) -> Work:
        """The cached artifact of :meth:`stream`."""
        _check_init(init)
        require_int("n_examples", n_examples, 1)
        require_int("batch_size", batch_size, 1, n_examples)
        require_int("stream_seed", stream_seed, 0)
        if not isinstance(distortion, DistortionConfig):
            raise TypeError(f"distortion={distortion!r} must be a DistortionConfig")
        n_steps = n_examples // batch_size
        key = {"init": init, "width": self.width, "seeds": self.seeds, "n_steps": n_steps,
               "batch_size": batch_size, "grid": list(self.stream_selection.lr_grid),
               "max_extensions": self.selection.max_extensions, "select_seeds": self.selection.select_seeds,
               "stream_seed": stream_seed, "distortion": dataclasses.asdict(distortion),
               "member_chunk": self.member_chunk, "momentum": self.finetune_config.momentum,
               "weight_decay": self.finetune_config.weight_decay,
               "pretrain": None if init == "random" else self._pretrain_key(init)}
        make = self._make(init, 1)

        def train(rates: Sequence[float], seeds: Sequence[int]) -> tuple[Classifier, dict]:
            data = self._stream_data(stream_seed, distortion, n_steps * batch_size)
            clf = make(seeds)
            config = dataclasses.replace(self.finetune_config, lr=tuple(rates), batch_size=batch_size)
            hist = finetune_stream(clf, lambda step: data.batch(step * batch_size, batch_size), n_steps,
                                   config, log_every=max(1, n_steps // 20), divergence="continue",
                                   progress=self.progress)
            return clf, hist

        def compute():
            split = self.ch.data
            sel = self.seeds[:self.selection.select_seeds]

            def trial(rates: Sequence[float]) -> list[float]:
                pairs = [(r, s) for r in rates for s in sel]
                errors = []
                for i in range(0, len(pairs), self.member_chunk):
                    chunk = pairs[i:i + self.member_chunk]
                    clf, _ = train([r for r, _ in chunk], [s for _, s in chunk])
                    error = evaluate(clf, split.valid.x, split.valid.y).error
                    errors.append(torch.where(non_finite(error, clf.weights), float("inf"), error).cpu())
                e = torch.cat(errors).view(len(rates), len(sel))
                return e.mean(1).tolist()

            rate = choose_rate(trial, self.stream_selection)
            errors, nll, steps = [], None, []
            for chunk_seeds in self._chunks():
                clf, hist = train([rate.lr] * len(chunk_seeds), chunk_seeds)
                if bool(non_finite(torch.zeros(len(chunk_seeds), device=clf.device), clf.weights).any()):
                    raise TrainingDiverged(f"the stream diverged at the chosen rate {rate.lr} for some seeds")
                errors.append(evaluate(clf, split.test.x, split.test.y).error.cpu())
                steps = hist["step"]
                nll = hist["train_nll"] if nll is None else [a + b for a, b in zip(nll, hist["train_nll"])]
            return {"test_error": torch.cat(errors)}, {"steps": steps, "train_nll": nll, "lr": rate.lr,
                                                       "grid": rate.grid, "grid_error": rate.grid_error}

        # version 2: the rate chosen from a grid on validation data
        return Work(f"depthstudy_stream_{init}", key, compute, 2, needs=self._stacks_of(init))

    @staticmethod
    def _stream(init: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> StreamResult:
        return StreamResult(init, tensors["test_error"].tolist(), meta["steps"], meta["train_nll"], meta["lr"],
                            meta["grid"], meta["grid_error"])


    def _stream_data(self, stream_seed: int, distortion: DistortionConfig,
                     n_examples: int) -> DistortedStream | StoredStream:
        """The distorted training digits every stream run reads: stored after the first run when they
        take at most :data:`STORED_STREAM_BYTES` (the same examples, distorted once), else on demand."""
        key = (stream_seed, distortion, n_examples)
        if key not in self._streams:
            stream = DistortedStream(self.ch.data.train, stream_seed, distortion)
            stored = n_examples * stream.base.x.shape[1] * 4 <= STORED_STREAM_BYTES
            self._streams[key] = stream.stored(n_examples) if stored else stream
        return self._streams[key]


def make_study(ch: runtime.Chapter, *, progress: bool = True) -> DepthStudy:
    """The :class:`DepthStudy` of the chapter's parameters: its seeds by the book's one seed rule."""
    p = ch.params
    configs = stack_configs(p)
    return DepthStudy(
        ch, depths=p["depths"], width=p["width"], seeds=member_seeds(p["seed"], p["n_seeds"]),
        rbm=configs["rbm"], dae=configs["dae"],
        finetune=FinetuneConfig(epochs=p["finetune_epochs"], lr=p["finetune_lr_grid"][0],
                                batch_size=p["finetune_batch_size"]),
        selection=selection_config(p), stream_grid=p["stream_lr_grid"], member_chunk=member_chunk(p, ch.device),
        progress=progress)


# ----------------------------------------------------------------------------------------- run
@dataclass
class Result:
    """What the chapter computed.

    settings: {init: {depth: SettingResult}}; streams: {"random", "rbm": StreamResult};
    errors: {init: {depth: S test errors}}; stream_errors: {init: S test errors on the clean test
    digits after the stream}; stats: :func:`study_statistics` of ``errors``; checks: the claim's
    tests (:func:`claim_checks` and :func:`stream_check`); deep: the depth the claim calls deep
    (:func:`deep_depth`); resolution: :func:`resolution_rows` (the best net of each depth against the
    best of 2 hidden layers on the same test digits; empty without depth 2 or stored correctness);
    timing: seconds of fine-tuning ("train_s") and of the stream ("stream_s"), and the cache's hits
    and misses after the fine-tuning.
    """

    settings: dict[str, dict[int, SettingResult]]
    streams: dict[str, StreamResult]
    errors: dict[str, dict[int, list[float]]]
    stream_errors: dict[str, list[float]]
    stats: dict[str, Any]
    checks: list[dict[str, Any]]
    deep: int
    resolution: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)


def run(ch: runtime.Chapter) -> Result:
    """Pre-train, fine-tune every (initialisation, depth) over all seeds, train on the stream (all cached)."""
    p = ch.params
    study = make_study(ch)
    t0 = time.perf_counter()
    settings = study.run_all()
    timing = {"train_s": time.perf_counter() - t0, "hits": ch.store.hits, "misses": ch.store.misses}
    t0 = time.perf_counter()
    streams = study.streams(STREAM_INITS, n_examples=p["stream_examples"], batch_size=p["stream_batch_size"],
                            stream_seed=p["seed"])
    timing["stream_s"] = time.perf_counter() - t0
    return analyse(settings, streams, p["depths"], timing=timing)


def work(p: Mapping) -> list[Job]:
    """The chapter's full run as rehearsal jobs (:mod:`pretraining.book.workplan`), from its checked
    values ``p`` (as ``ch.params``).

    Counted: per pre-training kind one stack of ``max(depths)`` layers of ``width`` units for every
    seed (trained in chunks of ``member_chunk`` seeds: ``n_seeds`` members in all); every
    (initialisation, depth) by the fair-fight protocol (:meth:`DepthStudy.run`); per stream
    initialisation (:data:`STREAM_INITS`) the stream's rate grid on the selection seeds (one pass
    of the stream, then a validation pass), every seed at the chosen rate (the selection seeds
    again: their grid runs are not reused), and the distortions of the stream: once for the chapter
    when the stream is stored (:data:`STORED_STREAM_BYTES`), else anew by every batched run (the grid
    in chunks of ``member_chunk`` members, then each chunk of seeds). A ``member_chunk`` of 0 (as
    many as fit, chosen at run time) is counted as every run's members at once.
    Not counted: grid extensions and the longer run of a setting that did not converge; the test
    evaluations, statistics and figures (analysis).
    """
    train, _, _ = split_sizes(p)
    width, depths, n = p["width"], p["depths"], p["n_seeds"]
    chunk = p["member_chunk"] or None  # 0: as many as fit, counted as all at once (the jobs' peak memory says if they do)
    jobs = []
    for kind in KINDS:
        jobs += stack_jobs("depth-study stack", kind, 784, [width] * max(depths), members=n, examples=train,
                           epochs=p[f"{kind}_epochs"], batch_size=p["pretrain_batch_size"])
    for init in INITS:
        jobs += [protocol_job(f"depth {d}, {LABELS[init]}", [784, *[width] * d, 10], p, n, chunk=chunk)
                 for d in depths]
    batch = p["stream_batch_size"]
    examples = p["stream_examples"] // batch * batch         # the whole minibatches the stream is cut into
    grid = len(p["stream_lr_grid"]) * min(p["finetune_select_seeds"], n)
    for init in STREAM_INITS:
        jobs.append(Job(f"stream, {LABELS[init]}: rate grid", "stream", (784, width, 10), members=grid,
                        examples=examples, batch_size=batch))
        jobs.append(Job(f"stream, {LABELS[init]}: all seeds", "stream", (784, width, 10), members=n,
                        examples=examples, batch_size=batch))
    if examples * 784 * 4 <= STORED_STREAM_BYTES:
        distorted = examples                                 # once, then stored for every run
    else:                                                    # anew by every batched run
        distorted = examples * len(STREAM_INITS) * (-(-grid // (chunk or grid)) + -(-n // (chunk or n)))
    jobs.append(Job("stream distortions", "distort", (784,), members=1, examples=distorted, batch_size=batch))
    return jobs


def analyse(settings: Mapping[str, Mapping[int, SettingResult]], streams: Mapping[str, StreamResult],
            depths: Sequence[int], *, timing: Mapping[str, float] | None = None) -> Result:
    """The statistics and the claim's tests of a study's results (see :class:`Result`)."""
    depths = _check_depths(depths)
    errors = {init: {d: list(settings[init][d].test_error) for d in depths} for init in INITS}
    stream_errors = {i: list(streams[i].test_error) for i in STREAM_INITS}
    st = study_statistics(errors)
    deep = deep_depth(depths)
    checks = claim_checks(st, deep=deep) + [stream_check(stream_errors["random"], stream_errors["rbm"], "rbm")]
    checks = gate_unconverged(checks, settings, depths, deep)
    return Result(settings={i: dict(v) for i, v in settings.items()}, streams=dict(streams), errors=errors,
                  stream_errors=stream_errors, stats=st, checks=checks, deep=deep,
                  resolution=resolution_rows(settings, depths), timing=dict(timing or {}))


def needed_settings(part: str, kind: str, depths: Sequence[int], deep: int) -> list[tuple[str, int]]:
    """The (initialisation, depth) settings a part of the claim compares (none for the stream, part f)."""
    d_deep = deep if deep in depths else depths[-1]
    pairs = {"a": [("random", 1), (kind, 1)],
             "b": [("random", 1), (kind, 1), ("random", d_deep), (kind, d_deep)],
             "c": [(i, d) for i in ("random", kind) for d in depths],
             "d": [("random", d) for d in depths],
             "e": [(kind, 2), (kind, deep), ("random", deep)],
             "f": []}[part]
    return [(i, d) for i, d in pairs if d in depths]


def gate_unconverged(checks: Sequence[dict[str, Any]], settings: Mapping[str, Mapping[int, SettingResult]],
                     depths: Sequence[int], deep: int) -> list[dict[str, Any]]:
    """Every tested part that compares a setting which did not converge (:attr:`SettingResult.converged`)
    becomes "not tested at this scale" (holds None), its numbers kept in the text; the rest unchanged."""
    out = []
    for c in checks:
        bad = [(i, d) for i, d in needed_settings(c["part"], c["kind"], depths, deep)
               if i in settings and d in settings[i] and not settings[i][d].converged]
        if c["holds"] is None or not bad:
            out.append(c)
            continue
        out.append({**c, "holds": None, "stat": {k: v for k, v in c["stat"].items() if k not in ("test", "p")},
                    "text": claims.not_converged_text(convergence_reason(settings, bad), c["text"])})
    return out


def convergence_reason(settings: Mapping[str, Mapping[int, SettingResult]], bad: Sequence[tuple[str, int]]) -> str:
    """Which settings did not converge and why, in words (:func:`pretraining.book.fairness.why_not`)."""
    return "; ".join(f"{LABELS[i]} at {_layers(d)} ({fairness.why_not(settings[i][d].selection)})" for i, d in bad)


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
    ch.glue("rates_text", rates_text(p), fmt="s")
    flops = finetune_flops(p["depths"], p["width"], len(data.train), p["finetune_epochs"], p["n_seeds"])
    ch.glue("finetune_tflop", flops / 1e12, fmt=".1f")
    ch.glue("n_networks", p["n_seeds"] * len(p["depths"]) * len(INITS))
    ch.glue("ref_seeds", protocol["seeds_per_depth"], fmt="d")
    ch.glue("ref_train", protocol["train_digits"])
    ch.glue("ref_pretrain", protocol["pretrain_epochs_per_layer"], fmt="d")
    ch.glue("ref_finetune", protocol["finetune_epochs"], fmt="d")
    ch.glue("ref_width", protocol["width"], fmt="d")
    ch.glue("alpha", ALPHA, fmt="g")  # the book's level, the overlap bar and the fewest paired seeds, for the text
    ch.glue("max_overlap", MAX_OVERLAP, fmt="g")
    ch.glue("min_pairs", claims.MIN_PAIRS, fmt="d")


def training(ch: runtime.Chapter, res: Result) -> None:
    """The training's wall time and cache use; the learning rates chosen on the validation set."""
    t = res.timing
    hits, misses = t.get("hits", 0), t.get("misses", 0)
    where = "in the chapter's process" if ch.executor is None else f"on {ch.executor.name}"
    ch.glue("train_note", f"Here they took {t.get('train_s', 0.0):.0f} s: {plural(misses, 'artifact')} computed "
            f"{where}, {plural(hits, 'artifact')} read from the cache.", fmt="s")
    frame = selection_frame(res.settings)
    ch.glue("convergence_sentence", convergence_sentence(res.settings), fmt="s")
    runtime.show(frame.style.format(fairness.FORMATS, na_rep="—")
                 .set_caption("How each setting was trained: the rate chosen on the validation set, the "
                              "median best epoch and epochs run over seeds, the median training NLL at the "
                              "best epoch, and how many seeds converged"))


def error_by_depth(ch: runtime.Chapter, res: Result) -> None:
    """Box plots of the test error per depth and initialisation; the settings that did not learn."""
    p = ch.params
    lar = LAROCHELLE2009_TABLE3.numbers["error"]
    reference = None
    if p["dataset"] == "mnist-10k":
        reference = {LABELS[i]: {d: v for d, v in lar[i].items() if d in p["depths"]} for i in ("random", "rbm")}
        reference = {k: v for k, v in reference.items() if v}
    unconverged = [(i, d) for i in INITS for d, r in res.settings[i].items() if not r.converged]
    fig, failed = plot_error_by_depth(
        res.errors, reference=reference, unconverged=unconverged,
        title=f"{p['n_seeds']} networks per box, {p['width']} units per layer ({p['dataset']})")
    ch.figure("ch3_error_by_depth", fig)
    ch.glue("failed_sentence", failed_sentence(failed), fmt="s")


def shallow_and_deep(ch: runtime.Chapter, res: Result) -> None:
    """Histograms of the test errors at 1 hidden layer and at the deep depth, as in the lecture."""
    p, depths, deep = ch.params, ch.params["depths"], res.deep
    ch.glue("deep", deep, fmt="d")
    ch.glue("hist_sentence_1", hist_sentence(res.errors, depths[0]) if depths[0] == 1 else "(depth 1 was not run)",
            fmt="s")
    ch.glue("hist_sentence_deep", hist_sentence(res.errors, deep), fmt="s")
    ch.glue("hist_depths", " and ".join(_layers(d) for d in sorted({depths[0], deep})), fmt="s")
    ch.figure("ch3_histograms", plot_shallow_and_deep(res.errors, sorted({depths[0], deep}), p["n_seeds"]))


def statistics_table(ch: runtime.Chapter, res: Result) -> None:
    """Mean (with one net's binomial SE), median, std with bootstrap intervals; per depth the paired
    comparison with no pre-training (mean gain, Wilcoxon p, fraction of seeds beating their twin) and
    the overlap. Glues ``se_single``: the median over the table's rows of the binomial SE, in points."""
    n_test = len(ch.data.test)
    frame = statistics_frame(res.stats, ch.params["depths"], n_test=n_test)
    ch.glue("se_single", float(frame["SE of one net %"].median()), fmt=".2f")
    spread = ["mean %", "SE of one net %", "95% CI of mean", "median %", "95% CI of median", "std %"]
    paired = ["gain % (paired mean)", "95% CI of gain", "Wilcoxon p", "beats own twin", "overlap"]
    runtime.show(frame[spread].style.format(
        {"mean %": "{:.2f}", "SE of one net %": "{:.2f}", "median %": "{:.2f}", "std %": "{:.2f}"},
        na_rep="—").set_caption(f"Test error over {plural(ch.params['n_seeds'], 'seed')} "
                                f"({n_test:,} test digits), in percent"))
    runtime.show(frame.loc[[LABELS[k] for k in KINDS], paired].style.format(
        {"gain % (paired mean)": "{:+.2f}", "Wilcoxon p": "{:.2g}", "beats own twin": "{:.0%}", "overlap": "{:.2f}"},
        na_rep="—").set_caption("Each pre-trained net against its no-pre-training twin (the same seed)"))


def test_set_resolution(ch: runtime.Chapter, res: Result) -> None:
    """What the test set can resolve: per initialisation, the best net (by validation error) of each
    depth against the best net of 2 hidden layers on the same test digits (McNemar, paired SE of
    the difference, each net's binomial SE). Glues ``resolution_sentence`` and ``se_diff`` (points)."""
    rows = res.resolution
    ch.glue("resolution_sentence", resolution_sentence(rows), fmt="s")
    diffs = [r["se_difference"] for r in rows if r["se_difference"] is not None]
    ch.glue("se_diff", f"{100 * float(np.median(diffs)):.2f}" if diffs else "(not computed: depth 2 was not run)",
            fmt="s")
    if not rows:
        return
    short = {"validation error %": "valid. %", "test error %": "test %", "binomial SE %": "SE %",
             "minus 2 layers (points)": "− 2 layers", "paired SE (points)": "paired SE",
             "digits only this net gets right": "only this net right",
             "digits only the 2-layer net gets right": "only 2-layer net right"}
    runtime.show(resolution_frame(rows).rename(columns=short).style.format(
        {"valid. %": "{:.2f}", "test %": "{:.2f}", "SE %": "{:.2f}", "− 2 layers": "{:+.2f}", "paired SE": "{:.2f}",
         "McNemar p": "{:.2g}", "only this net right": "{:.0f}", "only 2-layer net right": "{:.0f}"},
        na_rep="—").set_caption("Best net of each depth (lowest validation error) against the best net of "
                                "2 hidden layers, on the same test digits; errors and standard errors in "
                                "percent, differences in points, counts in digits"))


def best_depths(ch: runtime.Chapter, res: Result) -> None:
    """The best depth of each initialisation, with its paired bootstrap probability (seeds resampled
    jointly across depths)."""
    for i in INITS:
        ch.glue(f"best_{i}", best_depth_text(res.stats["best_depth"].get(i)), fmt="s")


def distorted_stream(ch: runtime.Chapter, res: Result) -> None:
    """One hidden layer trained on the stream of distorted digits: histograms and learning curves."""
    p = ch.params
    ch.glue("stream_seconds", res.timing.get("stream_s", 0.0), fmt=".0f")
    ch.glue("stream_examples", p["stream_examples"])
    ch.glue("stream_batch_size", p["stream_batch_size"], fmt="d")
    ch.glue("stream_rate_random", res.streams["random"].lr, fmt="g")
    ch.glue("stream_rate_rbm", res.streams["rbm"].lr, fmt="g")
    ch.glue("stream_sentence", stream_sentence(res.stream_errors["random"], res.stream_errors["rbm"], "rbm"), fmt="s")
    fig = figures.histograms({LABELS[i]: 100 * np.asarray(v) for i, v in res.stream_errors.items()}, bins=20,
                             xlabel="test error (%)")
    fig.axes[0].set_title(f"1 hidden layer, {p['stream_examples']:,} distorted digits, "
                          f"{plural(p['n_seeds'], 'seed')} each")
    ch.figure("ch3_stream_histogram", fig)
    ch.figure("ch3_stream_curves", plot_stream_curves(res.streams, p["stream_batch_size"]))


def side_by_side(ch: runtime.Chapter, res: Result) -> None:
    """This run's medians beside the papers' numbers, and where the papers' numbers come from."""
    ref = pd.DataFrame(reference_rows(res.stats["summary"])).set_index("hidden layers").T.rename_axis(
        columns="hidden layers")
    runtime.show(ref.style.format(precision=2, na_rep="—").set_caption("Test error (%) per number of hidden layers"))
    sources = pd.DataFrame([{"numbers": name, "source": r.citation, "how they were obtained": r.data or r.note}
                            for name, r in (("Erhan et al. Fig. 1", ERHAN2010_FIG1),
                                            ("Erhan et al. Table 1", ERHAN2010_TABLE1),
                                            ("Erhan et al. protocol", ERHAN2010_PROTOCOL),
                                            ("Larochelle et al. Table 3", LAROCHELLE2009_TABLE3))])
    runtime.show(sources.style.hide(axis="index").set_caption("Where the papers' numbers come from"))


# ----------------------------------------------------------------------------------------- the claim
def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C3 (DESIGN.md) per pre-training kind, each tested on this run's numbers.

    Keys "a-rbm", "a-dae", "b-rbm", ..., "d" (no pre-training), ..., "f-rbm" (the stream), from
    :attr:`Result.checks`. Parts (a), (b), (d), (e), (f) compare settings seed by seed and are
    decided by their paired Wilcoxon test (:func:`pretraining.book.claims.from_test`; ``finish``
    Holm-adjusts them together); part (c) by its threshold. A part tested on fewer than
    :data:`claims.MIN_PAIRS` paired seeds, or whose depths were not run, is not tested.
    """
    order = {k: i for i, k in enumerate(INITS)}
    out = []
    for c in sorted(res.checks, key=lambda c: (c["part"], order[c["kind"]])):
        key = c["part"] if c["kind"] == "random" else f"{c['part']}-{c['kind']}"
        # (d) and (e) compare with 2 layers: when no deeper depth was run they name the claim's 4
        claim = PART_NAMES[c["part"]].format(deep=res.deep if c["part"] in "abcf" or res.deep > 2 else 4)
        if c["kind"] != "random":
            claim += f" [{LABELS[c['kind']]}]"
        stat = c["stat"]
        if c["holds"] is not None and "p" in stat:
            out.append(claims.from_test(key, claim, stat, c["text"], direction=c["direction"], ci95=stat["ci95"],
                                        **c["numbers"]))
        else:
            out.append(claims.part(key, claim, c["holds"], c["text"], test=stat.get("test"),
                                   effect=stat.get("effect"), ci95=stat.get("ci95"), n=stat.get("n"),
                                   **c["numbers"]))
    return out


def finish(ch: runtime.Chapter, res: Result) -> None:
    """The claim's parts and verdict, the scale note (glued as ``why``), the results file, the provenance."""
    p = ch.params
    parts = claim_parts(ch, res)
    decided = claims.decide(parts)  # the statuses after Holm, for the sentences (ch.finish decides the same way)
    n_hold = sum(x.status == claims.HOLDS for x in decided)
    n_tested = sum(x.status != claims.NOT_TESTED for x in decided)
    ch.glue("why", why_sentence(claims.verdict(decided), p, len(ch.data.train)), fmt="s")
    ch.finish(results_record(p, res), parts=parts, finding=finding_sentence(p, res, n_hold, n_tested))


# ----------------------------------------------------------------------------------------- statistics
def directed_overlap(pretrained: Sequence[float], random: Sequence[float]) -> float:
    """The overlap of the two error distributions counted from the claim's side, in [0, 2].

    2 (1 - A) with A = P(pre-trained < random) + 0.5 P(tie) over all pairs of nets
    (:func:`pretraining.analysis.stats.prob_less`): it equals :func:`pretraining.analysis.stats.overlap`
    when the pre-trained nets tend to be lower (A >= 0.5) and 2 - overlap when they tend to be higher,
    so "at most 0.1" means "barely overlap, with the pre-trained nets below". A statement about the
    two distributions (it pairs every net with every other), not a test between them.
    """
    return 2.0 * (1.0 - stats.prob_less(pretrained, random))


def study_statistics(errors: Mapping[str, Mapping[int, Sequence[float]]], *, n_boot: int = 2000,
                     seed: int = 0) -> dict[str, Any]:
    """Statistics of a study's test errors {init: {depth: per-seed errors}} (at least 2 seeds each;
    entry s of every list is seed s, the same seeds for every setting).

    Returns {"errors": the errors as float lists, "summary": {init: {depth: stats.summary}},
    "median_ci95": {init: {depth: [lo, hi]}} (bootstrap interval of the median), "vs_random": {kind:
    {depth: :func:`pretraining.analysis.stats.paired_difference` (random, kind)}} (d = error without
    minus with pre-training, seed by seed), "overlap": {kind: {depth: stats.overlap}} and
    "directed_overlap": {kind: {depth: :func:`directed_overlap`}} for every initialisation other than
    "random" (when "random" is present), and "best_depth": {init: stats.best_setting over depths, paired: whole seeds resampled jointly}
    (when there are at least 2 depths).
    """
    if not isinstance(errors, Mapping) or not errors:
        raise TypeError(f"errors must be a non-empty mapping {{init: {{depth: errors}}}}, got {type(errors).__name__}")
    for init, per_depth in errors.items():
        _check_init(init)
        if not isinstance(per_depth, Mapping) or not per_depth:
            raise TypeError(f"errors[{init!r}] must be a non-empty mapping {{depth: errors}}")
    out: dict[str, Any] = {
        "errors": {i: {d: [float(x) for x in v] for d, v in e.items()} for i, e in errors.items()},
        "summary": {i: {d: stats.summary(v) for d, v in e.items()} for i, e in errors.items()},
        "median_ci95": {i: {d: list(stats.bootstrap_ci(v, np.median, n_boot=n_boot, seed=seed))
                            for d, v in e.items()} for i, e in errors.items()},
        "vs_random": {}, "overlap": {}, "directed_overlap": {}, "best_depth": {},
    }
    if "random" in errors:
        for kind in (i for i in errors if i != "random"):
            common = [d for d in errors[kind] if d in errors["random"]]
            rnd, pre = errors["random"], errors[kind]
            out["vs_random"][kind] = {d: stats.paired_difference(rnd[d], pre[d]) for d in common}
            out["overlap"][kind] = {d: stats.overlap(pre[d], rnd[d]) for d in common}
            out["directed_overlap"][kind] = {d: directed_overlap(pre[d], rnd[d]) for d in common}
    for init, per_depth in errors.items():
        if len(per_depth) >= 2:
            out["best_depth"][init] = stats.best_setting(per_depth, n_boot=n_boot, seed=seed, paired=True)
    return out


def _layers(d: int) -> str:
    return plural(d, "hidden layer")



def _paired_text(diff: Mapping[str, Any], what: str) -> str:
    """One paired comparison in words (:func:`pretraining.book.claims.paired_text`): the effect as a fraction
    and in points, its t interval and the test (only the mean and the count of positive seeds with fewer
    than :data:`claims.MIN_PAIRS` seeds)."""
    enough = diff["n"] >= claims.MIN_PAIRS
    return (f"per seed, {what}, as a fraction of the test digits: "
            + claims.paired_text(diff, points=True, interval=enough, p=True))


def _paired_check(part: str, kind: str, diff: Mapping[str, Any], text: str, *, also: bool = True,
                  **numbers: Any) -> dict[str, Any]:
    """A part decided by the paired test ``diff`` (:func:`pretraining.analysis.stats.paired_difference`, d
    in the claim's direction: the claim says d > 0) through :func:`pretraining.book.claims.paired`.
    Provisionally it holds when p < :data:`ALPHA` and the direction is right: the mean and the signed
    ranks of d both positive, and ``also`` (the part's further condition). Fewer than
    :data:`claims.MIN_PAIRS` seeds: not tested (holds None), with the reason."""
    prt = claims.paired(part, PART_NAMES[part], diff, text, also=also,
                        fraction_positive=diff["positive"] / diff["n"], **numbers)
    stat = {"effect": prt.effect, "n": prt.n, "ci95": list(prt.ci95) if prt.ci95 is not None else None}
    if prt.p is not None:
        stat = {"test": prt.test, "p": prt.p, **stat}
    return {"part": part, "kind": kind, "holds": prt.holds, "text": prt.evidence, "numbers": dict(prt.numbers),
            "stat": stat, "direction": prt.direction}


def _missing(part: str, kind: str, text: str) -> dict[str, Any]:
    return {"part": part, "kind": kind, "holds": None, "text": text, "numbers": {}, "stat": {}, "direction": None}


def claim_checks(st: Mapping[str, Any], *, max_overlap: float = MAX_OVERLAP, deep: int = 4) -> list[dict[str, Any]]:
    """The claim's parts tested on the statistics of :func:`study_statistics`.

    One dict per part and pre-training kind: {"part", "kind", "holds": True/False/None (provisional:
    raw p < :data:`ALPHA`; :func:`pretraining.book.claims.decide` settles the tested parts with Holm),
    "text": a sentence with the numbers, "numbers": further deciding numbers, "stat": the
    statistics ("test", "p", "n", "effect", "ci95" for a tested part; "test" "threshold", "effect",
    "ci95", "n" for part c; "effect", "n", "ci95" for a part with too few seeds; empty when its depths
    are missing), "direction": the effect points the way the claim states (None unless tested)}. None:
    the depths needed are missing, or fewer than :data:`claims.MIN_PAIRS` paired seeds.

    Every comparison is paired by seed (:func:`pretraining.analysis.stats.paired_difference`; effect =
    the mean per-seed difference in the claim's direction, a fraction of the test digits, so positive
    supports it, with its t interval):
    (a) error without minus with pre-training at 1 layer; (b) g(deep) - g(1) with g(d) = error
    without minus with pre-training at depth d (``deep``, or the deepest depth if shallower);
    (d) without pre-training, error(deep) - error(2), and the best depth (paired bootstrap) is 2;
    (e) with pre-training, error(2) - error(deep), and the std over seeds at ``deep`` is smaller than
    without pre-training. (c) is a threshold: the distributions barely overlap, the pre-trained one
    below (:func:`directed_overlap` <= ``max_overlap`` at every depth).
    """
    summ, errs = st["summary"], st["errors"]
    if "random" not in summ:
        raise ValueError("claim_checks needs the 'random' initialisation in the statistics")
    rnd, e_rnd = summ["random"], errs["random"]
    rnd_depths = sorted(rnd)
    d_deep = deep if deep in rnd_depths else rnd_depths[-1]
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    arr = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    checks: list[dict[str, Any]] = []
    needs_two = f"needs depths 2 and {deep}" if deep != 2 else "needs depth 2 and a deeper one"

    if deep != 2 and 2 in rnd and deep in rnd and "random" in st["best_depth"]:
        best = st["best_depth"]["random"]
        diff = stats.paired_difference(e_rnd[deep], e_rnd[2])
        is_two = best["best"] == 2
        text = (f"without pre-training {deep} layers {pct(rnd[deep]['mean'])} vs 2 layers {pct(rnd[2]['mean'])}; "
                + _paired_text(diff, f"error at {deep} minus error at 2 layers")
                + f"; the best depth is {best['best']} (lowest mean in {100 * best['probability']:.0f} % of the "
                "bootstrap replicates, seeds resampled jointly across depths)"
                + ("" if is_two else ", not 2, so the part fails whatever the test says"))
        checks.append(_paired_check("d", "random", diff, text, also=is_two, best_depth=best["best"],
                                    best_probability=best["probability"], mean_deep=rnd[deep]["mean"],
                                    mean_2=rnd[2]["mean"]))
    else:
        checks.append(_missing("d", "random", needs_two))
    for kind in (k for k in summ if k != "random"):
        s, e, vs, dov = summ[kind], errs[kind], st["vs_random"][kind], st["directed_overlap"][kind]
        name = LABELS[kind]
        if 1 in s and 1 in rnd:
            checks.append(_paired_check(
                "a", kind, vs[1], f"1 layer: {name} {pct(s[1]['mean'])} vs {pct(rnd[1]['mean'])} without; "
                + _paired_text(vs[1], "error without minus with pre-training"),
                mean=s[1]["mean"], mean_random=rnd[1]["mean"]))
        else:
            checks.append(_missing("a", kind, "needs depth 1"))
        if 1 in s and d_deep in s and d_deep != 1:
            g1, gd = arr(e_rnd[1]) - arr(e[1]), arr(e_rnd[d_deep]) - arr(e[d_deep])
            diff = stats.paired_difference(gd, g1)
            checks.append(_paired_check(
                "b", kind, diff, f"{name} lowers the mean error by {100 * g1.mean():.2f} percentage points at 1 "
                f"hidden layer and by {100 * gd.mean():.2f} at {d_deep}; "
                + _paired_text(diff, f"gain at {d_deep} minus gain at 1 layer (gain = error without minus with "
                               "pre-training)"), gain_1=float(g1.mean()), gain_deep=float(gd.mean()),
                deep=d_deep))
        else:
            checks.append(_missing("b", kind, "needs depth 1 and a deeper one"))
        worst = max(dov, key=lambda d: dov[d])
        above = [d for d, v in dov.items() if v >= 1.0]
        ci = list(stats.paired_bootstrap_ci([arr(e[worst]), arr(e_rnd[worst])], directed_overlap,
                                            method="percentile", n_resamples=2000))
        where = ("tend to lie below at every depth" if not above else
                 f"do not tend to lie below at {', '.join(map(str, above))} hidden layer{'s' if above != [1] else ''}")
        checks.append({
            "part": "c", "kind": kind, "holds": bool(dov[worst] <= max_overlap),
            "text": f"the largest overlap of {name} with no pre-training is {dov[worst]:.2f} at {_layers(worst)} "
                    f"(0 = none, 1 = identical; counted as 2 - overlap where the pre-trained nets lie above), "
                    f"the pre-trained nets {where}; 95 % percentile bootstrap interval over seeds "
                    f"{ci[0]:.2f} to {ci[1]:.2f}; the bar: at most {max_overlap:g} at every depth",
            "numbers": {"max_overlap": dov[worst], "max_overlap_depth": worst,
                        "directed_overlap": {str(d): v for d, v in dov.items()}},
            "stat": {"test": "threshold", "effect": dov[worst], "ci95": ci, "n": s[worst]["n"]}, "direction": None})
        if deep != 2 and 2 in s and deep in s and deep in rnd:
            diff = stats.paired_difference(e[2], e[deep])
            steadier = s[deep]["std"] < rnd[deep]["std"]
            checks.append(_paired_check(
                "e", kind, diff, f"{name}: {deep} layers {pct(s[deep]['mean'])} vs 2 layers {pct(s[2]['mean'])}; "
                + _paired_text(diff, f"error at 2 minus error at {deep} layers")
                + f"; less variation: std over seeds at {deep} layers {pct(s[deep]['std'])} vs "
                f"{pct(rnd[deep]['std'])} without pre-training"
                + ("" if steadier else " (not smaller, so the part fails whatever the test says)"),
                also=steadier, mean_deep=s[deep]["mean"], mean_2=s[2]["mean"],
                std_deep=s[deep]["std"], std_deep_random=rnd[deep]["std"]))
        else:
            checks.append(_missing("e", kind, needs_two))
    return checks


def stream_sentence(random: Sequence[float], pretrained: Sequence[float], kind: str = "rbm") -> str:
    """The stream's result in one sentence: both means and the paired comparison seed by seed."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not allowed; use 'rbm' or 'dae'")
    return _stream_text(random, pretrained, kind, stats.paired_difference(random, pretrained))


def _stream_text(random: Sequence[float], pretrained: Sequence[float], kind: str, diff: Mapping[str, Any]) -> str:
    r, k = np.asarray(random, dtype=float), np.asarray(pretrained, dtype=float)
    return (f"distorted stream, 1 layer: {LABELS[kind]} {100 * k.mean():.2f} % vs {100 * r.mean():.2f} % without; "
            + _paired_text(diff, "error without minus with pre-training"))


def stream_check(random: Sequence[float], pretrained: Sequence[float], kind: str = "rbm") -> dict[str, Any]:
    """Part (f) of the claim: on the distorted stream, pre-trained one-layer nets have the lower error,
    seed by seed (seed s of both initialisations sees the same stream):
    :func:`pretraining.analysis.stats.paired_difference` of random minus pre-trained, decided like the
    other paired parts of :func:`claim_checks` (same keys; not tested with fewer than
    :data:`claims.MIN_PAIRS` seeds)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not allowed; use 'rbm' or 'dae'")
    diff = stats.paired_difference(random, pretrained)
    r, k = np.asarray(random, dtype=float), np.asarray(pretrained, dtype=float)
    return _paired_check("f", kind, diff, _stream_text(random, pretrained, kind, diff),
                         mean=float(k.mean()), mean_random=float(r.mean()), overlap=stats.overlap(k, r))


def resolution_rows(settings: Mapping[str, Mapping[int, SettingResult]], depths: Sequence[int]) -> list[dict[str, Any]]:
    """What the test set can resolve: per initialisation, the best net of each depth against the best
    net of 2 hidden layers, digit by digit on the same test set.

    The best net of a setting is the seed with the lowest validation error (ties: the first seed);
    the test set chooses nothing. Needs depth 2 and every setting's ``test_correct``; [] otherwise.
    One row per (initialisation, depth): {"init", "depth", "seed_index", "valid_error", "test_error"
    (from its per-digit correctness), "n_test", "se": its binomial standard error
    (:func:`pretraining.analysis.stats.error_standard_error`), and for depths other than 2
    "difference": its test error minus that of the 2-layer net, "se_difference": the paired standard
    error of that difference (:func:`pretraining.analysis.stats.difference_standard_error`),
    "only_this" / "only_two": the digits only it / only the 2-layer net gets right, "p": McNemar's
    exact two-sided p (:func:`pretraining.analysis.stats.mcnemar`); None for the 2-layer row}.
    All as fractions; the p-values are descriptive, not corrected for the number of rows.
    """
    depths = _check_depths(depths)
    if 2 not in depths or any(settings[i][d].test_correct is None for i in INITS if i in settings for d in depths):
        return []
    rows = []
    for init in (i for i in INITS if i in settings):
        best = {d: int(np.argmin(settings[init][d].valid_error)) for d in depths}
        two = np.asarray(settings[init][2].test_correct[best[2]], dtype=bool)
        for d in depths:
            s = settings[init][d]
            correct = np.asarray(s.test_correct[best[d]], dtype=bool)
            err = float(1.0 - correct.mean())
            row: dict[str, Any] = {"init": init, "depth": d, "seed_index": best[d],
                                   "valid_error": float(s.valid_error[best[d]]), "test_error": err,
                                   "n_test": int(correct.size), "se": stats.error_standard_error(err, correct.size),
                                   "difference": None, "se_difference": None, "only_this": None, "only_two": None,
                                   "p": None}
            if d != 2:
                m = stats.mcnemar(correct, two)
                row.update(difference=m["effect"], se_difference=stats.difference_standard_error(correct, two),
                           only_this=m["b"], only_two=m["c"], p=m["p"])
            rows.append(row)
    return rows


def resolution_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """:func:`resolution_rows` as a table: errors, standard errors and differences in percent (points)."""
    pct = lambda v: None if v is None else 100 * v  # noqa: E731
    frame = pd.DataFrame([{
        "initialisation": LABELS[r["init"]], "hidden layers": r["depth"], "seed #": r["seed_index"],
        "validation error %": pct(r["valid_error"]), "test error %": pct(r["test_error"]),
        "binomial SE %": pct(r["se"]), "minus 2 layers (points)": pct(r["difference"]),
        "paired SE (points)": pct(r["se_difference"]), "digits only this net gets right": r["only_this"],
        "digits only the 2-layer net gets right": r["only_two"], "McNemar p": r["p"]} for r in rows])
    return frame.set_index(["initialisation", "hidden layers"])


def resolution_sentence(rows: Sequence[Mapping[str, Any]], *, alpha: float = ALPHA) -> str:
    """:func:`resolution_rows` in one sentence: the ranges of the binomial and of the paired standard
    errors (points), and how many differences with the 2-layer net McNemar's test finds at ``alpha``."""
    if not rows:
        return "The per-digit comparison was not made: it needs depth 2."
    se = np.array([100 * r["se"] for r in rows])
    cmp = [r for r in rows if r["difference"] is not None]
    n_test = rows[0]["n_test"]
    text = (f"On these {n_test:,} test digits the best single nets' binomial standard errors are "
            f"{se.min():.2f} to {se.max():.2f} points (median {np.median(se):.2f})")
    if not cmp:
        return text + "; only 2 hidden layers were run, so there is nothing to compare."
    sd = np.array([100 * r["se_difference"] for r in cmp])
    hits = sum(r["p"] < alpha for r in cmp)
    return (text + f"; the paired standard error of the difference between the best net of a depth and the best "
            f"net of 2 hidden layers is {sd.min():.2f} to {sd.max():.2f} points (median {np.median(sd):.2f}), so "
            f"two single nets that differ by less than about {2 * np.median(sd):.1f} points cannot be told apart "
            f"on this test set; {hits} of the {len(cmp)} differences have McNemar p < {alpha:g} (uncorrected)")


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


def rates_text(p: Mapping[str, Any]) -> str:
    """How the fine-tuning rate and the stopping epoch are chosen, in words (from the parameters)."""
    grid = p["finetune_lr_grid"]
    return (f"chosen per depth and initialisation from {len(grid)} log-spaced rates, {grid[0]:g} to {grid[-1]:g}, "
            f"widened by one step beyond an edge up to {plural(p['finetune_max_extensions'], 'time')}, by the mean "
            f"validation error of the first {plural(p['finetune_select_seeds'], 'seed')}; every net stops "
            f"{p['finetune_patience']} epochs after its best validation error (at most {p['finetune_epochs']} "
            "epochs) and is reported at that best epoch")


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
                        unconverged: Sequence[tuple[str, int]] = (),
                        title: str = "") -> tuple[Figure, dict[tuple[str, int], float]]:
    """Box plots of the test error (percent) per depth and initialisation, the settings that did
    not learn drawn off the top of the axis with an arrow and their median, the settings that did not
    converge (``unconverged``: (init, depth) pairs) marked "not converged" at the bottom of the axis.

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
            colours = dict(zip(groups, figures.PALETTE))
            for (g, d), m in failed.items():
                x = depths.index(d) + (groups.index(g) - (len(groups) - 1) / 2) * 0.8 / len(groups)
                ax.annotate(f"{g}:\nmedian {m:.0f} %\n(did not learn)", xy=(x, top),
                            xytext=(x, top - 0.25 * (top - bottom)), ha="center", va="center", fontsize=10,
                            color=colours[g], arrowprops={"arrowstyle": "-|>", "color": colours[g], "lw": 1.5})
        groups = list(box_data)
        for init, d in unconverged:
            g = LABELS[init]
            x = depths.index(d) + (groups.index(g) - (len(groups) - 1) / 2) * 0.8 / len(groups)
            ax.annotate("not\nconverged", xy=(x, 0.02), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        fontsize=10, color=figures.PALETTE[groups.index(g)], fontweight="bold")
        ax.set_title(title)
    return fig, failed


def hist_sentence(errors: Mapping[str, Mapping[int, Sequence[float]]], depth: int) -> str:
    """At ``depth``: in how many seeds each kind of pre-training beats its own no-pre-training twin
    (the net of the same seed: same minibatch order), and the medians."""
    r = np.asarray(errors["random"][depth])
    parts = []
    for kind in KINDS:
        k = np.asarray(errors[kind][depth])
        if k.shape != r.shape:
            raise ValueError(f"errors[{kind!r}][{depth}] and errors['random'][{depth}] must hold the same seeds")
        parts.append(f"{LABELS[kind]} beats its no-pre-training twin (the same seed) in {int(np.sum(k < r))} of "
                     f"{r.size} seeds (medians {100 * np.median(k):.2f} % vs {100 * np.median(r):.2f} %)")
    return "; ".join(parts)


def statistics_frame(st: Mapping[str, Any], depths: Sequence[int], *, n_test: int | None = None) -> pd.DataFrame:
    """The statistics table: one row per (initialisation, depth), errors in percent; with ``n_test``
    the binomial standard error of one net whose error is the mean (the test set's resolution); for
    the pre-trained rows the paired comparison with no pre-training at the same depth (the mean
    per-seed gain, error without minus with pre-training, in points, with its t interval;
    the Wilcoxon signed-rank p; the fraction of seeds whose pre-trained net beats its own random-init
    twin) and the overlap of the two distributions."""
    rows = []
    for i in INITS:
        for d in depths:
            s = st["summary"][i][d]
            row = {"initialisation": LABELS[i], "hidden layers": d, "mean %": 100 * s["mean"]}
            if n_test is not None:
                row["SE of one net %"] = 100 * stats.error_standard_error(s["mean"], n_test)
            row.update({"95% CI of mean": f"{100 * s['ci95'][0]:.2f}–{100 * s['ci95'][1]:.2f}",
                        "median %": 100 * s["median"],
                        "95% CI of median": "{:.2f}–{:.2f}".format(*(100 * v for v in st["median_ci95"][i][d])),
                        "std %": 100 * s["std"]})
            if i != "random":
                vs = st["vs_random"][i][d]
                row.update({"gain % (paired mean)": 100 * vs["effect"],
                            "95% CI of gain": "{:+.2f} to {:+.2f}".format(*(100 * v for v in vs["ci95"])),
                            "Wilcoxon p": vs["p"], "beats own twin": vs["positive"] / vs["n"],
                            "overlap": st["overlap"][i][d]})
            rows.append(row)
    return pd.DataFrame(rows).set_index(["initialisation", "hidden layers"])


def selection_frame(settings: Mapping[str, Mapping[int, SettingResult]]) -> pd.DataFrame:
    """One row per (initialisation, depth): :func:`pretraining.book.fairness.selection_frame`."""
    return fairness.selection_frame({(LABELS[i], d): r.selection for i in INITS for d, r in settings[i].items()},
                                    index=["initialisation", "hidden layers"])


def convergence_sentence(settings: Mapping[str, Mapping[int, SettingResult]]) -> str:
    """Which settings did not converge (they are kept out of the verdict), or that all did."""
    return fairness.convergence_sentence({(i, d): r.selection for i in INITS for d, r in settings[i].items()},
                                         label=lambda k: f"{LABELS[k[0]]} at {_layers(k[1])}")


def best_depth_text(best: Mapping[str, Any] | None) -> str:
    """:func:`pretraining.analysis.stats.best_setting` over depths as text (None: one depth run)."""
    if not best:
        return "only one depth was run"
    return f"{_layers(best['best'])} (lowest mean in {100 * best['probability']:.0f} % of the bootstrap replicates)"


def plot_stream_curves(streams: Mapping[str, StreamResult], batch_size: int) -> Figure:
    """Training cross-entropy (mean over seeds) against distorted digits seen, one line per initialisation."""
    require_int("batch_size", batch_size, 1)
    with figures.styled():
        fig, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 4.0))
        for k, (i, r) in enumerate(streams.items()):
            ax.plot(np.asarray(r.steps) * batch_size, np.mean(r.train_nll, axis=1), label=LABELS[i],
                    color=figures.PALETTE[INITS.index(i)], linestyle=figures.LINESTYLES[k % len(figures.LINESTYLES)])
        ax.set_xlabel("distorted digits seen")
        ax.set_ylabel("training cross-entropy\n(mean over seeds)")
        ax.legend()
    return fig


def plot_shallow_and_deep(errors: Mapping[str, Mapping[int, Sequence[float]]], depths: Sequence[int],
                          n_seeds: int) -> Figure:
    """The lecture's histograms: one panel per depth in ``depths`` (one or two, stacked), the test errors
    (percent) of every initialisation overlaid on shared bins. errors: {init: {depth: S errors}}."""
    if not 1 <= len(depths) <= 2:
        raise ValueError(f"depths must hold one or two depths, got {list(depths)}")
    with figures.styled():
        fig, axes = plt.subplots(len(depths), 1, figsize=(figures.PAGE_WIDTH, 3.6 * len(depths)), squeeze=False)
        for ax, d in zip(axes[:, 0], depths):
            figures.histograms({LABELS[i]: 100 * np.asarray(errors[i][d]) for i in INITS}, bins=20,
                               xlabel="test error (%)", ax=ax)
            ax.set_title(f"{_layers(d)}: {plural(n_seeds, 'seed')} per initialisation")
        fig.tight_layout()
    return fig


def why_sentence(verdict: str, p: Mapping[str, Any], n_train: int, *, alpha: float = ALPHA) -> str:
    """Why parts may fail or were not tested: fewer paired seeds than a paired test needs in this book
    (:data:`claims.MIN_PAIRS`), or this profile's scale beside the paper's (nothing when every tested
    part holds with enough seeds)."""
    protocol = ERHAN2010_PROTOCOL.numbers
    out = []
    n = p["n_seeds"]
    if n < claims.MIN_PAIRS:
        out.append(f"With {n} seeds per setting, fewer than the {claims.MIN_PAIRS} paired seeds this book tests a "
                   f"part on (at level {alpha:g}), the parts decided by a paired test were not tested.")
    if verdict != "supported":
        if p["profile"] == "paper":
            out.append("This run is at the paper's scale.")
        else:
            epochs = (f"{p['rbm_epochs']}" if p["rbm_epochs"] == p["dae_epochs"] else
                      f"{p['rbm_epochs']} (RBM) or {p['dae_epochs']} (DAE)")
            out.append(
                "Where a part fails, the likely reasons lie in the scale of this profile — "
                f"{n} seeds instead of {protocol['seeds_per_depth']}, {p['width']} units instead of about "
                f"{protocol['width']}, {epochs} + at most {p['finetune_epochs']} epochs instead of "
                f"{protocol['pretrain_epochs_per_layer']} + {protocol['finetune_epochs']}, {n_train:,} training digits "
                f"instead of {protocol['train_digits']:,} — so a failing part describes this scale and is not a "
                "refutation of the paper.")
    return " ".join(out)


def _best_by_init(st: Mapping[str, Any], depths: Sequence[int]) -> dict[str, int]:
    return {i: st["best_depth"][i]["best"] if st["best_depth"].get(i) else depths[0] for i in INITS}


def results_record(p: Mapping[str, Any], res: Result) -> dict[str, Any]:
    """The results file's numbers: per-seed errors, best depths, the paired comparisons with no
    pre-training (Wilcoxon p, mean gain, fraction of seeds beating their twin), overlaps, rates, the
    per-digit comparisons with 2 layers, the stream."""
    depths, st = p["depths"], res.stats
    vs = lambda key: {k: {str(d): st["vs_random"][k][d][key] for d in depths} for k in KINDS}  # noqa: E731
    twin = {k: {str(d): st["vs_random"][k][d]["positive"] / st["vs_random"][k][d]["n"] for d in depths}
            for k in KINDS}  # the fraction of seeds whose pre-trained net beats its random-init twin
    return {
        "depths": list(depths),
        "test_error": {i: {str(d): res.errors[i][d] for d in depths} for i in INITS},
        "best_depth": _best_by_init(st, depths),
        "best_depth_probability": {i: st["best_depth"][i]["probability"] for i in INITS if st["best_depth"].get(i)},
        "wilcoxon_p": vs("p"),
        "paired_gain": vs("effect"),
        "beats_twin": twin,
        "overlap": {k: {str(d): st["overlap"][k][d] for d in depths} for k in KINDS},
        "test_set_resolution": [dict(r) for r in res.resolution],
        "chosen_lr": {i: {str(d): res.settings[i][d].lr for d in depths} for i in INITS},
        "selection": {i: {str(d): res.settings[i][d].selection for d in depths} for i in INITS},
        "converged": {i: {str(d): res.settings[i][d].converged for d in depths} for i in INITS},
        "stream_selection": {i: {"lr": r.lr, "grid": r.grid, "grid_valid_error": r.grid_error}
                      for i, r in res.streams.items()},
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
