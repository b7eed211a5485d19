"""``python -m pretraining run|build|cache|sync-params``: run the chapters, render the book, keep the cache.

run          executes the toc's chapter notebooks (toc order) with papermill into <build>/executed/,
             with the values of params/<profile>.yaml and ``-p NAME VALUE``; then re-executes the
             other toc notebooks (summary.ipynb, which reads the results). Every chapter's values
             are checked against its spec first, before any kernel starts. ``--check`` only checks.
build        renders the executed notebooks and the Markdown pages with jupyter-book
             (warnings are errors) into <build>/html.
cache        ls | why NAME | gc | clear: the artifact cache <build>/cache.
sync-params  rewrites each chapter notebook's parameters cell from its module's spec.

A chapter notebook ``chapters/NN_name.ipynb`` is told by the module ``<package>.chNN_name``, where
the package is ``pretraining.chapters`` (or ``$PRETRAINING_CHAPTERS``); the module's ``SPEC`` is the
chapter's parameters (:class:`pretraining.book.specs.ChapterSpec`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import nbformat

from ..core.device import busy_cpus, openmp_wait_policy
from ..core.files import FetchError
from .executor import ExecutorError, open_executor, resolve_executor
from .lock import BuildLocked, build_lock
from .paths import BUILD_DIR_ENV, BUILD_FOLDERS, RUN_DIR_ENV, RUN_ID_ENV, find_root
from .profiles import ProfileError, chapter_values, load_profile, parse_value
from .site import CHAPTERS_DIR, MATHJAX_SPEC, Doc, SiteError, fetch_mathjax, build_site, prepare_for_render, results_run_ids, \
    toc_chapter_stems, toc_docs, write_notebook
from .specs import PROFILES, ChapterSpec, SpecNotFound, load_spec

class CliError(Exception):
    """A user error found before running anything: printed as one message, exit status 2."""


class NotebookFailed(CliError):
    """A notebook raised while running: exit status 1."""


# -- chapters and their specs ----------------------------------------------------------------

def _parameters_cell(path: Path) -> nbformat.NotebookNode | None:
    nb = nbformat.read(path, as_version=4)
    return next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)


def cell_problem(doc: Doc, spec: ChapterSpec) -> str | None:
    """Why the notebook's parameters cell is not the spec's, or None."""
    cell = _parameters_cell(doc.source)
    if cell is None:
        return f"{doc.docname}.ipynb has no cell tagged 'parameters'"
    if cell.source.strip() != spec.parameters_cell():
        return (f"{doc.docname}.ipynb: its parameters cell differs from the spec of its module "
                "(the defaults live in the module); run: python -m pretraining sync-params")
    return None


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


def plan_chapters(root: Path, profile: str, wanted: list[str], raw_overrides: list[list[str]]
                  ) -> tuple[list[tuple[Doc, dict[str, Any]]], list[str], list[str]]:
    """Resolve and check the values of every selected chapter; no kernel is started.

    Returns ([(doc, values to inject)], notes, problems): one line per note (a ``-p`` value that a
    chapter does not declare, skipped there) and per problem (a bad value, a broken rule, an
    out-of-date parameters cell).
    """
    docs, missing = toc_docs(root, quiet=True)
    try:
        prof = load_profile(root, profile, toc_chapter_stems(root))
    except ProfileError as exc:
        raise CliError(str(exc)) from None
    try:
        overrides = [(k, parse_value(k, v)) for k, v in raw_overrides]
    except ProfileError as exc:
        raise CliError(str(exc)) from None
    if any(k == "profile" for k, _ in overrides):
        raise CliError("-p profile: use --profile smoke|quick|paper")
    chapters = [d for d in docs if d.is_chapter]
    collectors = {d.stem for d in docs if d.is_notebook and not d.is_chapter}
    only_collectors = bool(wanted) and all(Path(w).name.removesuffix(".ipynb") in collectors for w in wanted)
    selected = [] if only_collectors else _select(
        chapters, [w for w in wanted if Path(w).name.removesuffix(".ipynb") not in collectors],
        [Path(m).name for m in missing if m.startswith(CHAPTERS_DIR)])
    specs = {d.stem: load_spec(d.stem) for d in selected}
    notes, problems, plans = [], [], []
    for k, _ in overrides:
        having = [s for s in specs if k in specs[s].all_params]
        if not having:
            only = selected[0].stem if len(selected) == 1 else None
            names = ", ".join(specs[only].all_params) if only else ""
            raise CliError(f"-p {k}: {only} has no parameter {k!r}; its parameters are: {names}" if only else
                           f"-p {k}: none of the chapters {', '.join(specs)} has a parameter {k!r}")
        notes += [f"note: -p {k}: {s} has no parameter {k!r}; not applied there"
                  for s in specs if s not in having]
    for doc in selected:
        spec = specs[doc.stem]
        mine = [(k, v) for k, v in overrides if k in spec.all_params]
        try:
            values, changed = chapter_values(spec, profile, prof, mine, f"params/{profile}.yaml")
        except ProfileError as exc:
            raise CliError(str(exc)) from None
        problems += [f"{doc.stem}: {p}" for p in spec.problems(values)]
        cell = cell_problem(doc, spec)
        if cell:
            problems.append(cell)
        plans.append((doc, changed))
    return plans, notes, problems


# -- running ---------------------------------------------------------------------------------

def _kernel_name(nb_path: Path) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    name = nbformat.read(nb_path, as_version=4).metadata.get("kernelspec", {}).get("name", "python3")
    if name not in KernelSpecManager().find_kernel_specs():
        print(f"note: kernel {name!r} of {nb_path.name} is not installed (make venv installs "
              f"'pretraining'); using 'python3'")
        return "python3"
    return name


def _ipc_kernel_manager(log: Path):
    """A kernel manager whose kernel talks over Unix sockets in a private temporary folder, and whose
    own process output (stderr: its log, e.g. "KeyboardInterrupt caught in kernel" when it is
    interrupted at shutdown, or a crash) goes to the file ``log``, not to the terminal.

    Not TCP on localhost: nothing else on the machine can connect, and the kernel has no reason to
    print its "running over TCP without encryption" warning into the run's output.
    """
    import tempfile

    from jupyter_client import AsyncKernelManager
    from traitlets import default

    folder = tempfile.mkdtemp(prefix="pretraining-kernel-")  # short: socket paths are limited to ~100 bytes

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self):
            return "ipc"

        @default("ip")
        def _ip_default(self):
            return os.path.join(folder, "kernel")

        async def start_kernel(self, **kw):
            with open(log, "ab") as stream:  # the kernel process keeps its own copy of the descriptor
                return await super().start_kernel(**{"stderr": stream, **kw})

    return IPCKernelManager


def _minutes(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _with_progress(stem: str, run_dir: Path, work) -> None:
    """Run ``work()`` (the notebook) while showing the chapter's progress (``progress.json``) on stderr.

    On a terminal one line is rewritten in place; otherwise a line is printed whenever the stage
    changes. The estimate of what is left comes from how many artifacts the chapter's last run
    looked up.
    """
    result: dict[str, BaseException] = {}

    def target():
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    tty, last, t0 = sys.stderr.isatty(), None, time.perf_counter()
    while thread.is_alive():
        thread.join(timeout=0.5)
        try:
            rec = json.loads((run_dir / "progress.json").read_text())
        except (OSError, ValueError):
            continue
        done, expected = rec.get("done", 0), rec.get("expected")
        elapsed = time.perf_counter() - t0
        # "of" the last run's count only while it holds (a run with new settings may need more)
        count = f"{done} of {expected} artifacts" if expected and done <= expected else f"{done} artifact{'s' * (done != 1)}"
        left = ""
        if expected and 0 < done < expected:
            left = f", about {_minutes(elapsed / done * (expected - done))} left"
        line = f"  {stem}: {rec.get('stage', '')} ({count}), {_minutes(elapsed)} elapsed{left}"
        if tty:
            print("\r" + line[:150].ljust(150), end="", file=sys.stderr, flush=True)
        elif rec.get("stage") != last:
            print(line, file=sys.stderr, flush=True)
        last = rec.get("stage")
    if tty and last is not None:
        print("\r" + " " * 150 + "\r", end="", file=sys.stderr, flush=True)
    if "error" in result:
        raise result["error"]


def _shorten(source: str, lines: int = 4, width: int = 100) -> str:
    src = source.strip().splitlines()
    out = [ln if len(ln) <= width else ln[: width - 3] + "..." for ln in src[:lines]]
    if len(src) > lines:
        out.append(f"... ({len(src) - lines} more lines)")
    return "\n".join("    " + ln for ln in out)


def _execute(doc: Doc, params: dict[str, Any], build: Path, log_output: bool) -> str:
    """Run one notebook in its private folder ``running/<stem>/``; publish it only if it succeeds.

    On success the executed notebook (stamped with the run's id) goes to ``executed/`` and, for a
    chapter, its results file to ``results/``: the notebook first, then the results, so an
    interruption in between leaves ids that disagree, which ``build`` refuses. On failure the
    notebook is kept in ``failed/`` and the last published notebook and results stay as they were.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    executed = build / "executed" / (doc.docname + ".ipynb")
    failed = build / "failed" / (doc.stem + ".ipynb")
    run_dir = build / "running" / doc.stem
    shutil.rmtree(run_dir, ignore_errors=True)  # left by an interrupted run
    run_dir.mkdir(parents=True)
    running = run_dir / "notebook.ipynb"
    run_id = uuid.uuid4().hex
    env = {RUN_DIR_ENV: str(run_dir), RUN_ID_ENV: run_id}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    t0 = time.perf_counter()
    try:
        _with_progress(doc.stem, run_dir, lambda: papermill.execute_notebook(
            str(doc.source), str(running), parameters=params, kernel_name=_kernel_name(doc.source),
            progress_bar=False, log_output=log_output, cwd=str(doc.source.parent),
            kernel_manager_class=_ipc_kernel_manager(run_dir / "kernel.log")))
    except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
        elapsed = time.perf_counter() - t0
        failed.parent.mkdir(parents=True, exist_ok=True)
        if running.exists():
            os.replace(running, failed)
        kernel_log = failed.with_suffix(".kernel.log")
        if (run_dir / "kernel.log").exists():
            os.replace(run_dir / "kernel.log", kernel_log)
        shutil.rmtree(run_dir, ignore_errors=True)
        lines = [f"FAILED {doc.docname}{doc.source.suffix} (profile {params.get('profile', '-')}) "
                 f"after {elapsed:.1f} s"]
        if isinstance(exc, PapermillExecutionError):
            lines += [f"  in the cell In [{exc.exec_count}]:", _shorten(exc.source),
                      f"  {exc.ename}: {exc.evalue}"]
        else:
            text = str(exc).strip()
            lines.append(f"  {type(exc).__name__}: {text.splitlines()[-1] if text else ''}")
        if failed.exists():
            lines.append(f"  the executed notebook is kept at {failed}; the last good results are unchanged")
        if kernel_log.exists() and kernel_log.stat().st_size:
            lines.append(f"  the kernel's own log: {kernel_log}")
        raise NotebookFailed("\n".join(lines)) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    elapsed = time.perf_counter() - t0
    status = "done (collects the results)"
    stamp: dict[str, Any] = {"run_id": run_id, "profile": params.get("profile")}
    new_results = run_dir / f"{doc.stem}.json"
    if doc.is_chapter:
        if not new_results.exists():
            raise CliError(f"{doc.stem} ran but wrote no results; it must call its module's "
                           f"start(globals()) and finish(ch, ...)")
        record = json.loads(new_results.read_text())
        cache = record["_cache"]
        hits, misses = cache["hits"], cache["misses"]
        status = "cached" if hits and not misses else "computed"
        status += f" (cache: {hits} hit{'s' * (hits != 1)}, {misses} miss{'es' * (misses != 1)})"
    else:
        stamp["results"] = results_run_ids(build)
    nb = prepare_for_render(nbformat.read(running, as_version=4))
    nb.metadata["pretraining"] = stamp
    write_notebook(nb, executed)
    if doc.is_chapter:
        (build / "results").mkdir(parents=True, exist_ok=True)
        os.replace(new_results, build / "results" / f"{doc.stem}.json")
    failed.unlink(missing_ok=True)
    failed.with_suffix(".kernel.log").unlink(missing_ok=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"{doc.stem:<40} {params.get('profile', '-'):<6} {elapsed:8.1f} s  {status}", flush=True)
    return status


def checked_plans(root: Path, profile: str, wanted: list[str], raw_overrides: list[list[str]],
                  ) -> list[tuple[Doc, dict[str, Any]]]:
    """The chapters to run with their values, every value checked; reads files only, writes nothing."""
    toc_docs(root)  # prints a note per toc entry without a source file
    plans, notes, problems = plan_chapters(root, profile, wanted, raw_overrides)
    for note in notes:
        print(note)
    if len(problems) == 1:
        raise CliError(problems[0])
    if problems:
        raise CliError(f"profile {profile}: {len(problems)} problems:\n  " + "\n  ".join(problems))
    return plans


def check_executors(plans: list[tuple[Doc, dict[str, Any]]]) -> None:
    """Every chapter's executor resolved (``$PRETRAINING_EXECUTOR`` for ``auto``) and every Dask scheduler
    named reached, before any chapter runs: one line when one does not answer."""
    names = set()
    for _, params in plans:
        try:
            names.add(resolve_executor(params.get("executor", "auto")))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    for name in sorted(n for n in names if n.startswith("dask://")):
        try:
            open_executor(name).close()
        except ExecutorError as exc:
            raise CliError(str(exc)) from None


def cmd_run(root: Path, build: Path, profile: str, plans: list[tuple[Doc, dict[str, Any]]],
            log_output: bool) -> None:
    """Execute the checked chapters, then the collecting pages (the summary), in toc order."""
    docs, _ = toc_docs(root, quiet=True)
    for doc in (d for d in docs if d.is_notebook and not d.is_chapter):  # collectors, e.g. the summary
        cell = _parameters_cell(doc.source)
        plans.append((doc, {"profile": profile} if cell is not None and "profile" in cell.source else {}))
    os.environ[BUILD_DIR_ENV] = str(build)
    chosen = "OMP_WAIT_POLICY" in os.environ  # the user's choice is kept
    if log_output:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for doc, params in plans:
            waits = _set_wait_policy() if not chosen else f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} (yours)"
            print(f"running {doc.docname} ... (CPU threads: {waits})", flush=True)
            _execute(doc, params, build, log_output)
    finally:
        if (build / "running").is_dir() and not any((build / "running").iterdir()):
            (build / "running").rmdir()


