"""The chapter runtime: what a running chapter notebook and its chapter module use.

A chapter notebook holds the story; its module in :mod:`pretraining.chapters` does the work::

    from pretraining.chapters import ch03_depth_study as chapter
    ch = chapter.start(globals())    # every parameter checked (one ParameterError line if bad)
    res = chapter.run(ch)            # all heavy work, through ch.cached (the artifact cache)
    chapter.depth_figure(ch, res)    # one call per section: its figures, tables, glued values
    chapter.finish(ch, res)          # claim parts -> verdict -> <build>/results/<chapter>.json

The build folder is ``$PRETRAINING_BUILD_DIR`` (set by ``python -m pretraining run``) or
``<repo root>/_build``, the repo root being the nearest folder upward with a ``_toc.yml``;
so a plain ``papermill chapters/x.ipynb out.ipynb`` works too.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import html
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..core.device import get_device, resolve_precision, use_precision
from ..core.files import atomic_write_bytes
from .cache import ArtifactStore, canonical_json, compute_tracked, to_plain
from .claims import ALPHA, HOLDS, NOT_TESTED, Part, decide, parts_markdown, verdict
from .executor import open_executor, resolve_executor
from .paths import RUN_DIR_ENV, RUN_ID_ENV, build_dir, find_root, results_dir
from .specs import ChapterSpec, ParameterError, user_names
from .work import Work

__all__ = ["Chapter", "Record", "Work", "start", "show", "key_result", "library_source_hash", "worker_chapter"]

_VERSIONS = ("torch", "numpy", "scipy", "scikit-learn", "openTSNE", "papermill", "myst-nb", "jupyter-book")


class Record(dict):
    """A chapter's results record: a dict that a notebook cell returning it does not print."""

    def _ipython_display_(self) -> None:
        pass


