"""Tests of pretraining.chapters.ch04_function_space on tiny nets and hand-made trajectories."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from pretraining.analysis.references import ERHAN2010_FUNCTION_SPACE  # noqa: E402
from pretraining.book import claims, fairness  # noqa: E402
from pretraining.book.specs import ParameterError  # noqa: E402
from pretraining.book.cache import ArtifactStore  # noqa: E402
from pretraining.chapters.ch04_function_space import (  # noqa: E402
    GROUPS,
    MIN_NETS,
    SPEC,
    GroupTraining,
    Panel,
    Result,
    claim_parts,
    comparison_table,
    conclusion_texts,
    embed_trajectories,
    gate_unconverged,
    group_labels,
    group_makers,
    measure_trajectories,
    n_points,
    plot_distance_to_start,
    plot_embedding,
    plot_embedding_figure,
    plot_group_distances,
    plot_knn_accuracy,
    plot_moved_together,
    plot_probe_error,
    plot_spread,
    probe_confidence,
    probe_errors,
    probe_indices,
    probe_track,
    results_record,
    hull_areas,
    panel_kinds,
    panel_table,
    tracked_probs,
    train_group,
    verdicts,
    within_difference_ci,
)
from pretraining.core.data import Subset  # noqa: E402
from pretraining.core.models import Classifier  # noqa: E402
from pretraining.core.selection import LONGER_RUN, SelectionConfig, early_stopped  # noqa: E402
from pretraining.core.train import FinetuneConfig, RBMConfig, pretrain_stack  # noqa: E402

PRE, RND = GROUPS


@pytest.fixture(scope="module")
def toy():
    """Tiny data set: 60 binary-ish 16-pixel images, 3 classes, and 12 probe images."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(60, 16, generator=g) < 0.3).float()
    y = torch.randint(0, 3, (60,), generator=g)
    probe = (torch.rand(12, 16, generator=g) < 0.3).float()
    stack, _ = pretrain_stack("rbm", x, [8, 6], RBMConfig(epochs=1, lr=0.1, batch_size=10), [0, 1, 2],
                              progress=False)
    return x, y, probe, stack


CONFIG = FinetuneConfig(epochs=2, lr=0.5, batch_size=10)


# ------------------------------------------------------------------------------ groups, probes, rules
def test_group_labels_put_the_pretrained_nets_first():
    assert group_labels(2) == [PRE, PRE, RND, RND]
    with pytest.raises(ValueError, match="n_seeds=0 is not allowed"):
        group_labels(0)


def test_probe_indices_are_evenly_spaced_over_a_class_sorted_set():
    labels = np.repeat(np.arange(10), 200)  # sorted by class, like the mnist-10k test set
    idx = probe_indices(2000, 50)
    assert idx.dtype == np.int64 and idx.tolist() == list(range(0, 2000, 40))
    assert np.bincount(labels[idx]).tolist() == [5] * 10
    assert probe_indices(7, 7).tolist() == list(range(7))
    with pytest.raises(ValueError, match=r"n_test_cases=8 is not allowed; it must be an int in 1\.\.7"):
        probe_indices(7, 8)


def _params(**changes):
    """The quick defaults with changes (a full set of values, as a profile gives them)."""
    return {**SPEC.defaults(), **changes}


def test_spec_defaults_pass_the_rules_and_pick_no_rate_by_hand():
    d = SPEC.defaults()
    assert {k: d[k] for k in ("n_seeds", "hidden_sizes", "dae_epochs", "dae_lr", "dae_noise", "pretrain_batch_size",
                              "rbm_panel", "finetune_batch_size", "n_test_cases", "match_tolerance",
                              "perplexity", "pca_dims", "isomap_neighbors", "knn_k", "embed_jobs")} == {
        "n_seeds": 30, "hidden_sizes": [400, 400], "dae_epochs": 2, "dae_lr": 0.1, "dae_noise": 0.25,
        "pretrain_batch_size": 100, "rbm_panel": False, "finetune_batch_size": 50, "n_test_cases": 500,
        "match_tolerance": 0.01, "perplexity": 30.0, "pca_dims": 50, "isomap_neighbors": 10, "knn_k": 1,
        "embed_jobs": 2}
    assert "finetune_lr" not in d  # the rate is chosen on the validation set, per group
    grid = d["finetune_lr_grid"]
    assert len(grid) >= 5 and grid[-1] / grid[0] >= 30 and grid[0] < 1.0 < grid[-1]  # around the old 1.0
    assert d["finetune_select_seeds"] <= d["n_seeds"] and d["finetune_patience"] < d["finetune_epochs"]
    assert SPEC.problems(d) == []
    assert n_points(d) == 2 * 30 * (d["finetune_patience"] + 2)  # the fewest: every net stopped at its earliest
    assert panel_kinds(d) == ["dae"] and panel_kinds({**d, "rbm_panel": True}) == ["dae", "rbm"]
    with pytest.raises(ParameterError, match="rbm_panel=1 is not allowed"):
        SPEC.check(_params(rbm_panel=1))


