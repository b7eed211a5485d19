"""Greedy stacks, members, sampling, checkpoints and seeding."""

from __future__ import annotations

import pytest
import torch

from pretraining.core.models import RBM, Classifier, DenoisingAutoencoder, Stack
from pretraining.core.seeding import SEED_STRIDE, generator, member_generators, member_seeds, validate_seeds
from pretraining.core.train import DAEConfig, RBMConfig, pretrain_stack


def random_data(n=200, width=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, width, generator=g) < torch.rand(width, generator=g)).float()


CONFIGS = {"rbm": RBMConfig(epochs=2, lr=0.1, batch_size=40), "dae": DAEConfig(epochs=2, lr=0.1, batch_size=40)}


@pytest.mark.parametrize("kind", ["rbm", "dae"])
def test_batched_stack_equals_seeds_pretrained_alone(kind):
    x, seeds = random_data(), [2, 7, 1]
    stack, hists = pretrain_stack(kind, x, [10, 6], CONFIGS[kind], seeds, progress=False)
    assert stack.sizes == [16, 10, 6] and stack.kind == kind and len(hists) == 2
    for m, s in enumerate(seeds):
        alone, _ = pretrain_stack(kind, x, [10, 6], CONFIGS[kind], [s], progress=False)
        for (Wb, bb), (Wa, ba) in zip(stack.hidden_parameters(), alone.hidden_parameters()):
            torch.testing.assert_close(Wb[m:m + 1], Wa, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(bb[m:m + 1], ba, rtol=1e-5, atol=1e-6)
    # the second layer was trained on the first layer's codes of the same member
    codes = stack.encode(x, upto=1)
    assert codes.shape == (3, 200, 10)
    torch.testing.assert_close(stack.encode(x), stack._code(stack.layers[1], codes))


def test_upper_layers_have_their_own_initialisation_stream():
    a = RBM.init(10, 10, [0], layer=1)
    b = RBM.init(10, 10, [0], layer=2)
    assert not torch.equal(a.W, b.W)


def test_dbn_sample_shape_range_and_determinism():
    stack, _ = pretrain_stack("rbm", random_data(), [10, 6], CONFIGS["rbm"], [0, 1], progress=False)
    s1 = stack.sample(5, 10, [3, 4])
    s2 = stack.sample(5, 10, [3, 4])
    assert s1.shape == (2, 5, 16) and ((s1 >= 0) & (s1 <= 1)).all()
    assert torch.equal(s1, s2)
    dae_stack, _ = pretrain_stack("dae", random_data(), [10], CONFIGS["dae"], [0], progress=False)
    with pytest.raises(ValueError, match="needs an RBM stack"):
        dae_stack.sample(5, 10, [0])


def test_repeat_and_from_stack():
    stack, _ = pretrain_stack("rbm", random_data(), [10, 6], CONFIGS["rbm"], [0], progress=False)
    many = stack.repeat(4)
    assert many.n_members == 4 and all(torch.equal(L.W[3], stack.layers[i].W[0]) for i, L in enumerate(many.layers))
    clf = Classifier.from_stack(many, 3, [0, 1, 2, 3])
    assert clf.sizes == [16, 10, 6, 3] and clf.n_members == 4
    assert torch.equal(clf.weights[0][2], stack.layers[0].W[0])
    clf.weights[0].add_(1.0)  # cloned, not shared
    assert not torch.equal(clf.weights[0][2], stack.layers[0].W[0])
    assert not torch.equal(clf.weights[-1][0], clf.weights[-1][1])  # own softmax init per seed
    with pytest.raises(ValueError, match="seeds has length 2 but the model has 4 members"):
        Classifier.from_stack(many, 3, [0, 1])


def _models():
    yield RBM.init(8, 5, [0, 1])
    yield DenoisingAutoencoder.init(8, 5, [0], tied=True)
    yield DenoisingAutoencoder.init(8, 5, [0, 2], tied=False)
    yield Stack("dae", [DenoisingAutoencoder.init(8, 5, [0]), DenoisingAutoencoder.init(5, 4, [0], layer=2)])
    yield Classifier.random([8, 5, 4, 3], [0, 1, 2], dtype=torch.float64)


@pytest.mark.parametrize("model", list(_models()), ids=lambda m: type(m).__name__)
def test_state_dict_round_trip(model):
    """What the artifact cache stores (a state dict) gives the same model back."""
    d = model.state_dict()
    loaded = Stack.from_state_dict(d, model.kind) if isinstance(model, Stack) else type(model).from_state_dict(d)
    b = loaded.state_dict()
    assert d.keys() == b.keys() and all(torch.equal(d[k], b[k]) and d[k].dtype == b[k].dtype for k in d)


def test_seeding_derivation_is_stable_and_separates_purposes():
    def first(g):
        return float(torch.rand(1, generator=g))

    assert first(generator(0, 0, 1)) == first(generator(0, 0, 1))
    values = {first(g) for s in range(3) for p in ("init", "order", "noise") for L in range(3)
              for g in member_generators([s], p, L)}
    assert len(values) == 27
    g1, g2 = member_generators([5, 5], "order", 2)
    assert torch.equal(torch.randperm(10, generator=g1), torch.randperm(10, generator=g2))
    # the documented derivation: member m's generator for (purpose, layer) is generator(seed, PURPOSES[purpose], layer)
    assert first(member_generators([7], "noise", 3)[0]) == first(generator(7, 2, 3))
    with pytest.raises(ValueError, match="purpose='bogus'"):
        member_generators([0], "bogus")
    with pytest.raises(ValueError, match="entropy=-1 is not allowed"):
        generator(-1)
    with pytest.raises(TypeError, match="sequence of ints"):
        validate_seeds(7)
    with pytest.raises(ValueError, match="seeds contains 1.5"):
        validate_seeds([1.5])


def test_pretrain_stack_bad_parameters_raise_before_training():
    x = random_data()
    with pytest.raises(ValueError, match="kind='vae'"):
        pretrain_stack("vae", x, [5], CONFIGS["rbm"], [0], progress=False)
    with pytest.raises(TypeError, match="must be a RBMConfig"):
        pretrain_stack("rbm", x, [5], CONFIGS["dae"], [0], progress=False)
    with pytest.raises(ValueError, match=r"hidden_sizes=\[5, 0\]"):
        pretrain_stack("rbm", x, [5, 0], CONFIGS["rbm"], [0], progress=False)
    with pytest.raises(ValueError, match=r"hidden_sizes=\[\]"):
        pretrain_stack("rbm", x, [], CONFIGS["rbm"], [0], progress=False)
    with pytest.raises(ValueError, match="batch_size=40 is larger than the number of examples N=10"):
        pretrain_stack("dae", x[:10], [5], CONFIGS["dae"], [0], progress=False)
    with pytest.raises(ValueError, match="upto=3"):
        Stack("rbm", [RBM.init(16, 5, [0])]).encode(x, upto=3)
    with pytest.raises(ValueError, match="stack layers disagree"):
        Stack("rbm", [RBM.init(16, 5, [0]), RBM.init(6, 5, [0])])


def test_the_one_seed_rule():
    assert member_seeds(0, 3) == [0, 1, 2]
    assert member_seeds(2, 2, first=5) == [2 * SEED_STRIDE + 5, 2 * SEED_STRIDE + 6]
    # distinct chapter seeds never share a network
    assert not set(member_seeds(0, SEED_STRIDE)) & set(member_seeds(1, SEED_STRIDE))
    with pytest.raises(ValueError, match=f"n={SEED_STRIDE + 1} is not allowed; it must be an int in 1..{SEED_STRIDE}"):
        member_seeds(0, SEED_STRIDE + 1)
    with pytest.raises(ValueError, match="seed=-1 is not allowed"):
        member_seeds(-1, 2)
