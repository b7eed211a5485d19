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
    plot_probe_error,
    probe_confidence,
    probe_errors,
    probe_indices,
    record_trajectories,
    results_record,
    train_group,
    train_groups,
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
    assert {k: d[k] for k in ("n_seeds", "hidden_sizes", "rbm_epochs", "rbm_lr", "pretrain_batch_size",
                              "finetune_batch_size", "n_test_cases",
                              "perplexity", "pca_dims", "isomap_neighbors", "knn_k", "embed_jobs")} == {
        "n_seeds": 15, "hidden_sizes": [100, 100], "rbm_epochs": 5, "rbm_lr": 0.1, "pretrain_batch_size": 100,
        "finetune_batch_size": 50, "n_test_cases": 1000,
        "perplexity": 30.0, "pca_dims": 50, "isomap_neighbors": 10, "knn_k": 1, "embed_jobs": 2}
    assert "finetune_lr" not in d  # the rate is chosen on the validation set, per group
    grid = d["finetune_lr_grid"]
    assert len(grid) >= 5 and grid[-1] / grid[0] >= 30 and grid[0] < 1.0 < grid[-1]  # around the old 1.0
    assert d["finetune_select_seeds"] <= d["n_seeds"] and d["finetune_patience"] < d["finetune_epochs"]
    assert SPEC.problems(d) == []
    assert n_points(d) == 2 * 15 * (d["finetune_epochs"] + 1)


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
def test_record_trajectories_records_start_and_every_epoch(toy):
    x, y, probe, _ = toy
    clf = Classifier.random([16, 5, 3], [0, 1])
    before = clf.predict_proba(probe)
    probs, history = record_trajectories(clf, x, y, probe, CONFIG, [0, 1], progress=False)
    assert probs.shape == (2, 3, 12, 3) and probs.dtype == torch.float32
    torch.testing.assert_close(probs[:, 0], before, rtol=0, atol=0)
    torch.testing.assert_close(probs[:, -1], clf.predict_proba(probe), rtol=0, atol=0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 12))
    assert not torch.equal(probs[:, 0], probs[:, 1])  # training moved the outputs
    assert len(history["train_nll"]) == 2


def test_record_trajectories_is_deterministic(toy):
    x, y, probe, _ = toy
    a, _ = record_trajectories(Classifier.random([16, 5, 3], [4]), x, y, probe, CONFIG, [4], progress=False)
    b, _ = record_trajectories(Classifier.random([16, 5, 3], [4]), x, y, probe, CONFIG, [4], progress=False)
    assert torch.equal(a, b)


def test_record_trajectories_rejects_bad_probe(toy):
    x, y, _, _ = toy
    clf = Classifier.random([16, 5, 3], [0])
    with pytest.raises(ValueError, match=r"probe_x must be a tensor of shape \(T, 16\)"):
        record_trajectories(clf, x, y, torch.zeros(4, 15), CONFIG, [0], progress=False)
    with pytest.raises(TypeError, match="config must be a FinetuneConfig"):
        record_trajectories(clf, x, y, torch.zeros(4, 16), {"epochs": 1}, [0], progress=False)


def test_train_groups_batched_equals_each_group_alone(toy):
    x, y, probe, stack = toy
    pre_seeds, rnd_seeds = [0, 1, 2], [3, 4, 5]
    w_before = stack.layers[0].W.clone()
    probs, history = train_groups(stack, x, y, probe, CONFIG, pre_seeds, rnd_seeds, n_classes=3, progress=False)
    assert probs.shape == (6, 3, 12, 3) and len(history["train_nll"][0]) == 6
    assert torch.equal(stack.layers[0].W, w_before)  # the cached stack is not modified
    alone_pre, _ = record_trajectories(Classifier.from_stack(stack, 3, pre_seeds), x, y, probe, CONFIG, pre_seeds,
                                       progress=False)
    alone_rnd, _ = record_trajectories(Classifier.random([16, 8, 6, 3], rnd_seeds), x, y, probe, CONFIG, rnd_seeds,
                                       progress=False)
    torch.testing.assert_close(probs[:3], alone_pre, rtol=0, atol=1e-6)
    torch.testing.assert_close(probs[3:], alone_rnd, rtol=0, atol=1e-6)


