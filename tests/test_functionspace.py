"""Tests of pretraining.analysis.functionspace on toy vectors with known geometry.

Timing (measured once, not a test): 3,000 points of dimension 10,000 (100 trajectories of 30
epochs), 2 shared CPU cores: pairwise_distances 1.3 s, embed_tsne 12-16 s, embed_isomap 15 s,
knn_group_accuracy 2.6 s.
"""

from __future__ import annotations

import numpy as np
import pytest

from pretraining.analysis import functionspace as fs

from pretraining.analysis.functionspace import (
    distance_to_start,
    embed_isomap,
    embed_tsne,
    group_distances,
    knn_group_accuracy,
    pairwise_distances,
)


def two_clusters(n_networks: int = 20, n_epochs: int = 5, dim: int = 30, separation: float = 20.0, seed: int = 0):
    """Trajectories of n_networks nets (alternating groups "a"/"b"), n_epochs points each."""
    rng = np.random.default_rng(seed)
    centres = {"a": np.zeros(dim), "b": np.full(dim, separation / np.sqrt(dim))}
    points, groups, nets = [], [], []
    for n in range(n_networks):
        g = "ab"[n % 2]
        start = centres[g] + rng.normal(0, 1.0, dim)
        points.append(start + np.cumsum(rng.normal(0, 0.2, (n_epochs, dim)), axis=0))
        groups += [g] * n_epochs
        nets += [n] * n_epochs
    return np.concatenate(points).astype(np.float32), groups, nets


def test_pairwise_distances_match_direct_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    direct = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(pairwise_distances(a, b), direct, rtol=1e-10)
    self_d = pairwise_distances(a)
    assert np.all(np.diag(self_d) == 0.0) and np.array_equal(self_d, self_d.T)
    np.testing.assert_allclose(pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]]))[0, 1], 5.0)


def test_group_distances_known_geometry():
    # group x: points 0 and 2 on a line (distance 2); group y: 10 and 11 (distance 1)
    v = np.array([[0.0], [10.0], [2.0], [11.0]])
    d = group_distances(v, ["x", "y", "x", "y"])
    assert d["within"] == {"x": 2.0, "y": 1.0}
    assert d["between"] == {("x", "y"): pytest.approx((10 + 11 + 8 + 9) / 4)}


def test_two_separated_clusters_between_exceeds_within_and_knn_is_perfect():
    x, groups, nets = two_clusters()
    d = group_distances(x, groups)
    assert d["between"][("a", "b")] > 2 * max(d["within"].values())
    assert knn_group_accuracy(x, groups, nets, k=1) == 1.0
    assert knn_group_accuracy(x, groups, nets, k=5) == 1.0


def test_one_cluster_knn_is_near_chance():
    x, groups, nets = two_clusters(n_networks=200, n_epochs=2, separation=0.0, seed=1)
    acc = knn_group_accuracy(x, groups, nets, k=1)
    assert 0.35 < acc < 0.65


def test_knn_excludes_the_whole_held_out_net():
    # each net's points are far from everything else but close to each other: with its own
    # points available every point would be right; leave-one-net-out must use the other nets
    x = np.array([[0.0], [0.1], [100.0], [100.1], [40.0], [40.1]])
    groups = ["a", "a", "b", "b", "a", "a"]
    nets = [0, 0, 1, 1, 2, 2]
    # net 0 -> nearest other is net 2 ("a"): right; net 1 -> net 2 ("a"): wrong; net 2 -> net 0: right
    assert knn_group_accuracy(x, groups, nets, k=1) == pytest.approx(4 / 6)


def test_knn_ties_go_to_the_nearest_group():
    x = np.array([[0.0], [1.0], [-2.0], [10.0]])
    # point 0 with k=2: neighbours 1 ("b", d=1) and 2 ("c", d=2): tie -> "b"
    acc = knn_group_accuracy(x, ["b", "b", "c", "c"], [0, 1, 2, 3], k=2)
    # point 0 right ("b"); point 1: 0 ("b") and 2 ("c") -> "b" right; point 2: 0 ("b"), 1 ("b") wrong;
    # point 3: 1 ("b"), 0 ("b") wrong
    assert acc == 0.5