def test_rules_name_the_bad_parameter_in_one_line():
    small = dict(n_seeds=3, finetune_epochs=2, n_test_cases=100, perplexity=5.0, isomap_neighbors=5, knn_k=1)
    assert SPEC.problems(_params(**small)) == []  # 2 * 3 * 3 = 18 points
    for name, bad, message in [("n_test_cases", 2001, "at most the 2000 test digits of mnist-10k"),
                               ("perplexity", 6.0, "3 \\* perplexity must be < 17"),
                               ("isomap_neighbors", 18, "fewer than the 18 points"),
                               ("knn_k", 6, "at most 5"),
                               ("pretrain_batch_size", 7001, "at most the 7000 training digits of mnist-10k"),
                               ("finetune_batch_size", 7001, "at most the 7000 training digits of mnist-10k")]:
        problems = SPEC.problems(_params(**{**small, name: bad}))
        assert len(problems) == 1 and "\n" not in problems[0]
        assert problems[0].startswith(f"{name}={bad!r} is not allowed: ")
        with pytest.raises(ParameterError, match=f"{name}={bad}.*{message}"):
            SPEC.check(_params(**{**small, name: bad}))
    # the full set has 10,000 test digits
    assert SPEC.problems(_params(dataset="mnist", n_test_cases=10_000)) == []


def test_rules_check_the_selection_parameters():
    small = dict(n_seeds=3, finetune_epochs=2, n_test_cases=100, perplexity=5.0, isomap_neighbors=5, knn_k=1)
    problems = SPEC.problems(_params(**small, finetune_select_seeds=4))
    assert len(problems) == 1 and problems[0].startswith("finetune_select_seeds=4 is not allowed: at most n_seeds (3)")
    problems = SPEC.problems(_params(**small, finetune_lr_grid=[0.5, 1.0, 2.0, 4.0, 8.0]))  # spans 16x only
    assert len(problems) == 1 and problems[0].startswith("finetune_lr_grid=")
    with pytest.raises(ParameterError, match="finetune_lr"):
        SPEC.check(_params(**small, finetune_lr=1.0))  # no hand-picked rate is accepted


# ------------------------------------------------------------------------------ recording
def test_tracked_probs_pads_each_net_after_its_last_epoch():
    start = torch.full((2, 1, 3), 1 / 3)
    tracked = [[[0.5, 0.25, 0.25]], [[0.2, 0.2, 0.6], [0.1, 0.1, 0.8]]]  # net 0 ran 1 epoch, net 1 ran 2
    probs = tracked_probs(start, tracked)
    assert probs.shape == (2, 3, 1, 3) and probs.dtype == torch.float32
    assert torch.equal(probs[:, 0], start)
    assert probs[0, 1, 0].tolist() == [0.5, 0.25, 0.25] and probs[0, 2].isnan().all()
    assert probs[1, 2, 0].tolist() == pytest.approx([0.1, 0.1, 0.8])
    with pytest.raises(ValueError, match="one curve per net"):
        tracked_probs(start, tracked[:1])


def test_probe_track_records_every_members_outputs(toy):
    _, _, probe, _ = toy
    clf = Classifier.random([16, 5, 3], [0, 1])
    out = probe_track(probe)(clf, clf)
    assert out.shape == (2, 12 * 3)
    torch.testing.assert_close(out.view(2, 12, 3), clf.predict_proba(probe), rtol=0, atol=0)


def test_group_makers_build_each_seeds_own_net(toy):
    _, _, _, stack = toy
    make = group_makers(stack, [0, 1, 2], [3, 4, 5], n_classes=3)
    # pre-trained seed 2 on its own (or twice, as a grid of rates asks) is member 2 of the whole group
    whole = Classifier.from_stack(stack, 3, [0, 1, 2])
    for picked in (make[PRE]([2]), make[PRE]([2, 2])):
        for W, V in zip(picked.weights, whole.weights):
            assert all(torch.equal(W[k], V[2]) for k in range(W.shape[0]))
    assert torch.equal(make[RND]([4, 3]).weights[0], Classifier.random([16, 8, 6, 3], [4, 3]).weights[0])
    make[PRE]([0]).weights[0].add_(1.0)
    assert torch.equal(Classifier.from_stack(stack, 3, [0, 1, 2]).weights[0], whole.weights[0])  # stack untouched
    with pytest.raises(ValueError, match=r"seeds=\[3\] is not allowed; the pre-trained nets' seeds are \[0, 1, 2\]"):
        make[PRE]([3])
    with pytest.raises(ValueError, match="the random init nets' seeds are"):
        make[RND]([0])


def test_group_makers_reject_shared_or_missing_seeds(toy):
    _, _, _, stack = toy
    with pytest.raises(ValueError, match=r"share \[2\]"):
        group_makers(stack, [0, 1, 2], [2, 3, 4], n_classes=3)
    with pytest.raises(ValueError, match="random_seeds has length 2"):
        group_makers(stack, [0, 1, 2], [3, 4], n_classes=3)


# ------------------------------------------------------------------------------ the fair fight
SELECT = SelectionConfig(lr_grid=(0.1, 0.2371, 0.5623, 1.334, 3.162), patience=1, max_extensions=1, select_seeds=1)
PROBE = np.arange(0, 10, 2)  # rows of the fake chapter's 10 test digits


class _FakeChapter:
    """What :func:`train_group` needs of a chapter: the data (train, validation, test) and the cache."""

    def __init__(self, root, x, y):
        self.data = SimpleNamespace(train=Subset(x[:40], y[:40]), valid=Subset(x[40:50], y[40:50]),
                                    test=Subset(x[50:], y[50:]), sha256="0" * 64)
        self.store = ArtifactStore(root)

    def cached(self, name, params, compute, *, version):
        return self.store.get_or_compute(name, params, compute, version=version, data_sha256=self.data.sha256)


