"""Tests of pretraining.analysis.ais: exact partition functions, AIS, RAISE, log-likelihood.

Timing (measured once, 2 shared CPU cores, float32): AIS on a 784 x 500 RBM, 1 member,
100 chains, 1,000 temperatures: 2.4 s. The RAISE tests run on one thread (fixture ``one_thread``):
their tensors are tiny, and two OpenMP threads on two shared cores made them up to 18 times slower.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pretraining.analysis.ais import (
    AISResult,
    RAISEResult,
    ais_log_partition,
    base_rate_visible_bias,
    beta_schedule,
    free_energy,
    log_likelihood,
    log_partition_exact,
    raise_log_likelihood,
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
        (lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.full((4, 8), 0.3)), "binary"),
        (lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(4, 9)), "v must have shape \\(N, 8\\)"),
        (lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(8)), "v must have shape"),
        (lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(0, 8)), "N >= 1"),
        (lambda W, bv, bh: raise_log_likelihood(W, bv, bh, [[0.0] * 8]), "v must be a torch.Tensor"),
        (lambda W, bv, bh: raise_log_likelihood(W[0], bv, bh, torch.zeros(4, 8)), "W must have shape"),
        (
            lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(4, 8), n_chains=0),
            "n_chains=0 is not allowed; it must be an int >= 1",
        ),
        (
            lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(4, 8), n_betas=10, betas=[0.0, 1.0]),
            "not both",
        ),
        (lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(4, 8), n_betas=3), "n_betas=3 is not allowed"),
        (lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(4, 8), betas=[0.0, 0.9]), "to exactly 1.0"),
        (
            lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(4, 8), chunk_size=0),
            "chunk_size=0 is not allowed",
        ),
        (lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(4, 8), seed="1"), "seed must be an int"),
        (
            lambda W, bv, bh: raise_log_likelihood(W, bv, bh, torch.zeros(4, 8), base_visible_bias=torch.zeros(2, 8)),
            "base_visible_bias must have shape",
        ),
    ],
)
def test_bad_arguments_raise_clear_errors(call, match):
    W, bv, bh = random_rbm()
    with pytest.raises((ValueError, TypeError), match=match):
        call(W, bv, bh)


# --------------------------------------------------------------------------------------------
# RAISE
# --------------------------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Run on one thread: the RAISE tests' tensors are tiny and OpenMP overhead dominates."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def all_states(n: int) -> torch.Tensor:
    """The 2^n binary vectors, (2^n, n) float64, in itertools.product order."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def exact_log_p(W, bv, bh, v):
    """Exact log p(v) of every row of v under every member, (M, N) float64."""
    return -free_energy(W.double(), bv.double(), bh.double(), v) - log_partition_exact(W, bv, bh)[:, None]


def gibbs_sweep_matrix(W, bv, bh, base, beta):
    """The v -> v' transition matrix (2^V, 2^V) of one Gibbs sweep h | v, v' | h of p_beta, one member.

    W (V, H), bv (V,), bh (H,), base (V,): p_beta(v, h) ∝ exp((1-β) base·v + β (bv·v + bh·h + vWh)).
    """
    V, H = W.shape
    vs, hs = all_states(V), all_states(H)
    logsig = torch.nn.functional.logsigmoid
    a = beta * (vs @ W + bh)  # (2^V, H) hidden inputs
    p_h = torch.exp(logsig(a) @ hs.T + logsig(-a) @ (1 - hs).T)  # (2^V, 2^H) p(h | v)
    c = (1 - beta) * base + beta * (hs @ W.T + bv)  # (2^H, V) visible inputs
    p_v = torch.exp(logsig(c) @ vs.T + logsig(-c) @ (1 - vs).T)  # (2^H, 2^V) p(v' | h)
    return p_h @ p_v


