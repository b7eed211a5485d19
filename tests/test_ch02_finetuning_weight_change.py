"""Chapter 2 (pretraining.chapters.ch02_finetuning_weight_change): its parameter rules, weight-change
statistics, layer resets, softmax-only training, the cached runs, the claim's parts, tables and input-plane maps."""

from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from pretraining.analysis import stats  # noqa: E402
from pretraining.analysis.references import ERHAN2010_TABLE1, LAROCHELLE2009_TABLE3  # noqa: E402
from pretraining.book import claims  # noqa: E402
from pretraining.book.cache import ArtifactStore  # noqa: E402
from pretraining.book.specs import STACK_PARAMS, ParameterError  # noqa: E402
from pretraining.chapters import ch01_pretraining  # noqa: E402
from pretraining.chapters.ch02_finetuning_weight_change import (  # noqa: E402
    KINDS, MATTERS_FRACTION, SPEC, TINY_FRACTION, LayerChange, assess, decision_map, field_change_ratio, field_look,
    NEEDS, finetuned, gain_lost, gate_unconverged, layer_changes, ragged_curves, gain_text, input_plane, layer_change_table, layer_reset_errors,
    least_sentence, lost_sentence, per_kind, plot_change_over_epochs, plot_decision_maps,
    plot_layer_change, plot_receptive_field_change, plot_test_errors, pm, reference_tables, relative_change,
    reset_layers, reset_table, share_lost, sign_flip_fraction, tiny_sentence, unit_cosine,
    weight_change,
)
from pretraining.core.models import Classifier  # noqa: E402
from pretraining.core.data import Subset  # noqa: E402
from pretraining.core.selection import SelectionConfig, early_stopped, log_grid  # noqa: E402
from pretraining.core.train import FinetuneConfig, evaluate, finetune  # noqa: E402

GRID = log_grid(0.1, 3.162, 5)
SELECT = SelectionConfig(GRID, patience=1, max_extensions=0, select_seeds=1)

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
def test_layer_changes_track_how_far_each_layer_moved():
    x, y = toy()
    start = Classifier.random(SIZES, [0, 1])
    net = start.clone()
    finetune(net, x, y, FinetuneConfig(epochs=2, lr=0.5, batch_size=20), [0, 1], progress=False)
    out = layer_changes(start, net)
    assert out.shape == (2, len(SIZES) - 1)
    for i, (b, a) in enumerate(zip(start.weights, net.weights)):
        expect = (a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)
        assert torch.allclose(out[:, i], expect)
    assert torch.equal(layer_changes(start, start), torch.zeros(2, len(SIZES) - 1))


