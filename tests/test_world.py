"""The controlled world: causes, their bits, rendering, sweeps."""

from __future__ import annotations

import math

import pytest
import torch

from pretraining.core.data import Subset, load_dataset
from pretraining.core.distort import DistortionConfig, distort
from pretraining.core.world import ControlledWorld, WorldConfig, sweep_causes


@pytest.fixture(scope="module")
def digits() -> Subset:
    """400 training digits, 40 per class."""
    train = load_dataset().train
    rows = torch.cat([torch.nonzero(train.y == c)[:40, 0] for c in range(10)])
    return Subset(train.x[rows], train.y[rows])


def test_world_renders_its_causes(digits) -> None:
    cfg = WorldConfig(n_exemplars=2, n_deformations=4, max_shift=2)
    world = ControlledWorld(digits, cfg, seed=1)
    assert cfg.bits()["all"] == pytest.approx(math.log2(10 * 2 * 4 * 3 * 25))
    causes = world.sample_causes(6, seed=2)
    assert torch.equal(world.render(causes), world.render(causes))
    assert {k: int(v.max()) < cfg.cardinalities()[k] for k, v in causes.items()} == dict.fromkeys(causes, True)
    # centre position, normal width: exactly the deformed exemplar
    assert cfg.centre() == 12
    base = {"class": 3, "exemplar": 1, "deformation": 2, "width": 1, "position": 12}
    one = {k: torch.tensor([v]) for k, v in base.items()}
    deformed = distort(world.exemplars[3, 1:2], 1, torch.tensor([2]), DistortionConfig())
    torch.testing.assert_close(world.render(one), deformed)
    # position 13 = one pixel right: columns move right by one, a zero column enters on the left
    moved = world.render({**one, "position": torch.tensor([13])}).reshape(28, 28)
    torch.testing.assert_close(moved[:, 1:], deformed.reshape(28, 28)[:, :-1])
    assert moved[:, 0].abs().sum() == 0


def test_world_exemplars_are_of_their_class_and_depend_on_the_seed(digits) -> None:
    cfg = WorldConfig(n_exemplars=3, n_deformations=4)
    a, b = ControlledWorld(digits, cfg, seed=0), ControlledWorld(digits, cfg, seed=1)
    assert a.exemplars.shape == (10, 3, 784)
    for c in range(10):
        of_class = digits.x[digits.y == c]
        assert all(bool((of_class == e).all(1).any()) for e in a.exemplars[c])
    assert not torch.equal(a.exemplars, b.exemplars)


def test_world_rejects_bad_causes(digits) -> None:
    world = ControlledWorld(digits, WorldConfig(n_exemplars=2, n_deformations=4), seed=0)
    causes = world.sample_causes(3, seed=0)
    with pytest.raises(ValueError, match=r"causes\['width'\]"):
        world.render({**causes, "width": torch.tensor([0, 1, 3])})
    with pytest.raises(ValueError, match="exactly the keys"):
        world.render({"class": causes["class"]})
    with pytest.raises(ValueError, match="n_exemplars=50"):
        ControlledWorld(digits, WorldConfig(n_exemplars=50))
    with pytest.raises(ValueError, match="max_shift=5 is not allowed"):
        WorldConfig(max_shift=5)
    with pytest.raises(ValueError, match="seed=-1 is not allowed"):
        ControlledWorld(digits, WorldConfig(n_exemplars=2), seed=-1)


def test_sweep_causes_runs_one_cause_and_keeps_the_others(digits) -> None:
    world = ControlledWorld(digits, WorldConfig(n_exemplars=2, n_deformations=64), seed=0)
    base = {"class": 1, "exemplar": 0, "deformation": 5, "width": 2, "position": 3}
    widths = sweep_causes(world, "width", base)
    assert widths["width"].tolist() == [0, 1, 2] and widths["class"].tolist() == [1, 1, 1]
    pose = sweep_causes(world, "deformation", base)["deformation"]
    assert len(pose) == 10 and pose[0] == 0 and pose[-1] == 63
    with pytest.raises(ValueError, match="vary='colour' is not a cause"):
        sweep_causes(world, "colour", base)
    with pytest.raises(ValueError, match="base must give every cause"):
        sweep_causes(world, "width", {**base, "width": 3})