def cmd_estimate(root: Path, profile: str, wanted: list[str], raw_overrides: list[list[str]], jobs: bool,
                 json_path: Path | None) -> None:
    """Check the values (one line per problem, before any work), rehearse, print the table."""
    from .estimate import estimate, report, write_json  # imports torch: only for this command

    plans = checked_plans(root, profile, wanted, raw_overrides)
    t0 = time.perf_counter()
    estimates, notes = estimate([(doc.stem, changed) for doc, changed in plans],
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    for note in notes:
        print(note)
    print(report(profile, estimates, jobs=jobs))
    print(f"(the rehearsals took {time.perf_counter() - t0:.0f} s)")
    if json_path is not None:
        write_json(json_path, profile, estimates)
        print(f"wrote {json_path}")


def _set_wait_policy() -> str:
    """Choose the next kernel's OpenMP wait policy from the machine's load now
    (:func:`pretraining.core.device.openmp_wait_policy`); say which."""
    busy = busy_cpus()
    policy = openmp_wait_policy(busy)
    if policy is None:
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = policy
    load = "load unknown" if busy is None else f"{busy:.1f} CPUs busy"
    return f"{'spin, then sleep' if policy is None else 'sleep when idle'} ({load})"


def check_build_folders(build: Path) -> None:
    """Refuse, in one line, a build folder whose parts are files instead of folders."""
    if build.exists() and not build.is_dir():
        raise CliError(f"the build folder {build} is a file; move it away or give --build-dir another folder")
    for name in BUILD_FOLDERS:
        if (build / name).exists() and not (build / name).is_dir():
            raise CliError(f"{build / name} is a file, but the book needs a folder there; move it away")


def cmd_sync_params(root: Path, wanted: list[str]) -> None:
    docs, missing = toc_docs(root, quiet=True)
    chapters = _select([d for d in docs if d.is_chapter], wanted, [Path(m).name for m in missing])
    for doc in chapters:
        spec = load_spec(doc.stem)
        nb = nbformat.read(doc.source, as_version=4)
        cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
        if cell is None:
            raise CliError(f"{doc.docname}.ipynb has no cell tagged 'parameters'")
        if cell.source.strip() == spec.parameters_cell():
            print(f"{doc.stem}: up to date")
            continue
        cell.source = spec.parameters_cell()
        write_notebook(nb, doc.source)
        print(f"{doc.stem}: parameters cell rewritten from its spec")


def cmd_cache(build: Path, action: str, name: str | None) -> None:
    from .cache import ArtifactStore

    store = ArtifactStore(build / "cache")
    if action == "ls":
        used = store.used_by()
        entries = store.entries()
        for e in entries:
            users = ", ".join(used.get(e.path.name, [])) or "no finished run (gc removes it)"
            state = "" if e.key is not None else "  [unreadable manifest]"
            print(f"{e.path.name:<52} {e.size / 1e6:9.2f} MB  {users}{state}")
        print(f"{len(entries)} entries, {sum(e.size for e in entries) / 1e6:.1f} MB in {store.root}")
    elif action == "why":
        if not name:
            raise CliError("cache why needs the artifact's NAME, e.g.: python -m pretraining cache why rbm_stack")
        print("\n".join(store.why(name)))
    elif action == "gc":
        n, size = store.gc()
        print(f"removed {n} entries no finished run uses ({size / 1e6:.1f} MB) from {store.root}")
    else:
        n, size = store.clear()
        print(f"removed {n} cache entries ({size / 1e6:.1f} MB) from {store.root}")


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
                   help="chapter number prefix ('03') or stem, or 'summary' for the collecting pages only; "
                        "default: all (the collecting pages always run last)")
    r.add_argument("--profile", default="quick", help=f"parameter profile ({', '.join(PROFILES)})")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter; VALUE is YAML, e.g. -p depths '[1, 2, 3]'")
    r.add_argument("--check", action="store_true",
                   help="only check every chapter's values (types, ranges, rules); start no kernel")
    r.add_argument("--log-output", action="store_true", help="stream the notebooks' outputs")
    common(r)
    b = sub.add_parser("build", help="render the executed notebooks into <build-dir>/html")
    common(b)
    c = sub.add_parser("cache", help="the artifact cache: ls, why NAME, gc, clear")
    c.add_argument("action", choices=("ls", "why", "gc", "clear"))
    c.add_argument("name", nargs="?", help="with why: the artifact's name (e.g. rbm_stack)")
    common(c)
    m = sub.add_parser("fetch-mathjax", help="put a local copy of MathJax into <root>/.cache (offline pages)")
    common(m)
    e = sub.add_parser("estimate", help="predict a profile's wall time from a short rehearsal of every chapter")
    e.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter number or stem; default: all")
    e.add_argument("--profile", default="quick", help=f"parameter profile ({', '.join(PROFILES)})")
    e.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter, as for run")
    e.add_argument("--jobs", action="store_true", help="list every job of every chapter")
    e.add_argument("--json", type=Path, help="also write the estimate to this JSON file")
    common(e)
    s = sub.add_parser("sync-params", help="rewrite the chapters' parameters cells from their specs")
    s.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter number or stem; default: all")
    common(s)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        root = (args.root or find_root()).resolve()
        build = (args.build_dir or root / "_build").resolve()
        command = " ".join(["python -m pretraining", *(argv if argv is not None else sys.argv[1:])])
        if args.command == "run":
            plans = checked_plans(root, args.profile, args.chapters, args.param)
            if args.check:
                print(f"profile {args.profile}: the parameters of {len(plans)} chapter(s) are valid "
                      f"({', '.join(d.stem for d, _ in plans)})")
                return 0
            check_executors(plans)
            check_build_folders(build)
            with build_lock(build, command):
                cmd_run(root, build, args.profile, plans, args.log_output)
        elif args.command == "build":
            check_build_folders(build)
            with build_lock(build, command):
                build_site(root, build)
        elif args.command == "cache" and args.action in ("gc", "clear"):
            check_build_folders(build)
            with build_lock(build, command):
                cmd_cache(build, args.action, args.name)
        elif args.command == "cache":
            cmd_cache(build, args.action, args.name)
        elif args.command == "estimate":
            cmd_estimate(root, args.profile, args.chapters, args.param, args.jobs, args.json)
        elif args.command == "fetch-mathjax":
            print(f"MathJax ({MATHJAX_SPEC}) in {fetch_mathjax(root)}")
        else:
            cmd_sync_params(root, args.chapters)
    except (CliError, SiteError, SpecNotFound, BuildLocked, FetchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, NotebookFailed) else 2
    except OSError as exc:  # a file system problem: one line naming the path
        if not exc.filename:  # e.g. no _toc.yml found: the message says it all
            print(f"error: {exc}", file=sys.stderr)
        else:
            print(f"error: {exc.strerror}: {exc.filename}; check that this path is a folder you can "
                  "write, or remove it", file=sys.stderr)
        return 2
    return 0
