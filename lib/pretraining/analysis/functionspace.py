"""Networks compared as functions (Erhan et al. 2010, section 5, figures 5 and 6).

A network is represented by the vector of its outputs on a fixed set of test cases: the softmax
probabilities of T test digits over C classes, concatenated into one point of dimension T*C.
Networks (or one network at successive epochs) are then compared by Euclidean distance in that
space and embedded in 2-D with t-SNE or Isomap.

Inputs are numpy arrays or torch tensors (moved to the CPU); outputs are numpy arrays or plain
floats. A "point" is one row of ``vectors`` (N, D); ``groups`` (N,) labels each point with its
group (e.g. "pre-trained", "random init"); ``nets`` (N,) says which network produced it, so that
the points of one network's trajectory can be kept together.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence

import numpy as np
from ..core.checks import require_int

__all__ = [
    "distance_to_others",
    "distance_to_start",
    "error_matched_knn_accuracy",
    "hull_area",
    "embed_isomap",
    "embed_tsne",
    "group_distances",
    "knn_group_accuracy",
    "pairwise_distances",
]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _as_array(name: str, x: object, ndim: int) -> np.ndarray:
    """A finite floating-point numpy array with ``ndim`` dimensions (torch tensors are accepted)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers ({exc})") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be an array of numbers, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_labels(name: str, labels: object, n: int) -> tuple[np.ndarray, list[Hashable]]:
    """One hashable label per point -> integer codes (n,) in order of first appearance."""
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of {n} labels, got a string")
    values = list(labels.tolist() if hasattr(labels, "tolist") else labels)
    if len(values) != n:
        raise ValueError(f"{name} must have one label per point ({n}), got {len(values)}")
    index: dict[Hashable, int] = {}
    try:
        codes = np.array([index.setdefault(v, len(index)) for v in values], dtype=np.int64)
    except TypeError as exc:
        raise TypeError(f"{name} labels must be hashable ({exc})") from None
    return codes, list(index)


# --------------------------------------------------------------------------------------------
# vectors and distances
# --------------------------------------------------------------------------------------------
def pairwise_distances(a: object, b: object = None) -> np.ndarray:
    """Euclidean distances between the rows of a (N, D) and of b (K, D) -> (N, K) float64.

    ``b=None`` compares a with itself: the result is symmetric with an exactly zero diagonal.
    Computed as sqrt(|a|^2 + |b|^2 - 2 a·b) in float64 (fast for D ~ 10^5).
    """
    x = _as_array("a", a, 2).astype(np.float64)
    y = x if b is None else _as_array("b", b, 2).astype(np.float64)
    if y.shape[1] != x.shape[1]:
        raise ValueError(f"a and b must have the same number of columns, got {x.shape[1]} and {y.shape[1]}")
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    d = np.sqrt(np.maximum(sq, 0.0))
    if b is None:
        d = 0.5 * (d + d.T)
        np.fill_diagonal(d, 0.0)
    return d


def group_distances(vectors: object, groups: Sequence[Hashable]) -> dict:
    """Mean pairwise Euclidean distance within each group and between every two groups.

    vectors (N, D), groups (N,) labels, each group with at least 2 points. Within a group the mean
    is over all pairs of distinct points (self-pairs excluded); between groups g and h over all
    pairs (point of g, point of h). Returns {"within": {g: float}, "between": {(g, h): float}}, the
    groups in order of first appearance and (g, h) with g before h.
    """
    x = _as_array("vectors", vectors, 2)
    codes, names = _as_labels("groups", groups, x.shape[0])
    counts = np.bincount(codes)
    if counts.min() < 2:
        raise ValueError(f"every group needs at least 2 points; group {names[int(counts.argmin())]!r} has {counts.min()}")
    d = pairwise_distances(x)
    within, between = {}, {}
    for gi, g in enumerate(names):
        ig = codes == gi
        n = int(ig.sum())
        within[g] = float(d[np.ix_(ig, ig)].sum() / (n * (n - 1)))
        for hi in range(gi + 1, len(names)):
            between[(g, names[hi])] = float(d[np.ix_(ig, codes == hi)].mean())
    return {"within": within, "between": between}


