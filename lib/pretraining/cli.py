"""``python -m pretraining run|build|clean-cache``: execute the chapters, render the book.

run    executes the toc's notebooks under chapters/ (toc order) with papermill into
       <build>/executed/, with parameters from params/<profile>.yaml and ``-p NAME VALUE``;
       then re-executes the other toc notebooks (e.g. summary.ipynb, which reads the results).
build  renders the executed notebooks and the Markdown pages with jupyter-book
       (warnings are errors) into <build>/html.
clean-cache  empties <build>/cache.

Toc entries whose source file does not exist yet are skipped with a note.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
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

from .params import PROFILES

# torch-free on purpose (book and store import torch lazily here), so that errors come fast
BUILD_DIR_ENV = "PRETRAINING_BUILD_DIR"
CHAPTERS_DIR = "chapters"
PROFILE_KEYS = ("common", "chapters")
# cells carrying one of these tags keep their own visibility; others get hide-input
_VISIBILITY_TAGS = {"hide-input", "hide-cell", "remove-input", "remove-cell", "show-input",
                    "hide-output", "remove-output"}


def find_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _toc.yml found in {here} or above; run from inside the book")


class CliError(Exception):
    """A user error found before running anything: printed as one message, exit status 2."""


class NotebookFailed(CliError):
    """A notebook raised while running: exit status 1."""


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


# -- the table of contents -------------------------------------------------------------------

def _toc(root: Path) -> dict:
    try:
        return yaml.safe_load((root / "_toc.yml").read_text())
    except FileNotFoundError:
        raise CliError(f"{root / '_toc.yml'} does not exist; --root must be the book folder") from None


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


# -- profiles and parameters -----------------------------------------------------------------

def available_profiles(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "params").glob("*.yaml"))


def load_profile(root: Path, profile: str) -> dict[str, Any]:
    """Read and check params/<profile>.yaml: {"common": {...}, "chapters": {stem: {...}}}."""
    profiles = available_profiles(root)
    if profile not in profiles:
        raise CliError(f"unknown profile {profile!r}; the profiles are: {', '.join(profiles) or 'none'} "
                       f"(files params/<profile>.yaml)")
    path = root / "params" / f"{profile}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise CliError(f"{path}: expected a mapping with the keys {', '.join(PROFILE_KEYS)}")
    unknown = set(data) - set(PROFILE_KEYS)
    if unknown:
        raise CliError(f"{path}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
                       f"allowed: {', '.join(PROFILE_KEYS)}")
    common = data.get("common") or {}
    chapters = data.get("chapters") or {}
    if not isinstance(common, dict) or not isinstance(chapters, dict):
        raise CliError(f"{path}: 'common' and 'chapters' must be mappings")
    known = toc_chapter_stems(root)
    for stem, section in chapters.items():
        if stem not in known:
            raise CliError(f"{path}: chapter section {stem!r} is not a chapter of _toc.yml; "
                           f"the chapters are: {', '.join(known)}")
        if section is not None and not isinstance(section, dict):
            raise CliError(f"{path}: chapters.{stem} must be a mapping of parameter: value")
    if "profile" in common or any("profile" in (s or {}) for s in chapters.values()):
        raise CliError(f"{path}: 'profile' is set by the profile's file name, not inside it")
    return {"common": common, "chapters": {k: (v or {}) for k, v in chapters.items()}}


def _has_parameters(nb_path: Path) -> bool:
    nb = nbformat.read(nb_path, as_version=4)
    return any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def declared_parameters(nb_path: Path) -> dict[str, dict]:
    """The parameters declared in a notebook's ``parameters`` cell, as papermill reads them.

    Checks the convention ``name: type = value  # help``, one line each: every assignment
    must be readable by papermill (no ``=`` in the help text) and have a help text.
    """
    import papermill

    nb = nbformat.read(nb_path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise CliError(f"{nb_path.name} has no cell tagged 'parameters'")
    logging.getLogger("papermill").setLevel(logging.ERROR)  # we report unreadable lines below
    params = papermill.inspect_notebook(str(nb_path))
    assigned: list[str] = []
    for node in ast.parse(cells[0].source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        assigned += [t.id for t in targets if isinstance(t, ast.Name)]
    for name in assigned:
        if name not in params:
            raise CliError(f"{nb_path.name}: papermill cannot read the parameter {name!r}; write it on "
                           f"one line as `name: type = value  # help` with no '=' in the help text")
        if not params[name]["help"]:
            raise CliError(f"{nb_path.name}: parameter {name!r} has no help text; write "
                           f"`{name}: {params[name]['inferred_type_name']} = "
                           f"{params[name]['default']}  # what it means`")
    return params


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def chapter_parameters(doc: Doc, declared: dict[str, dict], profile: str, prof: dict,
                       overrides: list[tuple[str, Any]], profile_file: str) -> dict[str, Any]:
    """profile + common values it declares + its profile section + the -p overrides."""
    names = ", ".join(declared)
    if "profile" not in declared:
        raise CliError(f"{doc.stem}: its parameters cell must declare `profile: str = \"quick\"  # ...`")
    params: dict[str, Any] = {"profile": profile}
    params.update({k: v for k, v in prof["common"].items() if k in declared})
    for k, v in prof["chapters"].get(doc.stem, {}).items():
        if k not in declared:
            raise CliError(f"{profile_file}: chapters.{doc.stem}.{k}: {doc.stem} has no parameter "
                           f"{k!r}; its parameters are: {names}")
        params[k] = v
    for k, v in overrides:
        if k not in declared:
            raise CliError(f"-p {k}: {doc.stem} has no parameter {k!r}; its parameters are: {names}")
        params[k] = v
    return params


# -- running ---------------------------------------------------------------------------------

def _kernel_name(nb_path: Path) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    name = nbformat.read(nb_path, as_version=4).metadata.get("kernelspec", {}).get("name", "python3")
    if name not in KernelSpecManager().find_kernel_specs():
        print(f"note: kernel {name!r} of {nb_path.name} is not installed (make venv installs "
              f"'pretraining'); using 'python3'")
        return "python3"
    return name


def prepare_for_render(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Tag papermill's injected cell remove-cell and fold code (hide-input) unless tagged."""
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif cell.cell_type == "code" and not _VISIBILITY_TAGS & set(tags):
            tags.append("hide-input")
    return nb