class Chapter:
    """The state of one running chapter: parameters, device, data, cache, executor, glued values, timing.

    ``worker``: a copy of a chapter rebuilt on a Dask worker (:func:`worker_chapter`) to compute some of
    its artifacts: it computes in its own process, on its own device, and reports no progress.
    """

    def __init__(self, spec: ChapterSpec, params: dict[str, Any], build: Path, *, worker: bool = False):
        self.spec = spec
        self.name = spec.name
        self.params = params
        self.profile: str = params["profile"]
        self.device: torch.device = get_device(params["device"])
        self.precision: str = use_precision(params["precision"], self.device)  # "fp32" or "tf32"
        self.build_dir = build
        self.store = ArtifactStore(build / "cache")
        self.worker = worker
        self.executor = None if worker else open_executor(resolve_executor(params["executor"]))
        self.glued: dict[str, Any] = {}
        self.figures: list[str] = []
        self._data = None
        self._t0 = time.perf_counter()
        self._expected = _previous_lookups(self.store, self.name, self.profile)

    def __reduce__(self):
        # what a Dask worker receives with a computation that refers to the chapter: its spec,
        # parameters, build folder and CPU threads (not its data, cache state or figures)
        return worker_chapter, (self.spec, self.params, str(self.build_dir), torch.get_num_threads())

    @property
    def data(self):
        """The data split named by the ``dataset`` parameter, on :attr:`device` (loaded once)."""
        if self._data is None:
            from ..core.data import load_dataset  # imported here: loading costs time

            self._data = load_dataset(self.params["dataset"], device=self.device)
        return self._data

    def cached(self, name: str, params: Mapping[str, Any],
               compute: Callable[[], tuple[dict[str, torch.Tensor], dict]], *, version: int
               ) -> tuple[dict[str, torch.Tensor], dict]:
        """The artifact ``name`` from the cache, or ``compute()`` stored in it (see :mod:`.cache`).

        ``params`` must hold everything ``compute`` depends on besides the data and the library
        code (sizes, epochs, learning rates, seeds, ...; the precision is added when it is not
        fp32); ``version`` is the artifact's explicit
        version. The same call with the same ``params`` in another chapter is a hit. Tensors come
        back on :attr:`device`.
        """
        self.progress(f"looking up {name}")
        params = self._params(params)  # another precision computes other numbers
        out = self.store.get_or_compute(name, params, compute, version=version, data_sha256=self.data.sha256,
                                        device=self.device, on_compute=lambda n: self.progress(f"computing {n}"))
        self.progress(f"{'computed' if self.store.lookups[-1]['hit'] is False else 'loaded'} {name}")
        return out

    def cached_many(self, works: Sequence[Work]) -> list[tuple[dict[str, torch.Tensor], dict]]:
        """Every artifact of ``works`` (in order) as :meth:`cached` gives it, the missing ones computed by
        the chapter's executor (:mod:`.executor`).

        With the ``local`` executor this is :meth:`cached` one after the other. On a Dask cluster the
        missing ones' ``needs`` are made first (deduplicated), then the missing artifacts are computed
        on the workers at the same time and each is stored here as it arrives; the numbers are the
        same as computed here.
        """
        if self.executor is None:
            return [self.cached(w.name, w.params, w.compute, version=w.version) for w in works]
        keys = [self.store.key(w.name, self._params(w.params), w.compute, version=w.version,
                               data_sha256=self.data.sha256) for w in works]
        found = [self.store.lookup(k) for k in keys]
        out: list[Any] = [None] * len(works)
        for i in (i for i, f in enumerate(found) if f is not None):
            out[i] = self.store.record(keys[i], found[i], hit=True, device=self.device)
        missing = [i for i, f in enumerate(found) if f is None]
        if not missing:
            return out
        needs: dict[tuple[str, str], Work] = {}  # the missing ones' inputs, each once
        for need in (n for i in missing for n in works[i].needs):
            needs.setdefault((need.name, canonical_json(need.params)), need)
        if needs:
            self.cached_many(list(needs.values()))
        self.progress(f"computing {len(missing)} artifact{'s' * (len(missing) != 1)} on {self.executor.name}")

        arrived: list[int] = []

        def store(j: int, result: Any, where: str) -> None:
            i = missing[j]
            out[i] = self.store.record(keys[i], self.store.put(keys[i], *result), hit=False, device=self.device)
            arrived.append(i)
            self.progress(f"computed {works[i].name} on {self.executor.name}, {len(arrived)} of {len(missing)} "
                          f"({where})")

        self.executor.run([functools.partial(compute_tracked, works[i].name, works[i].compute) for i in missing],
                          store)
        return out

    def _params(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """An artifact's parameters as its key holds them: the precision added when it is not fp32."""
        return {**params, "precision": self.precision} if self.precision != "fp32" else params

    def progress(self, stage: str) -> None:
        """Tell ``python -m pretraining run`` what the chapter is doing (nothing without it).

        Written to ``progress.json`` in the run's private folder: the stage, how many artifacts were
        looked up so far, how many the chapter's last run with this profile looked up, the elapsed
        time. The CLI shows it as a progress line; nothing of it reaches the page.
        """
        folder = os.environ.get(RUN_DIR_ENV)
        if not folder or self.worker:
            return
        record = {"stage": stage, "done": len(self.store.lookups), "expected": self._expected,
                  "elapsed_s": round(time.perf_counter() - self._t0, 1)}
        try:
            atomic_write_bytes(Path(folder) / "progress.json", json.dumps(record).encode())
        except OSError:
            pass  # progress is a courtesy: never fail a chapter for it

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

    def figure(self, key: str, fig: Any) -> None:
        """Glue a matplotlib figure for the notebook's ``{glue:figure} key`` directive, and close it.

        The directive, in the markdown, gives the figure its number (``:name:``), its caption and its
        ``:alt:`` text; the figure is not shown where the code cell is.
        """
        import matplotlib.pyplot as plt
        from myst_nb import glue as _glue

        if key in self.figures:
            raise ValueError(f"figure key {key!r} is used twice in chapter {self.name!r}")
        self.figures.append(key)
        _glue(key, fig, display=False)
        plt.close(fig)

    def finish(self, results: Mapping[str, Any], *, parts: Sequence[Part], finding: str) -> dict:
        """Write the results file atomically; display the parts, the verdict, the provenance.

        The file is ``<build>/results/<name>.json``, or, under ``python -m pretraining run``, the run's
        private folder, from which the CLI publishes it together with the executed notebook once the
        whole notebook has succeeded.

        ``parts``: the claim's parts, each tested on the numbers; their p-values are Holm-adjusted
        together (:func:`pretraining.book.claims.decide`), the verdict follows from them
        (:func:`pretraining.book.claims.verdict`), and the results get their ``claim_parts`` list. ``finding``: one sentence with the computed
        numbers, for the summary table. Returns the record (a :class:`Record`: not printed when a
        notebook cell ends with it).
        """
        if not isinstance(finding, str) or not finding.strip():
            raise ValueError(f"finding={finding!r} is not allowed: a non-empty sentence")
        if not parts or not all(isinstance(p, Part) for p in parts):
            raise TypeError("parts must be a non-empty list of claims.Part")
        parts = decide(parts)
        results = {**results, "claim_parts": [p.claim_part() for p in parts]}
        record = {
            "chapter": self.name,
            "profile": self.profile,
            "claim": self.spec.claim,
            "finding": finding,
            "verdict": verdict(parts),
            "parts": [to_plain(p.record(), f"part {p.key}") for p in parts],
            "results": to_plain(dict(results), "results"),
            "glued": {**self.glued, "key_result": key_result(parts, verdict(parts), self.profile, finding)},
            "_cache": {"hits": self.store.hits, "misses": self.store.misses},
            "_run_id": os.environ.get(RUN_ID_ENV),
            "_provenance": self.provenance(),
        }
        text = json.dumps(record, indent=1, sort_keys=False, allow_nan=False)
        self.glue("key_result", record["glued"]["key_result"])  # every check passed: the box under the claim
        folder = Path(os.environ[RUN_DIR_ENV]) if os.environ.get(RUN_DIR_ENV) else results_dir(self.build_dir)
        atomic_write_bytes(folder / f"{self.name}.json", text.encode())
        self.store.write_index(self.name, self.profile)
        if self.executor is not None:  # its workers are done
            self.executor.close()
        _display_verdict(parts, record["verdict"], self.profile)
        _display_provenance(record["_provenance"])
        return Record(record)

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
            "library source sha256": library_source_hash(),
            "data sha256": self._data.sha256 if self._data is not None else "no data loaded",
            "device": dev,
            "precision": self.precision,
            "executor": self.executor.name if self.executor is not None else "local",
            "versions": versions,
            "wall time s": round(time.perf_counter() - self._t0, 1),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }


