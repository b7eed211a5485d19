"""The artifact cache: trained weights and result tables, keyed by everything they depend on.

An entry is the folder ``<root>/<name>-<digest>/`` holding

- ``tensors.safetensors``  the tensors (safetensors format, CPU; no code runs on load),
- ``meta.json``            JSON metadata (training curves, numbers),
- ``manifest.json``        the entry's full **key**, the sha256 and size of the two files, and the
                           entries its computation loaded (``inputs``), written last.

The key (:meth:`ArtifactStore.key`) is a dict: the artifact's ``name``, its explicit ``version``
(bumped by hand when what it means changes), the canonical ``params``, the ``data`` checksum, and
``code``: the hashes of only the library code the computation depends on
(:mod:`pretraining.book.codehash`: the definitions and numeric modules ``compute`` uses, with
comments and docstrings normalised away; never the figures, the CLI or the book machinery). The
digest hashes the key. A load checks the stored key equals the requested one, so an entry that
was swapped, copied from elsewhere or damaged is refused (with a warning) and recomputed.

An entry is built in a temporary folder and renamed into place, so a crash (even SIGKILL) at any
moment leaves a complete entry or nothing usable.

Every lookup is recorded (:attr:`ArtifactStore.lookups`); a chapter writes its lookups to
``<root>/.index/<profile>/<chapter>.json`` when it finishes. The index says which entries the
latest run of each chapter and profile used, with the inputs of those entries (a hit on a trained
network keeps the pre-trained stack it was computed from): ``python -m pretraining cache ls | why NAME | gc``
list the entries, explain a miss by what differs from the nearest stored entry, and delete the
entries no index names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..core.files import atomic_write_bytes, sha256_file
from .codehash import dependencies

__all__ = ["ArtifactStore", "Entry", "Stored", "canonical_json", "compute_tracked", "key_differences", "to_plain"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TENSORS, _META, _MANIFEST = "tensors.safetensors", "meta.json", "manifest.json"
_INDEX = ".index"
FORMAT = 2
"""Layout of an entry; bumped when the folder's files or the key's fields change."""

Stored = tuple[dict[str, torch.Tensor], dict, list[str]]
"""An entry's (tensors, metadata, inputs): the entries its computation loaded."""

_COMPUTING: list[list[str]] = []
"""Per artifact computation running now in this process (innermost last): the entries it loaded.
Process-wide, so a computation sent to another process (:mod:`.executor`) records the entries it
loads there through whichever store it uses."""


def compute_tracked(name: str, compute: Callable[[], tuple[dict[str, torch.Tensor], dict]]) -> Stored:
    """Run ``compute()`` for the artifact ``name``: its checked (tensors on the CPU, plain metadata) and
    the entries it loaded (its inputs). Runs in the chapter's process or on a worker."""
    _COMPUTING.append([])
    try:
        result = compute()
    finally:
        inputs = sorted(set(_COMPUTING.pop()))
    tensors, meta = _check_result(name, result)
    return tensors, meta, inputs


def _check_result(name: str, result: Any) -> tuple[dict[str, torch.Tensor], dict]:
    if not (isinstance(result, tuple) and len(result) == 2
            and isinstance(result[0], Mapping) and isinstance(result[1], Mapping)):
        raise TypeError(f"compute() for {name!r} returned {type(result).__name__}; "
                        "expected (dict of tensors, dict of metadata)")
    tensors, meta = result
    for k, v in tensors.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise TypeError(f"compute() for {name!r}: tensors[{k!r}] is {type(v).__name__}; "
                            "expected a torch.Tensor under a string key")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    return tensors, to_plain(dict(meta), f"{name} metadata")


