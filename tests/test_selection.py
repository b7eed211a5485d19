"""Per-member rates, early stopping and the fair-fight selection routine (core.selection)."""

from __future__ import annotations

import math

import pytest
import torch

from pretraining.core.data import Subset
from pretraining.core.models import Classifier
from pretraining.core.selection import (SelectionConfig, early_stopped, flattened, log_grid, select_and_train)
from pretraining.core.train import FinetuneConfig, TrainingDiverged, finetune

SIZES = [12, 8, 3]
GRID = log_grid(0.05, 5.0, 5)


def toy(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, SIZES[0], generator=g)
    y = x[:, :3].argmax(1)
    x[torch.arange(n), y] += 0.5  # a margin: the task is learnable well off the plateau
    return Subset(x, y.long())


TRAIN, VALID = toy(300, 0), toy(200, 1)


def make(seeds):
    return Classifier.random(SIZES, seeds)


def assert_same(a: Classifier, b: Classifier):
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_per_member_rates_and_decays_equal_each_seed_trained_alone_with_its_own(momentum):
    seeds, rates, decays = [3, 4, 3, 4], (0.1, 0.1, 1.0, 1.0), (0.0, 1e-3, 1e-2, 0.0)
    batched = make(seeds)
    finetune(batched, TRAIN.x, TRAIN.y, FinetuneConfig(epochs=3, lr=rates, weight_decay=decays, batch_size=20,
                                                       momentum=momentum), seeds, progress=False)
    for m, (s, r, d) in enumerate(zip(seeds, rates, decays)):
        alone = make([s])
        finetune(alone, TRAIN.x, TRAIN.y, FinetuneConfig(epochs=3, lr=r, weight_decay=d, batch_size=20,
                                                         momentum=momentum), [s], progress=False)
        assert_same(batched.member(m), alone)
    assert not torch.allclose(batched.weights[0][0], batched.weights[0][2])  # the rates made a difference


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_members_frozen_by_on_epoch_equal_their_seeds_trained_alone_for_that_many_epochs(momentum):
    """on_epoch's freeze mask drops members from the batch; the rest go on exactly as if alone."""
    seeds, rates, freeze_after = [3, 4, 5, 6], (0.1, 0.5, 1.0, 0.3), [1, 4, 2, 4]
    g = torch.Generator().manual_seed(9)
    x = torch.rand(4, 100, SIZES[0], generator=g)  # each member its own examples
    y = torch.randint(0, 3, (4, 100), generator=g)
    batched, seen = make(seeds), []

    def on_epoch(epoch, net, nll):
        seen.append((epoch, net.n_members, torch.isnan(nll).tolist()))
        return torch.tensor([epoch >= f for f in freeze_after])

    config = FinetuneConfig(epochs=10, lr=rates, batch_size=20, momentum=momentum, weight_decay=1e-3)
    history = finetune(batched, x, y, config, seeds, on_epoch=on_epoch, progress=False)
    assert [e for e, _, _ in seen] == [1, 2, 3, 4]  # stopped when every member was frozen
    assert all(n == 4 for _, n, _ in seen)  # on_epoch always sees the whole classifier
    assert seen[1][2] == [True, False, False, False] and seen[2][2] == [True, False, True, False]
    assert math.isnan(history["train_nll"][2][2]) and not math.isnan(history["train_nll"][2][1])
    for m, (s, r, f) in enumerate(zip(seeds, rates, freeze_after)):
        alone = make([s])
        finetune(alone, x[m], y[m], FinetuneConfig(epochs=f, lr=r, batch_size=20, momentum=momentum,
                                                   weight_decay=1e-3), [s], progress=False)
        assert_same(batched.member(m), alone)
    with pytest.raises(ValueError, match=r"on_epoch returned a tensor of shape \(3,\)"):
        finetune(make(seeds), x, y, config, seeds, on_epoch=lambda *_: torch.zeros(3, dtype=torch.bool),
                 progress=False)