def test_train_group_runs_the_protocol_once_through_the_cache(toy, tmp_path):
    x, y, _, stack = toy
    ch = _FakeChapter(tmp_path, x, y)
    make = group_makers(stack, [0, 1, 2], [3, 4, 5], n_classes=3)
    config = FinetuneConfig(epochs=3, lr=0.5, batch_size=10)
    first = train_group(ch, PRE, {"stack": "toy"}, make[PRE], config, SELECT, [0, 1, 2], PROBE)
    again = train_group(ch, PRE, {"stack": "toy"}, make[PRE], config, SELECT, [0, 1, 2], PROBE)
    assert (ch.store.misses, ch.store.hits) == (1, 1) and first == again
    rec = first.selection
    assert first.lr == rec["lr"] in rec["grid"] and len(rec["grid"]) >= 5
    assert {"grid_valid_error", "at_edge", "best_epoch", "epochs_run", "train_nll", "converged",
            "setting_converged"} <= set(rec)
    assert len(rec["best_epoch"]) == 3 and all(1 <= e <= r <= 3 for e, r in zip(rec["best_epoch"], rec["epochs_run"]))
    assert [len(c) for c in first.curves["valid_error"]] == rec["epochs_run"]
    assert isinstance(first.converged, bool)
    if not all(rec["converged"]):  # one net trained again alone, longer, to say what it would need
        assert rec["longer_run"]["epochs"] == 3 * LONGER_RUN and rec["longer_run"]["lr"] == rec["lr"]
    # each net's test error is that of its seed trained alone at the chosen rate, at its best validation epoch
    for m, s in enumerate([0, 1, 2]):
        alone = make[PRE]([s])
        early_stopped(alone, ch.data.train, ch.data.valid, FinetuneConfig(epochs=3, lr=rec["lr"], batch_size=10),
                      [s], patience=1)
        wrong = (alone.predict_proba(ch.data.test.x).argmax(-1)[0] != ch.data.test.y).float().mean()
        assert first.test_error[m] == pytest.approx(float(wrong), abs=1e-6)
        # the recorded trajectory: the fresh net at epoch 0, the reported net at its best epoch, nothing after its run
        probe_x = ch.data.test.x[PROBE]
        torch.testing.assert_close(first.probs[m, 0], make[PRE]([s]).predict_proba(probe_x)[0], rtol=0, atol=0)
        torch.testing.assert_close(first.probs[m, rec["best_epoch"][m]], alone.predict_proba(probe_x)[0],
                                   rtol=0, atol=1e-6)
        assert not first.probs[m, :rec["epochs_run"][m] + 1].isnan().any()
        assert first.probs[m, rec["epochs_run"][m] + 1:].isnan().all()
    assert first.probs.shape == (3, max(rec["epochs_run"]) + 1, 5, 3)
    # the random group is another artifact; another budget too
    train_group(ch, RND, {"sizes": [16, 8, 6, 3]}, make[RND], config, SELECT, [3, 4, 5], PROBE)
    train_group(ch, PRE, {"stack": "toy"}, make[PRE], FinetuneConfig(epochs=2, lr=0.5, batch_size=10), SELECT,
                [0, 1, 2], PROBE)
    assert ch.store.misses == 3
    with pytest.raises(ValueError, match="group='other' is not allowed"):
        train_group(ch, "other", {}, make[PRE], config, SELECT, [0], PROBE)


def test_probe_errors_counts_wrong_argmax():
    probs = np.zeros((1, 2, 4, 3))
    probs[0, 0, :, 0] = 1.0  # epoch 0: always class 0
    probs[0, 1, np.arange(4), [0, 1, 2, 2]] = 1.0  # epoch 1: three right, one wrong
    err = probe_errors(probs, np.array([0, 1, 2, 0]))
    assert err.tolist() == [[0.5, 0.25]]
    with pytest.raises(ValueError, match="labels must be"):
        probe_errors(probs, np.array([0, 1, 2]))


# ------------------------------------------------------------------------------ measurements
def line_trajectories():
    """4 nets (2 per group), 3 points each, on a line (D = 1): exact distances by hand.

    pre-trained: net 0 goes 0 -> 1 -> 2, net 1 goes 0 -> 3 -> 2; random: net 2 goes 10 -> 10 -> 12, net 3
    goes 12 -> 14 -> 16. Probe errors are binary fractions, matched in bins of 0.25.
    """
    v = np.array([[[0.0], [1.0], [2.0]], [[0.0], [3.0], [2.0]], [[10.0], [10.0], [12.0]], [[12.0], [14.0], [16.0]]])
    errors = np.array([[0.875, 0.5, 0.25], [0.875, 0.5, 0.25], [0.875, 0.5, 0.75], [0.875, 0.125, 0.25]])
    return v, [PRE, PRE, RND, RND], errors


