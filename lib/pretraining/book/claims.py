"""A claim in parts, each tested on the chapter's numbers, and the one rule that turns parts into a verdict.

Every chapter splits its claim into parts (DESIGN.md, "Claims in parts"). A part is decided one of
two ways:

- by a **statistical test** (:func:`from_test`): the part holds only if its p-value, Holm-adjusted over
  all the tested parts of the chapter's claim, is below :data:`ALPHA`, **and** the effect points the
  way the claim states. The adjustment is made once, by :func:`decide`, which
  :meth:`pretraining.book.runtime.Chapter.finish` applies to every chapter's parts;
- by a **stated threshold** (:func:`part`), for measures that are not a test between conditions
  (a likelihood gain against its own error, an overlap of at most 0.1, a nearest-neighbour accuracy
  of 1): the part's own rule decides.

Either way its status is ``"holds"``, ``"fails"``, or ``"not tested"`` (the run cannot test it: a depth
that was not run, too few seeds for the test to ever reach :data:`ALPHA`, a baseline that did not
converge), and the evidence says why.

A part that compares two conditions seed by seed is built by :func:`paired` from
:func:`pretraining.analysis.stats.paired_difference` (the two-sided Wilcoxon signed-rank test; effect:
the mean per-seed difference, with its Student-t interval); with fewer than :data:`MIN_PAIRS` pairs it
is not tested, for the reason :func:`too_few_pairs` gives. :func:`paired_text` says such a comparison
in words.

:func:`verdict` is the only verdict rule of the book: ``"supported"`` when every tested part holds,
``"not supported"`` when none does, ``"partly supported"`` in between, ``"inconclusive"`` when no part
could be tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..analysis.stats import holm, min_wilcoxon_p
from ..core.checks import require_int

__all__ = ["ALPHA", "MIN_PAIRS", "HOLDS", "FAILS", "NOT_TESTED", "STATUSES", "VERDICTS", "Part", "part", "from_test",
           "too_few_pairs", "paired", "paired_text", "decide", "verdict", "parts_markdown"]

ALPHA = 0.05
"""The level of every test in the book, after Holm's correction over the parts of a claim."""
MIN_PAIRS = 8
"""The fewest paired seeds a part may be tested on (DESIGN.md); with fewer it is "not tested at this
scale" (n >= 6 is the least for which an exact two-sided signed-rank test can reach 0.05 at all)."""
HOLDS, FAILS, NOT_TESTED = "holds", "fails", "not tested"
STATUSES = (HOLDS, FAILS, NOT_TESTED)
VERDICTS = ("supported", "partly supported", "not supported", "inconclusive")


@dataclass(frozen=True)
class Part:
    """One part of a claim.

    key: its letter ("a", "b", ..., or "a-rbm"), unique within the chapter; claim: what the part
    says, one sentence; status: one of :data:`STATUSES`; evidence: the sentence with the numbers
    that decided it (or why it was not tested); numbers: further deciding numbers (JSON-able).
    The statistics, None where they do not apply: test (``"wilcoxon"``, ``"permutation"``,
    ``"mcnemar"``, ``"threshold"``, ...), effect (the effect size, in the claim's units), ci95
    ([low, high] of the effect), p (raw), p_holm (Holm-adjusted over the chapter's tested parts),
    n (pairs, seeds or digits), direction (the effect points the way the claim states).
    """

    key: str
    claim: str
    status: str
    evidence: str
    numbers: Mapping[str, Any] = field(default_factory=dict)
    test: str | None = None
    effect: float | None = None
    ci95: tuple[float, float] | None = None
    p: float | None = None
    p_holm: float | None = None
    n: int | None = None
    direction: bool | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is not allowed: one of {', '.join(STATUSES)}")
        for name in ("key", "claim", "evidence"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}={value!r} is not allowed: a non-empty string")
        if self.p is not None and not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p={self.p!r} is not allowed: a probability in [0, 1]")

    @property
    def holds(self) -> bool | None:
        """True, False, or None (not tested)."""
        return None if self.status == NOT_TESTED else self.status == HOLDS

    def claim_part(self) -> dict[str, Any]:
        """The part in the results file's ``claim_parts`` form (exactly these keys)."""
        return {"part": self.key, "statement": self.claim, "test": self.test, "effect": self.effect,
                "ci95": None if self.ci95 is None else [float(v) for v in self.ci95], "p": self.p,
                "p_holm": self.p_holm, "n": self.n, "holds": self.holds}

    def record(self) -> dict[str, Any]:
        """The part with its evidence, for the results file's ``parts`` and the page."""
        return {"key": self.key, "claim": self.claim, "status": self.status, "evidence": self.evidence,
                "numbers": dict(self.numbers)}


