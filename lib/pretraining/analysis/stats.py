"""Honest statistics for many-seed studies: summaries, bootstrap intervals, rank tests, overlap.

All functions take plain sequences or arrays of numbers (e.g. the test errors of many seeds),
validate them, and return plain Python floats so results can go straight into a JSON file.
Bootstrap resampling is seeded: the same call gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
from scipy import stats as _scipy_stats
from ..core.checks import require_int

__all__ = ["best_setting", "bootstrap_ci", "mann_whitney", "overlap", "prob_less", "summary"]


def _as_values(name: str, values: object, *, min_n: int = 1) -> np.ndarray:
    """Validate a 1-D sequence of finite numbers with at least min_n entries; return float64."""
    if isinstance(values, (str, bytes)) or isinstance(values, Mapping):
        raise TypeError(f"{name} must be a 1-D sequence of numbers, got {type(values).__name__}")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 1-D sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < min_n:
        raise ValueError(f"{name} needs at least {min_n} values, got {arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[..., np.ndarray] = np.mean,
    *,
    n_boot: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(values)``.

    values (n,), n >= 2. ``stat`` is a numpy-style reduction that accepts ``axis=`` (np.mean,
    np.median, np.std, ...); it is applied to an (n_boot, n) array of resamples along axis 1.
    Returns (low, high) = the (1-level)/2 and (1+level)/2 quantiles of the n_boot statistics.
    """
    arr = _as_values("values", values, min_n=2)
    if not callable(stat):
        raise TypeError(f"stat must be a callable numpy reduction such as np.mean, got {type(stat).__name__}")
    n_boot = require_int("n_boot", n_boot, 100)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    require_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    resamples = arr[rng.integers(0, arr.size, size=(n_boot, arr.size))]
    boot = np.asarray(stat(resamples, axis=1), dtype=np.float64)
    if boot.shape != (n_boot,):
        raise ValueError(f"stat must reduce along axis=1 to one value per resample; got shape {boot.shape}")
    low, high = np.quantile(boot, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def summary(values: Sequence[float] | np.ndarray) -> dict:
    """n, mean, std (ddof=1), median, min, max and ci95 (bootstrap percentile interval of the mean,
    seed 0, 10,000 resamples) of at least 2 values, as plain floats (ci95 a [low, high] list)."""
    arr = _as_values("values", values, min_n=2)
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)),
        "median": float(np.median(arr)),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "ci95": list(bootstrap_ci(arr, np.mean, n_boot=10000, level=0.95, seed=0)),
    }


def _pair_counts(a: object, b: object) -> tuple[int, int, int]:
    """Numbers of pairs (a_i, b_j) with a_i < b_j, a_i = b_j, a_i > b_j; O((n_a + n_b) log n_b)."""
    x = _as_values("a", a)
    y = np.sort(_as_values("b", b))
    below = np.searchsorted(y, x, side="left")  # how many b_j < a_i
    not_above = np.searchsorted(y, x, side="right")  # how many b_j <= a_i
    greater = int((y.size - not_above).sum())
    ties = int((not_above - below).sum())
    return greater, ties, x.size * y.size - greater - ties


def prob_less(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """P(A < B) + 0.5 P(A = B) for A, B drawn independently from the samples a and b.

    The common-language effect size: the fraction of all pairs (a_i, b_j) with a_i < b_j, ties
    counting one half. Exact, O((n_a + n_b) log n_b).
    """
    less, ties, greater = _pair_counts(a, b)
    return (less + 0.5 * ties) / (less + ties + greater)


def mann_whitney(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict:
    """Two-sided Mann-Whitney U test of a against b (scipy.stats.mannwhitneyu).

    Returns {"u": U of sample a (pairs with a_i > b_j, ties one half), "p": two-sided p-value,
    "effect_size": P(a < b) + 0.5 P(a = b)} — 0.5 means no tendency, 1.0 means every value of a is
    below every value of b. Each sample needs at least 2 values.
    """
    x = _as_values("a", a, min_n=2)
    y = _as_values("b", b, min_n=2)
    if np.ptp(np.concatenate([x, y])) == 0.0:  # all values tied: no evidence of any difference
        return {"u": 0.5 * x.size * y.size, "p": 1.0, "effect_size": 0.5}
    result = _scipy_stats.mannwhitneyu(x, y, alternative="two-sided")
    return {"u": float(result.statistic), "p": float(result.pvalue), "effect_size": prob_less(x, y)}


def overlap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Overlap of two samples (e.g. test errors with and without pre-training), in [0, 1].

    Defined as ``2 * min(A, 1 - A)`` with A = P(a < b) + 0.5 P(a = b) over all pairs
    (equivalently 1 - |Cliff's delta|):
      0   every value of one sample lies strictly below every value of the other — the two
          error distributions do not overlap at all;
      1   a value drawn from either sample is as likely to be the smaller (identical samples);
      0.1 only 5 % of the pairs are in the "wrong" order.
    Why this and not a histogram overlap: the claim "(almost) no overlap between the error
    distributions" is about ranking — a pre-trained net beats a randomly initialised one whatever
    the pair — and the pair fraction needs no bin width or kernel bandwidth. Caveat: two samples with
    the same median but different spreads also score close to 1.
    """
    less, ties, greater = _pair_counts(a, b)
    return (2 * min(less, greater) + ties) / (less + ties + greater)


def best_setting(
    errors: Mapping[Hashable, Sequence[float] | np.ndarray],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Which setting has the lowest mean error, and how sure can we be?

    errors: {setting: errors of its seeds (n_k >= 2)}, at least 2 settings. Each bootstrap
    replicate resamples the seeds of every setting independently (with replacement) and records
    which setting has the lowest mean; ties go to the first setting in the mapping's order.
    Returns {"best": the key with the lowest observed mean, "probability": fraction of replicates
    in which it is lowest, "means": {key: mean}, "probabilities": {key: fraction lowest}}.
    """
    if not isinstance(errors, Mapping):
        raise TypeError(f"errors must be a mapping {{setting: sequence of errors}}, got {type(errors).__name__}")
    if len(errors) < 2:
        raise ValueError(f"errors needs at least 2 settings to compare, got {len(errors)}")
    n_boot = require_int("n_boot", n_boot, 100)
    require_int("seed", seed, 0)
    keys = list(errors)
    samples = [_as_values(f"errors[{k!r}]", errors[k], min_n=2) for k in keys]
    means = np.array([s.mean() for s in samples])
    rng = np.random.default_rng(seed)
    boot_means = np.stack([s[rng.integers(0, s.size, size=(n_boot, s.size))].mean(axis=1) for s in samples], axis=1)
    wins = np.bincount(np.argmin(boot_means, axis=1), minlength=len(keys)) / n_boot
    best = int(np.argmin(means))
    return {
        "best": keys[best],
        "probability": float(wins[best]),
        "means": {k: float(m) for k, m in zip(keys, means)},
        "probabilities": {k: float(w) for k, w in zip(keys, wins)},
    }