def test_per_member_values_are_checked():
    with pytest.raises(ValueError, match=r"FinetuneConfig.lr entry=-0.1 is not allowed"):
        FinetuneConfig(epochs=1, lr=(0.1, -0.1))
    with pytest.raises(ValueError, match="FinetuneConfig.lr has 3 values but the classifier has 2 members"):
        finetune(make([0, 1]), TRAIN.x, TRAIN.y, FinetuneConfig(epochs=1, lr=(0.1, 0.2, 0.3)), [0, 1], progress=False)
    with pytest.raises(ValueError, match="divergence='ignore' is not allowed"):
        finetune(make([0]), TRAIN.x, TRAIN.y, FinetuneConfig(epochs=1, lr=0.1), [0], divergence="ignore",
                 progress=False)


def test_early_stopping_reports_each_member_at_its_best_epoch_as_if_trained_alone():
    seeds, rates = [1, 2, 1], (0.3, 0.3, 3.0)
    clf = make(seeds)
    run = early_stopped(clf, TRAIN, VALID, FinetuneConfig(epochs=12, lr=rates, batch_size=20), seeds, patience=2)
    for m, (s, r) in enumerate(zip(seeds, rates)):
        assert 1 <= run.best_epoch[m] <= run.epochs_run[m] <= 12
        assert len(run.valid_error_curve[m]) == run.epochs_run[m]
        assert run.valid_error[m] == min(run.valid_error_curve[m])
        assert run.valid_error_curve[m][run.best_epoch[m] - 1] == run.valid_error[m]
        stopped = run.epochs_run[m] < 12
        assert not stopped or run.epochs_run[m] - run.best_epoch[m] >= 2  # more only while on the plateau
        # the same seed trained alone for exactly its best number of epochs
        alone = make([s])
        finetune(alone, TRAIN.x, TRAIN.y, FinetuneConfig(epochs=run.best_epoch[m], lr=r, batch_size=20), [s],
                 progress=False)
        assert_same(clf.member(m), alone)
        single = early_stopped(make([s]), TRAIN, VALID, FinetuneConfig(epochs=12, lr=r, batch_size=20), [s],
                               patience=2)
        assert (single.best_epoch[0], single.epochs_run[0]) == (run.best_epoch[m], run.epochs_run[m])


def test_with_a_tolerance_a_member_stops_as_soon_as_its_curve_has_flattened():
    seeds, config = [1, 2, 3], FinetuneConfig(epochs=15, lr=(0.3, 1.0, 3.0), batch_size=20)
    full = early_stopped(make(seeds), TRAIN, VALID, config, seeds, patience=100)  # never stops: whole curves
    loose = early_stopped(make(seeds), TRAIN, VALID, config, seeds, patience=2, tolerance=0.02)
    for m in range(3):
        curve, nll = full.valid_error_curve[m], full.train_nll_curve[m]
        # the first epoch with a flat curve once off the plateau, or the whole budget
        stop = next((e for e in range(1, 16) if flattened(curve[:e], 2, 0.02) and nll[e - 1] < 0.5 * math.log(3)), 15)
        assert loose.epochs_run[m] == stop and loose.valid_error_curve[m] == curve[:stop]
    strict = early_stopped(make(seeds), TRAIN, VALID, config, seeds, patience=2)
    assert all(a <= b for a, b in zip(loose.epochs_run, strict.epochs_run))  # a tolerance never runs longer
    with pytest.raises(ValueError, match="tolerance=1.5 is not allowed"):
        early_stopped(make([1]), TRAIN, VALID, FinetuneConfig(epochs=1, lr=0.3), [1], patience=2, tolerance=1.5)