def part(key: str, claim: str, holds: bool | None, evidence: str, *, test: str | None = None,
         effect: float | None = None, ci95: Sequence[float] | None = None, n: int | None = None,
         **numbers: Any) -> Part:
    """A part decided by its own stated rule: True -> holds, False -> fails, None -> not tested.

    ``test`` names the rule (default "threshold" for a decided part); effect, ci95 and n describe it.
    """
    if holds is not None and not isinstance(holds, bool):
        raise TypeError(f"holds={holds!r} is not allowed: True, False or None (not tested)")
    status = NOT_TESTED if holds is None else HOLDS if holds else FAILS
    return Part(key, claim, status, evidence, numbers, test=test or (None if holds is None else "threshold"),
                effect=effect, ci95=None if ci95 is None else (float(ci95[0]), float(ci95[1])), n=n)


def not_converged_text(what: str, evidence: str) -> str:
    """The evidence of a part that compares networks which did not converge: what did not, then the
    numbers the part would have been decided on (kept, but not counted)."""
    return f"not tested at this scale: {what} did not converge within the budget; the numbers were: {evidence}"


def not_converged(prt: Part, what: str) -> Part:
    """``prt`` made "not tested" because the networks it compares did not converge (``what`` names
    them and why); its numbers stay in the evidence and the results file, its test and p are dropped."""
    return Part(prt.key, prt.claim, NOT_TESTED, not_converged_text(what, prt.evidence),
                {**prt.numbers, "not_converged": what}, effect=prt.effect, ci95=prt.ci95, n=prt.n)


def from_test(key: str, claim: str, result: Mapping[str, Any], evidence: str, *, direction: bool,
           ci95: Sequence[float] | None = None, **numbers: Any) -> Part:
    """A part decided by a test: ``result`` is a dict of :mod:`pretraining.analysis.stats`
    (``wilcoxon``, ``paired_permutation``, ``mcnemar``: keys "test", "p", "n", "effect");
    ``direction``: the effect points the way the claim states. Provisionally the part holds when the
    raw p < ALPHA in that direction; :func:`decide` settles it with the Holm-adjusted p."""
    p = float(result["p"])
    return Part(key, claim, HOLDS if (p < ALPHA and direction) else FAILS, evidence, numbers,
                test=str(result["test"]), effect=float(result["effect"]),
                ci95=None if ci95 is None else (float(ci95[0]), float(ci95[1])), p=p,
                n=int(result["n"]), direction=bool(direction))


def _unit(unit: str, n: int) -> str:
    """``unit`` ("seeds", "runs") for a count of n: the singular for one."""
    return unit[:-1] if n == 1 and unit.endswith("s") else unit


def too_few_pairs(n: int, unit: str = "seeds") -> str | None:
    """Why a part cannot be tested on n pairs (fewer than :data:`MIN_PAIRS`), or None when it can.

    unit: what is paired, plural ("seeds", "runs"). The sentence names the smallest two-sided p the
    exact signed-rank test can give with n pairs (:func:`pretraining.analysis.stats.min_wilcoxon_p`).
    """
    n = require_int("n", n, 0)
    if n >= MIN_PAIRS:
        return None
    return (f"with {n} paired {_unit(unit, n)} the part is not testable at this scale (a paired test needs at "
            f"least {MIN_PAIRS}; with {n} the smallest possible two-sided signed-rank p is {min_wilcoxon_p(n):.2g})")


def paired(key: str, claim: str, diff: Mapping[str, Any], evidence: str, *, also: bool = True,
           unit: str = "seeds", **numbers: Any) -> Part:
    """A part decided by the paired test ``diff``: a :func:`pretraining.analysis.stats.paired_difference`
    of per-seed differences oriented so that positive supports the claim.

    With at least :data:`MIN_PAIRS` pairs: :func:`from_test` with direction = ``diff["direction"]``
    (the mean and the signed ranks of d both positive) and ``also`` (the part's further condition,
    e.g. "2 layers are the best depth"), ci95 = the t interval of the mean. With fewer: not tested
    (holds None), the evidence followed by :func:`too_few_pairs`'s reason (``unit``: what is paired),
    and effect, ci95 and n still filled in. ``numbers`` (the part's further deciding numbers) get the
    mean and median difference, the rank-biserial correlation and the Wilcoxon method of ``diff``.
    """
    numbers = {**numbers, "mean_difference": diff["effect"], "median_difference": diff["median"],
               "rank_biserial": diff["rank_biserial"], "wilcoxon_method": diff["method"]}
    reason = too_few_pairs(int(diff["n"]), unit)
    if reason:
        return part(key, claim, None, f"{evidence}; {reason}", effect=diff["effect"], ci95=diff["ci95"],
                    n=int(diff["n"]), **numbers)
    return from_test(key, claim, diff, evidence, direction=bool(diff["direction"] and also), ci95=diff["ci95"],
                     **numbers)


