"""Chapter 5: pixel labels, label budgets, matched NLLs, the claim's parts, tables, sentences, rules."""

from __future__ import annotations

import json
from types import SimpleNamespace

import matplotlib
import matplotlib.text
import numpy as np

import pytest
import torch
from pretraining.analysis import stats
from pretraining.analysis.information import entropy_bits, mutual_information_bits
from pretraining.analysis.figures import PAGE_WIDTH, SMALLEST_FONT_PT
from pretraining.book import claims
from pretraining.chapters import ch05_generative_vs_discriminative as ch5
from pretraining.core.data import Subset, load_dataset
from pretraining.core.selection import SelectionConfig, log_grid, setting_converged
from pretraining.core.train import RBMConfig, pretrain_stack
from pretraining.core.world import ControlledWorld, WorldConfig

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def digits() -> Subset:
    """400 training digits, 40 per class."""
    train = load_dataset().train
    rows = torch.cat([torch.nonzero(train.y == c)[:40, 0] for c in range(10)])
    return Subset(train.x[rows], train.y[rows])


# ------------------------------------------------------------------------------ parameters
def test_spec_defaults_are_allowed_and_named_in_the_new_vocabulary() -> None:
    d = ch5.SPEC.defaults()
    assert ch5.SPEC.problems(d) == []
    assert {"rbm_epochs", "rbm_lr", "pretrain_batch_size"} <= set(d)
    # the fair fight: a rate grid and an epoch budget, no hand-picked rate or fixed update count
    assert {"finetune_lr_grid", "finetune_epochs", "finetune_patience", "finetune_select_seeds",
            "finetune_max_extensions", "finetune_epoch_examples"} <= set(d)
    assert not {"finetune_lr", "n_updates", "trajectory_points"} & set(d)


@pytest.mark.parametrize("change, problem", [
    ({"n_labels": [100, 20], "trajectory_n_labels": 100}, "n_labels=[100, 20] is not allowed: increasing"),
    ({"n_labels": [20, 20, 100], "trajectory_n_labels": 100}, "n_labels=[20, 20, 100] is not allowed: increasing"),
    ({"trajectory_n_labels": 50}, "trajectory_n_labels=50 is not allowed: one of n_labels=[20, 200, 2000]"),
    ({"pixel_offset": 9}, "pixel_offset=9 is not allowed: at most 8 with pixel_patch=6"),
    ({"n_labels": [20, 8000], "trajectory_n_labels": 20},
     "n_labels=[20, 8000] is not allowed: at most the 7000 training digits of mnist-10k"),
    ({"finetune_select_seeds": 9}, "finetune_select_seeds=9 is not allowed: at most n_seeds (8)"),
    ({"finetune_lr_grid": [0.1, 0.2, 0.4, 0.8, 1.6]}, "finetune_lr_grid=[0.1, 0.2, 0.4, 0.8, 1.6] is not allowed: "
                                                      "rates spanning at least 30x"),
])
def test_rules_refuse_bad_combinations_with_one_line(change, problem) -> None:
    problems = ch5.SPEC.problems({**ch5.SPEC.defaults(), **change})
    assert len(problems) == 1 and problems[0].startswith(problem) and "\n" not in problems[0]


def test_rules_allow_the_edges_and_the_full_data_set() -> None:
    d = ch5.SPEC.defaults()
    assert ch5.SPEC.problems({**d, "pixel_offset": 8}) == []
    assert ch5.SPEC.problems({**d, "dataset": "mnist", "n_labels": [100, 50000], "trajectory_n_labels": 50000}) == []


# ------------------------------------------------------------------------------ pixel labels
def test_pixel_score_is_mean_abs_difference_of_mirrored_patches() -> None:
    img = torch.zeros(1, 28, 28)
    img[0, 6:12, 6:12] = 1.0            # top-left patch all ink
    img[0, 16:22, 16:19] = 1.0          # bottom-right patch half ink
    s = ch5.PixelLabel.score(img.reshape(1, 784), patch=6, offset=6)
    assert s.tolist() == [0.5]


def test_pixel_label_fit_splits_training_set_in_half(digits) -> None:
    lab = ch5.PixelLabel.fit(digits.x, patch=6, offset=6)
    y = lab(digits.x)
    assert y.dtype == torch.int64 and int(y.sum()) == len(digits) // 2
    assert lab(digits.x[:5]).tolist() == y[:5].tolist()


@pytest.mark.parametrize("kw", [{"patch": 0}, {"patch": 6, "offset": 9}, {"patch": True}])
def test_pixel_label_rejects_bad_geometry(digits, kw) -> None:
    with pytest.raises(ValueError, match="patch|offset"):
        ch5.PixelLabel.fit(digits.x, **kw)


def test_pixel_label_rejects_bad_images_and_thresholds() -> None:
    with pytest.raises(ValueError, match=r"x must be a float tensor of shape \(N, 784\)"):
        ch5.PixelLabel.score(torch.zeros(3, 100), 6, 6)
    with pytest.raises(ValueError, match="threshold=-0.1 is not allowed"):
        ch5.PixelLabel(6, 6, -0.1)