def test_train_groups_gives_each_group_its_own_rate(toy):
    x, y, probe, stack = toy
    pre_seeds, rnd_seeds = [0, 1, 2], [3, 4, 5]
    config = FinetuneConfig(epochs=2, lr=(0.2,) * 3 + (1.5,) * 3, batch_size=10)
    probs, _ = train_groups(stack, x, y, probe, config, pre_seeds, rnd_seeds, n_classes=3, progress=False)
    for rows, clf, seeds, lr in ((slice(0, 3), Classifier.from_stack(stack, 3, pre_seeds), pre_seeds, 0.2),
                                 (slice(3, 6), Classifier.random([16, 8, 6, 3], rnd_seeds), rnd_seeds, 1.5)):
        alone, _ = record_trajectories(clf, x, y, probe, FinetuneConfig(epochs=2, lr=lr, batch_size=10), seeds,
                                       progress=False)
        torch.testing.assert_close(probs[rows], alone, rtol=0, atol=1e-6)
    same, _ = train_groups(stack, x, y, probe, CONFIG, pre_seeds, rnd_seeds, n_classes=3, progress=False)
    assert not torch.allclose(same, probs)  # the rates made a difference


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


def test_train_groups_rejects_shared_or_missing_seeds(toy):
    x, y, probe, stack = toy
    with pytest.raises(ValueError, match=r"share \[2\]"):
        train_groups(stack, x, y, probe, CONFIG, [0, 1, 2], [2, 3, 4], n_classes=3, progress=False)
    with pytest.raises(ValueError, match="random_seeds has length 2"):
        train_groups(stack, x, y, probe, CONFIG, [0, 1, 2], [3, 4], n_classes=3, progress=False)


# ------------------------------------------------------------------------------ the fair fight
SELECT = SelectionConfig(lr_grid=(0.1, 0.2371, 0.5623, 1.334, 3.162), patience=1, max_extensions=1, select_seeds=1)


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
    first = train_group(ch, PRE, {"stack": "toy"}, make[PRE], config, SELECT, [0, 1, 2])
    again = train_group(ch, PRE, {"stack": "toy"}, make[PRE], config, SELECT, [0, 1, 2])
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
    # the random group is another artifact; another budget too
    train_group(ch, RND, {"sizes": [16, 8, 6, 3]}, make[RND], config, SELECT, [3, 4, 5])
    train_group(ch, PRE, {"stack": "toy"}, make[PRE], FinetuneConfig(epochs=2, lr=0.5, batch_size=10), SELECT,
                [0, 1, 2])
    assert ch.store.misses == 3
    with pytest.raises(ValueError, match="group='other' is not allowed"):
        train_group(ch, "other", {}, make[PRE], config, SELECT, [0])


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
    """4 nets (2 per group), 2 points each, on a line (D = 1): exact distances by hand.

    pre-trained: net 0 goes 0 -> 1, net 1 goes 0 -> 3; random: net 2 goes 10 -> 10, net 3 goes 12 -> 14.
    """
    v = np.array([[[0.0], [1.0]], [[0.0], [3.0]], [[10.0], [10.0]], [[12.0], [14.0]]])
    return v, [PRE, PRE, RND, RND]