def paired_text(diff: Mapping[str, Any], fmt: str = "+.4f", unit: str = "seeds", *, interval: bool = True,
                p: bool = False, points: bool = False) -> str:
    """A :func:`pretraining.analysis.stats.paired_difference` in words (``unit``: what is paired, plural).

    "mean +0.0102 (+1.02 points), 95 % t interval over seeds +0.0081 to +0.0123, positive in 12 of 12
    seeds, Wilcoxon signed-rank p = 0.00049": the mean in format ``fmt``; with ``points`` the mean x
    100 as percentage points; with ``interval`` its t interval (where there is one); with ``p`` the
    raw Wilcoxon p, only with at least :data:`MIN_PAIRS` pairs (never a p that could not have been
    small). With enough pairs of which too few differ at all for p to go below :data:`ALPHA`, it
    says so.
    """
    n, effect = int(diff["n"]), diff["effect"]
    text = f"mean {effect:{fmt}}" + (f" ({100 * effect:+.2f} points)" if points else "")
    if interval and diff["ci95"] is not None:
        text += f", 95 % t interval over {unit} {diff['ci95'][0]:{fmt}} to {diff['ci95'][1]:{fmt}}"
    text += f", positive in {diff['positive']} of {n} {_unit(unit, n)}"
    if n >= MIN_PAIRS:
        if p:
            text += f", Wilcoxon signed-rank p = {diff['p']:.2g}"
        if diff["p_floor"] >= ALPHA:
            text += (f"; only {diff['nonzero']} of the {n} {unit} differ at all, so p cannot go below "
                     f"{diff['p_floor']:.2g}")
    return text


def decide(parts: Sequence[Part], alpha: float = ALPHA) -> list[Part]:
    """The parts with Holm-adjusted p-values over the tested ones, and their final statuses.

    A part with a p-value holds iff its adjusted p < ``alpha`` and its effect points the way the
    claim states; parts decided by a threshold, or not tested, are unchanged.
    """
    with_p = [p.p if (p.p is not None and p.status != NOT_TESTED) else None for p in parts]
    adjusted = holm(with_p) if any(v is not None for v in with_p) else with_p
    out = []
    for prt, adj in zip(parts, adjusted):
        if adj is None:
            out.append(prt)
        else:
            status = HOLDS if (adj < alpha and prt.direction) else FAILS
            out.append(dataclasses.replace(prt, p_holm=float(adj), status=status))
    return out


def verdict(parts: Sequence[Part]) -> str:
    """The verdict on a claim from its (decided) parts (see the module docstring)."""
    if not parts:
        raise ValueError("verdict() needs at least one part of the claim")
    keys = [p.key for p in parts]
    if len(set(keys)) != len(keys):
        raise ValueError(f"the parts' keys must be distinct, got {keys}")
    tested_ = [p.status for p in parts if p.status != NOT_TESTED]
    if not tested_:
        return "inconclusive"
    if all(s == HOLDS for s in tested_):
        return "supported"
    return "not supported" if all(s == FAILS for s in tested_) else "partly supported"


def _stats_text(p: Part) -> str:
    if p.p is None:
        return ""
    ci = "" if p.ci95 is None else f", 95% interval {p.ci95[0]:.3g} to {p.ci95[1]:.3g}"
    holm_ = "" if p.p_holm is None else f", Holm-adjusted p = {p.p_holm:.2g}"
    return f" [{p.test}, n = {p.n}: effect {p.effect:.3g}{ci}, p = {p.p:.2g}{holm_}]"


def parts_markdown(parts: Sequence[Part]) -> str:
    """A Markdown list, one line per part: ``- (a) claim: **holds** — evidence [test, n: effect, p].``"""
    mark = {HOLDS: "**holds**", FAILS: "**fails**", NOT_TESTED: "*not tested*"}
    return "\n".join(f"- ({p.key}) {p.claim}: {mark[p.status]} — {p.evidence.rstrip('.')}{_stats_text(p)}."
                     for p in parts)
