"""Honest statistics for many-seed studies: summaries, intervals, paired and unpaired tests, overlap.

All functions take plain sequences or arrays of numbers (e.g. the test errors of many seeds),
validate them (one-line errors), and return plain Python floats, lists and dicts so results can go
straight into a JSON file. Everything random is seeded: the same call gives the same numbers.

Which tool for which question:

* Paired designs get paired tests. When two conditions share their seeds (seed s of "pre-trained"
  and seed s of "random init" start from the same data order, or the same initial weights), the
  per-seed differences carry the evidence; an unpaired test throws the pairing away.
  ``wilcoxon``            signed-rank test of the paired differences (exact for small n without ties
                          or zeros); ``min_wilcoxon_p`` says how small its p can get with n pairs, so
                          a chapter can mark a part "not testable at this scale" (n >= 6 for 0.05).
  ``paired_permutation``  sign-flip permutation test of the mean (or median) paired difference, exact
                          over all 2**n flips for n <= 16.
  ``paired_bootstrap_ci`` bootstrap interval (BCa by default) of any statistic of K conditions that
                          share their seeds: whole seeds are resampled jointly across the conditions.
  ``paired_difference``   the one summary of per-seed paired differences: their mean with its Student-t
                          interval, how many are positive (non-zero), and the Wilcoxon test.
* One sample: ``t_interval`` (Student-t interval of the mean), ``bootstrap_ci`` (percentile bootstrap
  of a numpy reduction), ``summary``.
* Independent samples (no shared seeds): ``mann_whitney``, ``prob_less``, ``overlap``, ``best_setting``.
* Many tests at once: ``holm`` (Holm-Bonferroni adjusted p-values; untested parts pass as None).
* Two classifiers on the same test digits: ``mcnemar`` (exact test of the discordant digits),
  ``error_standard_error`` (binomial SE of one test error), ``difference_standard_error`` (paired SE
  of the difference of two test errors).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
from scipy import stats as _scipy_stats
from ..core.checks import require_float, require_int

__all__ = [
    "best_setting",
    "bootstrap_ci",
    "difference_standard_error",
    "error_standard_error",
    "holm",
    "mann_whitney",
    "mcnemar",
    "min_wilcoxon_p",
    "overlap",
    "paired_bootstrap_ci",
    "paired_difference",
    "paired_permutation",
    "prob_less",
    "summary",
    "t_interval",
    "wilcoxon",
]

_ALTERNATIVES = ("two-sided", "less", "greater")


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
    paired: bool = False,
) -> dict:
    """Which setting has the lowest mean error, and how sure can we be?

    errors: {setting: errors of its seeds (n_k >= 2)}, at least 2 settings. Each bootstrap
    replicate resamples seeds with replacement and records which setting has the lowest mean; ties
    go to the first setting in the mapping's order. With ``paired`` (settings that share their
    seeds, entry s of every setting being seed s) whole seeds are resampled jointly: one draw of
    seed indices for all settings; otherwise each setting's seeds are resampled independently.
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
    if paired:
        if len({s.size for s in samples}) != 1:
            raise ValueError("paired=True needs the same seeds (the same number of errors) for every setting")
        idx = rng.integers(0, samples[0].size, size=(n_boot, samples[0].size))
        boot_means = np.stack([s[idx].mean(axis=1) for s in samples], axis=1)
    else:
        boot_means = np.stack([s[rng.integers(0, s.size, size=(n_boot, s.size))].mean(axis=1) for s in samples],
                              axis=1)
    wins = np.bincount(np.argmin(boot_means, axis=1), minlength=len(keys)) / n_boot
    best = int(np.argmin(means))
    return {
        "best": keys[best],
        "probability": float(wins[best]),
        "means": {k: float(m) for k, m in zip(keys, means)},
        "probabilities": {k: float(w) for k, w in zip(keys, wins)},
    }


# --------------------------------------------------------------------------------------------
# Paired designs: conditions that share their seeds.
# --------------------------------------------------------------------------------------------


def _require_alternative(alternative: object) -> str:
    if not isinstance(alternative, str) or alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r} is not allowed; it must be one of 'two-sided', 'less', 'greater'")
    return alternative


