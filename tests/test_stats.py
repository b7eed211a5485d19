"""Tests of pretraining.analysis.stats with known answers."""

from __future__ import annotations

import json

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from pretraining.analysis.stats import (
    best_setting,
    bootstrap_ci,
    difference_standard_error,
    error_standard_error,
    holm,
    mann_whitney,
    mcnemar,
    min_wilcoxon_p,
    overlap,
    paired_bootstrap_ci,
    paired_difference,
    paired_permutation,
    prob_less,
    summary,
    t_interval,
    wilcoxon,
)


def test_summary_known_values_and_json_ready():
    s = summary([1.0, 2.0, 3.0, 4.0, 10.0])
    assert s["n"] == 5 and s["mean"] == 4.0 and s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 10.0
    assert s["std"] == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1))
    low, high = s["ci95"]
    assert 1.0 <= low < 4.0 < high <= 10.0
    json.dumps(s)  # plain Python types only


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    values = np.random.default_rng(0).normal(1.5, 0.1, size=200)
    a = bootstrap_ci(values, seed=3)
    assert a == bootstrap_ci(values, seed=3)
    assert a != bootstrap_ci(values, seed=4)
    assert a[0] < values.mean() < a[1]
    # width close to the normal-theory interval 2 * 1.96 * sd / sqrt(n)
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * values.std(ddof=1) / np.sqrt(200), rel=0.1)


def test_bootstrap_ci_of_a_constant_is_that_constant_and_median_works():
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    low, high = bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0], np.median, level=0.5)
    assert 1.0 <= low <= 3.0 <= high <= 5.0


def test_prob_less_counts_pairs_with_half_ties():
    assert prob_less([1, 2], [3, 4]) == 1.0
    assert prob_less([3, 4], [1, 2]) == 0.0
    # pairs: (1,1) tie, (1,2) less, (2,1) greater, (2,2) tie -> (1 + 0.5 * 2) / 4
    assert prob_less([1, 2], [1, 2]) == 0.5
    assert prob_less([1.0], [1.0, 2.0, 0.0]) == pytest.approx((1 + 0.5) / 3)


