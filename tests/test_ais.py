"""Tests of pretraining.analysis.ais: exact partition functions, AIS, log-likelihood.

Timing (measured once, 2 shared CPU cores, float32): AIS on a 784 x 500 RBM, 1 member,
100 chains, 1,000 temperatures: 2.4 s.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pretraining.analysis.ais import (
    AISResult,
    ais_log_partition,
    base_rate_visible_bias,
    beta_schedule,
    free_energy,
    log_likelihood,
    log_partition_exact,
)


def random_rbm(M: int = 3, V: int = 8, H: int = 5, scale: float = 1.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(M, V, H, generator=g) * scale
    bv = torch.randn(M, V, generator=g) * 0.5
    bh = torch.randn(M, H, generator=g) * 0.5
    return W, bv, bh


def brute_force_log_z(W, bv, bh):
    """log Z by summing exp(-E(v, h)) over every joint state of both layers, float64."""
    M, V, H = W.shape
    vs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=V)), dtype=torch.float64)
    hs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=H)), dtype=torch.float64)
    out = []
    for m in range(M):
        Wm, bvm, bhm = W[m].double(), bv[m].double(), bh[m].double()
        neg_energy = vs @ Wm @ hs.T + (vs @ bvm)[:, None] + (hs @ bhm)[None, :]
        out.append(torch.logsumexp(neg_energy.flatten(), 0))
    return torch.stack(out)


def test_exact_log_z_matches_brute_force_over_both_layers():
    W, bv, bh = random_rbm()
    expected = brute_force_log_z(W, bv, bh)
    for layer in ("auto", "visible", "hidden"):
        got = log_partition_exact(W, bv, bh, layer=layer)
        assert got.dtype == torch.float64 and got.shape == (3,)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)


def test_exact_log_z_batched_equals_per_member():
    W, bv, bh = random_rbm(M=4, V=6, H=9)
    batched = log_partition_exact(W, bv, bh)
    single = torch.cat([log_partition_exact(W[m : m + 1], bv[m : m + 1], bh[m : m + 1]) for m in range(4)])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-10)


def test_exact_log_z_of_a_zero_weight_rbm_is_analytic():
    W = torch.zeros(2, 7, 4)
    bv = torch.randn(2, 7)
    bh = torch.randn(2, 4)
    expected = torch.nn.functional.softplus(bv.double()).sum(1) + torch.nn.functional.softplus(bh.double()).sum(1)
    torch.testing.assert_close(log_partition_exact(W, bv, bh), expected, rtol=0, atol=1e-10)


def test_ais_matches_exact_on_tiny_rbms():
    W, bv, bh = random_rbm()
    exact = log_partition_exact(W, bv, bh)
    result = ais_log_partition(W, bv, bh, n_chains=200, n_betas=1000, seed=0)
    assert isinstance(result, AISResult)
    assert result.log_z.shape == (3,) and result.log_weights.shape == (3, 200)
    assert (result.log_z - exact).abs().max() < 0.05
    assert (result.log_z_std_error > 0).all() and (result.log_z_std_error < 0.05).all()
    lower, upper = result.bounds(3.0)
    assert (lower < result.log_z).all() and (result.log_z < upper).all()


def test_ais_with_data_base_rate_on_a_wide_visible_layer():
    # 100 visible x 10 hidden: exact by enumerating the hidden layer, AIS from a base-rate model
    W, bv, bh = random_rbm(M=2, V=100, H=10, scale=0.3, seed=3)
    g = torch.Generator().manual_seed(1)
    data = [(torch.rand(500, 100, generator=g) < torch.sigmoid(bv[m])).float() for m in range(2)]
    base = torch.stack([base_rate_visible_bias(d) for d in data])  # one base-rate model per member
    assert base.shape == (2, 100)
    exact = log_partition_exact(W, bv, bh)
    result = ais_log_partition(W, bv, bh, n_chains=100, n_betas=1000, base_visible_bias=base)
    assert (result.log_z - exact).abs().max() < 0.1
    assert ((result.log_z - exact).abs() < 4 * result.log_z_std_error).all()


def test_ais_is_exact_when_the_target_is_the_base_model_shifted_only_in_hidden_biases():
    # W = 0 and b_visible = base bias: every importance weight equals Z_B / Z_A exactly
    W = torch.zeros(2, 6, 4)
    bv = torch.randn(2, 6)
    bh = torch.randn(2, 4)
    result = ais_log_partition(W, bv, bh, n_chains=10, n_betas=50, base_visible_bias=bv)
    torch.testing.assert_close(result.log_z, log_partition_exact(W, bv, bh), rtol=0, atol=1e-5)
    assert result.log_z_std_error.abs().max() < 1e-6


def test_ais_is_deterministic_for_a_seed_and_varies_with_it():
    W, bv, bh = random_rbm()
    a = ais_log_partition(W, bv, bh, n_chains=20, n_betas=200, seed=5)
    b = ais_log_partition(W, bv, bh, n_chains=20, n_betas=200, seed=5)
    c = ais_log_partition(W, bv, bh, n_chains=20, n_betas=200, seed=6)
    assert torch.equal(a.log_weights, b.log_weights) and torch.equal(a.log_z, b.log_z)
    assert not torch.equal(a.log_weights, c.log_weights)


def test_ais_accepts_an_explicit_schedule():
    W, bv, bh = random_rbm(M=1)
    betas = torch.linspace(0, 1, 300, dtype=torch.float64)
    result = ais_log_partition(W, bv, bh, n_chains=50, betas=betas)
    assert torch.equal(result.betas, betas)
    assert abs(float(result.log_z[0] - log_partition_exact(W, bv, bh)[0])) < 0.1


def test_beta_schedule_shape_and_ends():
    b = beta_schedule(14500)
    assert b.shape == (14500,) and b[0] == 0 and b[-1] == 1
    assert (b[1:] > b[:-1]).all()
    assert int((b <= 0.5).sum()) == 501  # 500 intervals below 0.5, as in the paper
    assert beta_schedule(10).shape == (10,)


def test_log_likelihood_sums_to_one_over_all_states():
    W, bv, bh = random_rbm(M=2, V=6, H=4)
    log_z = log_partition_exact(W, bv, bh)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)))
    per_state = -free_energy(W, bv, bh, states) - log_z[:, None]  # (M, 64) log p(v)
    torch.testing.assert_close(torch.logsumexp(per_state, 1), torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-6)
    mean_ll = log_likelihood(W, bv, bh, states[:10], log_z)
    torch.testing.assert_close(mean_ll, per_state[:, :10].mean(1), rtol=0, atol=1e-12)


def test_free_energy_chunking_does_not_change_the_result():
    W, bv, bh = random_rbm(M=2, V=8, H=5)
    v = (torch.rand(37, 8, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    # the products run in float32, whose kernels may block a 5-row and a 37-row product differently
    # (on an AMD EPYC machine they differ by about 1e-7): equal up to float32 rounding
    torch.testing.assert_close(free_energy(W, bv, bh, v, chunk_size=5), free_energy(W, bv, bh, v), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda W, bv, bh: log_partition_exact(W[0], bv, bh), "W must have shape"),
        (lambda W, bv, bh: log_partition_exact(W, bv[:, :3], bh), "b_visible must have shape"),
        (lambda W, bv, bh: log_partition_exact(W, bv, bh[:2]), "b_hidden must have shape"),
        (lambda W, bv, bh: log_partition_exact(W.numpy(), bv, bh), "W must be a torch.Tensor"),
        (lambda W, bv, bh: log_partition_exact(W.long(), bv, bh), "floating-point"),
        (lambda W, bv, bh: log_partition_exact(W * math.nan, bv, bh), "NaN"),
        (lambda W, bv, bh: log_partition_exact(W, bv, bh, layer="both"), "layer='both'"),
        (lambda W, bv, bh: log_partition_exact(torch.zeros(1, 21, 22), torch.zeros(1, 21), torch.zeros(1, 22)), "2\\^21"),
        (lambda W, bv, bh: ais_log_partition(W, bv, bh, n_chains=1), "n_chains=1 is not allowed; it must be an int >= 2"),
        (lambda W, bv, bh: ais_log_partition(W, bv, bh, n_chains=2.5), "n_chains=2.5 is not allowed"),
        (lambda W, bv, bh: ais_log_partition(W, bv, bh, n_betas=2), "n_betas=2 is not allowed; it must be an int >= 4"),
        (lambda W, bv, bh: ais_log_partition(W, bv, bh, n_betas=10, betas=[0.0, 1.0]), "not both"),
        (lambda W, bv, bh: ais_log_partition(W, bv, bh, betas=[0.0, 0.7, 0.5, 1.0]), "increase strictly"),
        (lambda W, bv, bh: ais_log_partition(W, bv, bh, betas=[0.1, 1.0]), "from exactly 0.0"),
        (lambda W, bv, bh: ais_log_partition(W, bv, bh, base_visible_bias=torch.zeros(7)), "base_visible_bias must have shape"),
        (lambda W, bv, bh: ais_log_partition(W, bv, bh, seed=1.0), "seed must be an int"),
        (lambda W, bv, bh: log_likelihood(W, bv, bh, torch.full((4, 8), 0.3), torch.zeros(3)), "binary"),
        (lambda W, bv, bh: log_likelihood(W, bv, bh, torch.zeros(4, 9), torch.zeros(3)), "v must have shape"),
        (lambda W, bv, bh: log_likelihood(W, bv, bh, torch.zeros(4, 8), torch.zeros(2)), "log_z must have shape"),
        (lambda W, bv, bh: base_rate_visible_bias(torch.full((4, 8), 2.0)), "values in \\[0, 1\\]"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, match):
    W, bv, bh = random_rbm()
    with pytest.raises((ValueError, TypeError), match=match):
        call(W, bv, bh)
