"""How the book shows the fair-fight protocol (:mod:`pretraining.core.selection`) on a page.

Every chapter that compares networks shows, for every compared condition, how it was trained (a
table from the selection records) and, where one did not converge, its curves. The same words and
the same columns everywhere:

* :func:`selection_frame` — one row per condition: the chosen rate, the rates tried, whether the
  rate is on the grid's edge, the median best epoch and epochs run, the median training NLL at the
  best epoch, the seeds converged;
* :func:`not_converged_names` / :func:`convergence_sentence` / :func:`why_not` — which conditions did
  not converge (:func:`pretraining.core.selection.setting_converged`), and why, in words;
* :func:`gate` — a claim part that compares a condition that did not converge is "not tested at this scale";
* the curves figure is :func:`pretraining.analysis.figures.training_curves` (this module draws
  nothing, so the words it gives the claim parts never tie a cache key to the plotting code).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import claims
from ..core.selection import setting_converged

__all__ = ["selection_frame", "not_converged_names", "convergence_sentence", "why_not", "gate", "FORMATS"]

FORMATS = {"chosen rate": "{:g}", "best epoch": "{:.0f}", "epochs run": "{:.0f}", "training NLL": "{:.3f}"}
"""Formats of :func:`selection_frame`'s numeric columns, for ``DataFrame.style.format``."""


def selection_frame(records: Mapping[Any, Mapping[str, Any]], index: str | Sequence[str] = "network") -> pd.DataFrame:
    """One row per condition from :meth:`pretraining.core.selection.Selection.record`.

    records: {condition: record}; a tuple condition gives a multi-level index named by ``index``.
    """
    rows = []
    for name, rec in records.items():
        keys = name if isinstance(name, tuple) else (name,)
        names = [index] if isinstance(index, str) else list(index)
        rows.append({**dict(zip(names, keys)), "chosen rate": rec["lr"],
                     "rates tried": f"{min(rec['grid']):g}–{max(rec['grid']):g} ({len(rec['grid'])})",
                     "on the edge": "yes" if rec["at_edge"] else "no",
                     "best epoch": float(np.median(rec["best_epoch"])),
                     "epochs run": float(np.median(rec["epochs_run"])),
                     "training NLL": float(np.median(rec["train_nll"])),
                     "converged": f"{rec['n_converged']} of {len(rec['converged'])}"})
    names = [index] if isinstance(index, str) else list(index)
    return pd.DataFrame(rows).set_index(names)


def not_converged_names(records: Mapping[Any, Mapping[str, Any]]) -> list[Any]:
    """The conditions of ``records`` that did not converge (:func:`converged`)."""
    return [k for k, rec in records.items() if not setting_converged(rec)]


def why_not(record: Mapping[str, Any]) -> str:
    """Why one condition did not converge, in words, with what a longer run of one seed showed."""
    n, k = len(record["converged"]), record["n_converged"]
    parts = [f"{k} of {n} seeds converged within {record['epoch_budget']} epochs"] if k < n else []
    if record["at_edge"]:
        parts.append(f"the chosen rate {record['lr']:g} is on the edge of the rates tried")
    longer = record.get("longer_run")
    if longer:
        parts.append(f"seed {longer['seed']} trained alone for up to {longer['epochs']} epochs "
                     + (f"converged, stopping after {longer['epochs_run']}" if longer["converged"] else
                        f"did not converge either (training NLL {longer['final_train_nll']:.2f} at the end)"))
    return ", ".join(parts) or "converged"


def convergence_sentence(records: Mapping[Any, Mapping[str, Any]], label=str) -> str:
    """Which conditions did not converge (they decide no part of the claim), or that all did.
    label(condition) -> its name in the sentence."""
    bad = not_converged_names(records)
    if not bad:
        every = "Both" if len(records) == 2 else "The one" if len(records) == 1 else f"All {len(records)}"
        return (f"{every} trained condition{'s' * (len(records) != 1)} converged: every seed trained off the "
                "plateau, its validation curve flattened, and no chosen rate lies on the edge of the rates tried.")
    return (f"{len(bad)} of {len(records)} conditions did not converge — "
            + "; ".join(f"{label(k)}: {why_not(records[k])}" for k in bad)
            + " — so no part of the claim is decided on them ('not tested at this scale').")


def gate(parts: Sequence[claims.Part], needs: Callable[[str], Sequence[Any]], records: Mapping[Any, Mapping[str, Any]],
         label: Callable[[Any], str] = str) -> list[claims.Part]:
    """Every tested part that compares a condition which did not converge becomes "not tested at this
    scale" (:func:`pretraining.book.claims.not_converged`), naming the conditions and why.

    needs(part key) -> the conditions (keys of ``records``, {condition: selection record}) the part
    compares; label(condition) -> its name in the sentence. Parts already not tested stay as they are.
    """
    out = []
    for prt in parts:
        bad = [k for k in needs(prt.key) if not setting_converged(records[k])]
        if bad and prt.status != claims.NOT_TESTED:
            prt = claims.not_converged(prt, "; ".join(f"{label(k)} ({why_not(records[k])})" for k in bad))
        out.append(prt)
    return out
