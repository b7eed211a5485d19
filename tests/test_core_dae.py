"""Denoising auto-encoder: gradcheck of the loss, masking noise, members, determinism, learning."""

from __future__ import annotations

import pytest
import torch

from pretraining.core.models import DenoisingAutoencoder
from pretraining.core.seeding import member_generators
from pretraining.core.train import DAEConfig, TrainingDiverged, corrupt, train_dae


def random_data(n=240, width=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, width, generator=g) * (torch.rand(width, generator=g) < 0.6)


@pytest.mark.parametrize("tied", [True, False])
def test_loss_gradcheck_float64(tied):
    dae = DenoisingAutoencoder.init(5, 3, [0, 1], tied=tied, dtype=torch.float64)
    params = [p.clone().requires_grad_() for p in dae.state_dict().values()]
    x = torch.rand(2, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    xc = x * (torch.rand(2, 4, 5, dtype=torch.float64) > 0.3)
    names = list(dae.state_dict())

    def f(*ps):
        return DenoisingAutoencoder.from_state_dict(dict(zip(names, ps))).loss(x, xc)

    assert torch.autograd.gradcheck(f, params)


def test_loss_is_the_summed_cross_entropy():
    dae = DenoisingAutoencoder.init(5, 3, [0], dtype=torch.float64)
    x = torch.rand(1, 4, 5, dtype=torch.float64)
    p = dae.decode(dae.encode(x))
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum(-1).mean(-1)
    torch.testing.assert_close(dae.loss(x, x), expected)
    torch.testing.assert_close(dae.reconstruction_error(x), (x - p).pow(2).mean(dim=(1, 2)))


def test_init_is_uniform_in_fan_in_bound():
    dae = DenoisingAutoencoder.init(400, 100, [0], tied=False)
    assert dae.W.abs().max() <= 400 ** -0.5 and dae.W.abs().max() > 0.9 * 400 ** -0.5
    assert dae.W_decoder.abs().max() <= 100 ** -0.5 and dae.W_decoder.abs().max() > 0.9 * 100 ** -0.5


def test_masking_noise_zeroes_the_requested_fraction():
    x = torch.ones(2, 1000, 100)
    xc = corrupt(x, 0.25, member_generators([0, 1], "noise"))
    frac = (xc == 0).float().mean(dim=(1, 2))
    assert torch.allclose(frac, torch.tensor([0.25, 0.25]), atol=0.01)
    assert not torch.equal(xc[0], xc[1])
    assert torch.equal(corrupt(x, 0.0, member_generators([0, 1], "noise")), x)


@pytest.mark.parametrize("tied", [True, False])
def test_batched_members_equal_seeds_trained_alone(tied):
    x, seeds = random_data(), [4, 8, 15]
    config = DAEConfig(epochs=2, lr=0.1, batch_size=40, noise=0.3, tied=tied, weight_decay=1e-3)
    batched = DenoisingAutoencoder.init(16, 6, seeds, tied=tied)
    hist = train_dae(batched, x, config, seeds, progress=False)
    for m, s in enumerate(seeds):
        alone = DenoisingAutoencoder.init(16, 6, [s], tied=tied)
        h1 = train_dae(alone, x, config, [s], progress=False)
        for name, t in alone.state_dict().items():
            torch.testing.assert_close(batched.state_dict()[name][m:m + 1], t, rtol=1e-5, atol=1e-6)
        assert h1["loss"][-1][0] == pytest.approx(hist["loss"][-1][m], rel=1e-5)
    assert not batched.W.requires_grad


def test_same_seeds_twice_are_bit_identical():
    runs = []
    for _ in range(2):
        dae = DenoisingAutoencoder.init(16, 6, [1, 2])
        train_dae(dae, random_data(), DAEConfig(epochs=2, lr=0.1, batch_size=40), [1, 2], progress=False)
        runs.append(dae)
    assert all(torch.equal(a, b) for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()))


def test_divergence_guard_names_layer_epoch_and_lr():
    dae = DenoisingAutoencoder.init(16, 6, [0])
    with pytest.raises(TrainingDiverged, match=r"DAE \(layer 2\) diverged at epoch 1 with lr=1e\+38"):
        train_dae(dae, random_data(), DAEConfig(epochs=2, lr=1e38, batch_size=40), [0], progress=False, layer=2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=1, lr=0.1, noise=1.0), "noise=1.0"), (dict(epochs=1, lr=0.1, noise=-0.1), "noise=-0.1"),
    (dict(epochs=-2, lr=0.1), "epochs=-2"), (dict(epochs=1, lr=0), "lr=0"),
    (dict(epochs=1, lr=0.1, batch_size=-5), "batch_size=-5"),
])
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DAEConfig(**kwargs)


def test_bad_arguments_raise():
    dae = DenoisingAutoencoder.init(16, 6, [0])
    with pytest.raises(ValueError, match="tied=False but the auto-encoder has tied=True"):
        train_dae(dae, random_data(), DAEConfig(epochs=1, lr=0.1, tied=False), [0], progress=False)
    with pytest.raises(ValueError, match="n_visible=0"):
        DenoisingAutoencoder.init(0, 6, [0])
    with pytest.raises(ValueError, match="seeds has length 2"):
        train_dae(dae, random_data(), DAEConfig(epochs=1, lr=0.1), [0, 1], progress=False)


def test_dae_learns_mnist_reconstruction_error_drops_every_epoch():
    data = pytest.importorskip("pretraining.core.data", reason="pretraining.core.data (the mnist-10k loader) is not written yet")
    x = data.load_dataset("mnist-10k").train.x[:2000]
    dae = DenoisingAutoencoder.init(784, 200, [0])
    before = float(dae.reconstruction_error(x[:1000])[0])
    hist = train_dae(dae, x, DAEConfig(epochs=3, lr=0.1, batch_size=20), [0], progress=False)
    errors = [before] + [e[0] for e in hist["recon_error"]]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0], errors
