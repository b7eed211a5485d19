"""Chapter 2 (pretraining.chapters.ch02_finetuning_weight_change): its parameter rules, layer measures, the
random start of the stacks, the edits of a network, the cached trainings, the claim's parts, tables and maps."""

from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pretraining.analysis.references import ERHAN2010_TABLE1, LAROCHELLE2009_TABLE3  # noqa: E402
from pretraining.book import claims  # noqa: E402
from pretraining.book.cache import ArtifactStore  # noqa: E402
from pretraining.book.specs import STACK_PARAMS, ParameterError  # noqa: E402
from pretraining.chapters import ch01_pretraining  # noqa: E402
from pretraining.chapters.ch02_finetuning_weight_change import (  # noqa: E402
    CONDITIONS, KINDS, SPEC, LayerChange, _from_stacks, assess, changed_predictions, controls_table, decision_map,
    field_change_ratio, field_look, finetuned, gate_unconverged, initial_weights, input_plane, join_stacks,
    layer_change_table, layer_cka, layer_distances, layer_measures, layer_reset_errors, perturbed_layer,
    plot_change_over_epochs, plot_decision_maps, plot_layer_change, plot_receptive_field_change, plot_test_errors,
    pm, predict, prediction_change_table, ragged_curves, reference_tables, reset_layers, sign_flip_fraction,
    softmax_on_frozen_features, stack_members, stack_of_runs, summary, tiny_sentence, least_sentence, unit_cosine,
    weight_distance,
)
from pretraining.core.data import Subset  # noqa: E402
from pretraining.core.models import Classifier  # noqa: E402
from pretraining.core.selection import SelectionConfig, early_stopped, log_grid, select_and_train  # noqa: E402
from pretraining.core.train import DAEConfig, FinetuneConfig, RBMConfig, evaluate, pretrain_stack  # noqa: E402

GRID = log_grid(0.1, 3.162, 5)
SELECT = SelectionConfig(GRID, patience=1, max_extensions=0, select_seeds=1)

SIZES = [16, 6, 5, 3]


def toy(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, SIZES[0], generator=g)
    return x, x[:, :3].argmax(1).long()


