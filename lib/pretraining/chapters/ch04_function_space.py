"""Chapter 4: trajectories of pre-trained and randomly initialised nets in function space.

The notebook ``chapters/04_function_space.ipynb`` tells the story; this module does the work:

* :data:`SPEC` — the claim and the parameters, with the rules that tie them together (the probe
  digits fit in the test set, the embeddings' settings fit the number of points, ...);
* :func:`run` — pre-trains N RBM stacks (shared cache); trains each group (pre-trained, random
  init) by the fair-fight protocol (:func:`pretraining.core.selection.select_and_train`: its own
  rate chosen on the validation set, every net reported at its best validation epoch,
  :func:`train_group`); then fine-tunes the N pre-trained and N random nets together as one batch
  of 2N members, each group with its chosen rate, for the whole epoch budget while recording their
  outputs; embeds all points in 2-D and measures the claim in function space (the expensive steps
  through the cache);
* one function per section — :func:`setup`, :func:`training`, :func:`probe_error`, :func:`tsne`,
  :func:`isomap`, :func:`two_groups`, :func:`distances`, :func:`first_epoch`, :func:`conclusions`;
* :func:`claim_parts` and :func:`finish` — the claim's parts tested on the numbers (a part whose
  groups did not converge is not tested, :func:`gate_unconverged`), the results file.

Before fine-tuning (epoch 0) and after every epoch, each net's softmax outputs on T fixed test
digits are recorded; concatenated, they are the net's point in function space (dimension D = T * C,
see :mod:`pretraining.analysis.functionspace`). The chapter embeds all points in 2-D (t-SNE, Isomap)
and measures the claims about Erhan et al.'s (2010) figures 5 and 6 in the original D-dimensional
space.

Shapes: M nets (members), E fine-tuning epochs (the budget), T probe digits, C classes, D = T * C.
Trajectories are ``probs`` (M, E + 1, T, C) or ``vectors`` (M, E + 1, D); index 0 on the second
axis is the net before fine-tuning. Groups are labelled with :data:`GROUPS`; the pre-trained nets
come first. Seeds: pre-trained net m is member m of the chapter seed, random net m is member N + m
(:func:`pretraining.core.seeding.member_seeds`).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..analysis import figures, stats
from ..analysis import functionspace as fs
from ..analysis.references import ERHAN2010_FUNCTION_SPACE
from ..book import claims, fairness, runtime
from ..book.experiments import pretrained_stack, selection_config
from ..book.specs import (
    MAX_EPOCHS,
    ChapterSpec,
    Float,
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
from ..book.workplan import protocol_job, split_sizes, stack_jobs
from ..core.checks import require_float, require_int
from ..core.data import SPLIT_SIZES
from ..core.memory import training_bytes
from ..core.models import Classifier, Stack
from ..core.rehearsal import Job
from ..core.selection import LONGER_RUN, PLATEAU_FRACTION, SelectionConfig, select_and_train, setting_converged
from ..core.seeding import generator, member_seeds, validate_seeds
from ..core.train import FinetuneConfig, RBMConfig, evaluate, finetune

Tensor = torch.Tensor

__all__ = [
    "GROUPS",
    "MIN_NETS",
    "N_CLASSES",
    "SPEC",
    "GroupTraining",
    "Result",
    "cached_embedding",
    "cached_trajectories",
    "claim_parts",
    "comparison_table",
    "conclusion_texts",
    "conclusions",
    "distances",
    "embed_trajectories",
    "finish",
    "first_epoch",
    "gate_unconverged",
    "group_labels",
    "group_makers",
    "isomap",
    "measure_trajectories",
    "n_points",
    "plot_distance_to_start",
    "plot_embedding",
    "plot_embedding_figure",
    "plot_group_distances",
    "plot_knn_accuracy",
    "plot_probe_error",
    "probe_confidence",
    "probe_error",
    "probe_errors",
    "probe_indices",
    "record_trajectories",
    "results_record",
    "run",
    "setup",
    "start",
    "train_group",
    "train_groups",
    "training",
    "tsne",
    "two_groups",
    "verdicts",
    "within_difference_ci",
    "work",
]

GROUPS = ("pre-trained", "random init")
"""Group labels, in the order of the members (pre-trained nets first)."""

N_CLASSES = 10
"""Digit classes: the width of the softmax layer."""

MIN_NETS = 10
"""Nets per group below which the claim's parts are not tested (the measures are too noisy)."""

_BOOTSTRAP = 0xB007  # generator tag of the bootstrap of within_difference_ci
_KEYS = {"pre-trained": "pretrained", "random init": "random"}  # group -> key in the results file
_TAGS = {"pre-trained": "pre", "random init": "rnd"}  # group -> suffix of glue keys
_COLOURS = {"pre-trained": "Blues", "random init": "Oranges"}
_LINE = {"pre-trained": "tab:blue", "random init": "tab:orange"}
_MARKERS = {"pre-trained": "o", "random init": "^"}


# -- the parameters --------------------------------------------------------------------------------

def n_points(p: Mapping) -> int:
    """Points in function space: 2 * n_seeds nets, each before fine-tuning and after every epoch."""
    return 2 * p["n_seeds"] * (p["finetune_epochs"] + 1)


def _embedding_fits(p: Mapping) -> list[str]:
    points = n_points(p)
    out = []
    if not 3 * p["perplexity"] < points - 1:
        out.append(not_allowed("perplexity", p["perplexity"],
                               f"3 * perplexity must be < {points - 1} (the {points} points minus one)"))
    if p["isomap_neighbors"] >= points:
        out.append(not_allowed("isomap_neighbors", p["isomap_neighbors"], f"fewer than the {points} points"))
    if p["knn_k"] > 2 * p["n_seeds"] - 1:
        out.append(not_allowed("knn_k", p["knn_k"], f"at most {2 * p['n_seeds'] - 1} (the other nets of one epoch)"))
    return out


def _memory(p: Mapping) -> tuple[int, list[str]]:
    """Bytes of the stacks, the largest fine-tuning batch (the 2 n_seeds nets of the trajectories, or the
    grid's rates x selection nets) and the recorded outputs."""
    n_train, sizes, n = SPLIT_SIZES[p["dataset"]][0], [784, *p["hidden_sizes"]], p["n_seeds"]
    outputs = 4 * 2 * n * (p["finetune_epochs"] + 1) * p["n_test_cases"] * 10
    members = max(2 * n, len(p["finetune_lr_grid"]) * p["finetune_select_seeds"])
    need = max(training_bytes(n, n_train, sizes, p["pretrain_batch_size"]),
               training_bytes(members, n_train, [*sizes, 10], p["finetune_batch_size"], greedy=False)) + outputs
    return need, ["n_seeds", "hidden_sizes", "finetune_epochs", "n_test_cases", "finetune_lr_grid",
                  "finetune_select_seeds"]


SPEC = ChapterSpec(
    "04_function_space",
    claim="Networks compared as functions (their concatenated outputs on a fixed set of test cases, embedded "
          "in 2-D with t-SNE) form two distinct groups with no overlap; after one epoch networks are more "
          "similar to one another than to their initial selves; pre-trained ones are more similar to one another.",
    paper="In t-SNE and ISOMAP pictures of 50 + 50 two-layer nets the two groups never meet and the "
          "pre-trained nets occupy a smaller region (Erhan et al. 2010, figs. 5 and 6).",
    params={
        "n_seeds": Param(15, Int(min=2, max=1000), "networks per group (pre-trained, random init); at least 2"),
        "hidden_sizes": Param([100, 100], IntList(min=1, max=20000, max_len=6),
                              "widths of the hidden layers (the paper's figure: two layers)"),
        "rbm_epochs": Param(5, Int(min=1, max=MAX_EPOCHS), "CD-1 epochs per RBM layer of the pre-trained nets"),
        "rbm_lr": Param(0.1, Float(gt=0, max=10), "RBM learning rate"),
        "pretrain_batch_size": Param(100, Int(min=1), "RBM minibatch size"),
        # budget and patience: measured on 30 + 30 nets, every net stopped early (by epoch 27) and converged
        **selection_params(grid=[0.2, 0.4743, 1.125, 2.667, 6.325], epochs=30, patience=3),
        "finetune_batch_size": Param(50, Int(min=1), "fine-tuning minibatch size"),
        "n_test_cases": Param(1000, Int(min=1), "test digits whose outputs make a net's function vector "
                                                "(evenly spaced over the test set)"),
        "perplexity": Param(30.0, Float(gt=0), "t-SNE perplexity"),
        "pca_dims": Param(50, Int(min=2), "PCA dimensions before t-SNE and ISOMAP"),
        "isomap_neighbors": Param(10, Int(min=1), "neighbours in ISOMAP's graph"),
        "knn_k": Param(1, Int(min=1), "neighbours of the nearest-neighbour group classifier (leave-one-net-out)"),
        "embed_jobs": Param(2, Int(min=1, max=256), "CPU threads for t-SNE"),
    },
    rules=(fits_split("test", "n_test_cases"), fits_split("train", "pretrain_batch_size", "finetune_batch_size"),
           rate_grid_rule(), select_seeds_rule(), _embedding_fits, fits_memory(_memory)),
)


