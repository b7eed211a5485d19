"""Tests of pretraining.analysis.stats with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pretraining.analysis.stats import best_setting, bootstrap_ci, mann_whitney, overlap, prob_less, summary


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