def _differences(x: object, y: object, *, min_n: int = 1) -> np.ndarray:
    """x - y for two equally long samples (or x itself when y is None), validated, float64 (n,)."""
    a = _as_values("x", x, min_n=min_n)
    if y is None:
        return a
    b = _as_values("y", y, min_n=min_n)
    if a.size != b.size:
        raise ValueError(f"x and y must be paired samples of the same length, got {a.size} and {b.size}")
    return a - b


def _wilcoxon_method(d: np.ndarray) -> str:
    """The null distribution scipy.stats.wilcoxon(method="auto") uses for the differences d."""
    nonzero = d[d != 0]
    has_zeros = nonzero.size < d.size
    has_ties = np.unique(np.abs(nonzero)).size < nonzero.size
    if d.size > 50:
        return "asymptotic"
    if not (has_ties or has_zeros):
        return "exact"
    return "permutation" if d.size <= 13 else "asymptotic"


def wilcoxon(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray | None = None,
    *,
    alternative: str = "two-sided",
) -> dict:
    """Wilcoxon signed-rank test of the paired differences d = x - y (or d = x when y is None).

    x, y (n,), n >= 1, entry s of both from the same seed s. Calls scipy.stats.wilcoxon with the
    null distribution its method="auto" picks (zeros dropped, zero_method="wilcox"; no continuity
    correction):
      "exact"        n <= 50 and no zeros or tied |d|: the exact signed-rank distribution;
      "permutation"  n <= 13 with zeros or ties: all 2**n sign flips of d (exact, deterministic);
      "asymptotic"   otherwise: the tie-corrected normal approximation.
    alternative: "two-sided", "less" (d tends to be negative: x below y) or "greater".
    Returns {"test": "wilcoxon", "statistic": scipy's statistic (min(R+, R-) two-sided, R+
    one-sided), "p", "n": number of pairs, "effect": median of d (all pairs), "rank_biserial":
    matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) over the non-zero differences, in
    [-1, 1], positive when x tends to exceed y, "method": the null distribution used}. When every
    difference is zero there is no evidence either way: p = 1.0, effect 0.0, rank_biserial 0.0,
    method "none".
    """
    d = _differences(x, y)
    alternative = _require_alternative(alternative)
    n = int(d.size)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return {"test": "wilcoxon", "statistic": 0.0, "p": 1.0, "n": n, "effect": 0.0,
                "rank_biserial": 0.0, "method": "none"}
    method = _wilcoxon_method(d)
    scipy_method = _scipy_stats.PermutationMethod() if method == "permutation" else method
    result = _scipy_stats.wilcoxon(d, alternative=alternative, method=scipy_method)
    ranks = _scipy_stats.rankdata(np.abs(nonzero))
    r_plus, r_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
    return {
        "test": "wilcoxon",
        "statistic": float(result.statistic),
        "p": float(result.pvalue),
        "n": n,
        "effect": float(np.median(d)),
        "rank_biserial": (r_plus - r_minus) / (r_plus + r_minus),
        "method": method,
    }


def min_wilcoxon_p(n: int, alternative: str = "two-sided") -> float:
    """The smallest p-value the exact Wilcoxon signed-rank test can give with n (non-zero) pairs.

    All n differences of one sign is the most extreme outcome, with null probability 1 / 2**n; so
    min(1, 2 / 2**n) two-sided and 1 / 2**n one-sided. Two-sided 0.05 needs n >= 6 (2/64 = 0.031;
    n = 5 gives 0.0625), one-sided n >= 5. Use it to mark a part "not testable at this scale"
    rather than reporting a p-value that could never have been small. The same floor holds for the
    exact sign-flip test (``paired_permutation``) and for scipy's permutation fallback with ties.
    """
    n = require_int("n", n, 0)
    alternative = _require_alternative(alternative)
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n)


_PERMUTATION_EXACT_MAX_N = 16  # 2**16 sign flips are enumerated; larger n is sampled