def start(namespace: Mapping) -> runtime.Chapter:
    """Check the notebook's parameters (``globals()`` after the parameters cell) and begin."""
    return runtime.start(SPEC, namespace)


# -- the run ---------------------------------------------------------------------------------------

@dataclass
class GroupTraining:
    """One group (N nets) trained by the fair-fight protocol (:func:`train_group`).

    selection: :meth:`pretraining.core.selection.Selection.record` (the rates tried and their
    validation errors, the chosen rate, per net its best epoch, epochs run, training NLL and
    converged flag); curves: {"train_nll", "valid_error"}, per net one value per epoch it ran;
    test_error (N,): each net's error on the whole test set at its best validation epoch.
    """

    selection: dict
    curves: dict[str, list[list[float]]]
    test_error: list[float]

    @property
    def lr(self) -> float:
        """The rate chosen on the validation set."""
        return self.selection["lr"]

    @property
    def converged(self) -> bool:
        """Every net converged and the chosen rate is off the edge of the rates tried."""
        return setting_converged(self.selection)


@dataclass
class Result:
    """What the chapter computed (M = 2 * n_seeds nets, pre-trained first).

    training: {group: :class:`GroupTraining`}, how each group was trained and its nets' test errors
    at their best epochs; labels (M,): the group of each net (:data:`GROUPS`); probe (T,): the
    test-set rows of the probe digits; probs (M, E+1, T, C) float32 on the CPU: the nets' outputs
    on them per epoch, every group with its chosen rate for the whole budget of E epochs;
    history: the fine-tuning history of that run (lists of M values per epoch); errors (M, E+1):
    test error on the probe digits; confidence (M, E+1): mean largest output probability;
    embedding: "tsne" and "isomap", each (M, E+1, 2); embed_meta: the embedding's times and whether
    ISOMAP's graph was connected (:func:`embed_trajectories`); measures:
    :func:`measure_trajectories`; verdicts: :func:`verdicts` of the measures.
    """

    training: dict[str, GroupTraining]
    labels: list[str]
    probe: np.ndarray
    probs: Tensor
    history: dict[str, list]
    errors: np.ndarray
    confidence: np.ndarray
    embedding: dict[str, np.ndarray]
    embed_meta: dict
    measures: dict
    verdicts: dict[str, bool]

    def final_error(self) -> dict[str, float]:
        """Median test error on the probe digits after the last epoch, per group."""
        return {g: float(np.median(self.errors[np.asarray(self.labels) == g, -1])) for g in GROUPS}

    def mean_confidence(self) -> dict[str, np.ndarray]:
        """Mean largest output probability per epoch, per group: (E+1,) each."""
        return {g: self.confidence[np.asarray(self.labels) == g].mean(0) for g in GROUPS}


def run(ch: runtime.Chapter) -> Result:
    """Pre-train; train each group by the fair-fight protocol; fine-tune both groups, each with its chosen
    rate, while recording their outputs; embed and measure."""
    p, data = ch.params, ch.data
    n = p["n_seeds"]
    pre_seeds, rnd_seeds = member_seeds(p["seed"], n), member_seeds(p["seed"], n, first=n)
    labels = group_labels(n)
    probe = probe_indices(len(data.test), p["n_test_cases"])
    rbm_config = RBMConfig(epochs=p["rbm_epochs"], lr=p["rbm_lr"], batch_size=p["pretrain_batch_size"])
    # the epoch budget and minibatch size; the rate comes from the selection
    ft_config = FinetuneConfig(epochs=p["finetune_epochs"], lr=p["finetune_lr_grid"][0],
                               batch_size=p["finetune_batch_size"])
    selection = selection_config(p)
    stack, _ = pretrained_stack(ch, "rbm", p["hidden_sizes"], rbm_config, pre_seeds, progress=False)
    stack_key = {"kind": "rbm", "hidden_sizes": p["hidden_sizes"], "config": dataclasses.asdict(rbm_config),
                 "seeds": pre_seeds}
    makers = group_makers(stack, pre_seeds, rnd_seeds, n_classes=N_CLASSES)
    what = {GROUPS[0]: {"stack": stack_key}, GROUPS[1]: {"sizes": stack.sizes + [N_CLASSES]}}
    seeds = {GROUPS[0]: pre_seeds, GROUPS[1]: rnd_seeds}
    training = {g: train_group(ch, g, what[g], makers[g], ft_config, selection, seeds[g]) for g in GROUPS}
    rates = {g: training[g].lr for g in GROUPS}
    run_key = {"stack": stack_key, "finetune": {k: v for k, v in dataclasses.asdict(ft_config).items() if k != "lr"},
               "rates": {_KEYS[g]: r for g, r in rates.items()}, "random_seeds": rnd_seeds,
               "n_test_cases": p["n_test_cases"]}
    probs, history = cached_trajectories(ch, run_key, stack, probe, ft_config, rates, pre_seeds, rnd_seeds)
    embedding, embed_meta = cached_embedding(ch, run_key, probs)
    measures = measure_trajectories(probs, labels, k=p["knn_k"], seed=p["seed"])
    return Result(training=training, labels=labels, probe=probe, probs=probs, history=history,
                  errors=probe_errors(probs, data.test.y[probe]), confidence=probe_confidence(probs),
                  embedding=embedding, embed_meta=embed_meta, measures=measures, verdicts=verdicts(measures))


def work(p: Mapping) -> list[Job]:
    """The chapter's full run as rehearsal jobs (:mod:`pretraining.book.workplan`), from its checked
    values ``p`` (as ``ch.params``).

    Counted: the RBM stack (one member per pre-trained net, ``n_seeds``); each group
    (:data:`GROUPS`) by the fair-fight protocol (:func:`train_group`); the trajectories
    (:func:`cached_trajectories`): both groups' 2 ``n_seeds`` nets fine-tuned as one batch for the
    whole budget of ``finetune_epochs`` (no early stopping), their outputs on the ``n_test_cases``
    probe digits recorded before and after every epoch.
    Not counted: grid extensions and the longer run of a net that did not converge; the test
    errors, t-SNE, ISOMAP and the measures of the trajectories (analysis).
    """
    train, _, _ = split_sizes(p)
    n, sizes = p["n_seeds"], [784, *p["hidden_sizes"], N_CLASSES]
    jobs = stack_jobs("stack", "rbm", 784, p["hidden_sizes"], members=n, examples=train,
                      epochs=p["rbm_epochs"], batch_size=p["pretrain_batch_size"])
    jobs += [protocol_job(f"{group} group", sizes, p, n) for group in GROUPS]
    jobs.append(Job("trajectories, both groups", "finetune", sizes, members=2 * n, examples=train,
                    epochs=p["finetune_epochs"], batch_size=p["finetune_batch_size"],
                    eval_examples=p["n_test_cases"]))
    return jobs


def train_group(ch: runtime.Chapter, group: str, what: Mapping, make: Callable[[Sequence[int]], Classifier],
                config: FinetuneConfig, selection: SelectionConfig, seeds: Sequence[int]) -> GroupTraining:
    """One group's nets ``make(seeds)`` trained by the fair-fight protocol on the chapter's training
    digits, the validation digits choosing the rate and each net's epoch
    (:func:`pretraining.core.selection.select_and_train`), through the cache
    (``ch4_selection_pretrained`` / ``ch4_selection_random``).

    what: everything that defines ``make`` besides the seeds (the stack's key, or the sizes); the
    key adds the fine-tuning config (its epochs the budget), the selection config and the seeds.
    When a net did not converge, one is trained again alone for :data:`LONGER_RUN` times the budget
    (the record's "longer_run": how many epochs it would need). Afterwards each net's error on the
    whole test set is measured at its best validation epoch (the test set chooses nothing).
    """
    if group not in GROUPS:
        raise ValueError(f"group={group!r} is not allowed; use one of {list(GROUPS)}")
    key = {**what, "finetune": dataclasses.asdict(config), "selection": dataclasses.asdict(selection),
           "seeds": list(seeds), "longer": LONGER_RUN}
    data = ch.data

    def compute():
        sel = select_and_train(make, data.train, data.valid, config, selection, seeds, longer=LONGER_RUN)
        test = evaluate(sel.clf, data.test.x, data.test.y).error.cpu()
        curves = {k: sel.curves[k] for k in ("train_nll", "valid_error")}
        return {"test_error": test}, {"selection": sel.record(), "curves": curves}

    # version 2: early stopping once the validation curve flattened
    tensors, meta = ch.cached(f"ch4_selection_{_KEYS[group]}", key, compute, version=2)
    return GroupTraining(meta["selection"], meta["curves"], tensors["test_error"].cpu().tolist())