def test_measure_trajectories_exact_on_a_line():
    v, groups = line_trajectories()
    m = measure_trajectories(v, groups)
    assert m["epochs"] == [0, 1]
    assert m["within"] == {PRE: [0.0, 2.0], RND: [2.0, 4.0]}
    # between, epoch 0: |0-10|,|0-12| twice -> 11; epoch 1: 9, 13, 7, 11 -> 10
    assert m["between"] == [11.0, 10.0]
    assert m["to_start"] == {PRE: [0.0, 2.0], RND: [0.0, 1.0]}
    assert m["to_start_after_epoch1"] == {PRE: 2.0, RND: 1.0}
    assert m["pairwise_after_epoch1"] == {PRE: 2.0, RND: 4.0}
    # per net after one epoch: pre-trained nets at 1 and 3 (starts 0, 0), random at 10 and 14 (starts 10, 12)
    assert m["epoch1_per_net"] == {PRE: {"to_start": [1.0, 3.0], "to_others": [2.0, 2.0]},
                                   RND: {"to_start": [0.0, 2.0], "to_others": [4.0, 4.0]}}
    assert m["knn_per_epoch"] == [1.0, 1.0] and m["knn_all"] == 1.0 and m["knn_after_start"] == 1.0
    # last epoch: random nets 4 apart, pre-trained 2; every resample with two distinct nets agrees
    assert m["tighter_last"] == {"difference": 2.0, "low": 2.0, "high": 2.0, "level": 0.95}
    assert verdicts(m) == {"separated": True, "separated_after_start": True, "closer_to_each_other": False,
                           "pretrained_tighter": True}


def test_measure_trajectories_sees_overlap():
    v, groups = line_trajectories()
    v = v.copy()
    v[2] = [[0.5], [1.5]]  # a random net running next to pre-trained net 0
    m = measure_trajectories(v, groups)
    assert m["knn_all"] < 1.0 and m["knn_per_epoch"][0] < 1.0 and m["knn_after_start"] < 1.0
    assert verdicts(m)["separated"] is False and verdicts(m)["separated_after_start"] is False


def test_overlap_at_the_start_only_is_told_apart():
    v, groups = line_trajectories()
    v = v.copy()
    v[2, 0] = [0.5]  # random net 2 starts among the pre-trained nets, then leaves
    m = measure_trajectories(v, groups)
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
    m = measure_trajectories(probs, [PRE, PRE, RND, RND])
    ref = measure_trajectories(probs.reshape(4, 3, 10).numpy(), [PRE, PRE, RND, RND])
    assert m == ref and len(m["between"]) == 3
    with pytest.raises(ValueError, match="at least 2 nets labelled 'random init'"):
        measure_trajectories(probs, [PRE, PRE, PRE, RND])
    with pytest.raises(ValueError, match="allowed labels"):
        measure_trajectories(probs, [PRE, PRE, "other", RND])
    with pytest.raises(ValueError, match="at least 2 points per net"):
        measure_trajectories(probs[:, :1], [PRE, PRE, RND, RND])
    with pytest.raises(ValueError, match="vectors must have shape"):
        measure_trajectories(np.zeros((4, 3)), [PRE, PRE, RND, RND])


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
    m = measure_trajectories(a["tsne"], group_labels(6))
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
    m = measure_trajectories(v, groups)
    errors = np.linspace(0.9, 0.1, 5)[None, :].repeat(12, 0)
    for f in (plot_group_distances(m), plot_knn_accuracy(m), plot_distance_to_start(m), plot_probe_error(errors, groups)):
        f.savefig(tmp_path / "f.png")
        plt.close(f)
    # each group's median best validation epoch is marked, where its nets are reported
    f = plot_probe_error(errors, groups, best_epochs={PRE: [1, 2, 3], RND: [4, 4, 2]})
    marks = [ln for ln in f.axes[0].lines if ln.get_linestyle() == ":"]
    assert sorted(ln.get_xdata()[0] for ln in marks) == [2.0, 4.0]
    plt.close(f)


