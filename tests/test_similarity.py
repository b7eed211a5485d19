"""pretraining.analysis.similarity: linear CKA against the HSIC formula with explicit kernels, and its
known invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretraining.analysis.similarity import linear_cka


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA from its definition: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = x x^T, L = y y^T, H = I - 11^T/n."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_linear_cka_equals_the_hsic_definition_per_member():
    x, y = _rand(3, 40, 6), _rand(3, 40, 4, seed=1)
    y[1] = x[1, :, :4] + 0.1 * y[1]                      # one member more alike than the others
    got = linear_cka(x, y)
    want = [_hsic_cka(x[m].numpy(), y[m].numpy()) for m in range(3)]
    assert got.shape == (3,) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    assert got[1] > got[0] and got[1] > got[2]
    assert torch.all((got >= 0) & (got <= 1))


def test_linear_cka_invariances():
    x = _rand(50, 5)
    q, _ = torch.linalg.qr(_rand(5, 5, seed=2))
    assert linear_cka(x, x).item() == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 7.0).item() == pytest.approx(1.0)       # rotation, isotropic scale, shift
    y = _rand(50, 8, seed=3)
    assert linear_cka(x, y).item() == pytest.approx(linear_cka(y, x).item())  # symmetric
    assert linear_cka(x @ q, y).item() == pytest.approx(linear_cka(x, y).item())
    scale = torch.tensor([1.0, 1.0, 1.0, 1.0, 20.0], dtype=torch.float64)
    assert linear_cka(x, x * scale).item() < 0.99                             # not invariant to one unit's scale


def test_linear_cka_broadcasts_a_shared_input_and_refuses_bad_ones():
    x, y = _rand(40, 6), _rand(2, 40, 3, seed=4)
    torch.testing.assert_close(linear_cka(x, y), torch.stack([linear_cka(x, y[m])[0] for m in range(2)]))
    with pytest.raises(ValueError, match="same inputs"):
        linear_cka(x, _rand(2, 39, 3))
    with pytest.raises(ValueError, match="constant"):
        linear_cka(x, torch.ones(40, 3))
    with pytest.raises(ValueError, match=r"\(N, D\) or \(M, N, D\)"):
        linear_cka(torch.ones(4), x)
    with pytest.raises(TypeError, match="torch.Tensor"):
        linear_cka(x.numpy(), x)