def cached_trajectories(ch: runtime.Chapter, run_key: Mapping, stack: Stack, probe: np.ndarray,
                        config: FinetuneConfig, rates: Mapping[str, float], pretrained_seeds: Sequence[int],
                        random_seeds: Sequence[int]) -> tuple[Tensor, dict[str, list]]:
    """:func:`train_groups` on the chapter's training digits, through the cache (``ch4_trajectories``).

    run_key: everything the result depends on (the stack's kind, sizes, config and seeds, the
    fine-tuning config, the chosen rates, the random nets' seeds, n_test_cases); probe (T,): the
    probe rows of the test set; config: its ``epochs`` the budget, its ``lr`` replaced by
    ``rates`` ({group: the group's chosen rate}, one per member). Returns probs (2N, E+1, T, C)
    float32 on the CPU and the fine-tuning history.
    """
    data = ch.data
    per_member = dataclasses.replace(config, lr=(rates[GROUPS[0]],) * len(pretrained_seeds)
                                     + (rates[GROUPS[1]],) * len(random_seeds))

    def fine_tune_and_record():
        probs, history = train_groups(stack, data.train.x, data.train.y, data.test.x[probe], per_member,
                                      pretrained_seeds, random_seeds, n_classes=N_CLASSES, progress=False)
        return {"probs": probs}, {"history": history}

    # version 2: each group with its own rate, chosen by the fair-fight protocol
    tensors, meta = ch.cached("ch4_trajectories", run_key, fine_tune_and_record, version=2)
    return tensors["probs"].cpu(), meta["history"]


def cached_embedding(ch: runtime.Chapter, run_key: Mapping, probs: Tensor) -> tuple[dict[str, np.ndarray], dict]:
    """:func:`embed_trajectories` of probs (M, E+1, T, C) with the chapter's settings, through the cache
    (``ch4_embedding``, keyed by run_key and the embedding parameters).

    Returns {"tsne", "isomap"}: (M, E+1, 2) float64 arrays, and {"tsne_seconds", "tsne_cpu_seconds",
    "isomap_seconds", "isomap_connected"} as measured when the embedding was computed.
    """
    p = ch.params
    key = {"run": dict(run_key), "perplexity": p["perplexity"], "pca_dims": p["pca_dims"],
           "isomap_neighbors": p["isomap_neighbors"], "seed": p["seed"], "n_jobs": p["embed_jobs"]}

    def embed():
        e = embed_trajectories(probs, perplexity=p["perplexity"], pca_dims=p["pca_dims"],
                               n_neighbors=p["isomap_neighbors"], seed=p["seed"], n_jobs=p["embed_jobs"])
        meta = {k: e[k] for k in ("tsne_seconds", "tsne_cpu_seconds", "isomap_seconds", "isomap_connected")}
        return {"tsne": torch.from_numpy(e["tsne"]), "isomap": torch.from_numpy(e["isomap"])}, meta

    tensors, meta = ch.cached("ch4_embedding", key, embed, version=1)
    return {k: v.cpu().numpy() for k, v in tensors.items()}, meta


# -- the sections ------------------------------------------------------------------------------------

def setup(ch: runtime.Chapter) -> None:
    """The networks and the function vectors: sizes, settings, dimensions."""
    p, data = ch.params, ch.data
    n = p["n_seeds"]
    ch.glue("n_seeds", n, fmt="d")
    ref = ERHAN2010_FUNCTION_SPACE.numbers["nets_per_group"]
    ch.glue("nets_note", "Every net is thus trained twice" + (f"; to keep the time, this run has {n} nets per group, "
                                                              f"fewer than the paper's {ref}." if n < ref else "."))
    ch.glue("n_total_nets", 2 * n, fmt="d")
    ch.glue("architecture", "-".join(map(str, _sizes(ch))))
    ch.glue("rbm_epochs", p["rbm_epochs"], fmt="d")
    ch.glue("rbm_epoch_count", plural(p["rbm_epochs"], "epoch"))
    ch.glue("rbm_lr", p["rbm_lr"], fmt="g")
    ch.glue("ft_epochs", p["finetune_epochs"], fmt="d")
    ch.glue("ft_epoch_count", plural(p["finetune_epochs"], "epoch"))
    grid = p["finetune_lr_grid"]
    ch.glue("ft_rates", f"{len(grid)} log-spaced rates from {grid[0]:g} to {grid[-1]:g}")
    ch.glue("ft_patience", p["finetune_patience"], fmt="d")
    ch.glue("ft_flat", f"{selection_config(p).flat_tolerance * 100:g}", fmt="s")
    ch.glue("ft_select_seeds", plural(p["finetune_select_seeds"], "net"))
    ch.glue("ft_extensions", plural(p["finetune_max_extensions"], "time"))
    ch.glue("ft_batch", p["finetune_batch_size"], fmt="d")
    ch.glue("n_train", len(data.train), fmt=",")
    ch.glue("n_valid", len(data.valid), fmt=",")
    ch.glue("n_classes", N_CLASSES, fmt="d")
    ch.glue("n_test_cases", p["n_test_cases"], fmt=",")
    ch.glue("n_test", len(data.test), fmt=",")
    ch.glue("dim", p["n_test_cases"] * N_CLASSES, fmt=",")
    ch.glue("n_points", n_points(p), fmt=",")


def training(ch: runtime.Chapter, res: Result) -> None:
    """How each group was trained (the fair-fight table), whether it converged, and its curves."""
    records = {g: t.selection for g, t in res.training.items()}
    ch.glue("convergence_sentence", fairness.convergence_sentence(records, label=lambda g: f"the {g} nets"))
    for g, t in res.training.items():
        tag = _TAGS[g]
        ch.glue(f"lr_{tag}", t.lr, fmt="g")
        ch.glue(f"best_epoch_{tag}", float(np.median(t.selection["best_epoch"])), fmt=".0f")
        ch.glue(f"test_error_{tag}", float(np.median(t.test_error)), fmt=".1%")
    runtime.show(fairness.selection_frame(records, index="group").style.format(fairness.FORMATS)
                 .set_caption("How each group was trained: the rate chosen on the validation set, the median "
                              "best epoch and epochs run over the group's nets, the median training NLL at the "
                              "best epoch, and how many nets converged"))
    ch.figure("ch4_training_curves", figures.training_curves({g: t.curves for g, t in res.training.items()},
                                                             n_classes=N_CLASSES, plateau_fraction=PLATEAU_FRACTION))


def probe_error(ch: runtime.Chapter, res: Result) -> None:
    """Pre-training and fine-tuning: the nets' test error on the probe digits along the way."""
    final = res.final_error()
    ch.glue("pre_final_error", final[GROUPS[0]], fmt=".1%")
    ch.glue("rnd_final_error", final[GROUPS[1]], fmt=".1%")
    ch.figure("ch4_probe_error", plot_probe_error(res.errors, res.labels,
                                                  best_epochs={g: t.selection["best_epoch"]
                                                               for g, t in res.training.items()}))


def tsne(ch: runtime.Chapter, res: Result) -> None:
    """The picture: all points embedded together with t-SNE, and the embeddings' settings and times."""
    p, meta = ch.params, res.embed_meta
    ch.glue("tsne_seconds", meta["tsne_seconds"], fmt=".1f")
    ch.glue("isomap_seconds", meta["isomap_seconds"], fmt=".1f")
    ch.glue("tsne_cpu_seconds", meta["tsne_cpu_seconds"], fmt=".1f")
    ch.glue("pca_dims", p["pca_dims"], fmt="d")
    ch.glue("perplexity", p["perplexity"], fmt="g")
    ch.glue("isomap_neighbors", p["isomap_neighbors"], fmt="d")
    ch.glue("isomap_neighbour_count", plural(p["isomap_neighbors"], "neighbour"))
    ch.glue("embed_threads", plural(p["embed_jobs"], "thread"))
    ch.figure("ch4_tsne", plot_embedding_figure(
        res.embedding["tsne"], res.labels,
        title=f"t-SNE of {n_points(p):,} function vectors ({2 * p['n_seeds']} nets, {p['finetune_epochs'] + 1} points each)"))