def test_distance_to_start():
    traj = np.zeros((2, 3, 2))
    traj[0, 1] = [3, 4]
    traj[0, 2] = [6, 8]
    traj[1] += 7.0  # a net that never moves
    np.testing.assert_allclose(distance_to_start(traj), [[0, 5, 10], [0, 0, 0]])


def test_tsne_is_deterministic_and_separates_clusters():
    x, groups, nets = two_clusters(n_networks=20, n_epochs=5, dim=60)
    a = embed_tsne(x, perplexity=10, pca_dims=20, seed=0)
    b = embed_tsne(x, perplexity=10, pca_dims=20, seed=0)
    assert a.shape == (100, 2) and np.array_equal(a, b)
    assert not np.array_equal(a, embed_tsne(x, perplexity=10, pca_dims=20, seed=1))
    assert knn_group_accuracy(a, groups, nets) == 1.0


@pytest.mark.filterwarnings("ignore:The number of connected components")  # two far-apart clusters
def test_isomap_shape_determinism_and_separation():
    x, groups, nets = two_clusters(n_networks=20, n_epochs=5, dim=60)
    a = embed_isomap(x, n_neighbors=10, pca_dims=20)
    assert a.shape == (100, 2) and np.array_equal(a, embed_isomap(x, n_neighbors=10, pca_dims=20))
    assert knn_group_accuracy(a, groups, nets) == 1.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pairwise_distances(np.ones((2, 3)), np.ones((2, 4))), "same number of columns"),
        (lambda: pairwise_distances(np.array([[np.nan, 1.0]])), "NaN"),
        (lambda: group_distances(np.ones((3, 2)), ["a", "a", "b"]), "group 'b' has 1"),
        (lambda: group_distances(np.ones((3, 2)), ["a", "a"]), "one label per point"),
        (lambda: knn_group_accuracy(np.ones((4, 2)), [0, 0, 1, 1], [0, 0, 0, 0]), "at least 2 networks"),
        (lambda: knn_group_accuracy(np.ones((4, 2)), [0, 1, 1, 1], [0, 0, 1, 1]), "more than one group"),
        (lambda: knn_group_accuracy(np.ones((4, 2)), [0, 0, 1, 1], [0, 0, 1, 1], k=3), "k=3 is larger"),
        (lambda: knn_group_accuracy(np.ones((4, 2)), [0, 0, 1, 1], [0, 0, 1, 1], k=0), "k=\\S+ is not allowed; it must be an int >= 1"),
        (lambda: distance_to_start(np.ones((2, 3))), "traj must have 3 dimensions"),
        (lambda: embed_tsne(np.ones((20, 5)), perplexity=30), "perplexity=30 is too large"),
        (lambda: embed_tsne(np.ones((200, 5)), perplexity=-1), "perplexity must be a positive"),
        (lambda: embed_tsne(np.ones((200, 5)), pca_dims=1), "pca_dims=\\S+ is not allowed; it must be an int >= 2"),
        (lambda: embed_tsne(np.ones((200, 5)), seed="0"), "seed=\\S+ is not allowed; it must be an int"),
        (lambda: embed_isomap(np.ones((5, 3)), n_neighbors=5), "n_neighbors=5 must be smaller"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ------------------------------------------------------------------------------ spread, matched accuracy, hull
def test_distance_to_others_is_each_rows_mean_distance_to_the_rest():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7))
    brute = [np.mean([np.linalg.norm(x[i] - x[j]) for j in range(5) if j != i]) for i in range(5)]
    np.testing.assert_allclose(fs.distance_to_others(x), brute, rtol=1e-12)
    # their mean is the group's mean pairwise distance
    assert fs.distance_to_others(x).mean() == pytest.approx(fs.group_distances(x, ["g"] * 5)["within"]["g"])
    with pytest.raises(ValueError, match="at least 2 nets"):
        fs.distance_to_others(x[:1])


