"""Chapter 4: trajectories of pre-trained and randomly initialised nets in function space.

N nets initialised from greedily pre-trained RBM stacks and N nets with random initialisation are
fine-tuned together as one batch of 2N members. Before fine-tuning (epoch 0) and after every
epoch, each net's softmax outputs on T fixed test digits are recorded; concatenated, they are the
net's point in function space (dimension D = T * C, see :mod:`pretraining.functionspace`). The
chapter embeds all points in 2-D (t-SNE, Isomap) and measures the claims about Erhan et al.'s
(2010) figures 5 and 6 in the original D-dimensional space.

Shapes: M nets (members), E fine-tuning epochs, T probe digits, C classes, D = T * C.
Trajectories are ``probs`` (M, E + 1, T, C) or ``vectors`` (M, E + 1, D); index 0 on the second
axis is the net before fine-tuning. Groups are labelled with :data:`GROUPS`; the pre-trained nets
come first.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import functionspace as fs
from .models import Classifier, Stack
from .params import ParameterError
from .seeding import validate_seeds
from .train import FinetuneConfig, finetune
from .checks import check_int as _check_int

__all__ = [
    "GROUPS",
    "PAPER",
    "check_settings",
    "embed_trajectories",
    "group_labels",
    "group_seeds",
    "measure_trajectories",
    "plot_distance_to_start",
    "plot_embedding",
    "plot_group_distances",
    "plot_knn_accuracy",
    "plot_probe_error",
    "probe_confidence",
    "probe_errors",
    "probe_indices",
    "record_trajectories",
    "train_groups",
    "verdicts",
    "within_difference_ci",
]

GROUPS = ("pre-trained", "random init")
"""Group labels, in the order of the members (pre-trained nets first)."""

PAPER = {
    "citation": "Erhan, Bengio, Courville, Manzagol, Vincent, Bengio: Why does unsupervised pre-training "
                "help deep learning? JMLR 11 (2010), figures 5 and 6",
    "nets_per_group": 50,
    "hidden_layers": 2,
    "test_outputs": "outputs on the test set, concatenated",
    "embeddings": "t-SNE and ISOMAP of both groups together, one point per net per epoch",
    "separation": "pre-trained and randomly initialised nets occupy different regions of function space, "
                  "with no overlap",
    "spread": "pre-trained nets end up more similar to one another (claim C4 as the lecture and this book "
              "state it)",
}
"""The paper's setting and the claim about its figures (qualitative: the figures carry no numbers)."""

_COLOURS = {"pre-trained": "Blues", "random init": "Oranges"}
_LINE = {"pre-trained": "tab:blue", "random init": "tab:orange"}
_MARKERS = {"pre-trained": "o", "random init": "^"}


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


def check_settings(*, n_nets: int, finetune_epochs: int, n_test_cases: int, n_available: int,
                   perplexity: float, isomap_neighbors: int, knn_k: int) -> None:
    """Cross-checks of the chapter's parameters, before any training (each alone is checked by its spec).

    With P = 2 * n_nets * (finetune_epochs + 1) points: n_test_cases <= n_available test digits;
    3 * perplexity < P - 1 (t-SNE); isomap_neighbors < P; knn_k <= 2 * n_nets - 1 (the other nets
    at one epoch). Raises :class:`ParameterError` naming the parameter.
    """
    points = 2 * n_nets * (finetune_epochs + 1)
    if n_test_cases > n_available:
        raise ParameterError(f"n_test_cases={n_test_cases} is not allowed: at most the {n_available} test digits")
    if not 3 * perplexity < points - 1:
        raise ParameterError(f"perplexity={perplexity} is not allowed: 3 * perplexity must be < {points - 1} "
                             f"(the {points} points minus one)")
    if isomap_neighbors >= points:
        raise ParameterError(f"isomap_neighbors={isomap_neighbors} is not allowed: fewer than the {points} points")
    if knn_k > 2 * n_nets - 1:
        raise ParameterError(f"knn_k={knn_k} is not allowed: at most {2 * n_nets - 1} (the other nets of one epoch)")


# --------------------------------------------------------------------------------------------
# seeds, probe digits, training
# --------------------------------------------------------------------------------------------
def group_seeds(seed: int, n_nets: int) -> tuple[list[int], list[int]]:
    """Distinct seeds for the two groups: pre-trained ``seed .. seed+n-1``, random ``seed+n .. seed+2n-1``.

    A net's seed fixes its initialisation (for a pre-trained net: its RBM stack and its softmax
    layer) and its minibatch order, so no two nets share either.
    """
    seed = _check_int("seed", seed, 0)
    n_nets = _check_int("n_nets", n_nets, 1)
    return list(range(seed, seed + n_nets)), list(range(seed + n_nets, seed + 2 * n_nets))