def test_a_diverging_member_is_flagged_and_leaves_the_others_alone():
    seeds, rates = [0, 0], (0.3, 1e38)
    clf = make(seeds)
    run = early_stopped(clf, TRAIN, VALID, FinetuneConfig(epochs=3, lr=rates, batch_size=20), seeds, patience=2)
    assert run.diverged == [False, True]
    # it keeps the weights of its best epoch before the divergence (its initial ones if there was none)
    assert all(bool(torch.isfinite(p).all()) for p in clf.member(1).parameters())
    assert run.valid_error[1] == math.inf or run.best_epoch[1] < run.epochs_run[1]
    alone = early_stopped(make([0]), TRAIN, VALID, FinetuneConfig(epochs=3, lr=0.3, batch_size=20), [0], patience=2)
    assert alone.valid_error[0] == run.valid_error[0]


def test_selection_extends_the_grid_beyond_an_edge_and_records_everything():
    low = log_grid(0.001, 0.03, 5)  # far too small for this toy: the best rate is the top edge
    sel = select_and_train(make, TRAIN, VALID, FinetuneConfig(epochs=4, lr=1.0, batch_size=20),
                           SelectionConfig(low, patience=2, max_extensions=2, select_seeds=2), [5, 6, 7])
    assert sel.extensions == 2 and len(sel.grid) == 7 and sel.grid[:5] == list(low)
    ratio = (0.03 / 0.001) ** 0.25
    assert sel.grid[5] == pytest.approx(0.03 * ratio, rel=1e-3) and sel.grid[6] == pytest.approx(0.03 * ratio ** 2, rel=1e-3)
    assert sel.lr == sel.grid[-1] and sel.at_edge  # still rising at the limit: said, not hidden
    rec = sel.record()
    for key in ("lr", "grid", "grid_valid_error", "best_epoch", "epochs_run", "train_nll", "converged", "at_edge"):
        assert key in rec
    assert len(rec["best_epoch"]) == 3 and sel.clf.n_members == 3


def test_selection_finds_an_interior_rate_and_every_seed_equals_its_own_run():
    seeds = [5, 6, 7]
    cfg = FinetuneConfig(epochs=30, lr=1.0, batch_size=20)
    selection = SelectionConfig(GRID, patience=3, select_seeds=2)
    sel = select_and_train(make, TRAIN, VALID, cfg, selection, seeds)
    assert not sel.at_edge and sel.grid[0] < sel.lr < sel.grid[-1]
    errors = [e for e in sel.grid_error if e is not None]
    assert sel.grid_error[sel.grid.index(sel.lr)] == min(errors)
    for m, s in enumerate(seeds):  # selection seeds reused, the rest trained after: all equal a lone run
        alone = make([s])
        run = early_stopped(alone, TRAIN, VALID, FinetuneConfig(epochs=30, lr=sel.lr, batch_size=20), [s], patience=3)
        assert run.best_epoch[0] == sel.best_epoch[m]
        assert_same(sel.clf.member(m), alone)
    assert all(sel.converged), sel.record()


def test_convergence_needs_training_off_the_plateau_and_a_flat_validation_curve():
    one_epoch = select_and_train(make, TRAIN, VALID, FinetuneConfig(epochs=1, lr=1.0, batch_size=20),
                                 SelectionConfig(GRID, patience=2, max_extensions=0, select_seeds=2), [0, 1])
    assert one_epoch.converged == [False, False]  # no epochs after the best: nothing shows it flattened
    assert flattened([0.5, 0.3, 0.2, 0.2, 0.2], 2, 0.0)
    assert not flattened([0.5, 0.3, 0.2, 0.15, 0.1], 2, 0.002)
    assert flattened([0.5, 0.3, 0.2, 0.199, 0.1985], 2, 0.002)
    assert not flattened([0.5, 0.4], 2, 0.0)