def _write_nb(nb: nbformat.NotebookNode, path: Path) -> None:
    from .store import atomic_write_bytes

    atomic_write_bytes(path, nbformat.writes(nb).encode())


def _shorten(source: str, lines: int = 4, width: int = 100) -> str:
    src = source.strip().splitlines()
    out = [ln if len(ln) <= width else ln[: width - 3] + "..." for ln in src[:lines]]
    if len(src) > lines:
        out.append(f"... ({len(src) - lines} more lines)")
    return "\n".join("    " + ln for ln in out)


def _execute(doc: Doc, params: dict[str, Any], build: Path, log_output: bool) -> str:
    """Run one notebook; on success it lies in executed/, on failure in failed/ (raises CliError)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    executed = build / "executed" / (doc.docname + ".ipynb")
    failed = build / "failed" / (doc.stem + ".ipynb")
    running = build / "running" / (doc.stem + ".ipynb")
    results = build / "results" / (doc.stem + ".json")
    for p in (running, failed):
        p.unlink(missing_ok=True)
    if doc.is_chapter:
        results.unlink(missing_ok=True)
    running.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(doc.source), str(running), parameters=params, kernel_name=_kernel_name(doc.source),
            progress_bar=False, log_output=log_output, cwd=str(doc.source.parent))
    except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
        elapsed = time.perf_counter() - t0
        failed.parent.mkdir(parents=True, exist_ok=True)
        if running.exists():
            os.replace(running, failed)
        lines = [f"FAILED {doc.docname}{doc.source.suffix} (profile {params.get('profile', '-')}) "
                 f"after {elapsed:.1f} s"]
        if isinstance(exc, PapermillExecutionError):
            lines += [f"  in the cell In [{exc.exec_count}]:", _shorten(exc.source),
                      f"  {exc.ename}: {exc.evalue}"]
        else:
            text = str(exc).strip()
            lines.append(f"  {type(exc).__name__}: {text.splitlines()[-1] if text else ''}")
        if failed.exists():
            lines.append(f"  the executed notebook is kept at {failed}")
        raise NotebookFailed("\n".join(lines)) from None
    elapsed = time.perf_counter() - t0
    nb = prepare_for_render(nbformat.read(running, as_version=4))
    _write_nb(nb, executed)
    running.unlink()
    status = "done (collects the results)"
    if doc.is_chapter:
        if not results.exists():
            raise CliError(f"{doc.stem} ran but wrote no {results}; it must call "
                           f"book.start({doc.stem!r}, ...) and ch.finish(...)")
        cache = json.loads(results.read_text())["_cache"]
        hits, misses = cache["hits"], cache["misses"]
        status = "cached" if hits and not misses else "computed"
        status += f" (cache: {hits} hit{'s' * (hits != 1)}, {misses} miss{'es' * (misses != 1)})"
    print(f"{doc.stem:<40} {params.get('profile', '-'):<6} {elapsed:8.1f} s  {status}", flush=True)
    return status


def _select(chapters: list[Doc], wanted: list[str], missing_stems: list[str]) -> list[Doc]:
    if not wanted:
        return chapters
    out = []
    for w in wanted:
        w2 = Path(w).name.removesuffix(".ipynb")
        match = [d for d in chapters if d.stem == w2 or d.stem.split("_")[0] == w2]
        if not match:
            if any(s == w2 or s.split("_")[0] == w2 for s in missing_stems):
                raise CliError(f"chapter {w!r} is in _toc.yml but its notebook does not exist yet")
            raise CliError(f"no chapter {w!r}; the chapters are: "
                           f"{', '.join(d.stem for d in chapters) or 'none yet'}")
        out += [d for d in match if d not in out]
    return [d for d in chapters if d in out]  # toc order


def cmd_run(root: Path, build: Path, profile: str, wanted: list[str],
            raw_overrides: list[list[str]], log_output: bool) -> None:
    docs, missing = toc_docs(root)
    prof = load_profile(root, profile)
    overrides = [(k, _parse_value(v)) for k, v in raw_overrides]
    if any(k == "profile" for k, _ in overrides):
        raise CliError("-p profile: use --profile smoke|quick|paper")
    chapters = [d for d in docs if d.is_chapter]
    collectors = [d for d in docs if d.is_notebook and not d.is_chapter]
    selected = _select(chapters, wanted, [Path(m).name for m in missing if m.startswith(CHAPTERS_DIR)])
    plans = []
    for doc in selected:  # every check before the first kernel starts
        declared = declared_parameters(doc.source)
        plans.append((doc, chapter_parameters(doc, declared, profile, prof, overrides,
                                              f"params/{profile}.yaml")))
    for doc in collectors:  # a collector needs no parameters cell
        declared = declared_parameters(doc.source) if _has_parameters(doc.source) else {}
        plans.append((doc, {"profile": profile} if "profile" in declared else {}))
    os.environ[BUILD_DIR_ENV] = str(build)
    # the kernels' OpenMP threads wait passively: spinning threads steal the CPU of a busy
    # machine (measured: smoke chapter 3 took 116 s instead of 15 s under load)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if log_output:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for doc, params in plans:
            print(f"running {doc.docname} ...", flush=True)
            _execute(doc, params, build, log_output)
    finally:
        if (build / "running").is_dir() and not any((build / "running").iterdir()):
            (build / "running").rmdir()


# -- building --------------------------------------------------------------------------------

def assemble_site(root: Path, build: Path) -> Path:
    """<build>/site: config, filtered toc, Markdown pages and executed notebooks; checks them."""
    docs, _ = toc_docs(root)
    problems = []
    for d in docs:
        if not d.is_notebook:
            continue
        run_cmd = (f"python -m pretraining run {d.stem.split('_')[0]}   (or: make chapter CH="
                   f"{d.stem.split('_')[0]})" if d.is_chapter else "python -m pretraining run")
        if (build / "failed" / (d.stem + ".ipynb")).exists():
            problems.append(f"{d.docname} failed in its last run (kept at "
                            f"{build / 'failed' / (d.stem + '.ipynb')}); fix it and run: {run_cmd}")
        elif not (build / "executed" / (d.docname + ".ipynb")).exists():
            problems.append(f"{d.docname} has not been executed; run: {run_cmd}")
    if problems:
        raise CliError("cannot build the book:\n  " + "\n  ".join(problems))
    site = build / "site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    shutil.copy2(root / "_config.yml", site / "_config.yml")
    toc = _filtered_toc(_toc(root), {d.docname for d in docs})
    (site / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    for d in docs:
        target = site / (d.docname + d.source.suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if d.is_notebook:
            nb = prepare_for_render(nbformat.read(build / "executed" / (d.docname + ".ipynb"), 4))
            _write_nb(nb, target)
        else:
            shutil.copy2(d.source, target)
    for extra in ("_static", "images"):
        if (root / extra).is_dir():
            shutil.copytree(root / extra, site / extra)
    for bib in root.glob("*.bib"):
        shutil.copy2(bib, site / bib.name)
    return site


def cmd_build(root: Path, build: Path) -> Path:
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
        raise CliError(f"jupyter-book build failed (warnings are errors; full log: "
                       f"{build / 'build.log'}):\n{tail}")
    html = build / "html"
    shutil.rmtree(html, ignore_errors=True)
    os.replace(out / "_build" / "html", html)
    print(f"built {html / 'index.html'} in {time.perf_counter() - t0:.1f} s")
    return html


# -- entry point -----------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretraining", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--root", type=Path, help="the book folder (default: the nearest folder "
                                                   "with _toc.yml at or above the current one)")
        sp.add_argument("--build-dir", type=Path, help="build folder (default: <root>/_build)")

    r = sub.add_parser("run", help="execute chapters with papermill")
    r.add_argument("chapters", nargs="*", metavar="CHAPTER",
                   help="chapter number prefix ('03') or stem; default: all")
    r.add_argument("--profile", default="quick", help=f"parameter profile ({', '.join(PROFILES)})")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter; VALUE is YAML, e.g. -p depths '[1, 2, 3]'")
    r.add_argument("--log-output", action="store_true", help="stream the notebooks' outputs")
    common(r)
    b = sub.add_parser("build", help="render the executed notebooks into <build-dir>/html")
    common(b)
    c = sub.add_parser("clean-cache", help="empty the artifact cache <build-dir>/cache")
    common(c)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        root = (args.root or find_root()).resolve()
        build = (args.build_dir or root / "_build").resolve()
        if args.command == "run":
            cmd_run(root, build, args.profile, args.chapters, args.param, args.log_output)
        elif args.command == "build":
            cmd_build(root, build)
        else:
            from .store import ArtifactStore

            n, size = ArtifactStore(build / "cache").clear()
            print(f"removed {n} cache entries ({size / 1e6:.1f} MB) from {build / 'cache'}")
    except (CliError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, NotebookFailed) else 2
    return 0
