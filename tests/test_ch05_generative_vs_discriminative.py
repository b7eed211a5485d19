"""Chapter 5: pixel labels, label budgets, matched NLLs, the claim's parts, tables, sentences, rules."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from pretraining.book import claims
from pretraining.chapters import ch05_generative_vs_discriminative as ch5
from pretraining.core.data import Subset, load_dataset
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


@pytest.mark.parametrize("change, problem", [
    ({"n_labels": [100, 20], "trajectory_n_labels": 100}, "n_labels=[100, 20] is not allowed: increasing"),
    ({"n_labels": [20, 20, 100], "trajectory_n_labels": 100}, "n_labels=[20, 20, 100] is not allowed: increasing"),
    ({"trajectory_n_labels": 50}, "trajectory_n_labels=50 is not allowed: one of n_labels=[20, 100, 500, 2000, 7000]"),
    ({"pixel_offset": 9}, "pixel_offset=9 is not allowed: at most 8 with pixel_patch=6"),
    ({"n_labels": [20, 8000], "trajectory_n_labels": 20},
     "n_labels=[20, 8000] is not allowed: at most the 7000 training digits of mnist-10k"),
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


def test_finetune_config_gives_the_same_number_of_updates() -> None:
    assert ch5.finetune_config(7000, 800, 0.1, 20).epochs == 3      # 350 steps per epoch
    small = ch5.finetune_config(50, 800, 0.1, 20)
    assert (small.batch_size, small.epochs) == (20, 400)           # 2 steps per epoch
    assert ch5.finetune_config(10, 5, 0.1, 20).batch_size == 10
    with pytest.raises(ValueError, match="n_updates=0"):
        ch5.finetune_config(10, 0, 0.1, 20)


@pytest.fixture(scope="module")
def tiny(digits):
    stack, _ = pretrain_stack("rbm", digits.x, [12], RBMConfig(epochs=1, lr=0.05, batch_size=20), [3, 4],
                              progress=False)
    test = Subset(digits.x[::4], digits.y[::4])
    return stack, test


def test_label_budget_batched_equals_single_seed(digits, tiny) -> None:
    stack, test = tiny
    kw = dict(n_updates=6, lr=0.1, batch_size=10, trajectory_points=2)
    both = ch5.label_budget(stack, digits, test, 10, 40, [3, 4], **kw)
    assert both.error.shape == (2, 2) and both.train_nll.shape == (2, 2, 2)
    assert both.epochs.tolist() == [1, 2]                          # 6 updates = 2 epochs of 4 steps
    for s, seed in enumerate([3, 4]):
        one_stack = type(stack)(stack.kind, [type(layer).from_state_dict(
            {k: v[s:s + 1] for k, v in layer.state_dict().items()}) for layer in stack.layers])
        one = ch5.label_budget(one_stack, digits, test, 10, 40, [seed], **kw)
        torch.testing.assert_close(one.error[:, 0], both.error[:, s])
        torch.testing.assert_close(one.test_nll[:, :, 0], both.test_nll[:, :, s], rtol=1e-5, atol=1e-5)
    assert not torch.equal(both.nll[0], both.nll[1])               # pre-trained and random differ


def test_label_budget_rejects_labels_outside_classes(digits, tiny) -> None:
    stack, test = tiny
    with pytest.raises(ValueError, match="n_classes=2"):
        ch5.label_budget(stack, digits, test, 2, 40, [3, 4], n_updates=2, lr=0.1, batch_size=10)


def test_run_budgets_stacks_labellings_and_budgets(digits, tiny) -> None:
    stack, test = tiny
    pixel = ch5.PixelLabel.fit(digits.x)
    labellings = {"cause": (digits, test, 10),
                  "pixel": (Subset(digits.x, pixel(digits.x)), Subset(test.x, pixel(test.x)), 2)}
    t, meta = ch5.run_budgets(stack, labellings, [20, 40], [3, 4], n_updates=8, lr=0.1, batch_size=10,
                              trajectory_n_labels=40, trajectory_points=2, progress=False)
    assert meta == {}
    assert t["error"].shape == t["nll"].shape == (2, 2, 2, 2)        # (L, K, 2, S)
    # 8 updates of 4 steps per epoch on the 40 labels of the trajectory budget: 2 epochs, both recorded
    assert t["epochs"].tolist() == [1, 2] and t["train_nll"].shape == t["test_nll"].shape == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="trajectory_n_labels=30 is not allowed"):
        ch5.run_budgets(stack, labellings, [20, 40], [3, 4], n_updates=4, lr=0.1, batch_size=10,
                        trajectory_n_labels=30, trajectory_points=2, progress=False)


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


def _run(train_nll: list, test_nll: list) -> ch5.BudgetRun:
    """A BudgetRun with S = 2 seeds from per-epoch [[pre0, pre1], [rnd0, rnd1]] NLLs."""
    tr, te = torch.tensor(train_nll), torch.tensor(test_nll)
    return ch5.BudgetRun(error=torch.zeros(2, 2), nll=torch.zeros(2, 2), epochs=torch.arange(1, len(tr) + 1),
                         train_nll=tr, test_nll=te)


def test_matched_summary_reads_every_net_at_the_common_level() -> None:
    # epochs x (init, seed): the random nets stop at 0.5, so the level is 0.5
    train = [[[1.0, 1.0], [1.0, 1.0]], [[0.2, 0.2], [0.5, 0.5]]]
    test = [[[2.0, 2.0], [2.0, 2.0]], [[1.2, 1.0], [1.6, 1.6]]]
    m = ch5.matched_summary({"cause": _run(train, test)})["cause"]
    assert m["level"] == pytest.approx(0.5)
    # pre-trained: 5/8 of the way from 1.0 to 0.2 -> test 2 + 0.625 * (1.2 - 2) and 2 + 0.625 * (1.0 - 2)
    assert m["pretrained"] == pytest.approx(((2 - 0.5) + (2 - 0.625)) / 2)
    assert m["random"] == pytest.approx(1.6)
    assert m["final_train_nll"] == pytest.approx({"pretrained": 0.2, "random": 0.5})
    # two paired differences, 0.1 and 0.225: a quarter of the resamples hold only one of them
    assert m["difference_ci95"] == pytest.approx([1.6 - 1.5, 1.6 - 1.375], abs=1e-6)


# ------------------------------------------------------------------------------ the claim
def _adv(significant: list[bool], relative: list[float]) -> dict:
    return {"significant": significant, "relative": relative, "mean": [0.01] * len(relative),
            "ci95": [[0.0, 0.02]] * len(relative)}


def test_advantage_summary() -> None:
    pre = np.array([[0.10, 0.11, 0.12], [0.05, 0.05, 0.06]])
    rnd = pre + np.array([[0.02, 0.03, 0.02], [0.01, 0.01, 0.01]])
    a = ch5.advantage_summary(pre, rnd)
    assert a["mean"] == pytest.approx([0.07 / 3, 0.01]) and a["significant"] == [True, True]
    assert a["relative"] == pytest.approx([(0.07 / 3) / rnd[0].mean(), 0.01 / rnd[1].mean()])
    none = ch5.advantage_summary(pre, pre + np.array([[0.01, -0.01, 0.0]] * 2))
    assert none["significant"] == [False, False]
    with pytest.raises(ValueError, match="S >= 2"):
        ch5.advantage_summary(pre[:, :1], rnd[:, :1])


def _statuses(cause: dict, pixel: dict, n_seeds: int = 5) -> tuple[list[str], str]:
    parts = ch5.budget_parts(cause, pixel, n_seeds)
    return [p.status for p in parts], claims.verdict(parts)


H, F, N = claims.HOLDS, claims.FAILS, claims.NOT_TESTED


def test_budget_parts_map_the_old_criteria() -> None:
    helped = _adv([True, True, True, False], [0.3, 0.2, 0.2, 0.1])         # 3 of 4, mean 20 %
    little = _adv([True, False, False, False], [0.1, 0.0, 0.0, 0.0])       # 1 of 4, mean 2.5 %
    assert _statuses(helped, little) == ([H, H, N], "supported")
    assert _statuses(helped, helped) == ([H, F, N], "partly supported")   # pixel labels gain as much
    half = _adv([True, True, False, False], [0.05, 0.05, 0.0, 0.0])       # 2 of 4: not fewer than half
    assert _statuses(helped, half) == ([H, F, N], "partly supported")
    close = _adv([False, False, False, False], [0.3, 0.1, 0.1, 0.0])      # 12.5 %: not below half of 20 %
    assert _statuses(helped, close)[0] == [H, F, N]
    assert _statuses(little, helped) == ([F, F, N], "not supported")
    assert _statuses(little, _adv([False] * 4, [0.0] * 4)) == ([F, H, N], "partly supported")


def test_budget_parts_with_too_few_seeds_are_not_tested() -> None:
    helped = _adv([True, True], [0.3, 0.2])
    parts = ch5.budget_parts(helped, _adv([False, False], [0.0, 0.0]), 2)
    assert [p.status for p in parts] == [N, N, N] and claims.verdict(parts) == "inconclusive"
    assert parts[0].evidence.startswith("only 2 seeds") and parts[2].evidence == "not measured yet (issue 18)"
    assert parts[0].numbers["significant_budgets"] == 2


def test_verdict_sentence_follows_the_parts() -> None:
    helped, none = _adv([True, True], [0.3, 0.2]), _adv([False, False], [0.0, 0.0])
    text = ch5.verdict_sentence(ch5.budget_parts(helped, none, 4), helped, none, 4)
    assert text.startswith(ch5.VERDICT_TEXT["supported"])
    assert "(Verdict: supported — pre-training helps cause labels significantly at 2 of 2 budgets " \
           "(mean relative gain 25%) and pixel labels at 0 of 2 (mean relative gain 0%).)" in text
    text = ch5.verdict_sentence(ch5.budget_parts(helped, helped, 4), helped, helped, 4)
    assert text.startswith(ch5.VERDICT_TEXT["partly supported"])
    weak = _adv([False, False], [0.1, 0.1])
    text = ch5.verdict_sentence(ch5.budget_parts(weak, none, 4), weak, none, 4)
    assert text.startswith(ch5.VERDICT_TEXT["partly supported, cause labels not helped"])
    text = ch5.verdict_sentence(ch5.budget_parts(none, none, 4), none, none, 4)
    assert text.startswith(ch5.VERDICT_TEXT["not supported"])
    text = ch5.verdict_sentence(ch5.budget_parts(helped, none, 2), helped, none, 2)
    assert text.startswith(ch5.VERDICT_TEXT["inconclusive"]) and "only 2 seeds: too few for intervals;" in text


def test_trajectory_sentences() -> None:
    def m(pre, rnd, low):
        return {"final_train_nll": {"pretrained": pre, "random": rnd}, "difference_ci95": [low, low + 1]}

    assert ch5.optimisation_sentence({"cause": m(0.3, 0.5, 0), "pixel": m(0.3, 0.5, 0)}).startswith(
        "The pre-trained nets fit their training labels faster for both")
    assert ch5.optimisation_sentence({"cause": m(0.6, 0.5, 0), "pixel": m(0.3, 0.5, 0)}) == \
        "The pre-trained nets fit the pixel labels faster, but not the cause labels."
    assert "for cause labels, a regularisation effect" in ch5.regularisation_sentence(
        {"cause": m(0, 0, 0.01), "pixel": m(0, 0, -0.01)})
    assert "for either labelling" in ch5.regularisation_sentence({"cause": m(0, 0, 0.0), "pixel": m(0, 0, -0.01)})


def test_pixel_mi_verdict_threshold_is_a_fifth_of_the_label_bits() -> None:
    assert ch5.pixel_mi_verdict(0.19, 1.0) == "almost unrelated to the digit class"
    assert ch5.pixel_mi_verdict(0.2, 1.0).startswith("noticeably related")


# ------------------------------------------------------------------------------ tables
def test_budget_table_counts_label_bits_and_formats_the_interval() -> None:
    errors = {"cause": {"pretrained": np.array([[0.4, 0.2], [0.1, 0.1]]), "random": np.array([[0.5, 0.5], [0.2, 0.1]])}}
    adv = {"cause": {"mean": [0.2, 0.05], "ci95": [[0.1, 0.3], [0.0, 0.1]], "relative": [0.4, 0.333]}}
    t = ch5.budget_table([20, 100], errors, adv, {"cause": 3.3})
    assert t["bits of label information"].tolist() == pytest.approx([66.0, 330.0])
    assert t["pre-trained error %"].tolist() == pytest.approx([30.0, 10.0])
    assert t["random error %"].tolist() == pytest.approx([50.0, 15.0])
    assert t["95% interval"].tolist() == ["[10.00, 30.00]", "[0.00, 10.00]"]
    assert t["relative gain"].tolist() == ["40%", "33%"]


def test_literature_table_takes_the_depth_from_the_sizes() -> None:
    t = ch5.literature_table([784, 300], 7000, 600, 0.1246, 0.0943)
    ours, paper = t.columns[1], t.columns[2]
    assert ours == "this book (784-300, 7,000 labels, 600 updates)" and t[ours].tolist() == ["12.46", "9.43"]
    assert paper.endswith("(MNIST-small: 10k train / 2k valid / 50k test), 1 hidden layer(s)")
    assert t[paper].tolist() == [4.14, 3.17]
    assert ch5.literature_table([784] + [10] * 5, 10, 1, 0.5, 0.5).iloc[:, 2].tolist() == ["n/a", "n/a"]


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
    assert table[""].tolist() == [f"cause: {k}" for k in causes] + ["image (all causes together)", "label: cause"]
    assert table["pixel variance explained"].iloc[5] == 1.0 and "I(label; width) bits" in table.columns
    base = {k: 0 for k in causes}
    for fig in (ch5.causal_story_figure(), ch5.world_figure(world, base)):
        assert fig.axes
        matplotlib.pyplot.close(fig)


def test_example_digits_figure_shows_two_digits_per_class(digits) -> None:
    pixel = ch5.PixelLabel.fit(digits.x)(digits.x)
    fig = ch5.example_digits_figure(digits.x, digits.y, pixel, 6, 6)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 20 and titles[0].startswith("class 0\n") and titles[19].startswith("class 9\n")
    assert all(len(ax.patches) == 2 for ax in fig.axes)
    matplotlib.pyplot.close(fig)
