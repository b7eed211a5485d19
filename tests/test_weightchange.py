"""Chapter 2's tools: weight-change statistics, layer resets, softmax-only training, input-plane maps."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pretraining.models import Classifier  # noqa: E402
from pretraining.train import FinetuneConfig, evaluate, finetune  # noqa: E402
from pretraining.weightchange import (  # noqa: E402
    LayerChange, assess, cached_run, decision_map, finetune_tracked, gain_lost, input_plane, layer_reset_errors,
    plot_change_over_epochs, plot_decision_maps, plot_layer_change, plot_receptive_field_change,
    plot_test_errors, relative_change, reset_layers, sign_flip_fraction, train_softmax_on_features,
    unit_cosine, weight_change,
)

SIZES = [16, 6, 5, 3]


def toy(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, SIZES[0], generator=g)
    return x, x[:, :3].argmax(1).long()


# ------------------------------------------------------------------------------- statistics
def test_relative_change_exact_and_per_member():
    before = torch.tensor([[[3.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]])  # norms 5 and 2
    after = before.clone()
    after[0, 0, 0] += 0.5        # member 0: 0.5 / 5
    after[1] *= 1.5              # member 1: 0.5 * 2 / 2
    assert torch.allclose(relative_change(before, after), torch.tensor([0.1, 0.5]))
    assert torch.equal(relative_change(before, before), torch.zeros(2))


def test_unit_cosine_exact():
    before = torch.tensor([[[1.0, 1.0, 1.0, 2.0], [0.0, 2.0, 0.0, 0.0]]])  # (1, 2 inputs, 4 units)
    after = torch.tensor([[[3.0, -1.0, 0.0, 0.0], [0.0, -2.0, 5.0, 0.0]]])
    # unit 0 scaled (cos 1), unit 1 negated (-1), unit 2 orthogonal (0), unit 3 becomes zero (0 by definition)
    assert torch.allclose(unit_cosine(before, after), torch.tensor([[1.0, -1.0, 0.0, 0.0]]))


def test_sign_flip_fraction_exact():
    before = torch.tensor([[1.0, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    after = torch.tensor([[1.0, 1.0, -2.0, 3.0], [1.0, 0.0, 1.0, -1.0]])
    # member 0: two flips (zero start is not a flip); member 1: one flip (becoming zero is not)
    assert torch.allclose(sign_flip_fraction(before, after), torch.tensor([0.5, 0.25]))


def test_weight_change_shapes_and_records():
    g = torch.Generator().manual_seed(1)
    before = [torch.randn(3, 4, 5, generator=g), torch.randn(3, 5, 2, generator=g)]
    after = [before[0].clone(), -before[1]]
    ch = weight_change(before, after)
    assert ch.relative_change.shape == (2, 3)
    assert torch.equal(ch.relative_change[0], torch.zeros(3))
    assert torch.allclose(ch.relative_change[1], torch.full((3,), 2.0))
    assert torch.allclose(ch.mean_cosine, torch.tensor([[1.0] * 3, [-1.0] * 3]))
    assert torch.allclose(ch.sign_flip_fraction, torch.tensor([[0.0] * 3, [1.0] * 3]))
    recs = ch.records(["1", "out"])
    assert recs[1]["layer"] == "out" and recs[1]["relative_change"] == pytest.approx(2.0)
    assert recs[0]["mean_cosine_std"] == pytest.approx(0.0, abs=1e-6)
    one = LayerChange(torch.tensor([[0.2]]), torch.tensor([[0.9]]), torch.tensor([[0.0]]))
    assert one.records([1])[0]["relative_change_std"] == 0.0  # one member: no spread


def test_statistics_reject_bad_input():
    w = torch.ones(2, 3, 4)
    with pytest.raises(ValueError, match="same shape"):
        relative_change(w, torch.ones(2, 3, 5))
    with pytest.raises(ValueError, match="all zero"):
        relative_change(torch.zeros(2, 3, 4), w)
    with pytest.raises(TypeError, match="torch.Tensors"):
        sign_flip_fraction(w.numpy(), w)
    with pytest.raises(ValueError, match=r"\(M, n_in, n_out\)"):
        unit_cosine(torch.ones(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="equally many layers"):
        weight_change([w], [w, w])
    with pytest.raises(ValueError, match="names for"):
        weight_change([w], [w]).records([1, 2])


# ------------------------------------------------------------------------------- resets
def test_reset_layers_replaces_exactly_the_named_layers():
    a = Classifier.random(SIZES, [0, 1])
    b = Classifier.random(SIZES, [5, 6])
    a_copy = a.clone()
    r = reset_layers(a, b, [1])
    for i in range(len(SIZES) - 1):
        src = b if i == 1 else a
        assert torch.equal(r.weights[i], src.weights[i]) and torch.equal(r.biases[i], src.biases[i])
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), a_copy.parameters()))  # a untouched
    r.weights[1].add_(1.0)
    assert not torch.equal(r.weights[1], b.weights[1])  # a copy, not b's tensor
    with pytest.raises(ValueError, match="layers="):
        reset_layers(a, b, [3 + 1])
    with pytest.raises(ValueError, match="differ in shape"):
        reset_layers(a, Classifier.random([16, 6, 3], [0, 1]), [0])


def test_layer_reset_errors_shape_and_identity():
    x, y = toy()
    a = Classifier.random(SIZES, [0, 1])
    errs = layer_reset_errors(a, a.clone(), x, y)
    assert errs.shape == (2, 2)
    assert torch.equal(errs, evaluate(a, x, y).error.expand(2, -1))
    b = Classifier.random(SIZES, [7, 8])
    assert torch.equal(layer_reset_errors(a, b, x, y)[0], evaluate(reset_layers(a, b, [0]), x, y).error)


def test_gain_lost_exact_and_nan_without_gain():
    out = gain_lost(torch.tensor([0.10, 0.05]), torch.tensor([0.06, 0.05]), torch.tensor([0.08, 0.07]))
    assert out[0].item() == pytest.approx(0.5)
    assert math.isnan(out[1].item())


# ------------------------------------------------------------------------------- training
def test_softmax_on_features_equals_finetune_of_the_top_layer():
    x, y = toy()
    clf = Classifier.random(SIZES, [0, 1], dtype=torch.float64)
    config = FinetuneConfig(epochs=2, lr=0.3, batch_size=10)
    ref = clf.clone()
    h_ref = finetune(ref, x.double(), y, config, [0, 1], train_layers=[ref.depth], progress=False)
    before = clf.clone()
    out, h = train_softmax_on_features(clf, x.double(), y, config, [0, 1], progress=False)
    for p, q in zip(out.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-12)
    assert torch.allclose(torch.tensor(h["train_nll"]), torch.tensor(h_ref["train_nll"]), atol=1e-12)
    assert all(torch.equal(p, q) for p, q in zip(clf.parameters(), before.parameters()))  # input untouched
    assert not torch.equal(out.weights[-1], clf.weights[-1])


def test_finetune_tracked_records_change_and_is_deterministic():
    x, y = toy()
    clf = Classifier.random(SIZES, [0, 1])
    config = FinetuneConfig(epochs=3, lr=0.5, batch_size=20)
    net, hist = finetune_tracked(clf, x, y, config, [0, 1], x[:40], y[:40], progress=False)
    assert len(hist["relative_change"]) == 3 and len(hist["valid_error"]) == 3 and len(hist["train_nll"]) == 3
    rc = torch.tensor(hist["relative_change"])
    assert rc.shape == (3, 3, 2)
    final = torch.stack([relative_change(b, a) for b, a in zip(clf.weights, net.weights)])
    assert torch.allclose(rc[-1], final)
    assert torch.equal(torch.tensor(hist["valid_error"][-1]), evaluate(net, x[:40], y[:40]).error)
    net2, hist2 = finetune_tracked(clf, x, y, config, [0, 1], x[:40], y[:40], progress=False)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), net2.parameters()))
    assert hist == hist2
    assert not torch.equal(net.weights[0], clf.weights[0])  # clf itself is not fine-tuned


def test_cached_run_trains_once(tmp_path):
    from pretraining.book import Chapter

    ch = Chapter("02_test", {"profile": "smoke", "device": "cpu"}, tmp_path)
    x, y = toy()
    calls = []

    def train(before):
        calls.append(1)
        net = before.clone()
        return net, finetune(net, x, y, FinetuneConfig(epochs=1, lr=0.5, batch_size=20), [0], progress=False)

    before = Classifier.random(SIZES, [0])
    run1 = cached_run(ch, "toy_run", {"seeds": [0]}, before, train)
    run2 = cached_run(ch, "toy_run", {"seeds": [0]}, before, train)
    assert len(calls) == 1 and run1.history == run2.history and run1.before is before
    assert all(torch.equal(p, q) for p, q in zip(run1.after.parameters(), run2.after.parameters()))
    assert not torch.equal(run1.after.weights[0], before.weights[0])


def test_assess_verdicts():
    pre = torch.tensor([[0.01, 0.02], [0.05, 0.06], [0.10, 0.12]])     # layer 1 least
    rnd = torch.tensor([[0.20, 0.30], [0.2, 0.2], [0.2, 0.2]])
    a = assess(pre, rnd, torch.tensor([0.6, 0.7]))
    assert (a.first_changes_least, a.first_is_tiny, a.tiny_changes_matter, a.verdict) == (True, True, True, "supported")
    assert assess(pre, rnd, torch.tensor([0.1, 0.2])).verdict == "partly supported"
    assert assess(pre, rnd, torch.tensor([float("nan"), 0.9])).tiny_changes_matter is False
    flipped = pre.flip(0)  # layer 1 moves most, and more than half the random net's layer 1
    assert assess(flipped, rnd / 2, torch.tensor([0.0, 0.1])).verdict == "not supported"


# ------------------------------------------------------------------------------- input plane
def test_input_plane_passes_through_the_anchors():
    anchors = torch.rand(3, 9, generator=torch.Generator().manual_seed(0))
    plane = input_plane(anchors, resolution=3, margin=0.0)
    grid = plane.points.reshape(3, 3, 9)  # (beta, alpha, V)
    assert torch.allclose(grid[0, 0], anchors[0])
    assert torch.allclose(grid[0, 2], anchors[1])   # alpha = 1, beta = 0
    assert torch.allclose(grid[2, 0], anchors[2])   # alpha = 0, beta = 1
    assert torch.allclose(grid[1, 1], anchors[0] + 0.5 * (anchors[1] - anchors[0]) + 0.5 * (anchors[2] - anchors[0]))
    wide = input_plane(anchors, resolution=5, margin=0.5)
    assert wide.alpha[0].item() == pytest.approx(-0.5) and wide.alpha[-1].item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"\(3, V\)"):
        input_plane(torch.rand(2, 9))
    with pytest.raises(ValueError, match="resolution="):
        input_plane(anchors, resolution=1)
    with pytest.raises(ValueError, match="margin="):
        input_plane(anchors, margin=-1)


def test_decision_map_of_a_known_linear_classifier():
    # inputs (alpha, beta) themselves: anchors (0,0), (1,0), (0,1); logits [x0, x1, 0.25]
    anchors = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    clf = Classifier([W], [torch.tensor([[0.0, 0.0, 0.25]])])
    plane = input_plane(anchors, resolution=7, margin=0.25)
    m = decision_map(clf, plane)
    assert m.shape == (1, 7, 7)
    beta, alpha = torch.meshgrid(plane.beta, plane.alpha, indexing="ij")
    expected = torch.stack([alpha, beta, torch.full_like(alpha, 0.25)], -1).argmax(-1)
    assert torch.equal(m[0], expected)
    assert set(m.unique().tolist()) == {0, 1, 2}


# ------------------------------------------------------------------------------- figures
def test_figures_draw_with_the_documented_scales():
    g = torch.Generator().manual_seed(0)
    Wb = torch.randn(784, 10, generator=g)
    Wa = Wb + 0.01 * torch.randn(784, 10, generator=g)
    fig = plot_receptive_field_change(Wb, Wa, n=6, ncols=3)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert images[0].norm.vmax == images[1].norm.vmax == pytest.approx(float(max(Wb[:, :6].abs().max(), Wa[:, :6].abs().max())))
    assert images[2].norm.vmax == pytest.approx(float((Wa - Wb)[:, :6].abs().max()))
    with pytest.raises(ValueError, match="n="):
        plot_receptive_field_change(Wb, Wa, n=11)
    ch = LayerChange(torch.rand(3, 2), torch.rand(3, 2), torch.rand(3, 2))
    assert len(plot_layer_change({"a": ch, "b": ch}, ["1", "2", "out"]).axes) == 3
    with pytest.raises(ValueError, match="layers"):
        plot_layer_change({"a": ch}, ["1", "2"])
    assert len(plot_change_over_epochs({"a": torch.rand(4, 3, 2).tolist()}, ["1", "2", "out"]).axes) == 1
    assert len(plot_test_errors({"x": torch.rand(3), "reset": torch.rand(3)}).axes) == 1
    plane = input_plane(torch.rand(3, 784, generator=g), resolution=4)
    fig = plot_decision_maps({"a": torch.zeros(4, 4, dtype=torch.long), "b": torch.ones(4, 4, dtype=torch.long)},
                             plane, [1, 2, 3])
    assert sum(1 for ax in fig.axes if ax.get_title() in ("a", "b")) == 2
    plt.close("all")