def test_measure_trajectories_exact_on_a_line():
    v, groups, errors = line_trajectories()
    m = measure_trajectories(v, groups, errors, match_tolerance=0.25)
    assert m["epochs"] == [0, 1, 2] and m["epochs_from_2"] == [2]
    assert m["within"] == {PRE: [0.0, 2.0, 0.0], RND: [2.0, 4.0, 4.0]}
    # between, epoch 0: |0-10|,|0-12| twice -> 11; epoch 1: 9, 13, 7, 11 -> 10; epoch 2: 10, 14, 10, 14 -> 12
    assert m["between"] == [11.0, 10.0, 12.0]
    assert m["to_start"] == {PRE: [0.0, 2.0, 2.0], RND: [0.0, 1.0, 3.0]}
    assert m["to_start_after_epoch1"] == {PRE: 2.0, RND: 1.0}
    assert m["pairwise_after_epoch1"] == {PRE: 2.0, RND: 4.0}
    # at epoch 2 each pre-trained net is 1 from its epoch-1 self and 0 from the other; each random net 2 and 4
    assert m["last_per_net"] == {PRE: {"to_epoch1": [1.0, 1.0], "to_others": [0.0, 0.0]},
                                 RND: {"to_epoch1": [2.0, 2.0], "to_others": [4.0, 4.0]}}
    assert m["moved_together"][PRE] == {"to_epoch1": [1.0], "to_others": [0.0], "difference": [1.0],
                                        "ci95": [[1.0, 1.0]]}
    assert m["moved_together"][RND]["difference"] == [-2.0]
    assert m["spread_per_net"] == {PRE: {"first": [2.0, 2.0], "last": [0.0, 0.0]},
                                   RND: {"first": [4.0, 4.0], "last": [4.0, 4.0]}}
    assert m["knn_per_epoch"] == [1.0, 1.0, 1.0] and m["knn_all"] == 1.0 and m["knn_after_start"] == 1.0
    # epochs 1-2, other nets' points within 0.25 of a point's error: random net 2 at epoch 2 (error 0.75) and
    # random net 3 at epoch 1 (0.125) see pre-trained points only, so they do not count; each of the other 6
    # is nearest to its own group (e.g. random net 2 at epoch 1, at 10: random net 3's 16 beats pre-trained 3)
    assert m["knn_matched"] == {"accuracy": 1.0, "n_points": 6, "tolerance": 0.25}
    # last epoch: random nets 4 apart, pre-trained 0; every resample with two distinct nets agrees
    assert m["tighter_last"] == {"difference": 4.0, "low": 4.0, "high": 4.0, "level": 0.95}
    assert verdicts(m) == {"separated": True, "separated_after_start": True, "separated_matched": True,
                           "moved_together": False, "pretrained_tighter": True}


def test_measure_trajectories_sees_overlap():
    v, groups, errors = line_trajectories()
    v = v.copy()
    v[2] = [[0.5], [1.5], [2.5]]  # a random net running next to pre-trained net 0
    m = measure_trajectories(v, groups, errors)
    assert m["knn_all"] < 1.0 and m["knn_per_epoch"][0] < 1.0 and m["knn_after_start"] < 1.0
    assert verdicts(m)["separated"] is False and verdicts(m)["separated_after_start"] is False


def test_overlap_at_the_start_only_is_told_apart():
    v, groups, errors = line_trajectories()
    v = v.copy()
    v[2, 0] = [0.5]  # random net 2 starts among the pre-trained nets, then leaves
    m = measure_trajectories(v, groups, errors)
    assert m["knn_per_epoch"][0] < 1.0 and m["knn_per_epoch"][1] == 1.0
    assert verdicts(m)["separated"] is False and verdicts(m)["separated_after_start"] is True


def test_within_difference_ci():
    rng = np.random.default_rng(0)
    tight = rng.normal(0, 1.0, (15, 8))
    loose = rng.normal(0, 3.0, (15, 8))
    groups = [PRE] * 15 + [RND] * 15
    ci = within_difference_ci(np.concatenate([tight, loose]), groups, n_boot=500)
    assert 0 < ci["low"] < ci["difference"] < ci["high"] and ci["level"] == 0.95
    assert ci == within_difference_ci(np.concatenate([tight, loose]), groups, n_boot=500)  # seeded
    other = within_difference_ci(np.concatenate([tight, loose]), groups, n_boot=500, seed=1)
    assert other["difference"] == ci["difference"] and other["low"] != ci["low"]
    same = within_difference_ci(np.concatenate([tight, rng.normal(0, 1.0, (15, 8))]), groups, n_boot=500)
    assert same["low"] < 0 < same["high"]
    with pytest.raises(ValueError, match="level=1.5 is not allowed"):
        within_difference_ci(tight[:4], [PRE, PRE, RND, RND], level=1.5)


def test_probe_confidence_is_mean_largest_probability():
    probs = np.full((1, 2, 2, 4), 0.25)
    probs[0, 1] = [[0.7, 0.1, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1]]
    assert probe_confidence(probs).tolist() == [[0.25, 0.55]]


