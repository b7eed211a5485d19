"""Artifact cache: hits, keys, damaged entries, atomic writes, SIGKILL at any moment."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pretraining.store import ArtifactStore, atomic_write_bytes, canonical_json, source_hash

DATA = "ab" * 32


def _compute(calls, seed=0):
    def compute():
        calls.append(1)
        g = torch.Generator().manual_seed(seed)
        return ({"w": torch.randn(5, 3, generator=g), "b": torch.arange(4, dtype=torch.int64)},
                {"loss": [0.5, 0.25], "epochs": 2})
    return compute


def test_second_call_is_a_hit_with_identical_values(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    t1, m1 = store.get_or_compute("net", {"width": 5}, _compute(calls), data_sha256=DATA)
    t2, m2 = store.get_or_compute("net", {"width": 5}, _compute(calls), data_sha256=DATA)
    assert len(calls) == 1 and (store.hits, store.misses) == (1, 1)
    assert set(t1) == {"w", "b"} and torch.equal(t1["w"], t2["w"]) and torch.equal(t1["b"], t2["b"])
    assert t2["b"].dtype == torch.int64 and m1 == m2 == {"loss": [0.5, 0.25], "epochs": 2}
    # a fresh store object (another chapter, another process) hits too
    other = ArtifactStore(tmp_path)
    other.get_or_compute("net", {"width": 5}, _compute(calls), data_sha256=DATA)
    assert len(calls) == 1 and other.hits == 1


def test_key_depends_on_name_params_data_and_source(tmp_path):
    s = ArtifactStore(tmp_path, source="a")
    k = s.key("net", {"width": 5, "lr": 0.1}, data_sha256=DATA)
    assert k == s.key("net", {"lr": 0.1, "width": 5}, data_sha256=DATA)  # order-free
    assert k.startswith("net-")
    others = {
        s.key("net2", {"width": 5, "lr": 0.1}, data_sha256=DATA),
        s.key("net", {"width": 6, "lr": 0.1}, data_sha256=DATA),
        s.key("net", {"width": 5, "lr": 0.1}, data_sha256="cd" * 32),
        s.key("net", {"width": 5, "lr": 0.1}),
        ArtifactStore(tmp_path, source="b").key("net", {"width": 5, "lr": 0.1}, data_sha256=DATA),
    }
    assert k not in others and len(others) == 5


def test_source_hash_changes_with_library_files(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    h1 = source_hash(tmp_path)
    assert len(h1) == 64 and source_hash(tmp_path) == h1
    other = tmp_path / "copy"
    other.mkdir()
    (other / "a.py").write_text("x = 2\n")
    assert source_hash(other) != h1
    assert len(source_hash()) == 64  # the real library


def test_bad_inputs_raise_clear_errors(tmp_path):
    s = ArtifactStore(tmp_path)
    with pytest.raises(ValueError, match="name='a b' is not allowed"):
        s.key("a b", {})
    with pytest.raises(ValueError, match="data_sha256='xyz' is not allowed"):
        s.key("net", {}, data_sha256="xyz")
    with pytest.raises(ValueError, match=r"params\['lr'\] is nan"):
        s.key("net", {"lr": float("nan")})
    with pytest.raises(TypeError, match=r"params\['f'\] is <built-in function len> of type"):
        s.key("net", {"f": len})
    with pytest.raises(TypeError, match="expected \\(dict of tensors, dict of metadata\\)"):
        s.get_or_compute("net", {}, lambda: {"w": torch.zeros(1)})
    with pytest.raises(TypeError, match=r"tensors\['w'\] is list"):
        s.get_or_compute("net", {}, lambda: ({"w": [1.0]}, {}))
    with pytest.raises(ValueError, match="net metadata\\['loss'\\] is inf"):
        s.get_or_compute("net", {}, lambda: ({"w": torch.zeros(1)}, {"loss": float("inf")}))
    assert not list(tmp_path.iterdir())  # nothing written by failed computes


def test_canonical_json_is_canonical():
    assert canonical_json({"b": (1, 2), "a": torch.tensor([0.5])}) == '{"a":[0.5],"b":[1,2]}'
    assert canonical_json({"x": 1}) != canonical_json({"x": 1.0})


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "bad_manifest", "meta"])
def test_damaged_entry_is_recomputed_with_a_warning(tmp_path, damage):
    store, calls = ArtifactStore(tmp_path), []
    ref, _ = store.get_or_compute("net", {"w": 1}, _compute(calls))
    entry = store.path("net", {"w": 1})
    f = entry / "tensors.safetensors"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:-7])
    elif damage == "flip":
        b = bytearray(f.read_bytes()); b[-1] ^= 0xFF; f.write_bytes(bytes(b))
    elif damage == "no_manifest":
        (entry / "manifest.json").unlink()
    elif damage == "bad_manifest":
        (entry / "manifest.json").write_text("{not json")
    else:
        (entry / "meta.json").write_text('{"loss": [9]}')
    with pytest.warns(UserWarning, match="is damaged"):
        got, meta = store.get_or_compute("net", {"w": 1}, _compute(calls))
    assert len(calls) == 2 and torch.equal(got["w"], ref["w"]) and meta["epochs"] == 2
    again, _ = ArtifactStore(tmp_path).get_or_compute("net", {"w": 1}, _compute(calls))
    assert len(calls) == 2 and torch.equal(again["w"], ref["w"])  # repaired: a hit now


def test_no_temporary_files_left_and_clear(tmp_path):
    store = ArtifactStore(tmp_path)
    for w in range(3):
        store.get_or_compute("net", {"w": w}, _compute([]))
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["net"] * 3
    assert not [p for p in tmp_path.rglob("*") if "tmp" in p.name]
    assert sorted(p.name for p in next(tmp_path.iterdir()).iterdir()) == [
        "manifest.json", "meta.json", "tensors.safetensors"]
    n, size = store.clear()
    assert n == 3 and size > 0 and not list(tmp_path.iterdir())


def test_atomic_write_bytes(tmp_path):
    p = tmp_path / "sub" / "r.json"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two" and [x.name for x in p.parent.iterdir()] == ["r.json"]


def test_device_argument_moves_tensors(tmp_path):
    t, _ = ArtifactStore(tmp_path).get_or_compute("net", {}, _compute([]), device="cpu")
    assert t["w"].device.type == "cpu"


# -- crashes: a subprocess writes an entry and is killed with SIGKILL ----------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import torch
    from pretraining import store as S

    root, mode, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if mode == "replace":      # die at the n-th os.replace (the commit of the entry)
        real, count = os.replace, [0]
        def replace(a, b):
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            real(a, b)
        S.os.replace = replace
    if mode == "write":        # die after the n-th file of the entry was written
        real_fsync, count = S._fsync, [0]
        def fsync(p):
            real_fsync(p)
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        S._fsync = fsync

    def compute():
        if mode == "sleep":
            Path(root, "started").write_text("x")
            time.sleep(600)  # killed long before
        g = torch.Generator().manual_seed(7)
        return {"w": torch.randn(300, 200, generator=g)}, {"seed": 7}

    store = S.ArtifactStore(root / "cache")
    t, m = store.get_or_compute("big", {"seed": 7}, compute)
    print(store.hits, store.misses, float(t["w"].sum()), m["seed"])
""")


