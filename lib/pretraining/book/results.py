"""The chapters' results files, and the summary table built from them."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from .claims import HOLDS, NOT_TESTED
from .paths import find_root, results_dir
from .site import toc_chapter_stems
from .specs import load_spec

__all__ = ["load_results", "summary_table"]


def load_results(build: str | Path | None = None) -> dict[str, dict]:
    """All results files of the build folder, by chapter name (empty if none yet)."""
    folder = results_dir(build)
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def summary_table(chapters: Sequence[str] | None = None, build: str | Path | None = None) -> str:
    """An HTML table: chapter, claim, what the papers found, what this book found, verdict.

    One row per chapter stem (default: the chapters of ``_toc.yml``), with the ``claim`` and
    ``paper`` of its spec; the last two columns come from
    ``<build>/results/<chapter>.json`` (``finding``, ``verdict``, ``parts``, ``profile``); a chapter
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
        if r is None:
            found, verdict = "<em>not run yet</em>", "&mdash;"
        else:
            parts = r["parts"]
            tested = [p for p in parts if p["status"] != NOT_TESTED]
            held = sum(p["status"] == HOLDS for p in tested)
            found = html.escape(r["finding"])
            verdict = (f"<strong>{html.escape(r['verdict'])}</strong> ({html.escape(r['profile'])})"
                       f"<br>{held} of {len(tested)} tested parts hold"
                       + (f", {len(parts) - len(tested)} not tested" if len(parts) > len(tested) else ""))
        rows.append(f"<tr><td>{label}</td><td>{html.escape(spec.claim)}</td>"
                    f"<td>{html.escape(spec.paper)}</td><td>{found}</td><td>{verdict}</td></tr>")
    head = ("<tr><th>Chapter</th><th>Claim</th><th>What the papers found</th>"
            "<th>What this book found</th><th>Verdict (profile)</th></tr>")
    return f'<table class="summary-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