def to_plain(value: Any, where: str) -> Any:
    """Convert to JSON-able plain types; reject NaN/inf and unknown types, naming ``where``."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where} is {value}; only finite numbers can be stored")
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has the key {k!r}; keys must be strings")
            out[k] = to_plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, torch.Tensor):
        return to_plain(value.detach().cpu().tolist(), where)
    if hasattr(value, "tolist") and type(value).__module__.startswith("numpy"):
        return to_plain(value.tolist(), where)
    raise TypeError(f"{where} is {value!r} of type {type(value).__name__}; "
                    "use numbers, strings, bools, None, lists, dicts or tensors")


def canonical_json(obj: Mapping[str, Any], what: str = "params") -> str:
    """One canonical JSON text for a dict: sorted keys, no spaces, finite numbers only.

    Tensors and numpy values become lists/numbers. ``1`` and ``1.0`` are different values.
    """
    return json.dumps(to_plain(obj, what), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def key_differences(wanted: Any, stored: Any, path: str = "") -> list[str]:
    """Leaf-by-leaf differences of two keys: ``["params.epochs: 20 -> 30", "code[...]: changed"]``."""
    if isinstance(wanted, Mapping) and isinstance(stored, Mapping):
        out = []
        for k in sorted(set(wanted) | set(stored)):
            sub = f"code[{k}]" if path == "code" else f"{path}.{k}" if path else k
            if k not in stored:
                out.append(f"{sub}: new (not in the stored entry)")
            elif k not in wanted:
                out.append(f"{sub}: gone (only in the stored entry)")
            else:
                out += key_differences(wanted[k], stored[k], sub)
        return out
    if wanted == stored:
        return []
    if path.startswith("code["):
        return [f"{path}: changed"]
    return [f"{path}: {json.dumps(stored)} -> {json.dumps(wanted)}"]


@dataclass(frozen=True)
class Entry:
    """A stored entry: its folder, its key (None when the manifest is unreadable) and its size."""

    path: Path
    key: dict | None
    size: int

    @property
    def name(self) -> str:
        return self.key["name"] if self.key else self.path.name.rsplit("-", 1)[0]


class ArtifactStore:
    """A folder of cached artifacts (see the module docstring).

    Parameters
    ----------
    root: the cache folder (created on first write), e.g. ``_build/cache``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.lookups: list[dict] = []

    # -- keys ---------------------------------------------------------------------------------

    def key(self, name: str, params: Mapping[str, Any], compute: Callable, *, version: int,
            data_sha256: str | None = None) -> dict:
        """The full key of the artifact ``name`` computed by ``compute`` with ``params``."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name={name!r} is not allowed: letters, digits, '_', '.', '-' "
                             "starting with a letter or digit")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version={version!r} is not allowed: an int >= 1 (bump it when the "
                             "artifact's meaning changes)")
        if not isinstance(params, Mapping):
            raise TypeError(f"params={params!r} is not allowed: a dict of plain values")
        if data_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", str(data_sha256)):
            raise ValueError(f"data_sha256={data_sha256!r} is not allowed: 64 hex digits or None")
        if not callable(compute):
            raise TypeError(f"compute={compute!r} is not allowed: a function returning (tensors, meta)")
        return {"format": FORMAT, "name": name, "version": version,
                "params": to_plain(dict(params), "params"), "data": data_sha256,
                "code": dependencies(compute)}

    @staticmethod
    def folder_name(key: Mapping[str, Any]) -> str:
        """``<name>-<32 hex digits of sha256(canonical key)>``."""
        return f"{key['name']}-{hashlib.sha256(canonical_json(key, 'key').encode()).hexdigest()[:32]}"

    # -- get or compute -------------------------------------------------------------------------

    def get_or_compute(
        self,
        name: str,
        params: Mapping[str, Any],
        compute: Callable[[], tuple[dict[str, torch.Tensor], dict]],
        *,
        version: int,
        data_sha256: str | None = None,
        device: torch.device | str | None = None,
        on_compute: Callable[[str], None] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict]:
        """Load the entry, or call ``compute()`` and store what it returns.

        ``on_compute(name)``, if given, is called just before a missing entry is computed (progress).

        ``compute`` returns ``(tensors, meta)``: a dict of tensors (any shapes/dtypes) and a
        JSON-able dict with finite numbers; it must be library code (not a notebook cell). Both a
        hit and a miss return what a load gives: tensors on ``device`` (default CPU) and the
        metadata as parsed from JSON.
        """
        key = self.key(name, params, compute, version=version, data_sha256=data_sha256)
        stored = self.lookup(key)
        hit = stored is not None
        if not hit:
            if on_compute is not None:
                on_compute(name)
            stored = self.put(key, *compute_tracked(name, compute))
        return self.record(key, stored, hit=hit, device=device)

    def lookup(self, key: dict) -> Stored | None:
        """The stored entry of ``key``, or None when it is missing (or refused: damaged, foreign)."""
        return self._load(self.root / self.folder_name(key), key)

    def put(self, key: dict, tensors: dict[str, torch.Tensor], meta: dict, inputs: Sequence[str]) -> Stored:
        """Store a computed entry (atomically; see the module docstring); returns it as a load would."""
        self._write(self.root / self.folder_name(key), key, tensors, meta, sorted(set(inputs)))
        return {k: v.clone() for k, v in tensors.items()}, json.loads(json.dumps(meta)), sorted(set(inputs))

    def record(self, key: dict, stored: Stored, *, hit: bool, device: torch.device | str | None = None
               ) -> tuple[dict[str, torch.Tensor], dict]:
        """Count a lookup of ``key`` and note it (:attr:`lookups`; an input of the computation running
        now, if any); returns the entry's tensors (on ``device``, default CPU) and metadata."""
        tensors, meta, inputs = stored
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        entry = self.folder_name(key)
        if _COMPUTING:  # loaded by another artifact's computation: one of its inputs
            _COMPUTING[-1].extend([entry, *inputs])
        self.lookups.append({"name": key["name"], "entry": entry, "hit": hit, "key": key, "inputs": list(inputs)})
        if device is not None:
            tensors = {k: v.to(device) for k, v in tensors.items()}
        return tensors, meta

    # -- the index of the latest runs, and housekeeping -------------------------------------------

    def write_index(self, chapter: str, profile: str) -> Path:
        """Record this store's lookups as the latest run of ``chapter`` with ``profile``."""
        path = self.root / _INDEX / profile / f"{chapter}.json"
        record = {"chapter": chapter, "profile": profile, "lookups": self.lookups}
        atomic_write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())
        return path

    def indexes(self) -> list[dict]:
        """Every index record (one per chapter and profile whose latest run finished)."""
        folder = self.root / _INDEX
        out = []
        for p in sorted(folder.glob("*/*.json")) if folder.is_dir() else []:
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                warnings.warn(f"cache index {p} is unreadable; ignored", stacklevel=2)
        return out

    def entries(self) -> list[Entry]:
        """Every stored entry (temporary folders and the index excluded), by folder name."""
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if not p.is_dir() or p.name.startswith("."):
                continue
            try:
                key = json.loads((p / _MANIFEST).read_text())["key"]
            except (OSError, ValueError, KeyError, TypeError):
                key = None
            out.append(Entry(p, key, sum(f.stat().st_size for f in p.rglob("*") if f.is_file())))
        return out

    def used_by(self) -> dict[str, list[str]]:
        """{entry folder name: ["chapter (profile)", ...]} from the index (entries and their inputs)."""
        out: dict[str, list[str]] = {}
        for rec in self.indexes():
            run = f"{rec['chapter']} ({rec['profile']})"
            for look in rec["lookups"]:
                for name in (look["entry"], *look.get("inputs", [])):
                    if run not in out.setdefault(name, []):
                        out[name].append(run)
        return out

    def why(self, name: str) -> list[str]:
        """Why the latest runs hit or missed the artifact ``name``: one paragraph of lines per lookup."""
        lines = []
        stored = [e for e in self.entries() if e.name == name and e.key is not None]
        for rec in self.indexes():
            for look in (lk for lk in rec["lookups"] if lk["name"] == name):
                head = f"{name} in {rec['chapter']} ({rec['profile']}): "
                if look["hit"]:
                    lines.append(head + f"hit ({look['entry']})")
                    continue
                others = [e for e in stored if e.path.name != look["entry"]]
                if not others:
                    lines.append(head + "miss: no other entry of this name is stored (first run, "
                                 "or it was removed)")
                    continue
                diffs = min((key_differences(look["key"], e.key) for e in others), key=len)
                lines.append(head + "miss; what differs from the nearest stored entry:")
                lines += [f"    {d}" for d in diffs]
        if not lines:
            lines.append(f"{name}: no finished chapter run looked it up (names: "
                         f"{', '.join(sorted({e.name for e in self.entries()})) or 'none'})")
        return lines

    def gc(self) -> tuple[int, int]:
        """Delete the entries no index names, and stale temporary folders. Returns (entries, bytes)."""
        used = self.used_by()
        n, size = 0, 0
        for e in self.entries():
            if e.path.name not in used:
                shutil.rmtree(e.path, ignore_errors=True)
                n, size = n + 1, size + e.size
        self._sweep_stale()
        return n, size

    def clear(self) -> tuple[int, int]:
        """Delete every entry, the index and stale temporary folders. Returns (entries, bytes)."""
        if not self.root.exists():
            return 0, 0
        n, size = 0, 0
        for p in self.root.iterdir():
            if p.is_dir():
                size += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                n += not p.name.startswith(".")
                shutil.rmtree(p, ignore_errors=True)
        return n, size

    # -- internals ------------------------------------------------------------------------------

    def _load(self, entry: Path, key: dict) -> Stored | None:
        if not entry.exists():
            return None
        try:
            manifest = json.loads((entry / _MANIFEST).read_text())
            files = manifest["files"]
            if manifest.get("format") != FORMAT or set(files) != {_TENSORS, _META}:
                raise ValueError("unexpected manifest")
            if manifest.get("key") != json.loads(canonical_json(key, "key")):
                raise ValueError("it holds another key (a swapped or foreign entry)")
            for fname, rec in files.items():
                p = entry / fname
                if p.stat().st_size != rec["size"] or sha256_file(p) != rec["sha256"]:
                    raise ValueError(f"{fname} does not match its checksum")
            tensors = load_file(entry / _TENSORS, device="cpu")
            meta = json.loads((entry / _META).read_text())
            inputs = [str(x) for x in manifest.get("inputs", [])]
        except Exception as exc:  # noqa: BLE001 - any damage means: recompute
            warnings.warn(f"artifact cache entry {entry} is refused ({exc}); recomputing it", stacklevel=3)
            return None
        return tensors, meta, inputs

    def _write(self, entry: Path, key: dict, tensors: dict[str, torch.Tensor], meta: dict,
               inputs: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep_stale()
        tmp = self.root / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            save_file(tensors, str(tmp / _TENSORS))
            (tmp / _META).write_text(json.dumps(meta, sort_keys=True, allow_nan=False))
            files = {f: {"sha256": sha256_file(tmp / f), "size": (tmp / f).stat().st_size}
                     for f in (_TENSORS, _META)}
            for f in (_TENSORS, _META):
                _fsync(tmp / f)
            manifest = json.dumps({"format": FORMAT, "key": key, "files": files, "inputs": inputs},
                                  sort_keys=True, indent=1)
            (tmp / _MANIFEST).write_text(manifest)
            _fsync(tmp / _MANIFEST)
            if entry.exists():  # a damaged or foreign entry: remove it, then move the new one in
                shutil.rmtree(entry)
            try:
                os.replace(tmp, entry)
            except OSError:
                if not entry.exists():  # not a concurrent writer that won the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _sweep_stale(self) -> None:
        """Remove temporary folders left by processes that no longer run (e.g. killed)."""
        for p in self.root.glob(".tmp-*"):
            try:
                pid = int(p.name.split("-")[1])
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(p, ignore_errors=True)
            except (ValueError, IndexError, PermissionError):
                continue


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
