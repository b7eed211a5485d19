"""Chapter 5 library: pixel labels, label budgets, the controlled world, information measures."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from pretraining import bandwidth as bw
from pretraining.data import Subset, load_dataset
from pretraining.distort import DistortionConfig, distort
from pretraining.train import RBMConfig, pretrain_stack

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def digits() -> Subset:
    """400 training digits, 40 per class."""
    train = load_dataset().train
    rows = torch.cat([torch.nonzero(train.y == c)[:40, 0] for c in range(10)])
    return Subset(train.x[rows], train.y[rows])


# ------------------------------------------------------------------------------ pixel labels
def test_pixel_score_is_mean_abs_difference_of_mirrored_patches() -> None:
    img = torch.zeros(1, 28, 28)
    img[0, 6:12, 6:12] = 1.0            # top-left patch all ink
    img[0, 16:22, 16:19] = 1.0          # bottom-right patch half ink
    s = bw.PixelLabel.score(img.reshape(1, 784), patch=6, offset=6)
    assert s.tolist() == [0.5]


def test_pixel_label_fit_splits_training_set_in_half(digits) -> None:
    lab = bw.PixelLabel.fit(digits.x, patch=6, offset=6)
    y = lab(digits.x)
    assert y.dtype == torch.int64 and int(y.sum()) == len(digits) // 2
    assert lab(digits.x[:5]).tolist() == y[:5].tolist()


@pytest.mark.parametrize("kw", [{"patch": 0}, {"patch": 6, "offset": 9}, {"patch": True}])
def test_pixel_label_rejects_bad_geometry(digits, kw) -> None:
    with pytest.raises(ValueError, match="patch|offset"):
        bw.PixelLabel.fit(digits.x, **kw)


def test_pixel_label_rejects_bad_images() -> None:
    with pytest.raises(ValueError, match=r"x must be a float tensor of shape \(N, 784\)"):
        bw.PixelLabel.score(torch.zeros(3, 100), 6, 6)


# ------------------------------------------------------------------------------ label budget
def test_labelled_subsets_nested_deterministic_distinct() -> None:
    a = bw.labelled_subsets(100, 10, [0, 1])
    b = bw.labelled_subsets(100, 30, [0, 1])
    assert a.shape == (2, 10) and torch.equal(a, b[:, :10])
    assert torch.equal(a, bw.labelled_subsets(100, 10, [0, 1]))
    assert len(set(b[0].tolist())) == 30 and not torch.equal(a[0], a[1])
    with pytest.raises(ValueError, match="n_labels=101"):
        bw.labelled_subsets(100, 101, [0])


def test_finetune_config_gives_the_same_number_of_updates() -> None:
    assert bw.finetune_config(7000, 800, 0.1, 20).epochs == 3      # 350 steps per epoch
    small = bw.finetune_config(50, 800, 0.1, 20)
    assert (small.batch_size, small.epochs) == (20, 400)           # 2 steps per epoch
    assert bw.finetune_config(10, 5, 0.1, 20).batch_size == 10
    with pytest.raises(ValueError, match="n_updates=0"):
        bw.finetune_config(10, 0, 0.1, 20)


@pytest.fixture(scope="module")
def tiny(digits):
    stack, _ = pretrain_stack("rbm", digits.x, [12], RBMConfig(epochs=1, lr=0.05, batch_size=20), [3, 4],
                              progress=False)
    test = Subset(digits.x[::4], digits.y[::4])
    return stack, test


def test_label_budget_batched_equals_single_seed(digits, tiny) -> None:
    stack, test = tiny
    kw = dict(n_updates=6, lr=0.1, batch_size=10, trajectory_points=2)
    both = bw.label_budget(stack, digits, test, 10, 40, [3, 4], **kw)
    assert both.error.shape == (2, 2) and both.train_nll.shape == (2, 2, 2)
    assert both.epochs.tolist() == [1, 2]                          # 6 updates = 2 epochs of 4 steps
    for s, seed in enumerate([3, 4]):
        one_stack = type(stack)(stack.kind, [type(layer).from_state_dict(
            {k: v[s:s + 1] for k, v in layer.state_dict().items()}) for layer in stack.layers])
        one = bw.label_budget(one_stack, digits, test, 10, 40, [seed], **kw)
        torch.testing.assert_close(one.error[:, 0], both.error[:, s])
        torch.testing.assert_close(one.test_nll[:, :, 0], both.test_nll[:, :, s], rtol=1e-5, atol=1e-5)
    assert not torch.equal(both.nll[0], both.nll[1])               # pre-trained and random differ


def test_label_budget_rejects_labels_outside_classes(digits, tiny) -> None:
    stack, test = tiny
    with pytest.raises(ValueError, match="n_classes=2"):
        bw.label_budget(stack, digits, test, 2, 40, [3, 4], n_updates=2, lr=0.1, batch_size=10)


def test_matched_test_nll_interpolates_at_common_level() -> None:
    train = torch.tensor([[1.0, 2.0], [0.5, 1.0], [0.2, 0.8]])
    test = torch.tensor([[1.1, 2.1], [0.9, 1.5], [1.0, 1.4]])
    level, m = bw.matched_test_nll(train, test)
    # member 0 crosses 0.8 between (1.0, 1.1) and (0.5, 0.9): 1.1 - 0.4 * 0.2; member 1 ends at it
    assert level == pytest.approx(0.8) and m.tolist() == pytest.approx([1.02, 1.4])
    assert bw.matched_test_nll(train, test, level=1.0)[1].tolist() == pytest.approx([1.1, 1.5])
    assert bw.matched_test_nll(train, test, level=5.0)[1].tolist() == pytest.approx([1.1, 2.1])
    with pytest.raises(ValueError, match="level=0.5"):
        bw.matched_test_nll(train, test, level=0.5)


def test_advantage_summary_and_verdict() -> None:
    pre = np.array([[0.10, 0.11, 0.12], [0.05, 0.05, 0.06]])
    rnd = pre + np.array([[0.02, 0.03, 0.02], [0.01, 0.01, 0.01]])
    a = bw.advantage_summary(pre, rnd)
    assert a["mean"] == pytest.approx([0.07 / 3, 0.01]) and a["significant"] == [True, True]
    none = bw.advantage_summary(pre, pre + np.array([[0.01, -0.01, 0.0]] * 2))
    assert none["significant"] == [False, False]
    assert bw.claim_verdict(a, none, 5)[0] == "supported"
    assert bw.claim_verdict(none, a, 5)[0] == "not supported"
    assert bw.claim_verdict(a, a, 5)[0] == "not supported"
    assert bw.claim_verdict(a, none, 2)[0] == "inconclusive"
    half = {"significant": [True, False], "relative": [0.02, 0.0]}         # 1 of 2: not fewer than half
    assert bw.claim_verdict(a, half, 5)[0] == "partly supported"
    with pytest.raises(ValueError, match="S >= 2"):
        bw.advantage_summary(pre[:, :1], rnd[:, :1])


# ------------------------------------------------------------------------------ information
def test_entropy_and_mutual_information_exact() -> None:
    a = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    b = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])                      # independent of a
    assert bw.entropy_bits(a) == pytest.approx(2.0)
    assert bw.mutual_information_bits(a, a, correct_bias=False) == pytest.approx(2.0)
    assert bw.mutual_information_bits(a, b, correct_bias=False) == pytest.approx(0.0, abs=1e-12)
    assert bw.mutual_information_bits(a, a // 2, correct_bias=False) == pytest.approx(1.0)
    # Miller-Madow: +((4-1) + (2-1) - (4-1)) / (2 * 8 ln 2) for a vs a // 2
    assert bw.mutual_information_bits(a, a // 2) == pytest.approx(1.0 + 1 / (16 * math.log(2)))
    with pytest.raises(ValueError, match="same items"):
        bw.mutual_information_bits(a, b[:4])


def test_mutual_information_bias_correction_near_zero_for_independent() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(10, (3000,), generator=g), torch.randint(64, (3000,), generator=g)
    assert bw.mutual_information_bits(a, b, correct_bias=False) > 0.1
    assert bw.mutual_information_bits(a, b) < 0.03


def test_explained_variance_exact() -> None:
    x = torch.tensor([[0.0], [2.0], [4.0], [6.0]])
    assert bw.explained_variance(x, torch.tensor([0, 0, 1, 1]), adjusted=False) == pytest.approx(16 / 20)
    # adjusted: 1 - (4 / 2) / (20 / 3)
    assert bw.explained_variance(x, torch.tensor([0, 0, 1, 1])) == pytest.approx(1 - 0.3)
    assert bw.explained_variance(x, torch.tensor([0, 1, 1, 0]), adjusted=False) == pytest.approx(0.0)
    assert bw.explained_variance(x, torch.arange(4), adjusted=False) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="groups"):
        bw.explained_variance(x, torch.tensor([0.0, 1.0, 0.0, 1.0]))


# ------------------------------------------------------------------------------ controlled world
def test_world_renders_its_causes(digits) -> None:
    cfg = bw.WorldConfig(n_exemplars=2, n_deformations=4, max_shift=2)
    world = bw.ControlledWorld(digits, cfg, seed=1)
    assert cfg.bits()["all"] == pytest.approx(math.log2(10 * 2 * 4 * 3 * 25))
    causes = world.sample_causes(6, seed=2)
    assert torch.equal(world.render(causes), world.render(causes))
    assert {k: int(v.max()) < cfg.cardinalities()[k] for k, v in causes.items()} == dict.fromkeys(causes, True)
    # centre position, normal width: exactly the deformed exemplar
    base = {"class": 3, "exemplar": 1, "deformation": 2, "width": 1, "position": 12}
    one = {k: torch.tensor([v]) for k, v in base.items()}
    deformed = distort(world.exemplars[3, 1:2], 1, torch.tensor([2]), DistortionConfig())
    torch.testing.assert_close(world.render(one), deformed)
    # position 13 = one pixel right: columns move right by one, a zero column enters on the left
    moved = world.render({**one, "position": torch.tensor([13])}).reshape(28, 28)
    torch.testing.assert_close(moved[:, 1:], deformed.reshape(28, 28)[:, :-1])
    assert moved[:, 0].abs().sum() == 0


def test_world_rejects_bad_causes(digits) -> None:
    world = bw.ControlledWorld(digits, bw.WorldConfig(n_exemplars=2, n_deformations=4), seed=0)
    causes = world.sample_causes(3, seed=0)
    with pytest.raises(ValueError, match=r"causes\['width'\]"):
        world.render({**causes, "width": torch.tensor([0, 1, 3])})
    with pytest.raises(ValueError, match="exactly the keys"):
        world.render({"class": causes["class"]})
    with pytest.raises(ValueError, match="n_exemplars=50"):
        bw.ControlledWorld(digits, bw.WorldConfig(n_exemplars=50))
    with pytest.raises(ValueError, match="max_shift=5"):
        bw.WorldConfig(max_shift=5)


def test_world_report_and_figures(digits) -> None:
    world = bw.ControlledWorld(digits, bw.WorldConfig(n_exemplars=2, n_deformations=4), seed=0)
    causes = world.sample_causes(300, seed=0)
    x = world.render(causes)
    rep = bw.world_report(world, x, causes, {"cause": causes["class"]})
    assert rep["labels"]["cause"]["mi_bits"]["class"] >= rep["labels"]["cause"]["bits"] - 1e-9
    assert rep["causes"]["class"]["variance_explained"] == rep["labels"]["cause"]["variance_explained"]
    assert rep["image_bits"] == pytest.approx(world.config.bits()["all"])
    base = {k: 0 for k in causes}
    assert len(bw.sweep_causes(world, "width", base)["width"]) == 3
    for fig in (bw.causal_story_figure(), bw.world_figure(world, base)):
        assert fig.axes
        matplotlib.pyplot.close(fig)
