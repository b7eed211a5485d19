"""Results, glue and provenance for the chapter notebooks.

A chapter uses it like this (see the README, "Writing a chapter")::

    ch = book.start("03_depth_study", globals(), {"n_seeds": Int(min=1)})
    split = ch.data                                   # the data set named by `dataset`, on ch.device
    tensors, meta = ch.cached("dbn", {"sizes": [784, 500]}, compute)
    ch.glue("best_depth", 2)                          # {glue:text}`best_depth` in the text
    ch.finish({"errors": errors}, finding="...", verdict="supported")

The build folder is ``$PRETRAINING_BUILD_DIR`` (set by ``python -m pretraining run``) or
``<repo root>/_build``, the repo root being the nearest folder upward with a ``_toc.yml``;
so a plain ``papermill chapters/x.ipynb out.ipynb`` works too.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .cli import BUILD_DIR_ENV, find_root
from .device import get_device
from .params import Spec, check_parameters
from .store import ArtifactStore, atomic_write_bytes, source_hash, to_plain

__all__ = ["Chapter", "start", "find_root", "build_dir", "results_dir", "load_results",
           "summary_table", "VERDICTS", "BUILD_DIR_ENV"]

VERDICTS = ("supported", "partly supported", "not supported", "inconclusive")
_VERSIONS = ("torch", "numpy", "scikit-learn", "openTSNE", "papermill", "myst-nb", "jupyter-book")


def build_dir() -> Path:
    """``$PRETRAINING_BUILD_DIR`` if set, else ``<repo root>/_build``."""
    env = os.environ.get(BUILD_DIR_ENV)
    return Path(env).resolve() if env else find_root() / "_build"


def results_dir(build: str | Path | None = None) -> Path:
    """The folder of the chapters' results JSON files."""
    return Path(build or build_dir()) / "results"


def load_results(build: str | Path | None = None) -> dict[str, dict]:
    """All results files of the build folder, by chapter name (empty if none yet)."""
    folder = results_dir(build)
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def summary_table(claims: list[Mapping[str, str]], build: str | Path | None = None) -> str:
    """An HTML table: claim, what the paper found, what this book found, verdict.

    ``claims``: one dict per chapter with keys ``chapter`` (file stem), ``claim``, ``paper``.
    The last two columns come from ``<build>/results/<chapter>.json`` (``finding``, ``verdict``,
    ``profile``); a chapter without results says "not run yet".
    """
    results = load_results(build)
    try:
        root: Path | None = find_root()
    except FileNotFoundError:
        root = None
    rows = []
    for c in claims:
        stem, r = c["chapter"], results.get(c["chapter"])
        label = html.escape(stem.replace("_", " "))
        if root is not None and (root / "chapters" / f"{stem}.ipynb").is_file():
            label = f'<a href="chapters/{html.escape(stem)}.html">{label}</a>'
        if r is None:
            found, verdict = "<em>not run yet</em>", "&mdash;"
        else:
            found = html.escape(r["finding"])
            verdict = f"<strong>{html.escape(r['verdict'])}</strong> ({html.escape(r['profile'])})"
        rows.append(f"<tr><td>{label}</td><td>{html.escape(c['claim'])}</td>"
                    f"<td>{html.escape(c['paper'])}</td><td>{found}</td><td>{verdict}</td></tr>")
    head = ("<tr><th>Chapter</th><th>Claim</th><th>What the paper found</th>"
            "<th>What this book found</th><th>Verdict (profile)</th></tr>")
    return f'<table class="summary-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