def test_ragged_curves_pad_stopped_seeds_with_nan():
    out = ragged_curves([[[1, 2], [3, 4]], [[5, 6]]])  # seed 0 ran 2 epochs, seed 1 one
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
    assert all(torch.equal(p, q) for p, q in zip(run1.before.parameters(), make_random([0, 1]).parameters()))
    rec = run1.selection
    assert rec["lr"] in rec["grid"] and len(rec["best_epoch"]) == 2 and isinstance(run1.converged, bool)
    # each run is the seed trained alone at the chosen rate, stopped at its best validation epoch
    for m, s in enumerate([0, 1]):
        alone = make_random([s])
        early_stopped(alone, ch.data.train, ch.data.valid, FinetuneConfig(epochs=3, lr=rec["lr"], batch_size=20),
                      [s], patience=1)
        for p, q in zip(run1.after.member(m).parameters(), alone.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # per epoch run, each layer's change since the start; the last entry at the run's last epoch
    assert [len(c) for c in run1.history["relative_change"]] == rec["epochs_run"]
    assert all(len(v) == len(SIZES) - 1 for c in run1.history["relative_change"] for v in c)
    # the key holds the configs and the seeds: another budget is another artifact
    finetuned(ch, "toy_run", make_random, {"sizes": SIZES}, FinetuneConfig(epochs=1, lr=0.5, batch_size=20), SELECT,
              [0, 1])
    assert ch.store.misses == 2


def test_finetuned_softmax_only_keeps_the_hidden_layers(tmp_path):
    x, y = toy()
    ch = _FakeChapter(tmp_path, x, y)
    shared = Classifier.random(SIZES, [3])  # one set of hidden layers for every seed, as a stack's copies

    def make(seeds):
        top = Classifier.random(SIZES, seeds)
        return Classifier([w.expand(len(seeds), -1, -1).clone() for w in shared.weights[:-1]] + [top.weights[-1]],
                          [b.expand(len(seeds), -1).clone() for b in shared.biases[:-1]] + [top.biases[-1]])

    run = finetuned(ch, "toy_softmax", make, {"sizes": SIZES}, FinetuneConfig(epochs=2, lr=0.5, batch_size=20),
                    SELECT, [3, 4], softmax_only=True)
    assert all(torch.equal(a, b) for a, b in zip(run.after.weights[:-1], run.before.weights[:-1]))
    assert not torch.equal(run.after.weights[-1], run.before.weights[-1])
    assert run.history["relative_change"] == [[], []]
    # the same as training the whole net with only its softmax layer free
    ref = early_stopped(make([3]), ch.data.train, ch.data.valid,
                        FinetuneConfig(epochs=2, lr=run.selection["lr"], batch_size=20), [3], patience=1,
                        train_layers=[len(SIZES) - 2])
    assert ref.best_epoch[0] == run.selection["best_epoch"][0]


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
    assert {here + "layer_changes", here + "relative_change", "pretraining/core/selection.py"} <= parts
    assert not any(p.startswith("pretraining/book/") or p in (here + "SPEC", here + "start") for p in parts)


def test_a_part_comparing_a_network_that_did_not_converge_is_not_tested():
    def run(converged):
        rec = {"lr": 1.0, "at_edge": False, "setting_converged": converged, "converged": [converged] * 8,
               "n_converged": 8 if converged else 5, "epoch_budget": 15, "longer_run": None}
        return SimpleNamespace(selection=rec, converged=converged)

    parts = assess(PRE, RND, LOST, PLANE)
    fair = gate_unconverged(parts, {"rbm": run(True), "random": run(True), "rbm_frozen": run(True)})
    assert [p.status for p in fair] == [p.status for p in parts]
    gated = gate_unconverged(parts, {"rbm": run(True), "random": run(False), "rbm_frozen": run(True)})
    assert gated[0].status == claims.NOT_TESTED and gated[0].evidence.startswith(
        "not tested at this scale: the random-init network (5 of 8 seeds converged within 15 epochs)")
    assert gated[0].p is None and gated[1].status == parts[1].status  # (b) compares the DBN's layers only
    assert set(NEEDS) == {"a", "b", "c", "d"}


# ------------------------------------------------------------------------------- the claim in parts
# (L, M) = (3 layers, 8 runs): run m of both networks shares fine-tuning seed m
RND = torch.tensor([[0.20, 0.30, 0.25, 0.40, 0.22, 0.35, 0.28, 0.33]] + [[0.2] * 8] * 2)
PRE = torch.stack([0.2 * RND[0], torch.full((8,), 0.10), torch.full((8,), 0.15)])  # layer 1 moves least
LOST = torch.tensor([0.6, 0.7, 0.65, 0.8, 0.55, 0.9, 0.6, 0.75])                     # every run loses > 50 %
PLANE = {"fine_tuning": 0.06, "layer_1_reset": 0.03}
KEYS = {"part", "statement", "test", "effect", "ci95", "p", "p_holm", "n", "holds"}


def _statuses(parts):
    return [p.status for p in claims.decide(parts)]


def test_assess_parts_and_verdicts():
    H, F, N = claims.HOLDS, claims.FAILS, claims.NOT_TESTED
    parts = assess(PRE, RND, LOST, PLANE)
    assert [p.key for p in parts] == ["a", "b", "c", "d"]
    assert _statuses(parts) == [H, H, H, N] and claims.verdict(claims.decide(parts)) == "supported"
    a, b, c, _ = parts
    assert a.test == b.test == c.test == "wilcoxon" and a.n == b.n == c.n == 8
    # (a) d = 0.5 * random - DBN = 0.3 * random, per run; (b) min(0.10, 0.15) - 0.2 * random; (c) lost - 0.5
    assert a.effect == pytest.approx(0.3 * float(RND[0].mean()))
    assert b.effect == pytest.approx(0.10 - 0.2 * float(RND[0].mean()))
    assert c.effect == pytest.approx(float(LOST.mean()) - MATTERS_FRACTION)
    assert c.numbers["gain_lost_layer_1"] == pytest.approx(float(LOST.mean()))
    assert a.ci95[0] < a.effect < a.ci95[1]
    assert "issue 16" in parts[3].evidence and "6%" in parts[3].evidence
    low = assess(PRE, RND, LOST - 0.4, PLANE)                       # every reset loses < 50 %
    assert _statuses(low) == [H, H, F, N] and claims.verdict(claims.decide(low)) == "partly supported"
    flipped = PRE.flip(0)  # layer 1 moves most, about half as far as the random net's layer 1
    worst = assess(flipped, RND, LOST - 0.4, PLANE)
    assert _statuses(worst) == [F, F, F, N] and claims.verdict(claims.decide(worst)) == "not supported"


def test_claim_parts_have_exactly_the_nine_keys():
    for parts in (assess(PRE, RND, LOST, PLANE), assess(PRE[:, :2], RND[:, :2], LOST[:2], PLANE)):
        decided = claims.decide(parts)
        assert all(set(p.claim_part()) == KEYS for p in decided)
    a = claims.decide(assess(PRE, RND, LOST, PLANE))[0].claim_part()
    assert a["test"] == "wilcoxon" and a["n"] == 8 and a["holds"] is True and len(a["ci95"]) == 2
    assert a["p_holm"] == pytest.approx(3 * a["p"])                   # Holm over the three tested parts


def test_a_paired_effect_an_unpaired_test_would_miss_is_found():
    # the random net's layer-1 change varies a lot from run to run; the DBN's is always a little below half of it
    rnd1 = torch.tensor([0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80])
    pre1 = TINY_FRACTION * rnd1 - 0.01
    assert stats.mann_whitney(TINY_FRACTION * rnd1, pre1)["p"] > 0.5       # unpaired: no difference seen
    rnd = torch.stack([rnd1, torch.ones(8), torch.ones(8)])
    pre = torch.stack([pre1, torch.ones(8), torch.ones(8)])
    (a,) = claims.decide(assess(pre, rnd, LOST, PLANE)[:1])
    assert a.status == claims.HOLDS and a.p == pytest.approx(2 / 256) and a.effect == pytest.approx(0.01)


def test_too_few_runs_are_not_tested():
    parts = assess(PRE[:, :claims.MIN_PAIRS - 1], RND[:, :claims.MIN_PAIRS - 1], LOST[:claims.MIN_PAIRS - 1], PLANE)
    assert _statuses(parts) == [claims.NOT_TESTED] * 4 and claims.verdict(parts) == "inconclusive"
    assert all("not testable at this scale" in p.evidence for p in parts[:3])
    assert all(p.p is None and p.n == claims.MIN_PAIRS - 1 and p.effect is not None for p in parts[:3])


def test_the_direction_rule():
    # a clear effect the other way: the DBN's layer 1 moves more than half as far as the random net's
    parts = claims.decide(assess(PRE, 0.2 * RND, LOST, PLANE))
    assert parts[0].status == claims.FAILS and parts[0].p < 0.01 and parts[0].effect < 0
    # the mean is positive (one large run) but 7 of 8 runs point the other way: the signed ranks decide against it
    lost = torch.tensor([0.49] * 7 + [3.0])
    c = claims.decide(assess(PRE, RND, lost, PLANE))[2]
    assert c.effect > 0 and c.numbers["rank_biserial"] < 0 and c.status == claims.FAILS


def test_assess_thresholds_are_the_documented_ones():
    rnd = torch.full((2, 8), 0.2)
    just_under = torch.stack([torch.full((8,), 0.2 * TINY_FRACTION - 1e-6), torch.full((8,), 0.5)])
    just_over = torch.stack([torch.full((8,), 0.2 * TINY_FRACTION + 1e-6), torch.full((8,), 0.5)])
    assert claims.decide(assess(just_under, rnd, LOST, PLANE))[0].status == claims.HOLDS
    assert claims.decide(assess(just_over, rnd, LOST, PLANE))[0].status == claims.FAILS
    assert claims.decide(assess(just_under, rnd, torch.full((8,), MATTERS_FRACTION + 1e-6), PLANE))[2].status \
        == claims.HOLDS
    assert claims.decide(assess(just_under, rnd, torch.full((8,), MATTERS_FRACTION - 1e-6), PLANE))[2].status \
        == claims.FAILS


def test_a_run_without_gain_makes_part_c_not_tested():
    lost = LOST.clone()
    lost[3] = float("nan")
    c = assess(PRE, RND, lost, PLANE)[2]
    assert c.status == claims.NOT_TESTED and "in 1 of 8 runs" in c.evidence and c.numbers["runs_without_gain"] == 1


def test_assess_one_hidden_layer_cannot_test_which_layer_moves_least():
    parts = assess(PRE[:1], RND[:1], LOST, PLANE)
    assert parts[1].status == claims.NOT_TESTED and "one hidden layer" in parts[1].evidence
    with pytest.raises(ValueError, match=r"\(L, M\)"):
        assess(PRE, RND[:2], LOST, PLANE)
    with pytest.raises(ValueError, match="one value per member"):
        assess(PRE, RND, LOST[:1], PLANE)


def test_paired_sentences():
    text = tiny_sentence(PRE, RND)
    assert text.startswith("Run by run") and "positive in 8 of 8 runs" in text and "t interval" in text
    assert least_sentence(PRE[:1]).startswith("With one hidden layer")
    assert "smallest relative change of hidden layers 2..3" in least_sentence(PRE)
    assert "the relative change of hidden layer 2 minus" in least_sentence(PRE[:2])
    assert "mean +0.194" in lost_sentence(LOST)      # mean share lost 5.55 / 8 = 0.69375, minus 0.5
    assert lost_sentence(torch.tensor([float("nan"), 0.5])).startswith("In 1 of 2 runs fine-tuning gained nothing")


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
    assert _problems(n_fields=500) == []
    (p,) = _problems(plane_classes=[3, 3, 8])
    assert p.startswith("plane_classes=[3, 3, 8] is not allowed")
    (p,) = _problems(finetune_batch_size=7001)
    assert p.startswith("finetune_batch_size=7001 is not allowed") and "7000 training digits of mnist-10k" in p
    assert _problems(finetune_batch_size=7001, dataset="mnist") == []
    assert len(_problems(finetune_batch_size=8000, pretrain_batch_size=8000)) == 2
    with pytest.raises(ParameterError) as err:
        SPEC.check({**SPEC.defaults(), "plane_classes": [1, 2, 2]})
    assert "\n" not in str(err.value)
    assert _problems(plane_classes=[1, 2])[0].startswith("plane_classes=[1, 2] is not allowed")  # its own check


# ------------------------------------------------------------------------------- tables and sentences
def test_pm_and_sentences():
    assert pm(0.12345, 0.01, ".2f", 2) == "0.12 ± 0.01"
    assert pm(0.12345, 0.01, ".2f", 1) == "0.12"
    assert [field_look(r) for r in (0.05, 0.3, 0.7)] == [
        "practically identical to the eye", "similar, with visible differences", "clearly different"]
    assert gain_text(11.27, 5.95) == "lowers the test error from 11.27 % to 5.95 %"
    assert gain_text(5.0, 5.0).startswith("does not lower the test error (5.00 % with the softmax alone")
    before = torch.tensor([[1.0, -2.0, 4.0], [0.5, 1.0, 0.0]])
    after = before + torch.tensor([[0.1, 0.0, 3.0], [-0.2, 0.0, 0.0]])
    assert field_change_ratio(before, after, 2) == pytest.approx(0.2 / 2.0)  # unit 2 not shown
    assert field_change_ratio(before, after, 3) == pytest.approx(3.0 / 4.0)


def test_share_lost_leaves_out_runs_without_gain():
    assert share_lost(torch.tensor([float("nan"), 0.5, 0.7])) == pytest.approx(0.6)
    assert share_lost(torch.tensor([float("nan"), float("nan")])) is None


def test_tables():
    c = LayerChange(torch.tensor([[0.1, 0.3], [0.2, 0.2]]), torch.tensor([[0.9, 0.9], [0.8, 0.8]]),
                    torch.tensor([[0.01, 0.03], [0.0, 0.0]]))
    t = layer_change_table({"rbm": c, "random": c}, ["1", "softmax"], 2)
    assert list(t.index) == [(KINDS["rbm"], "layer 1"), (KINDS["rbm"], "softmax"), ("random init", "layer 1"),
                             ("random init", "softmax")]
    assert t.index.names == [None, None]  # one header row
    assert t.loc[(KINDS["rbm"], "layer 1"), "relative change (%)"] == "20.00 ± 14.14"
    assert t.loc[(KINDS["rbm"], "layer 1"), "mean cosine, before vs after"] == "0.9000 ± 0.0000"
    assert t.loc[("random init", "layer 1"), "weights with flipped sign (%)"] == "2.00 ± 1.41"
    assert layer_change_table({"rbm": c}, ["1", "softmax"], 1).loc[(KINDS["rbm"], "layer 1"), "relative change (%)"] == "20.00"
    resets = {k: torch.tensor([[0.08, 0.10]]) for k in KINDS}
    lost = {"rbm": torch.tensor([[0.5, 0.7]]), "dae": torch.tensor([[float("nan"), float("nan")]])}
    r = reset_table(resets, lost, 2)
    assert r.index.names == [None, None]
    assert r.loc[(KINDS["rbm"], "layer 1"), "share of the gain lost"] == "60%"
    assert r.loc[(KINDS["dae"], "layer 1"), "share of the gain lost"] == "no gain"
    assert r.loc[(KINDS["rbm"], "layer 1"), "test error with the layer reset (%)"] == "9.00 ± 1.41"
    # mean 0.6 -+ t(0.975, 1) * 0.1414 / sqrt(2) = 0.6 -+ 1.2706
    assert r.loc[(KINDS["rbm"], "layer 1"), "95 % t interval of the share"] == "[-67%, 187%]"
    assert r.loc[(KINDS["dae"], "layer 1"), "95 % t interval of the share"] == "—"


def test_reference_tables_take_the_papers_numbers_by_depth():
    ours, erhan = reference_tables({"rbm": 5.951, "dae": 5.28, "random": 75.7}, 3)
    ref = LAROCHELLE2009_TABLE3.numbers["error"]
    col = "Larochelle et al. 2009, MNIST-small, 3 layers"
    assert ours[col].tolist() == [ref["rbm"][3], ref["autoassociator"][3], ref["random"][3]]
    assert ours["this chapter"].tolist() == [5.95, 5.28, 75.7]
    assert math.isnan(reference_tables({"rbm": 1.0, "dae": 1.0, "random": 1.0}, 5)[0][
        "Larochelle et al. 2009, MNIST-small, 5 layers"].iloc[0])
    assert "Larochelle et al. 2009, MNIST-small, 1 layer" in reference_tables({"rbm": 1.0, "dae": 1.0, "random": 1.0}, 1)[0]
    e = ERHAN2010_TABLE1.numbers
    assert erhan.loc["pre-trained, 2 layers", "test error (%)"] == f"{e['mean']['dae'][2]:.2f} ± {e['std']['dae'][2]:.2f}"
    assert list(erhan.index) == ["random init, 1 layer", "random init, 2 layers", "pre-trained, 1 layer",
                                 "pre-trained, 2 layers"]


def test_per_kind_results_entry():
    change = LayerChange(torch.tensor([[0.1], [1.0]]), torch.tensor([[0.9], [0.5]]), torch.tensor([[0.0], [0.2]]))
    res = SimpleNamespace(
        depth=1, layer_names=["1", "softmax"], changes={"rbm": change},
        errors={"rbm": torch.tensor([0.05]), "rbm_frozen": torch.tensor([0.10]), "random": torch.tensor([0.5])},
        resets={"rbm": torch.tensor([[0.08]])}, lost={"rbm": torch.tensor([[float("nan")]])})
    entry = per_kind(res, "rbm")
    assert entry["test_error"]["fine_tuned"] == pytest.approx(0.05) and entry["test_error"]["fine_tuned_std"] == 0.0
    assert entry["test_error"]["fine_tuned_layer_reset"] == [pytest.approx(0.08)]
    assert entry["gain_lost_layer_reset"] == [None]
    assert [r["layer"] for r in entry["layers"]] == ["1", "softmax"]


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
    assert len(plot_change_over_epochs({"a": [torch.rand(4, 3).tolist(), torch.rand(2, 3).tolist()]},
                                       ["1", "2", "out"]).axes) == 1  # per seed its epochs (2 seeds, 4 and 2)
    assert len(plot_test_errors({"x": torch.rand(3), "reset": torch.rand(3)}).axes) == 1
    plane = input_plane(torch.rand(3, 784, generator=g), resolution=4)
    fig = plot_decision_maps({"a": torch.zeros(4, 4, dtype=torch.long), "b": torch.ones(4, 4, dtype=torch.long)},
                             plane, [1, 2, 3])
    assert sum(1 for ax in fig.axes if ax.get_title() in ("a", "b")) == 2
    plt.close("all")


def _fits_the_page(fig) -> None:
    """At most page-wide, at least 60 % of it, and no text below the book's smallest font."""
    from pretraining.analysis.figures import PAGE_WIDTH, SMALLEST_FONT_PT

    w = fig.get_size_inches()[0]
    assert 0.6 * PAGE_WIDTH <= w <= PAGE_WIDTH + 1e-9, w
    fig.canvas.draw()
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    assert texts and min(t.get_fontsize() for t in texts) >= SMALLEST_FONT_PT


@pytest.mark.parametrize("n_fields, depth, epochs", [(16, 2, 1), (64, 3, 6), (64, 3, 50), (100, 5, 3)])
def test_figures_fit_the_page_at_every_size(n_fields, depth, epochs):
    g = torch.Generator().manual_seed(0)
    Wb = torch.randn(784, n_fields, generator=g)
    _fits_the_page(plot_receptive_field_change(Wb, Wb + 0.01, n=n_fields, title="DBN, first layer"))
    names = [str(i + 1) for i in range(depth)] + ["softmax"]
    ch = LayerChange(torch.rand(depth + 1, 3), torch.rand(depth + 1, 3), torch.rand(depth + 1, 3))
    fig = plot_layer_change({"DBN (RBM stack)": ch, "SDAE (auto-encoder stack)": ch, "random init": ch}, names)
    _fits_the_page(fig)
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == [f"layer {i + 1}" for i in range(depth)] + ["softmax"]
    hist = {k: torch.rand(3, epochs, depth + 1).tolist() for k in ("DBN", "SDAE", "random init")}
    _fits_the_page(plot_change_over_epochs(hist, names))
    bars = {f"(c) fine-tuned, layer {i + 1} reset": torch.rand(3) for i in range(depth)}
    _fits_the_page(plot_test_errors({"(a) frozen features, softmax trained": torch.rand(3), **bars}, title="DBN"))
    plane = input_plane(torch.rand(3, 784, generator=g), resolution=8)
    maps = {k: torch.randint(0, 10, (8, 8), generator=g) for k in ("(a) frozen", "(b) fine-tuned", "(c) reset")}
    _fits_the_page(plot_decision_maps(maps, plane, [3, 5, 8]))
    plt.close("all")


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_work_lists_every_training_of_the_run(profile, work_plan):
    from pretraining.chapters import ch02_finetuning_weight_change as ch2

    p, got, (n_train, n_valid, _) = work_plan(ch2, profile)
    n, sel = p["n_seeds"], p["finetune_select_seeds"]
    members = len(p["finetune_lr_grid"]) * sel + n - sel
    full = (784, *p["hidden_sizes"], 10)
    B = p["finetune_batch_size"]
    # DBN, SDAE and random init fully fine-tuned; the softmax alone on both stacks' top features
    want = [("finetune", full, members, n_train, p["finetune_epochs"], B, n_valid)] * 3
    want += [("finetune", (p["hidden_sizes"][-1], 10), members, n_train, p["softmax_epochs"], B, n_valid)] * 2
    assert sorted(got) == sorted(want)   # the stacks are chapter 1's: not counted again