def isomap(ch: runtime.Chapter, res: Result) -> None:
    """The same points embedded with ISOMAP, and whether its neighbour graph was connected."""
    ch.glue("isomap_graph", "is connected" if res.embed_meta["isomap_connected"] else
            "fell apart into several pieces that ISOMAP joined by their shortest links")
    ch.figure("ch4_isomap", plot_embedding_figure(res.embedding["isomap"], res.labels,
                                                  title="ISOMAP of the same function vectors"))


def two_groups(ch: runtime.Chapter, res: Result) -> None:
    """Two groups? The leave-one-net-out nearest-neighbour accuracy, and how sure the nets are at the start."""
    m = res.measures
    ch.glue("knn_neighbours", plural(ch.params["knn_k"], "nearest neighbour"))
    ch.glue("knn_all", m["knn_all"], fmt=".1%")
    ch.glue("knn_min", min(m["knn_per_epoch"]), fmt=".1%")
    ch.glue("knn_max", max(m["knn_per_epoch"]), fmt=".1%")
    ch.glue("knn_epoch0", m["knn_per_epoch"][0], fmt=".1%")
    ch.glue("knn_after_start", m["knn_after_start"], fmt=".1%")
    conf = res.mean_confidence()
    for g in GROUPS:
        ch.glue(f"conf0_{_TAGS[g]}", float(conf[g][0]), fmt=".1%")
        ch.glue(f"conf1_{_TAGS[g]}", float(conf[g][1]), fmt=".1%")
    ch.glue("uniform", 1 / N_CLASSES, fmt=".0%")
    ch.figure("ch4_knn_accuracy", plot_knn_accuracy(m))


def distances(ch: runtime.Chapter, res: Result) -> None:
    """How far apart? Distances within and between the groups, and the bootstrap interval at the end."""
    m = res.measures
    tight = m["tighter_last"]
    ch.glue("within_pre_last", m["within"][GROUPS[0]][-1], fmt=".2f")
    ch.glue("within_rnd_last", m["within"][GROUPS[1]][-1], fmt=".2f")
    ch.glue("between_last", m["between"][-1], fmt=".2f")
    ch.glue("tighter_sentence", f"The pre-trained nets are {'closer to' if tight['difference'] > 0 else 'farther from'} "
                                f"one another than the random ones by {abs(tight['difference']):.2f}")
    ch.glue("tighter_low", tight["low"], fmt=".2f")
    ch.glue("tighter_high", tight["high"], fmt=".2f")
    ch.glue("tighter_level", tight["level"], fmt=".0%")
    ch.glue("max_distance", float(np.sqrt(2 * ch.params["n_test_cases"])), fmt=".1f")
    ch.figure("ch4_group_distances", plot_group_distances(m))


def first_epoch(ch: runtime.Chapter, res: Result) -> None:
    """Where does a net go in its first epoch: away from its start, towards the others?"""
    m = res.measures
    for g in GROUPS:
        ch.glue(f"start_{_TAGS[g]}", m["to_start_after_epoch1"][g], fmt=".2f")
        ch.glue(f"pair_{_TAGS[g]}", m["pairwise_after_epoch1"][g], fmt=".2f")
    ch.figure("ch4_distance_to_start", plot_distance_to_start(m))


def conclusions(ch: runtime.Chapter, res: Result) -> None:
    """The conclusions, one sentence per part of the claim, and the table beside Erhan et al. (2010)."""
    p = ch.params
    texts = conclusion_texts(res.measures, {g: float(c[0]) for g, c in res.mean_confidence().items()},
                             finetune_epochs=p["finetune_epochs"])
    for key, text in texts.items():
        ch.glue(f"conclusion_{key}", text)
    table = comparison_table(res.measures, n_seeds=p["n_seeds"], sizes=_sizes(ch), n_test_cases=p["n_test_cases"],
                             finetune_epochs=p["finetune_epochs"])
    runtime.show(_comparison_styler(table))


# -- the claim -----------------------------------------------------------------------------------------

def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C4 (DESIGN.md), each tested on this run's numbers.

    With fewer than :data:`MIN_NETS` nets per group every part is not tested (the measures are
    too noisy to judge); every part compares the two groups, so when a group did not converge every
    part is not tested at this scale (:func:`gate_unconverged`).
    """
    return gate_unconverged(_measured_parts(ch, res), {g: t.selection for g, t in res.training.items()})


def gate_unconverged(parts: Sequence[claims.Part], records: Mapping[str, Mapping]) -> list[claims.Part]:
    """Every tested part becomes "not tested at this scale" (:func:`pretraining.book.fairness.gate`) when a group
    did not converge (:func:`pretraining.core.selection.setting_converged` of its selection record in
    ``records``, {group: record}): each part of C4 compares both groups."""
    return fairness.gate(parts, lambda key: GROUPS, records, label=lambda g: f"the {g} nets")


def _measured_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts as the function-space measures decide them (before the convergence gate)."""
    n, m = ch.params["n_seeds"], res.measures
    v = verdicts(m)
    few = n < MIN_NETS
    reason = f"only {n} nets per group (fewer than {MIN_NETS}): these measures are too noisy to judge the claim"
    pre, rnd = GROUPS
    t = m["tighter_last"]
    last = {g: m["within"][g][-1] for g in GROUPS}
    return [
        claims.part("a", "pre-trained and randomly initialised nets form two groups in function space that never "
                    "meet (at any epoch)", None if few else v["separated"],
                    reason if few else
                    f"leave-one-net-out nearest-neighbour group accuracy over all epochs {m['knn_all']:.1%} "
                    f"(epoch 0: {m['knn_per_epoch'][0]:.1%}), from epoch 1 on {m['knn_after_start']:.1%}; "
                    f"no overlap means 100%; error-matched checkpoints are not compared yet",
                    effect=m["knn_all"], knn_all=m["knn_all"], knn_epoch0=m["knn_per_epoch"][0], knn_after_start=m["knn_after_start"]),
        _closer_part(m, few, reason),
        claims.part("c", "pre-trained nets are more alike than randomly initialised ones (at the last epoch)",
                    None if few else v["pretrained_tighter"],
                    reason if few else
                    f"after the last epoch two pre-trained nets are {last[pre]:.2f} apart, two random nets "
                    f"{last[rnd]:.2f}; difference {t['difference']:.2f}, {t['level']:.0%} bootstrap interval "
                    f"{t['low']:.2f} to {t['high']:.2f} (the bar: the whole interval above 0); whether the "
                    f"pre-trained spread shrinks while the random one grows is not measured yet",
                    test="bootstrap interval (nets resampled within each group)", effect=t["difference"],
                    ci95=(t["low"], t["high"]), n=n, within_last={_KEYS[g]: last[g] for g in GROUPS}, difference=t["difference"],
                    low=t["low"], high=t["high"], level=t["level"]),
    ]


def _closer_part(m: Mapping, few: bool, reason: str) -> claims.Part:
    """Part (b): in each group, per net, distance to its own start minus mean distance to the others.

    The pairs are the two distances of one net (Wilcoxon signed-rank over the nets of a group); the
    part needs it in both groups, so its p is the larger of the two (an intersection-union test, valid
    at the stated level) and its effect the smaller median difference.
    """
    claim = "after one epoch nets are closer to one another than to their own starting points"
    s, q = m["to_start_after_epoch1"], m["pairwise_after_epoch1"]
    pre, rnd = GROUPS
    numbers = {"pairwise_after_epoch1": {_KEYS[g]: q[g] for g in GROUPS},
               "to_start_after_epoch1": {_KEYS[g]: s[g] for g in GROUPS}}
    if few:
        return claims.part("b", claim, None, reason, **numbers)
    tests = {g: stats.wilcoxon(m["epoch1_per_net"][g]["to_start"], m["epoch1_per_net"][g]["to_others"])
             for g in GROUPS}
    result = {"test": "wilcoxon", "p": max(t["p"] for t in tests.values()), "n": min(t["n"] for t in tests.values()),
              "effect": min(t["effect"] for t in tests.values())}
    evidence = (f"after one epoch two pre-trained nets are {q[pre]:.2f} apart and {s[pre]:.2f} from their starts; "
                f"two random nets {q[rnd]:.2f} apart and {s[rnd]:.2f} from their starts; per net (distance to its "
                f"start minus mean distance to the others), median {tests[pre]['effect']:.2f} pre-trained "
                f"(p = {tests[pre]['p']:.2g}) and {tests[rnd]['effect']:.2f} random (p = {tests[rnd]['p']:.2g}); "
                "the part needs both groups, so its p is the larger one")
    return claims.from_test("b", claim, result, evidence, direction=all(t["effect"] > 0 for t in tests.values()),
                            **numbers)