def _sparse_images(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """n images blank but for 4 interior pixels (random grey levels, often ink), and classes that the
    first pixel's value partly determines."""
    g = torch.Generator().manual_seed(seed)
    pixels = [5 * 28 + 5, 5 * 28 + 20, 20 * 28 + 5, 20 * 28 + 20]
    x = torch.zeros(n, 784)
    x[:, pixels] = torch.rand(n, 4, generator=g) * (torch.rand(n, 4, generator=g) < 0.8)
    classes = (x[:, pixels[0]] * 3).long().clamp(max=2)
    return x, classes, pixels


def test_pixel_pair_fit_is_the_balanced_pair_that_knows_least_about_the_class() -> None:
    x, classes, pixels = _sparse_images()
    pair = ch5.PixelPair.fit(x, classes, distance=8, balance=0.1)
    # enumeration: every ordered pair of the inked pixels, balanced within 0.1, the smallest I(label; class)
    scores = {}
    for i in pixels:
        for j in pixels:
            label = (x[:, i] > x[:, j]).long()
            if i != j and abs(float(label.float().mean()) - 0.5) <= 0.1:
                scores[(i, j)] = mutual_information_bits(label, classes)
    assert (pair.first, pair.second) == min(scores, key=scores.get)
    assert pair(x).tolist() == (x[:, pair.first] > x[:, pair.second]).long().tolist()
    assert pair.describe().startswith(f"pixel (row {pair.first // 28}, column {pair.first % 28}) brighter than")
    with pytest.raises(ValueError, match="no pair of interior pixels 16 px apart"):
        ch5.PixelPair.fit(x, classes, distance=16, balance=0.1)         # the inked pixels are 15 px apart
    with pytest.raises(ValueError, match="second=7 is not allowed"):
        ch5.PixelPair(7, 7)


def test_pixel_parity_fit_takes_the_fairest_pixels_far_apart() -> None:
    x, _, pixels = _sparse_images()
    x[:, 5 * 28 + 6] = x[:, pixels[0]]                                 # a twin next to the first: too close
    shares = {i: float((x[:, i] > 0.5).float().mean()) for i in [*pixels, 5 * 28 + 6]}
    par = ch5.PixelParity.fit(x, k=3, distance=6)
    fairest = sorted(pixels, key=lambda i: abs(shares[i] - 0.5))[:3]
    assert par.pixels == tuple(sorted(fairest)) and 5 * 28 + 6 not in par.pixels
    assert par(x).tolist() == ((x[:, list(par.pixels)] > 0.5).sum(1) % 2).tolist()
    with pytest.raises(ValueError, match="no 5 interior pixels are 19 px apart"):
        ch5.PixelParity.fit(x, k=5, distance=19)                        # only the 4 corners are that far apart
    with pytest.raises(ValueError, match=r"pixels=\(3,\) is not allowed"):
        ch5.PixelParity((3,))


def test_chance_error_and_labelling_info() -> None:
    y_train, y_test = torch.tensor([0, 1, 1, 2, 1]), torch.tensor([1, 0, 2, 1])
    assert ch5.chance_error(y_train, y_test) == pytest.approx(0.5)   # always "1": wrong on 2 of 4
    sets = {"train": Subset(torch.zeros(5, 784), y_train), "test": Subset(torch.zeros(4, 784), y_test)}
    info = ch5.labelling_info(sets, {"train": y_train, "test": y_test})
    assert info["n_classes"] == 3 and info["chance"] == pytest.approx(0.5)
    assert info["majority_train"] == pytest.approx(0.6) and info["majority_test"] == pytest.approx(0.5)
    assert info["bits"] == pytest.approx(entropy_bits(y_train))
    assert info["mi_class_test"] == pytest.approx(mutual_information_bits(y_test, y_test))
    with pytest.raises(ValueError, match="y_train and y_test must be non-empty"):
        ch5.chance_error(y_train, y_test[:0])


def test_world_data_renders_each_split_from_its_own_causes(digits) -> None:
    world = ControlledWorld(digits, WorldConfig(n_exemplars=2, n_deformations=4), seed=0)
    sets = ch5.world_data(world, {"train": 30, "valid": 10, "test": 20}, seed=5)
    assert [len(sets[k]) for k in ("train", "valid", "test")] == [30, 10, 20]
    causes = world.sample_causes(20, seed=5 + 4)
    assert torch.equal(sets["test"].y, causes["class"]) and torch.equal(sets["test"].x, world.render(causes))
    assert not torch.equal(sets["train"].y[:20], sets["test"].y)


# ------------------------------------------------------------------------------ label budget
def test_labelled_subsets_nested_deterministic_distinct() -> None:
    a = ch5.labelled_subsets(100, 10, [0, 1])
    b = ch5.labelled_subsets(100, 30, [0, 1])
    assert a.shape == (2, 10) and torch.equal(a, b[:, :10])
    assert torch.equal(a, ch5.labelled_subsets(100, 10, [0, 1]))
    assert len(set(b[0].tolist())) == 30 and not torch.equal(a[0], a[1])
    with pytest.raises(ValueError, match="n_labels=101"):
        ch5.labelled_subsets(100, 101, [0])


def test_labelled_subsets_use_the_documented_generator() -> None:
    g = np.random.SeedSequence([7, 0x5EB5E7, 50]).generate_state(2, dtype=np.uint32)
    expected = torch.randperm(50, generator=torch.Generator().manual_seed((int(g[0]) << 31) ^ int(g[1])))[:5]
    assert ch5.labelled_subsets(50, 5, [7])[0].tolist() == expected.tolist()


def test_budget_epoch_repeats_small_budgets_to_a_minimum_of_examples() -> None:
    assert ch5.budget_epoch(7000, 1000, 50) == (50, 1)              # one plain pass of 140 minibatches
    assert ch5.budget_epoch(500, 1000, 50) == (50, 2)               # twice: 1,000 examples
    assert ch5.budget_epoch(300, 1000, 50) == (50, 4)               # 4 passes: at least 1,000
    assert ch5.budget_epoch(20, 1000, 50) == (20, 50)               # the batch is at most the budget
    with pytest.raises(ValueError, match="epoch_examples=0"):
        ch5.budget_epoch(10, 0, 20)


def test_epochs_text_says_what_an_epoch_is_per_budget() -> None:
    assert ch5.epochs_text([20, 100, 7000], 1000, 50) == ("20 labels: 50 passes, 50 updates; 100 labels: 10 passes, "
                                                         "20 updates; 7,000 labels: 1 pass, 140 updates")


def test_labelled_data_gives_each_seed_its_subset_repeated(digits) -> None:
    data = ch5.labelled_data(digits, 30, repeats=3)
    x, y = data([7, 7, 8])                                            # seeds may repeat (rates x seeds)
    idx = ch5.labelled_subsets(len(digits), 30, [7, 8])
    assert x.shape == (3, 90, 784) and y.shape == (3, 90)
    assert torch.equal(x[0], x[1]) and torch.equal(y[2], digits.y[idx[1]].repeat(3))
    shared = ch5.labelled_data(digits, len(digits), repeats=2)      # every example labelled: one shared copy
    assert isinstance(shared, Subset) and len(shared) == 2 * len(digits)
    with pytest.raises(ValueError, match="n_labels=401"):
        ch5.labelled_data(digits, 401)


@pytest.fixture(scope="module")
def tiny(digits):
    stack, _ = pretrain_stack("rbm", digits.x, [12], RBMConfig(epochs=1, lr=0.05, batch_size=20), [3, 4],
                              progress=False)
    valid, test = Subset(digits.x[1::4], digits.y[1::4]), Subset(digits.x[::4], digits.y[::4])
    return stack, valid, test


def test_budget_makers_pair_the_softmax_and_pick_each_seeds_stack(tiny) -> None:
    stack = tiny[0]
    makers = ch5.budget_makers(stack, 10, [3, 4])
    pre, rnd = makers["pretrained"]([4, 3, 4]), makers["random"]([4, 3, 4])
    assert pre.n_members == rnd.n_members == 3 and pre.sizes == rnd.sizes == [784, 12, 10]
    torch.testing.assert_close(pre.weights[0][0], stack.layers[0].W[1])   # seed 4 is the stack's member 1
    torch.testing.assert_close(pre.weights[0][2], pre.weights[0][0])
    torch.testing.assert_close(pre.weights[-1], rnd.weights[-1])          # the pair shares its softmax init
    assert not torch.equal(pre.weights[0], rnd.weights[0])
    lin = makers["linear"]([4, 3])                                        # a softmax on the raw pixels
    assert lin.sizes == [784, 10] and lin.depth == 0
    torch.testing.assert_close(lin.weights[0], ch5.Classifier.random([784, 10], [4, 3]).weights[0])
    with pytest.raises(ValueError, match=r"seeds \[5\] are not allowed"):
        makers["pretrained"]([5])


SMALL = SelectionConfig(log_grid(0.05, 1.6, 5), patience=1, max_extensions=1, select_seeds=1)
FIT = ch5.budget_config(40, 3, 40, 10, SMALL)                       # 4 minibatches of 10: a plain epoch


def test_budget_config_sets_the_epoch_budget_and_the_batch() -> None:
    config, repeats = ch5.budget_config(20, 7, 1000, 50, SMALL)
    assert (config.epochs, config.batch_size, config.lr, repeats) == (7, 20, SMALL.lr_grid[0], 50)


def test_fair_budget_records_the_selection_and_tests_the_chosen_nets(digits, tiny) -> None:
    stack, valid, test = tiny
    make = ch5.budget_makers(stack, 10, [3, 4])["pretrained"]
    t, meta = ch5.fair_budget(make, digits, valid, test, 40, [3, 4], SMALL, *FIT)
    rec = meta["selection"]
    assert t["error"].shape == t["nll"].shape == (2,)
    assert rec["lr"] in rec["grid"] and rec["epoch_budget"] == 3 and len(rec["converged"]) == 2
    assert [len(c) for c in meta["curves"]["valid_error"]] == rec["epochs_run"]
    assert all(1 <= b <= r <= 3 for b, r in zip(rec["best_epoch"], rec["epochs_run"]))
    # the test set chooses nothing: other test labels, the same selection and the same nets
    shuffled = Subset(test.x, test.y.roll(1))
    t2, meta2 = ch5.fair_budget(make, digits, valid, shuffled, 40, [3, 4], SMALL, *FIT)
    assert meta2["selection"] == rec and not torch.equal(t2["nll"], t["nll"])


def test_fair_budget_rejects_labels_outside_classes(digits, tiny) -> None:
    stack, valid, test = tiny
    with pytest.raises(ValueError, match="n_classes=2"):
        ch5.fair_budget(ch5.budget_makers(stack, 2, [3, 4])["random"], digits, valid, test, 40, [3, 4], SMALL, *FIT)


def test_trajectory_replays_the_chosen_training(digits, tiny) -> None:
    stack, valid, test = tiny
    makers = ch5.budget_makers(stack, 10, [3, 4])
    out = {init: ch5.fair_budget(makers[init], digits, valid, test, 40, [3, 4], SMALL, *FIT)
           for init in ("pretrained", "random")}
    chosen = {init: m["selection"] for init, (_, m) in out.items()}
    t, meta = ch5.trajectory(makers, digits, test, 40, [3, 4], chosen, *FIT)
    E = max(max(r["epochs_run"]) for r in chosen.values())
    assert meta == {} and t["train_nll"].shape == t["test_nll"].shape == (E, 2, 2)
    for i, init in enumerate(("pretrained", "random")):
        for s in range(2):
            best, last = chosen[init]["best_epoch"][s], chosen[init]["epochs_run"][s]
            # the replay passes through the reported net: its test NLL at the best epoch is the reported one
            torch.testing.assert_close(t["test_nll"][best - 1, i, s], out[init][0]["nll"][s], rtol=1e-4, atol=1e-5)
            assert torch.equal(t["train_nll"][last - 1:, i, s], t["train_nll"][last - 1, i, s].expand(E - last + 1))


# ------------------------------------------------------------------------------ matched NLL
def test_matched_test_nll_interpolates_at_common_level() -> None:
    train = torch.tensor([[1.0, 2.0], [0.5, 1.0], [0.2, 0.8]])
    test = torch.tensor([[1.1, 2.1], [0.9, 1.5], [1.0, 1.4]])
    level, m = ch5.matched_test_nll(train, test)
    # member 0 crosses 0.8 between (1.0, 1.1) and (0.5, 0.9): 1.1 - 0.4 * 0.2; member 1 ends at it
    assert level == pytest.approx(0.8) and m.tolist() == pytest.approx([1.02, 1.4])
    assert ch5.matched_test_nll(train, test, level=1.0)[1].tolist() == pytest.approx([1.1, 1.5])
    assert ch5.matched_test_nll(train, test, level=5.0)[1].tolist() == pytest.approx([1.1, 2.1])
    with pytest.raises(ValueError, match="level=0.5"):
        ch5.matched_test_nll(train, test, level=0.5)


def _run(train_nll: list, test_nll: list, epochs_run: list | None = None) -> ch5.BudgetRun:
    """A BudgetRun with S = 2 seeds from per-epoch [[pre0, pre1], [rnd0, rnd1]] NLLs."""
    tr, te = torch.tensor(train_nll), torch.tensor(test_nll)
    runs = torch.tensor(epochs_run) if epochs_run is not None else torch.full((2, 2), len(tr))
    return ch5.BudgetRun(train_nll=tr, test_nll=te, epochs_run=runs, best_epoch=runs)


def test_matched_summary_reads_every_net_at_the_common_level() -> None:
    # epochs x (init, seed): the random nets stop at 0.5, so the level is 0.5
    train = [[[1.0, 1.0], [1.0, 1.0]], [[0.2, 0.2], [0.5, 0.5]]]
    test = [[[2.0, 2.0], [2.0, 2.0]], [[1.2, 1.0], [1.6, 1.6]]]
    m = ch5.matched_summary({"cause": _run(train, test)})["cause"]
    assert m["level"] == pytest.approx(0.5)
    # pre-trained: 5/8 of the way from 1.0 to 0.2 -> test 2 + 0.625 * (1.2 - 2) and 2 + 0.625 * (1.0 - 2)
    assert m["pretrained"] == pytest.approx(((2 - 0.5) + (2 - 0.625)) / 2)
    assert m["random"] == pytest.approx(1.6)
    assert m["common_epoch"] == 2 and m["train_nll_at_common"] == pytest.approx({"pretrained": 0.2, "random": 0.5})
    # two paired differences, 0.1 and 0.225: mean 0.1625 -+ t(0.975, 1) * 0.0625 = 12.7062 * 0.0625
    assert m["n"] == 2 and m["difference_mean"] == pytest.approx(0.1625)
    assert m["difference_ci95"] == pytest.approx([0.1625 - 12.7062 * 0.0625, 0.1625 + 12.7062 * 0.0625], rel=1e-4)
    assert m["difference_p"] == pytest.approx(0.5)                  # 2 of 2 positive: 2 / 2**2


def test_matched_summary_compares_the_fit_after_the_fewest_epochs_any_net_ran() -> None:
    # three epochs; random seed 1 stopped after epoch 1 (its later values repeat its last)
    train = [[[1.0, 1.0], [1.5, 0.9]], [[0.5, 0.6], [1.2, 0.9]], [[0.3, 0.4], [1.0, 0.9]]]
    m = ch5.matched_summary({"pixel": _run(train, train, [[3, 3], [3, 1]])})["pixel"]
    assert m["common_epoch"] == 1
    assert m["train_nll_at_common"] == pytest.approx({"pretrained": 1.0, "random": 1.2})


# ------------------------------------------------------------------------------ the claim
KEYS = {"part", "statement", "test", "effect", "ci95", "p", "p_holm", "n", "holds"}
H, F, N = claims.HOLDS, claims.FAILS, claims.NOT_TESTED
SEEDS = 8
GAIN = np.array([[0.05, 0.06, 0.04, 0.05, 0.07, 0.05, 0.06, 0.04],     # K = 2 budgets, S = 8 seeds
                 [0.02, 0.03, 0.02, 0.01, 0.02, 0.03, 0.02, 0.02]])
CHANCE = {lab: 0.9 if lab == "class" else 0.5 for lab in ch5.LABELLINGS}


def _adv(gains: dict, random: float = 0.3) -> dict:
    """advantage_summary of every labelling from its (K, S) advantages (fractions; 0 when not given)."""
    out = {}
    for lab in ch5.LABELLINGS:
        d = np.asarray(gains.get(lab, 0 * GAIN), dtype=np.float64)
        out[lab] = ch5.advantage_summary(random - d, np.full(d.shape, random), CHANCE[lab])
    return out


def _statuses(adv: dict) -> tuple[list[str], str]:
    parts = claims.decide(ch5.budget_parts(adv))
    return [p.status for p in parts], claims.verdict(parts)


def test_advantage_summary_in_points_and_relative_to_chance() -> None:
    pre = np.array([[0.10, 0.11, 0.12], [0.05, 0.05, 0.06]])
    rnd = pre + np.array([[0.02, 0.03, 0.02], [0.01, 0.01, 0.01]])
    a = ch5.advantage_summary(pre, rnd, 0.5)
    assert a["mean"] == pytest.approx([0.07 / 3, 0.01]) and a["relative"] == pytest.approx([0.14 / 3, 0.02])
    assert np.asarray(a["diff"]) == pytest.approx(rnd - pre) and np.asarray(a["relative_diff"]) == pytest.approx(2 * (rnd - pre))
    # budget 2: three equal differences, t interval of a constant; 3 of 3 positive: p = 2 / 2**3
    assert a["ci95"][1] == pytest.approx([0.01, 0.01]) and a["relative_ci95"][1] == pytest.approx([0.02, 0.02])
    assert a["p"] == pytest.approx([0.25, 0.25]) and a["significant"] == [False, False]
    lo, hi = stats.t_interval((rnd - pre)[0] / 0.5)
    assert a["relative_ci95"][0] == pytest.approx([lo, hi])
    with pytest.raises(ValueError, match="S >= 2"):
        ch5.advantage_summary(pre[:, :1], rnd[:, :1], 0.5)
    with pytest.raises(ValueError, match="chance=0"):
        ch5.advantage_summary(pre, rnd, 0)


def test_budget_parts_follow_the_stated_rule() -> None:
    cause = {"class": GAIN, "class_high": GAIN, "world_cause": GAIN}
    assert _statuses(_adv(cause)) == ([H] * 6, "supported")
    a, b, bp, c, aw, bw = claims.decide(ch5.budget_parts(_adv(cause)))
    assert [p.key for p in (a, b, bp, c, aw, bw)] == ["a", "b-pair", "b-parity", "c", "a-world", "b-world"]
    # (a): the mean relative advantage over the 2 cause labellings (chance 0.9 and 0.5) and the budgets
    assert a.effect == pytest.approx(float((GAIN / 0.9 + GAIN / 0.5).mean() / 2)) and a.test == "wilcoxon"
    assert b.effect == bp.effect == pytest.approx(float((GAIN / 0.5).mean()))   # pixel labels gain nothing
    assert c.effect == pytest.approx(float((GAIN[0] - GAIN[1]).mean() / 0.5))
    assert a.n == SEEDS and a.ci95[0] < a.effect < a.ci95[1] and a.p_holm == pytest.approx(6 * a.p)
    # the pixel labels gain as much as the cause labels: the b parts, (c) and (b-world) fail, the rest holds
    same = {lab: GAIN for lab in ch5.LABELLINGS}
    assert _statuses(_adv(same)) == ([H, F, F, F, H, F], "partly supported")
    # only the pixel pair gains as much as digit >= 5: (b-pair) fails, (b-parity) holds
    assert _statuses(_adv({**cause, "pixel_pair": GAIN}))[0] == [H, F, H, H, H, H]
    # the gap is the same at every budget: (c) fails, the others hold
    flat = np.tile(GAIN[:1], (2, 1))
    assert _statuses(_adv({"class": flat, "class_high": flat, "world_cause": flat}))[0] == [H, H, H, F, H, H]
    hurt = {lab: -GAIN for lab in ("class", "class_high", "world_cause")}
    assert _statuses(_adv(hurt)) == ([F] * 6, "not supported")


def test_the_pixel_labels_of_part_b_are_the_high_frequency_ones_not_the_patch() -> None:
    # only the smooth patch label gains nothing; the high-frequency ones gain as much as the cause labels
    gains = {lab: GAIN for lab in ch5.LABELLINGS if lab != "patch"}
    for b in claims.decide(ch5.budget_parts(_adv(gains)))[1:3]:
        assert b.effect == pytest.approx(0.0) and b.status == F


def test_a_paired_effect_an_unpaired_test_would_miss_is_found() -> None:
    # the seeds differ a lot (random errors 0.1 .. 0.45), the pre-trained net of each seed is a little better
    rnd = np.tile(np.linspace(0.10, 0.45, SEEDS), (2, 1))
    pre = rnd - 0.01
    assert stats.mann_whitney(rnd.mean(0), pre.mean(0))["p"] > 0.5       # unpaired: no difference seen
    adv = _adv({})
    adv["class"] = adv["class_high"] = ch5.advantage_summary(pre, rnd, 0.5)
    a = claims.decide(ch5.budget_parts(adv))[0]
    assert a.p == pytest.approx(2 / 256) and a.effect == pytest.approx(0.02) and a.direction


def test_too_few_seeds_are_not_tested() -> None:
    few = GAIN[:, :claims.MIN_PAIRS - 1]
    parts = ch5.budget_parts(_adv({"class": few, "class_high": few, "world_cause": few, "pixel_pair": 0 * few,
                                   "pixel_parity": 0 * few, "patch": 0 * few, "world_pixel": 0 * few}))
    assert [p.status for p in parts] == [N] * 6 and claims.verdict(parts) == "inconclusive"
    assert "not testable at this scale" in parts[0].evidence and parts[0].p is None and parts[0].n == 7


def test_budget_parts_refuse_labellings_of_different_shapes() -> None:
    adv = _adv({})
    adv["patch"] = ch5.advantage_summary(np.zeros((3, 8)), np.zeros((3, 8)) + 0.1, 0.5)
    with pytest.raises(ValueError, match="the same K >= 2 budgets and S seeds"):
        ch5.budget_parts(adv)


def test_the_direction_rule() -> None:
    # (a): a positive mean from one large seed while 7 of 8 seeds are slightly worse with pre-training
    d = np.tile(np.array([-0.001] * 7 + [0.2]), (2, 1))
    a = claims.decide(ch5.budget_parts(_adv({"class": d, "class_high": d})))[0]
    assert a.effect > 0 and a.numbers["rank_biserial"] < 0 and a.status == F


def test_claim_parts_have_exactly_the_nine_keys() -> None:
    for adv in (_adv({"class": GAIN}), _adv({lab: GAIN[:, :2] for lab in ch5.LABELLINGS})):
        assert all(set(p.claim_part()) == KEYS for p in claims.decide(ch5.budget_parts(adv)))


def test_verdict_sentence_follows_the_decided_parts() -> None:
    cause = {"class": GAIN, "class_high": GAIN, "world_cause": GAIN}
    text = ch5.verdict_sentence(ch5.budget_parts(_adv(cause)))
    assert text.startswith(ch5.VERDICT_TEXT["supported"]) and "(Verdict: supported — (a) holds: mean +" in text
    assert "(b-world) holds" in text and "Holm-adjusted p = 0.047" in text      # 6 x 2/256 for every part
    text = ch5.verdict_sentence(ch5.budget_parts(_adv({lab: GAIN for lab in ch5.LABELLINGS})))
    assert text.startswith(ch5.VERDICT_TEXT["partly supported"]) and "(b-pair) fails" in text
    few = ch5.budget_parts(_adv({lab: GAIN[:, :2] for lab in ch5.LABELLINGS}))
    text = ch5.verdict_sentence(few)
    assert text.startswith(ch5.VERDICT_TEXT["inconclusive"]) and "(a) not tested (with 2 seeds it cannot be; measured: mean +" in text


def test_trajectory_sentences() -> None:
    def m(pre, rnd, mean=0.0, p=1.0, n=8):
        return {"train_nll_at_common": {"pretrained": pre, "random": rnd}, "difference_mean": mean,
                "difference_p": p, "n": n}

    assert ch5.optimisation_sentence({"cause": m(0.3, 0.5), "pixel": m(0.3, 0.5)}).startswith(
        "The pre-trained nets fit their training labels faster for both")
    assert ch5.optimisation_sentence({"cause": m(0.6, 0.5), "pixel": m(0.3, 0.5)}) == \
        "The pre-trained nets fit the pixel-pair labels faster, but not the class labels."
    text = ch5.regularisation_sentence({"cause": m(0, 0, 0.1, 0.01), "pixel": m(0, 0, 0.1, 0.2)})
    assert "for class labels, a regularisation effect" in text and "p below 0.05" in text
    # significant, but the random nets generalise better: not a regularisation effect of pre-training
    assert "for either labelling" in ch5.regularisation_sentence(
        {"cause": m(0, 0, -0.1, 0.01), "pixel": m(0, 0, 0.1, 0.2)})
    few = ch5.regularisation_sentence({"cause": m(0, 0, 0.1, 0.5, n=2), "pixel": m(0, 0, 0.1, 0.5, n=2)})
    assert few.startswith("With 2 seeds the matched comparison cannot tell") and "0.5" in few


# ------------------------------------------------------------------------------ fair fight
def _rec(converged: bool = True, at_edge: bool = False, lr: float = 0.1) -> dict:
    """A selection record of 2 seeds (the fields the gate and the table read)."""
    seeds = [True, converged]
    return {"lr": lr, "grid": [0.02, 0.1, 0.5], "at_edge": at_edge, "epoch_budget": 30, "best_epoch": [4, 6],
            "epochs_run": [7, 9], "train_nll": [0.1, 0.2], "converged": seeds, "n_converged": sum(seeds),
            "setting_converged": all(seeds), "longer_run": None}


def _records(bad: dict | None = None) -> dict:
    out = {(lab, init, n): _rec() for lab in ch5.LABELLINGS for init in ch5.INITS for n in (20, 100)}
    return {**out, **(bad or {})}


def test_gate_turns_a_part_that_compares_a_non_converged_setting_into_not_tested() -> None:
    parts = ch5.budget_parts(_adv({"class": GAIN, "class_high": GAIN, "world_cause": GAIN}))
    assert [p.status for p in ch5.gate_unconverged(parts, _records())] == [p.status for p in parts]
    # a pixel-parity setting did not converge: (b-parity) and (c) compare it, the other parts do not
    gated = ch5.gate_unconverged(parts, _records({("pixel_parity", "random", 100): _rec(converged=False)}))
    assert [p.status for p in gated] == [H, H, N, N, H, H] and gated[2].p is None
    assert ("random init nets with 100 pixel parity (high-frequency) labels (1 of 2 seeds converged within 30 "
            "epochs)") in gated[2].evidence and gated[2].evidence.startswith("not tested at this scale")
    # the linear baseline decides no part; the patch label neither
    quiet = {("class", "linear", 20): _rec(converged=False), ("patch", "random", 20): _rec(converged=False)}
    assert [p.status for p in ch5.gate_unconverged(parts, _records(quiet))] == [H] * 6
    # a world cause-label rate on the edge of its grid: both world parts compare it
    edge = ch5.gate_unconverged(parts, _records({("world_cause", "pretrained", 20): _rec(at_edge=True, lr=0.5)}))
    assert [p.status for p in edge] == [H, H, H, H, N, N] and "the chosen rate 0.5 is on the edge" in edge[4].evidence


def test_verdict_sentence_names_the_settings_that_did_not_converge() -> None:
    parts = ch5.budget_parts(_adv({"class": GAIN, "class_high": GAIN, "world_cause": GAIN}))
    gated = ch5.gate_unconverged(parts, _records({("class_high", "random", 20): _rec(converged=False)}))
    text = ch5.verdict_sentence(gated)
    a = gated[0]
    assert f"(a) not tested (a setting it compares did not converge; measured: mean {a.effect:+.1%} of the chance" in text
    assert "(a-world) holds" in text and text.startswith(ch5.VERDICT_TEXT["supported"])


def test_condition_names_and_the_training_table() -> None:
    assert ch5.condition_name(("pixel_pair", "linear", 7000)) == \
        "linear (raw pixels) nets with 7,000 pixel pair (high-frequency) labels"
    res = SimpleNamespace(n_labels=[20, 100],
                          selection={lab: {init: [_rec(), _rec(converged=lab == "class")] for init in ch5.INITS}
                                     for lab in ch5.LABELLINGS})
    records = ch5.Result.records(res)
    assert len(records) == len(ch5.LABELLINGS) * len(ch5.INITS) * 2
    assert list(records)[:3] == [("class", "pretrained", 20), ("class", "pretrained", 100), ("class", "random", 20)]
    assert [k for k, r in records.items() if not setting_converged(r)][:2] == [("class_high", "pretrained", 100),
                                                                           ("class_high", "random", 100)]


def test_results_record_holds_every_conditions_selection_and_converged_flag() -> None:
    sel = {lab: {init: [_rec(lr=0.1), _rec(converged=init == "random", lr=0.2)] for init in ch5.INITS}
           for lab in ch5.LABELLINGS}
    errors = {lab: {init: np.full((2, 8), 0.1) for init in ch5.INITS} for lab in ch5.LABELLINGS}
    adv = _adv({})
    info = {lab: {"chance": CHANCE[lab], "n_classes": 2} for lab in ch5.LABELLINGS}
    res = SimpleNamespace(errors=errors, adv=adv, info=info, report={}, matched={}, selection=sel)
    p = {"n_labels": [20, 100], "n_seeds": 8, "finetune_epoch_examples": 1000, "finetune_batch_size": 20}
    r = ch5.results_record(p, res)
    assert r["selection"]["pixel_pair"]["linear"]["100"] == sel["pixel_pair"]["linear"][1]
    assert r["converged"]["class"] == {"pretrained": {"20": True, "100": False}, "random": {"20": True, "100": True},
                                       "linear": {"20": True, "100": False}}
    assert r["finetune_lr"]["world_pixel"]["random"] == [0.1, 0.2]
    assert r["epoch"] == {"20": {"batch": 20, "repeats": 50}, "100": {"batch": 20, "repeats": 10}}
    assert r["labellings"]["class"]["chance"] == 0.9 and r["advantage"]["patch"]["relative"] == [0.0, 0.0]
    json.dumps(r)                                                   # JSON-able as it is


def test_training_curves_figure_has_one_line_per_initialisation_and_budget() -> None:
    curve = {"train_nll": [[2.0, 1.0, 0.5], [2.0, 0.9]], "valid_error": [[0.5, 0.3, 0.3], [0.5, 0.35]]}
    res = SimpleNamespace(n_labels=[20, 100], curves={lab: {init: [curve, curve] for init in ch5.INITS}
                                                      for lab in ch5.LABELLINGS})
    fig = ch5.training_curves(res, "pixel_pair")
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels[:6] == ["pre-trained, 20 labels", "pre-trained, 100 labels", "random init, 20 labels",
                          "random init, 100 labels", "linear (raw pixels), 20 labels",
                          "linear (raw pixels), 100 labels"] and _fits_the_page(fig)
    matplotlib.pyplot.close(fig)


# ------------------------------------------------------------------------------ tables
def test_labelling_and_budget_tables() -> None:
    info = {"class": {"n_classes": 10, "majority_train": 0.11, "majority_test": 0.1, "chance": 0.9, "bits": 3.3,
                      "mi_class_train": 3.3, "mi_class_test": 3.3}}
    t = ch5.labelling_table(info)
    assert t["labelling"].tolist() == [ch5.LABELLING_NAMES["class"]] and set(ch5.LABELLING_FORMAT) <= set(t.columns)
    errors = {"class": {"pretrained": np.array([[0.4, 0.2], [0.1, 0.1]]), "random": np.array([[0.5, 0.5], [0.2, 0.1]]),
                        "linear": np.array([[0.6, 0.6], [0.3, 0.3]])}}
    adv = {"class": ch5.advantage_summary(errors["class"]["pretrained"], errors["class"]["random"], 0.9)}
    t = ch5.budget_table([20, 100], errors, adv, info)
    assert t["labels"].tolist() == [20, 100] and set(ch5.BUDGET_FORMAT) <= set(t.columns)
    assert t["pre-trained error %"].tolist() == pytest.approx([30.0, 10.0])
    assert t["linear error %"].tolist() == pytest.approx([60.0, 30.0])
    assert t["random / chance"].tolist() == pytest.approx([0.5 / 0.9, 0.15 / 0.9])
    assert t["advantage (points)"].tolist() == pytest.approx([20.0, 5.0])
    assert t["advantage / chance"].tolist() == [f"{0.2 / 0.9:+.1%}", f"{0.05 / 0.9:+.1%}"]
    lo, hi = adv["class"]["ci95"][0]
    assert t["95 % t interval (points)"][0] == f"{100 * lo:+.2f}\u00a0to\u00a0{100 * hi:+.2f}"


def test_literature_table_takes_the_depth_from_the_sizes() -> None:
    t = ch5.literature_table([784, 300], 7000, "early-stopped", 0.1246, 0.0943)
    assert t["source"].tolist() == ["this book", "Larochelle et al. (2009), Table 3"]
    assert t["set-up"][0] == "784-300 net, 7,000 labels, early-stopped"
    assert t["set-up"][1].startswith("MNIST-small: 10k train") and t["set-up"][1].endswith("; 1 hidden layer")
    assert t["random init, test error %"].tolist() == ["12.46", "4.14"]
    assert t["pre-trained (RBM), test error %"].tolist() == ["9.43", "3.17"]
    deep = ch5.literature_table([784] + [10] * 5, 10, "", 0.5, 0.5)
    assert deep["set-up"][1].endswith("; 5 hidden layers") and deep.iloc[1, 2:].tolist() == ["n/a", "n/a"]


# ------------------------------------------------------------------------------ world report, figures
def test_world_report_table_and_figures(digits) -> None:
    world = ControlledWorld(digits, WorldConfig(n_exemplars=2, n_deformations=4), seed=0)
    causes = world.sample_causes(300, seed=0)
    x = world.render(causes)
    rep = ch5.world_report(world, x, causes, {"cause": causes["class"]})
    assert rep["labels"]["cause"]["mi_bits"]["class"] >= rep["labels"]["cause"]["bits"] - 1e-9
    assert rep["causes"]["class"]["variance_explained"] == rep["labels"]["cause"]["variance_explained"]
    assert rep["image_bits"] == pytest.approx(world.config.bits()["all"])
    table = ch5.world_table(rep)
    assert table["cause or label"].tolist() == ([f"cause: {k}" for k in causes]
                                                + ["the image (all causes together)", "cause"])
    assert table["pixel variance explained"].iloc[5] == 1.0 and list(table.columns)[1:] == ["bits", "pixel variance explained"]
    mi = ch5.world_mi_table(rep)
    assert list(mi.columns) == ["label", *causes] and mi["class"][0] == rep["labels"]["cause"]["mi_bits"]["class"]
    base = {k: 0 for k in causes}
    for fig in (ch5.causal_story_figure(), ch5.world_figure(world, base)):
        assert fig.axes and _fits_the_page(fig)
        matplotlib.pyplot.close(fig)


def test_example_digits_figure_shows_two_digits_per_class(digits) -> None:
    pair = ch5.PixelPair.fit(digits.x, digits.y)
    parity, patch = ch5.PixelParity.fit(digits.x), ch5.PixelLabel.fit(digits.x)
    labels = {"pixel_pair": pair(digits.x), "pixel_parity": parity(digits.x), "patch": patch(digits.x)}
    fig = ch5.example_digits_figure(digits.x, digits.y, labels, pair, parity, patch)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 20 and titles[0].startswith("class 0\npair ") and titles[19].startswith("class 9\n")
    assert all(len(ax.patches) == 2 + 2 + 3 for ax in fig.axes) and _fits_the_page(fig)
    matplotlib.pyplot.close(fig)


def _fits_the_page(fig) -> bool:
    """At most PAGE_WIDTH wide, at least 60 % of it, and no text below the book's smallest font size."""
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    return 0.6 * PAGE_WIDTH <= fig.get_figwidth() <= PAGE_WIDTH and min(sizes) >= SMALLEST_FONT_PT


def test_budget_and_trajectory_figures_fit_the_page_at_every_budget_count() -> None:
    rng = np.random.default_rng(0)
    for k in (2, 6, 20):
        n = [10 * 2 ** i for i in range(k)]
        adv = {lab: ch5.advantage_summary(rng.uniform(0.05, 0.5, (k, 3)), rng.uniform(0.05, 0.5, (k, 3)), 0.5)
               for lab in ch5.LABELLINGS}
        fig = ch5.budget_figure(n, adv)
        assert _fits_the_page(fig) and len(fig.axes) == 2
        # one line per labelling: 5 of the digits on the left, 2 of the world on the right, each with k points
        assert [len(ax.get_legend().get_texts()) for ax in fig.axes] == [5, 2]
        matplotlib.pyplot.close(fig)
    nll = torch.rand(4, 2, 3) + 0.1
    runs = torch.tensor([[4, 3, 4], [2, 4, 4]])
    run = ch5.BudgetRun(nll, nll + 0.2, runs, runs - 1)
    fig = ch5.nll_trajectory_figure({role: run for role in ch5.TRAJECTORY}, 200)
    assert _fits_the_page(fig) and len(fig.axes) == 2
    # one line per net, drawn up to its own last epoch; its marker at its best epoch
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [4, 3, 4, 2, 4, 4]
    assert fig.axes[0].collections[0].get_offsets().tolist() == [[float(nll[2, 0, 0]), float(nll[2, 0, 0] + 0.2)]]
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_work_lists_every_training_of_the_run(profile, work_plan):
    import math

    p, got, (n_train, n_valid, n_test) = work_plan(ch5, profile)
    n, sel, h = p["n_seeds"], p["finetune_select_seeds"], p["hidden_sizes"]
    E, least = p["finetune_epochs"], p["finetune_epoch_examples"]
    want = [("rbm", s, n, n_train, p["rbm_epochs"], p["pretrain_batch_size"], 0) for s in zip([784, *h], h)]
    members = len(p["finetune_lr_grid"]) * sel + n - sel

    def epoch(k: int) -> tuple[int, int]:   # (examples, batch) of one epoch of a k-label budget
        return k * math.ceil(least / k), min(p["finetune_batch_size"], k)

    want += want                                                          # the digits' and the world's stacks
    for lab in ch5.LABELLINGS:
        classes = 10 if lab == "class" else 2
        for init, sizes in (("pretrained", (784, *h, classes)), ("random", (784, *h, classes)),
                            ("linear", (784, classes))):
            want += [("finetune", sizes, members, *epoch(k)[:1], E, epoch(k)[1], n_valid) for k in p["n_labels"]]
        if lab in ch5.TRAJECTORY.values():
            k = p["trajectory_n_labels"]
            want += [("finetune", (784, *h, classes), 2 * n, epoch(k)[0], E, epoch(k)[1], k + n_test)]
    assert sorted(got) == sorted(want)