def test_measure_trajectories_accepts_probs_and_rejects_bad_groups():
    probs = torch.softmax(torch.randn(4, 3, 5, 2, generator=torch.Generator().manual_seed(1)), dim=-1)
    errors = np.full((4, 3), 0.5)
    m = measure_trajectories(probs, [PRE, PRE, RND, RND], errors)
    ref = measure_trajectories(probs.reshape(4, 3, 10).numpy(), [PRE, PRE, RND, RND], errors)
    assert m == ref and len(m["between"]) == 3
    with pytest.raises(ValueError, match="at least 2 nets labelled 'random init'"):
        measure_trajectories(probs, [PRE, PRE, PRE, RND], errors)
    with pytest.raises(ValueError, match="allowed labels"):
        measure_trajectories(probs, [PRE, PRE, "other", RND], errors)
    with pytest.raises(ValueError, match="at least 2 points per net"):
        measure_trajectories(probs[:, :1], [PRE, PRE, RND, RND], errors[:, :1])
    with pytest.raises(ValueError, match="vectors must have shape"):
        measure_trajectories(np.zeros((4, 3)), [PRE, PRE, RND, RND], errors)
    with pytest.raises(ValueError, match=r"errors must have shape \(4, 3\)"):
        measure_trajectories(probs, [PRE, PRE, RND, RND], errors[:, :2])


def test_hull_areas_per_group_and_epoch():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    pts = np.stack([np.stack([square * s for s in (1, 2)], axis=1)[i] for i in range(4)] * 2)  # (8, 2, 2)
    pts[4:] *= 3  # the random group three times as wide
    areas = hull_areas(pts, [PRE] * 4 + [RND] * 4)
    assert areas == {PRE: [1.0, 4.0], RND: [9.0, 36.0]}
    with pytest.raises(ValueError, match="points must have shape"):
        hull_areas(pts[:, :, :1], [PRE] * 4 + [RND] * 4)


# ------------------------------------------------------------------------------ embeddings, figures
def two_group_trajectories(n=6, epochs=4, dim=20, seed=0):
    rng = np.random.default_rng(seed)
    start = np.concatenate([rng.normal(0, 1, (n, dim)), rng.normal(8, 1, (n, dim))])
    return (start[:, None, :] + np.cumsum(rng.normal(0, 0.3, (2 * n, epochs + 1, dim)), axis=1)).astype(np.float32)


def test_embed_trajectories_shapes_and_determinism():
    v = two_group_trajectories()
    a = embed_trajectories(v, perplexity=5.0, pca_dims=10, n_neighbors=6, seed=3)
    b = embed_trajectories(v, perplexity=5.0, pca_dims=10, n_neighbors=6, seed=3)
    assert a["tsne"].shape == (12, 5, 2) and a["isomap"].shape == (12, 5, 2)
    assert np.array_equal(a["tsne"], b["tsne"]) and np.array_equal(a["isomap"], b["isomap"])
    assert a["tsne_seconds"] > 0 and a["tsne_cpu_seconds"] > 0 and a["isomap_seconds"] > 0
    assert a["isomap_connected"] is False  # 6 neighbours never reach the other, distant group
    assert embed_trajectories(v, perplexity=5.0, pca_dims=10, n_neighbors=40)["isomap_connected"] is True
    # well-separated groups stay separated in the t-SNE picture: 1-NN in 2-D finds the own group
    m = measure_trajectories(a["tsne"], group_labels(6), np.full((12, 5), 0.5))
    assert m["knn_all"] == 1.0


def test_figures_draw_every_net(tmp_path):
    v = two_group_trajectories()
    groups = group_labels(6)
    fig, ax = plt.subplots()
    plot_embedding(ax, v[:, :, :2], groups, title="toy")
    assert len(ax.lines) == 12 and len(ax.collections) == 2
    with pytest.raises(ValueError, match="points must have shape"):
        plot_embedding(ax, v, groups, title="bad")
    plt.close(fig)
    errors = np.linspace(0.9, 0.1, 5)[None, :].repeat(12, 0)
    m = measure_trajectories(v, groups, errors)
    areas = hull_areas(v[:, :, :2], groups)
    for f in (plot_group_distances(m), plot_knn_accuracy(m), plot_distance_to_start(m), plot_probe_error(errors, groups),
              plot_spread(m, {"tsne": areas}), plot_moved_together(m)):
        f.savefig(tmp_path / "f.png")
        plt.close(f)
    # each group's median best validation epoch is marked, where its nets are reported
    f = plot_probe_error(errors, groups, best_epochs={PRE: [1, 2, 3], RND: [4, 4, 2]})
    marks = [ln for ln in f.axes[0].lines if ln.get_linestyle() == ":"]
    assert sorted(ln.get_xdata()[0] for ln in marks) == [2.0, 4.0]
    plt.close(f)


