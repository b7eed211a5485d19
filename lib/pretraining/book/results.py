"""The chapters' results files, and the summary page built from them (table, marks, figure, downloads)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from .claims import ALPHA, FAILS, HOLDS, NOT_TESTED
from .paths import find_root, results_dir
from .site import toc_chapter_stems
from .specs import load_spec

__all__ = ["load_results", "summary_table", "summary_figure", "glue_summary_figure", "RESULTS_URL"]

RESULTS_URL = "results"
"""Where the site serves the results files (``<site>/results/<chapter>.json``, for download)."""
_MARK = {HOLDS: ("✓", "holds"), FAILS: ("✗", "fails"), NOT_TESTED: ("–", "not tested")}


def load_results(build: str | Path | None = None) -> dict[str, dict]:
    """All results files of the build folder, by chapter name (empty if none yet)."""
    folder = results_dir(build)
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _parts_html(parts: Sequence[dict]) -> str:
    items = []
    for p in parts:
        mark, word = _MARK[p["status"]]
        items.append(f'<li class="part part-{word.replace(" ", "-")}" title="{html.escape(p["evidence"])}">'
                     f'<span class="part-mark" aria-label="{word}">{mark}</span> ({html.escape(p["key"])}) '
                     f'{html.escape(p["claim"])}</li>')
    return f'<ul class="claim-parts">{"".join(items)}</ul>'


def summary_table(chapters: Sequence[str] | None = None, build: str | Path | None = None) -> str:
    """An HTML table: chapter, claim and its parts, what the papers found, what this book found, verdict.

    One row per chapter stem (default: the chapters of ``_toc.yml``), with the ``claim`` and
    ``paper`` of its spec; the rest comes from ``<build>/results/<chapter>.json``: each part of the
    claim with its mark (✓ holds, ✗ fails, – not tested; the evidence on hover), the finding, the
    verdict with its profile, the chapter's run time and a link to its results file. A chapter
    without results says "not run yet".
    """
    results = load_results(build)
    try:
        root: Path | None = find_root()
    except FileNotFoundError:
        root = None
    if chapters is None:
        if root is None:
            raise FileNotFoundError("summary_table() without chapters needs the book's _toc.yml")
        chapters = toc_chapter_stems(root)
    rows = []
    for stem in chapters:
        spec, r = load_spec(stem), results.get(stem)
        label = html.escape(stem.replace("_", " "))
        if root is not None and (root / "chapters" / f"{stem}.ipynb").is_file():
            label = f'<a href="chapters/{html.escape(stem)}.html">{label}</a>'
        claim = html.escape(spec.claim)
        if r is None:
            found, verdict = "<em>not run yet</em>", "&mdash;"
        else:
            parts = r["parts"]
            tested = [p for p in parts if p["status"] != NOT_TESTED]
            held = sum(p["status"] == HOLDS for p in tested)
            claim += _parts_html(parts)
            found = html.escape(r["finding"])
            seconds = r.get("_provenance", {}).get("wall time s")
            verdict = (f"<strong>{html.escape(r['verdict'])}</strong><br>{held} of {len(tested)} tested parts hold"
                       + (f", {len(parts) - len(tested)} not tested" if len(parts) > len(tested) else "")
                       + f"<br>profile {html.escape(r['profile'])}"
                       + (f", {_duration(seconds)}" if isinstance(seconds, (int, float)) else "")
                       + f'<br><a href="{RESULTS_URL}/{html.escape(stem)}.json" download>results (JSON)</a>')
        rows.append(f"<tr><td>{label}</td><td>{claim}</td><td>{html.escape(spec.paper)}</td>"
                    f"<td>{found}</td><td>{verdict}</td></tr>")
    head = ("<tr><th>Chapter</th><th>Claim, in parts</th><th>What the papers found</th>"
            "<th>What this book found</th><th>Verdict</th></tr>")
    return f'<table class="summary-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def summary_figure(build: str | Path | None = None):
    """Every part of every chapter's claim that was decided by a test: its Holm-adjusted p-value.

    One row per such part (chapter and part), the p-value on a log axis, a line at α; filled dots
    hold (p below α and the effect in the claim's direction), open dots fail. Returns the Figure
    (None when no chapter has a tested part yet).
    """
    import matplotlib.pyplot as plt

    from ..analysis.figures import PALETTE, styled

    rows = []
    for stem, r in load_results(build).items():
        for p in r["results"].get("claim_parts", []):
            if p.get("p_holm") is not None:
                rows.append((f"{stem.split('_')[0]} ({p['part']})", p["p_holm"], bool(p["holds"])))
    if not rows:
        return None
    with styled():
        fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.4))
        for i, (label, p, holds) in enumerate(rows):
            x = max(p, 1e-12)
            colour = PALETTE[0] if holds else PALETTE[1]  # blue holds, orange fails (and filled / open)
            ax.plot([x], [i], "o", ms=8, color=colour, mfc=colour if holds else "white", mew=2)
        ax.axvline(ALPHA, color="0.3", ls="--", lw=1)
        ax.text(ALPHA, -0.9, f" α = {ALPHA}", va="center", fontsize=10)
        ax.set_xscale("log")
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.set_ylim(len(rows) - 0.5, -1.3)
        ax.set_xlim(min(1e-4, min(max(r[1], 1e-12) for r in rows) / 2), 1.5)
        ax.set_xlabel("Holm-adjusted p-value (log scale)")
        ax.set_ylabel("chapter (part)")
        ax.set_title("The tested parts of each claim")
        fig.tight_layout()
    return fig


def glue_summary_figure(key: str = "summary_parts") -> None:
    """Glue :func:`summary_figure` under ``key`` for the summary page's ``{glue:figure}`` (a figure that
    says so when no part was decided by a test yet, e.g. at the smoke profile)."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    from ..analysis.figures import styled

    fig = summary_figure()
    if fig is None:
        with styled():
            fig, ax = plt.subplots(figsize=(7.5, 1.2))
            ax.text(0.5, 0.5, "No part of any claim could be decided by a test in these runs "
                    "(too few seeds at this profile).", ha="center", va="center", fontsize=11)
            ax.set_axis_off()
    glue(key, fig, display=False)
    plt.close(fig)
