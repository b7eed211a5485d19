"""Chapter 4: trajectories of pre-trained and randomly initialised nets in function space.

The notebook ``chapters/04_function_space.ipynb`` tells the story; this module does the work:

* :data:`SPEC` — the claim and the parameters, with the rules that tie them together (the probe
  digits fit in the test set, the embeddings' settings fit the fewest points a panel can have, ...);
* :func:`run` — per panel (:func:`panel_kinds`: DAE pre-training as in the paper's figure, RBM
  pre-training when ``rbm_panel``) pre-trains N stacks (shared cache) and trains the N pre-trained
  nets by the fair-fight protocol (:func:`pretraining.core.selection.select_and_train`: the group's
  rate chosen on the validation set, every net stopped early and reported at its best validation
  epoch, :func:`train_group`); the N random nets are trained the same way once and shared by every
  panel. While the protocol trains them, each net's outputs on the probe digits are recorded after
  every epoch (:func:`probe_track`), so the trajectories are those of the reported nets and cost no
  further training. A panel compares epochs 0..E, E the fewest epochs any of its 2N nets ran; it
  embeds all its points in 2-D and measures the claim in function space (the expensive steps
  through the cache);
* one function per section — :func:`setup`, :func:`training`, :func:`probe_error`, :func:`tsne`,
  :func:`isomap`, :func:`two_groups`, :func:`distances`, :func:`first_epoch`, :func:`second_panel`,
  :func:`conclusions`;
* :func:`claim_parts` and :func:`finish` — the claim's parts tested on the numbers, per panel
  (:func:`panel_parts`; a part whose groups did not converge is not tested, :func:`gate_unconverged`),
  the results file.

Before fine-tuning (epoch 0) and after every epoch, each net's softmax outputs on T fixed test
digits are recorded; concatenated, they are the net's point in function space (dimension D = T * C,
see :mod:`pretraining.analysis.functionspace`). The chapter embeds all points in 2-D (t-SNE, Isomap)
and measures the claims about Erhan et al.'s (2010) figures 5 and 6 in the original D-dimensional
space: separation also between points of equal probe error (so not just "how trained"), moving
together measured from epoch 1 (at epoch 0 every net is near the uniform output), and the spread of
each group over training.

Shapes: M nets of a panel (members), E its last common epoch, T probe digits, C classes, D = T * C.
Trajectories are ``probs`` (M, E + 1, T, C) or ``vectors`` (M, E + 1, D); index 0 on the second
axis is the net before fine-tuning. Groups are labelled with :data:`GROUPS`; the pre-trained nets
come first. Seeds: pre-trained net m is member m of the chapter seed (in every panel), random net m
is member N + m (:func:`pretraining.core.seeding.member_seeds`).
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
from ..book.experiments import pretrained_stack, selection_config, stack_configs
from ..book.specs import (
    STACK_PARAMS,
    Bool,
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
from ..core.selection import LONGER_RUN, PLATEAU_FRACTION, SelectionConfig, Track, select_and_train, setting_converged
from ..core.seeding import generator, member_seeds, validate_seeds
from ..core.train import FinetuneConfig, evaluate

Tensor = torch.Tensor

__all__ = [
    "GROUPS",
    "MIN_NETS",
    "N_CLASSES",
    "SPEC",
    "GroupTraining",
    "Panel",
    "Result",
    "cached_embedding",
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
    "hull_areas",
    "isomap",
    "measure_trajectories",
    "n_points",
    "panel_kinds",
    "panel_parts",
    "panel_table",
    "plot_distance_to_start",
    "plot_embedding",
    "plot_embedding_figure",
    "plot_group_distances",
    "plot_knn_accuracy",
    "plot_moved_together",
    "plot_probe_error",
    "plot_spread",
    "probe_confidence",
    "probe_error",
    "probe_errors",
    "probe_indices",
    "probe_track",
    "results_record",
    "run",
    "second_panel",
    "setup",
    "start",
    "tracked_probs",
    "train_group",
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
    """The fewest points in function space a panel can have: 2 * n_seeds nets, each before fine-tuning and
    after every epoch of the horizon, which is at least min(finetune_patience + 1, finetune_epochs) (a net
    stops at the earliest once its validation curve has run patience epochs past its best)."""
    return 2 * p["n_seeds"] * (min(p["finetune_patience"] + 1, p["finetune_epochs"]) + 1)


def _embedding_fits(p: Mapping) -> list[str]:
    points = n_points(p)
    out = []
    if not 3 * p["perplexity"] < points - 1:
        out.append(not_allowed("perplexity", p["perplexity"],
                               f"3 * perplexity must be < {points - 1} (the fewest points a panel can have minus one)"))
    if p["isomap_neighbors"] >= points:
        out.append(not_allowed("isomap_neighbors", p["isomap_neighbors"], f"fewer than the {points} points"))
    if p["knn_k"] > 2 * p["n_seeds"] - 1:
        out.append(not_allowed("knn_k", p["knn_k"], f"at most {2 * p['n_seeds'] - 1} (the other nets of one epoch)"))
    return out


def _memory(p: Mapping) -> tuple[int, list[str]]:
    """Bytes of the stacks, the largest fine-tuning batch (a group's nets, or the grid's rates x selection
    nets) and the recorded outputs of every group (as floats in the selection's curves, then a tensor)."""
    n_train, sizes, n = SPLIT_SIZES[p["dataset"]][0], [784, *p["hidden_sizes"]], p["n_seeds"]
    groups = 1 + len(panel_kinds(p))
    outputs = 40 * groups * n * (p["finetune_epochs"] + 1) * p["n_test_cases"] * N_CLASSES
    members = max(n, len(p["finetune_lr_grid"]) * p["finetune_select_seeds"])
    need = max(training_bytes(n, n_train, sizes, p["pretrain_batch_size"]),
               training_bytes(members, n_train, [*sizes, 10], p["finetune_batch_size"], greedy=False)) + outputs
    return need, ["n_seeds", "hidden_sizes", "finetune_epochs", "n_test_cases", "finetune_lr_grid",
                  "finetune_select_seeds", "rbm_panel"]


SPEC = ChapterSpec(
    "04_function_space",
    claim="Networks compared as functions (their concatenated outputs on a fixed set of test cases, embedded "
          "in 2-D with t-SNE) form two distinct groups with no overlap; after one epoch networks are more "
          "similar to one another than to their initial selves; pre-trained ones are more similar to one another.",
    paper="In t-SNE and ISOMAP pictures of 50 + 50 two-layer nets the two groups never meet and the "
          "pre-trained nets occupy a smaller region (Erhan et al. 2010, figs. 5 and 6).",
    params={
        "n_seeds": Param(30, Int(min=2, max=1000), "networks per group (pre-trained, random init); at least 2"),
        **{**STACK_PARAMS, "hidden_sizes": Param([400, 400], IntList(min=1, max=20000, max_len=6),
                                                 "widths of the hidden layers (the paper's figure: two layers)"),
           "dae_epochs": dataclasses.replace(STACK_PARAMS["dae_epochs"], default=2)},
        "rbm_panel": Param(False, Bool(), "also compare RBM pre-trained nets with the random ones (a second panel; "
                                          "the DAE panel, the paper's figure, is always run)"),
        # budget and patience: see the chapter's README entry (measured on 30 + 30 nets of width 400)
        **selection_params(grid=[0.2, 0.4743, 1.125, 2.667, 6.325], epochs=30, patience=3, select_seeds=1),
        "finetune_batch_size": Param(50, Int(min=1), "fine-tuning minibatch size"),
        "n_test_cases": Param(500, Int(min=1), "test digits whose outputs make a net's function vector "
                                               "(evenly spaced over the test set)"),
        "match_tolerance": Param(0.01, Float(gt=0, lt=1), "points of the two groups are error-matched when their probe "
                                                          "errors differ by at most this (a fraction; 0.01 is 1 point)"),
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
    """One group (N nets) trained by the fair-fight protocol (:func:`train_group`), its outputs recorded.

    selection: :meth:`pretraining.core.selection.Selection.record` (the rates tried and their
    validation errors, the chosen rate, per net its best epoch, epochs run, training NLL and
    converged flag); curves: {"train_nll", "valid_error"}, per net one value per epoch it ran;
    test_error (N,): each net's error on the whole test set at its best validation epoch;
    probs (N, B + 1, T, C) float32: each net's softmax outputs on the T probe digits before
    fine-tuning (index 0) and after every epoch it ran at the chosen rate, NaN after its last
    epoch (B: the most epochs any net ran).
    """

    selection: dict
    curves: dict[str, list[list[float]]]
    test_error: list[float]
    probs: Tensor

    @property
    def lr(self) -> float:
        """The rate chosen on the validation set."""
        return self.selection["lr"]

    @property
    def converged(self) -> bool:
        """Every net converged and the chosen rate is off the edge of the rates tried."""
        return setting_converged(self.selection)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, GroupTraining) and (self.selection, self.curves, self.test_error)
                == (other.selection, other.curves, other.test_error) and torch.equal(self.probs.isnan(), other.probs.isnan())
                and torch.equal(self.probs.nan_to_num(), other.probs.nan_to_num()))


@dataclass
class Panel:
    """One comparison: N nets pre-trained with ``kind`` against the N random nets (M = 2N, pre-trained first).

    training: {group: :class:`GroupTraining`}; labels (M,): the group of each net (:data:`GROUPS`);
    horizon: E, the epochs every one of the M nets trained (the fewest epochs run): the points
    compared are epochs 0..E; probs (M, E+1, T, C) float32: the nets' outputs on the probe digits;
    errors (M, E+1): test error on the probe digits; confidence (M, E+1): mean largest output
    probability; embedding: "tsne" and "isomap", each (M, E+1, 2); embed_meta: the embedding's
    times and whether ISOMAP's graph was connected (:func:`embed_trajectories`); areas: {method:
    {group: [E+1]}}, the area of the convex hull of the group's points of each epoch in that
    embedding; measures: :func:`measure_trajectories`; verdicts: :func:`verdicts` of the measures.
    """

    kind: str
    training: dict[str, GroupTraining]
    labels: list[str]
    horizon: int
    probs: Tensor
    errors: np.ndarray
    confidence: np.ndarray
    embedding: dict[str, np.ndarray]
    embed_meta: dict
    areas: dict[str, dict[str, list[float]]]
    measures: dict
    verdicts: dict[str, bool]

    @property
    def name(self) -> str:
        """The pre-trained group's name, e.g. "DAE pre-trained"."""
        return f"{self.kind.upper()} pre-trained"

    def records(self) -> dict[str, dict]:
        """{condition name: selection record} of the panel's two groups (the convergence gate's input)."""
        return {self.name if g == GROUPS[0] else g: t.selection for g, t in self.training.items()}

    def final_error(self) -> dict[str, float]:
        """Median test error on the probe digits at the horizon, per group."""
        return {g: float(np.median(self.errors[np.asarray(self.labels) == g, -1])) for g in GROUPS}

    def mean_confidence(self) -> dict[str, np.ndarray]:
        """Mean largest output probability per epoch, per group: (E+1,) each."""
        return {g: self.confidence[np.asarray(self.labels) == g].mean(0) for g in GROUPS}


@dataclass
class Result:
    """What the chapter computed: probe (T,), the test-set rows of the probe digits; panels: {kind:
    :class:`Panel`}, "dae" first (the paper's figure), then "rbm" when ``rbm_panel`` is on; the
    random group is the same N nets in every panel."""

    probe: np.ndarray
    panels: dict[str, Panel]

    @property
    def main(self) -> Panel:
        """The DAE panel, the paper's figure."""
        return self.panels["dae"]


def panel_kinds(p: Mapping) -> list[str]:
    """The pre-training kinds compared with random init: "dae", and "rbm" when ``rbm_panel``."""
    return ["dae", *(["rbm"] if p["rbm_panel"] else [])]


def run(ch: runtime.Chapter) -> Result:
    """Pre-train; train the random group and each pre-trained group by the fair-fight protocol, recording
    their outputs on the probe digits; per panel, embed and measure."""
    p, data = ch.params, ch.data
    n = p["n_seeds"]
    pre_seeds, rnd_seeds = member_seeds(p["seed"], n), member_seeds(p["seed"], n, first=n)
    labels = group_labels(n)
    probe = probe_indices(len(data.test), p["n_test_cases"])
    configs = stack_configs(p)
    # the epoch budget and minibatch size; the rate comes from the selection
    ft_config = FinetuneConfig(epochs=p["finetune_epochs"], lr=p["finetune_lr_grid"][0],
                               batch_size=p["finetune_batch_size"])
    selection = selection_config(p)
    random = None
    panels = {}
    for kind in panel_kinds(p):
        stack, _ = pretrained_stack(ch, kind, p["hidden_sizes"], configs[kind], pre_seeds, progress=False)
        stack_key = {"kind": kind, "hidden_sizes": p["hidden_sizes"], "config": dataclasses.asdict(configs[kind]),
                     "seeds": pre_seeds}
        makers = group_makers(stack, pre_seeds, rnd_seeds, n_classes=N_CLASSES)
        if random is None:  # the random nets do not depend on the stack: one group for every panel
            random = train_group(ch, GROUPS[1], {"sizes": stack.sizes + [N_CLASSES]}, makers[GROUPS[1]], ft_config,
                                 selection, rnd_seeds, probe)
        pre = train_group(ch, GROUPS[0], {"stack": stack_key}, makers[GROUPS[0]], ft_config, selection, pre_seeds,
                          probe)
        training = {GROUPS[0]: pre, GROUPS[1]: random}
        horizon = min(min(t.selection["epochs_run"]) for t in training.values())
        probs = torch.cat([t.probs[:, :horizon + 1] for t in training.values()])
        errors = probe_errors(probs, data.test.y[probe])
        embedding, embed_meta = cached_embedding(ch, {"panel": stack_key, "random_seeds": rnd_seeds,
                                                      "horizon": horizon, "rates": [pre.lr, random.lr],
                                                      "finetune": dataclasses.asdict(ft_config),
                                                      "selection": dataclasses.asdict(selection),
                                                      "n_test_cases": p["n_test_cases"]}, probs)
        measures = measure_trajectories(probs, labels, errors, k=p["knn_k"], match_tolerance=p["match_tolerance"],
                                        seed=p["seed"])
        panels[kind] = Panel(kind=kind, training=training, labels=labels, horizon=horizon, probs=probs, errors=errors,
                             confidence=probe_confidence(probs), embedding=embedding, embed_meta=embed_meta,
                             areas={k: hull_areas(embedding[k], labels) for k in ("tsne", "isomap")},
                             measures=measures, verdicts=verdicts(measures))
    return Result(probe=probe, panels=panels)


def work(p: Mapping) -> list[Job]:
    """The chapter's full run as rehearsal jobs (:mod:`pretraining.book.workplan`), from its checked
    values ``p`` (as ``ch.params``).

    Counted: per panel (:func:`panel_kinds`) the stack (one member per pre-trained net,
    ``n_seeds``) and its pre-trained group, and the random group once, each group by the
    fair-fight protocol (:func:`train_group`; the probe outputs are recorded during those runs,
    so there is no further training). Not counted: grid extensions and the longer run of a net
    that did not converge; the probe outputs, test errors, t-SNE, ISOMAP and the measures.
    """
    train, _, _ = split_sizes(p)
    n, sizes = p["n_seeds"], [784, *p["hidden_sizes"], N_CLASSES]
    epochs = {"rbm": p["rbm_epochs"], "dae": p["dae_epochs"]}
    jobs = []
    for kind in panel_kinds(p):
        jobs += stack_jobs("stack", kind, 784, p["hidden_sizes"], members=n, examples=train,
                           epochs=epochs[kind], batch_size=p["pretrain_batch_size"])
        jobs.append(protocol_job(f"{kind.upper()} pre-trained group", sizes, p, n))
    jobs.append(protocol_job(f"{GROUPS[1]} group", sizes, p, n))
    return jobs


def probe_track(probe_x: Tensor) -> Track:
    """A :data:`pretraining.core.selection.Track` that records every member's softmax outputs on
    probe_x (T, V), flattened: (M, T * C)."""

    @torch.no_grad()
    def track(_start: Classifier, net: Classifier) -> Tensor:
        return net.predict_proba(probe_x.to(device=net.device, dtype=net.dtype)).float().flatten(1)

    return track


def tracked_probs(start: Tensor, tracked: Sequence[Sequence[Sequence[float]]]) -> Tensor:
    """The recorded outputs as one tensor: start (N, T, C), the nets' outputs before fine-tuning;
    tracked: per net, per epoch it ran, T * C floats (:func:`probe_track`'s values in the
    selection's curves) -> (N, B + 1, T, C) float32, NaN after a net's last epoch (B: the most epochs)."""
    N, T, C = start.shape
    if len(tracked) != N:
        raise ValueError(f"tracked must hold one curve per net ({N}), got {len(tracked)}")
    B = max(len(t) for t in tracked)
    probs = torch.full((N, B + 1, T, C), math.nan)
    probs[:, 0] = start.float().cpu()
    for m, curve in enumerate(tracked):
        if curve:
            probs[m, 1:len(curve) + 1] = torch.tensor(curve, dtype=torch.float32).view(len(curve), T, C)
    return probs


def train_group(ch: runtime.Chapter, group: str, what: Mapping, make: Callable[[Sequence[int]], Classifier],
                config: FinetuneConfig, selection: SelectionConfig, seeds: Sequence[int],
                probe: np.ndarray) -> GroupTraining:
    """One group's nets ``make(seeds)`` trained by the fair-fight protocol on the chapter's training
    digits, the validation digits choosing the rate and each net's epoch
    (:func:`pretraining.core.selection.select_and_train`), their outputs on the probe digits (test
    rows ``probe``, (T,)) recorded before and after every epoch (:func:`probe_track`), through the
    cache (``ch4_selection_pretrained`` / ``ch4_selection_random``).

    what: everything that defines ``make`` besides the seeds (the stack's key, or the sizes); the
    key adds the fine-tuning config (its epochs the budget), the selection config, the seeds and
    the probe rows. When a net did not converge, one is trained again alone for
    :data:`LONGER_RUN` times the budget (the record's "longer_run": how many epochs it would need).
    Afterwards each net's error on the whole test set is measured at its best validation epoch
    (the test set chooses nothing: the probe outputs are only recorded).
    """
    if group not in GROUPS:
        raise ValueError(f"group={group!r} is not allowed; use one of {list(GROUPS)}")
    key = {**what, "finetune": dataclasses.asdict(config), "selection": dataclasses.asdict(selection),
           "seeds": list(seeds), "longer": LONGER_RUN, "probe": np.asarray(probe).tolist()}
    data = ch.data
    probe_x = data.test.x[torch.as_tensor(probe)]

    def compute():
        with torch.no_grad():
            start = make(seeds).predict_proba(probe_x.to(device=data.train.x.device)).cpu()
        sel = select_and_train(make, data.train, data.valid, config, selection, seeds, longer=LONGER_RUN,
                               track=probe_track(probe_x))
        test = evaluate(sel.clf, data.test.x, data.test.y).error.cpu()
        curves = {k: sel.curves[k] for k in ("train_nll", "valid_error")}
        return ({"test_error": test, "probs": tracked_probs(start, sel.curves["tracked"])},
                {"selection": sel.record(), "curves": curves})

    # version 3: the probe outputs recorded during the protocol's runs
    tensors, meta = ch.cached(f"ch4_selection_{_KEYS[group]}", key, compute, version=3)
    return GroupTraining(meta["selection"], meta["curves"], tensors["test_error"].cpu().tolist(),
                         tensors["probs"].cpu())


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

    # version 2: the points of the panel's horizon, recorded during the protocol's runs
    tensors, meta = ch.cached("ch4_embedding", key, embed, version=2)
    return {k: v.cpu().numpy() for k, v in tensors.items()}, meta


def hull_areas(points: object, groups: Sequence[str]) -> dict[str, list[float]]:
    """{group: [E+1]}: per epoch the area of the convex hull of the group's 2-D points
    (:func:`pretraining.analysis.functionspace.hull_area`); points (M, E+1, 2), groups (M,)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[2] != 2:
        raise ValueError(f"points must have shape (nets, epochs + 1, 2), got {pts.shape}")
    g = np.asarray(_check_groups(groups, pts.shape[0]))
    return {grp: [fs.hull_area(pts[g == grp, e]) for e in range(pts.shape[1])] for grp in GROUPS}
# -- the sections ------------------------------------------------------------------------------------

def setup(ch: runtime.Chapter) -> None:
    """The networks and the function vectors: sizes, settings, dimensions."""
    p, data = ch.params, ch.data
    n = p["n_seeds"]
    ch.glue("n_seeds", n, fmt="d")
    ref = ERHAN2010_FUNCTION_SPACE.numbers["nets_per_group"]
    ch.glue("nets_note", f"To keep the time, this run has {n} nets per group, fewer than the paper's {ref}."
            if n < ref else f"As in the paper, {n} nets per group.")
    ch.glue("architecture", "-".join(map(str, _sizes(ch))))
    ch.glue("dae_epoch_count", plural(p["dae_epochs"], "epoch"))
    for name in ("dae_lr", "dae_noise"):
        ch.glue(name, p[name], fmt="g")
    ch.glue("dae_batch", p["pretrain_batch_size"], fmt="d")
    ch.glue("rbm_panel_note", (f"The same comparison with RBM pre-training (CD-1, {plural(p['rbm_epochs'], 'epoch')} "
                               f"per layer, learning rate {p['rbm_lr']:g}) is the second panel at the end.")
            if p["rbm_panel"] else "A second panel with RBM pre-training is off in this profile (rbm_panel = False; "
                                   "the paper profile turns it on).")
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
    ch.glue("match_points", p["match_tolerance"] * 100, fmt="g")
    ch.glue("alpha", claims.ALPHA, fmt="g")


def training(ch: runtime.Chapter, res: Result) -> None:
    """How each group was trained (the fair-fight table), whether it converged, and its curves."""
    records = {}
    for panel in res.panels.values():
        records.update(panel.records())
    ch.glue("convergence_sentence", fairness.convergence_sentence(records, label=lambda g: f"the {g} nets"))
    main = res.main
    for g, t in main.training.items():
        tag = _TAGS[g]
        ch.glue(f"lr_{tag}", t.lr, fmt="g")
        ch.glue(f"best_epoch_{tag}", float(np.median(t.selection["best_epoch"])), fmt=".0f")
        ch.glue(f"epochs_run_{tag}", float(np.median(t.selection["epochs_run"])), fmt=".0f")
        ch.glue(f"test_error_{tag}", float(np.median(t.test_error)), fmt=".1%")
    ch.glue("horizon", main.horizon, fmt="d")
    runtime.show(fairness.selection_frame(records, index="group").style.format(fairness.FORMATS)
                 .set_caption("How each group was trained: the rate chosen on the validation set, the median "
                              "best epoch and epochs run over the group's nets, the median training NLL at the "
                              "best epoch, and how many nets converged"))
    curves = {name: panel.training[GROUPS[0]].curves for name, panel in
              ((p.name, p) for p in res.panels.values())}
    curves[GROUPS[1]] = main.training[GROUPS[1]].curves
    ch.figure("ch4_training_curves", figures.training_curves(curves, n_classes=N_CLASSES,
                                                             plateau_fraction=PLATEAU_FRACTION))


def probe_error(ch: runtime.Chapter, res: Result) -> None:
    """The nets' test error on the probe digits along the way (DAE panel)."""
    main = res.main
    final = main.final_error()
    ch.glue("pre_final_error", final[GROUPS[0]], fmt=".1%")
    ch.glue("rnd_final_error", final[GROUPS[1]], fmt=".1%")
    ch.figure("ch4_probe_error", plot_probe_error(main.errors, main.labels,
                                                  best_epochs={g: t.selection["best_epoch"]
                                                               for g, t in main.training.items()}))


def _embedding_title(method: str, panel: Panel) -> str:
    n, P = len(panel.labels), panel.horizon + 1
    return f"{method} of {n * P:,} function vectors ({panel.name} and random init, {n} nets, {P} points each)"


def tsne(ch: runtime.Chapter, res: Result) -> None:
    """The picture: all points of the DAE panel embedded together with t-SNE, the settings and times."""
    p, main = ch.params, res.main
    meta = main.embed_meta
    ch.glue("n_points", len(main.labels) * (main.horizon + 1), fmt=",")
    ch.glue("tsne_seconds", meta["tsne_seconds"], fmt=".1f")
    ch.glue("isomap_seconds", meta["isomap_seconds"], fmt=".1f")
    ch.glue("tsne_cpu_seconds", meta["tsne_cpu_seconds"], fmt=".1f")
    ch.glue("pca_dims", p["pca_dims"], fmt="d")
    ch.glue("perplexity", p["perplexity"], fmt="g")
    ch.glue("isomap_neighbors", p["isomap_neighbors"], fmt="d")
    ch.glue("isomap_neighbour_count", plural(p["isomap_neighbors"], "neighbour"))
    ch.glue("embed_threads", plural(p["embed_jobs"], "thread"))
    ch.figure("ch4_tsne", plot_embedding_figure(main.embedding["tsne"], main.labels,
                                                title=_embedding_title("t-SNE", main)))


def isomap(ch: runtime.Chapter, res: Result) -> None:
    """The same points embedded with ISOMAP, and whether its neighbour graph was connected."""
    main = res.main
    ch.glue("isomap_graph", "is connected" if main.embed_meta["isomap_connected"] else
            "fell apart into several pieces that ISOMAP joined by their shortest links")
    ch.figure("ch4_isomap", plot_embedding_figure(main.embedding["isomap"], main.labels,
                                                  title=_embedding_title("ISOMAP", main)))


def two_groups(ch: runtime.Chapter, res: Result) -> None:
    """Two groups? The leave-one-net-out nearest-neighbour accuracy, also between error-matched points."""
    m = res.main.measures
    ch.glue("knn_neighbours", plural(ch.params["knn_k"], "nearest neighbour"))
    ch.glue("knn_all", m["knn_all"], fmt=".1%")
    ch.glue("knn_min", min(m["knn_per_epoch"]), fmt=".1%")
    ch.glue("knn_max", max(m["knn_per_epoch"]), fmt=".1%")
    ch.glue("knn_epoch0", m["knn_per_epoch"][0], fmt=".1%")
    ch.glue("knn_after_start", m["knn_after_start"], fmt=".1%")
    matched = m["knn_matched"]
    ch.glue("knn_matched", _matched_text(matched))
    ch.glue("matched_points", matched["n_points"], fmt=",")
    ch.glue("later_points", len(res.main.labels) * res.main.horizon, fmt=",")
    conf = res.main.mean_confidence()
    for g in GROUPS:
        ch.glue(f"conf0_{_TAGS[g]}", float(conf[g][0]), fmt=".1%")
        ch.glue(f"conf1_{_TAGS[g]}", float(conf[g][1]), fmt=".1%")
    ch.glue("uniform", 1 / N_CLASSES, fmt=".0%")
    ch.figure("ch4_knn_accuracy", plot_knn_accuracy(m))


def distances(ch: runtime.Chapter, res: Result) -> None:
    """How far apart, and how the spread of each group changes: distances and hull areas per epoch."""
    main = res.main
    m = main.measures
    tight = m["tighter_last"]
    ch.glue("within_pre_last", m["within"][GROUPS[0]][-1], fmt=".2f")
    ch.glue("within_rnd_last", m["within"][GROUPS[1]][-1], fmt=".2f")
    ch.glue("within_pre_first", m["within"][GROUPS[0]][1], fmt=".2f")
    ch.glue("within_rnd_first", m["within"][GROUPS[1]][1], fmt=".2f")
    ch.glue("between_last", m["between"][-1], fmt=".2f")
    ch.glue("tighter_sentence", f"The pre-trained nets are {'closer to' if tight['difference'] > 0 else 'farther from'} "
                                f"one another than the random ones by {abs(tight['difference']):.2f}")
    ch.glue("tighter_low", tight["low"], fmt=".2f")
    ch.glue("tighter_high", tight["high"], fmt=".2f")
    ch.glue("tighter_level", tight["level"], fmt=".0%")
    ch.glue("max_distance", float(np.sqrt(2 * ch.params["n_test_cases"])), fmt=".1f")
    area = main.areas["tsne"]
    for g in GROUPS:
        ch.glue(f"area_ratio_{_TAGS[g]}", f"{area[g][-1] / area[g][1]:.2f}" if area[g][1] > 0 else "undefined (no area)")
    ch.figure("ch4_group_distances", plot_group_distances(m))
    ch.figure("ch4_spread", plot_spread(m, main.areas))


def first_epoch(ch: runtime.Chapter, res: Result) -> None:
    """After epoch 1: is a net farther from its own epoch-1 self than from the other nets of its group?"""
    m = res.main.measures
    for g in GROUPS:
        ch.glue(f"start_{_TAGS[g]}", m["to_start_after_epoch1"][g], fmt=".2f")
        ch.glue(f"pair_{_TAGS[g]}", m["pairwise_after_epoch1"][g], fmt=".2f")
        mv = m["moved_together"][g]
        none = "not measured (a single common epoch)"
        ch.glue(f"self1_{_TAGS[g]}", f"{mv['to_epoch1'][-1]:.2f}" if mv["to_epoch1"] else none)
        ch.glue(f"others_{_TAGS[g]}", f"{mv['to_others'][-1]:.2f}" if mv["to_others"] else none)
    ch.figure("ch4_distance_to_start", plot_distance_to_start(m))
    ch.figure("ch4_moved_together", plot_moved_together(m))


def second_panel(ch: runtime.Chapter, res: Result) -> None:
    """The RBM panel (when ``rbm_panel``) in one sentence, and every panel's numbers side by side (a table)."""
    panel = res.panels.get("rbm")
    if panel is None:
        ch.glue("rbm_summary", "This profile runs the DAE panel only (rbm_panel = False), so the table has one column; "
                               "the paper profile adds the RBM panel.")
    else:
        m = panel.measures
        ch.glue("rbm_summary", (
            f"The RBM panel has {panel.horizon} common epochs. Nearest-neighbour group accuracy from epoch 1 on "
            f"{m['knn_after_start']:.1%}, between error-matched points {_matched_text(m['knn_matched'])}; the "
            f"table gives its numbers beside the DAE panel's, its parts are listed with the DAE panel's at the end."))
    runtime.show(panel_table(res).style.set_caption(
        "Each panel: the pre-trained group against the same random nets (the probe error and distances at "
        "epoch 1 and at the last common epoch E)"))


def panel_table(res: Result) -> pd.DataFrame:
    """One column per panel: rates, test errors, the horizon, the nearest-neighbour accuracies and the
    spreads of both groups at epoch 1 and at the horizon, as formatted strings."""
    pre, rnd = GROUPS
    cols = {}
    for panel in res.panels.values():
        m, tr = panel.measures, panel.training
        w = m["within"]
        cols[panel.name] = [
            f"{tr[pre].lr:g} / {tr[rnd].lr:g}",
            f"{np.median(tr[pre].test_error):.2%} / {np.median(tr[rnd].test_error):.2%}",
            f"{panel.horizon}",
            f"{m['knn_after_start']:.1%}",
            f"{_matched_text(m['knn_matched'])} ({m['knn_matched']['n_points']} points)",
            f"{w[pre][1]:.2f} to {w[pre][-1]:.2f}",
            f"{w[rnd][1]:.2f} to {w[rnd][-1]:.2f}",
        ]
    return pd.DataFrame(cols, index=["rate (pre-trained / random)", "median test error (pre-trained / random)",
                                     "last common epoch E", "nearest-neighbour accuracy, epochs 1 to E",
                                     "the same, error-matched", "pre-trained spread, epoch 1 to E",
                                     "random spread, epoch 1 to E"])


def conclusions(ch: runtime.Chapter, res: Result) -> None:
    """The conclusions, one sentence per part of the claim (DAE panel), and the table beside Erhan et al."""
    p, main = ch.params, res.main
    texts = conclusion_texts(main.measures, {g: float(c[0]) for g, c in main.mean_confidence().items()},
                             horizon=main.horizon)
    for key, text in texts.items():
        ch.glue(f"conclusion_{key}", text)
    table = comparison_table(main.measures, n_seeds=p["n_seeds"], sizes=_sizes(ch), n_test_cases=p["n_test_cases"],
                             horizon=main.horizon)
    runtime.show(_comparison_styler(table))


# -- the claim -----------------------------------------------------------------------------------------

def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C4 (DESIGN.md) for every panel, keyed "a-dae", "b-dae", "c1-dae", ... (then "-rbm").

    With fewer than :data:`MIN_NETS` nets per group every part is not tested (the measures are
    too noisy to judge); every part compares the two groups of its panel, so when one of them did
    not converge the panel's parts are not tested at this scale (:func:`gate_unconverged`). The
    tested parts' p-values are Holm-corrected together by the chapter's finish.
    """
    out = []
    for kind, panel in res.panels.items():
        out += gate_unconverged(panel_parts(panel, ch.params["n_seeds"]), panel.records())
    return out


def gate_unconverged(parts: Sequence[claims.Part], records: Mapping[str, Mapping]) -> list[claims.Part]:
    """Every tested part becomes "not tested at this scale" (:func:`pretraining.book.fairness.gate`) when a group
    did not converge (:func:`pretraining.core.selection.setting_converged` of its selection record in
    ``records``, {condition: record}, :meth:`Panel.records`): each part compares both groups."""
    return fairness.gate(parts, lambda key: list(records), records, label=lambda g: f"the {g} nets")


def panel_parts(panel: Panel, n_seeds: int) -> list[claims.Part]:
    """One panel's parts as the function-space measures decide them (before the convergence gate).

    (a) threshold: from epoch 1 on, the leave-one-net-out nearest-neighbour accuracy is 1 over all
    points and between error-matched points; (b) per net at the last epoch E, distance to itself at
    epoch 1 minus mean distance to the group's other nets, Wilcoxon signed-rank over the nets of
    each group, the larger p of the two (both groups needed); (c1) threshold: the bootstrap
    interval of (random - pre-trained) mean pairwise distance at E above 0; (c2) per pre-trained
    net, mean distance to the others at epoch 1 minus at E (positive: the spread shrinks), and
    (c3) per random net, at E minus at epoch 1 (positive: it grows), each the paired Wilcoxon test
    of :func:`pretraining.book.claims.paired` over the nets.
    """
    m, v, kind = panel.measures, panel.verdicts, panel.kind
    few = n_seeds < MIN_NETS
    reason = f"only {n_seeds} nets per group (fewer than {MIN_NETS}): these measures are too noisy to judge the claim"
    pre, rnd = GROUPS
    matched = m["knn_matched"]
    no_match = matched["accuracy"] is None
    evidence_a = (f"leave-one-net-out nearest-neighbour group accuracy from epoch 1 on {m['knn_after_start']:.1%}; "
                  f"between error-matched points ({matched['n_points']} points with both groups within "
                  f"{matched['tolerance'] * 100:g} points of their probe error) "
                  + ("not defined: no point has both groups at its error" if no_match else f"{matched['accuracy']:.1%}")
                  + f"; at epoch 0 {m['knn_per_epoch'][0]:.1%} (every net near-uniform); no overlap means 100% for both")
    part_a = claims.part(
        f"a-{kind}", f"{panel.name} and randomly initialised nets form two groups in function space that never meet, "
                     "also between checkpoints of equal test error (epochs 1 on)",
        None if (few or no_match) else bool(v["separated_after_start"] and v["separated_matched"]),
        reason if few else evidence_a, effect=matched["accuracy"], knn_after_start=m["knn_after_start"],
        knn_matched=matched, knn_epoch0=m["knn_per_epoch"][0], knn_all=m["knn_all"])
    t = m["tighter_last"]
    last = {g: m["within"][g][-1] for g in GROUPS}
    part_c1 = claims.part(
        f"c1-{kind}", f"{panel.name} nets are more alike than randomly initialised ones (at the last common epoch)",
        None if few else v["pretrained_tighter"],
        reason if few else
        f"at epoch {panel.horizon} two pre-trained nets are {last[pre]:.2f} apart, two random nets {last[rnd]:.2f}; "
        f"difference {t['difference']:.2f}, {t['level']:.0%} bootstrap interval {t['low']:.2f} to {t['high']:.2f} "
        "(the bar: the whole interval above 0)",
        test="bootstrap interval (nets resampled within each group)", effect=t["difference"],
        ci95=(t["low"], t["high"]), n=n_seeds, within_last={_KEYS[g]: last[g] for g in GROUPS})
    sp = m["spread_per_net"]
    shrink = stats.paired_difference(sp[pre]["first"], sp[pre]["last"])
    grow = stats.paired_difference(sp[rnd]["last"], sp[rnd]["first"])
    horizon = panel.horizon

    def spread_part(key: str, claim: str, diff: dict, g: str) -> claims.Part:
        evidence = (f"per {g} net, mean distance to the group's other nets at epoch 1 vs epoch {horizon} "
                    f"(group means {m['within'][g][1]:.2f} and {m['within'][g][-1]:.2f}): "
                    + claims.paired_text(diff, fmt="+.3f", unit="nets", p=True))
        if few or horizon < 2:
            return claims.part(key, claim, None, reason if few else f"{evidence}; only {horizon} common epoch(s)")
        return claims.paired(key, claim, diff, evidence, unit="nets")

    return [part_a, _moved_part(panel, few, reason), part_c1,
            spread_part(f"c2-{kind}", f"the spread of the {panel.name} nets shrinks from epoch 1 to the last common "
                                      "epoch", shrink, pre),
            spread_part(f"c3-{kind}", "the spread of the randomly initialised nets grows from epoch 1 to the last "
                                      "common epoch", grow, rnd)]


def _moved_part(panel: Panel, few: bool, reason: str) -> claims.Part:
    """Part (b): in each group, per net at the last common epoch E, its distance to itself at epoch 1 minus its
    mean distance to the group's other nets at E (positive: the nets moved closer to one another than to where
    they were after one epoch).

    The pairs are the two distances of one net (Wilcoxon signed-rank over the nets of a group, with the
    Student-t interval of the mean); the part needs it in both groups, so its p is the larger of the two (an
    intersection-union test, valid at the stated level) and its effect and interval those of the group with
    the smaller mean difference.
    """
    m, kind, E = panel.measures, panel.kind, panel.horizon
    claim = (f"after epoch 1 nets ({panel.name} and random) move closer to one another than to their own "
             "epoch-1 selves")
    numbers = {"moved_together": {_KEYS[g]: m["moved_together"][g] for g in GROUPS}}
    if few or E < 2:
        return claims.part(f"b-{kind}", claim, None, reason if few else
                           f"only {E} epoch(s) common to every net: nothing to compare with epoch 1", **numbers)
    diffs = {g: stats.paired_difference(m["last_per_net"][g]["to_epoch1"], m["last_per_net"][g]["to_others"])
             for g in GROUPS}
    weakest = min(GROUPS, key=lambda g: diffs[g]["effect"])
    result = {"test": "wilcoxon", "p": max(d["p"] for d in diffs.values()), "n": min(d["n"] for d in diffs.values()),
              "effect": diffs[weakest]["effect"]}
    evidence = "; ".join(
        f"{g} nets at epoch {E}: {m['moved_together'][g]['to_epoch1'][-1]:.2f} from their epoch-1 selves, "
        f"{m['moved_together'][g]['to_others'][-1]:.2f} from the others, per net "
        + claims.paired_text(diffs[g], fmt="+.3f", unit="nets", p=True) for g in GROUPS)
    return claims.from_test(f"b-{kind}", claim, result, evidence + "; the part needs both groups, so its p is the "
                            "larger one", direction=all(d["direction"] for d in diffs.values()),
                            ci95=diffs[weakest]["ci95"], **numbers)


def _panel_record(panel: Panel) -> dict:
    """The results file's entry of one panel."""
    m, tr = panel.measures, panel.training
    final, conf = panel.final_error(), panel.mean_confidence()
    return {
        "pretrained": panel.name,
        "horizon": panel.horizon,
        "selection": {_KEYS[g]: t.selection for g, t in tr.items()},
        "converged": {_KEYS[g]: t.converged for g, t in tr.items()},
        "finetune_lr": {_KEYS[g]: t.lr for g, t in tr.items()},
        "test_error_at_best_epoch": {_KEYS[g]: t.test_error for g, t in tr.items()},
        "test_error_at_best_epoch_median": {_KEYS[g]: float(np.median(t.test_error)) for g, t in tr.items()},
        "knn_group_accuracy": m["knn_all"],
        "knn_group_accuracy_per_epoch": m["knn_per_epoch"],
        "knn_group_accuracy_after_start": m["knn_after_start"],
        "knn_group_accuracy_error_matched": m["knn_matched"],
        "within_distance": {_KEYS[g]: m["within"][g] for g in GROUPS},
        "between_distance": m["between"],
        "hull_area": {method: {_KEYS[g]: a[g] for g in GROUPS} for method, a in panel.areas.items()},
        "moved_together": {_KEYS[g]: m["moved_together"][g] for g in GROUPS},
        "spread_per_net": {_KEYS[g]: m["spread_per_net"][g] for g in GROUPS},
        "distance_to_start_after_epoch1": {_KEYS[g]: m["to_start_after_epoch1"][g] for g in GROUPS},
        "pairwise_after_epoch1": {_KEYS[g]: m["pairwise_after_epoch1"][g] for g in GROUPS},
        "within_difference_last_epoch": m["tighter_last"],
        "mean_confidence_epoch0": {_KEYS[g]: float(conf[g][0]) for g in GROUPS},
        "probe_error_final_median": {_KEYS[g]: final[g] for g in GROUPS},
        "probe_error_per_epoch_median": {_KEYS[g]: np.median(panel.errors[np.asarray(panel.labels) == g], 0).tolist()
                                         for g in GROUPS},
        "claims": panel.verdicts,
        "tsne_seconds": panel.embed_meta["tsne_seconds"],
        "tsne_cpu_seconds": panel.embed_meta["tsne_cpu_seconds"],
        "isomap_seconds": panel.embed_meta["isomap_seconds"],
    }