# ------------------------------------------------------------------------------ the claim, text and table
def hand_measures(*, knn_all=1.0, knn_after=1.0, knn0=1.0, pair=(2.0, 3.0), start=(5.0, 6.0),
                  difference=0.5, low=0.1, high=0.9):
    """A measure_trajectories dict with two epochs, every number chosen by hand."""
    return {"epochs": [0, 1], "within": {PRE: [1.0, pair[0]], RND: [1.5, pair[1]]}, "between": [4.0, 7.0],
            "knn_per_epoch": [knn0, 1.0], "knn_all": knn_all, "knn_after_start": knn_after,
            "to_start": {PRE: [0.0, start[0]], RND: [0.0, start[1]]},
            "to_start_after_epoch1": {PRE: start[0], RND: start[1]},
            "pairwise_after_epoch1": {PRE: pair[0], RND: pair[1]},
            # per net: its distance to its start and to the others, spread around the group means
            "epoch1_per_net": {g: {"to_start": [start[i] + 0.01 * k for k in range(MIN_NETS)],
                                   "to_others": [pair[i] - 0.01 * k for k in range(MIN_NETS)]}
                               for i, g in enumerate((PRE, RND))},
            "tighter_last": {"difference": difference, "low": low, "high": high, "level": 0.95}}


def record(converged=True, *, at_edge=False, n=MIN_NETS, lr=1.125):
    """A selection record (Selection.record()'s fields that the chapter reads), chosen by hand."""
    k = n if converged else n - 3
    return {"lr": lr, "grid": [0.2, 0.4743, 1.125, 2.667, 6.325], "grid_valid_error": [0.1, 0.08, 0.06, 0.07, 0.2],
            "extensions": 0, "at_edge": at_edge, "epoch_budget": 15, "best_epoch": [8] * n, "epochs_run": [11] * n,
            "train_nll": [0.05] * n, "final_train_nll": [0.04] * n, "valid_error": [0.06] * n,
            "converged": [True] * k + [False] * (n - k), "n_converged": k, "setting_converged": k == n}


def training_of(pre=None, rnd=None):
    """{group: GroupTraining} with hand-made records (converged unless given)."""
    recs = {PRE: pre or record(), RND: rnd or record(lr=2.667)}
    return {g: GroupTraining(r, {"train_nll": [[1.0, 0.5]] * len(r["converged"]),
                                 "valid_error": [[0.2, 0.1]] * len(r["converged"])},
                             [0.05 + 0.001 * i for i in range(len(r["converged"]))]) for g, r in recs.items()}


def parts_of(measures, n_seeds=MIN_NETS, training=None):
    parts = claim_parts(SimpleNamespace(params={"n_seeds": n_seeds}),
                        SimpleNamespace(measures=measures, training=training or training_of()))
    return [p.status for p in parts], claims.verdict(parts), parts


def test_claim_parts_all_hold():
    statuses, verdict, parts = parts_of(hand_measures())
    assert [p.key for p in parts] == ["a", "b", "c"]
    assert statuses == [claims.HOLDS] * 3 and verdict == "supported"
    assert "100.0%" in parts[0].evidence and parts[2].numbers["low"] == 0.1
    b = parts[1]  # the paired test: every net closer to the others than to its start, in both groups
    assert b.test == "wilcoxon" and b.n == MIN_NETS and b.p == pytest.approx(2 / 2**MIN_NETS) and b.effect > 0
    assert parts[2].test.startswith("bootstrap") and parts[2].ci95 == (0.1, 0.9) and parts[2].p is None
    assert [set(p.claim_part()) for p in parts] == [{"part", "statement", "test", "effect", "ci95", "p", "p_holm",
                                                      "n", "holds"}] * 3


def test_claim_parts_like_the_quick_run():
    """Mixed at epoch 0 only, closer after one epoch, pre-trained nets not tighter: partly supported."""
    m = hand_measures(knn_all=0.968, knn0=0.483, difference=-0.31, low=-0.59, high=-0.04)
    statuses, verdict, parts = parts_of(m)
    assert statuses == [claims.FAILS, claims.HOLDS, claims.FAILS] and verdict == "partly supported"
    assert "96.8%" in parts[0].evidence and "from epoch 1 on 100.0%" in parts[0].evidence


def test_claim_parts_separated_after_start_alone_is_no_credit():
    m = hand_measures(knn_all=0.9, pair=(7.0, 3.0), low=-0.2)
    statuses, verdict, _ = parts_of(m)
    assert statuses == [claims.FAILS] * 3 and verdict == "not supported"


