"""Full-MNIST download against a local HTTP server serving small generated IDX files (no internet)."""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from pretraining.core import data
from pretraining.core.data import MNIST_FILES, DataError


def idx_gz(array: np.ndarray, magic_type: int = 0x08) -> bytes:
    """A gzipped IDX file of uint8 ``array`` (big-endian dims), reproducible bytes."""
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def make_mnist(n_train: int, n_test: int) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 10:14, 10:14] = rng.integers(0, 256, size=(n, 4, 4))
        arrays[f"{prefix}-images-idx3-ubyte.gz"] = images
        arrays[f"{prefix}-labels-idx1-ubyte.gz"] = (np.arange(n) % 10).astype(np.uint8)
    return {name: idx_gz(a) for name, a in arrays.items()}, arrays


def sha256s(files: dict[str, bytes]) -> dict[str, dict[str, str]]:
    return {name: {"sha256": hashlib.sha256(blob).hexdigest()} for name, blob in files.items()}


class Server:
    """Serves ``files`` by name; ``truncate`` names are cut short, ``fail`` names answer HTTP 500."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.truncate, self.fail, self.requests = dict(files), set(), set(), []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                name = self.path.rsplit("/", 1)[-1]
                owner.requests.append(name)
                if name in owner.fail or name not in owner.files:
                    self.send_error(500 if name in owner.fail else 404)
                    return
                body = owner.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in owner.truncate else body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def files() -> dict[str, bytes]:
    return make_mnist(12, 5)[0]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry rounds without waiting (the waits themselves are checked in one test)."""
    monkeypatch.setattr(data, "DOWNLOAD_BACKOFF_S", 0.0)


@pytest.fixture
def server(files: dict[str, bytes]) -> Iterator[Server]:
    s = Server(files)
    yield s
    s.close()