def test_selection_refuses_bad_configurations_in_one_line():
    with pytest.raises(ValueError, match="give at least 5 rates"):
        SelectionConfig((0.1, 0.2, 0.4, 0.8))
    with pytest.raises(ValueError, match="spanning at least 30x"):
        SelectionConfig(log_grid(0.1, 2.0, 5))
    with pytest.raises(ValueError, match="log-spaced"):
        SelectionConfig((0.01, 0.02, 0.04, 0.5, 1.0))
    with pytest.raises(ValueError, match="increasing"):
        SelectionConfig(tuple(reversed(GRID)))
    with pytest.raises(ValueError, match="patience=0 is not allowed"):
        SelectionConfig(GRID, patience=0)
    with pytest.raises(ValueError, match="select_seeds=3 is not allowed"):
        select_and_train(make, TRAIN, VALID, FinetuneConfig(epochs=1, lr=1.0), SelectionConfig(GRID, select_seeds=3),
                         [0, 1])

    def broken(seeds):
        clf = make(seeds)
        clf.weights[0].fill_(math.nan)
        return clf

    with pytest.raises(TrainingDiverged, match="diverged at every learning rate"):
        select_and_train(broken, TRAIN, VALID, FinetuneConfig(epochs=2, lr=1.0, batch_size=20),
                         SelectionConfig(GRID, max_extensions=0, select_seeds=1), [0])


def test_log_grid():
    assert log_grid(0.01, 1.0, 5) == (0.01, 0.03162, 0.1, 0.3162, 1.0)
    with pytest.raises(ValueError, match="high=0.1 is not allowed"):
        log_grid(1.0, 0.1, 5)


def test_a_member_still_on_the_plateau_is_not_stopped_for_not_improving():
    seeds, rates = [0, 0], (1e-4, 1.0)  # the first cannot leave the plateau (NLL ~ ln 3) in 8 epochs
    run = early_stopped(make(seeds), TRAIN, VALID, FinetuneConfig(epochs=8, lr=rates, batch_size=20), seeds,
                        patience=1)
    assert run.train_nll[0] > 0.5 * math.log(3) and run.epochs_run[0] == 8
    assert run.train_nll[1] < 0.5 * math.log(3)


def test_each_member_can_train_on_its_own_examples():
    def data(seeds):  # seed s trains on rows s*50 .. s*50+149 of TRAIN
        idx = torch.stack([torch.arange(s * 50, s * 50 + 150) for s in seeds])
        return TRAIN.x[idx], TRAIN.y[idx]

    cfg = FinetuneConfig(epochs=6, lr=1.0, batch_size=25)
    sel = select_and_train(make, data, VALID, cfg, SelectionConfig(GRID, patience=2, select_seeds=1), [0, 1])
    for m, s in enumerate([0, 1]):
        x, y = data([s])
        alone = make([s])
        run = early_stopped(alone, Subset(x[0], y[0]), VALID, FinetuneConfig(epochs=6, lr=sel.lr, batch_size=25), [s],
                            patience=2)
        assert run.best_epoch[0] == sel.best_epoch[m]
        assert_same(sel.clf.member(m), alone)


def test_a_longer_run_says_how_many_epochs_a_seed_that_did_not_converge_needs():
    cfg = FinetuneConfig(epochs=1, lr=1.0, batch_size=20)  # one epoch: nothing can show it flattened
    sel = select_and_train(make, TRAIN, VALID, cfg, SelectionConfig(GRID, patience=2, max_extensions=0,
                                                                    select_seeds=1), [0, 1], longer=10)
    assert sel.converged == [False, False] and sel.longer_run["seed"] == 0 and sel.longer_run["epochs"] == 10
    alone = early_stopped(make([0]), TRAIN, VALID, FinetuneConfig(epochs=10, lr=sel.lr, batch_size=20), [0],
                          patience=2)
    assert sel.longer_run["epochs_run"] == alone.epochs_run[0] and sel.longer_run["best_epoch"] == alone.best_epoch[0]
    assert sel.record()["longer_run"] == sel.longer_run
    assert select_and_train(make, TRAIN, VALID, cfg, SelectionConfig(GRID, max_extensions=0, select_seeds=1),
                            [0]).longer_run is None  # not asked for
