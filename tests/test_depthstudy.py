"""Tests of pretraining.depthstudy: tiny nets on a few hundred real digits (whole file: seconds)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pretraining import depthstudy as ds
from pretraining.data import DataSplit, Subset, load_dataset
from pretraining.models import Classifier
from pretraining.train import (DAEConfig, FinetuneConfig, RBMConfig, evaluate, finetune,
                               pretrain_stack)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def split() -> DataSplit:
    full = load_dataset("mnist-10k")
    cut = lambda s, n: Subset(s.x[:n].clone(), s.y[:n].clone())  # noqa: E731
    return DataSplit("tiny", full.sha256, cut(full.train, 300), cut(full.valid, 100), cut(full.test, 100))


class FakeChapter:
    """The parts of book.Chapter the study uses; the cache is a dict that counts calls."""

    def __init__(self, data: DataSplit):
        self.data, self.device = data, torch.device("cpu")
        self.store: dict = {}
        self.computed: list[str] = []

    def cached(self, name, params, compute):
        import json
        key = name + json.dumps(params, sort_keys=True)
        if key not in self.store:
            self.computed.append(name)
            self.store[key] = compute()
        tensors, meta = self.store[key]
        return {k: v.clone() for k, v in tensors.items()}, meta


def study(ch, **kw) -> ds.DepthStudy:
    args = dict(depths=[1, 2], width=8, seeds=[0, 1, 2], rbm=RBMConfig(epochs=1, lr=0.05, batch_size=20),
                dae=DAEConfig(epochs=1, lr=0.05, batch_size=20), finetune=FinetuneConfig(epochs=2, lr=0.1, batch_size=20),
                lrs=[0.1], select_seeds=2, member_chunk=3, progress=False)
    args.update(kw)
    return ds.DepthStudy(ch, **args)


# ----------------------------------------------------------------------------------------- seeds, stacks
def test_member_seeds():
    assert ds.member_seeds(0, 3) == [0, 1, 2]
    assert ds.member_seeds(2, 2) == [2 * ds.SEED_STRIDE, 2 * ds.SEED_STRIDE + 1]
    with pytest.raises(ValueError, match="n_seeds=0"):
        ds.member_seeds(0, 0)
    with pytest.raises(ValueError, match="n_seeds=10001"):
        ds.member_seeds(0, ds.SEED_STRIDE + 1)
    with pytest.raises(ValueError, match="seed=-1"):
        ds.member_seeds(-1, 3)


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


# ----------------------------------------------------------------------------------------- fine-tuning
def test_finetune_select_one_rate_is_a_plain_batched_run(split):
    make = lambda seeds: Classifier.random([784, 8, 10], seeds)  # noqa: E731
    cfg = FinetuneConfig(epochs=2, lr=123.0, batch_size=20)
    out = ds.finetune_select(make, split, cfg, [0.2], [0, 1], select_seeds=1)
    ref = make([0, 1])
    finetune(ref, split.train.x, split.train.y, dataclasses.replace(cfg, lr=0.2), [0, 1], progress=False)
    assert out["lr"] == 0.2 and out["grid"] == {}
    assert torch.equal(out["test_error"], evaluate(ref, split.test.x, split.test.y).error)
    assert torch.equal(out["valid_error"], evaluate(ref, split.valid.x, split.valid.y).error)
    assert len(out["train_nll"]) == 2 and len(out["train_nll"][0]) == 2


def test_finetune_select_picks_the_best_validation_rate_and_drops_diverged_ones(split):
    make = lambda seeds: Classifier.random([784, 8, 10], seeds)  # noqa: E731
    cfg = FinetuneConfig(epochs=2, lr=0.1, batch_size=20)
    out = ds.finetune_select(make, split, cfg, [1e-4, 0.5, 1e38], [0, 1, 2], select_seeds=2)
    assert out["grid"]["1e+38"] is None  # diverged (weights overflow), dropped
    means = {}
    for lr in (1e-4, 0.5):
        clf = make([0, 1])
        finetune(clf, split.train.x, split.train.y, dataclasses.replace(cfg, lr=lr), [0, 1], progress=False)
        means[lr] = float(evaluate(clf, split.valid.x, split.valid.y).error.mean())
    assert out["grid"]["0.0001"] == pytest.approx(means[1e-4]) and out["grid"]["0.5"] == pytest.approx(means[0.5])
    assert out["lr"] == min(means, key=means.get) == 0.5
    assert out["test_error"].shape == (3,)


@pytest.mark.parametrize("lrs, match", [([], "lrs=\\[\\]"), ([0.1, -1.0], "finite number > 0"),
                                        ([0.1, 0.1], "distinct"), ("0.1", "lrs='0.1'")])
def test_finetune_select_bad_rates(split, lrs, match):
    with pytest.raises(ValueError, match=match):
        ds.finetune_select(lambda s: Classifier.random([784, 4, 10], s), split,
                           FinetuneConfig(epochs=1, lr=0.1), lrs, [0], select_seeds=1)


# ----------------------------------------------------------------------------------------- the study
def test_study_runs_caches_and_chunks_give_the_same_nets(split):
    ch = FakeChapter(split)
    st = study(ch)
    results = st.run_all()
    assert set(results) == set(ds.INITS) and all(set(r) == {1, 2} for r in results.values())
    r = results["rbm"][2]
    assert len(r.test_error) == 3 and all(0 <= e <= 1 for e in r.test_error) and r.lr == 0.1
    assert sorted(ch.computed) == sorted(["rbm_stack", "dae_stack"] + [f"depthstudy_{i}_{d}" for i in ds.INITS
                                                                        for d in (1, 2)])
    assert st.run("rbm", 2) == r and len(ch.computed) == 8  # second call: from the cache
    # members trained in chunks of 1 are the same networks as one batched run (up to float rounding)
    chunked = study(FakeChapter(split), member_chunk=1)
    for init in ds.INITS:
        np.testing.assert_allclose(chunked.run(init, 2).test_error, results[init][2].test_error, atol=0.015)


def test_study_stream(split):
    ch = FakeChapter(split)
    st = study(ch)
    a = st.stream("rbm", n_examples=200, batch_size=20, lr=0.1, stream_seed=5)
    assert len(a.test_error) == 3 and a.steps[-1] == 10 and len(a.train_nll[-1]) == 3
    b = study(FakeChapter(split)).stream("rbm", n_examples=200, batch_size=20, lr=0.1, stream_seed=5)
    assert a == b  # deterministic
    with pytest.raises(ValueError, match="batch_size=300"):
        st.stream("random", n_examples=200, batch_size=300, lr=0.1, stream_seed=5)


@pytest.mark.parametrize("kw, match", [
    ({"depths": [2, 1]}, "increasing"), ({"depths": [1, 1]}, "distinct"), ({"depths": []}, "depths=\\[\\]"),
    ({"width": 0}, "width=0"), ({"seeds": [1, 1]}, "distinct"), ({"lrs": []}, "lrs"),
    ({"select_seeds": 0}, "select_seeds=0"), ({"member_chunk": 0}, "member_chunk=0"),
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


def test_statistics_on_separated_samples():
    st = ds.study_statistics(synthetic(0.0))
    assert st["overlap"]["rbm"] == {1: 0.0, 2: 0.0, 4: 0.0}
    assert all(st["mannwhitney"]["rbm"][d]["effect_size"] == 1.0 for d in (1, 2, 4))
    assert st["best_depth"]["random"]["best"] == 2 and st["best_depth"]["rbm"]["best"] == 4
    assert st["summary"]["rbm"][1]["n"] == 12
    lo, hi = st["median_ci95"]["random"][2]
    assert lo <= st["summary"]["random"][2]["median"] <= hi
    assert set(st["vs_two"]["random"]) == {1, 4}


def test_claim_checks_and_verdict():
    good = ds.claim_checks(ds.study_statistics(synthetic(0.0)))
    assert {c["part"] for c in good} == set("abcde") and all(c["holds"] for c in good), good
    assert ds.verdict_of(good, 12) == "supported"
    assert ds.verdict_of(good, 3) == "inconclusive"
    # pre-trained deep nets made worse than random deep nets: parts b, c, e fail, a and d still hold
    bad = ds.claim_checks(ds.study_statistics(synthetic(0.03)))
    holds = {c["part"]: c["holds"] for c in bad}
    assert holds == {"a": True, "b": False, "c": False, "d": True, "e": False}
    assert ds.verdict_of(bad, 12) == "partly supported"
    assert ds.verdict_of([{"holds": False}, {"holds": None}], 12) == "not supported"
    # deep pre-trained nets only as good as 2 layers: "4 beats 2" needs a significant difference
    tie = {c["part"]: c["holds"] for c in ds.claim_checks(ds.study_statistics(synthetic(0.003)))}
    assert tie == {"a": True, "b": True, "c": True, "d": True, "e": False}
    # depths 2 and 4 missing: those parts are not applicable
    only1 = ds.claim_checks(ds.study_statistics({k: {1: v[1]} for k, v in synthetic(0.0).items()}))
    assert {c["part"]: c["holds"] for c in only1} == {"a": True, "b": None, "c": True, "d": None, "e": None}


def test_statistics_bad_input():
    with pytest.raises(ValueError, match="init='x'"):
        ds.study_statistics({"x": {1: [0.1, 0.2]}})
    with pytest.raises(TypeError):
        ds.study_statistics({})
    with pytest.raises(ValueError, match="'random'"):
        ds.claim_checks(ds.study_statistics({"rbm": {1: [0.1, 0.2]}}))


def test_reference_rows():
    rows = ds.reference_rows(ds.study_statistics(synthetic(0.0))["summary"])
    assert [r["hidden layers"] for r in rows] == [1, 2, 3, 4, 5]  # 3, 5: only the paper has them
    five = rows[-1]
    assert five["Erhan 2010 Fig. 1 median, pre-trained"] == 1.37 and five["Erhan 2010 Fig. 1 median, random"] is None
    assert five["this book, random: median"] is None and rows[2]["this book, rbm: median"] is None
    assert rows[0]["Larochelle 2009 Table 3, rbm"] == 3.17
    assert rows[1]["Erhan 2010 Table 1, dae: mean (std)"] == "1.37 (0.09)"
    assert rows[0]["this book, rbm: median"] == pytest.approx(100 * np.median(synthetic(0.0)["rbm"][1]))


def test_networks_per_minute(split):
    out = ds.networks_per_minute(split.train.x, split.train.y, [784, 6, 10], [0, 1, 2],
                                 FinetuneConfig(epochs=1, lr=0.1, batch_size=20))
    assert out["batched"] > 0 and out["loop"] > 0 and out["max_abs_diff"] < 1e-4
    assert out["speedup"] == pytest.approx(out["batched"] / out["loop"])


def test_stream_check():
    rng = np.random.default_rng(1)
    rnd, pre = 0.05 + rng.normal(0, 0.001, 10), 0.04 + rng.normal(0, 0.001, 10)
    c = ds.stream_check(rnd, pre)
    assert c["part"] == "f" and c["holds"] is True and "overlap 0.00" in c["text"]
    assert ds.stream_check(pre, rnd)["holds"] is False
    with pytest.raises(ValueError, match="kind='random'"):
        ds.stream_check(rnd, pre, "random")


def test_claim_checks_with_deep_equal_two_skips_the_depth_comparisons():
    data = {k: {1: v[1], 2: v[2]} for k, v in synthetic(0.0).items()}
    holds = {c["part"]: c["holds"] for c in ds.claim_checks(ds.study_statistics(data), deep=2)}
    assert holds == {"a": True, "b": True, "c": True, "d": None, "e": None}