def annealing_model_marginal(W, bv, bh, base, betas):
    """q(v) of the forward annealing model x_0 ~ p_0, x_k ~ T_k(. | x_{k-1}), k = 1..K: (M, 2^V).

    Exact, by enumeration; ``betas`` a list 0 = β_0 < ... < β_K = 1.
    """
    W, bv, bh, base = W.double(), bv.double(), bh.double(), base.double()
    vs = all_states(W.shape[1])
    logsig = torch.nn.functional.logsigmoid
    out = []
    for m in range(W.shape[0]):
        q = torch.exp(vs @ logsig(base) + (1 - vs) @ logsig(-base))  # p_0, independent pixels
        for beta in betas[1:]:
            q = q @ gibbs_sweep_matrix(W[m], bv[m], bh[m], base, beta)
        out.append(q)
    return torch.stack(out)


def test_annealing_model_helper_ends_at_the_rbm_for_a_fine_schedule():
    # the test's own reference: sweep matrices are stochastic and q -> p as the schedule refines
    W, bv, bh = random_rbm(M=1, V=5, H=3, seed=4)
    base = torch.zeros(5)
    T = gibbs_sweep_matrix(W[0].double(), bv[0].double(), bh[0].double(), base.double(), 0.7)
    torch.testing.assert_close(T.sum(1), torch.ones(32, dtype=torch.float64), rtol=0, atol=1e-12)
    q = annealing_model_marginal(W, bv, bh, base, beta_schedule(200).tolist())
    p = exact_log_p(W, bv, bh, all_states(5)).exp()
    assert (q - p).abs().max() < 1e-3


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("betas", [(0.0, 0.5, 1.0), (0.0, 0.3, 0.8, 1.0)])
def test_raise_weights_are_unbiased_for_the_annealing_model(betas):
    # E[ŵ(v)] = q(v), the annealing model's marginal computed exactly from its sweep matrices;
    # this pins down which β every reverse sweep uses
    W, bv, bh = random_rbm(M=2, V=4, H=3, scale=2.0, seed=5)
    W, bv, bh = W.double(), bv.double(), bh.double()
    base = torch.tensor([0.4, -0.3, 0.8, -0.6], dtype=torch.float64)
    v = all_states(4)
    n = 20000
    result = raise_log_likelihood(W, bv, bh, v, n_chains=n, betas=list(betas), base_visible_bias=base, seed=1)
    assert result.log_weights.shape == (2, 16, n) and result.log_weights.dtype == torch.float64
    w = result.log_weights.exp()
    mean, se = w.mean(2), w.std(2) / math.sqrt(n)  # (M, 16)
    q = annealing_model_marginal(W, bv, bh, base, list(betas))
    torch.testing.assert_close(q.sum(1), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    assert ((mean - q).abs() < 4 * se).all(), ((mean - q) / se)
    # the test has power: the estimates are far from the RBM's p(v) and from the annealing model
    # that makes no sweep at β = 1 (the bookkeeping of ais_log_partition's forward chain)
    p = exact_log_p(W, bv, bh, v).exp()
    no_last_sweep = annealing_model_marginal(W, bv, bh, base, list(betas[:-1]))
    assert ((mean - p).abs() / se).max() > 10
    assert ((mean - no_last_sweep).abs() / se).max() > 10


@pytest.mark.usefixtures("one_thread")
def test_raise_matches_exact_log_likelihood_with_a_fine_schedule():
    W, bv, bh = random_rbm(M=2, V=8, H=5, seed=0)
    v = all_states(8)[::16].float()  # 16 vectors
    base = base_rate_visible_bias(v)
    result = raise_log_likelihood(W, bv, bh, v, n_chains=50, n_betas=3000, base_visible_bias=base, seed=0)
    assert isinstance(result, RAISEResult)
    assert result.log_likelihood.shape == (2, 16) and result.log_likelihood.dtype == torch.float64
    assert result.betas.shape == (3000,)
    exact = exact_log_p(W, bv, bh, v)  # (2, 16)
    err = result.log_likelihood - exact
    assert err.abs().max() < 0.1, err
    assert err.mean().abs() < 0.03
    torch.testing.assert_close(result.mean, result.log_likelihood.mean(1))
    assert (result.mean - exact.mean(1)).abs().max() < 0.03


@pytest.mark.usefixtures("one_thread")
def test_raise_is_conservative_with_a_coarse_schedule_and_strong_weights():
    # test data drawn from the model itself: then E[log q(v)] <= E[log p(v)] (Gibbs' inequality),
    # and log(mean ŵ) <= log q(v) in expectation (Jensen), so a coarse RAISE errs low
    W, bv, bh = random_rbm(M=2, V=8, H=5, scale=3.0, seed=2)
    betas = torch.linspace(0.0, 1.0, 4, dtype=torch.float64)
    states = all_states(8)
    log_p = exact_log_p(W, bv, bh, states)  # (2, 256)
    q = annealing_model_marginal(W, bv, bh, torch.zeros(8), betas.tolist())
    gibbs_gap = (log_p.exp() * (q.log() - log_p)).sum(1)  # -KL(p || q) per member
    assert (gibbs_gap < -0.2).all(), gibbs_gap
    g = torch.Generator().manual_seed(10)
    for m in range(2):
        idx = torch.multinomial(log_p[m].exp(), 1000, replacement=True, generator=g)
        one = (W[m : m + 1], bv[m : m + 1], bh[m : m + 1])
        result = raise_log_likelihood(*one, states[idx].float(), n_chains=300, betas=betas, seed=m)
        diff = result.log_likelihood[0] - log_p[m, idx]  # (1000,) RAISE - exact, per vector
        se = diff.std() / math.sqrt(diff.numel())
        assert diff.mean() < -0.3 and diff.mean() + 4 * se < 0, (diff.mean(), se)
        assert result.mean[0] < log_p[m, idx].mean() - 0.3


@pytest.mark.usefixtures("one_thread")
def test_raise_is_exact_for_a_zero_weight_rbm_whose_visible_biases_are_the_base_model():
    # W = 0, b_visible = base bias: every reverse chain's weight is p(v) exactly
    W = torch.zeros(2, 6, 4)
    bv = torch.randn(2, 6, generator=torch.Generator().manual_seed(0))
    bh = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    v = all_states(6)[::5].float()
    result = raise_log_likelihood(W, bv, bh, v, n_chains=3, n_betas=20, base_visible_bias=bv)
    expected = exact_log_p(W, bv, bh, v)
    torch.testing.assert_close(result.log_likelihood, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(result.log_weights, expected[:, :, None].expand(2, v.shape[0], 3), rtol=0, atol=1e-5)


@pytest.mark.usefixtures("one_thread")
def test_raise_batched_members_equal_each_member_alone_and_seeds_reproduce():
    W, bv, bh = random_rbm(M=3, V=8, H=5, scale=1.5, seed=6)
    W, bv, bh = W.double(), bv.double(), bh.double()
    v = all_states(8)[::37]  # 7 vectors, float64
    kw = dict(n_chains=4, n_betas=30, seed=3, chunk_size=9)  # 2 vectors (8 chains) per pass
    batched = raise_log_likelihood(W, bv, bh, v, **kw)
    assert batched.log_weights.shape == (3, 7, 4) and batched.log_likelihood.shape == (3, 7)
    for m in range(3):
        # the same chains (the members share the uniforms); a batched and a single product may
        # round differently in the last bit (about 4e-15 here), while one different Bernoulli
        # draw would change a log-weight by order 1
        alone = raise_log_likelihood(W[m : m + 1], bv[m : m + 1], bh[m : m + 1], v, **kw)
        torch.testing.assert_close(alone.log_weights[0], batched.log_weights[m], rtol=0, atol=1e-12)
        torch.testing.assert_close(alone.log_likelihood[0], batched.log_likelihood[m], rtol=0, atol=1e-12)
    again = raise_log_likelihood(W, bv, bh, v.bool(), **kw)  # any binary dtype
    assert torch.equal(again.log_weights, batched.log_weights)
    other = raise_log_likelihood(W, bv, bh, v, **{**kw, "seed": 4})
    assert not torch.equal(other.log_weights, batched.log_weights)
    lw = batched.log_weights
    torch.testing.assert_close(batched.log_likelihood, torch.logsumexp(lw, 2) - math.log(4), rtol=0, atol=1e-12)
    torch.testing.assert_close(batched.std_error, batched.log_likelihood.std(1) / math.sqrt(7), rtol=0, atol=1e-12)
    single = raise_log_likelihood(W, bv, bh, v[:1], n_chains=1, n_betas=10)
    assert single.log_weights.shape == (3, 1, 1) and torch.isnan(single.std_error).all()