def knn_group_accuracy(vectors: object, groups: Sequence[Hashable], nets: Sequence[Hashable], k: int = 1) -> float:
    """Leave-one-net-out k-nearest-neighbour accuracy of predicting a point's group.

    vectors (N, D), groups (N,), nets (N,): each point is classified by the majority group of its
    k nearest points (Euclidean) among the points of *other* networks — all points of its own
    network are excluded, so a trajectory cannot recognise itself. Ties in the vote go to the
    group whose member is nearest. Returns the fraction of the N points classified correctly:
    1.0 for well-separated groups, about 1/n_groups when the groups are mixed.
    Every net must belong to one group; needs at least 2 nets and at least k points of other nets.
    """
    x = _as_array("vectors", vectors, 2)
    k = require_int("k", k, 1)
    g_codes, _ = _as_labels("groups", groups, x.shape[0])
    n_codes, net_names = _as_labels("nets", nets, x.shape[0])
    if len(net_names) < 2:
        raise ValueError(f"nets must name at least 2 networks for leave-one-net-out, got {len(net_names)}")
    group_of_net = np.full(len(net_names), -1)
    for net, grp in zip(n_codes, g_codes):
        if group_of_net[net] not in (-1, grp):
            raise ValueError(f"net {net_names[net]!r} has points in more than one group; each net must belong to one group")
        group_of_net[net] = grp
    n_reference = x.shape[0] - np.bincount(n_codes).max()
    if k > n_reference:
        raise ValueError(f"k={k} is larger than the {n_reference} points of other nets available to some point")
    d = pairwise_distances(x)
    d[n_codes[:, None] == n_codes[None, :]] = np.inf
    neighbours = np.argsort(d, axis=1, kind="stable")[:, :k]  # (N, k), nearest first
    votes = g_codes[neighbours]  # (N, k)
    n_groups = int(g_codes.max()) + 1
    onehot = votes[:, :, None] == np.arange(n_groups)[None, None, :]  # (N, k, G)
    count = onehot.sum(1)
    first = np.where(onehot.any(1), onehot.argmax(1), k)  # position of the nearest vote for each group
    predicted = np.argmax(count * (k + 1) - first, axis=1)
    return float((predicted == g_codes).mean())


def distance_to_start(traj: object) -> np.ndarray:
    """traj (M, n_epochs + 1, D) function vectors of M nets per epoch -> (M, n_epochs + 1) float64,
    the Euclidean distance of each net at each epoch to its own epoch-0 point (column 0 is 0)."""
    t = _as_array("traj", traj, 3)
    return np.linalg.norm((t - t[:, :1]).astype(np.float64), axis=2)


def distance_to_others(vectors: object) -> np.ndarray:
    """vectors (M, D), one point per net of one group -> (M,) float64: each net's mean Euclidean
    distance to the group's M - 1 other nets (M >= 2). Their mean is the group's mean pairwise distance."""
    x = _as_array("vectors", vectors, 2)
    if x.shape[0] < 2:
        raise ValueError(f"vectors needs at least 2 nets (rows), got {x.shape[0]}")
    return pairwise_distances(x).sum(1) / (x.shape[0] - 1)