# ------------------------------------------------------------------------------ the claim, text and table
def hand_measures(*, knn_after=1.0, matched=1.0, moved=0.5, shrink=0.3, grow=0.4, difference=0.5, low=0.1,
                  high=0.9, n=MIN_NETS):
    """A measure_trajectories dict with epochs 0 to 3, every number chosen by hand; per net the differences
    behind parts b, c2 and c3 are the given mean plus 0.01 k (net k), so all share one sign when it is > 0."""
    ks = [0.01 * k for k in range(n)]
    return {
        "epochs": [0, 1, 2, 3], "epochs_from_2": [2, 3],
        "within": {PRE: [1.0, 3.0, 3.0 - shrink / 2, 3.0 - shrink], RND: [1.5, 3.0, 3.0 + grow / 2, 3.0 + grow]},
        "between": [4.0, 7.0, 7.5, 8.0], "knn_per_epoch": [0.5, 1.0, 1.0, 1.0], "knn_all": 0.9,
        "knn_after_start": knn_after,
        "knn_matched": {"accuracy": matched, "n_points": 40, "tolerance": 0.01},
        "to_start": {PRE: [0.0, 5.0, 5.5, 6.0], RND: [0.0, 6.0, 6.5, 7.0]},
        "to_start_after_epoch1": {PRE: 5.0, RND: 6.0}, "pairwise_after_epoch1": {PRE: 3.0, RND: 3.0},
        "moved_together": {g: {"to_epoch1": [2.0 + moved] * 2, "to_others": [2.0, 2.0], "difference": [moved] * 2,
                               "ci95": [[moved - 0.1, moved + 0.1]] * 2} for g in (PRE, RND)},
        "last_per_net": {g: {"to_epoch1": [2.0 + moved + k for k in ks], "to_others": [2.0 - k for k in ks]}
                         for g in (PRE, RND)},
        "spread_per_net": {PRE: {"first": [3.0 + k for k in ks], "last": [3.0 - shrink - k for k in ks]},
                           RND: {"first": [3.0 + k for k in ks], "last": [3.0 + grow + 2 * k for k in ks]}},
        "tighter_last": {"difference": difference, "low": low, "high": high, "level": 0.95}}


def record(converged=True, *, at_edge=False, n=MIN_NETS, lr=1.125):
    """A selection record (Selection.record()'s fields that the chapter reads), chosen by hand."""
    k = n if converged else n - 3
    return {"lr": lr, "grid": [0.2, 0.4743, 1.125, 2.667, 6.325], "grid_valid_error": [0.1, 0.08, 0.06, 0.07, 0.2],
            "extensions": 0, "at_edge": at_edge, "epoch_budget": 15, "best_epoch": [2] * n, "epochs_run": [3] * n,
            "train_nll": [0.05] * n, "final_train_nll": [0.04] * n, "valid_error": [0.06] * n,
            "converged": [True] * k + [False] * (n - k), "n_converged": k, "setting_converged": k == n}


def training_of(pre=None, rnd=None):
    """{group: GroupTraining} with hand-made records (converged unless given); outputs uniform, 2 probe digits."""
    recs = {PRE: pre or record(), RND: rnd or record(lr=2.667)}
    return {g: GroupTraining(r, {"train_nll": [[1.0, 0.5, 0.4]] * len(r["converged"]),
                                 "valid_error": [[0.2, 0.1, 0.1]] * len(r["converged"])},
                             [0.05 + 0.001 * i for i in range(len(r["converged"]))],
                             torch.full((len(r["converged"]), 4, 2, 5), 0.2)) for g, r in recs.items()}


def panel_of(measures, training=None, kind="dae"):
    """A Panel around hand-made measures (horizon 3, uniform outputs, a square t-SNE hull per epoch)."""
    tr = training or training_of()
    n = len(tr[PRE].test_error)
    probs = torch.cat([t.probs for t in tr.values()])
    return Panel(kind=kind, training=tr, labels=group_labels(n), horizon=3, probs=probs,
                 errors=np.full((2 * n, 4), 0.5), confidence=probe_confidence(probs), embedding={},
                 embed_meta={"tsne_seconds": 1.0, "tsne_cpu_seconds": 2.0, "isomap_seconds": 0.5,
                             "isomap_connected": True},
                 areas={"tsne": {PRE: [1.0, 4.0, 3.0, 2.0], RND: [1.0, 4.0, 5.0, 6.0]},
                        "isomap": {PRE: [1.0] * 4, RND: [1.0] * 4}},
                 measures=measures, verdicts=verdicts(measures))


def parts_of(measures, n_seeds=MIN_NETS, training=None):
    res = Result(probe=np.arange(2), panels={"dae": panel_of(measures, training)})
    parts = claims.decide(claim_parts(SimpleNamespace(params={"n_seeds": n_seeds}), res))
    return [p.status for p in parts], claims.verdict(parts), parts


KEYS = ["a-dae", "b-dae", "c1-dae", "c2-dae", "c3-dae"]


def test_claim_parts_all_hold():
    statuses, verdict, parts = parts_of(hand_measures())
    assert [p.key for p in parts] == KEYS
    assert statuses == [claims.HOLDS] * 5 and verdict == "supported"
    a, b, c1, c2, c3 = parts
    assert "100.0%" in a.evidence and a.test == "threshold" and a.p is None
    # the paired tests: every net's difference positive, in both groups: the smallest exact two-sided p
    assert b.test == "wilcoxon" and b.n == MIN_NETS and b.p == pytest.approx(2 / 2**MIN_NETS) and b.effect > 0.5
    assert b.ci95[0] < b.effect < b.ci95[1]
    assert c1.test.startswith("bootstrap") and c1.ci95 == (0.1, 0.9) and c1.p is None
    assert c2.p == pytest.approx(2 / 2**MIN_NETS) and c2.effect == pytest.approx(0.3 + 2 * 0.045)
    assert c3.effect == pytest.approx(0.4 + 0.045)
    # Holm over the three tested p-values (equal): each times 3
    assert [p.p_holm for p in (b, c2, c3)] == [pytest.approx(3 * 2 / 2**MIN_NETS)] * 3
    assert [set(p.claim_part()) for p in parts] == [{"part", "statement", "test", "effect", "ci95", "p", "p_holm",
                                                      "n", "holds"}] * 5