# ------------------------------------------------------------------------------- weight statistics
def test_weight_distance_unit_cosine_and_sign_flips_exact():
    before = torch.tensor([[[3.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]])
    after = before.clone()
    after[0, 0, 0] += 0.5
    after[1] *= 1.5                                   # member 1 moves 0.5 * ||before|| = 1
    assert torch.allclose(weight_distance(before, after), torch.tensor([0.5, 1.0]))
    before = torch.tensor([[[1.0, 1.0, 1.0, 2.0], [0.0, 2.0, 0.0, 0.0]]])  # (1, 2 inputs, 4 units)
    after = torch.tensor([[[3.0, -1.0, 0.0, 0.0], [0.0, -2.0, 5.0, 0.0]]])
    # unit 0 scaled (cos 1), unit 1 negated (-1), unit 2 orthogonal (0), unit 3 becomes zero (0 by definition)
    assert torch.allclose(unit_cosine(before, after), torch.tensor([[1.0, -1.0, 0.0, 0.0]]))
    before = torch.tensor([[1.0, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    after = torch.tensor([[1.0, 1.0, -2.0, 3.0], [1.0, 0.0, 1.0, -1.0]])
    # member 0: two flips (zero start is not a flip); member 1: one flip (becoming zero is not)
    assert torch.allclose(sign_flip_fraction(before, after), torch.tensor([0.5, 0.25]))
    with pytest.raises(ValueError, match="same shape"):
        weight_distance(torch.ones(2, 3, 4), torch.ones(2, 3, 5))
    with pytest.raises(TypeError, match="torch.Tensors"):
        sign_flip_fraction(np.ones((2, 3)), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"\(M, n_in, n_out\)"):
        unit_cosine(torch.ones(2, 3), torch.ones(2, 3))


def _hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l_ = x @ x.T, y @ y.T
    return np.trace(k @ h @ l_ @ h) / math.sqrt(np.trace(k @ h @ k @ h) * np.trace(l_ @ h @ l_ @ h))


def _sigmoid_layers(clf: Classifier, m: int, x: np.ndarray) -> list[np.ndarray]:
    out, h = [], x
    for W, b in zip(clf.weights[:-1], clf.biases[:-1]):
        h = 1 / (1 + np.exp(-(h @ W[m].double().numpy() + b[m].double().numpy())))
        out.append(h)
    return out


def test_layer_cka_is_the_hsic_formula_on_each_layers_activations():
    x, _ = toy(60)
    before = Classifier.random(SIZES, [0, 1])
    after = before.clone()
    after.weights[0] += 0.3 * torch.randn(after.weights[0].shape, generator=torch.Generator().manual_seed(5))
    got = layer_cka(before, after, x)
    assert got.shape == (2, 2)
    for m in range(2):
        hb, ha = _sigmoid_layers(before, m, x.double().numpy()), _sigmoid_layers(after, m, x.double().numpy())
        for i in range(2):
            assert got[i, m].item() == pytest.approx(_hsic_cka(hb[i], ha[i]), rel=1e-5)
    torch.testing.assert_close(layer_cka(before, before.clone(), x), torch.ones(2, 2, dtype=torch.float64))


def test_layer_measures_per_layer_and_where_they_do_not_apply():
    x, _ = toy(50)
    before = Classifier.random(SIZES, [0, 1])
    after = before.clone()
    after.weights[1] = -after.weights[1]                 # layer 2 negated: cosine -1, every weight flips
    moved = torch.tensor([[2.0, 4.0], [1.0, 0.5]])
    c = layer_measures(before, after, x, moved)
    assert c.weight_change.shape == (3, 2) and c.weight_change.dtype == torch.float64
    assert torch.equal(c.weight_change[[0, 2]], torch.zeros(2, 2, dtype=torch.float64))
    torch.testing.assert_close(c.weight_change[1], 2 * before.weights[1].flatten(1).norm(dim=1).double())
    torch.testing.assert_close(c.change_vs_pretraining[:2], c.weight_change[:2] / moved.double())
    assert c.mean_cosine[1].tolist() == pytest.approx([-1.0, -1.0]) and c.sign_flip_fraction[1].tolist() == [1.0, 1.0]
    assert c.cka[0].tolist() == pytest.approx([1.0, 1.0])  # layer 1 did not change
    assert torch.isnan(c.cka[2]).all() and torch.isnan(c.pretraining_move[2]).all()   # the softmax
    rnd = layer_measures(before, after, x, None)
    assert torch.isnan(rnd.change_vs_pretraining).all() and not torch.isnan(rnd.weight_change).any()
    recs = c.records(["1", "2", "softmax"])
    assert recs[1]["weight_change"] == pytest.approx(float(c.weight_change[1].mean()))
    assert recs[1]["weight_change_std"] == pytest.approx(float(c.weight_change[1].std()))
    lo, hi = recs[1]["change_vs_pretraining_ci95"]
    assert lo < recs[1]["change_vs_pretraining"] < hi
    assert recs[2]["cka"] is None and recs[2]["cka_ci95"] is None and recs[2]["mean_cosine"] is not None
    with pytest.raises(ValueError, match="names for"):
        c.records(["1"])
    with pytest.raises(ValueError, match=r"pretraining_move has shape \(1, 2\); expected \(2, 2\)"):
        layer_measures(before, after, x, moved[:1])


def test_summary_mean_std_and_t_interval():
    s = summary(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert s["mean"] == 3.0 and s["std"] == pytest.approx(np.std([1, 2, 3, 6], ddof=1))
    from scipy import stats as sst
    want = sst.t.interval(0.95, 3, loc=3.0, scale=s["std"] / 2)
    assert s["ci95"] == pytest.approx(list(want))
    assert summary(torch.tensor([0.5])) == {"mean": 0.5, "std": 0.0, "ci95": None}


# ------------------------------------------------------------------------------- stacks and their random start
@pytest.mark.parametrize("kind, config", [("rbm", RBMConfig(epochs=1, lr=1e-9, batch_size=20)),
                                          ("dae", DAEConfig(epochs=1, lr=1e-9, batch_size=20, tied=False))])
def test_initial_weights_are_where_pretraining_started(kind, config):
    x, _ = toy(60)
    stack, _ = pretrain_stack(kind, x, [6, 5], config, [3, 4], progress=False)
    init = initial_weights(kind, [16, 6, 5], config, [3, 4])
    assert [tuple(w.shape) for w in init] == [(2, 16, 6), (2, 6, 5)]
    for w, layer in zip(init, stack.layers):       # a learning rate of 1e-9 leaves the start in place
        torch.testing.assert_close(w, layer.W, rtol=0, atol=1e-6)
        assert not torch.allclose(w[0], w[1])       # each stack seed its own start
    with pytest.raises(ValueError, match="kind='x' is not allowed"):
        initial_weights("x", [16, 6], config, [0])


def test_stacks_join_select_and_make_the_runs_networks():
    x, _ = toy(60)
    config = RBMConfig(epochs=1, lr=0.05, batch_size=20)
    a, _ = pretrain_stack("rbm", x, [6, 5], config, [0], progress=False)
    b, _ = pretrain_stack("rbm", x, [6, 5], config, [1, 2], progress=False)
    ab = join_stacks([a, b])
    assert ab.n_members == 3 and torch.equal(ab.layers[1].W[0], a.layers[1].W[0])
    assert torch.equal(ab.layers[0].W[1:], b.layers[0].W)
    picked = stack_members(ab, [2, 0, 2])
    assert torch.equal(picked.layers[0].W[0], b.layers[0].W[1]) and torch.equal(picked.layers[0].W[2],
                                                                                 picked.layers[0].W[0])
    with pytest.raises(IndexError, match="within 0..2"):
        stack_members(ab, [3])
    with pytest.raises(ValueError, match="one kind and shape"):
        join_stacks([a, pretrain_stack("rbm", x, [6], config, [0], progress=False)[0]])
    make = _from_stacks(ab, {10: 2, 11: 0})
    net = make([10, 11, 10])                         # seeds may repeat (a rate grid)
    assert torch.equal(net.weights[0][0], b.layers[0].W[1]) and torch.equal(net.weights[0][1], a.layers[0].W[0])
    alone = Classifier.from_stack(stack_members(ab, [0]), 10, [11])
    assert all(torch.equal(p[1], q[0]) for p, q in zip(net.parameters(), alone.parameters()))  # batched = alone


def test_stack_of_runs_spreads_the_runs_evenly():
    assert stack_of_runs(9, 3) == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert stack_of_runs(4, 1) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="n_runs=8 is not allowed: a multiple of n_stacks=3"):
        stack_of_runs(8, 3)


# ------------------------------------------------------------------------------- edits of a network
def test_reset_layers_replaces_exactly_the_named_layers():
    a = Classifier.random(SIZES, [0, 1])
    b = Classifier.random(SIZES, [5, 6])
    a_copy = a.clone()
    r = reset_layers(a, b, [1])
    for i in range(len(SIZES) - 1):
        src = b if i == 1 else a
        assert torch.equal(r.weights[i], src.weights[i]) and torch.equal(r.biases[i], src.biases[i])
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), a_copy.parameters()))  # a untouched
    with pytest.raises(ValueError, match="layers="):
        reset_layers(a, b, [4])
    with pytest.raises(ValueError, match="differ in shape"):
        reset_layers(a, Classifier.random([16, 6, 3], [0, 1]), [0])
    x, y = toy()
    errs = layer_reset_errors(a, b, x, y)
    assert errs.shape == (2, 2) and torch.equal(errs[0].float(), evaluate(reset_layers(a, b, [0]), x, y).error)


def test_perturbed_layer_moves_as_far_in_a_random_direction():
    ref = Classifier.random(SIZES, [0, 1, 2])
    ft = ref.clone()
    ft.weights[0] += 0.05 * torch.ones_like(ft.weights[0])
    ft.biases[0] += torch.tensor([0.1, 0.2, 0.3]).view(3, 1)
    ft.weights[2] += 1.0
    out = perturbed_layer(ft, ref, 0, [7, 8, 9])
    for new, f, r in ((out.weights[0], ft.weights[0], ref.weights[0]), (out.biases[0], ft.biases[0], ref.biases[0])):
        torch.testing.assert_close(weight_distance(r, new), weight_distance(r, f))        # the same size
        cos = ((new - r) * (f - r)).flatten(1).sum(1) / (weight_distance(r, new) * weight_distance(r, f))
        assert cos.abs().max() < 0.9                                                       # another direction
    assert all(torch.equal(out.weights[i], ft.weights[i]) for i in (1, 2))
    again = perturbed_layer(ft, ref, 0, [7, 8, 9])
    assert all(torch.equal(p, q) for p, q in zip(out.parameters(), again.parameters()))
    alone = perturbed_layer(ft.member(1), ref.member(1), 0, [8])                          # batched = alone
    assert all(torch.equal(p[1], q[0]) for p, q in zip(out.parameters(), alone.parameters()))
    assert not torch.equal(perturbed_layer(ft, ref, 0, [1, 2, 3]).weights[0], out.weights[0])
    with pytest.raises(ValueError, match="layers=\\[3\\] is not allowed"):
        perturbed_layer(ft, ref, 3, [7, 8, 9])
    with pytest.raises(ValueError, match="seeds has length 2"):
        perturbed_layer(ft, ref, 0, [7, 8])


def test_changed_predictions_counts_by_enumeration():
    y = torch.tensor([0, 1, 2, 3, 4])
    before = torch.tensor([[0, 0, 1, 3, 0], [0, 1, 2, 3, 4]])
    after = torch.tensor([[1, 1, 2, 3, 2], [0, 1, 2, 3, 4]])
    f = changed_predictions(before, after, y)
    # member 0: digit 0 right -> wrong, 1 and 2 wrong -> right, 3 unchanged, 4 wrong -> another wrong
    assert [f[k].tolist() for k in ("changed", "became_correct", "became_wrong", "stayed_wrong")] == \
        [[4, 0], [2, 0], [1, 0], [1, 0]]
    with pytest.raises(ValueError, match=r"must be equal \(M, N\)"):
        changed_predictions(before, after[:, :4], y)


def test_predict_and_decision_map_of_a_known_linear_classifier():
    anchors = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    clf = Classifier([W], [torch.tensor([[0.0, 0.0, 0.25]])])       # logits [x0, x1, 0.25]
    plane = input_plane(anchors, resolution=7, margin=0.25)
    m = decision_map(clf, plane)
    beta, alpha = torch.meshgrid(plane.beta, plane.alpha, indexing="ij")
    assert torch.equal(m[0], torch.stack([alpha, beta, torch.full_like(alpha, 0.25)], -1).argmax(-1))
    assert torch.equal(predict(clf, plane.points)[0], m[0].flatten())
    with pytest.raises(TypeError, match="Classifier"):
        predict("net", plane.points)


def test_input_plane_passes_through_the_anchors():
    anchors = torch.rand(3, 9, generator=torch.Generator().manual_seed(0))
    grid = input_plane(anchors, resolution=3, margin=0.0).points.reshape(3, 3, 9)  # (beta, alpha, V)
    assert torch.allclose(grid[0, 0], anchors[0]) and torch.allclose(grid[0, 2], anchors[1])
    assert torch.allclose(grid[2, 0], anchors[2])
    with pytest.raises(ValueError, match=r"\(3, V\)"):
        input_plane(torch.rand(2, 9))
    with pytest.raises(ValueError, match="resolution="):
        input_plane(anchors, resolution=1)


# ------------------------------------------------------------------------------- training
def test_layer_distances_track_how_far_each_layer_moved():
    x, y = toy()
    from pretraining.core.train import finetune

    start = Classifier.random(SIZES, [0, 1])
    net = start.clone()
    finetune(net, x, y, FinetuneConfig(epochs=2, lr=0.5, batch_size=20), [0, 1], progress=False)
    out = layer_distances(start, net)
    assert out.shape == (2, len(SIZES) - 1)
    for i, (b, a) in enumerate(zip(start.weights, net.weights)):
        assert torch.allclose(out[:, i], (a - b).flatten(1).norm(dim=1))


def test_ragged_curves_pad_stopped_runs_with_nan():
    out = ragged_curves([[[1, 2], [3, 4]], [[5, 6]]])  # run 0 ran 2 epochs, run 1 one
    assert out.shape == (2, 2, 2) and out[1, 0, 0] == 3 and math.isnan(out[1, 0, 1]) and out[0, 1, 1] == 6


class _FakeChapter:
    """What :func:`finetuned` needs of a chapter: data (train and validation) and the artifact cache."""

    def __init__(self, root, x, y):
        self.data = SimpleNamespace(train=Subset(x, y), valid=Subset(x[:40], y[:40]), sha256="0" * 64)
        self.store = ArtifactStore(root)

    def cached(self, name, params, compute, *, version):
        return self.store.get_or_compute(name, params, compute, version=version, data_sha256=self.data.sha256)


def make_random(seeds):
    return Classifier.random(SIZES, seeds)


def test_finetuned_trains_by_the_protocol_once_through_the_cache(tmp_path):
    x, y = toy()
    ch = _FakeChapter(tmp_path, x, y)
    config = FinetuneConfig(epochs=3, lr=0.5, batch_size=20)
    run1 = finetuned(ch, "toy_run", make_random, {"sizes": SIZES}, config, SELECT, [0, 1])
    run2 = finetuned(ch, "toy_run", make_random, {"sizes": SIZES}, config, SELECT, [0, 1])
    assert (ch.store.misses, ch.store.hits) == (1, 1)
    assert run1.history == run2.history and run1.selection == run2.selection
    assert all(torch.equal(p, q) for p, q in zip(run1.after.parameters(), run2.after.parameters()))
    rec = run1.selection
    for m, s in enumerate([0, 1]):   # each run is the seed trained alone at the chosen rate
        alone = make_random([s])
        early_stopped(alone, ch.data.train, ch.data.valid, FinetuneConfig(epochs=3, lr=rec["lr"], batch_size=20),
                      [s], patience=1)
        for p, q in zip(run1.after.member(m).parameters(), alone.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert [len(c) for c in run1.history["distance"]] == rec["epochs_run"]
    assert all(len(v) == len(SIZES) - 1 for c in run1.history["distance"] for v in c)


def test_finetuned_with_layer_1_frozen(tmp_path):
    x, y = toy()
    ch = _FakeChapter(tmp_path, x, y)
    config = FinetuneConfig(epochs=3, lr=0.5, batch_size=20)
    full = finetuned(ch, "toy_run", make_random, {"sizes": SIZES}, config, SELECT, [0, 1])
    frozen = finetuned(ch, "toy_run", make_random, {"sizes": SIZES}, config, SELECT, [0, 1], train_layers=[1, 2])
    assert ch.store.misses == 2                                     # another key
    assert torch.equal(frozen.after.weights[0], frozen.before.weights[0])
    assert torch.equal(frozen.after.biases[0], frozen.before.biases[0])
    assert not torch.equal(frozen.after.weights[1], frozen.before.weights[1])
    assert not torch.equal(frozen.after.weights[1], full.after.weights[1])
    assert all(v[0] == 0.0 for c in frozen.history["distance"] for v in c)
    ref = select_and_train(make_random, ch.data.train, ch.data.valid, config, SELECT, [0, 1], train_layers=[1, 2])
    assert all(torch.equal(p, q) for p, q in zip(frozen.after.parameters(), ref.clf.parameters()))


def test_softmax_on_frozen_features_is_selected_per_stack(tmp_path):
    x, y = toy()
    ch = _FakeChapter(tmp_path, x, y)
    hidden = Classifier.random(SIZES, [20, 21])                      # two "stacks": their hidden layers

    def make(seeds):                                                 # run seed s uses stack s % 2
        top = Classifier.random(SIZES, seeds)
        pick = [s % 2 for s in seeds]
        return Classifier([w[pick].clone() for w in hidden.weights[:-1]] + [top.weights[-1]],
                          [b[pick].clone() for b in hidden.biases[:-1]] + [top.biases[-1]])

    config = FinetuneConfig(epochs=3, lr=0.5, batch_size=20)
    seeds, stack_of = [0, 1, 2, 3], [0, 1, 0, 1]
    sm = softmax_on_frozen_features(ch, "toy_softmax", make, {"sizes": SIZES}, config, SELECT, seeds, stack_of)
    assert len(sm.selections) == 2 and isinstance(sm.converged, bool)
    assert all(torch.equal(a, b) for a, b in zip(sm.after.weights[:-1], sm.before.weights[:-1]))
    assert not torch.equal(sm.after.weights[-1], sm.before.weights[-1])
    depth = len(SIZES) - 2
    for k, group in ((0, [0, 2]), (1, [1, 3])):    # each stack's runs: the whole net with only its softmax free
        ref = select_and_train(make, ch.data.train, ch.data.valid, config, SELECT, group, train_layers=[depth])
        assert sm.selections[k]["lr"] == ref.lr and sm.selections[k]["best_epoch"] == ref.best_epoch
        for j, m in enumerate(group):
            torch.testing.assert_close(sm.after.weights[-1][m], ref.clf.weights[-1][j], rtol=1e-4, atol=1e-5)


def test_finetuned_cache_key_covers_the_trainers_code_only(tmp_path):
    from pretraining.book.codehash import dependencies

    x, y = toy()
    ch = _FakeChapter(tmp_path, x, y)
    seen = []
    store_cached = ch.cached
    ch.cached = lambda name, params, compute, *, version: (seen.append(dependencies(compute)),
                                                            store_cached(name, params, compute, version=version))[1]
    finetuned(ch, "toy_deps", make_random, {"sizes": SIZES}, FinetuneConfig(epochs=1, lr=0.5, batch_size=20),
              SELECT, [0])
    parts = set(seen[0])
    here = "pretraining/chapters/ch02_finetuning_weight_change.py:"
    assert {here + "layer_distances", here + "weight_distance", "pretraining/core/selection.py"} <= parts
    assert not any(p.startswith("pretraining/book/") or p in (here + "SPEC", here + "start") for p in parts)


# ------------------------------------------------------------------------------- the claim in parts
M = 9
_G = torch.Generator().manual_seed(3)


def _change(dw1, ratio, cka1) -> LayerChange:
    """A LayerChange of 3 hidden layers + softmax over M runs: layer 1's ||dW||, the (3, M) ratios to
    pre-training's move, layer 1's CKA (random-init networks: ratio None)."""
    dw = torch.stack([dw1, torch.full((M,), 3.0), torch.full((M,), 3.0), torch.full((M,), 5.0)]).double()
    nan = torch.full((1, M), math.nan, dtype=torch.float64)
    if ratio is None:
        moved = ratio_t = torch.full((4, M), math.nan, dtype=torch.float64)
    else:
        ratio_t = torch.cat([ratio.double(), nan])
        moved = dw / ratio_t
    cka = torch.cat([torch.stack([cka1, torch.full((M,), 0.9), torch.full((M,), 0.9)]).double(), nan])
    ones = torch.ones(4, M, dtype=torch.float64)
    return LayerChange(dw, moved, ratio_t, ones, 0 * ones, cka)


RND = _change(torch.linspace(8.0, 12.0, M), None, torch.linspace(0.5, 0.7, M))
DBN = _change(torch.linspace(4.0, 6.0, M), torch.stack([torch.linspace(0.1, 0.2, M), torch.full((M,), 0.3),
                                                        torch.full((M,), 0.4)]), torch.linspace(0.95, 0.99, M))
ERR = {"fine_tuned": torch.linspace(0.04, 0.05, M).double(), "layer1_frozen": torch.linspace(0.05, 0.07, M).double()}
FLIPS = {"changed": torch.full((M,), 100), "became_correct": torch.arange(60, 60 + M),
         "became_wrong": torch.full((M,), 20), "stayed_wrong": 20 - torch.arange(M)}


def _statuses(parts):
    return [p.status for p in claims.decide(parts)]


def test_assess_parts_and_verdicts():
    H, F = claims.HOLDS, claims.FAILS
    parts = assess(DBN, RND, ERR, FLIPS)
    assert [p.key for p in parts] == ["a", "b", "c", "d"]
    assert _statuses(parts) == [H, H, H, H] and claims.verdict(claims.decide(parts)) == "supported"
    a, b, c, d = parts
    assert a.n == b.n == c.n == d.n == M and a.p == pytest.approx(2 / 2 ** M)   # exact, every run positive
    assert a.effect == pytest.approx(float((DBN.cka[0] - RND.cka[0]).mean()))   # the CKA difference
    assert b.effect == pytest.approx(0.3 - float(DBN.change_vs_pretraining[0].mean()))
    assert c.effect == pytest.approx(float((ERR["layer1_frozen"] - ERR["fine_tuned"]).mean()))
    assert d.effect == pytest.approx(float((FLIPS["became_correct"] / 100).mean()) - 0.5)
    assert c.ci95[0] < c.effect < c.ci95[1]
    assert all(set(p.claim_part()) == {"part", "statement", "test", "effect", "ci95", "p", "p_holm", "n", "holds"}
               for p in claims.decide(parts))
    # the layer-1-frozen net is better: (c) fails; the rest stands
    swapped = {"fine_tuned": ERR["layer1_frozen"], "layer1_frozen": ERR["fine_tuned"]}
    assert _statuses(assess(DBN, RND, swapped, FLIPS)) == [H, H, F, H]
    # most changed digits become wrong: (d) fails
    worse = {**FLIPS, "became_correct": torch.full((M,), 30)}
    assert _statuses(assess(DBN, RND, ERR, worse))[3] == F


def test_part_a_needs_all_three_comparisons():
    H, F = claims.HOLDS, claims.FAILS
    # (2) fails: the pre-trained layer 1 moved further than the random-init one in absolute terms
    far = _change(torch.linspace(13.0, 15.0, M), DBN.change_vs_pretraining[:3], DBN.cka[0])
    assert _statuses(assess(far, RND, ERR, FLIPS))[0] == F
    # (3) fails: fine-tuning moved layer 1 further than pre-training had (the other two still hold)
    beyond = _change(DBN.weight_change[0], torch.stack([torch.linspace(1.1, 1.3, M), torch.full((M,), 1.5),
                                                        torch.full((M,), 1.6)]), DBN.cka[0])
    parts = assess(beyond, RND, ERR, FLIPS)
    assert _statuses(parts)[:2] == [F, H]
    assert parts[0].numbers["p_cka"] < 0.01 and parts[0].numbers["p_weight_change"] < 0.01
    # (1) fails: the representation changed more than the random-init network's
    moved = _change(DBN.weight_change[0], DBN.change_vs_pretraining[:3], torch.linspace(0.3, 0.4, M))
    assert _statuses(assess(moved, RND, ERR, FLIPS))[0] == F


def test_too_few_runs_one_layer_and_no_changed_digit_are_not_tested():
    k = claims.MIN_PAIRS - 1

    def cut(c: LayerChange, rows=slice(None)) -> LayerChange:
        return LayerChange(*[getattr(c, s)[rows, :k] for s in LayerChange.STATS])

    parts = assess(cut(DBN), cut(RND), {c: e[:k] for c, e in ERR.items()}, {f: v[:k] for f, v in FLIPS.items()})
    assert _statuses(parts) == [claims.NOT_TESTED] * 4 and claims.verdict(parts) == "inconclusive"
    assert all("not testable at this scale" in p.evidence and p.effect is not None for p in parts)
    one = [0, 3]   # one hidden layer + softmax
    b = assess(cut_rows(DBN, one), cut_rows(RND, one), ERR, FLIPS)[1]
    assert b.status == claims.NOT_TESTED and "one hidden layer" in b.evidence
    none = {**FLIPS, "changed": torch.tensor([0] + [100] * (M - 1))}
    d = assess(DBN, RND, ERR, none)[3]
    assert d.status == claims.NOT_TESTED and "in 1 of 9 runs no test digit changes" in d.evidence
    with pytest.raises(ValueError, match=r"errors\['fine_tuned'\] has shape \(3,\); expected \(9,\)"):
        assess(DBN, RND, {**ERR, "fine_tuned": ERR["fine_tuned"][:3]}, FLIPS)
    with pytest.raises(ValueError, match=r"must both be \(L \+ 1, M\)"):
        assess(DBN, cut_rows(RND, one), ERR, FLIPS)


def cut_rows(c: LayerChange, rows) -> LayerChange:
    return LayerChange(*[getattr(c, s)[rows] for s in LayerChange.STATS])


def test_a_part_comparing_a_condition_that_did_not_converge_is_not_tested():
    def rec(converged):
        return {"lr": 1.0, "at_edge": False, "setting_converged": converged, "converged": [converged] * M,
                "n_converged": M if converged else 5, "epoch_budget": 15, "longer_run": None}

    keys = ["rbm", "random", "rbm_layer1_frozen", "rbm_softmax_0", "rbm_softmax_1", "rbm_softmax_2"]
    parts = assess(DBN, RND, ERR, FLIPS)
    fair = gate_unconverged(parts, {k: rec(True) for k in keys}, "rbm")
    assert [p.status for p in fair] == [p.status for p in parts]
    gated = gate_unconverged(parts, {**{k: rec(True) for k in keys}, "random": rec(False),
                                     "rbm_softmax_1": rec(False)}, "rbm")
    assert [p.status for p in gated] == [claims.NOT_TESTED, parts[1].status, parts[2].status, claims.NOT_TESTED]
    assert gated[0].evidence.startswith("not tested at this scale: the random-init network (5 of 9 seeds converged")
    assert "the DBN softmax on stack 2's frozen features" in gated[3].evidence and gated[3].p is None


def test_sentences():
    assert tiny_sentence(DBN, RND).startswith("Run by run") and "positive in 9 of 9 runs" in tiny_sentence(DBN, RND)
    assert "the smallest change of hidden layers 2..3" in least_sentence(DBN)
    assert least_sentence(cut_rows(DBN, [0, 3])).startswith("With one hidden layer")


# ------------------------------------------------------------------------------- parameters
def _problems(**changes):
    return SPEC.problems({**SPEC.defaults(), **changes})


def test_spec_defaults_are_valid_and_the_stack_parameters_are_chapter_1s():
    assert _problems() == []
    for name in STACK_PARAMS:
        assert SPEC.params[name] == ch01_pretraining.SPEC.params[name]


def test_rules_refuse_bad_combinations_in_one_line():
    (p,) = _problems(n_fields=600)
    assert p.startswith("n_fields=600 is not allowed") and "hidden_sizes[0], 500" in p
    (p,) = _problems(plane_classes=[3, 3, 8])
    assert p.startswith("plane_classes=[3, 3, 8] is not allowed")
    (p,) = _problems(n_seeds=10)
    assert p == ("n_seeds=10 is not allowed: a multiple of n_pretrain_seeds (4), so that every pre-trained stack "
                 "is fine-tuned equally often")
    (p,) = _problems(n_seeds=4, finetune_select_seeds=2)
    assert p.startswith("finetune_select_seeds=2 is not allowed: at most n_seeds / n_pretrain_seeds (1)")
    assert _problems(n_seeds=4, n_pretrain_seeds=4, finetune_select_seeds=1) == []
    (p,) = _problems(finetune_batch_size=7001)
    assert p.startswith("finetune_batch_size=7001 is not allowed") and "7000 training digits of mnist-10k" in p
    with pytest.raises(ParameterError) as err:
        SPEC.check({**SPEC.defaults(), "plane_classes": [1, 2, 2]})
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------- tables
def test_pm_and_field_words():
    assert pm(0.12345, 0.01, ".2f", 2) == "0.12 ± 0.01" and pm(0.12345, 0.01, ".2f", 1) == "0.12"
    assert [field_look(r) for r in (0.05, 0.3, 0.7)] == [
        "practically identical to the eye", "similar, with visible differences", "clearly different"]
    before = torch.tensor([[1.0, -2.0, 4.0], [0.5, 1.0, 0.0]])
    after = before + torch.tensor([[0.1, 0.0, 3.0], [-0.2, 0.0, 0.0]])
    assert field_change_ratio(before, after, 2) == pytest.approx(0.2 / 2.0)  # unit 2 not shown
    assert field_change_ratio(before, after, 3) == pytest.approx(3.0 / 4.0)


def test_tables():
    t = layer_change_table({"rbm": DBN, "random": RND}, ["1", "2", "3", "softmax"])
    assert t.index.names == [None, None] and len(t) == 8
    assert t.loc[(KINDS["rbm"], "layer 1"), "‖ΔW‖"] == pm(5.0, float(DBN.weight_change[0].std()), ".2f", M)
    assert t.loc[("random init", "layer 1"), "‖ΔW‖ / ‖W_pt − W_init‖ (%)"] == "—"
    assert t.loc[(KINDS["rbm"], "softmax"), "CKA before vs after"] == "—"
    e = {c: torch.full((4,), 0.05) for c in CONDITIONS}
    e["layer1_frozen"] = torch.tensor([0.06, 0.07, 0.06, 0.07])
    c = controls_table(e, torch.full((4,), 0.1))
    row = c.loc[CONDITIONS["layer1_frozen"]]
    assert row["test error (%)"] == "6.50" and row["minus fully fine-tuned (points)"] == "+1.50"
    assert row["runs above"] == "4 of 4" and c.loc[CONDITIONS["fine_tuned"], "runs above"] == "—"
    assert c.loc[CONDITIONS["softmax_only"], "95 % interval"] == "[5.00, 5.00]"
    f = prediction_change_table({"rbm": {k: v[:2] for k, v in FLIPS.items()}})
    assert f.loc[KINDS["rbm"], "share that becomes correct"] == "60.5%"
    assert f.loc[KINDS["rbm"], "become wrong"] == "20.0"


def test_reference_tables_take_the_papers_numbers_by_depth():
    ours, erhan = reference_tables({"rbm": 5.951, "dae": 5.28, "random": 75.7}, 3)
    ref = LAROCHELLE2009_TABLE3.numbers["error"]
    col = "Larochelle et al. 2009, MNIST-small, 3 layers"
    assert ours[col].tolist() == [ref["rbm"][3], ref["autoassociator"][3], ref["random"][3]]
    assert ours["this chapter"].tolist() == [5.95, 5.28, 75.7]
    e = ERHAN2010_TABLE1.numbers
    assert erhan.loc["pre-trained, 2 layers", "test error (%)"] == f"{e['mean']['dae'][2]:.2f} ± {e['std']['dae'][2]:.2f}"


# ------------------------------------------------------------------------------- figures
def test_figures_draw_with_the_documented_scales():
    g = torch.Generator().manual_seed(0)
    Wb = torch.randn(784, 10, generator=g)
    Wa = Wb + 0.01 * torch.randn(784, 10, generator=g)
    fig = plot_receptive_field_change(Wb, Wa, n=6, ncols=3)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3 and images[2].norm.vmax == pytest.approx(float((Wa - Wb)[:, :6].abs().max()))
    with pytest.raises(ValueError, match="n="):
        plot_receptive_field_change(Wb, Wa, n=11)
    fig = plot_layer_change({"a": DBN, "b": RND}, ["1", "2", "3", "out"])
    assert len(fig.axes) == 5
    assert len(fig.axes[1].patches) == 3          # change vs pre-training: the pre-trained net's hidden layers only
    with pytest.raises(ValueError, match="layers"):
        plot_layer_change({"a": DBN}, ["1", "2"])
    assert len(plot_change_over_epochs({"a": [torch.rand(4, 3).tolist(), torch.rand(2, 3).tolist()]},
                                       ["1", "2", "out"]).axes) == 1
    fig = plot_test_errors({"(a) x": torch.rand(3), "(d) edited": torch.rand(3)}, edited=("(d)",))
    assert [p.get_hatch() for p in fig.axes[0].patches] == [None, "//"]   # the edited network's bar stands out
    plt.close("all")


def _fits_the_page(fig) -> None:
    """At most page-wide, at least 60 % of it, and no text below the book's smallest font."""
    from pretraining.analysis.figures import PAGE_WIDTH, SMALLEST_FONT_PT

    w = fig.get_size_inches()[0]
    assert 0.6 * PAGE_WIDTH <= w <= PAGE_WIDTH + 1e-9, w
    fig.canvas.draw()
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    assert texts and min(t.get_fontsize() for t in texts) >= SMALLEST_FONT_PT


@pytest.mark.parametrize("n_fields, epochs", [(16, 1), (64, 6), (100, 50)])
def test_figures_fit_the_page_at_every_size(n_fields, epochs):
    g = torch.Generator().manual_seed(0)
    Wb = torch.randn(784, n_fields, generator=g)
    _fits_the_page(plot_receptive_field_change(Wb, Wb + 0.01, n=n_fields, title="DBN, first layer"))
    names = ["1", "2", "3", "softmax"]
    fig = plot_layer_change({"DBN (RBM stack)": DBN, "SDAE (auto-encoder stack)": DBN, "random init": RND}, names)
    _fits_the_page(fig)
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == ["layer 1", "layer 2", "layer 3", "softmax"]
    hist = {k: torch.rand(3, epochs, 4).tolist() for k in ("DBN", "SDAE", "random init")}
    _fits_the_page(plot_change_over_epochs(hist, names))
    bars = {f"({k}) {CONDITIONS[c]}": torch.rand(3) for k, c in zip("abcde", CONDITIONS)}
    _fits_the_page(plot_test_errors(bars, edited=("(d)", "(e)"), title="DBN"))
    plane = input_plane(torch.rand(3, 784, generator=g), resolution=8)
    maps = {k: torch.randint(0, 10, (8, 8), generator=g) for k in ("(a) one", "(b) two", "(c) three", "(d) four")}
    _fits_the_page(plot_decision_maps(maps, plane, [3, 5, 8]))
    plt.close("all")


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_work_lists_every_training_of_the_run(profile, work_plan):
    from pretraining.chapters import ch02_finetuning_weight_change as ch2

    p, got, (n_train, n_valid, _) = work_plan(ch2, profile)
    n, sel, S = p["n_seeds"], p["finetune_select_seeds"], p["n_pretrain_seeds"]
    grid = len(p["finetune_lr_grid"])
    full = (784, *p["hidden_sizes"], 10)
    B = p["finetune_batch_size"]
    # per kind: the whole net and the net with layer 1 frozen; the softmax per stack; the random-init net
    want = [("finetune", full, grid * sel + n - sel, n_train, p["finetune_epochs"], B, n_valid)] * 5
    want += [("finetune", (p["hidden_sizes"][-1], 10), grid * sel + n // S - sel, n_train, p["softmax_epochs"], B,
              n_valid)] * (2 * S)
    sizes = [784, *p["hidden_sizes"]]
    for kind in KINDS:   # the extra stacks (stack 0 is chapter 1's: counted there)
        want += [(kind, (a, b), S - 1, n_train, p[f"{kind}_epochs"], p["pretrain_batch_size"], 0)
                 for a, b in zip(sizes, sizes[1:])]
    assert sorted(got) == sorted(want)