def error_matched_knn_accuracy(vectors: object, groups: Sequence[Hashable], nets: Sequence[Hashable],
                               errors: object, *, tolerance: float) -> dict:
    """Leave-one-net-out 1-nearest-neighbour group accuracy between points matched on their error.

    vectors (N, D), groups (N,) with exactly two groups, nets (N,) as in :func:`knn_group_accuracy`;
    errors (N,): each point's error (e.g. test error on the probe digits, a fraction). A point's
    candidates are the points of *other* nets whose error is within ``tolerance`` of its own
    (|e_j - e_i| <= tolerance); a point counts only when its candidates hold both groups, so that
    either answer is possible at its error, and it is classified by its nearest candidate. How far
    training has progressed cannot tell the groups apart then: both are offered at the same error.
    Returns {"accuracy": the fraction of the counted points classified correctly (None when no point
    counts), "n_points": how many counted, "tolerance"}; 1.0 means every counted point is nearest
    to its own group.
    """
    x = _as_array("vectors", vectors, 2)
    n = x.shape[0]
    g_codes, g_names = _as_labels("groups", groups, n)
    if len(g_names) != 2:
        raise ValueError(f"groups must hold exactly 2 groups, got {len(g_names)}: {g_names}")
    n_codes, _ = _as_labels("nets", nets, n)
    err = _as_array("errors", errors, 1).astype(np.float64)
    if err.shape[0] != n:
        raise ValueError(f"errors must have one value per point ({n}), got {err.shape[0]}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise ValueError(f"tolerance={tolerance!r} is not allowed; it must be a number > 0")
    d = pairwise_distances(x)
    excluded = (n_codes[:, None] == n_codes[None, :]) | (np.abs(err[:, None] - err[None, :]) > tolerance)
    d[excluded] = np.inf
    both = np.stack([(~excluded & (g_codes[None, :] == g)).any(1) for g in (0, 1)]).all(0)  # (N,)
    if not both.any():
        return {"accuracy": None, "n_points": 0, "tolerance": float(tolerance)}
    nearest = np.argmin(d[both], axis=1)
    accuracy = float((g_codes[nearest] == g_codes[both]).mean())
    return {"accuracy": accuracy, "n_points": int(both.sum()), "tolerance": float(tolerance)}


def hull_area(points: object) -> float:
    """Area of the convex hull of points (N, 2) (scipy's Qhull); 0.0 for fewer than 3 points or
    points on one line."""
    from scipy.spatial import ConvexHull, QhullError

    p = _as_array("points", points, 2).astype(np.float64)
    if p.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {p.shape}")
    if p.shape[0] < 3:
        return 0.0
    try:
        return float(ConvexHull(p).volume)  # in 2-D Qhull's "volume" is the area
    except QhullError:  # all points on one line (or one point)
        return 0.0


# --------------------------------------------------------------------------------------------
# 2-D embeddings
# --------------------------------------------------------------------------------------------
def _pca(x: np.ndarray, pca_dims: int | None, seed: int) -> np.ndarray:
    """Reduce to min(pca_dims, N, D) dimensions with a seeded randomized PCA (None: no PCA)."""
    if pca_dims is None or pca_dims >= min(x.shape):
        return x.astype(np.float64)
    from sklearn.decomposition import PCA

    return PCA(n_components=pca_dims, svd_solver="randomized", random_state=seed).fit_transform(x.astype(np.float64))


def _check_pca_dims(pca_dims: object) -> int | None:
    return None if pca_dims is None else require_int("pca_dims", pca_dims, 2)


def embed_tsne(
    points: object,
    *,
    perplexity: float = 30.0,
    pca_dims: int | None = 50,
    seed: int = 0,
    n_jobs: int = 1,
) -> np.ndarray:
    """t-SNE embedding of points (N, D) -> (N, 2) float64, deterministic for a seed.

    Settings: a seeded randomized PCA to min(pca_dims, N, D) dimensions first (None skips it),
    then openTSNE's defaults — PCA initialisation, learning rate N/12, 250 early-exaggeration
    iterations and 500 more, approximate neighbours and Barnes-Hut gradients below 10,000 points
    (FFT-interpolated above), all seeded with ``seed``. Needs 3 * perplexity < N - 1.
    Measured: 3,000 points of dimension 10,000 embed in 12-16 s on 2 (shared) CPU cores.
    """
    x = _as_array("points", points, 2)
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)) or not perplexity > 0:
        raise ValueError(f"perplexity must be a positive number, got {perplexity!r}")
    if not 3 * perplexity < x.shape[0] - 1:
        raise ValueError(f"perplexity={perplexity} is too large for {x.shape[0]} points; need 3 * perplexity < N - 1")
    pca_dims = _check_pca_dims(pca_dims)
    seed = require_int("seed", seed, 0)
    n_jobs = require_int("n_jobs", n_jobs, 1)
    from openTSNE import TSNE

    reduced = _pca(x, pca_dims, seed)
    embedding = TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=n_jobs).fit(reduced)
    return np.asarray(embedding, dtype=np.float64)


def embed_isomap(points: object, *, n_neighbors: int = 10, pca_dims: int | None = 50) -> np.ndarray:
    """Isomap embedding of points (N, D) -> (N, 2) float64 (sklearn), deterministic.

    A randomized PCA (seed 0) to min(pca_dims, N, D) dimensions first (None skips it), then Isomap
    with ``n_neighbors`` neighbours and the dense eigen-solver (ARPACK would start from an unseeded
    random vector). Each axis's sign is fixed so that its largest-magnitude coordinate is positive.
    The dense solver costs O(N^3): about 15 s for 3,000 points on 2 CPU cores. When the
    neighbour graph falls apart (e.g. each net's trajectory only sees itself) sklearn warns and
    joins the components by their shortest links; more neighbours avoid that.
    """
    x = _as_array("points", points, 2)
    n_neighbors = require_int("n_neighbors", n_neighbors, 1)
    if n_neighbors >= x.shape[0]:
        raise ValueError(f"n_neighbors={n_neighbors} must be smaller than the number of points ({x.shape[0]})")
    pca_dims = _check_pca_dims(pca_dims)
    from sklearn.manifold import Isomap

    from scipy.sparse import SparseEfficiencyWarning

    reduced = _pca(x, pca_dims, 0)
    with warnings.catch_warnings():  # sklearn's graph completion emits one such warning per edge
        warnings.simplefilter("ignore", SparseEfficiencyWarning)
        y = Isomap(n_neighbors=n_neighbors, n_components=2, eigen_solver="dense").fit_transform(reduced)
    signs = np.sign(y[np.abs(y).argmax(0), np.arange(2)])
    return np.asarray(y * np.where(signs == 0, 1.0, signs), dtype=np.float64)