class Chapter:
    """The state of one running chapter: parameters, device, cache, glued values, timing."""

    def __init__(self, name: str, params: dict[str, Any], build: Path):
        self.name = name
        self.params = params
        self.profile: str = params["profile"]
        self.device: torch.device = get_device(params.get("device", "auto"))
        self.build_dir = build
        self.store = ArtifactStore(build / "cache")
        self.glued: dict[str, Any] = {}
        self._data = None
        self._t0 = time.perf_counter()

    @property
    def data(self):
        """The data split named by the ``dataset`` parameter, on :attr:`device` (loaded once)."""
        if self._data is None:
            if "dataset" not in self.params:
                raise ValueError(f"chapter {self.name!r} has no 'dataset' parameter; declare "
                                 "`dataset: str = \"mnist-10k\"` in its parameters cell")
            from .data import load_dataset  # imported here: only chapters with data need it
            self._data = load_dataset(self.params["dataset"], device=self.device)
        return self._data

    @property
    def data_sha256(self) -> str | None:
        """sha256 of the data set (loads it), or None for a chapter without ``dataset``."""
        return self.data.sha256 if "dataset" in self.params else None

    def cached(self, name: str, params: Mapping[str, Any],
               compute: Callable[[], tuple[dict[str, torch.Tensor], dict]]
               ) -> tuple[dict[str, torch.Tensor], dict]:
        """``store.get_or_compute`` keyed by ``name``, ``params``, the data and the library.

        The same call with the same ``params`` in another chapter is a cache hit. Tensors come
        back on :attr:`device`. ``params`` must hold everything ``compute`` depends on besides the
        data and the library code (sizes, epochs, learning rates, seeds, ...).
        """
        return self.store.get_or_compute(name, params, compute, data_sha256=self.data_sha256,
                                         device=self.device)

    def glue(self, key: str, value: Any, fmt: str | None = None) -> None:
        """Glue ``value`` for ``{glue:text}`key``` in the text and record it in the results.

        With ``fmt`` (a format spec such as ``".2%"``) the glued text is ``format(value, fmt)``;
        without it the text roles can format: ``{glue:text}`key:.2%```. Numbers must be finite.
        """
        from myst_nb import glue as _glue

        plain = to_plain(value, f"glued value {key!r}")
        if key in self.glued:
            raise ValueError(f"glue key {key!r} is used twice in chapter {self.name!r}")
        self.glued[key] = plain
        # a formatted value is glued as a string: myst-nb literal-evals text/plain, which would
        # turn "7,000" into a tuple and "1.50" into 1.5, but gives a string back unchanged
        _glue(key, format(plain, fmt) if fmt else plain, display=False)

    def finish(self, results: Mapping[str, Any], *, finding: str, verdict: str) -> dict:
        """Write ``<build>/results/<name>.json`` atomically and display the provenance.

        ``finding``: one sentence with the computed numbers, for the summary table.
        ``verdict``: one of :data:`VERDICTS`, computed from the numbers. Returns the record.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict={verdict!r} is not allowed: one of {', '.join(VERDICTS)}")
        if not isinstance(finding, str) or not finding.strip():
            raise ValueError(f"finding={finding!r} is not allowed: a non-empty sentence")
        record = {
            "chapter": self.name,
            "profile": self.profile,
            "finding": finding,
            "verdict": verdict,
            "results": to_plain(dict(results), "results"),
            "glued": self.glued,
            "_cache": {"hits": self.store.hits, "misses": self.store.misses},
            "_provenance": self.provenance(),
        }
        text = json.dumps(record, indent=1, sort_keys=False, allow_nan=False)
        atomic_write_bytes(results_dir(self.build_dir) / f"{self.name}.json", text.encode())
        _display_provenance(record["_provenance"])
        return record

    def provenance(self) -> dict[str, Any]:
        """Profile, parameters, code and data versions, device, library versions, wall time."""
        versions = {"python": platform.python_version()}
        for pkg in _VERSIONS:
            try:
                versions[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                versions[pkg] = "not installed"
        dev = str(self.device)
        if self.device.type == "cuda":
            dev += f" ({torch.cuda.get_device_name(self.device)})"
        return {
            "chapter": self.name,
            "profile": self.profile,
            "parameters": to_plain(self.params, "params"),
            "git commit": _git_commit(self.build_dir),
            "library source sha256": source_hash(),
            "data sha256": self._data.sha256 if self._data is not None else "no data loaded",
            "device": dev,
            "versions": versions,
            "wall time s": round(time.perf_counter() - self._t0, 1),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }


def start(name: str, namespace: Mapping[str, Any], spec: Mapping[str, Spec]) -> Chapter:
    """Validate the notebook's parameters (one :class:`ParameterError` line if bad) and begin.

    ``name`` is the notebook's file stem (e.g. ``"03_depth_study"``), ``namespace`` its
    ``globals()`` right after the parameters cell, ``spec`` its own parameters' specs
    (the common ones — profile, device, dataset, seed — are known already).
    """
    params = check_parameters(namespace, spec)
    return Chapter(name, params, build_dir())


def _git_commit(build: Path) -> str:
    try:
        root = find_root()
    except FileNotFoundError:
        root = build
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return commit + (" (dirty)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git or no commit yet)"


def _display_provenance(prov: Mapping[str, Any]) -> None:
    from IPython.display import HTML, display

    def rows(d: Mapping[str, Any], prefix: str = "") -> list[str]:
        out = []
        for k, v in d.items():
            if isinstance(v, Mapping):
                out += rows(v, f"{prefix}{k} / ")
            else:
                out.append(f"<tr><th>{html.escape(prefix + k)}</th>"
                           f"<td><code>{html.escape(v if isinstance(v, str) else json.dumps(v))}</code></td></tr>")
        return out

    body = "".join(rows(prov))
    display(HTML(f'<details class="provenance"><summary>Provenance of these results</summary>'
                 f"<table>{body}</table></details>"))
