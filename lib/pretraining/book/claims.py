"""A claim in parts, each tested on the chapter's numbers, and the one rule that turns parts into a verdict.

Every chapter splits its claim into parts (DESIGN.md, "Claims in parts"); each part is a
:class:`Part` whose status is computed from the numbers:

- ``"holds"``: the part's test passed;
- ``"fails"``: it did not;
- ``"not tested"``: the run cannot test it (a depth that was not run, too few seeds for the test to
  reach its level, a baseline that did not converge); the evidence says why.

:func:`verdict` is the only verdict rule of the book: ``"supported"`` when every tested part holds,
``"not supported"`` when none does, ``"partly supported"`` in between, ``"inconclusive"`` when no part
could be tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HOLDS", "FAILS", "NOT_TESTED", "STATUSES", "VERDICTS", "Part", "part", "verdict",
           "parts_markdown"]

HOLDS, FAILS, NOT_TESTED = "holds", "fails", "not tested"
STATUSES = (HOLDS, FAILS, NOT_TESTED)
VERDICTS = ("supported", "partly supported", "not supported", "inconclusive")


@dataclass(frozen=True)
class Part:
    """One part of a claim.

    key: its letter ("a", "b", ...), unique within the chapter; claim: what the part says, one
    sentence; status: one of :data:`STATUSES`; evidence: the sentence with the numbers that decided
    it (or why it was not tested); numbers: the deciding numbers, JSON-able, for the results file.
    """

    key: str
    claim: str
    status: str
    evidence: str
    numbers: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is not allowed: one of {', '.join(STATUSES)}")
        for name in ("key", "claim", "evidence"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}={value!r} is not allowed: a non-empty string")

    def record(self) -> dict[str, Any]:
        """The part as a plain dict for the results JSON."""
        return {"key": self.key, "claim": self.claim, "status": self.status,
                "evidence": self.evidence, "numbers": dict(self.numbers)}


def part(key: str, claim: str, holds: bool | None, evidence: str, **numbers: Any) -> Part:
    """A :class:`Part` from a test result: True -> holds, False -> fails, None -> not tested."""
    if holds is not None and not isinstance(holds, bool):
        raise TypeError(f"holds={holds!r} is not allowed: True, False or None (not tested)")
    status = NOT_TESTED if holds is None else HOLDS if holds else FAILS
    return Part(key, claim, status, evidence, numbers)


def verdict(parts: Sequence[Part]) -> str:
    """The verdict on a claim from its parts (see the module docstring)."""
    if not parts:
        raise ValueError("verdict() needs at least one part of the claim")
    keys = [p.key for p in parts]
    if len(set(keys)) != len(keys):
        raise ValueError(f"the parts' keys must be distinct, got {keys}")
    tested = [p.status for p in parts if p.status != NOT_TESTED]
    if not tested:
        return "inconclusive"
    if all(s == HOLDS for s in tested):
        return "supported"
    return "not supported" if all(s == FAILS for s in tested) else "partly supported"


def parts_markdown(parts: Sequence[Part]) -> str:
    """A Markdown list, one line per part: ``- (a) claim: **holds** — evidence.``"""
    mark = {HOLDS: "**holds**", FAILS: "**fails**", NOT_TESTED: "*not tested*"}
    return "\n".join(f"- ({p.key}) {p.claim}: {mark[p.status]} — {p.evidence.rstrip('.')}." for p in parts)