_WORKER_CHAPTERS: dict[tuple[str, str, str], Chapter] = {}


def worker_chapter(spec: ChapterSpec, params: dict[str, Any], build: str, threads: int) -> Chapter:
    """The chapter rebuilt in a Dask worker's process (once per process, chapter and parameters): its
    device is the worker's, its data loaded there, its cache the folder at the same path. The worker
    computes with the chapter's ``threads`` CPU threads: float sums depend on how they are split over
    threads, so this makes its numbers those of the chapter's own process."""
    torch.set_num_threads(threads)
    key = (spec.name, canonical_json(params), build)
    if key not in _WORKER_CHAPTERS:
        _WORKER_CHAPTERS[key] = Chapter(spec, params, Path(build), worker=True)
    return _WORKER_CHAPTERS[key]


def start(spec: ChapterSpec, namespace: Mapping[str, Any]) -> Chapter:
    """Check every parameter of the notebook (one :class:`ParameterError` line if bad) and begin.

    ``namespace`` is the notebook's ``globals()`` right after the parameters cell.
    """
    values = _parse_strings(spec, user_names(namespace))
    params = spec.check(values)
    try:  # device auto and executor auto: known only here
        resolve_precision(params["precision"], get_device(params["device"]))
        resolve_executor(params["executor"])
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    if params["profile"] != "quick" and not os.environ.get(RUN_ID_ENV):
        _check_plain_papermill_profile(spec, params)
    return Chapter(spec, params, build_dir())