def test_claim_parts_with_few_nets_are_not_tested():
    statuses, verdict, parts = parts_of(hand_measures(), n_seeds=MIN_NETS - 1)
    assert statuses == [claims.NOT_TESTED] * 3 and verdict == "inconclusive"
    assert all(f"fewer than {MIN_NETS}" in p.evidence for p in parts)


def test_a_group_that_did_not_converge_leaves_every_part_not_tested():
    fair_statuses, _, fair = parts_of(hand_measures())
    statuses, verdict, parts = parts_of(hand_measures(), training=training_of(rnd=record(False)))
    assert fair_statuses == [claims.HOLDS] * 3
    assert statuses == [claims.NOT_TESTED] * 3 and verdict == "inconclusive"
    why = fairness.why_not(record(False))  # the library's words, e.g. "7 of 10 seeds converged"
    assert "7 of 10" in why
    assert all(p.evidence.startswith(f"not tested at this scale: the random init nets ({why})") and p.p is None
               for p in parts)
    assert [p.evidence.split("the numbers were: ")[1] for p in parts] == [p.evidence for p in fair]
    # a rate on the edge of the rates tried is not converged either, and both groups are named
    _, _, parts = parts_of(hand_measures(), training=training_of(pre=record(at_edge=True, lr=0.2),
                                                                   rnd=record(False)))
    edge = fairness.why_not(record(at_edge=True, lr=0.2))
    assert "0.2" in edge and f"the pre-trained nets ({edge}); the random init nets ({why})" in parts[0].evidence
    # few nets: the parts stay "not tested" for that reason, the gate does not rewrite them
    few = gate_unconverged(parts_of(hand_measures(), n_seeds=MIN_NETS - 1)[2],
                           {PRE: record(), RND: record(False)})
    assert all(f"fewer than {MIN_NETS}" in p.evidence and "converge" not in p.evidence for p in few)


def test_results_record_holds_each_groups_selection():
    v = two_group_trajectories(n=6, epochs=2, dim=10)
    groups = group_labels(6)
    m = measure_trajectories(v, groups)
    probs = np.full((12, 3, 2, 5), 0.2)
    tr = training_of(rnd=record(False, n=6, lr=2.667), pre=record(n=6))
    res = Result(training=tr, labels=groups, probe=np.arange(2), probs=torch.from_numpy(probs), history={},
                 errors=np.full((12, 3), 0.5), confidence=probe_confidence(probs), embedding={},
                 embed_meta={"tsne_seconds": 1.0, "tsne_cpu_seconds": 2.0, "isomap_seconds": 0.5,
                             "isomap_connected": True}, measures=m, verdicts=verdicts(m))
    out = results_record({"n_seeds": 6, "n_test_cases": 2, "finetune_epochs": 2}, res)
    assert out["selection"] == {"pretrained": tr[PRE].selection, "random": tr[RND].selection}
    assert out["converged"] == {"pretrained": True, "random": False}
    assert out["finetune_lr"] == {"pretrained": 1.125, "random": 2.667}
    assert out["test_error_at_best_epoch"]["random"] == tr[RND].test_error
    assert out["test_error_at_best_epoch_median"]["pretrained"] == pytest.approx(0.0525)
    import json
    json.dumps(out)  # JSON-able