def results_record(p: Mapping, res: Result) -> dict:
    """The chapter's results file entry: per group (by its key, "pretrained" / "random") the selection
    record, ``converged``, the chosen rate and the test errors at the best epochs; then the
    function-space measures, the verdicts and the embeddings' times."""
    m, tr = res.measures, res.training
    final, conf = res.final_error(), res.mean_confidence()
    return {
        "n_nets_per_group": p["n_seeds"],
        "n_test_cases": p["n_test_cases"],
        "epochs": p["finetune_epochs"],
        "selection": {_KEYS[g]: t.selection for g, t in tr.items()},
        "converged": {_KEYS[g]: t.converged for g, t in tr.items()},
        "finetune_lr": {_KEYS[g]: t.lr for g, t in tr.items()},
        "test_error_at_best_epoch": {_KEYS[g]: t.test_error for g, t in tr.items()},
        "test_error_at_best_epoch_median": {_KEYS[g]: float(np.median(t.test_error)) for g, t in tr.items()},
        "knn_group_accuracy": m["knn_all"],
        "knn_group_accuracy_per_epoch": m["knn_per_epoch"],
        "knn_group_accuracy_after_start": m["knn_after_start"],
        "within_distance": {_KEYS[g]: m["within"][g] for g in GROUPS},
        "between_distance": m["between"],
        "distance_to_start_after_epoch1": {_KEYS[g]: m["to_start_after_epoch1"][g] for g in GROUPS},
        "pairwise_after_epoch1": {_KEYS[g]: m["pairwise_after_epoch1"][g] for g in GROUPS},
        "within_difference_last_epoch": m["tighter_last"],
        "mean_confidence_epoch0": {_KEYS[g]: float(conf[g][0]) for g in GROUPS},
        "probe_error_final_median": {_KEYS[g]: final[g] for g in GROUPS},
        "claims": res.verdicts,
        "tsne_seconds": res.embed_meta["tsne_seconds"],
        "tsne_cpu_seconds": res.embed_meta["tsne_cpu_seconds"],
        "isomap_seconds": res.embed_meta["isomap_seconds"],
    }


def finish(ch: runtime.Chapter, res: Result) -> None:
    """The claim's parts and verdict, the results file, the provenance."""
    p, m = ch.params, res.measures
    n, pre, rnd = p["n_seeds"], *GROUPS
    tight = m["tighter_last"]
    last = {g: m["within"][g][-1] for g in GROUPS}

    def trained(g: str, t: GroupTraining) -> str:
        return (f"{g} rate {t.lr:g}, median best epoch {np.median(t.selection['best_epoch']):.0f}, "
                f"median test error {np.median(t.test_error):.1%}{'' if t.converged else ', not converged'}")

    finding = (f"{n}+{n} nets ({'; '.join(trained(g, t) for g, t in res.training.items())}): "
               f"nearest-neighbour group accuracy {m['knn_all']:.1%} "
               f"({m['knn_per_epoch'][0]:.1%} at epoch 0, {m['knn_after_start']:.1%} from epoch 1 on); after one epoch "
               f"distance to own start {m['to_start_after_epoch1'][pre]:.2f}/{m['to_start_after_epoch1'][rnd]:.2f} "
               f"vs to another net {m['pairwise_after_epoch1'][pre]:.2f}/{m['pairwise_after_epoch1'][rnd]:.2f} "
               f"(pre-trained/random); final within-group distance {last[pre]:.2f} (pre-trained) vs {last[rnd]:.2f} "
               f"(random), {tight['level']:.0%} CI of the difference {tight['low']:.2f} to {tight['high']:.2f}.")
    ch.finish(results_record(p, res), parts=claim_parts(ch, res), finding=finding)


# -- text and tables -------------------------------------------------------------------------------------


def _sizes(ch: runtime.Chapter) -> list[int]:
    """The nets' layer sizes [V, H_1..H_L, C]."""
    return [ch.data.train.x.shape[1], *ch.params["hidden_sizes"], N_CLASSES]


def conclusion_texts(measures: Mapping, confidence_epoch0: Mapping[str, float], *,
                     finetune_epochs: int) -> dict[str, str]:
    """The conclusions' sentences, one per part of the claim: {"separated", "closer", "tighter"}.

    measures: :func:`measure_trajectories`; confidence_epoch0: {group: mean largest output
    probability before fine-tuning} (see :func:`probe_confidence`). The "separated" sentence
    continues "Pre-trained and randomly initialised nets ...".
    """
    m, v = measures, verdicts(measures)
    pre, rnd = GROUPS
    if v["separated"]:
        separated = ("form two groups with no overlap at any epoch: the nearest point of another net always "
                     "belongs to the same group.")
    elif v["separated_after_start"]:
        separated = (f"form two groups with no overlap from the first epoch on (nearest-neighbour accuracy "
                     f"{m['knn_after_start']:.1%} over epochs 1 to {finetune_epochs}). Before fine-tuning "
                     f"they are mixed (accuracy {m['knn_per_epoch'][0]:.1%} at epoch 0): with a fresh "
                     f"random softmax layer every net outputs nearly uniform probabilities (largest probability "
                     f"{confidence_epoch0[pre]:.1%} and {confidence_epoch0[rnd]:.1%} on average), so in function "
                     f"space all nets start close together; the groups part only once fine-tuning begins.")
    else:
        separated = (f"overlap: even from the first epoch on, the nearest-neighbour rule puts "
                     f"{1 - m['knn_after_start']:.1%} of the points into the wrong group.")

    def first_epoch_text(g: str, name: str) -> str:
        s, p = m["to_start_after_epoch1"][g], m["pairwise_after_epoch1"][g]
        return (f"{name} nets are {'closer to each other' if p < s else 'not closer to each other'} "
                f"({p:.2f}) than to their own starts ({s:.2f})")

    closer = (f"After one epoch, on average, {first_epoch_text(pre, 'pre-trained')}; "
              f"{first_epoch_text(rnd, 'randomly initialised')} (part (b) below tests it net by net, in both "
              "groups).")
    tight = m["tighter_last"]
    last = {g: m["within"][g][-1] for g in GROUPS}
    if v["pretrained_tighter"]:
        word = "pre-trained nets are more similar to one another"
    elif tight["difference"] > 0:
        word = ("pre-trained nets are slightly closer to one another, but the bootstrap interval includes "
                "no difference, so this run cannot tell")
    else:
        word = "pre-trained nets are not more similar to one another"
    n_tighter = sum(a < b for a, b in zip(m["within"][pre], m["within"][rnd]))
    tighter = (f"After the last epoch two pre-trained nets are {last[pre]:.2f} apart and two random nets "
               f"{last[rnd]:.2f} (difference {tight['difference']:.2f}, {tight['level']:.0%} interval "
               f"{tight['low']:.2f} to {tight['high']:.2f}): {word}. The within-group distance is smaller for "
               f"the pre-trained nets at {n_tighter} of the {len(m['within'][pre])} epochs.")
    return {"separated": separated, "closer": closer, "tighter": tighter}


def comparison_table(measures: Mapping, *, n_seeds: int, sizes: Sequence[int], n_test_cases: int,
                     finetune_epochs: int) -> pd.DataFrame:
    """This run beside Erhan et al. (2010), figs. 5 and 6 (:data:`ERHAN2010_FUNCTION_SPACE`; qualitative).

    measures: :func:`measure_trajectories`; sizes: the nets' layer sizes [V, H_1..H_L, C].
    Rows: nets, function vector, two groups, spread of the pre-trained nets.
    """
    ref = ERHAN2010_FUNCTION_SPACE
    m, v = measures, verdicts(measures)
    pre, rnd = GROUPS
    separation, spread = ref.findings["separation"], ref.findings["spread"]

    def yes(b: bool) -> str:
        return "yes" if b else "no"

    n_ref = ref.numbers["nets_per_group"]
    return pd.DataFrame({
        "Erhan et al. 2010 (figures 5, 6)": [
            f"{n_ref} + {n_ref}, {ref.numbers['hidden_layers']} hidden layers", ref.data, separation, spread],
        "this run": [
            f"{n_seeds} + {n_seeds}, {len(sizes) - 2} hidden layers ({'-'.join(map(str, sizes))})",
            f"outputs on {n_test_cases:,} test digits, {finetune_epochs} epochs",
            (f"nearest-neighbour accuracy {m['knn_all']:.1%} (no overlap: {yes(v['separated'])}); "
            f"from epoch 1 on {m['knn_after_start']:.1%} (no overlap: {yes(v['separated_after_start'])})"),
            (f"within-group distance at the end: pre-trained {m['within'][pre][-1]:.2f}, random "
            f"{m['within'][rnd][-1]:.2f} (smaller for pre-trained, beyond the bootstrap interval: "
            f"{yes(v['pretrained_tighter'])})")],
    }, index=["nets", "function vector", "two groups", "spread of the pre-trained nets"])