def results_record(p: Mapping, res: Result) -> dict:
    """The chapter's results file entry: the run's sizes, then per panel (by kind) the selection records,
    ``converged``, the chosen rates, the test errors at the best epochs, the function-space measures, the
    verdicts and the embeddings' times (:func:`_panel_record`)."""
    return {"n_nets_per_group": p["n_seeds"], "n_test_cases": p["n_test_cases"], "epochs": p["finetune_epochs"],
            "hidden_sizes": list(p["hidden_sizes"]),
            "panels": {kind: _panel_record(panel) for kind, panel in res.panels.items()}}


def finish(ch: runtime.Chapter, res: Result) -> None:
    """The claim's parts and verdict, the results file, the provenance."""
    n = ch.params["n_seeds"]

    def trained(g: str, t: GroupTraining) -> str:
        return (f"{g} rate {t.lr:g}, median best epoch {np.median(t.selection['best_epoch']):.0f}, "
                f"median test error {np.median(t.test_error):.1%}{'' if t.converged else ', not converged'}")

    findings = []
    for panel in res.panels.values():
        m, pre, rnd = panel.measures, *GROUPS
        findings.append(
            f"{panel.name} vs random, {n}+{n} nets ({'; '.join(trained(g, t) for g, t in panel.training.items())}), "
            f"{panel.horizon} common epochs: nearest-neighbour group accuracy from epoch 1 on "
            f"{m['knn_after_start']:.1%}, error-matched {_matched_text(m['knn_matched'])}; within-group distance "
            f"epoch 1 to {panel.horizon}: pre-trained {m['within'][pre][1]:.2f} to {m['within'][pre][-1]:.2f}, random "
            f"{m['within'][rnd][1]:.2f} to {m['within'][rnd][-1]:.2f}.")
    ch.finish(results_record(ch.params, res), parts=claim_parts(ch, res), finding=" ".join(findings))