def _trained_groups(offset: float):
    """Two groups of 6 nets, 8 checkpoints each: the point is (error, offset * group). Group A is better
    trained: its errors lie in [0.05, 0.3], B's in [0.2, 0.6] (drawn at random), so they meet only in
    [0.2, 0.3]."""
    rng = np.random.default_rng(0)
    errors, groups, nets, points = [], [], [], []
    for net in range(12):
        g = "A" if net < 6 else "B"
        for v in rng.uniform(*((0.05, 0.3) if g == "A" else (0.2, 0.6)), 8):
            errors.append(v)
            groups.append(g)
            nets.append(net)
            points.append([v, offset * (g == "B")])
    return np.array(points), groups, nets, np.array(errors)


def test_error_matched_accuracy_is_not_fooled_by_how_trained():
    # the groups differ only in how far they trained: the plain rule separates them, matched it cannot
    x, groups, nets, errors = _trained_groups(offset=0.0)
    plain = fs.knn_group_accuracy(x, groups, nets)
    matched = fs.error_matched_knn_accuracy(x, groups, nets, errors, tolerance=0.02)
    assert plain > 0.75 and matched["accuracy"] < 0.75
    # only points in the shared range [0.2, 0.3] (give or take the tolerance) have both groups at their error
    counted = (errors > 0.2 - 0.02) & (errors < 0.3 + 0.02)
    assert 0 < matched["n_points"] <= counted.sum()
    # brute force: each counted point's nearest other-net point within the tolerance
    g = np.array(groups)
    right = total = 0
    for i in range(len(x)):
        cand = [j for j in range(len(x)) if nets[j] != nets[i] and abs(errors[j] - errors[i]) <= 0.02]
        if len({g[j] for j in cand}) == 2:
            j = min(cand, key=lambda j: (abs(x[j, 0] - x[i, 0]), j))
            right += g[j] == g[i]
            total += 1
    assert matched == {"accuracy": right / total, "n_points": total, "tolerance": 0.02}
    # separated in a direction that has nothing to do with the error: matched accuracy 1
    x, groups, nets, errors = _trained_groups(offset=5.0)
    assert fs.error_matched_knn_accuracy(x, groups, nets, errors, tolerance=0.02)["accuracy"] == 1.0
    # no point with both groups at its error: no accuracy
    far = fs.error_matched_knn_accuracy(x, groups, nets, errors + 10 * (np.array(groups) == "B"), tolerance=0.02)
    assert far == {"accuracy": None, "n_points": 0, "tolerance": 0.02}


def test_error_matched_accuracy_rejects_bad_inputs():
    x, groups, nets, errors = _trained_groups(offset=1.0)
    with pytest.raises(ValueError, match="tolerance=0 is not allowed"):
        fs.error_matched_knn_accuracy(x, groups, nets, errors, tolerance=0)
    with pytest.raises(ValueError, match="exactly 2 groups"):
        fs.error_matched_knn_accuracy(x, ["A"] * len(groups), nets, errors, tolerance=0.1)
    with pytest.raises(ValueError, match="errors must have one value per point"):
        fs.error_matched_knn_accuracy(x, groups, nets, errors[:-1], tolerance=0.1)


def test_hull_area_of_known_shapes():
    assert fs.hull_area([[0, 0], [2, 0], [2, 3], [0, 3], [1, 1]]) == pytest.approx(6.0)  # inner point ignored
    assert fs.hull_area([[0, 0], [1, 0], [0, 1]]) == pytest.approx(0.5)
    assert fs.hull_area([[0, 0], [1, 1], [2, 2]]) == 0.0  # on one line
    assert fs.hull_area([[0, 0], [1, 1]]) == 0.0
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        fs.hull_area(np.zeros((4, 3)))