def test_separation_must_hold_between_error_matched_points_too():
    statuses, _, parts = parts_of(hand_measures(matched=0.93))
    assert statuses[0] == claims.FAILS and "93.0%" in parts[0].evidence
    statuses, _, parts = parts_of(hand_measures(matched=None))
    assert statuses[0] == claims.NOT_TESTED and "no point has both groups at its error" in parts[0].evidence
    statuses, _, _ = parts_of(hand_measures(knn_after=0.99))
    assert statuses[0] == claims.FAILS


def test_spread_and_moving_together_fail_the_wrong_way():
    statuses, verdict, parts = parts_of(hand_measures(moved=-0.5, shrink=-0.3, grow=-0.4, difference=-0.2, low=-0.4,
                                                      high=-0.1))
    assert statuses == [claims.HOLDS] + [claims.FAILS] * 4 and verdict == "partly supported"
    assert parts[1].direction is False and parts[3].direction is False


def test_claim_parts_with_few_nets_are_not_tested():
    statuses, verdict, parts = parts_of(hand_measures(), n_seeds=MIN_NETS - 1)
    assert statuses == [claims.NOT_TESTED] * 5 and verdict == "inconclusive"
    assert all(f"fewer than {MIN_NETS}" in p.evidence for p in parts)


def test_a_group_that_did_not_converge_leaves_every_part_not_tested():
    fair_statuses, _, fair = parts_of(hand_measures())
    statuses, verdict, parts = parts_of(hand_measures(), training=training_of(rnd=record(False)))
    assert fair_statuses == [claims.HOLDS] * 5
    assert statuses == [claims.NOT_TESTED] * 5 and verdict == "inconclusive"
    why = fairness.why_not(record(False))  # the library's words, e.g. "7 of 10 seeds converged"
    assert "7 of 10" in why
    assert all(p.evidence.startswith(f"not tested at this scale: the random init nets ({why})") and p.p is None
               for p in parts)
    assert [p.evidence.split("the numbers were: ")[1] for p in parts] == [p.evidence for p in fair]
    # a rate on the edge of the rates tried is not converged either, and both groups are named
    _, _, parts = parts_of(hand_measures(), training=training_of(pre=record(at_edge=True, lr=0.2),
                                                                   rnd=record(False)))
    edge = fairness.why_not(record(at_edge=True, lr=0.2))
    assert "0.2" in edge and f"the DAE pre-trained nets ({edge}); the random init nets ({why})" in parts[0].evidence
    # few nets: the parts stay "not tested" for that reason, the gate does not rewrite them
    few = gate_unconverged(parts_of(hand_measures(), n_seeds=MIN_NETS - 1)[2],
                           {"DAE pre-trained": record(), RND: record(False)})
    assert all(f"fewer than {MIN_NETS}" in p.evidence and "converge" not in p.evidence for p in few)


def test_results_record_holds_each_panels_selection_and_measures():
    tr = training_of(rnd=record(False, lr=2.667))
    res = Result(probe=np.arange(2), panels={"dae": panel_of(hand_measures(), tr),
                                             "rbm": panel_of(hand_measures(), tr, kind="rbm")})
    out = results_record({"n_seeds": MIN_NETS, "n_test_cases": 2, "finetune_epochs": 3, "hidden_sizes": [8, 6]}, res)
    assert list(out["panels"]) == ["dae", "rbm"] and out["panels"]["rbm"]["pretrained"] == "RBM pre-trained"
    dae = out["panels"]["dae"]
    assert dae["selection"] == {"pretrained": tr[PRE].selection, "random": tr[RND].selection}
    assert dae["converged"] == {"pretrained": True, "random": False}
    assert dae["finetune_lr"] == {"pretrained": 1.125, "random": 2.667}
    assert dae["test_error_at_best_epoch_median"]["pretrained"] == pytest.approx(0.0545)
    assert dae["horizon"] == 3 and dae["hull_area"]["tsne"]["random"] == [1.0, 4.0, 5.0, 6.0]
    assert dae["knn_group_accuracy_error_matched"]["accuracy"] == 1.0 and dae["tsne_seconds"] == 1.0
    import json
    json.dumps(out)  # JSON-able
    table = panel_table(res)
    assert list(table.columns) == ["DAE pre-trained", "RBM pre-trained"]
    assert table.loc["pre-trained spread, epoch 1 to E", "DAE pre-trained"] == "3.00 to 2.70"


def test_conclusion_texts_follow_the_numbers():
    conf0 = {PRE: 0.159, RND: 0.145}
    t = conclusion_texts(hand_measures(), conf0, horizon=3)
    assert t["separated"].startswith("form two groups with no overlap from the first epoch on")
    assert "between points of equal probe error the rule is right for 100.0%" in t["separated"]
    assert "15.9% and 14.5%" in t["separated"] and "over epochs 1 to 3" in t["separated"]
    assert t["closer"].endswith("(part (b) below tests it net by net, in both groups).")
    assert "pre-trained nets are 2.50 from their epoch-1 selves and 2.00 from one another (closer to one another)" \
        in t["closer"]
    assert "pre-trained nets are more similar to one another" in t["tighter"]
    assert t["tighter"].endswith("the pre-trained spread shrinks from 3.00 to 2.70, the random spread grows from "
                                 "3.00 to 3.40.")
    t = conclusion_texts(hand_measures(moved=-0.5, difference=0.2, low=-0.1), conf0, horizon=3)
    assert "(closer to their epoch-1 selves)" in t["closer"]
    assert "slightly closer to one another, but the bootstrap interval includes no difference" in t["tighter"]
    t = conclusion_texts(hand_measures(knn_after=0.75, matched=None, difference=-0.3, low=-0.5), conf0,
                         horizon=3)
    assert t["separated"] == ("overlap: from the first epoch on, the nearest-neighbour rule puts 25.0% of the points "
                              "into the wrong group; no point has both groups at its error, so they cannot be "
                              "compared at equal error.")
    assert "pre-trained nets are not more similar to one another" in t["tighter"]