# -- text and tables -------------------------------------------------------------------------------------


def _matched_text(matched: Mapping) -> str:
    """The error-matched accuracy (:func:`pretraining.analysis.functionspace.error_matched_knn_accuracy`) in words."""
    acc = matched["accuracy"]
    return "not defined (no point has both groups at its error)" if acc is None else f"{acc:.1%}"


def _sizes(ch: runtime.Chapter) -> list[int]:
    """The nets' layer sizes [V, H_1..H_L, C]."""
    return [ch.data.train.x.shape[1], *ch.params["hidden_sizes"], N_CLASSES]


def conclusion_texts(measures: Mapping, confidence_epoch0: Mapping[str, float], *, horizon: int) -> dict[str, str]:
    """The conclusions' sentences, one per part of the claim: {"separated", "closer", "tighter"}.

    measures: :func:`measure_trajectories`; confidence_epoch0: {group: mean largest output
    probability before fine-tuning} (see :func:`probe_confidence`); horizon: the last common epoch.
    The "separated" sentence continues "Pre-trained and randomly initialised nets ...".
    """
    m, v = measures, verdicts(measures)
    pre, rnd = GROUPS
    acc = m["knn_matched"]["accuracy"]
    matched = ("no point has both groups at its error, so they cannot be compared at equal error"
               if acc is None else f"between points of equal probe error the rule is right for {acc:.1%}")
    if v["separated_after_start"]:
        separated = (f"form two groups with no overlap from the first epoch on (nearest-neighbour accuracy "
                     f"{m['knn_after_start']:.1%} over epochs 1 to {horizon}); {matched}. Before fine-tuning "
                     f"the accuracy is {m['knn_per_epoch'][0]:.1%}: with a fresh random softmax layer every net outputs "
                     f"nearly uniform probabilities (largest probability {confidence_epoch0[pre]:.1%} and "
                     f"{confidence_epoch0[rnd]:.1%} on average).")
    else:
        separated = (f"overlap: from the first epoch on, the nearest-neighbour rule puts "
                     f"{1 - m['knn_after_start']:.1%} of the points into the wrong group; {matched}.")

    def moved_text(g: str, name: str) -> str:
        mv = m["moved_together"][g]
        if not mv["difference"]:
            return f"{name} nets: no epoch after epoch 1 to compare"
        return (f"{name} nets are {mv['to_epoch1'][-1]:.2f} from their epoch-1 selves and {mv['to_others'][-1]:.2f} "
                f"from one another ({'closer to one another' if mv['difference'][-1] > 0 else 'closer to their epoch-1 selves'})")

    closer = (f"At epoch {horizon}, {moved_text(pre, 'pre-trained')}; {moved_text(rnd, 'randomly initialised')} "
              "(part (b) below tests it net by net, in both groups).")
    tight = m["tighter_last"]
    w = m["within"]
    if v["pretrained_tighter"]:
        word = "pre-trained nets are more similar to one another"
    elif tight["difference"] > 0:
        word = ("pre-trained nets are slightly closer to one another, but the bootstrap interval includes "
                "no difference, so this run cannot tell")
    else:
        word = "pre-trained nets are not more similar to one another"

    def trend(g: str) -> str:
        return f"{'shrinks' if w[g][-1] < w[g][1] else 'grows'} from {w[g][1]:.2f} to {w[g][-1]:.2f}"

    tighter = (f"At epoch {horizon} two pre-trained nets are {w[pre][-1]:.2f} apart and two random nets "
               f"{w[rnd][-1]:.2f} (difference {tight['difference']:.2f}, {tight['level']:.0%} interval "
               f"{tight['low']:.2f} to {tight['high']:.2f}): {word}. From epoch 1 to {horizon} the pre-trained spread "
               f"{trend(pre)}, the random spread {trend(rnd)}.")
    return {"separated": separated, "closer": closer, "tighter": tighter}