def _child(tmp_path, mode, n=0, wait=True):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    args = [sys.executable, str(script), str(tmp_path), mode, str(n)]
    if not wait:
        return subprocess.Popen(args)
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    out = _child(d, "none")
    assert out.returncode == 0, out.stderr
    hits, misses, total, seed = out.stdout.split()
    return float(total)


def _rerun_matches(tmp_path, reference, check_hit=False):
    out = _child(tmp_path, "none")
    assert out.returncode == 0, out.stderr
    hits, misses, total, seed = out.stdout.split()
    assert (int(hits), int(misses)) == (0, 1) and float(total) == reference
    cache = tmp_path / "cache"
    assert [p.name.split("-")[0] for p in cache.iterdir()] == ["big"]  # stale temp folder swept
    if not check_hit:
        return
    again = _child(tmp_path, "none")
    assert again.stdout.split()[:2] == ["1", "0"] and float(again.stdout.split()[2]) == reference


def test_sigkill_mid_compute_then_rerun_completes(tmp_path, reference):
    proc = _child(tmp_path, "sleep", wait=False)
    deadline = time.monotonic() + 180  # generous: the CPUs may be busy
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not (tmp_path / "cache").exists() or not any(
        p.name.startswith("big-") for p in (tmp_path / "cache").iterdir())
    _rerun_matches(tmp_path, reference, check_hit=True)


# kill after the tensors file, after the manifest, and just before the entry is renamed into place
@pytest.mark.parametrize("mode, n", [("write", 1), ("write", 3), ("replace", 1)])
def test_sigkill_while_writing_leaves_nothing_usable(tmp_path, reference, mode, n):
    out = _child(tmp_path, mode, n)
    assert out.returncode == -signal.SIGKILL
    cache = tmp_path / "cache"
    assert not any(p.name.startswith("big-") for p in cache.iterdir())
    assert any(p.name.startswith(".tmp-") for p in cache.iterdir())  # killed mid-write
    _rerun_matches(tmp_path, reference)


def test_manifest_records_both_files(tmp_path):
    """A complete entry's manifest records the checksums of both files."""
    store = ArtifactStore(tmp_path)
    store.get_or_compute("net", {}, _compute([]))
    manifest = json.loads((store.path("net", {}) / "manifest.json").read_text())
    assert set(manifest["files"]) == {"tensors.safetensors", "meta.json"}
    assert all(len(r["sha256"]) == 64 for r in manifest["files"].values())