def _comparison_styler(table: pd.DataFrame) -> pd.io.formats.style.Styler:
    """:func:`comparison_table` for the page: capitalised headers, every cell left-aligned, text wrapping."""
    shown = table.rename(columns=lambda c: c[:1].upper() + c[1:], index=lambda r: r[:1].upper() + r[1:])
    return (shown.style
            .set_properties(**{"text-align": "left", "vertical-align": "top"})
            .set_table_styles([{"selector": "th", "props": "text-align: left; vertical-align: top;"},
                               {"selector": "td, th", "props": "border-bottom: 1px solid #ddd; padding: 0.3em 0.5em;"}]))


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _check_groups(groups: Sequence[str], n: int) -> list[str]:
    if isinstance(groups, (str, bytes)):
        raise TypeError(f"groups must be a sequence of {n} labels, got the string {groups!r}")
    groups = list(groups)
    if len(groups) != n:
        raise ValueError(f"groups must have one label per net ({n}), got {len(groups)}")
    bad = sorted({g for g in groups if g not in GROUPS}, key=str)
    if bad:
        raise ValueError(f"groups contains {bad}; allowed labels are {list(GROUPS)}")
    for g in GROUPS:
        if groups.count(g) < 2:
            raise ValueError(f"groups needs at least 2 nets labelled {g!r}, got {groups.count(g)}")
    return groups