def group_labels(n_nets: int) -> list[str]:
    """Labels of the 2 * n_nets members of :func:`train_groups`: n_nets pre-trained, then n_nets random."""
    n_nets = _check_int("n_nets", n_nets, 1)
    return [GROUPS[0]] * n_nets + [GROUPS[1]] * n_nets


def probe_indices(n_available: int, n_test_cases: int) -> np.ndarray:
    """Evenly spaced row indices floor(i * n_available / n_test_cases), i < n_test_cases -> (T,) int64.

    The mnist-10k test set is sorted by class, so evenly spaced rows give every class in
    proportion (the first T rows would all be zeros). n_test_cases == n_available takes them all.
    """
    n_available = _check_int("n_available", n_available, 1)
    n_test_cases = _check_int("n_test_cases", n_test_cases, 1)
    if n_test_cases > n_available:
        raise ValueError(f"n_test_cases={n_test_cases} is larger than the {n_available} test digits available")
    return (np.arange(n_test_cases, dtype=np.int64) * n_available) // n_test_cases


def record_trajectories(clf: Classifier, x: torch.Tensor, y: torch.Tensor, probe_x: torch.Tensor,
                        config: FinetuneConfig, seeds: Sequence[int], *,
                        progress: bool = True) -> tuple[torch.Tensor, dict[str, list]]:
    """Fine-tune ``clf`` in place (:func:`pretraining.train.finetune`), recording its outputs.

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
    def record(epoch: int, model: Classifier) -> None:
        probs[:, epoch] = model.predict_proba(probe_x).float().cpu()

    record(0, clf)
    history = finetune(clf, x, y, config, seeds, on_epoch=record, progress=progress)
    return probs, history


def train_groups(stack: Stack, x: torch.Tensor, y: torch.Tensor, probe_x: torch.Tensor,
                 config: FinetuneConfig, pretrained_seeds: Sequence[int], random_seeds: Sequence[int], *,
                 n_classes: int = 10, progress: bool = True) -> tuple[torch.Tensor, dict[str, list]]:
    """Fine-tune N pre-trained and N randomly initialised nets as ONE batch of 2N members.

    stack: N pre-trained members (hidden sizes H_1..H_L) whose seeds are ``pretrained_seeds``;
    the pre-trained nets copy its layers and add a random softmax layer
    (:meth:`Classifier.from_stack`); the random nets have the same sizes [V, H_1..H_L, C], weights
    uniform in +-1/sqrt(fan_in) from ``random_seeds`` (:meth:`Classifier.random`).
    Returns probs (2N, E + 1, T, C) (pre-trained nets first, see :func:`group_labels`) and the
    fine-tuning history (lists of 2N values per epoch). ``stack`` itself is not changed.
    """
    if not isinstance(stack, Stack):
        raise TypeError(f"stack must be a pre-trained Stack, got {type(stack).__name__}")
    pretrained_seeds = validate_seeds(pretrained_seeds, stack.n_members, name="pretrained_seeds")
    random_seeds = validate_seeds(random_seeds, stack.n_members, name="random_seeds")
    if set(pretrained_seeds) & set(random_seeds):
        raise ValueError(f"pretrained_seeds and random_seeds share {sorted(set(pretrained_seeds) & set(random_seeds))}; "
                         "every net needs its own seed")
    n_classes = _check_int("n_classes", n_classes, 2)
    first = stack.layers[0]
    pre = Classifier.from_stack(stack, n_classes, pretrained_seeds)
    rand = Classifier.random(stack.sizes + [n_classes], random_seeds, device=first.device, dtype=first.dtype)
    clf = Classifier.stack_members([pre, rand])
    return record_trajectories(clf, x, y, probe_x, config, pretrained_seeds + random_seeds, progress=progress)


def probe_errors(probs: object, labels: object) -> np.ndarray:
    """Test error on the probe digits: probs (M, E+1, T, C), labels (T,) -> (M, E+1) float64 in [0, 1]."""
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs)
    lab = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if p.ndim != 4:
        raise ValueError(f"probs must have shape (nets, epochs + 1, T, C), got {p.shape}")
    if lab.shape != (p.shape[2],) or lab.dtype.kind not in "iu":
        raise ValueError(f"labels must be ({p.shape[2]},) integers (one per probe digit), got {lab.shape} {lab.dtype}")
    return (p.argmax(-1) != lab[None, None, :]).mean(-1, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# measurements in function space
# --------------------------------------------------------------------------------------------
def measure_trajectories(vectors: object, groups: Sequence[str], *, k: int = 1) -> dict:
    """The claims of the chapter, measured in the original D-dimensional function space.

    vectors (M, E+1, D) or probs (M, E+1, T, C); groups (M,) labels from :data:`GROUPS`, at
    least 2 nets each; E >= 1. Euclidean distances throughout. Returns a JSON-able dict:

    - ``within``: {group: [E+1 floats]}, per epoch the mean distance between two distinct nets
      of the group; ``between``: [E+1], the mean distance between a pre-trained and a random net;
    - ``knn_per_epoch``: [E+1], leave-one-net-out k-NN accuracy of telling the groups apart from
      the points of that epoch alone; ``knn_all``: the same over all M*(E+1) points at once
      (each point's neighbours come from other nets, any epoch);
    - ``to_start``: {group: [E+1]}, the mean distance of a net to its own epoch-0 point;
    - ``knn_after_start``: like ``knn_all`` but over the points of epochs 1..E only;
    - ``to_start_after_epoch1`` / ``pairwise_after_epoch1``: {group: float}, the values at epoch 1
      of ``to_start`` and ``within``;
    - ``tighter_last``: :func:`within_difference_ci` at the last epoch (random minus pre-trained).
    """
    v = _as_vectors(vectors)
    M, P, _ = v.shape
    groups = _check_groups(groups, M)
    k = _check_int("k", k, 1)
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
        "tighter_last": within_difference_ci(v[:, -1], groups),
    }


def within_difference_ci(vectors: object, groups: Sequence[str], *, n_boot: int = 2000, level: float = 0.95,
                         seed: int = 0) -> dict[str, float]:
    """How much closer the pre-trained nets are to one another than the random ones, with a bootstrap CI.

    vectors (M, D): one point per net (one epoch); groups (M,) from :data:`GROUPS`. The statistic
    is (mean distance between two random nets) - (mean distance between two pre-trained nets);
    positive means the pre-trained nets are more alike. The CI resamples the nets of each group
    with replacement (``n_boot`` times, seeded); pairs of copies of the same net are left out of
    a resampled mean. Returns {"difference", "low", "high", "level"}.
    """
    x = np.asarray(vectors.detach().cpu() if isinstance(vectors, torch.Tensor) else vectors)
    if x.ndim != 2 or x.dtype.kind != "f" or not np.isfinite(x).all():
        raise ValueError(f"vectors must be finite floats of shape (nets, D), got {x.dtype} {x.shape}")
    groups = _check_groups(groups, x.shape[0])
    n_boot = _check_int("n_boot", n_boot, 1)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    rng = np.random.default_rng(_check_int("seed", seed, 0))
    d = {g: fs.pairwise_distances(x[np.asarray(groups) == g]) for g in GROUPS}

    def mean_pair(dist: np.ndarray, idx: np.ndarray) -> float:
        distinct = idx[:, None] != idx[None, :]
        return float(dist[np.ix_(idx, idx)][distinct].mean()) if distinct.any() else math.nan

    full = {g: mean_pair(d[g], np.arange(len(d[g]))) for g in GROUPS}
    boots = np.array([mean_pair(d[GROUPS[1]], rng.integers(0, len(d[GROUPS[1]]), len(d[GROUPS[1]])))
                      - mean_pair(d[GROUPS[0]], rng.integers(0, len(d[GROUPS[0]]), len(d[GROUPS[0]])))
                      for _ in range(n_boot)])
    low, high = np.nanquantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"difference": full[GROUPS[1]] - full[GROUPS[0]], "low": float(low), "high": float(high),
            "level": float(level)}


def probe_confidence(probs: object) -> np.ndarray:
    """Mean largest output probability over the probe digits: probs (M, E+1, T, C) -> (M, E+1) float64.

    1/C for nets that output the uniform distribution, 1 for nets certain of every answer.
    """
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs)
    if p.ndim != 4:
        raise ValueError(f"probs must have shape (nets, epochs + 1, T, C), got {p.shape}")
    return p.max(-1).mean(-1, dtype=np.float64)


def verdicts(measures: dict) -> dict[str, bool]:
    """The three sub-claims as booleans, from :func:`measure_trajectories`'s dict.

    ``separated``: no overlap, every point's nearest other-net point is in its own group
    (knn_all == 1); ``separated_after_start``: the same for the points of epochs 1..E;
    ``closer_to_each_other``: after one epoch, in each group, the mean distance between nets is
    smaller than the mean distance of a net to its own start; ``pretrained_tighter``: at the last
    epoch the pre-trained nets are closer to one another than the random ones, the whole bootstrap
    CI of the difference above 0.
    """
    pre, rnd = GROUPS
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
    threads during t-SNE: with other work on the machine it tells the uncontended cost) and "isomap_connected": False when the
    ``n_neighbors`` graph fell into several components, which Isomap then joined by their shortest
    links (sklearn's warning about it is caught and reported this way instead).
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
# figures
# --------------------------------------------------------------------------------------------
def plot_embedding(ax: Axes, points: object, groups: Sequence[str], *, title: str) -> None:
    """Scatter of 2-D trajectories points (M, E+1, 2) on ``ax``: one line per net, colour = epoch.

    Each group has its own colour map (light = epoch 0, dark = last epoch) and marker, with a
    horizontal colour bar each under the axes (epoch labels under the lowest); the nets' trajectories are thin lines of the
    group's colour.
    """
    import matplotlib.pyplot as plt
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
        bar = plt.colorbar(sc, ax=ax, orientation="horizontal", fraction=0.03, pad=0.02, aspect=60)
        bar.ax.set_ylabel(g, rotation=0, ha="right", va="center", fontsize=9)
        bar.set_ticks(ticks)
        # later bars are stacked between the axes and the earlier ones: the first is the lowest
        bar.ax.tick_params(labelsize=9, pad=1, labelbottom=i == 0)
        if i == 0:
            bar.set_label("epoch", labelpad=0)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", markerscale=1.3)


def _epoch_axis(ax: Axes, n_points: int, ylabel: str, title: str) -> None:
    ax.set_xlabel("fine-tuning epoch (0 = before fine-tuning)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xticks(range(0, n_points, max(1, math.ceil(n_points / 12))))


def plot_group_distances(measures: dict) -> Figure:
    """Mean pairwise distance within each group and between the groups, per epoch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ep = measures["epochs"]
    for g in GROUPS:
        ax.plot(ep, measures["within"][g], marker=_MARKERS[g], color=_LINE[g], label=f"within {g}")
    ax.plot(ep, measures["between"], marker="s", color="0.3", ls="--", label="between the groups")
    _epoch_axis(ax, len(ep), "mean Euclidean distance", "Distances between nets in function space")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_knn_accuracy(measures: dict) -> Figure:
    """Leave-one-net-out nearest-neighbour accuracy of telling the groups apart, per epoch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8))
    ep = measures["epochs"]
    ax.plot(ep, measures["knn_per_epoch"], marker="o", color="0.2", label="points of this epoch only")
    ax.axhline(measures["knn_all"], color="tab:green", ls="--", label="all epochs together")
    ax.axhline(0.5, color="0.6", ls=":", label="chance (0.5)")
    ax.set_ylim(0.0, 1.05)
    _epoch_axis(ax, len(ep), "accuracy", "Can a nearest-neighbour rule tell the groups apart?")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_distance_to_start(measures: dict) -> Figure:
    """Per group: mean distance of a net to its own start vs mean distance between nets, per epoch."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    ep = measures["epochs"]
    for ax, g in zip(axes, GROUPS):
        ax.plot(ep, measures["to_start"][g], marker=_MARKERS[g], color=_LINE[g], label="net to its own start")
        ax.plot(ep, measures["within"][g], marker=_MARKERS[g], color=_LINE[g], ls="--", mfc="white",
                label="net to another net (same epoch)")
        ax.axvline(1, color="0.6", ls=":")
        _epoch_axis(ax, len(ep), "mean Euclidean distance", g)
        ax.legend(loc="best")
    fig.suptitle("Where does a net go: away from its start, towards the others?")
    fig.tight_layout()
    return fig


def plot_probe_error(errors: object, groups: Sequence[str]) -> Figure:
    """Test error on the probe digits per epoch: errors (M, E+1); median and full range per group."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"errors must have shape (nets, epochs + 1), got {e.shape}")
    groups = _check_groups(groups, e.shape[0])
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ep = np.arange(e.shape[1])
    for g in GROUPS:
        sel = e[np.asarray(groups) == g] * 100
        ax.fill_between(ep, sel.min(0), sel.max(0), color=_LINE[g], alpha=0.2)
        ax.plot(ep, np.median(sel, 0), marker=_MARKERS[g], color=_LINE[g], label=f"{g} (median, band = range)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([t for t in (1, 2, 5, 10, 20, 50, 100) if e.min() * 100 / 2 <= t <= max(e.max() * 100 * 2, 2)])
    _epoch_axis(ax, e.shape[1], "test error on the probe digits (%)", "How well the nets classify along the way")
    ax.legend()
    fig.tight_layout()
    return fig