def paired_permutation(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    statistic: str = "mean",
    alternative: str = "two-sided",
    n_resamples: int | None = None,
    seed: int = 0,
) -> dict:
    """Sign-flip permutation test of the mean (or median) paired difference d = x - y.

    x, y (n,), n >= 1, entry s of both from the same seed s. Under the null hypothesis each pair
    is exchangeable, so the sign of each d_s is a fair coin. For n <= 16 all 2**n sign flips are
    enumerated (exact, ``n_resamples`` ignored; agrees with scipy.stats.permutation_test((x, y),
    ..., permutation_type="samples") with enough resamples); for larger n, ``n_resamples`` (default
    10,000) random flips drawn with ``np.random.default_rng(seed)``, p = (count + 1) /
    (n_resamples + 1) as scipy does. Null values within 100 machine epsilons (relative) of the
    observed statistic count as equal, as in scipy. Two-sided p = min(1, 2 min(p_less, p_greater)).
    statistic: "mean" or "median"; alternative: "two-sided", "less" (x below y) or "greater".
    Returns {"test": "permutation", "statistic": the observed mean (median) of d, "p", "n": number
    of pairs, "effect": the same observed mean (median) difference, "method": "exact" or
    "monte-carlo"}.
    """
    d = _differences(x, y)
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic={statistic!r} is not allowed; it must be 'mean' or 'median'")
    alternative = _require_alternative(alternative)
    n_resamples = 10_000 if n_resamples is None else require_int("n_resamples", n_resamples, 100)
    require_int("seed", seed, 0)
    reduce = np.mean if statistic == "mean" else np.median
    n = int(d.size)
    observed = float(reduce(d))
    if n <= _PERMUTATION_EXACT_MAX_N:
        flips = np.arange(2**n)[:, None] >> np.arange(n)[None, :] & 1
        null = reduce((1 - 2 * flips) * d, axis=1)
        total, adjustment, method = 2**n, 0, "exact"
    else:
        rng = np.random.default_rng(seed)
        batch = max(1, 2**20 // n)
        null = np.concatenate([
            reduce(rng.choice(np.array([-1.0, 1.0]), size=(min(batch, n_resamples - i), n)) * d, axis=1)
            for i in range(0, n_resamples, batch)
        ])
        total, adjustment, method = n_resamples, 1, "monte-carlo"
    gamma = abs(np.finfo(np.float64).eps * 100 * observed)
    p_less = (int(np.count_nonzero(null <= observed + gamma)) + adjustment) / (total + adjustment)
    p_greater = (int(np.count_nonzero(null >= observed - gamma)) + adjustment) / (total + adjustment)
    p = {"less": p_less, "greater": p_greater, "two-sided": 2 * min(p_less, p_greater)}[alternative]
    return {"test": "permutation", "statistic": observed, "p": min(1.0, p), "n": n, "effect": observed,
            "method": method}


_BOOTSTRAP_METHODS = ("BCa", "percentile", "basic")


def paired_bootstrap_ci(
    samples: Sequence[Sequence[float] | np.ndarray],
    statistic: Callable[..., float],
    *,
    level: float = 0.95,
    method: str = "BCa",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of ``statistic(*samples)`` resampling whole seeds jointly across conditions.

    samples: K >= 1 equally long 1-D arrays (S,), S >= 2, one per condition, entry s of each from
    seed s. Each bootstrap replicate draws S seeds with replacement and hands the same rows of every
    condition to ``statistic`` (e.g. ``lambda a, b: np.mean(a - b)``), which must return one number.
    Runs scipy.stats.bootstrap(samples, statistic, paired=True, vectorized=False, method=method,
    confidence_level=level, n_resamples=n_resamples, rng=np.random.default_rng(seed)).
    method: "BCa" (bias-corrected and accelerated), "percentile" or "basic".
    Returns (low, high). A statistic that does not vary over the replicates (e.g. a constant
    difference) gives (c, c); a BCa interval scipy cannot compute (degenerate jackknife, e.g. the
    median of a few values) raises a ValueError suggesting method="percentile".
    """
    if isinstance(samples, (str, bytes, Mapping)) or not isinstance(samples, (Sequence, np.ndarray)):
        raise TypeError(f"samples must be a sequence of 1-D arrays (one per condition), got {type(samples).__name__}")
    if len(samples) < 1:
        raise ValueError("samples needs at least 1 condition, got 0")
    arrays = [_as_values(f"samples[{k}]", s, min_n=2) for k, s in enumerate(samples)]
    lengths = sorted({a.size for a in arrays})
    if len(lengths) > 1:
        raise ValueError(f"samples must all have one entry per seed (the same length), got lengths {[a.size for a in arrays]}")
    if not callable(statistic):
        raise TypeError(f"statistic must be a callable taking {len(arrays)} arrays, got {type(statistic).__name__}")
    level = require_float("level", level, gt=0.0, lt=1.0)
    if method not in _BOOTSTRAP_METHODS:
        raise ValueError(f"method={method!r} is not allowed; it must be one of 'BCa', 'percentile', 'basic'")
    n_resamples = require_int("n_resamples", n_resamples, 100)
    require_int("seed", seed, 0)
    observed = np.asarray(statistic(*arrays), dtype=np.float64)
    if observed.ndim != 0 or not np.isfinite(observed):
        raise ValueError(f"statistic must return one finite number, got {observed!r}")
    c = float(observed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _scipy_stats.DegenerateDataWarning)
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        result = _scipy_stats.bootstrap(
            arrays, statistic, paired=True, vectorized=False, method=method, confidence_level=level,
            n_resamples=n_resamples, rng=np.random.default_rng(seed),
        )
    boot = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    scale = max(abs(c), float(np.max(np.abs(boot))))
    if np.ptp(boot) <= 1e-9 * scale:
        return c, c
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"the {method} interval cannot be computed for these samples (degenerate jackknife); use method='percentile'")
    return low, high


def t_interval(x: Sequence[float] | np.ndarray, *, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of x (n,), n >= 2: mean -+ t_{n-1, (1+level)/2} * sd / sqrt(n).

    Same numbers as scipy.stats.t.interval(level, n - 1, loc=mean, scale=sem). It assumes the
    values are roughly normal; with few seeds that is an assumption, not a fact. A constant sample
    gives (mean, mean).
    """
    arr = _as_values("x", x, min_n=2)
    level = require_float("level", level, gt=0.0, lt=1.0)
    if np.ptp(arr) == 0.0:  # constant: the mean is that value (arr.mean() may be off by an ulp)
        return float(arr[0]), float(arr[0])
    mean = float(arr.mean())
    sem = float(arr.std(ddof=1) / math.sqrt(arr.size))
    low, high = _scipy_stats.t.interval(level, arr.size - 1, loc=mean, scale=sem)
    return float(low), float(high)


def paired_difference(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray | None = None) -> dict:
    """Per-seed paired differences d = x - y (or d = x when y is None), summarised the one way the book does.

    x, y (n,), n >= 1, finite, entry s of both from the same seed s (orient d so that positive
    supports the claim). Returns {"test": "wilcoxon", "n", "effect": the mean of d, "median": the
    median of d, "ci95": [low, high], the 95 % Student-t interval of the mean (:func:`t_interval`;
    None when n < 2), "positive": how many d_s > 0, "nonzero": how many d_s != 0, "p_floor": the
    smallest two-sided p the signed-rank test can give with that many (:func:`min_wilcoxon_p`), and
    from the two-sided :func:`wilcoxon` of d "p", "statistic", "rank_biserial", "method"; "direction":
    the mean and the signed ranks of d both point up (effect > 0 and rank_biserial > 0)}. Whether n
    pairs are enough to test anything is the caller's rule.
    """
    d = _differences(x, y)
    w = wilcoxon(d)
    n, nonzero, effect = int(d.size), int(np.count_nonzero(d)), float(d.mean())
    return {"test": "wilcoxon", "n": n, "effect": effect, "median": float(np.median(d)),
            "ci95": list(t_interval(d)) if n >= 2 else None, "positive": int(np.count_nonzero(d > 0)),
            "nonzero": nonzero, "p_floor": min_wilcoxon_p(nonzero), "p": w["p"], "statistic": w["statistic"],
            "rank_biserial": w["rank_biserial"], "method": w["method"],
            "direction": bool(effect > 0 and w["rank_biserial"] > 0)}


def holm(pvalues: Sequence[float | None] | np.ndarray) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    pvalues (m,): numbers in [0, 1], or None for parts that were not tested (e.g. too few seeds);
    None passes through and does not count towards the number of tests m. With the tested p-values
    sorted, p_(1) <= ... <= p_(m), the adjusted value of p_(i) is max_{j <= i} min(1, (m - j + 1)
    p_(j)): monotone in the raw p-values, never below them, capped at 1. Reject at level alpha
    where the adjusted p <= alpha; this controls the family-wise error rate.
    """
    if isinstance(pvalues, (str, bytes, Mapping)) or not isinstance(pvalues, (Sequence, np.ndarray)):
        raise TypeError(f"pvalues must be a sequence of p-values (or None), got {type(pvalues).__name__}")
    if isinstance(pvalues, np.ndarray) and pvalues.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {pvalues.shape}")
    tested = [i for i, p in enumerate(pvalues) if p is not None]
    raw = np.array([require_float(f"pvalues[{i}]", pvalues[i], ge=0.0, le=1.0) for i in tested], dtype=np.float64)
    m = raw.size
    order = np.argsort(raw, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * raw[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    out: list[float | None] = [None] * len(pvalues)
    for i, a in zip(tested, adjusted):
        out[i] = float(a)
    return out


# --------------------------------------------------------------------------------------------
# Two classifiers on the same test digits.
# --------------------------------------------------------------------------------------------


def _as_correct(name: str, values: object) -> np.ndarray:
    """Validate a 1-D array of per-digit correctness (booleans, or 0/1); return bool (N,)."""
    if isinstance(values, (str, bytes)) or isinstance(values, Mapping):
        raise TypeError(f"{name} must be a 1-D array of booleans (True = digit classified correctly), got {type(values).__name__}")
    arr = np.asarray(values)
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) or not np.isin(arr, (0, 1)).all():
            raise TypeError(f"{name} must be a 1-D array of booleans (True = digit classified correctly), got dtype {arr.dtype}")
        arr = arr.astype(bool)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size < 1:
        raise ValueError(f"{name} needs at least 1 digit, got 0")
    return arr


def _correct_pair(correct_a: object, correct_b: object) -> tuple[np.ndarray, np.ndarray]:
    a = _as_correct("correct_a", correct_a)
    b = _as_correct("correct_b", correct_b)
    if a.size != b.size:
        raise ValueError(f"correct_a and correct_b must cover the same test digits, got {a.size} and {b.size}")
    return a, b


def mcnemar(correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray) -> dict:
    """Exact McNemar test of two classifiers evaluated on the same N test digits.

    correct_a, correct_b (N,) booleans: digit i classified correctly by a / by b. Only the
    discordant digits carry evidence: b = a right and b wrong, c = a wrong and b right. Under the
    null (equal accuracy) each discordant digit is a fair coin: p = scipy.stats.binomtest(b, b + c,
    0.5).pvalue, two-sided; no discordant digit gives p = 1.0.
    Returns {"test": "mcnemar", "b", "c", "n": N, "p", "effect": (c - b) / N = accuracy of b minus
    accuracy of a (= error of a minus error of b)}.
    """
    a, b_ok = _correct_pair(correct_a, correct_b)
    b = int(np.count_nonzero(a & ~b_ok))
    c = int(np.count_nonzero(~a & b_ok))
    p = 1.0 if b + c == 0 else float(_scipy_stats.binomtest(b, b + c, 0.5).pvalue)
    return {"test": "mcnemar", "b": b, "c": c, "n": int(a.size), "p": p, "effect": (c - b) / a.size}


def error_standard_error(error: float, n: int) -> float:
    """Binomial standard error sqrt(e (1 - e) / n) of a test error e measured on n digits.

    error: a fraction in [0, 1] (1.4 % is 0.014, not 1.4). It is the spread due to the finite test
    set only, for one fixed trained network; the spread over seeds is another, usually larger one.
    """
    e = require_float("error", error, ge=0.0, le=1.0)
    n = require_int("n", n, 1)
    return math.sqrt(e * (1.0 - e) / n)


def difference_standard_error(correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray) -> float:
    """Standard error of error(a) - error(b) for two classifiers on the same N test digits.

    Paired: with the per-digit difference d_i = wrong_a_i - wrong_b_i (in {-1, 0, 1}), the SE is
    sqrt(var(d) / N), var with ddof=0 (as in the binomial SE), = sqrt(((b + c) / N - ((c - b) / N)**2)
    / N) with b, c the discordant counts of ``mcnemar``. Digits both get right (or wrong) add nothing,
    so this is smaller than the unpaired sqrt(SE_a**2 + SE_b**2) when the two agree a lot.
    """
    a, b = _correct_pair(correct_a, correct_b)
    d = b.astype(np.float64) - a.astype(np.float64)  # (1 - a) - (1 - b)
    return float(math.sqrt(d.var() / d.size))
