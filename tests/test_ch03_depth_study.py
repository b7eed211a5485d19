"""Tests of chapter 3's module (pretraining.chapters.ch03_depth_study): tiny nets on a few hundred real
digits, and the chapter's rules, statistics, sentences and claim parts on hand-made numbers."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np

import pytest
import torch

from pretraining.book import claims
from pretraining.book.specs import ParameterError
from pretraining.chapters import ch03_depth_study as ds
from pretraining.core.data import DataSplit, Subset, load_dataset
from pretraining.core.models import Classifier
from pretraining.core.selection import SelectionConfig, log_grid
from pretraining.core.train import DAEConfig, FinetuneConfig, RBMConfig, pretrain_stack

GRID = log_grid(0.1, 3.162, 5)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def split() -> DataSplit:
    full = load_dataset("mnist-10k")
    # rows spread through each part: mnist-10k's parts are stored sorted by class
    rows = lambda s, n: torch.linspace(0, len(s) - 1, n).round().long()  # noqa: E731
    cut = lambda s, n: Subset(s.x[rows(s, n)].clone(), s.y[rows(s, n)].clone())  # noqa: E731
    return DataSplit("tiny", full.sha256, cut(full.train, 300), cut(full.valid, 100), cut(full.test, 100))


class FakeChapter:
    """The parts of pretraining.book.runtime.Chapter the study uses; the cache is a dict that counts calls."""

    def __init__(self, data: DataSplit):
        self.data, self.device = data, torch.device("cpu")
        self.store: dict = {}
        self.computed: list[str] = []

    def cached(self, name, params, compute, *, version):
        import json
        key = name + json.dumps(params, sort_keys=True)
        if key not in self.store:
            self.computed.append(name)
            self.store[key] = compute()
        tensors, meta = self.store[key]
        return {k: v.clone() for k, v in tensors.items()}, meta

    def cached_many(self, works):  # the local executor: one after the other
        return [self.cached(w.name, w.params, w.compute, version=w.version) for w in works]


def study(ch, **kw) -> ds.DepthStudy:
    args = dict(depths=[1, 2], width=8, seeds=[0, 1, 2], rbm=RBMConfig(epochs=1, lr=0.05, batch_size=20),
                dae=DAEConfig(epochs=1, lr=0.05, batch_size=20), finetune=FinetuneConfig(epochs=2, lr=0.1, batch_size=20),
                selection=SelectionConfig(GRID, patience=1, max_extensions=0, select_seeds=1), stream_grid=GRID,
                member_chunk=4, progress=False)
    args.update(kw)
    return ds.DepthStudy(ch, **args)


# ----------------------------------------------------------------------------------------- stacks
@pytest.mark.parametrize("kind", ["rbm", "dae"])
def test_first_layers_of_a_deeper_stack_are_the_shallow_stack(split, kind):
    """Why one stack of the maximum depth serves every depth: greedy layers never look up."""
    cfg = RBMConfig(epochs=1, lr=0.05, batch_size=50) if kind == "rbm" else DAEConfig(epochs=1, lr=0.05, batch_size=50)
    deep, _ = pretrain_stack(kind, split.train.x, [6, 6, 6], cfg, [3, 4], progress=False)
    shallow, _ = pretrain_stack(kind, split.train.x, [6, 6], cfg, [3, 4], progress=False)
    cut = ds.truncated(deep, 2)
    assert cut.sizes == [784, 6, 6] and cut.layers[0] is deep.layers[0]
    for a, b in zip(cut.layers, shallow.layers):
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k
    with pytest.raises(ValueError, match="depth=4"):
        ds.truncated(deep, 4)


def test_initial_classifier(split):
    stack, _ = pretrain_stack("rbm", split.train.x, [5, 5, 5], RBMConfig(epochs=1, lr=0.05, batch_size=50), [7, 8],
                              progress=False)
    clf = ds.initial_classifier("rbm", 2, 5, [7, 8], stacks={"rbm": stack})
    assert clf.sizes == [784, 5, 5, 10] and clf.n_members == 2
    assert torch.equal(clf.weights[1], stack.layers[1].W) and clf.weights[1] is not stack.layers[1].W
    rnd = ds.initial_classifier("random", 2, 5, [7, 8])
    ref = Classifier.random([784, 5, 5, 10], [7, 8])
    assert all(torch.equal(a, b) for a, b in zip(rnd.parameters(), ref.parameters()))
    with pytest.raises(ValueError, match="init='gauss'"):
        ds.initial_classifier("gauss", 2, 5, [7, 8])
    with pytest.raises(ValueError, match="needs stacks"):
        ds.initial_classifier("dae", 2, 5, [7, 8], stacks={"rbm": stack})
    with pytest.raises(ValueError, match="2 members but 3 seeds"):
        ds.initial_classifier("rbm", 2, 5, [7, 8, 9], stacks={"rbm": stack})
    with pytest.raises(ValueError, match="sizes"):
        ds.initial_classifier("rbm", 2, 6, [7, 8], stacks={"rbm": stack})
    with pytest.raises(ValueError, match="sizes"):
        ds.initial_classifier("rbm", 4, 5, [7, 8], stacks={"rbm": stack})


# ----------------------------------------------------------------------------------------- the study
def test_study_runs_caches_and_chunks_give_the_same_nets(split):
    ch = FakeChapter(split)
    st = study(ch)
    results = st.run_all()
    assert set(results) == set(ds.INITS) and all(set(r) == {1, 2} for r in results.values())
    r = results["rbm"][2]
    assert len(r.test_error) == 3 and all(0 <= e <= 1 for e in r.test_error) and r.lr in GRID
    rec = r.selection  # the fair-fight record of the setting
    assert rec["grid"] == list(GRID) and len(rec["best_epoch"]) == 3 and len(rec["converged"]) == 3
    assert r.valid_error == pytest.approx(rec["valid_error"])
    assert sorted(ch.computed) == sorted(["rbm_stack", "dae_stack"] + [f"depthstudy_{i}_{d}" for i in ds.INITS
                                                                        for d in (1, 2)])
    assert st.run("rbm", 2) == r and len(ch.computed) == 8  # second call: from the cache
    # every seed's per-digit correctness on the test digits, consistent with its test error
    assert r.test_correct.shape == (3, len(split.test)) and r.test_correct.dtype == bool
    np.testing.assert_allclose(1 - r.test_correct.mean(axis=1), r.test_error, atol=1e-6)
    np.testing.assert_array_equal(st.run("rbm", 2).test_correct, r.test_correct)
    # members trained in chunks of 1 are the same networks as one batched run (up to float rounding)
    chunked = study(FakeChapter(split), member_chunk=1)
    for init in ds.INITS:
        np.testing.assert_allclose(chunked.run(init, 2).test_error, results[init][2].test_error, atol=0.015)


def test_the_test_set_chooses_nothing(split):
    """Selection sees train and validation only: scrambling the test labels changes no choice."""
    scrambled = DataSplit(split.name, split.sha256, split.train, split.valid,
                          Subset(split.test.x, split.test.y.flip(0)), split.n_classes)
    a, b = study(FakeChapter(split)).run("random", 2), study(FakeChapter(scrambled)).run("random", 2)
    assert a.lr == b.lr and a.selection == b.selection and a.valid_error == b.valid_error
    assert a.test_error != b.test_error  # the test set itself did change


def test_study_stream(split, monkeypatch):
    ch = FakeChapter(split)
    st = study(ch)
    a = st.stream("rbm", n_examples=200, batch_size=20, stream_seed=5)
    assert len(a.test_error) == 3 and a.steps[-1] == 10 and len(a.train_nll[-1]) == 3
    assert a.lr in a.grid and a.grid[:5] == list(GRID) and len(a.grid_error) == len(a.grid)
    finite = [e for e in a.grid_error if e is not None]
    assert a.grid_error[a.grid.index(a.lr)] == min(finite)  # the rate with the best validation error
    b = study(FakeChapter(split)).stream("rbm", n_examples=200, batch_size=20, stream_seed=5)
    assert a == b  # deterministic
    monkeypatch.setattr(ds, "STORED_STREAM_BYTES", 0)  # distorted on demand by every run instead of stored
    assert study(FakeChapter(split)).stream("rbm", n_examples=200, batch_size=20, stream_seed=5) == a
    with pytest.raises(ValueError, match="batch_size=300"):
        st.stream("random", n_examples=200, batch_size=300, stream_seed=5)


@pytest.mark.parametrize("kw, match", [
    ({"depths": [2, 1]}, "increasing"), ({"depths": [1, 1]}, "distinct"), ({"depths": []}, "depths=\\[\\]"),
    ({"width": 0}, "width=0"), ({"seeds": [1, 1]}, "distinct"),
    ({"selection": SelectionConfig(GRID, select_seeds=4)}, "select_seeds=4"), ({"member_chunk": 0}, "member_chunk=0"),
])
def test_study_bad_parameters(split, kw, match):
    with pytest.raises(ValueError, match=match):
        study(FakeChapter(split), **kw)


def test_study_bad_config_type_and_depth(split):
    with pytest.raises(TypeError, match="rbm=.* must be a RBMConfig"):
        study(FakeChapter(split), rbm=DAEConfig(epochs=1, lr=0.1))
    with pytest.raises(ValueError, match="depth=3"):
        study(FakeChapter(split)).run("random", 3)


# ----------------------------------------------------------------------------------------- statistics
def synthetic(shift_deep: float, n: int = 12) -> dict:
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.001, n)  # noqa: E731
    rnd = {1: 0.040 + noise(), 2: 0.038 + noise(), 4: 0.045 + 3 * noise()}
    pre = {1: 0.030 + noise(), 2: 0.028 + noise(), 4: 0.025 + shift_deep + noise()}
    return {"random": rnd, "rbm": pre}


def seed_effect(n: int = 10, gain: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
    """Random-init and pre-trained errors of n seeds whose seed-to-seed spread (3 to 6 %) dwarfs a small,
    consistent gain of each pre-trained net over its own twin (gain +- 0.0002)."""
    rng = np.random.default_rng(3)
    rnd = np.linspace(0.03, 0.06, n)
    return rnd, rnd - gain + rng.uniform(-0.0002, 0.0002, n)


def test_statistics_on_separated_samples():
    st = ds.study_statistics(synthetic(0.0))
    assert st["overlap"]["rbm"] == {1: 0.0, 2: 0.0, 4: 0.0} and st["directed_overlap"]["rbm"] == {1: 0.0, 2: 0.0, 4: 0.0}
    for d in (1, 2, 4):
        vs = st["vs_random"]["rbm"][d]
        assert vs["test"] == "wilcoxon" and vs["n"] == 12 and vs["positive"] == 12
        assert vs["p"] == pytest.approx(2 / 2**12)  # every one of 12 differences positive, exact test
        assert vs["ci95"][0] < vs["effect"] < vs["ci95"][1] and vs["ci95"][0] > 0
    assert st["vs_random"]["rbm"][1]["effect"] == pytest.approx(0.010, abs=0.001)  # 4.0 % - 3.0 %
    assert st["best_depth"]["random"]["best"] == 2 and st["best_depth"]["rbm"]["best"] == 4
    assert st["summary"]["rbm"][1]["n"] == 12
    lo, hi = st["median_ci95"]["random"][2]
    assert lo <= st["summary"]["random"][2]["median"] <= hi


def test_a_paired_effect_that_an_unpaired_test_misses_is_found():
    rnd, pre = seed_effect()
    assert ds.stats.mann_whitney(pre, rnd)["p"] > 0.5  # the spread over seeds hides the gain
    diff = ds.stats.paired_difference(rnd, pre)
    assert diff["p"] == pytest.approx(2 / 2**10) and diff["effect"] == pytest.approx(0.001, abs=0.0002)
    f = ds.stream_check(rnd, pre)
    assert f["holds"] is True and f["direction"] is True and f["stat"]["p"] == pytest.approx(2 / 2**10)
    # the same numbers as depth-1 errors: part (a) holds, (c) (the distributions) fails
    checks = ds.claim_checks(ds.study_statistics({"random": {1: rnd}, "rbm": {1: pre}}))
    assert _holds(checks) == {"a": True, "b": None, "c": False, "d": None, "e": None}


def test_directed_overlap():
    assert ds.directed_overlap([1, 2], [3, 4]) == 0.0  # pre-trained below: no overlap
    assert ds.directed_overlap([3, 4], [1, 2]) == 2.0  # pre-trained above: as bad as it gets
    assert ds.directed_overlap([1, 3], [2, 4]) == pytest.approx(ds.stats.overlap([1, 3], [2, 4])) == 0.5


def _holds(checks) -> dict:
    return {c["part"]: c["holds"] for c in checks}


def test_claim_checks():
    good = ds.claim_checks(ds.study_statistics(synthetic(0.0)))
    assert {c["part"] for c in good} == set("abcde") and all(c["holds"] for c in good), good
    assert all(c["kind"] == ("random" if c["part"] == "d" else "rbm") for c in good)
    a = next(c for c in good if c["part"] == "a")
    assert a["stat"]["test"] == "wilcoxon" and a["stat"]["p"] < 0.05 and a["stat"]["n"] == 12 and a["direction"]
    assert a["numbers"]["mean"] < a["numbers"]["mean_random"] and a["stat"]["effect"] > 0
    c = next(c for c in good if c["part"] == "c")
    assert c["stat"]["test"] == "threshold" and "p" not in c["stat"] and c["stat"]["effect"] == 0.0
    # pre-trained deep nets made worse than random deep nets: parts b, c, e fail, a and d still hold
    bad = ds.claim_checks(ds.study_statistics(synthetic(0.03)))
    assert _holds(bad) == {"a": True, "b": False, "c": False, "d": True, "e": False}
    e = next(c for c in bad if c["part"] == "e")
    assert e["stat"]["p"] < 0.05 and e["stat"]["effect"] < 0 and e["direction"] is False  # significant, wrong way
    # deep pre-trained nets only as good as 2 layers: "4 beats 2" needs a significant paired difference
    assert _holds(ds.claim_checks(ds.study_statistics(synthetic(0.003)))) == \
        {"a": True, "b": True, "c": True, "d": True, "e": False}
    # depths 2 and 4 missing: those parts are not applicable
    only1 = ds.claim_checks(ds.study_statistics({k: {1: v[1]} for k, v in synthetic(0.0).items()}))
    assert _holds(only1) == {"a": True, "b": None, "c": True, "d": None, "e": None}


def test_the_gain_growth_is_tested_seed_by_seed():
    """(b) compares g(deep) - g(1) per seed: a larger mean gain at depth 4 driven by one seed fails."""
    data = synthetic(0.0, n=10)
    data["rbm"][4] = data["random"][4] - (data["random"][1] - data["rbm"][1])  # the same gain as at 1 layer ...
    data["rbm"][4][0] -= 0.05  # ... except one seed with a huge extra gain
    b = next(c for c in ds.claim_checks(ds.study_statistics(data)) if c["part"] == "b")
    assert b["numbers"]["gain_deep"] > b["numbers"]["gain_1"]  # the old comparison of means would say "holds"
    assert b["holds"] is False and b["stat"]["p"] > 0.05


def test_the_direction_rule():
    # (d) needs its further condition: 2 layers must be the best depth, whatever the test says
    data = synthetic(0.0)
    data["random"][1] = data["random"][2] - 0.002  # now 1 layer is best without pre-training
    d = next(c for c in ds.claim_checks(ds.study_statistics(data)) if c["part"] == "d")
    assert d["stat"]["p"] < 0.05 and d["stat"]["effect"] > 0 and d["direction"] is False and d["holds"] is False
    assert "the best depth is 1" in d["text"] and "not 2, so the part fails" in d["text"]
    # (e) needs less variation than random init at the deep depth
    data = synthetic(0.0)
    data["rbm"][4] = 0.025 + 5 * (data["random"][4] - 0.045)  # lower, but five times as spread
    e = next(c for c in ds.claim_checks(ds.study_statistics(data)) if c["part"] == "e")
    assert e["numbers"]["std_deep"] > e["numbers"]["std_deep_random"] and e["holds"] is False
    assert e["direction"] is False and "not smaller" in e["text"]
    # a mean that points one way and signed ranks that point the other: no direction
    rnd = np.full(10, 0.05)
    pre = rnd + np.array([0.001] * 9 + [-0.05])  # nine seeds worse by a little, one better by a lot
    f = ds.stream_check(rnd, pre)
    assert f["numbers"]["mean_difference"] > 0 and f["numbers"]["rank_biserial"] < 0 and f["direction"] is False
    # a significant effect in the wrong direction fails after Holm too
    (part,) = claims.decide([claims.from_test("f", "x", f["stat"] | {"p": 1e-4, "effect": -0.01}, f["text"],
                                              direction=False, ci95=f["stat"]["ci95"])])
    assert part.status == claims.FAILS


@pytest.mark.parametrize("n, tested", [(7, False), (8, True)])
def test_paired_parts_are_not_tested_with_fewer_than_min_pairs_seeds(n, tested):
    checks = ds.claim_checks(ds.study_statistics(synthetic(0.0, n=n)))
    h = _holds(checks)
    assert h["c"] is True  # a threshold, no paired test
    for part in "abde":
        assert (h[part] is not None) == tested, (part, checks)
        assert (h[part] is True) == tested  # with 8 seeds all differences positive: p = 2/256
    if not tested:
        a = next(c for c in checks if c["part"] == "a")
        assert a["text"].endswith("with 7 paired seeds the part is not testable at this scale (a paired test needs "
                                  "at least 8; with 7 the smallest possible two-sided signed-rank p is 0.016)")
        assert "(+1.02 points), positive in 7 of 7 seeds" in a["text"]  # the numbers stay (4.03 % - 3.01 %)
        assert "Wilcoxon" not in a["text"]  # ... but no p that could never have been small
        assert "p" not in a["stat"] and a["stat"]["n"] == 7 and a["direction"] is None
    assert (ds.stream_check(*seed_effect(n))["holds"] is None) == (not tested)


def _record(n: int, converged: bool = True) -> dict:
    """A selection record of n seeds (all converged or none), rate 0.8 inside its grid."""
    return {"lr": 0.8, "grid": [0.2, 0.4, 0.8, 1.6, 3.2], "grid_valid_error": [0.1] * 5, "extensions": 0,
            "at_edge": False, "epoch_budget": 10, "best_epoch": [5] * n, "epochs_run": [8] * n,
            "train_nll": [0.1] * n, "final_train_nll": [0.1] * n, "valid_error": [0.05] * n,
            "converged": [converged] * n, "n_converged": n if converged else 0, "setting_converged": converged}


def _result(errors: dict, stream: dict | None = None, correct: dict | None = None,
            unconverged: Sequence[tuple[str, int]] = ()) -> ds.Result:
    """A Result from hand-made errors {init: {depth: values}} ("dae" = "rbm" when missing) and, optionally,
    per-digit correctness {init: {depth: (S, N) bools}}; the settings in ``unconverged`` did not converge."""
    errors = {**errors, "dae": errors.get("dae", errors["rbm"])}
    depths = sorted(errors["random"])
    settings = {i: {d: ds.SettingResult(i, d, list(map(float, v)), list(map(float, v)), 0.8,
                                        _record(len(v), (i, d) not in unconverged),
                                        test_correct=None if correct is None else correct[i][d])
                    for d, v in per.items()} for i, per in errors.items()}
    stream = stream or {"random": errors["random"][depths[0]], "rbm": errors["rbm"][depths[0]]}
    streams = {i: ds.StreamResult(i, list(map(float, v)), [1], [[1.0] * len(v)]) for i, v in stream.items()}
    return ds.analyse(settings, streams, depths)


class _Ch:
    params = {"n_seeds": 12}


def test_a_part_that_compares_a_setting_that_did_not_converge_is_not_tested():
    rng = np.random.default_rng(0)
    errors = {"random": {d: list(0.05 + 0.01 * d + 0.001 * rng.random(10)) for d in (1, 2, 4)},
              "rbm": {d: list(0.03 + 0.001 * rng.random(10)) for d in (1, 2, 4)}}
    fair = {(c["part"], c["kind"]): c for c in _result(errors).checks}
    gated = {(c["part"], c["kind"]): c for c in _result(errors, unconverged=[("random", 4)]).checks}
    assert fair[("a", "rbm")]["holds"] is True and gated[("a", "rbm")] == fair[("a", "rbm")]  # depth 1 only
    for key in [("b", "rbm"), ("c", "rbm"), ("d", "random"), ("e", "rbm")]:  # they compare random at 4 layers
        assert fair[key]["holds"] is not None and gated[key]["holds"] is None, key
        assert gated[key]["text"].startswith("not tested at this scale: no pre-training at 4 hidden layers")
        assert "p" not in gated[key]["stat"]
    assert ds.needed_settings("f", "rbm", [1, 2, 4], 4) == []  # the stream has no epochs to converge in


CLAIM_PART_KEYS = {"part", "statement", "test", "effect", "ci95", "p", "p_holm", "n", "holds"}


def test_claim_parts_keys_statuses_and_verdict():
    parts = ds.claim_parts(_Ch(), _result(synthetic(0.0)))
    assert [p.key for p in parts] == ["a-rbm", "a-dae", "b-rbm", "b-dae", "c-rbm", "c-dae", "d", "e-rbm",
                                      "e-dae", "f-rbm"]
    decided = claims.decide(parts)
    assert all(p.status == claims.HOLDS for p in decided) and claims.verdict(decided) == "supported"
    assert parts[0].claim == "pre-training lowers the error of 1 hidden layer [RBM pre-training]"
    assert parts[6].claim == "without pre-training 2 layers are best and 4 are worse"
    assert {"mean", "mean_random", "mean_difference", "rank_biserial"} <= set(parts[0].numbers)
    entries = [p.claim_part() for p in decided]
    assert all(set(e) == CLAIM_PART_KEYS for e in entries)
    by_key = {e["part"]: e for e in entries}
    tested = [e for e in entries if e["test"] == "wilcoxon"]
    assert len(tested) == 8 and all(e["p_holm"] >= e["p"] and e["n"] == 12 and e["effect"] > 0 for e in tested)
    assert by_key["a-rbm"]["p_holm"] == pytest.approx(8 * by_key["a-rbm"]["p"])  # all 8 equal: Holm = 8 p
    assert by_key["c-rbm"]["test"] == "threshold" and by_key["c-rbm"]["p"] is None and by_key["c-rbm"]["effect"] == 0.0
    bad = {p.key: p.status for p in claims.decide(ds.claim_parts(_Ch(), _result(synthetic(0.03))))}
    assert bad["b-rbm"] == bad["e-dae"] == claims.FAILS and bad["a-rbm"] == claims.HOLDS
    assert claims.verdict(claims.decide(ds.claim_parts(_Ch(), _result(synthetic(0.03))))) == "partly supported"


def test_claim_parts_with_two_seeds_and_two_depths_like_the_smoke_profile():
    data = {"random": {1: [0.05, 0.051], 2: [0.052, 0.053]}, "rbm": {1: [0.04, 0.041], 2: [0.03, 0.031]}}
    parts = {p.key: p for p in claims.decide(ds.claim_parts(_Ch(), _result(data)))}
    status = {k: p.status for k, p in parts.items()}
    assert status == {"a-rbm": "not tested", "a-dae": "not tested", "b-rbm": "not tested", "b-dae": "not tested",
                      "c-rbm": "holds", "c-dae": "holds", "d": "not tested", "e-rbm": "not tested",
                      "e-dae": "not tested", "f-rbm": "not tested"}
    assert "with 2 paired seeds the part is not testable at this scale" in parts["a-rbm"].evidence
    assert parts["d"].evidence == "needs depth 2 and a deeper one"
    assert parts["d"].claim == "without pre-training 2 layers are best and 4 are worse"
    assert parts["b-rbm"].claim == "the gain is larger at 2 layers than at 1 [RBM pre-training]"
    assert "with 2 paired seeds" in parts["f-rbm"].evidence
    a = parts["a-rbm"].claim_part()
    assert set(a) == CLAIM_PART_KEYS and a["holds"] is None and a["p"] is None and a["n"] == 2
    assert a["effect"] == pytest.approx(0.01)


def test_statistics_bad_input():
    with pytest.raises(ValueError, match="init='x'"):
        ds.study_statistics({"x": {1: [0.1, 0.2]}})
    with pytest.raises(TypeError):
        ds.study_statistics({})
    with pytest.raises(ValueError, match="'random'"):
        ds.claim_checks(ds.study_statistics({"rbm": {1: [0.1, 0.2]}}))
    with pytest.raises(ValueError, match="same length"):  # paired: every setting has the same seeds
        ds.study_statistics({"random": {1: [0.1, 0.2, 0.3]}, "rbm": {1: [0.1, 0.2]}})


def test_reference_rows():
    rows = ds.reference_rows(ds.study_statistics(synthetic(0.0))["summary"])
    assert [r["hidden layers"] for r in rows] == [1, 2, 3, 4, 5]  # 3, 5: only the paper has them
    five = rows[-1]
    assert five["Erhan 2010 Fig. 1 median, pre-trained"] == 1.37 and five["Erhan 2010 Fig. 1 median, random"] is None
    assert five["this book, random: median"] is None and rows[2]["this book, rbm: median"] is None
    assert rows[0]["Larochelle 2009 Table 3, rbm"] == 3.17
    assert rows[1]["Erhan 2010 Table 1, dae: mean (std)"] == "1.37 (0.09)"
    assert rows[0]["this book, rbm: median"] == pytest.approx(100 * np.median(synthetic(0.0)["rbm"][1]))


def test_stream_check():
    rng = np.random.default_rng(1)
    rnd, pre = 0.05 + rng.normal(0, 0.001, 10), 0.04 + rng.normal(0, 0.001, 10)
    c = ds.stream_check(rnd, pre)
    assert c["part"] == "f" and c["holds"] is True and c["numbers"]["overlap"] == 0.0
    assert c["text"] == ds.stream_sentence(rnd, pre) and "positive in 10 of 10 seeds" in c["text"]
    assert c["stat"]["effect"] == pytest.approx(np.mean(rnd - pre))
    assert ds.stream_check(pre, rnd)["holds"] is False
    assert ds.stream_check(rnd[:3], pre[:3])["holds"] is None  # 3 paired seeds: not tested
    with pytest.raises(ValueError, match="kind='random'"):
        ds.stream_check(rnd, pre, "random")


def test_claim_checks_with_deep_equal_two_skips_the_depth_comparisons():
    data = {k: {1: v[1], 2: v[2]} for k, v in synthetic(0.0).items()}
    holds = {c["part"]: c["holds"] for c in ds.claim_checks(ds.study_statistics(data), deep=2)}
    # the gains at 1 and 2 layers are equal by construction (1 point each): no growth is found
    assert holds == {"a": True, "b": False, "c": True, "d": None, "e": None}


# ----------------------------------------------------------------------------------------- what the test set resolves
def _correct(n_test: int, wrong: Sequence[Sequence[int]]) -> np.ndarray:
    """(S, n_test) correctness with seed s wrong on the digits wrong[s]."""
    out = np.ones((len(wrong), n_test), dtype=bool)
    for s, w in enumerate(wrong):
        out[s, list(w)] = False
    return out


def test_resolution_rows_by_hand():
    n = 100
    correct = {
        "random": {1: _correct(n, [range(10), range(4)]), 2: _correct(n, [range(6), range(2, 8)])},
        "rbm": {1: _correct(n, [range(5), range(3)]), 2: _correct(n, [range(3), range(5)])},  # the best two agree
        "dae": {1: _correct(n, [range(5), range(3)]), 2: _correct(n, [range(3), range(5)])},
    }
    errors = {i: {d: [float(1 - c[s].mean()) for s in range(2)] for d, c in per.items()} for i, per in correct.items()}
    settings = {i: {d: ds.SettingResult(i, d, errors[i][d], valid, 0.8, _record(2), test_correct=correct[i][d])
                    for d, valid in ((1, [0.2, 0.1]), (2, [0.3, 0.3]))} for i in ds.INITS}
    rows = {(r["init"], r["depth"]): r for r in ds.resolution_rows(settings, [1, 2])}
    one, two = rows[("random", 1)], rows[("random", 2)]
    # best by validation: seed 1 at depth 1 (0.1 < 0.2), seed 0 at depth 2 (a tie: the first seed)
    assert one["seed_index"] == 1 and two["seed_index"] == 0
    assert one["test_error"] == pytest.approx(0.04) and two["test_error"] == pytest.approx(0.06)
    assert one["se"] == pytest.approx(np.sqrt(0.04 * 0.96 / 100)) and two["difference"] is None
    # depth-1 net wrong on digits 0-3, 2-layer net wrong on 0-5: digits 4, 5 only the depth-1 net gets right
    assert one["only_this"] == 2 and one["only_two"] == 0 and one["difference"] == pytest.approx(-0.02)
    assert one["p"] == pytest.approx(0.5)  # 2 discordant digits, both one way: 2 * 0.5**2
    assert one["se_difference"] == pytest.approx(np.sqrt((0.02 - 0.02**2) / 100))
    assert rows[("rbm", 1)]["only_this"] == rows[("rbm", 1)]["only_two"] == 0 and rows[("rbm", 1)]["p"] == 1.0
    assert ds.resolution_rows(settings, [1]) == []  # no depth 2
    text = ds.resolution_sentence(list(rows.values()))
    assert text.startswith("On these 100 test digits the best single nets' binomial standard errors are ")
    assert text.endswith("0 of the 3 differences have McNemar p < 0.05 (uncorrected)")
    assert ds.resolution_sentence([]) == "The per-digit comparison was not made: it needs depth 2."
    frame = ds.resolution_frame(list(rows.values()))
    assert frame.loc[("no pre-training", 1)]["minus 2 layers (points)"] == pytest.approx(-2.0)
    # through analyse: a Result carries the rows
    res = _result({i: {d: errors[i][d] for d in (1, 2)} for i in ("random", "rbm")},
                  correct={i: correct[i] for i in ds.INITS})
    assert len(res.resolution) == 6 and res.resolution[0]["init"] == "random"
    assert _result(synthetic(0.0)).resolution == []  # no per-digit results stored

# ----------------------------------------------------------------------------------------- the spec and its rules
def _values(**kw) -> dict:
    return {**ds.SPEC.defaults(), **kw}


def test_spec_defaults_are_valid_and_paper_numbers_come_from_the_references():
    assert ds.SPEC.problems(_values()) == []
    assert "1.82, 1.76, 1.83, 2.16 %" in ds.SPEC.paper


@pytest.mark.parametrize("kw, message", [
    ({"depths": [1, 3, 2]}, "depths=[1, 3, 2] is not allowed: increasing numbers of hidden layers without repeats"),
    ({"depths": [1, 2, 2]}, "depths=[1, 2, 2] is not allowed: increasing"),
    ({"finetune_select_seeds": 11}, "finetune_select_seeds=11 is not allowed: at most n_seeds (10)"),
    ({"n_seeds": 10001, "finetune_select_seeds": 2}, "n_seeds=10001 is not allowed: an integer >= 2 and <= 10000"),
    ({"stream_batch_size": 100, "stream_examples": 99}, "stream_batch_size=100 is not allowed: at most stream_examples (99)"),
    ({"pretrain_batch_size": 7001}, "pretrain_batch_size=7001 is not allowed: at most the 7000 training digits of mnist-10k"),
    ({"finetune_batch_size": 7001}, "finetune_batch_size=7001 is not allowed: at most the 7000 training digits"),
    ({"finetune_lr_grid": [0.5, 0.5, 1, 2, 4]}, "finetune_lr_grid=[0.5, 0.5, 1.0, 2.0, 4.0] is not allowed: increasing"),
    ({"finetune_lr_grid": [0.1, 0.2, 0.4, 0.8, 1.6]}, "finetune_lr_grid=[0.1, 0.2, 0.4, 0.8, 1.6] is not allowed: "
                                                       "rates spanning at least 30x"),
    ({"stream_lr_grid": [1.0, 2.0]}, "stream_lr_grid=[1.0, 2.0] is not allowed: a list of 5 to 20 items"),
    ({"stream_lr_grid": [0.01, 0.02, 0.04, 0.5, 1.0]}, "stream_lr_grid=[0.01, 0.02, 0.04, 0.5, 1.0] is not allowed: "
                                                        "log-spaced rates"),
])
def test_rules_refuse_bad_combinations_with_one_line(kw, message):
    problems = ds.SPEC.problems(_values(**kw))
    assert len(problems) == 1 and problems[0].startswith(message) and "\n" not in problems[0], problems
    with pytest.raises(ParameterError, match="is not allowed"):
        ds.SPEC.check(_values(**kw))


def test_batch_rule_uses_the_chosen_data_set():
    assert ds.SPEC.problems(_values(dataset="mnist", pretrain_batch_size=7001)) == []


def test_make_study_follows_the_parameters_and_the_one_seed_rule(split):
    class Ch(FakeChapter):
        params = _values(seed=3, n_seeds=4, rbm_epochs=2, dae_epochs=7, dae_noise=0.1, pretrain_batch_size=30)

    st = ds.make_study(Ch(split), progress=False)
    assert st.seeds == [30000, 30001, 30002, 30003]
    assert st.configs["rbm"].epochs == 2 and st.configs["dae"].epochs == 7 and st.configs["dae"].noise == 0.1
    assert st.configs["rbm"].batch_size == st.configs["dae"].batch_size == 30
    assert st.selection.lr_grid == tuple(ds.SPEC.params["finetune_lr_grid"].default)
    assert st.selection.patience == ds.SPEC.params["finetune_patience"].default
    assert st.finetune_config.batch_size == 50
    assert st.finetune_config.epochs == ds.SPEC.params["finetune_epochs"].default


# ----------------------------------------------------------------------------------------- text, tables, figures
def test_finetune_flops_by_hand():
    # depth 1: 784*10 + 10*10 = 7940 weights; depth 2: + 10*10 = 8040; 6 * weights * 100 digits * 2 epochs * 3 seeds
    assert ds.finetune_flops([1, 2], 10, 100, 2, 3) == 6 * (7940 + 8040) * 100 * 2 * 3 * 3
    with pytest.raises(ValueError, match="width=0"):
        ds.finetune_flops([1], 0, 100, 2, 3)


def test_depths_and_rates_text():
    assert ds.depths_text([1, 2, 3, 4, 5]) == "1, 2, 3, 4 or 5" and ds.depths_text([3]) == "3"
    text = ds.rates_text(_values(finetune_lr_grid=[0.1, 0.3162, 1.0, 3.162, 10.0], finetune_select_seeds=2,
                                 finetune_max_extensions=3, finetune_patience=4, finetune_epochs=30))
    assert text == ("chosen per depth and initialisation from 5 log-spaced rates, 0.1 to 10, widened by one step "
                    "beyond an edge up to 3 times, by the mean validation error of the first 2 seeds; every net "
                    "stops 4 epochs after its best validation error (at most 30 epochs) and is reported at that "
                    "best epoch")
    assert ds.deep_depth([1, 2, 3, 4, 5]) == 4 and ds.deep_depth([1, 2]) == 2


def test_did_not_learn_and_failed_sentence():
    medians = {("a", 1): 5.0, ("a", 2): 4.0, ("b", 1): 4.5, ("b", 5): 89.0, ("b", 2): 19.0}
    failed = ds.did_not_learn(medians)  # typical = 5.0: above 20 % is "did not learn"
    assert failed == {("b", 5): 89.0}
    assert ds.failed_sentence(failed) == "Did not learn in this run: b with 5 hidden layers (median 89.0 %)."
    assert ds.failed_sentence({}) == "Every setting learned: no median is far above the others."
    assert ds.failed_sentence({("x", 3): 50.0, ("y", 1): 60.0}).startswith("Did not learn in this run: y with 1 hidden layer ")


def test_plot_error_by_depth_cuts_the_axis_above_the_settings_that_learned():
    rng = np.random.default_rng(0)
    errors = {i: {d: 0.05 + rng.normal(0, 0.002, 4) for d in (1, 2)} for i in ds.INITS}
    errors["random"][2] = 0.89 + rng.normal(0, 0.002, 4)
    fig, failed = ds.plot_error_by_depth(errors, title="t")
    assert list(failed) == [("no pre-training", 2)] and fig.axes[0].get_title() == "t"
    assert fig.axes[0].get_ylim()[1] < 10  # percent: the 89 % box is off the axis
    assert any("did not learn" in t.get_text() for t in fig.axes[0].texts)
    fig, failed = ds.plot_error_by_depth({i: {1: [0.05, 0.06]} for i in ds.INITS})
    assert failed == {} and not fig.axes[0].texts


def test_hist_sentence_counts_seeds_that_beat_their_twin():
    errors = {"random": {1: [0.05, 0.06, 0.04]}, "rbm": {1: [0.04, 0.055, 0.045]}, "dae": {1: [0.07, 0.08, 0.03]}}
    text = ds.hist_sentence(errors, 1)
    # rbm: seed 0 (0.04 < 0.05) and seed 1 (0.055 < 0.06) beat their twins, seed 2 does not
    assert text == ("RBM pre-training beats its no-pre-training twin (the same seed) in 2 of 3 seeds (medians 4.50 % "
                    "vs 5.00 %); DAE pre-training beats its no-pre-training twin (the same seed) in 1 of 3 seeds "
                    "(medians 7.00 % vs 5.00 %)")


def test_statistics_frame_and_best_depth_text():
    data = synthetic(0.0)
    data["dae"] = data["rbm"]
    frame = ds.statistics_frame(ds.study_statistics(data), [1, 2, 4], n_test=2000)
    assert frame.shape[0] == 9 and frame.index.names == ["initialisation", "hidden layers"]
    row = frame.loc[("RBM pre-training", 1)]
    assert row["mean %"] == pytest.approx(100 * np.mean(data["rbm"][1])) and row["overlap"] == 0.0
    mean = np.mean(data["rbm"][1])
    assert row["SE of one net %"] == pytest.approx(100 * np.sqrt(mean * (1 - mean) / 2000))
    assert row["gain % (paired mean)"] == pytest.approx(100 * np.mean(data["random"][1] - data["rbm"][1]))
    assert row["beats own twin"] == 1.0 and row["Wilcoxon p"] == pytest.approx(2 / 2**12)
    assert "Mann–Whitney p" not in frame.columns and "P(beats random)" not in frame.columns
    assert np.isnan(frame.loc[("no pre-training", 1)]["overlap"])
    assert "SE of one net %" not in ds.statistics_frame(ds.study_statistics(data), [1]).columns
    assert ds.best_depth_text({"best": 2, "probability": 0.98}) == \
        "2 hidden layers (lowest mean in 98 % of the bootstrap replicates)"
    assert ds.best_depth_text(None) == "only one depth was run"


def test_why_sentence():
    p = _values(profile="quick", n_seeds=10, width=200, rbm_epochs=10, dae_epochs=10, finetune_epochs=30)
    assert ds.why_sentence("supported", p, 7000) == ""
    text = ds.why_sentence("partly supported", p, 7000)
    assert text.startswith("Where a part fails, the likely reasons lie in the scale of this profile — 10 seeds "
                           "instead of 400, 200 units instead of about 800, 10 + at most 30 epochs instead of 50 + 50, "
                           "7,000 training digits instead of 50,000")
    assert "2 (RBM) or 3 (DAE) + at most 30 epochs" in ds.why_sentence(
        "not supported", _values(rbm_epochs=2, dae_epochs=3, finetune_epochs=30), 7000)
    assert ds.why_sentence("partly supported", _values(profile="paper"), 50000) == "This run is at the paper's scale."
    two = ds.why_sentence("supported", _values(n_seeds=2), 7000)
    assert two == ("With 2 seeds per setting, fewer than the 8 paired seeds this book tests a part on (at level 0.05), "
                   "the parts decided by a paired test were not tested.")
    assert ds.why_sentence("supported", _values(n_seeds=8), 7000) == ""


def test_results_record_and_finding():
    res = _result(synthetic(0.0))
    p = _values(depths=[1, 2, 4], n_seeds=12)
    rec = ds.results_record(p, res)
    assert rec["depths"] == [1, 2, 4] and set(rec["test_error"]["rbm"]) == {"1", "2", "4"}
    assert rec["best_depth"] == {"random": 2, "rbm": 4, "dae": 4} and rec["overlap"]["dae"]["4"] == 0.0
    assert rec["wilcoxon_p"]["rbm"]["1"] == pytest.approx(2 / 2**12) and rec["beats_twin"]["dae"]["2"] == 1.0
    assert rec["paired_gain"]["rbm"]["1"] == pytest.approx(res.stats["vs_random"]["rbm"][1]["effect"])
    assert "mannwhitney_p" not in rec and rec["test_set_resolution"] == []
    assert rec["chosen_lr"]["random"]["1"] == 0.8 and rec["n_seeds"] == 12
    assert rec["selection"]["rbm"]["4"]["grid"] == [0.2, 0.4, 0.8, 1.6, 3.2] and rec["converged"]["dae"]["2"] is True
    assert set(rec["stream_selection"]) == {"random", "rbm"}
    finding = ds.finding_sentence(p, res, 9, 10)
    assert finding.startswith(f"12 seeds per setting, {p['width']} units per layer: mean test error at 1 / 4 hidden "
                              "layers ")
    assert finding.endswith("best depth 2 / 4 / 4; 9 of 10 parts of the claim hold")
    assert ds.finding_sentence(_values(depths=[2, 4]), res, 1, 2) == "1 of 2 parts of the claim hold"


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_work_lists_every_training_of_the_run(profile, work_plan):
    import math

    p, got, (n_train, n_valid, _) = work_plan(ds, profile)
    n, sel, w, chunk = p["n_seeds"], p["finetune_select_seeds"], p["width"], p["member_chunk"]
    top = max(p["depths"])
    layers = [(784, w)] + [(w, w)] * (top - 1)
    want = [(kind, s, n, n_train, p[f"{kind}_epochs"], p["pretrain_batch_size"], 0)
            for kind in ("rbm", "dae") for s in layers]
    members = len(p["finetune_lr_grid"]) * sel + n - sel
    want += [("finetune", (784, *[w] * d, 10), members, n_train, p["finetune_epochs"], p["finetune_batch_size"],
              n_valid) for _init in ("random", "rbm", "dae") for d in p["depths"]]
    B = p["stream_batch_size"]
    stream = (p["stream_examples"] // B) * B
    grid = len(p["stream_lr_grid"]) * sel
    for _init in ("random", "rbm"):
        want += [("stream", (784, w, 10), grid, stream, 1, B, 0), ("stream", (784, w, 10), n, stream, 1, B, 0)]
    runs = math.ceil(grid / chunk) + math.ceil(n / chunk) if chunk else 2  # unstored: each batched run distorts it
    distorted = stream if stream * 784 * 4 <= ds.STORED_STREAM_BYTES else 2 * stream * runs
    want.append(("distort", (784,), 1, distorted, 1, B, 0))
    assert sorted(got) == sorted(want)
    assert sum(g[0] == "finetune" for g in got) == 3 * len(p["depths"])


def test_member_chunk_zero_is_as_many_as_fit_in_half_the_free_memory(monkeypatch):
    p = _values(depths=[1, 2, 4], n_seeds=12, width=800)
    assert p["member_chunk"] == 0
    monkeypatch.setattr(ds, "free_memory_bytes", lambda device: 2 * ds._run_bytes(p, 5))
    assert ds.member_chunk(p, torch.device("cpu")) == 5
    monkeypatch.setattr(ds, "free_memory_bytes", lambda device: 10**15)  # everything fits: the study's largest run
    assert ds.member_chunk(p, torch.device("cpu")) == max(12, 2 * (5 + p["finetune_max_extensions"]))
    assert ds.member_chunk({**p, "member_chunk": 3}, torch.device("cpu")) == 3  # set: kept