def _parse_strings(spec: ChapterSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Plain papermill passes ``-p depths "[1, 2]"`` as a string: read such strings as YAML 1.2.

    Only for parameters that are not strings themselves; a string that is not valid YAML stays
    as it is and is refused by the parameter's check in one line.
    """
    from .profiles import ProfileError, parse_yaml
    from .specs import Choice, Str

    out = dict(values)
    for k, v in values.items():
        allowed = spec.all_params[k].allowed if k in spec.all_params else None
        text_param = isinstance(allowed, Str) or (isinstance(allowed, Choice) and isinstance(allowed.values[0], str))
        if isinstance(v, str) and allowed is not None and not text_param:
            try:
                out[k] = parse_yaml(v, f"{k}={v!r}")
            except ProfileError:
                pass
    return out


def _check_plain_papermill_profile(spec: ChapterSpec, params: Mapping[str, Any]) -> None:
    """``-p profile smoke`` with plain papermill must come with the profile's values, or it is refused.

    (``python -m pretraining run --profile NAME`` passes them; a notebook run by hand with only the
    profile's name would run quick-sized work labelled with another profile.)
    """
    from .profiles import ProfileError, chapter_values, load_profile
    from .site import toc_chapter_stems

    try:
        root = find_root()
        prof = load_profile(root, params["profile"], toc_chapter_stems(root))
        wanted, _ = chapter_values(spec, params["profile"], prof, [], f"params/{params['profile']}.yaml")
    except (FileNotFoundError, ProfileError) as exc:
        raise ParameterError(f"profile={params['profile']!r}: its values cannot be read ({exc})") from None
    missing = {k: v for k, v in wanted.items() if spec.all_params[k].allowed.canonical(v) != params[k]}
    if missing:
        shown = ", ".join(f"{k}={v!r}" for k, v in list(missing.items())[:4]) + (", ..." if len(missing) > 4 else "")
        raise ParameterError(
            f"profile={params['profile']!r} is not allowed without its values ({shown}): run "
            f"`python -m pretraining run --profile {params['profile']} {spec.name.split('_')[0]}`, or pass "
            "them with -p")


def show(*objects: Any) -> None:
    """Display figures, tables or Markdown in the notebook; figures are closed after showing."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    for obj in objects:
        display(obj)
        if isinstance(obj, plt.Figure):
            plt.close(obj)


@functools.lru_cache(maxsize=1)
def library_source_hash() -> str:
    """sha256 over the paths and bytes of every ``*.py`` file of the library (for provenance)."""
    lib = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(lib.rglob("*.py")):
        h.update(p.relative_to(lib).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _previous_lookups(store: ArtifactStore, chapter: str, profile: str) -> int | None:
    """How many artifacts the chapter's last finished run with this profile looked up (None: no run yet)."""
    for rec in store.indexes():
        if rec.get("chapter") == chapter and rec.get("profile") == profile:
            return len(rec.get("lookups", []))
    return None


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


def key_result(parts: Sequence[Part], verdict_: str, profile: str, finding: str) -> str:
    """The sentence of a chapter's key-result box: its verdict, how many parts hold, the finding."""
    tested = [p for p in parts if p.status != NOT_TESTED]
    held = sum(p.status == HOLDS for p in tested)
    if not tested:
        count = f"none of the {len(parts)} parts of the claim could be tested at this scale"
    else:
        count = (f"{held} of the {len(tested)} tested parts of the claim hold"
                 + (f", {len(parts) - len(tested)} could not be tested" if len(parts) > len(tested) else ""))
    return f"Verdict at the {profile} profile: {verdict_} ({count}). {finding}"


def _display_verdict(parts: Sequence[Part], verdict_: str, profile: str) -> None:
    from IPython.display import Markdown, display

    tested = [p for p in parts if p.status != NOT_TESTED]
    held = sum(p.status == HOLDS for p in tested)
    n_p = sum(p.p is not None for p in tested)
    rule = (f" A part decided by a test holds only if its p-value, Holm-adjusted over the {n_p} tested "
            f"part{'s' * (n_p != 1)}, is below α = {ALPHA} and its effect points the way the claim states."
            if n_p else "")
    if len(tested) > n_p:
        rule += " A part decided by a threshold holds when its evidence meets the bar it states."
    display(Markdown(f"**The claim in parts, tested on this run's numbers** ({profile} profile).{rule}\n\n"
                     f"{parts_markdown(parts)}\n\n**Verdict: {verdict_}** — {held} of the {len(tested)} "
                     f"tested parts hold" + (f"; {len(parts) - len(tested)} could not be tested (the list says why)"
                                             if len(parts) > len(tested) else "") + "."))


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