@pytest.fixture
def dead_url() -> str:
    """A local URL nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def fetch(root: Path, mirrors: list[str], files: dict[str, bytes]) -> dict[str, Path]:
    return data.download_mnist(root, mirrors=mirrors, timeout=5, checksums=sha256s(files))


def test_download_success(tmp_path: Path, server: Server, files: dict[str, bytes]) -> None:
    paths = fetch(tmp_path / "mnist", [server.url], files)
    assert list(paths) == list(MNIST_FILES)
    assert all(paths[n].read_bytes() == files[n] for n in MNIST_FILES)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(MNIST_FILES)
    images = data.read_idx(paths["train-images-idx3-ubyte.gz"], ndim=3)
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8
    assert data.read_idx(paths["t10k-labels-idx1-ubyte.gz"], ndim=1).tolist() == [0, 1, 2, 3, 4]


def test_mirrors_are_tried_in_order(tmp_path: Path, server: Server, files: dict[str, bytes], dead_url: str) -> None:
    paths = fetch(tmp_path, [dead_url, server.url], files)
    assert all(paths[n].read_bytes() == files[n] for n in MNIST_FILES)


def test_cache_is_used_and_repaired(tmp_path: Path, server: Server, files: dict[str, bytes], dead_url: str) -> None:
    fetch(tmp_path, [server.url], files)
    server.requests.clear()
    fetch(tmp_path, [dead_url], files)  # everything cached: no network needed
    (tmp_path / MNIST_FILES[1]).write_bytes(b"damaged")
    fetch(tmp_path, [server.url], files)
    assert server.requests == [MNIST_FILES[1]]
    assert (tmp_path / MNIST_FILES[1]).read_bytes() == files[MNIST_FILES[1]]


def test_checksum_mismatch(tmp_path: Path, server: Server, files: dict[str, bytes]) -> None:
    server.files[MNIST_FILES[2]] = idx_gz(np.ones((5, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz .*sha256 checksum mismatch"):
        fetch(tmp_path, [server.url], files)
    assert not (tmp_path / MNIST_FILES[2]).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MNIST_FILES[:2])  # no partial file


def test_truncated_download_leaves_nothing(tmp_path: Path, server: Server, files: dict[str, bytes]) -> None:
    server.truncate.add(MNIST_FILES[0])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz .*(IncompleteRead|truncated)"):
        fetch(tmp_path, [server.url], files)
    assert list(tmp_path.iterdir()) == []


def test_server_error(tmp_path: Path, server: Server, files: dict[str, bytes]) -> None:
    server.fail.add(MNIST_FILES[3])
    with pytest.raises(DataError, match=r"HTTP 500.*by hand"):
        fetch(tmp_path, [server.url], files)
    assert not (tmp_path / MNIST_FILES[3]).exists()


def test_offline_message(tmp_path: Path, files: dict[str, bytes], dead_url: str) -> None:
    with pytest.raises(DataError) as err:
        fetch(tmp_path / "cache", [dead_url], files)
    message = str(err.value)
    assert "\n" not in message and "refused" in message.lower()
    assert all(name in message for name in MNIST_FILES)
    assert str((tmp_path / "cache").resolve()) in message


def test_wrong_idx_magic(tmp_path: Path, files: dict[str, bytes]) -> None:
    labels_as_images = {**files, MNIST_FILES[0]: idx_gz(np.zeros(12, dtype=np.uint8))}
    s = Server(labels_as_images)
    try:
        paths = fetch(tmp_path, [s.url], labels_as_images)
    finally:
        s.close()
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz has IDX magic 00000801, expected 00000803"):
        data.read_idx(paths[MNIST_FILES[0]], ndim=3)
    float_file = tmp_path / "f.gz"
    float_file.write_bytes(idx_gz(np.zeros((2, 28, 28), dtype=np.uint8), magic_type=0x0D))
    with pytest.raises(DataError, match="has IDX magic 00000d03"):
        data.read_idx(float_file, ndim=3)


def test_idx_size_and_gzip_checks(tmp_path: Path) -> None:
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes(4)))
    with pytest.raises(DataError, match=r"holds 4 data bytes but its dims \(5,\) call for 5"):
        data.read_idx(short, ndim=1)
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(b"hello")
    with pytest.raises(DataError, match="not a readable gzip file"):
        data.read_idx(not_gzip, ndim=1)


def test_load_dataset_full_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str) -> None:
    files, arrays = make_mnist(data.MNIST_VALID_SIZE + 30, 20)
    cache = tmp_path / "cache" / "mnist"
    cache.mkdir(parents=True)
    for name, blob in files.items():
        (cache / name).write_bytes(blob)
    monkeypatch.setattr(data, "MNIST_CHECKSUMS", sha256s(files))
    monkeypatch.setattr(data, "MIRRORS", (dead_url,))
    split = data.load_dataset("mnist", root=tmp_path)
    assert (len(split.train), len(split.valid), len(split.test)) == (30, data.MNIST_VALID_SIZE, 20)
    train_images = torch.from_numpy(arrays[MNIST_FILES[0]].reshape(-1, 784).astype(np.float32) / 255)
    assert torch.equal(split.train.x, train_images[:30]) and torch.equal(split.valid.x, train_images[30:])
    assert split.test.y.tolist() == [i % 10 for i in range(20)] and split.test.y.dtype == torch.int64
    assert split.train.x.dtype == torch.float32 and len(split.sha256) == 64
    monkeypatch.setattr(data, "MNIST_CHECKSUMS", sha256s({**files, MNIST_FILES[0]: b"other"}))
    with pytest.raises(DataError, match="could not download train-images"):
        data.load_dataset("mnist", root=tmp_path)  # the cached file no longer matches, no mirror answers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mirrors": []}, "mirrors="),
        ({"mirrors": "http://x/"}, "mirrors="),
        ({"mirrors": ["ftp://x/"]}, "not an http"),
        ({"timeout": 0}, "timeout=0"),
        ({"timeout": float("nan")}, "timeout=nan"),
        ({"checksums": {}}, "checksums has no entry for train-images"),
    ],
)
def test_download_validates_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        data.download_mnist(tmp_path, **kwargs)


def test_mirror_override_from_the_environment(tmp_path: Path, server: Server, files: dict[str, bytes],
                                              monkeypatch: pytest.MonkeyPatch, dead_url: str) -> None:
    monkeypatch.setattr(data, "MIRRORS", (dead_url,))
    monkeypatch.setenv(data.MIRROR_ENV, f" {server.url} ,{dead_url}")
    assert data.mirrors_in_use() == (server.url, dead_url)
    paths = data.download_mnist(tmp_path, checksums=sha256s(files))
    assert {p.name for p in paths.values()} == set(MNIST_FILES)
    monkeypatch.delenv(data.MIRROR_ENV)
    assert data.mirrors_in_use() == (dead_url,)


def test_an_answer_larger_than_the_cap_is_refused(tmp_path: Path, server: Server, files: dict[str, bytes]) -> None:
    with pytest.raises(DataError, match=r"the answer has \d+ bytes, more than the 100 an MNIST file can have"):
        data.download_mnist(tmp_path, mirrors=[server.url], checksums=sha256s(files), max_bytes=100, rounds=1)
    assert not list(tmp_path.iterdir())


def test_stale_partial_files_are_swept(tmp_path: Path, server: Server, files: dict[str, bytes]) -> None:
    stale = tmp_path / f".{MNIST_FILES[0]}.abc123.tmp"
    stale.write_bytes(b"half a file")
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    data.download_mnist(tmp_path, mirrors=[server.url], checksums=sha256s(files))
    assert not stale.exists() and other.exists()


def test_rounds_retry_every_mirror_with_backoff(tmp_path: Path, server: Server, files: dict[str, bytes],
                                                dead_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    waits = []
    monkeypatch.setattr(data.time, "sleep", waits.append)
    server.fail.add(MNIST_FILES[0])
    real = server.files[MNIST_FILES[0]]

    def heal(seconds: float) -> None:  # the server recovers during the second wait
        waits.append(seconds)
        if len(waits) == 2:
            server.fail.discard(MNIST_FILES[0])
    monkeypatch.setattr(data.time, "sleep", heal)
    paths = data.download_mnist(tmp_path, mirrors=[dead_url, server.url], checksums=sha256s(files),
                                rounds=3, backoff=0.5)
    assert waits == [0.5, 1.0] and paths[MNIST_FILES[0]].read_bytes() == real
    assert server.requests.count(MNIST_FILES[0]) == 3
