"""The book's table of contents, and the site: executed notebooks rendered by Jupyter Book.

:func:`toc_docs` lists the documents of ``_toc.yml`` in order (entries whose source does not exist
yet are skipped with a note); :func:`build_site` renders ``<build>/executed`` and the Markdown pages
into ``<build>/html`` with jupyter-book, warnings counting as errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml

from ..core.files import atomic_write_bytes

__all__ = ["CHAPTERS_DIR", "MATHJAX_SPEC", "Doc", "SiteError", "fetch_mathjax", "mathjax_dir", "toc_docs", "toc_chapter_stems", "prepare_for_render",
           "write_notebook", "results_run_ids", "publication_problems", "assemble_site", "build_site"]

CHAPTERS_DIR = "chapters"
# cells carrying one of these tags keep their own visibility; others get hide-input
_VISIBILITY_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell", "show-input",
                    "hide-output", "remove-output"}


class SiteError(Exception):
    """The book cannot be built (or its toc read); the message says why and what to run."""


MATHJAX_SPEC = "mathjax@3.2.2"
MATHJAX_INTEGRITY = "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
_MATHJAX_PARTS = ("es5/tex-chtml.js", "es5/output/chtml/fonts/woff-v2")  # the script and the fonts it loads


def mathjax_dir(root: Path) -> Path:
    """Where the local copy of MathJax lives (``<root>/.cache/mathjax-3.2.2``, git-ignored)."""
    return root / ".cache" / MATHJAX_SPEC.replace("@", "-")


def fetch_mathjax(root: Path) -> Path:
    """Put MathJax (the npm package, integrity checked) into :func:`mathjax_dir`, once.

    Only the combined TeX-to-HTML script and its fonts are kept; the site serves them itself, so the
    book's mathematics renders without a network (``build`` falls back to the CDN, with a note, when
    the copy is missing).
    """
    import tarfile
    import tempfile

    from ..core.files import check_integrity, npm_pack

    target = mathjax_dir(root)
    if (target / "tex-chtml.js").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tgz = npm_pack(MATHJAX_SPEC, Path(tmp))
        check_integrity(tgz, MATHJAX_INTEGRITY)
        out = Path(tmp) / "mathjax"
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("package/")
                if member.isfile() and any(name == p or name.startswith(p + "/") for p in _MATHJAX_PARTS):
                    dest = out / name.removeprefix("es5/")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(tar.extractfile(member).read())
        os.replace(out, target)
    return target


@dataclass(frozen=True)
class Doc:
    """One toc entry with an existing source file."""

    docname: str   # e.g. "chapters/03_depth_study"
    source: Path   # the source file

    @property
    def stem(self) -> str:
        return Path(self.docname).name

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"

    @property
    def is_chapter(self) -> bool:
        return self.is_notebook and self.docname.startswith(CHAPTERS_DIR + "/")


def _toc(root: Path) -> dict:
    try:
        return yaml.safe_load((root / "_toc.yml").read_text())
    except FileNotFoundError:
        raise SiteError(f"{root / '_toc.yml'} does not exist; --root must be the book folder") from None


def _toc_files(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if "file" in node:
            yield str(node["file"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                yield from _toc_files(child)
    elif isinstance(node, list):
        for child in node:
            yield from _toc_files(child)


def _source(root: Path, docname: str) -> Path | None:
    docname = docname.removesuffix(".ipynb").removesuffix(".md")
    for ext in (".ipynb", ".md"):
        if (root / (docname + ext)).is_file():
            return root / (docname + ext)
    return None


def toc_docs(root: Path, *, quiet: bool = False) -> tuple[list[Doc], list[str]]:
    """The toc's documents that exist (root first, toc order) and the docnames that don't."""
    toc = _toc(root)
    names = [str(toc["root"]), *_toc_files(toc)]
    docs, missing = [], []
    for name in names:
        name = name.removesuffix(".ipynb").removesuffix(".md")
        src = _source(root, name)
        if src is None:
            missing.append(name)
            if not quiet:
                print(f"note: {name} is listed in _toc.yml but has no source file yet; skipped")
        else:
            docs.append(Doc(name, src))
    return docs, missing


def toc_chapter_stems(root: Path) -> list[str]:
    """Stems of all toc entries under chapters/, whether or not they exist yet."""
    toc = _toc(root)
    return [Path(f).name.removesuffix(".ipynb") for f in _toc_files(toc)
            if f.startswith(CHAPTERS_DIR + "/")]


def _filtered_toc(node: Any, exists: set[str]) -> Any:
    """The toc without entries whose source is missing (and without parts left empty)."""
    if isinstance(node, list):
        out = [_filtered_toc(c, exists) for c in node]
        return [c for c in out if c is not None]
    if isinstance(node, dict):
        if "file" in node and str(node["file"]).removesuffix(".ipynb").removesuffix(".md") not in exists:
            return None
        out = dict(node)
        for key in ("parts", "chapters", "sections"):
            if key in out:
                out[key] = _filtered_toc(out[key], exists)
                if not out[key]:
                    if key in ("chapters", "sections") and "file" not in node:
                        return None  # an empty part
                    del out[key]
        return out
    return node


def prepare_for_render(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Tag papermill's injected cell remove-cell and fold code (hide-input) unless tagged."""
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif cell.cell_type == "code" and not _VISIBILITY_TAGS & set(tags):
            tags.append("hide-input")
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write ``nb`` atomically, formatted as ``nbformat.write`` does (with a final newline)."""
    text = nbformat.writes(nb)
    atomic_write_bytes(path, (text if text.endswith("\n") else text + "\n").encode())


def results_run_ids(build: Path) -> dict[str, str | None]:
    """{chapter: the run id recorded in its published results file} (what a collector read)."""
    out = {}
    for p in sorted((build / "results").glob("*.json")):
        try:
            out[p.stem] = json.loads(p.read_text()).get("_run_id")
        except (OSError, ValueError):
            out[p.stem] = None
    return out


def publication_problems(root: Path, build: Path) -> list[str]:
    """Why the executed notebooks and results of ``build`` cannot be published as one site (one line each).

    A notebook is refused when its last run was interrupted (its private ``running/`` folder is
    left), failed, never ran, or when its executed notebook and its results come from different runs
    (an interruption while publishing, or a plain papermill run since); a collector (the summary) is
    refused when the results it read are not the published ones.
    """
    docs, _ = toc_docs(root, quiet=True)
    current = results_run_ids(build)
    problems = []
    for d in docs:
        if not d.is_notebook:
            continue
        number = d.stem.split("_")[0]
        run_cmd = (f"python -m pretraining run {number}   (or: make chapter CH={number})" if d.is_chapter
                   else f"python -m pretraining run {d.stem}")
        executed = build / "executed" / (d.docname + ".ipynb")
        if (build / "running" / d.stem).exists():
            problems.append(f"{d.docname}: its last run was interrupted before it finished; run: {run_cmd}")
        elif (build / "failed" / (d.stem + ".ipynb")).exists():
            problems.append(f"{d.docname} failed in its last run (kept at "
                            f"{build / 'failed' / (d.stem + '.ipynb')}); fix it and run: {run_cmd}")
        elif not executed.exists():
            problems.append(f"{d.docname} has not been executed; run: {run_cmd}")
        else:
            stamp = nbformat.read(executed, 4).metadata.get("pretraining", {})
            if d.is_chapter and d.stem not in current:
                problems.append(f"{d.docname} has no results file; run: {run_cmd}")
            elif d.is_chapter and stamp.get("run_id") != current[d.stem]:
                problems.append(f"{d.docname}: its executed notebook and its results come from different "
                                f"runs (interrupted while publishing, or results written by another run); "
                                f"run: {run_cmd}")
            elif not d.is_chapter and stamp.get("results") != current:
                problems.append(f"{d.docname} collected other results than the published ones; run: {run_cmd}")
    return problems


def assemble_site(root: Path, build: Path) -> Path:
    """<build>/site: config, filtered toc, Markdown pages and executed notebooks; checks them first."""
    problems = publication_problems(root, build)
    if problems:
        raise SiteError("cannot build the book:\n  " + "\n  ".join(problems))
    docs, _ = toc_docs(root, quiet=True)
    site = build / "site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    if (mathjax_dir(root) / "tex-chtml.js").is_file():  # serve MathJax from the site: offline reading works
        shutil.copytree(mathjax_dir(root), site / "_static" / "mathjax")
        config.setdefault("sphinx", {}).setdefault("config", {})["mathjax_path"] = "mathjax/tex-chtml.js"
    else:
        print(f"note: no local MathJax in {mathjax_dir(root)} (make venv fetches it); the pages load it from a CDN")
    (site / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    toc = _filtered_toc(_toc(root), {d.docname for d in docs})
    (site / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    for d in docs:
        target = site / (d.docname + d.source.suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if d.is_notebook:
            nb = prepare_for_render(nbformat.read(build / "executed" / (d.docname + ".ipynb"), 4))
            write_notebook(nb, target)
        else:
            shutil.copy2(d.source, target)
    for extra in ("_static", "images"):
        if (root / extra).is_dir():
            shutil.copytree(root / extra, site / extra, dirs_exist_ok=True)
    # the results files, for download from the summary page: _extra/ is html_extra_path (_config.yml),
    # copied as it is into the site's root
    if (build / "results").is_dir():
        shutil.copytree(build / "results", site / "_extra" / "results")
    else:
        (site / "_extra" / "results").mkdir(parents=True)
    for bib in root.glob("*.bib"):
        shutil.copy2(bib, site / bib.name)
    return site


def build_site(root: Path, build: Path) -> Path:
    """Render the book into ``<build>/html`` (a clean jupyter-book build, warnings are errors)."""
    site = assemble_site(root, build)
    out = build / "jb"
    shutil.rmtree(out, ignore_errors=True)  # a clean build: every warning is reported again
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(site), "--path-output", str(out), "-W", "-n", "--keep-going"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (build / "build.log").write_text(log)
    warnings_ = [ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln]
    if proc.returncode != 0 or warnings_:
        tail = "\n".join(warnings_[:30]) or "\n".join(log.splitlines()[-30:])
        raise SiteError(f"jupyter-book build failed (warnings are errors; full log: "
                       f"{build / 'build.log'}):\n{tail}")
    html, old = build / "html", build / ".html-old"
    shutil.rmtree(old, ignore_errors=True)
    if html.exists():
        os.replace(html, old)  # the new site replaces the old one only once it is complete
    os.replace(out / "_build" / "html", html)
    shutil.rmtree(old, ignore_errors=True)
    print(f"built {html / 'index.html'} in {time.perf_counter() - t0:.1f} s")
    return html
