"""Content-addressed artifact cache (trained weights + metadata) with atomic writes.

An entry is the folder ``<root>/<name>-<digest>/`` holding

- ``tensors.safetensors``  the tensors (safetensors format, CPU),
- ``meta.json``            JSON metadata (e.g. training curves, numbers),
- ``manifest.json``        sha256 and size of the two files, written LAST.

``digest`` hashes everything that determines the artifact: its name, the parameters (canonical
JSON), the sha256 of the data set, and the library source (all ``lib/pretraining/*.py``). An
entry is built in a temporary folder and renamed into place, so a crash (even SIGKILL) at any
moment leaves a complete entry or nothing usable; an entry whose files do not match the manifest
is reported with a warning and recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = ["ArtifactStore", "source_hash", "canonical_json", "to_plain", "atomic_write_bytes", "sha256_file"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TENSORS, _META, _MANIFEST = "tensors.safetensors", "meta.json", "manifest.json"
_FORMAT = 1


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=None)
def _source_hash(folder: str) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(folder).glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def source_hash(folder: str | Path | None = None) -> str:
    """sha256 over the names and contents of all ``*.py`` files of the library (or ``folder``)."""
    return _source_hash(str(Path(folder) if folder else Path(__file__).parent))


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


class ArtifactStore:
    """A folder of cached artifacts, keyed by what determines them.

    Parameters
    ----------
    root: the cache folder (created on first write), e.g. ``_build/cache``.
    source: identifies the code that computes the artifacts; default :func:`source_hash`.
    """

    def __init__(self, root: str | Path, *, source: str | None = None):
        self.root = Path(root)
        self.source = source if source is not None else source_hash()
        self.hits = 0
        self.misses = 0

    def key(self, name: str, params: Mapping[str, Any], *, data_sha256: str | None = None) -> str:
        """The entry name ``<name>-<digest>`` for these parameters, data and library source."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name={name!r} is not allowed: letters, digits, '_', '.', '-' "
                             "starting with a letter or digit")
        if not isinstance(params, Mapping):
            raise TypeError(f"params={params!r} is not allowed: a dict of plain values")
        if data_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", str(data_sha256)):
            raise ValueError(f"data_sha256={data_sha256!r} is not allowed: 64 hex digits or None")
        plain = to_plain(dict(params), "params")
        text = canonical_json({"name": name, "params": plain, "data": data_sha256,
                               "source": self.source, "format": _FORMAT})
        return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"

    def path(self, name: str, params: Mapping[str, Any], *, data_sha256: str | None = None) -> Path:
        """The folder of the entry (which may not exist)."""
        return self.root / self.key(name, params, data_sha256=data_sha256)

    def get_or_compute(
        self,
        name: str,
        params: Mapping[str, Any],
        compute: Callable[[], tuple[dict[str, torch.Tensor], dict]],
        *,
        data_sha256: str | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict]:
        """Load the entry, or call ``compute()`` and store what it returns.

        ``compute`` returns ``(tensors, meta)``: a dict of tensors (any shapes/dtypes) and a
        JSON-able dict with finite numbers. Both a hit and a miss return what a load gives:
        tensors on ``device`` (default CPU) and the metadata as parsed from JSON.
        """
        entry = self.path(name, params, data_sha256=data_sha256)
        loaded = self._load(entry)
        if loaded is not None:
            self.hits += 1
            tensors, meta = loaded
        else:
            self.misses += 1
            result = compute()
            tensors, meta = self._check_result(name, result)
            self._write(entry, tensors, meta)
            tensors, meta = {k: v.clone() for k, v in tensors.items()}, json.loads(json.dumps(meta))
        if device is not None:
            tensors = {k: v.to(device) for k, v in tensors.items()}
        return tensors, meta

    def clear(self) -> tuple[int, int]:
        """Delete every entry (and stale temporary folders). Returns (entries, bytes) removed."""
        if not self.root.exists():
            return 0, 0
        n, size = 0, 0
        for p in self.root.iterdir():
            if p.is_dir():
                size += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                n += not p.name.startswith(".tmp-")
                shutil.rmtree(p, ignore_errors=True)
        return n, size

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
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

    def _load(self, entry: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
        if not entry.exists():
            return None
        try:
            manifest = json.loads((entry / _MANIFEST).read_text())
            files = manifest["files"]
            if manifest.get("format") != _FORMAT or set(files) != {_TENSORS, _META}:
                raise ValueError("unexpected manifest")
            for fname, rec in files.items():
                p = entry / fname
                if p.stat().st_size != rec["size"] or sha256_file(p) != rec["sha256"]:
                    raise ValueError(f"{fname} does not match its checksum")
            tensors = load_file(entry / _TENSORS, device="cpu")
            meta = json.loads((entry / _META).read_text())
        except Exception as exc:  # noqa: BLE001 - any damage means: recompute
            warnings.warn(f"artifact cache entry {entry} is damaged ({exc}); recomputing it",
                          stacklevel=3)
            return None
        return tensors, meta

    def _write(self, entry: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
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
            manifest = json.dumps({"format": _FORMAT, "files": files}, sort_keys=True, indent=1)
            (tmp / _MANIFEST).write_text(manifest)
            _fsync(tmp / _MANIFEST)
            if entry.exists():  # a damaged entry: remove it, then move the new one in
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