def _as_vectors(vectors: object) -> np.ndarray:
    """(M, E+1, D) trajectories, or (M, E+1, T, C) probabilities flattened to (M, E+1, T*C)."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    v = np.asarray(vectors)
    if v.ndim == 4:
        v = v.reshape(v.shape[0], v.shape[1], -1)
    if v.ndim != 3 or v.size == 0:
        raise ValueError(f"vectors must have shape (nets, epochs + 1, D) or (nets, epochs + 1, T, C), got {v.shape}")
    if v.dtype.kind != "f" or not np.isfinite(v).all():
        raise ValueError("vectors must be finite floating-point numbers")
    return v


def _as_numpy(x: object) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)


# --------------------------------------------------------------------------------------------
# groups, probe digits, training
# --------------------------------------------------------------------------------------------
def group_labels(n_seeds: int) -> list[str]:
    """Labels of the 2 * n_seeds members of :func:`train_groups`: n_seeds pre-trained, then n_seeds random."""
    n_seeds = require_int("n_seeds", n_seeds, 1)
    return [GROUPS[0]] * n_seeds + [GROUPS[1]] * n_seeds


def probe_indices(n_available: int, n_test_cases: int) -> np.ndarray:
    """Evenly spaced row indices floor(i * n_available / n_test_cases), i < n_test_cases -> (T,) int64.

    The mnist-10k test set is sorted by class, so evenly spaced rows give every class in
    proportion (the first T rows would all be zeros). n_test_cases == n_available takes them all.
    """
    n_available = require_int("n_available", n_available, 1)
    n_test_cases = require_int("n_test_cases", n_test_cases, 1, n_available)
    return (np.arange(n_test_cases, dtype=np.int64) * n_available) // n_test_cases


def record_trajectories(clf: Classifier, x: Tensor, y: Tensor, probe_x: Tensor,
                        config: FinetuneConfig, seeds: Sequence[int], *,
                        progress: bool = True) -> tuple[Tensor, dict[str, list]]:
    """Fine-tune ``clf`` in place (:func:`pretraining.core.train.finetune`), recording its outputs.

    x (N, V), y (N,) training data; probe_x (T, V) the fixed test digits. The softmax outputs of
    every member on probe_x are taken before fine-tuning and after each of the config.epochs
    epochs (through finetune's ``on_epoch`` callback). Returns probs (M, E + 1, T, C) float32 on
    the CPU and finetune's history.
    """
    if not isinstance(clf, Classifier):
        raise TypeError(f"clf must be a Classifier, got {type(clf).__name__}")
    if not isinstance(config, FinetuneConfig):
        raise TypeError(f"config must be a FinetuneConfig, got {type(config).__name__}")
    if not isinstance(probe_x, torch.Tensor) or probe_x.dim() != 2 or probe_x.shape[1] != clf.sizes[0] \
            or probe_x.shape[0] == 0:
        shape = tuple(probe_x.shape) if isinstance(probe_x, torch.Tensor) else type(probe_x).__name__
        raise ValueError(f"probe_x must be a tensor of shape (T, {clf.sizes[0]}) with T >= 1, got {shape}")
    probe_x = probe_x.to(device=clf.device, dtype=clf.dtype)
    M, T, C = clf.n_members, probe_x.shape[0], clf.sizes[-1]
    probs = torch.empty(M, config.epochs + 1, T, C, dtype=torch.float32)

    @torch.no_grad()
    def record(epoch: int, model: Classifier, _nll=None) -> None:
        probs[:, epoch] = model.predict_proba(probe_x).float().cpu()

    record(0, clf)
    history = finetune(clf, x, y, config, seeds, on_epoch=record, progress=progress)
    return probs, history


def group_makers(stack: Stack, pretrained_seeds: Sequence[int], random_seeds: Sequence[int], *,
                 n_classes: int = N_CLASSES) -> dict[str, Callable[[Sequence[int]], Classifier]]:
    """{group: make(seeds) -> a fresh :class:`Classifier`, one member per entry of seeds}, for
    :func:`pretraining.core.selection.select_and_train` and :func:`train_groups`.

    stack: N pre-trained members (hidden sizes H_1..H_L) whose seeds are ``pretrained_seeds``; a
    pre-trained net copies the layers of its seed's member and adds a random softmax layer
    (:meth:`Classifier.from_stack`); a random net has the same sizes [V, H_1..H_L, C], weights
    uniform in +-1/sqrt(fan_in) from its seed (:meth:`Classifier.random`). A group's make accepts
    only that group's seeds (repeats allowed). ``stack`` itself is never changed.
    """
    if not isinstance(stack, Stack):
        raise TypeError(f"stack must be a pre-trained Stack, got {type(stack).__name__}")
    pretrained_seeds = validate_seeds(pretrained_seeds, stack.n_members, name="pretrained_seeds")
    random_seeds = validate_seeds(random_seeds, stack.n_members, name="random_seeds")
    if set(pretrained_seeds) & set(random_seeds):
        raise ValueError(f"pretrained_seeds and random_seeds share {sorted(set(pretrained_seeds) & set(random_seeds))}; "
                         "every net needs its own seed")
    n_classes = require_int("n_classes", n_classes, 2)
    first = stack.layers[0]
    member = {s: m for m, s in enumerate(pretrained_seeds)}

    def check(name: str, seeds: Sequence[int], allowed: Sequence[int]) -> list[int]:
        seeds = validate_seeds(seeds)
        if not set(seeds) <= set(allowed):
            raise ValueError(f"seeds={list(seeds)!r} is not allowed; the {name} nets' seeds are {list(allowed)}")
        return seeds

    def pretrained(seeds: Sequence[int]) -> Classifier:
        rows = [member[s] for s in check(GROUPS[0], seeds, pretrained_seeds)]
        picked = Stack(stack.kind, [type(layer).from_state_dict({k: t[rows] for k, t in layer.state_dict().items()})
                                    for layer in stack.layers])
        return Classifier.from_stack(picked, n_classes, seeds)

    def random(seeds: Sequence[int]) -> Classifier:
        return Classifier.random(stack.sizes + [n_classes], check(GROUPS[1], seeds, random_seeds),
                                 device=first.device, dtype=first.dtype)

    return {GROUPS[0]: pretrained, GROUPS[1]: random}


def train_groups(stack: Stack, x: Tensor, y: Tensor, probe_x: Tensor,
                 config: FinetuneConfig, pretrained_seeds: Sequence[int], random_seeds: Sequence[int], *,
                 n_classes: int = N_CLASSES, progress: bool = True) -> tuple[Tensor, dict[str, list]]:
    """Fine-tune N pre-trained and N randomly initialised nets (:func:`group_makers`) as ONE batch of
    2N members, recording their outputs (:func:`record_trajectories`).

    stack: N pre-trained members whose seeds are ``pretrained_seeds``; config: its ``lr`` one rate
    or one per member (2N, pre-trained nets first: each group its own rate).
    x (N_train, V), y (N_train,): the training digits; probe_x (T, V): the probe digits.
    Returns probs (2N, E + 1, T, C) (pre-trained nets first, see :func:`group_labels`) and the
    fine-tuning history (lists of 2N values per epoch). ``stack`` itself is not changed.
    """
    makers = group_makers(stack, pretrained_seeds, random_seeds, n_classes=n_classes)
    clf = Classifier.stack_members([makers[GROUPS[0]](pretrained_seeds), makers[GROUPS[1]](random_seeds)])
    return record_trajectories(clf, x, y, probe_x, config, list(pretrained_seeds) + list(random_seeds),
                               progress=progress)


def probe_errors(probs: object, labels: object) -> np.ndarray:
    """Test error on the probe digits: probs (M, E+1, T, C), labels (T,) -> (M, E+1) float64 in [0, 1]."""
    p, lab = _as_numpy(probs), _as_numpy(labels)
    if p.ndim != 4:
        raise ValueError(f"probs must have shape (nets, epochs + 1, T, C), got {p.shape}")
    if lab.shape != (p.shape[2],) or lab.dtype.kind not in "iu":
        raise ValueError(f"labels must be ({p.shape[2]},) integers (one per probe digit), got {lab.shape} {lab.dtype}")
    return (p.argmax(-1) != lab[None, None, :]).mean(-1, dtype=np.float64)


def probe_confidence(probs: object) -> np.ndarray:
    """Mean largest output probability over the probe digits: probs (M, E+1, T, C) -> (M, E+1) float64.

    1/C for nets that output the uniform distribution, 1 for nets certain of every answer.
    """
    p = _as_numpy(probs)
    if p.ndim != 4:
        raise ValueError(f"probs must have shape (nets, epochs + 1, T, C), got {p.shape}")
    return p.max(-1).mean(-1, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# measurements in function space
# --------------------------------------------------------------------------------------------
def measure_trajectories(vectors: object, groups: Sequence[str], *, k: int = 1, seed: int = 0) -> dict:
    """The claims of the chapter, measured in the original D-dimensional function space.

    vectors (M, E+1, D) or probs (M, E+1, T, C); groups (M,) labels from :data:`GROUPS`, at
    least 2 nets each; E >= 1; seed: the chapter seed (the bootstrap's random numbers).
    Euclidean distances throughout. Returns a JSON-able dict:

    - ``within``: {group: [E+1 floats]}, per epoch the mean distance between two distinct nets
      of the group; ``between``: [E+1], the mean distance between a pre-trained and a random net;
    - ``knn_per_epoch``: [E+1], leave-one-net-out k-NN accuracy of telling the groups apart from
      the points of that epoch alone; ``knn_all``: the same over all M*(E+1) points at once
      (each point's neighbours come from other nets, any epoch);
    - ``to_start``: {group: [E+1]}, the mean distance of a net to its own epoch-0 point;
    - ``knn_after_start``: like ``knn_all`` but over the points of epochs 1..E only;
    - ``to_start_after_epoch1`` / ``pairwise_after_epoch1``: {group: float}, the values at epoch 1
      of ``to_start`` and ``within``; ``epoch1_per_net``: {group: {"to_start": [n], "to_others": [n]}},
      per net of the group its distance to its own start and its mean distance to the group's other
      nets after one epoch (the paired measurements of part b);
    - ``tighter_last``: :func:`within_difference_ci` at the last epoch (random minus pre-trained).
    """
    v = _as_vectors(vectors)
    M, P, _ = v.shape
    groups = _check_groups(groups, M)
    k = require_int("k", k, 1)
    if P < 2:
        raise ValueError(f"vectors need at least 2 points per net (epoch 0 and epoch 1), got {P}")
    within: dict[str, list[float]] = {g: [] for g in GROUPS}
    between, knn_epoch = [], []
    nets = list(range(M))
    for e in range(P):
        d = fs.group_distances(v[:, e], groups)
        for g in GROUPS:
            within[g].append(d["within"][g])
        between.append(d["between"][(groups[0], next(g for g in groups if g != groups[0]))])
        knn_epoch.append(fs.knn_group_accuracy(v[:, e], groups, nets, k=k))
    flat = v.reshape(M * P, -1)
    knn_all = fs.knn_group_accuracy(flat, np.repeat(groups, P), np.repeat(nets, P), k=k)
    later = v[:, 1:].reshape(M * (P - 1), -1)
    knn_later = fs.knn_group_accuracy(later, np.repeat(groups, P - 1), np.repeat(nets, P - 1), k=k)
    start = fs.distance_to_start(v)  # (M, P)
    g_arr = np.asarray(groups)
    to_start = {g: start[g_arr == g].mean(0).tolist() for g in GROUPS}
    epoch1 = {}
    for g in GROUPS:  # per net after one epoch: distance to its own start, mean distance to the others
        d = fs.pairwise_distances(v[g_arr == g, 1])
        others = (d.sum(1) / (len(d) - 1)).tolist()
        epoch1[g] = {"to_start": start[g_arr == g, 1].tolist(), "to_others": others}
    return {
        "epochs": list(range(P)),
        "within": within,
        "between": between,
        "knn_per_epoch": knn_epoch,
        "knn_all": knn_all,
        "knn_after_start": knn_later,
        "to_start": to_start,
        "to_start_after_epoch1": {g: to_start[g][1] for g in GROUPS},
        "pairwise_after_epoch1": {g: within[g][1] for g in GROUPS},
        "epoch1_per_net": epoch1,
        "tighter_last": within_difference_ci(v[:, -1], groups, seed=seed),
    }


def within_difference_ci(vectors: object, groups: Sequence[str], *, n_boot: int = 2000, level: float = 0.95,
                         seed: int = 0) -> dict[str, float]:
    """How much closer the pre-trained nets are to one another than the random ones, with a bootstrap CI.

    vectors (M, D): one point per net (one epoch); groups (M,) from :data:`GROUPS`. The statistic
    is (mean distance between two random nets) - (mean distance between two pre-trained nets);
    positive means the pre-trained nets are more alike. The CI resamples the nets of each group
    with replacement (``n_boot`` times, from ``generator(seed, _BOOTSTRAP)``); pairs of copies of the
    same net are left out of a resampled mean. Returns {"difference", "low", "high", "level"}.
    """
    x = _as_numpy(vectors)
    if x.ndim != 2 or x.dtype.kind != "f" or not np.isfinite(x).all():
        raise ValueError(f"vectors must be finite floats of shape (nets, D), got {x.dtype} {x.shape}")
    groups = _check_groups(groups, x.shape[0])
    n_boot = require_int("n_boot", n_boot, 1)
    level = require_float("level", level, gt=0, lt=1)
    gen = generator(require_int("seed", seed, 0), _BOOTSTRAP)
    d = {g: fs.pairwise_distances(x[np.asarray(groups) == g]) for g in GROUPS}

    def resample(n: int) -> np.ndarray:
        return torch.randint(0, n, (n,), generator=gen).numpy()

    def mean_pair(dist: np.ndarray, idx: np.ndarray) -> float:
        distinct = idx[:, None] != idx[None, :]
        return float(dist[np.ix_(idx, idx)][distinct].mean()) if distinct.any() else math.nan

    pre, rnd = GROUPS
    full = {g: mean_pair(d[g], np.arange(len(d[g]))) for g in GROUPS}
    boots = np.array([mean_pair(d[rnd], resample(len(d[rnd]))) - mean_pair(d[pre], resample(len(d[pre])))
                      for _ in range(n_boot)])
    low, high = np.nanquantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"difference": full[rnd] - full[pre], "low": float(low), "high": float(high), "level": level}


def verdicts(measures: Mapping) -> dict[str, bool]:
    """The sub-claims as booleans, from :func:`measure_trajectories`'s dict.

    ``separated``: no overlap, every point's nearest other-net point is in its own group
    (knn_all == 1); ``separated_after_start``: the same for the points of epochs 1..E;
    ``closer_to_each_other``: after one epoch, in each group, the mean distance between nets is
    smaller than the mean distance of a net to its own start; ``pretrained_tighter``: at the last
    epoch the pre-trained nets are closer to one another than the random ones, the whole bootstrap
    CI of the difference above 0.
    """
    return {
        "separated": measures["knn_all"] == 1.0,
        "separated_after_start": measures["knn_after_start"] == 1.0,
        "closer_to_each_other": all(measures["pairwise_after_epoch1"][g] < measures["to_start_after_epoch1"][g]
                                    for g in GROUPS),
        "pretrained_tighter": measures["tighter_last"]["low"] > 0,
    }


# --------------------------------------------------------------------------------------------
# 2-D embeddings
# --------------------------------------------------------------------------------------------
def embed_trajectories(vectors: object, *, perplexity: float = 30.0, pca_dims: int | None = 50,
                       n_neighbors: int = 10, seed: int = 0, n_jobs: int = 1) -> dict:
    """All points of all nets embedded together in 2-D with t-SNE and with Isomap.

    vectors (M, E+1, D) or probs (M, E+1, T, C). Settings as in :func:`functionspace.embed_tsne`
    and :func:`functionspace.embed_isomap` (PCA to ``pca_dims`` first). Returns
    {"tsne": (M, E+1, 2), "isomap": (M, E+1, 2) float64 arrays, "tsne_seconds", "isomap_seconds"}
    (the wall time of each embedding, PCA included), "tsne_cpu_seconds" (CPU time of this process's
    threads during t-SNE: with other work on the machine it tells the uncontended cost) and
    "isomap_connected": False when the ``n_neighbors`` graph fell into several components, which
    Isomap then joined by their shortest links (sklearn's warning about it is caught and reported
    this way instead).
    """
    v = _as_vectors(vectors)
    M, P, D = v.shape
    flat = v.reshape(M * P, D)
    t0, c0 = time.perf_counter(), time.process_time()
    tsne = fs.embed_tsne(flat, perplexity=perplexity, pca_dims=pca_dims, seed=seed, n_jobs=n_jobs)
    t1, c1 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        iso = fs.embed_isomap(flat, n_neighbors=n_neighbors, pca_dims=pca_dims)
    t2 = time.perf_counter()
    split = any("connected components" in str(w.message) for w in caught)
    for w in caught:
        if "connected components" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return {"tsne": tsne.reshape(M, P, 2), "isomap": iso.reshape(M, P, 2),
            "tsne_seconds": t1 - t0, "tsne_cpu_seconds": c1 - c0, "isomap_seconds": t2 - t1,
            "isomap_connected": not split}


# --------------------------------------------------------------------------------------------
# figures (each drawn under the book's style, figures.styled)
# --------------------------------------------------------------------------------------------
def plot_embedding(ax: Axes, points: object, groups: Sequence[str], *, title: str) -> None:
    """Scatter of 2-D trajectories points (M, E+1, 2) on ``ax``: one line per net, colour = epoch.

    Each group has its own colour map (light = epoch 0, dark = last epoch) and marker, with a
    horizontal colour bar each under the axes, named by the group on its left (epoch labels under
    the lowest); the nets' trajectories are thin lines of the group's colour. Every text is at
    least :data:`figures.SMALLEST_FONT_PT`.
    """
    from matplotlib.colors import ListedColormap, Normalize

    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"points must have shape (nets, epochs + 1, 2), got {p.shape}")
    groups = _check_groups(groups, p.shape[0])
    n_epochs = p.shape[1] - 1
    norm = Normalize(vmin=0, vmax=max(n_epochs, 1))
    epochs = np.broadcast_to(np.arange(p.shape[1]), p.shape[:2])
    ticks = sorted({0, n_epochs // 2, n_epochs})
    for i, g in enumerate(GROUPS):
        sel = np.asarray(groups) == g
        cmap = ListedColormap(plt.get_cmap(_COLOURS[g])(np.linspace(0.3, 1.0, 256)))  # epoch 0 visible on white
        for traj in p[sel]:
            ax.plot(traj[:, 0], traj[:, 1], color=_LINE[g], lw=0.6, alpha=0.35, zorder=1)
        sc = ax.scatter(p[sel, :, 0].ravel(), p[sel, :, 1].ravel(), c=epochs[sel].ravel(), cmap=cmap,
                        norm=norm, marker=_MARKERS[g], s=24, edgecolors="none", zorder=2, label=g)
        # the bar fills the right 3/4 of the axes' width, its group's name stands in the space on its left
        bar = plt.colorbar(sc, ax=ax, orientation="horizontal", fraction=0.035, pad=0.02, aspect=45,
                           shrink=0.75, anchor=(1.0, 0.5))
        bar.ax.set_ylabel(f"{g} ", rotation=0, ha="right", va="center", fontsize=figures.SMALLEST_FONT_PT + 1)
        bar.set_ticks(ticks)
        # later bars are stacked between the axes and the earlier ones: the first is the lowest
        bar.ax.tick_params(labelsize=figures.SMALLEST_FONT_PT, pad=1, labelbottom=i == 0)
        if i == 0:
            bar.set_label("fine-tuning epoch", labelpad=1)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    # the legend's markers in each group's line colour (the scatters' own would show the epoch-0 shade)
    handles = [Line2D([], [], ls="none", marker=_MARKERS[g], color=_LINE[g], markersize=7, label=g) for g in GROUPS]
    ax.legend(handles=handles, loc="best")


def plot_embedding_figure(points: object, groups: Sequence[str], *, title: str) -> Figure:
    """:func:`plot_embedding` of points (M, E+1, 2) on a figure of its own, as wide as the page."""
    with figures.styled():
        fig, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 6.8))
        fig.subplots_adjust(left=0.02, right=0.98, top=0.94, bottom=0.04)  # before the colour bars take their room
        plot_embedding(ax, points, groups, title=title)
    return fig


def _epoch_axis(ax: Axes, n_points: int, ylabel: str, title: str) -> None:
    ax.set_xlabel("fine-tuning epoch (0 = before fine-tuning)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xticks(range(0, n_points, max(1, math.ceil(n_points / 12))))


def plot_group_distances(measures: Mapping) -> Figure:
    """Mean pairwise distance within each group and between the groups, per epoch."""
    with figures.styled():
        fig, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 4.4))
        ep = measures["epochs"]
        for g in GROUPS:
            ax.plot(ep, measures["within"][g], marker=_MARKERS[g], color=_LINE[g], label=f"within {g}")
        ax.plot(ep, measures["between"], marker="s", color="0.3", ls="--", label="between the groups")
        _epoch_axis(ax, len(ep), "mean Euclidean distance", "Distances between nets in function space")
        ax.legend()
        fig.tight_layout()
    return fig


def plot_knn_accuracy(measures: Mapping) -> Figure:
    """Leave-one-net-out nearest-neighbour accuracy of telling the groups apart, per epoch."""
    with figures.styled():
        fig, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 3.9))
        ep = measures["epochs"]
        ax.plot(ep, measures["knn_per_epoch"], marker="o", color="0.2", label="points of this epoch only")
        ax.axhline(measures["knn_all"], color="tab:green", ls="--", label="all epochs together")
        ax.axhline(0.5, color="0.6", ls=":", label="chance (0.5)")
        ax.set_ylim(0.0, 1.05)
        _epoch_axis(ax, len(ep), "accuracy", "Can a nearest-neighbour rule tell the groups apart?")
        ax.legend(loc="lower right")
        fig.tight_layout()
    return fig


def plot_distance_to_start(measures: Mapping) -> Figure:
    """Per group: mean distance of a net to its own start vs mean distance between nets, per epoch.

    One panel per group, stacked (shared axes), the dotted line at epoch 1.
    """
    with figures.styled():
        fig, axes = plt.subplots(2, 1, figsize=(figures.PAGE_WIDTH, 6.6), sharex=True, sharey=True)
        ep = measures["epochs"]
        for ax, g in zip(axes, GROUPS):
            ax.plot(ep, measures["to_start"][g], marker=_MARKERS[g], color=_LINE[g], label="net to its own start")
            ax.plot(ep, measures["within"][g], marker=_MARKERS[g], color=_LINE[g], ls="--", mfc="white",
                    label="net to another net (same epoch)")
            ax.axvline(1, color="0.6", ls=":")
            _epoch_axis(ax, len(ep), "mean Euclidean distance", f"{g} nets")
            ax.legend(loc="best")
        axes[0].set_xlabel("")
        fig.suptitle("Where does a net go: away from its start, towards the others?")
        fig.tight_layout()
    return fig


def plot_probe_error(errors: object, groups: Sequence[str], *,
                     best_epochs: Mapping[str, Sequence[int]] | None = None) -> Figure:
    """Test error on the probe digits per epoch: errors (M, E+1); median and full range per group.

    best_epochs: {group: its nets' best validation epochs}; each group's median is marked by a
    dotted vertical line of its colour (the nets are reported there; the later points are shown).
    """
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"errors must have shape (nets, epochs + 1), got {e.shape}")
    groups = _check_groups(groups, e.shape[0])
    with figures.styled():
        fig, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 4.2))
        ep = np.arange(e.shape[1])
        for g in GROUPS:
            sel = e[np.asarray(groups) == g] * 100
            ax.fill_between(ep, sel.min(0), sel.max(0), color=_LINE[g], alpha=0.2)
            ax.plot(ep, np.median(sel, 0), marker=_MARKERS[g], color=_LINE[g], label=f"{g} (median, band = range)")
            if best_epochs is not None:
                ax.axvline(float(np.median(best_epochs[g])), color=_LINE[g], ls=":", lw=1.5,
                           label=f"{g}: median best validation epoch")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks([t for t in (1, 2, 5, 10, 20, 50, 100)
                       if e.min() * 100 / 2 <= t <= max(e.max() * 100 * 2, 2)])
        _epoch_axis(ax, e.shape[1], "test error on the probe digits (%)", "How well the nets classify along the way")
        ax.legend()
        fig.tight_layout()
    return fig