def test_conclusion_texts_follow_the_numbers():
    conf0 = {PRE: 0.159, RND: 0.145}
    t = conclusion_texts(hand_measures(), conf0, finetune_epochs=15)
    assert t["separated"].startswith("form two groups with no overlap at any epoch")
    assert t["closer"].endswith("(part (b) below tests it net by net, in both groups).")
    assert "pre-trained nets are more similar to one another" in t["tighter"]
    assert t["tighter"].endswith("smaller for the pre-trained nets at 2 of the 2 epochs.")
    t = conclusion_texts(hand_measures(knn_all=0.97, knn0=0.48, pair=(7.0, 3.0), difference=0.2, low=-0.1),
                         conf0, finetune_epochs=15)
    assert "from the first epoch on" in t["separated"] and "(accuracy 48.0% at epoch 0)" in t["separated"]
    assert "15.9% and 14.5%" in t["separated"] and "over epochs 1 to 15" in t["separated"]
    assert "pre-trained nets are not closer to each other (7.00) than to their own starts (5.00)" in t["closer"]
    assert "slightly closer to one another, but the bootstrap interval includes no difference" in t["tighter"]
    assert t["tighter"].endswith("at 1 of the 2 epochs.")  # epoch 1: pre-trained 7.00 apart, random 3.00
    t = conclusion_texts(hand_measures(knn_all=0.8, knn_after=0.75, difference=-0.3, low=-0.5), conf0,
                         finetune_epochs=15)
    assert t["separated"] == ("overlap: even from the first epoch on, the nearest-neighbour rule puts 25.0% of "
                              "the points into the wrong group.")
    assert "pre-trained nets are not more similar to one another" in t["tighter"]


def test_comparison_table_puts_the_run_beside_the_paper():
    table = comparison_table(hand_measures(knn_all=0.9), n_seeds=30, sizes=[784, 100, 100, 10],
                             n_test_cases=1000, finetune_epochs=15)
    assert list(table.index) == ["nets", "function vector", "two groups", "spread of the pre-trained nets"]
    paper, run = table.iloc[:, 0], table["this run"]
    n = ERHAN2010_FUNCTION_SPACE.numbers["nets_per_group"]
    assert paper["nets"] == f"{n} + {n}, 2 hidden layers" and paper["function vector"] == ERHAN2010_FUNCTION_SPACE.data
    assert paper["two groups"] == "the groups never meet"
    assert paper["spread of the pre-trained nets"] == "pre-trained networks occupy a smaller region"
    assert run["nets"] == "30 + 30, 2 hidden layers (784-100-100-10)"
    assert run["function vector"] == "outputs on 1,000 test digits, 15 epochs"
    assert run["two groups"] == ("nearest-neighbour accuracy 90.0% (no overlap: no); from epoch 1 on 100.0% "
                                 "(no overlap: yes)")
    assert run["spread of the pre-trained nets"].endswith("beyond the bootstrap interval: yes)")


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
    m = measure_trajectories(v, groups)
    errors = np.linspace(0.9, 0.02, epochs + 1)[None, :].repeat(12, 0)
    figs = {"embedding": plot_embedding_figure(v[:, :, :2], groups, title="t-SNE of 1,000 function vectors (60 nets, "
                                                                           "16 points each)"),
            "distances": plot_group_distances(m), "knn": plot_knn_accuracy(m), "start": plot_distance_to_start(m),
            "probe": plot_probe_error(errors, groups, best_epochs={PRE: [epochs] * 6, RND: [1] * 6})}
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
    table = comparison_table(hand_measures(), n_seeds=30, sizes=[784, 100, 100, 10], n_test_cases=1000,
                             finetune_epochs=15)
    html = _comparison_styler(table).to_html()
    assert "This run" in html and "Spread of the pre-trained nets" in html and "text-align: left" in html


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_work_lists_every_training_of_the_run(profile, work_plan):
    from pretraining.chapters import ch04_function_space as ch4

    p, got, (n_train, n_valid, _) = work_plan(ch4, profile)
    n, sel, h = p["n_seeds"], p["finetune_select_seeds"], p["hidden_sizes"]
    B, E = p["finetune_batch_size"], p["finetune_epochs"]
    want = [("rbm", s, n, n_train, p["rbm_epochs"], p["pretrain_batch_size"], 0) for s in zip([784, *h], h)]
    members = len(p["finetune_lr_grid"]) * sel + n - sel
    want += [("finetune", (784, *h, 10), members, n_train, E, B, n_valid)] * 2           # the two groups
    want += [("finetune", (784, *h, 10), 2 * n, n_train, E, B, p["n_test_cases"])]      # the trajectories
    assert sorted(got) == sorted(want)
