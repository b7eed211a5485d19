"""RBM: exact values on a tiny RBM (enumeration), CD-k vs the exact gradient, members, learning."""

from __future__ import annotations

import itertools

import pytest
import torch

from pretraining.core.models import RBM
from pretraining.core.seeding import bernoulli, member_generators, permutations
from pretraining.core.train import RBMConfig, TrainingDiverged, cd_gradient, train_rbm

V, H = 6, 4


def all_states(n: int) -> torch.Tensor:
    """All 2^n binary vectors, (2^n, n) float64."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def energy(rbm: RBM, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """E(v, h) for every pair: v (A, V), h (C, H) -> (A, C), member 0."""
    W, bv, bh = rbm.W[0], rbm.b_visible[0], rbm.b_hidden[0]
    return -(v @ bv)[:, None] - (h @ bh)[None, :] - v @ W @ h.T


def log_partition(rbm: RBM) -> torch.Tensor:
    """log Z by enumerating all 2^(V+H) joint states."""
    return torch.logsumexp(-energy(rbm, all_states(rbm.n_visible), all_states(rbm.n_hidden)).flatten(), 0)


@pytest.fixture
def tiny() -> RBM:
    rbm = RBM.init(V, H, [11], dtype=torch.float64, init_std=1.5)
    g = torch.Generator().manual_seed(5)
    rbm.b_visible = 0.5 * torch.randn(1, V, generator=g, dtype=torch.float64)
    rbm.b_hidden = 0.5 * torch.randn(1, H, generator=g, dtype=torch.float64)
    return rbm


DATA = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 1], [1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 1, 1]],
                    dtype=torch.float64)


def test_free_energy_equals_brute_force_marginal(tiny):
    v = all_states(V)
    brute = -torch.logsumexp(-energy(tiny, v, all_states(H)), dim=1)
    torch.testing.assert_close(tiny.free_energy(v)[0], brute, rtol=1e-12, atol=1e-12)
    # and the partition function from free energies equals the joint enumeration
    torch.testing.assert_close(torch.logsumexp(-tiny.free_energy(v)[0], 0), log_partition(tiny))


def test_conditionals_are_the_exact_ones(tiny):
    v, h = all_states(V), all_states(H)
    logp = -energy(tiny, v, h)
    p_h_given_v = torch.softmax(logp, dim=1)  # (64, 16)
    torch.testing.assert_close(tiny.hidden_probs(v)[0], p_h_given_v @ h)
    p_v_given_h = torch.softmax(logp, dim=0)
    torch.testing.assert_close(tiny.visible_probs(h)[0], p_v_given_h.T @ v)


def test_cd_k_with_long_chains_matches_exact_log_likelihood_gradient(tiny):
    # exact gradient of the mean log-likelihood of DATA, by autograd through log Z (enumeration)
    params = [tiny.W.clone().requires_grad_(), tiny.b_visible.clone().requires_grad_(), tiny.b_hidden.clone().requires_grad_()]
    exact_rbm = RBM(*params)
    ll = -exact_rbm.free_energy(DATA)[0].mean() - torch.logsumexp(-exact_rbm.free_energy(all_states(V))[0], 0)
    exact = torch.autograd.grad(ll, params)
    # CD-k, k = 100, 20,000 chains started at the data (5,000 per example)
    v0 = DATA.repeat(5000, 1).unsqueeze(0)
    dW, dbv, dbh, _ = cd_gradient(tiny, v0, 100, member_generators([3], "noise", 1))
    # Monte Carlo std of each entry is below 0.5 / sqrt(20000) = 0.0035: allow 6 sigma
    for est, ref in zip((dW, dbv, dbh), exact):
        torch.testing.assert_close(est, ref, rtol=0, atol=0.02)
    # and the tolerance is tight enough to see that CD-1 is biased here (by about 0.15)
    dW1, *_ = cd_gradient(tiny, v0, 1, member_generators([3], "noise", 1))
    assert (dW1 - exact[0]).abs().max() > 0.05


def test_pseudo_log_likelihood_estimates_sum_of_exact_conditionals(tiny):
    v_all = all_states(V)
    logp_v = -tiny.free_energy(v_all)[0]  # unnormalised log p(v)
    x = DATA[1]
    index = lambda v: int(sum(int(b) << (V - 1 - i) for i, b in enumerate(v.tolist())))
    exact = 0.0
    for i in range(V):
        flipped = x.clone()
        flipped[i] = 1 - flipped[i]
        a, b = logp_v[index(x)], logp_v[index(flipped)]
        exact += float(a - torch.logaddexp(a, b))
    est = tiny.pseudo_log_likelihood(x.repeat(20000, 1).unsqueeze(0), member_generators([1], "eval", 1))
    assert est.shape == (1,)
    assert abs(float(est[0]) - exact) < 0.03 * abs(exact)


def test_gibbs_and_reconstruction_error_shapes(tiny):
    v = DATA.unsqueeze(0)
    s = tiny.gibbs(v, 3, member_generators([0], "noise"))
    assert s.shape == v.shape and set(s.unique().tolist()) <= {0.0, 1.0}
    err = tiny.reconstruction_error(v)
    assert err.shape == (1,) and 0 <= float(err[0]) <= 1


def random_data(n=300, width=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, width, generator=g) < torch.rand(width, generator=g)).float()


@pytest.mark.parametrize("persistent,k", [(False, 1), (True, 2)])
def test_batched_members_equal_seeds_trained_alone(persistent, k):
    x, seeds = random_data(), [3, 5, 3, 9]
    config = RBMConfig(epochs=2, lr=0.1, batch_size=50, k=k, persistent=persistent)
    batched = RBM.init(20, 8, seeds)
    hist = train_rbm(batched, x, config, seeds, progress=False)
    for m, s in enumerate(seeds):
        alone = RBM.init(20, 8, [s])
        h1 = train_rbm(alone, x, config, [s], progress=False)
        for name, t in alone.state_dict().items():
            torch.testing.assert_close(batched.state_dict()[name][m:m + 1], t, rtol=1e-5, atol=1e-6)
        assert h1["recon_error"][-1][0] == pytest.approx(hist["recon_error"][-1][m], rel=1e-5)
    assert not torch.equal(batched.W[0], batched.W[1])  # different seeds, different nets
    torch.testing.assert_close(batched.W[0], batched.W[2])  # same seed, same net


@pytest.mark.parametrize("weight_decay,persistent", [(2e-4, False), (0.0, True)])
def test_training_steps_follow_the_documented_momentum_update(weight_decay, persistent):
    # train_rbm writes the CD gradient straight into the velocity; replay its docstring's rule
    # step by step from cd_gradient with the same generators: vel <- mom vel + lr (grad - wd W)
    x, seeds, B = random_data(n=90), [4, 7], 30
    config = RBMConfig(epochs=1, lr=0.1, batch_size=B, momentum=0.6, weight_decay=weight_decay, k=2,
                       persistent=persistent)
    trained = RBM.init(20, 8, seeds)
    replay = RBM.init(20, 8, seeds)
    train_rbm(trained, x, config, seeds, progress=False)
    order, noise = member_generators(seeds, "order", 1), member_generators(seeds, "noise", 1)
    perm = permutations(90, order)
    params = [replay.W, replay.b_visible, replay.b_hidden]
    vel, chain = [torch.zeros_like(p) for p in params], None
    for start in range(0, 90, B):
        v0 = x[perm[:, start:start + B]]
        if persistent and chain is None:
            chain = bernoulli(v0, noise)
        dW, dbv, dbh, v_end = cd_gradient(replay, v0, config.k, noise, chain)
        chain = v_end if persistent else None
        for i, g in enumerate((dW - weight_decay * replay.W, dbv, dbh)):
            vel[i] = config.momentum * vel[i] + config.lr * g
            params[i] += vel[i]
    for name, p in zip(("W", "b_visible", "b_hidden"), params):
        torch.testing.assert_close(trained.state_dict()[name], p, rtol=1e-5, atol=1e-6)
    assert not torch.equal(trained.W, RBM.init(20, 8, seeds).W)  # it did train


def test_same_seeds_twice_are_bit_identical():
    x, seeds = random_data(), [1, 2]
    runs = []
    for _ in range(2):
        rbm = RBM.init(20, 8, seeds)
        train_rbm(rbm, x, RBMConfig(epochs=2, lr=0.1, batch_size=30), seeds, progress=False)
        runs.append(rbm)
    for name in ("W", "b_visible", "b_hidden"):
        assert torch.equal(runs[0].state_dict()[name], runs[1].state_dict()[name])


def test_divergence_guard_names_layer_epoch_and_lr():
    rbm = RBM.init(20, 8, [0])
    with pytest.raises(TrainingDiverged, match=r"layer 3\) diverged at epoch 1 with lr=1e\+30"):
        train_rbm(rbm, random_data(), RBMConfig(epochs=3, lr=1e30, batch_size=50), [0], progress=False, layer=3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0, lr=0.1), "epochs=0"), (dict(epochs=1, lr=-1.0), "lr=-1.0"), (dict(epochs=1, lr=0.0), "lr=0.0"),
    (dict(epochs=1, lr=0.1, batch_size=0), "batch_size=0"), (dict(epochs=1, lr=0.1, k=0), "k=0"),
    (dict(epochs=1, lr=0.1, momentum=1.5), "momentum=1.5"), (dict(epochs=1.5, lr=0.1), "epochs=1.5"),
    (dict(epochs=1, lr=float("nan")), "lr=nan"), (dict(epochs=1, lr=0.1, weight_decay=-1e-4), "weight_decay"),
])
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RBMConfig(**kwargs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="n_hidden=0"):
        RBM.init(20, 0, [0])
    with pytest.raises(ValueError, match="seeds contains -1"):
        RBM.init(20, 4, [-1])
    rbm = RBM.init(20, 4, [0, 1])
    cfg = RBMConfig(epochs=1, lr=0.1, batch_size=50)
    with pytest.raises(ValueError, match="seeds has length 1 but the model has 2 members"):
        train_rbm(rbm, random_data(), cfg, [0], progress=False)
    with pytest.raises(ValueError, match=r"x has shape \(300, 21\)"):
        train_rbm(rbm, random_data(width=21), cfg, [0, 1], progress=False)
    with pytest.raises(ValueError, match="batch_size=50 is larger than the number of examples N=10"):
        train_rbm(rbm, random_data(n=10), cfg, [0, 1], progress=False)
    with pytest.raises(TypeError, match="RBMConfig"):
        train_rbm(rbm, random_data(), {"epochs": 1}, [0, 1], progress=False)


def test_rbm_learns_mnist_reconstruction_error_drops_every_epoch():
    data = pytest.importorskip("pretraining.core.data", reason="pretraining.core.data (the mnist-10k loader) is not written yet")
    x = data.load_dataset("mnist-10k").train.x[:2000]
    rbm = RBM.init(784, 500, [0])
    before = float(rbm.reconstruction_error(x[:1000])[0])
    hist = train_rbm(rbm, x, RBMConfig(epochs=3, lr=0.1), [0], progress=False)
    errors = [before] + [e[0] for e in hist["recon_error"]]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0], errors
    assert hist["pll"][-1][0] > hist["pll"][0][0]


def test_the_per_epoch_monitor_sees_every_part_of_a_sorted_training_set():
    """mnist-10k is stored sorted by class: the monitor rows must span it, not take its first class."""
    from pretraining.core import train

    x = torch.arange(5000, dtype=torch.float32)[:, None].expand(5000, 3)  # row i holds the value i
    rows = train._eval_subset(x)[:, 0]
    assert rows.shape == (train.EVAL_EXAMPLES,) and rows[0] == 0 and rows[-1] == 4999
    assert torch.all(rows[1:] > rows[:-1])  # evenly through the set, no repeats
    classes = (rows // 500).long()  # ten "classes" of 500 sorted rows
    assert torch.bincount(classes, minlength=10).tolist() == [100] * 10
    small = torch.zeros(2, 30, 4)
    assert train._eval_subset(small).shape == (2, 30, 4)  # fewer rows than EVAL_EXAMPLES: all of them