def comparison_table(measures: Mapping, *, n_seeds: int, sizes: Sequence[int], n_test_cases: int,
                     horizon: int) -> pd.DataFrame:
    """This run beside Erhan et al. (2010), figs. 5 and 6 (:data:`ERHAN2010_FUNCTION_SPACE`; qualitative).

    measures: :func:`measure_trajectories` of the DAE panel; sizes: the nets' layer sizes [V, H_1..H_L, C];
    horizon: the last common epoch. Rows: nets, function vector, two groups, spread of the pre-trained nets.
    """
    ref = ERHAN2010_FUNCTION_SPACE
    m, v = measures, verdicts(measures)
    pre, rnd = GROUPS
    separation, spread = ref.findings["separation"], ref.findings["spread"]

    def yes(b: bool) -> str:
        return "yes" if b else "no"

    n_ref = ref.numbers["nets_per_group"]
    w = m["within"]
    return pd.DataFrame({
        "Erhan et al. 2010 (figures 5, 6)": [
            f"{n_ref} + {n_ref}, {ref.numbers['hidden_layers']} hidden layers", ref.data, separation, spread],
        "this run": [
            f"{n_seeds} + {n_seeds}, {len(sizes) - 2} hidden layers ({'-'.join(map(str, sizes))}), DAE pre-training",
            f"outputs on {n_test_cases:,} test digits, epochs 0 to {horizon} (every net)",
            (f"nearest-neighbour accuracy from epoch 1 on {m['knn_after_start']:.1%} (no overlap: "
             f"{yes(v['separated_after_start'])}); between error-matched points {_matched_text(m['knn_matched'])}"),
            (f"within-group distance at the end: pre-trained {w[pre][-1]:.2f}, random {w[rnd][-1]:.2f} (smaller for "
             f"pre-trained beyond the bootstrap interval: {yes(v['pretrained_tighter'])}); from epoch 1: pre-trained "
             f"{w[pre][1]:.2f} to {w[pre][-1]:.2f}, random {w[rnd][1]:.2f} to {w[rnd][-1]:.2f}")],
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
def measure_trajectories(vectors: object, groups: Sequence[str], errors: object, *, k: int = 1,
                         match_tolerance: float = 0.01, seed: int = 0) -> dict:
    """The claims of the chapter, measured in the original D-dimensional function space.

    vectors (M, E+1, D) or probs (M, E+1, T, C); groups (M,) labels from :data:`GROUPS`, at
    least 2 nets each; E >= 1; errors (M, E+1): each point's test error on the probe digits (for
    the error-matched accuracy: points within ``match_tolerance`` of each other's error); seed: the
    chapter seed (the bootstrap's random numbers). Euclidean distances throughout. Returns a
    JSON-able dict:

    - ``within``: {group: [E+1 floats]}, per epoch the mean distance between two distinct nets
      of the group; ``between``: [E+1], the mean distance between a pre-trained and a random net;
    - ``knn_per_epoch``: [E+1], leave-one-net-out k-NN accuracy of telling the groups apart from
      the points of that epoch alone; ``knn_all``: the same over all M*(E+1) points at once
      (each point's neighbours come from other nets, any epoch); ``knn_after_start``: like
      ``knn_all`` but over the points of epochs 1..E only;
    - ``knn_matched``: :func:`pretraining.analysis.functionspace.error_matched_knn_accuracy` of the
      points of epochs 1..E;
    - ``to_start``: {group: [E+1]}, the mean distance of a net to its own epoch-0 point;
      ``to_start_after_epoch1`` / ``pairwise_after_epoch1``: {group: float}, the values at epoch 1
      of ``to_start`` and ``within``;
    - ``moved_together``: {group: {"to_epoch1": [E-1], "to_others": [E-1], "difference": [E-1],
      "ci95": [[low, high]] * (E-1)}} for epochs t = 2..E (``epochs_from_2``): the mean distance of a
      net at t to itself at epoch 1, the mean distance of a net at t to the group's other nets at
      t, and the mean over nets of their difference (to_epoch1 - to_others) with its Student-t
      interval; ``last_per_net``: {group: {"to_epoch1": [n], "to_others": [n]}} at t = E;
    - ``spread_per_net``: {group: {"first": [n], "last": [n]}}, each net's mean distance to the
      group's other nets at epoch 1 and at epoch E;
    - ``tighter_last``: :func:`within_difference_ci` at the last epoch (random minus pre-trained).
    """
    v = _as_vectors(vectors)
    M, P, _ = v.shape
    groups = _check_groups(groups, M)
    k = require_int("k", k, 1)
    if P < 2:
        raise ValueError(f"vectors need at least 2 points per net (epoch 0 and epoch 1), got {P}")
    err = np.asarray(_as_numpy(errors), dtype=np.float64)
    if err.shape != (M, P):
        raise ValueError(f"errors must have shape {(M, P)} (one per net and epoch), got {err.shape}")
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
    later_groups, later_nets = np.repeat(groups, P - 1), np.repeat(nets, P - 1)
    knn_later = fs.knn_group_accuracy(later, later_groups, later_nets, k=k)
    matched = fs.error_matched_knn_accuracy(later, later_groups, later_nets, err[:, 1:].reshape(-1),
                                            tolerance=match_tolerance)
    start = fs.distance_to_start(v)  # (M, P)
    g_arr = np.asarray(groups)
    to_start = {g: start[g_arr == g].mean(0).tolist() for g in GROUPS}
    moved, last, spread = {}, {}, {}
    for g in GROUPS:
        sel = v[g_arr == g]
        to_epoch1 = np.linalg.norm((sel[:, 2:] - sel[:, 1:2]).astype(np.float64), axis=2)  # (n, P-2)
        others = np.stack([fs.distance_to_others(sel[:, e]) for e in range(P)], axis=1)  # (n, P)
        diff = to_epoch1 - others[:, 2:]
        moved[g] = {"to_epoch1": to_epoch1.mean(0).tolist(), "to_others": others[:, 2:].mean(0).tolist(),
                    "difference": diff.mean(0).tolist(),
                    "ci95": [list(stats.t_interval(diff[:, e])) for e in range(P - 2)]}
        last[g] = {"to_epoch1": to_epoch1[:, -1].tolist() if P > 2 else [], "to_others": others[:, -1].tolist()}
        spread[g] = {"first": others[:, 1].tolist(), "last": others[:, -1].tolist()}
    return {
        "epochs": list(range(P)),
        "epochs_from_2": list(range(2, P)),
        "within": within,
        "between": between,
        "knn_per_epoch": knn_epoch,
        "knn_all": knn_all,
        "knn_after_start": knn_later,
        "knn_matched": matched,
        "to_start": to_start,
        "to_start_after_epoch1": {g: to_start[g][1] for g in GROUPS},
        "pairwise_after_epoch1": {g: within[g][1] for g in GROUPS},
        "moved_together": moved,
        "last_per_net": last,
        "spread_per_net": spread,
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
    ``separated_matched``: the same between error-matched points of epochs 1..E (knn_matched's
    accuracy == 1); ``moved_together``: at the last epoch, in each group, a net is on average
    farther from itself at epoch 1 than from the group's other nets; ``pretrained_tighter``: at
    the last epoch the pre-trained nets are closer to one another than the random ones, the whole
    bootstrap CI of the difference above 0.
    """
    moved = measures["moved_together"]
    return {
        "separated": measures["knn_all"] == 1.0,
        "separated_after_start": measures["knn_after_start"] == 1.0,
        "separated_matched": measures["knn_matched"]["accuracy"] == 1.0,
        "moved_together": all(bool(moved[g]["difference"]) and moved[g]["difference"][-1] > 0 for g in GROUPS),
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
    """Leave-one-net-out nearest-neighbour accuracy of telling the groups apart, per epoch, with the pooled
    accuracies (all epochs; epochs 1 on; epochs 1 on between error-matched points) as horizontal lines."""
    with figures.styled():
        fig, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 3.9))
        ep = measures["epochs"]
        ax.plot(ep, measures["knn_per_epoch"], marker="o", color="0.2", label="points of this epoch only")
        ax.axhline(measures["knn_all"], color="tab:green", ls="--", label="all epochs together")
        ax.axhline(measures["knn_after_start"], color="tab:purple", ls="-.", label="epochs 1 on together")
        if measures["knn_matched"]["accuracy"] is not None:
            ax.axhline(measures["knn_matched"]["accuracy"], color="tab:red", ls=(0, (5, 2, 1, 2)),
                       label="epochs 1 on, error-matched")
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


def plot_spread(measures: Mapping, areas: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """The spread of each group per epoch: mean pairwise distance in function space (top) and the area of
    the convex hull of the group's points in the t-SNE embedding (bottom); areas: {"tsne": {group: [E+1]}}."""
    with figures.styled():
        fig, axes = plt.subplots(2, 1, figsize=(figures.PAGE_WIDTH, 6.4), sharex=True)
        ep = measures["epochs"]
        for g in GROUPS:
            axes[0].plot(ep, measures["within"][g], marker=_MARKERS[g], color=_LINE[g], label=g)
            axes[1].plot(ep, areas["tsne"][g], marker=_MARKERS[g], color=_LINE[g], label=g)
        _epoch_axis(axes[0], len(ep), "mean distance", "Spread in function space")
        _epoch_axis(axes[1], len(ep), "hull area", "Area of the group in the t-SNE picture")
        axes[0].set_xlabel("")
        for ax in axes:
            ax.axvline(1, color="0.6", ls=":")
            ax.legend(loc="best")
        fig.tight_layout()
    return fig


def plot_moved_together(measures: Mapping) -> Figure:
    """Per group and epoch t >= 2: mean over nets of (distance to its own epoch-1 point) - (mean distance to
    the group's other nets at t), with its 95 % Student-t interval; above 0: closer to the others."""
    with figures.styled():
        fig, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 4.2))
        ep = measures["epochs_from_2"]
        for g in GROUPS:
            mv = measures["moved_together"][g]
            ci = np.asarray(mv["ci95"], dtype=np.float64).reshape(-1, 2)
            ax.fill_between(ep, ci[:, 0], ci[:, 1], color=_LINE[g], alpha=0.2)
            ax.plot(ep, mv["difference"], marker=_MARKERS[g], color=_LINE[g], label=f"{g} (mean, band = 95% interval)")
        ax.axhline(0, color="0.4", ls=":")
        _epoch_axis(ax, len(ep) + 2, "to own epoch 1 - to others",
                    "After epoch 1: closer to the others (above 0) or to itself (below 0)?")
        ax.legend(loc="best")
        fig.tight_layout()
    return fig