def test_comparison_table_puts_the_run_beside_the_paper():
    table = comparison_table(hand_measures(matched=0.9), n_seeds=30, sizes=[784, 400, 400, 10],
                             n_test_cases=500, horizon=3)
    assert list(table.index) == ["nets", "function vector", "two groups", "spread of the pre-trained nets"]
    paper, run = table.iloc[:, 0], table["this run"]
    n = ERHAN2010_FUNCTION_SPACE.numbers["nets_per_group"]
    assert paper["nets"] == f"{n} + {n}, 2 hidden layers" and paper["function vector"] == ERHAN2010_FUNCTION_SPACE.data
    assert paper["two groups"] == "the groups never meet"
    assert paper["spread of the pre-trained nets"] == "pre-trained networks occupy a smaller region"
    assert run["nets"] == "30 + 30, 2 hidden layers (784-400-400-10), DAE pre-training"
    assert run["function vector"] == "outputs on 500 test digits, epochs 0 to 3 (every net)"
    assert run["two groups"] == ("nearest-neighbour accuracy from epoch 1 on 100.0% (no overlap: yes); between "
                                 "error-matched points 90.0%")
    assert run["spread of the pre-trained nets"].endswith("pre-trained 3.00 to 2.70, random 3.00 to 3.40")


def test_embedding_figure_has_one_axes_and_two_colour_bars():
    v = two_group_trajectories()
    fig = plot_embedding_figure(v[:, :, :2], group_labels(6), title="toy")
    assert len(fig.axes) == 3 and fig.axes[0].get_title() == "toy"
    plt.close(fig)


@pytest.mark.parametrize("epochs", [2, 15, 50])  # the smoke, quick and paper profiles' fine-tuning epochs
def test_every_figure_fits_the_page_with_readable_text(epochs):
    """As saved for the page (tight bounding box): at most figures.PAGE_WIDTH wide, no text below 10 pt."""
    import io

    from matplotlib.text import Text
    from pretraining.analysis.figures import PAGE_WIDTH, SMALLEST_FONT_PT

    v = two_group_trajectories(n=6, epochs=epochs, dim=10)
    groups = group_labels(6)
    errors = np.linspace(0.9, 0.02, epochs + 1)[None, :].repeat(12, 0)
    m = measure_trajectories(v, groups, errors)
    figs = {"embedding": plot_embedding_figure(v[:, :, :2], groups, title="t-SNE of 1,000 function vectors (60 nets, "
                                                                           "16 points each)"),
            "distances": plot_group_distances(m), "knn": plot_knn_accuracy(m), "start": plot_distance_to_start(m),
            "probe": plot_probe_error(errors, groups, best_epochs={PRE: [epochs] * 6, RND: [1] * 6}),
            "spread": plot_spread(m, {"tsne": hull_areas(v[:, :, :2], groups)}), "moved": plot_moved_together(m)}
    for name, fig in figs.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        bbox = fig.get_tightbbox(fig.canvas.get_renderer())
        assert bbox.width <= PAGE_WIDTH + 0.05, f"{name}: {bbox.width:.2f} in wide"
        small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
                 if t.get_visible() and t.get_text().strip() and t.get_fontsize() < SMALLEST_FONT_PT]
        assert not small, f"{name}: text below {SMALLEST_FONT_PT} pt: {small}"
        plt.close(fig)


def test_counts_have_their_plural_and_the_table_is_styled_for_the_page():
    from pretraining.chapters.ch04_function_space import _comparison_styler
    table = comparison_table(hand_measures(), n_seeds=30, sizes=[784, 400, 400, 10], n_test_cases=500, horizon=3)
    html = _comparison_styler(table).to_html()
    assert "This run" in html and "Spread of the pre-trained nets" in html and "text-align: left" in html


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_work_lists_every_training_of_the_run(profile, work_plan):
    from pretraining.chapters import ch04_function_space as ch4

    p, got, (n_train, n_valid, _) = work_plan(ch4, profile)
    n, sel, h = p["n_seeds"], p["finetune_select_seeds"], p["hidden_sizes"]
    B, E = p["finetune_batch_size"], p["finetune_epochs"]
    kinds = ["dae", "rbm"] if profile == "paper" else ["dae"]  # the paper profile turns the RBM panel on
    want = [(kind, s, n, n_train, p[f"{kind}_epochs"], p["pretrain_batch_size"], 0)
            for kind in kinds for s in zip([784, *h], h)]
    members = len(p["finetune_lr_grid"]) * sel + n - sel
    # each pre-trained group and the random one; the trajectories are recorded during these runs
    want += [("finetune", (784, *h, 10), members, n_train, E, B, n_valid)] * (len(kinds) + 1)
    assert sorted(got) == sorted(want)
