"""Information measures: entropy, mutual information (bias-corrected), explained variance."""

from __future__ import annotations

import math

import pytest
import torch

from pretraining.analysis.information import entropy_bits, explained_variance, mutual_information_bits


def test_entropy_and_mutual_information_exact() -> None:
    a = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    b = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])                      # independent of a
    assert entropy_bits(a) == pytest.approx(2.0)
    assert mutual_information_bits(a, a, correct_bias=False) == pytest.approx(2.0)
    assert mutual_information_bits(a, b, correct_bias=False) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information_bits(a, a // 2, correct_bias=False) == pytest.approx(1.0)
    # Miller-Madow: +((4-1) + (2-1) - (4-1)) / (2 * 8 ln 2) for a vs a // 2
    assert mutual_information_bits(a, a // 2) == pytest.approx(1.0 + 1 / (16 * math.log(2)))
    with pytest.raises(ValueError, match="same items"):
        mutual_information_bits(a, b[:4])


def test_entropy_ignores_the_label_offset_and_rejects_floats() -> None:
    assert entropy_bits(torch.tensor([5, 5, 7, 7])) == pytest.approx(1.0)
    assert entropy_bits(torch.tensor([3, 3, 3])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="labels must be a non-empty 1-D integer tensor"):
        entropy_bits(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="b must be a non-empty 1-D integer tensor"):
        mutual_information_bits(torch.tensor([0, 1]), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(TypeError, match="correct_bias"):
        mutual_information_bits(torch.tensor([0, 1]), torch.tensor([0, 1]), correct_bias=1)


def test_mutual_information_bias_correction_near_zero_for_independent() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(10, (3000,), generator=g), torch.randint(64, (3000,), generator=g)
    assert mutual_information_bits(a, b, correct_bias=False) > 0.1
    assert mutual_information_bits(a, b) < 0.03


def test_explained_variance_exact() -> None:
    x = torch.tensor([[0.0], [2.0], [4.0], [6.0]])
    assert explained_variance(x, torch.tensor([0, 0, 1, 1]), adjusted=False) == pytest.approx(16 / 20)
    # adjusted: 1 - (4 / 2) / (20 / 3)
    assert explained_variance(x, torch.tensor([0, 0, 1, 1])) == pytest.approx(1 - 0.3)
    assert explained_variance(x, torch.tensor([0, 1, 1, 0]), adjusted=False) == pytest.approx(0.0)
    assert explained_variance(x, torch.arange(4), adjusted=False) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="groups"):
        explained_variance(x, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="more examples"):
        explained_variance(x, torch.arange(4))
    with pytest.raises(ValueError, match="zero variance"):
        explained_variance(torch.ones(4, 2), torch.tensor([0, 0, 1, 1]))


def test_binary_mutual_information_equals_the_one_label_estimate_column_by_column() -> None:
    from pretraining.analysis.information import binary_mutual_information_bits

    g = torch.Generator().manual_seed(1)
    classes = torch.randint(3, 10, (500,), generator=g)               # offset labels, 7 classes
    labels = torch.stack([classes >= 6,                                # a function of the class
                          torch.rand(500, generator=g) < 0.3,          # unrelated
                          (classes == 4) & (torch.rand(500, generator=g) < 0.5),
                          torch.zeros(500, dtype=torch.bool),          # constant: 0 bits
                          torch.ones(500, dtype=torch.bool)], dim=1)
    got = binary_mutual_information_bits(labels, classes)
    want = [mutual_information_bits(labels[:, p].long(), classes) for p in range(labels.shape[1])]
    assert got.shape == (5,) and got.tolist() == pytest.approx(want, abs=1e-12)
    assert got[0] > 0.9 and got[3] == got[4] == 0.0
    assert binary_mutual_information_bits(labels.long(), classes).tolist() == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="labels must hold only 0 and 1"):
        binary_mutual_information_bits(2 * labels.long(), classes)
    with pytest.raises(ValueError, match=r"labels must be a non-empty \(N, P\)"):
        binary_mutual_information_bits(labels.float(), classes)
    with pytest.raises(ValueError, match="same items: 500 and 499"):
        binary_mutual_information_bits(labels, classes[:-1])