def test_mann_whitney_identical_and_separated_samples():
    same = mann_whitney([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert same["p"] == 1.0 and same["effect_size"] == 0.5 and same["u"] == 12.5
    tied = mann_whitney([1.0, 1.0, 1.0], [1.0, 1.0])
    assert tied["p"] == 1.0 and tied["effect_size"] == 0.5
    rng = np.random.default_rng(0)
    low, high = rng.normal(1.4, 0.05, 30), rng.normal(1.8, 0.05, 30)
    sep = mann_whitney(low, high)
    assert sep["p"] < 1e-8 and sep["effect_size"] == 1.0 and sep["u"] == 0.0
    assert mann_whitney(high, low)["effect_size"] == 0.0


def test_overlap_known_values():
    assert overlap([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == 1.0
    assert overlap([1, 2, 3], [4, 5, 6]) == 0.0
    assert overlap([4, 5, 6], [1, 2, 3]) == 0.0
    # one pair of nine in the "wrong" order: A = 8/9 -> overlap 2/9
    assert overlap([1, 2, 5], [4, 6, 7]) == pytest.approx(2 / 9)
    assert overlap([1, 2, 5], [4, 6, 7]) == overlap([4, 6, 7], [1, 2, 5])


def test_best_setting_clear_winner_and_determinism():
    rng = np.random.default_rng(1)
    errors = {"1 layer": rng.normal(1.8, 0.05, 20), "2 layers": rng.normal(1.4, 0.05, 20), "4 layers": rng.normal(2.1, 0.1, 20)}
    r = best_setting(errors, seed=0)
    assert r["best"] == "2 layers" and r["probability"] == 1.0
    assert set(r["probabilities"]) == set(errors) and sum(r["probabilities"].values()) == pytest.approx(1.0)
    assert r["means"]["2 layers"] == pytest.approx(errors["2 layers"].mean())
    assert best_setting(errors, seed=0) == r


def test_best_setting_undecided_between_equal_groups():
    rng = np.random.default_rng(2)
    errors = {1: rng.normal(1.5, 0.1, 50), 2: rng.normal(1.5, 0.1, 50)}
    r = best_setting(errors, n_boot=4000, seed=1)
    assert 0.1 < r["probability"] < 0.9
    assert r["probabilities"][1] + r["probabilities"][2] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: summary([]), "at least 2 values"),
        (lambda: summary([1.0]), "at least 2 values"),
        (lambda: summary([1.0, float("nan")]), "NaN"),
        (lambda: summary([[1.0, 2.0]]), "1-D"),
        (lambda: summary("12"), "sequence of numbers"),
        (lambda: summary(["a", "b"]), "sequence of numbers"),
        (lambda: bootstrap_ci([1, 2, 3], n_boot=10), "n_boot=\\S+ is not allowed; it must be an int >= 100"),
        (lambda: bootstrap_ci([1, 2, 3], level=1.5), "level must be"),
        (lambda: bootstrap_ci([1, 2, 3], seed=-1), "seed=\\S+ is not allowed; it must be an int >= 0"),
        (lambda: bootstrap_ci([1, 2, 3], stat=lambda x, axis: x), "reduce along axis=1"),
        (lambda: bootstrap_ci([1, 2, 3], stat="mean"), "stat must be a callable"),
        (lambda: mann_whitney([1.0], [1.0, 2.0]), "a needs at least 2"),
        (lambda: overlap([], [1.0]), "a needs at least 1"),
        (lambda: best_setting({"x": [1, 2]}), "at least 2 settings"),
        (lambda: best_setting({"x": [1, 2], "y": [1]}), "errors\\['y'\\] needs at least 2"),
        (lambda: best_setting([[1, 2], [3, 4]]), "must be a mapping"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --------------------------------------------------------------------------------------------
# Paired tests and intervals
# --------------------------------------------------------------------------------------------

ALTERNATIVES = ["two-sided", "less", "greater"]


def _pairs(n, kind, seed=0):
    """Paired samples (x, y) with n pairs: distinct |d| ("plain"), tied |d| ("ties") or a zero d."""
    rng = np.random.default_rng(seed)
    x = rng.normal(1.5, 0.1, n)
    y = x + rng.normal(0.05, 0.1, n)
    if kind == "ties":
        y = x + np.round(rng.normal(0.5, 1.0, n))  # integer-valued differences: many ties (and zeros)
        y[0] = x[0] + 1.0
        y[1] = x[1] + 1.0
    elif kind == "zeros":
        y[0] = x[0]
    return x, y


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize(
    "n, kind, method",
    [
        (6, "plain", "exact"),
        (12, "plain", "exact"),
        (40, "plain", "exact"),
        (8, "ties", "permutation"),
        (10, "zeros", "permutation"),
        (25, "ties", "asymptotic"),
        (20, "zeros", "asymptotic"),
        (60, "plain", "asymptotic"),
    ],
)
def test_wilcoxon_agrees_with_scipy_auto(n, kind, method, alternative):
    x, y = _pairs(n, kind, seed=n)
    r = wilcoxon(x, y, alternative=alternative)
    ref = scipy_stats.wilcoxon(x, y, alternative=alternative, method="auto")
    assert r["method"] == method
    assert r["test"] == "wilcoxon" and r["n"] == n
    assert r["p"] == pytest.approx(float(ref.pvalue), abs=1e-10, rel=1e-10)
    assert r["statistic"] == pytest.approx(float(ref.statistic), abs=1e-10)
    assert r["effect"] == pytest.approx(float(np.median(x - y)), abs=1e-12)
    json.dumps(r)


def test_wilcoxon_exact_known_values_and_rank_biserial():
    # all 6 differences positive: the most extreme of the 2**6 sign patterns -> p = 2 / 64
    r = wilcoxon([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert r["method"] == "exact" and r["p"] == pytest.approx(2 / 64, abs=1e-12)
    assert r["statistic"] == 0.0 and r["rank_biserial"] == 1.0 and r["effect"] == 3.5
    assert wilcoxon([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], alternative="greater")["p"] == pytest.approx(1 / 64, abs=1e-12)
    assert wilcoxon([-1.0, -2.0, -3.0], alternative="less")["p"] == pytest.approx(1 / 8, abs=1e-12)
    assert wilcoxon([-1.0, -2.0, -3.0])["rank_biserial"] == -1.0
    # d = x - y = [1, -2, 3]: ranks 1, 2, 3; R+ = 4, R- = 2 -> (4 - 2) / 6
    r = wilcoxon([2.0, 0.0, 3.0], [1.0, 2.0, 0.0])
    assert r["rank_biserial"] == pytest.approx(1 / 3) and r["effect"] == 1.0
    # zeros are dropped from the ranks: d = [0, 1, -2, 3] gives the same correlation
    assert wilcoxon([0.0, 1.0, -2.0, 3.0])["rank_biserial"] == pytest.approx(1 / 3)


def test_wilcoxon_all_zero_differences_is_no_evidence():
    for alternative in ALTERNATIVES:
        r = wilcoxon([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], alternative=alternative)
        assert r == {"test": "wilcoxon", "statistic": 0.0, "p": 1.0, "n": 3, "effect": 0.0,
                     "rank_biserial": 0.0, "method": "none"}


def test_min_wilcoxon_p_known_values_and_reached_by_the_test():
    assert min_wilcoxon_p(5) == 0.0625 and min_wilcoxon_p(6) == 0.03125
    assert min_wilcoxon_p(5, "less") == 0.03125 and min_wilcoxon_p(4, "greater") == 0.0625
    assert min_wilcoxon_p(1) == 1.0 and min_wilcoxon_p(0) == 1.0
    assert min(n for n in range(1, 20) if min_wilcoxon_p(n) <= 0.05) == 6
    for n in (3, 5, 8):
        assert wilcoxon(np.arange(1.0, n + 1))["p"] == pytest.approx(min_wilcoxon_p(n), abs=1e-12)
        assert wilcoxon(np.arange(1.0, n + 1), alternative="greater")["p"] == pytest.approx(min_wilcoxon_p(n, "greater"), abs=1e-12)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("statistic", ["mean", "median"])
@pytest.mark.parametrize("n", [2, 5, 11])
def test_paired_permutation_exact_agrees_with_scipy(n, statistic, alternative):
    x, y = _pairs(n, "plain", seed=10 + n)
    r = paired_permutation(x, y, statistic=statistic, alternative=alternative)
    reduce = np.mean if statistic == "mean" else np.median
    ref = scipy_stats.permutation_test(
        (x, y), lambda a, b, axis: reduce(a - b, axis=axis), vectorized=True,
        permutation_type="samples", n_resamples=np.inf, alternative=alternative,
    )
    assert r["method"] == "exact" and r["test"] == "permutation" and r["n"] == n
    assert r["p"] == pytest.approx(float(ref.pvalue), abs=1e-10)
    assert r["statistic"] == pytest.approx(float(ref.statistic), abs=1e-12)
    assert r["effect"] == pytest.approx(float(reduce(x - y)), abs=1e-12)
    json.dumps(r)


def test_paired_permutation_known_values():
    # 4 positive differences: only the identity flip is as extreme (and the all-negative one on the other side)
    assert paired_permutation([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0], alternative="greater")["p"] == 1 / 16
    assert paired_permutation([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0])["p"] == 2 / 16
    assert paired_permutation([1.0, 2.0], [1.0, 2.0])["p"] == 1.0  # all differences zero
    # one pair: the flips are {d, -d}
    one = paired_permutation([2.0], [1.0], alternative="greater")
    assert one["p"] == 0.5 and one["n"] == 1 and one["effect"] == 1.0
    assert paired_permutation([2.0], [1.0])["p"] == 1.0


def test_paired_permutation_monte_carlo_is_seeded_and_sensible():
    rng = np.random.default_rng(5)
    x = rng.normal(1.5, 0.1, 40)
    shifted = paired_permutation(x + 0.1, x + rng.normal(0.0, 0.05, 40), seed=1)
    assert shifted["method"] == "monte-carlo" and shifted["p"] == pytest.approx(2 / 10_001)  # two-sided: 2 (0 + 1) / (10,000 + 1)
    y = x + rng.normal(0.0, 0.1, 40)
    a = paired_permutation(x, y, seed=1, n_resamples=2000)
    assert a == paired_permutation(x, y, seed=1, n_resamples=2000)
    assert a["p"] != paired_permutation(x, y, seed=2, n_resamples=2000)["p"]
    # the random-flip p-value estimates the normal-theory one for 40 pairs
    d = x - y
    t_p = 2 * scipy_stats.t.sf(abs(d.mean()) / scipy_stats.sem(d), 39)
    assert a["p"] == pytest.approx(t_p, abs=0.05)


@pytest.mark.parametrize("method", ["BCa", "percentile", "basic"])
def test_paired_bootstrap_ci_agrees_with_scipy(method):
    rng = np.random.default_rng(3)
    a = rng.normal(1.5, 0.1, 15)
    b = a + rng.normal(0.1, 0.05, 15)
    c = rng.normal(1.2, 0.1, 15)

    def stat(a, b, c):
        return np.mean(b - a) - np.mean(c - a)

    low, high = paired_bootstrap_ci([a, b, c], stat, method=method, level=0.9, n_resamples=2000, seed=4)
    ref = scipy_stats.bootstrap((a, b, c), stat, paired=True, vectorized=False, method=method,
                                confidence_level=0.9, n_resamples=2000, rng=np.random.default_rng(4))
    assert isinstance(low, float) and isinstance(high, float)
    assert low == pytest.approx(float(ref.confidence_interval.low), abs=1e-10)
    assert high == pytest.approx(float(ref.confidence_interval.high), abs=1e-10)
    assert low < stat(a, b, c) < high


def test_paired_bootstrap_ci_resamples_seeds_jointly_and_is_seeded():
    rng = np.random.default_rng(8)
    shared = rng.normal(1.5, 0.3, 20)  # big seed-to-seed spread shared by both conditions
    a, b = shared, shared + 0.1 + rng.normal(0.0, 0.01, 20)
    diff = lambda a, b: np.mean(b - a)  # noqa: E731
    first = paired_bootstrap_ci([a, b], diff, seed=2)
    assert first == paired_bootstrap_ci([a, b], diff, seed=2)
    assert first != paired_bootstrap_ci([a, b], diff, seed=3)
    # joint resampling sees only the small per-seed noise of the difference, not the shared spread
    assert 0.09 < first[0] < 0.1 < first[1] < 0.11
    assert first[1] - first[0] < 0.02


def test_paired_bootstrap_ci_constant_statistic_and_degenerate_bca():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert paired_bootstrap_ci([a, a], lambda a, b: np.mean(a - b)) == (0.0, 0.0)
    assert paired_bootstrap_ci([a], lambda a: 3.0) == (3.0, 3.0)
    low, high = paired_bootstrap_ci([a + 0.1, a], lambda a, b: np.mean(a - b))
    assert low == high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="use method='percentile'"):
        paired_bootstrap_ci([[0.0, 0.0, 0.0, 0.0, 1.0]], np.median)
    assert paired_bootstrap_ci([[0.0, 0.0, 0.0, 0.0, 1.0]], np.median, method="percentile") == (0.0, 1.0)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99])
def test_t_interval_agrees_with_scipy(level):
    x = np.random.default_rng(4).normal(1.5, 0.2, 7)
    low, high = t_interval(x, level=level)
    ref = scipy_stats.t.interval(level, x.size - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    assert low == pytest.approx(float(ref[0]), abs=1e-10) and high == pytest.approx(float(ref[1]), abs=1e-10)
    assert isinstance(low, float) and isinstance(high, float)


def test_t_interval_known_value_and_constant_sample():
    # [0, 2]: mean 1, sd sqrt(2), sem 1, t_{1, 0.975} = 12.7062...
    low, high = t_interval([0.0, 2.0])
    assert low == pytest.approx(1 - 12.706204736, abs=1e-8) and high == pytest.approx(1 + 12.706204736, abs=1e-8)
    assert t_interval([0.1, 0.1, 0.1, 0.1, 0.1]) == (0.1, 0.1)


def test_paired_difference_by_hand():
    # d = x - y = 1, 2, 3, -1 (exact in binary): mean 1.25, median 1.5, 3 positive, 4 non-zero
    d = paired_difference([5, 6, 7, 8], [4, 4, 4, 9])
    assert d["test"] == "wilcoxon" and d["n"] == 4 and d["effect"] == 1.25 and d["median"] == 1.5
    assert d["positive"] == 3 and isinstance(d["positive"], int) and d["nonzero"] == 4 and d["p_floor"] == 2 / 16
    # ranks of |d|: 1 and -1 tie at 1.5, 2 -> 3, 3 -> 4: R+ = 8.5, R- = 1.5
    assert d["rank_biserial"] == pytest.approx((8.5 - 1.5) / 10) and d["direction"] is True
    w = wilcoxon([1.0, 2.0, 3.0, -1.0])
    assert {k: d[k] for k in ("p", "statistic", "rank_biserial", "method")} == \
        {k: w[k] for k in ("p", "statistic", "rank_biserial", "method")}
    # the interval is the Student-t interval of the mean, the same numbers as t_interval
    assert d["ci95"] == list(t_interval([1.0, 2.0, 3.0, -1.0]))
    assert paired_difference([1.0, 2.0, 3.0, -1.0]) == d  # y = None: x are the differences
    json.dumps(d)


def test_paired_difference_t_interval_counts_and_small_n():
    # 0.01 .. 0.08, all positive: exact two-sided p = 2 / 2**8; mean -+ t(0.975, 7) sd / sqrt(8)
    d = paired_difference([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08])
    assert d["method"] == "exact" and d["p"] == pytest.approx(2 / 256) and d["p_floor"] == 2 / 256
    half = 2.364624 * 0.0244949 / math.sqrt(8)
    assert d["ci95"] == pytest.approx([0.045 - half, 0.045 + half], rel=1e-5)
    x = np.random.default_rng(3).normal(0.01, 0.02, 11)
    assert paired_difference(x, 0.5 * x)["ci95"] == list(t_interval(0.5 * x))
    # a constant difference: the interval is that constant
    assert paired_difference([0.05, 0.06, 0.07], [0.04, 0.05, 0.06])["ci95"] == [pytest.approx(0.01)] * 2
    # zeros count as neither positive nor non-zero, and lower the floor of p
    z = paired_difference([0.0, 0.0, 0.1, -0.2, 0.3])
    assert z["positive"] == 2 and z["nonzero"] == 3 and z["p_floor"] == min_wilcoxon_p(3) == 0.25
    # one pair: no interval, the test says nothing
    one = paired_difference([0.3], [0.1])
    assert one["n"] == 1 and one["ci95"] is None and one["p"] == 1.0 and one["positive"] == 1
    with pytest.raises(ValueError, match="NaN or infinite"):
        paired_difference([0.1, float("nan")])
    with pytest.raises(ValueError, match="same length"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="at least 1"):
        paired_difference([])


def test_paired_difference_direction_needs_the_mean_and_the_signed_ranks():
    assert paired_difference([0.01] * 8)["direction"] is True
    assert paired_difference([-0.01] * 8)["direction"] is False
    # a positive mean from one large difference while 7 of 8 point the other way: the ranks say no
    d = paired_difference([-0.001] * 7 + [0.2])
    assert d["effect"] > 0 and d["rank_biserial"] < 0 and d["direction"] is False
    # mostly positive ranks but a negative mean (one large negative difference): no either
    d = paired_difference([0.001] * 7 + [-0.2])
    assert d["effect"] < 0 and d["rank_biserial"] > 0 and d["direction"] is False
    # no difference at all: no direction
    assert paired_difference([0.0, 0.0, 0.0])["direction"] is False


def test_holm_hand_computed_cases():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    # m = 2 tested; None passes through and is not counted
    assert holm([None, 0.2, None, 0.01]) == [None, pytest.approx(0.2), None, pytest.approx(0.02)]
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([0.02]) == [0.02]
    assert holm([]) == [] and holm([None, None]) == [None, None]
    assert holm((0.01, 0.01)) == [0.02, 0.02]  # ties
    assert holm(np.array([0.04, 0.001])) == pytest.approx([0.04, 0.002])


def test_holm_properties():
    raw = np.random.default_rng(6).uniform(0.0, 0.2, 12)
    adjusted = np.array(holm(list(raw)))
    assert (adjusted >= raw).all() and (adjusted <= 1.0).all()
    order = np.argsort(raw)
    assert (np.diff(adjusted[order]) >= 0).all()  # order-preserving
    assert adjusted.min() == pytest.approx(12 * raw.min())  # the smallest p gets the full Bonferroni factor
    assert adjusted.max() == pytest.approx(adjusted[order][-2:].max())


def test_mcnemar_counts_and_agrees_with_binomtest():
    rng = np.random.default_rng(7)
    truth_a = rng.random(1000) < 0.9
    truth_b = np.where(rng.random(1000) < 0.1, ~truth_a, truth_a)
    r = mcnemar(truth_a, truth_b)
    b, c = int((truth_a & ~truth_b).sum()), int((~truth_a & truth_b).sum())
    assert (r["b"], r["c"], r["n"]) == (b, c, 1000) and r["test"] == "mcnemar"
    assert r["p"] == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue, abs=1e-10)
    assert r["effect"] == pytest.approx(truth_b.mean() - truth_a.mean())
    json.dumps(r)
    # hand case: a right on 0, 1, 4; b right on 0, 2, 3, 4 -> b = 1 (digit 1), c = 2 (digits 2, 3)
    r = mcnemar([True, True, False, False, True], [1, 0, 1, 1, 1])
    assert (r["b"], r["c"], r["effect"]) == (1, 2, 0.2) and r["p"] == 1.0
    # 10 discordant digits all favouring b: p = 2 / 2**10
    a = np.array([False] * 10 + [True] * 90)
    assert mcnemar(a, np.ones(100, bool))["p"] == pytest.approx(2 / 1024, abs=1e-12)
    same = mcnemar(a, a)
    assert same["p"] == 1.0 and same["b"] == same["c"] == 0 and same["effect"] == 0.0


def test_standard_errors_hand_computed():
    assert error_standard_error(0.5, 100) == pytest.approx(0.05)
    assert error_standard_error(0.014, 10_000) == pytest.approx(math.sqrt(0.014 * 0.986 / 10_000))
    assert error_standard_error(0.0, 10) == 0.0 and error_standard_error(1, 10) == 0.0
    # a right on digits 0, 2; b right on 0, 1: d = wrong_a - wrong_b = [0, 1, -1, 0], var = 1/2
    assert difference_standard_error([True, False, True, False], [True, True, False, False]) == pytest.approx(math.sqrt(0.5 / 4))
    # d = [0, -1, 1, 1]: mean 1/4, var 3/4 - 1/16 = 11/16
    assert difference_standard_error([True, True, False, False], [True, False, True, True]) == pytest.approx(math.sqrt(11 / 16 / 4))
    same = np.array([True, False, True])
    assert difference_standard_error(same, same) == 0.0


def test_difference_standard_error_matches_the_discordant_count_formula():
    rng = np.random.default_rng(9)
    ca = rng.random(500) < 0.85
    cb = np.where(rng.random(500) < 0.2, rng.random(500) < 0.9, ca)
    r = mcnemar(ca, cb)
    n, b, c = r["n"], r["b"], r["c"]
    assert difference_standard_error(ca, cb) == pytest.approx(math.sqrt(((b + c) / n - ((c - b) / n) ** 2) / n))
    # strongly agreeing classifiers: the paired SE is far below the unpaired one
    unpaired = math.hypot(error_standard_error(1 - ca.mean(), n), error_standard_error(1 - cb.mean(), n))
    assert difference_standard_error(ca, cb) < 0.8 * unpaired


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: wilcoxon([1.0, 2.0], [1.0]), "same length, got 2 and 1"),
        (lambda: wilcoxon([]), "x needs at least 1"),
        (lambda: wilcoxon([1.0, float("nan")]), "NaN"),
        (lambda: wilcoxon("12"), "sequence of numbers"),
        (lambda: wilcoxon([1.0, 2.0], alternative="bigger"), "alternative='bigger' is not allowed; it must be one of"),
        (lambda: min_wilcoxon_p(-1), "n=-1 is not allowed; it must be an int >= 0"),
        (lambda: min_wilcoxon_p(2.0), "n=2.0 is not allowed"),
        (lambda: min_wilcoxon_p(6, "two_sided"), "alternative='two_sided' is not allowed"),
        (lambda: paired_permutation([1.0, 2.0], [1.0, 2.0, 3.0]), "same length, got 2 and 3"),
        (lambda: paired_permutation([1.0, 2.0], [[1.0, 2.0]]), "y must be 1-D"),
        (lambda: paired_permutation([1.0], [float("inf")]), "NaN or infinite"),
        (lambda: paired_permutation([1.0], [2.0], statistic="max"), "statistic='max' is not allowed"),
        (lambda: paired_permutation([1.0], [2.0], alternative=None), "alternative=None is not allowed"),
        (lambda: paired_permutation([1.0], [2.0], n_resamples=10), "n_resamples=10 is not allowed; it must be an int >= 100"),
        (lambda: paired_permutation([1.0], [2.0], seed=-1), "seed=-1 is not allowed"),
        (lambda: paired_bootstrap_ci([[1.0, 2.0], [1.0, 2.0, 3.0]], np.subtract), "same length"),
        (lambda: paired_bootstrap_ci([[1.0]], np.mean), "samples\\[0\\] needs at least 2"),
        (lambda: paired_bootstrap_ci([], np.mean), "at least 1 condition"),
        (lambda: paired_bootstrap_ci([1.0, 2.0], np.mean), "samples\\[0\\] must be 1-D"),
        (lambda: paired_bootstrap_ci({"a": [1.0, 2.0]}, np.mean), "samples must be a sequence"),
        (lambda: paired_bootstrap_ci([[1.0, float("nan")]], np.mean), "NaN"),
        (lambda: paired_bootstrap_ci([[1.0, 2.0]], "mean"), "statistic must be a callable"),
        (lambda: paired_bootstrap_ci([[1.0, 2.0]], lambda a: a), "statistic must return one finite number"),
        (lambda: paired_bootstrap_ci([[1.0, 2.0]], np.mean, method="bca"), "method='bca' is not allowed"),
        (lambda: paired_bootstrap_ci([[1.0, 2.0]], np.mean, level=95), "level=95 is not allowed; it must be a finite number > 0.0 and < 1.0"),
        (lambda: paired_bootstrap_ci([[1.0, 2.0]], np.mean, n_resamples=99), "n_resamples=99 is not allowed"),
        (lambda: t_interval([1.0]), "x needs at least 2"),
        (lambda: t_interval([1.0, float("nan")]), "NaN"),
        (lambda: t_interval([1.0, 2.0], level=1.0), "level=1.0 is not allowed"),
        (lambda: holm([0.5, 1.5]), "pvalues\\[1\\]=1.5 is not allowed; it must be a finite number >= 0.0 and <= 1.0"),
        (lambda: holm([0.5, float("nan")]), "pvalues\\[1\\]=nan is not allowed"),
        (lambda: holm(["0.5"]), "pvalues\\[0\\]='0.5' is not allowed"),
        (lambda: holm(0.5), "pvalues must be a sequence"),
        (lambda: holm(np.zeros((2, 2))), "pvalues must be 1-D"),
        (lambda: mcnemar([True, False], [True]), "same test digits, got 2 and 1"),
        (lambda: mcnemar([True, False], [0.5, 1.0]), "correct_b must be a 1-D array of booleans"),
        (lambda: mcnemar([[True, False]], [[True, False]]), "correct_a must be 1-D"),
        (lambda: mcnemar([], []), "at least 1 digit"),
        (lambda: mcnemar("TF", "TF"), "correct_a must be a 1-D array of booleans"),
        (lambda: error_standard_error(1.4, 10_000), "error=1.4 is not allowed; it must be a finite number >= 0.0 and <= 1.0"),
        (lambda: error_standard_error(0.1, 0), "n=0 is not allowed; it must be an int >= 1"),
        (lambda: error_standard_error(True, 10), "error=True is not allowed"),
        (lambda: difference_standard_error([True], [True, False]), "same test digits"),
    ],
)
def test_paired_statistics_bad_inputs_raise_one_line_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_best_setting_paired_resamples_whole_seeds():
    # seed s is hard or easy for every setting alike: the pairing removes that shared spread
    base = np.array([1.0, 5.0, 2.0, 8.0, 3.0, 9.0, 4.0, 7.0])
    errors = {"a": base + 0.1, "b": base}
    paired = best_setting(errors, paired=True, seed=1)
    unpaired = best_setting(errors, seed=1)
    assert paired["best"] == unpaired["best"] == "b"
    assert paired["probability"] == 1.0 and unpaired["probability"] < 0.9
    with pytest.raises(ValueError, match="paired=True needs the same seeds"):
        best_setting({"a": [1, 2, 3], "b": [1, 2]}, paired=True)
