"""Artifact cache: hits, full keys, code dependencies, refused entries, atomic writes, SIGKILL, ls/why/gc."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from pretraining.book.cache import ArtifactStore, canonical_json, key_differences
from pretraining.core.files import atomic_write_bytes

DATA = "ab" * 32


def _compute(calls, seed=0):
    def compute():
        calls.append(1)
        g = torch.Generator().manual_seed(seed)
        return ({"w": torch.randn(5, 3, generator=g), "b": torch.arange(4, dtype=torch.int64)},
                {"loss": [0.5, 0.25], "epochs": 2})
    return compute


def _get(store, name, params, calls, **kw):
    return store.get_or_compute(name, params, _compute(calls), version=kw.pop("version", 1), **kw)


def test_second_call_is_a_hit_with_identical_values(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    t1, m1 = _get(store, "net", {"width": 5}, calls, data_sha256=DATA)
    t2, m2 = _get(store, "net", {"width": 5}, calls, data_sha256=DATA)
    assert len(calls) == 1 and (store.hits, store.misses) == (1, 1)
    assert set(t1) == {"w", "b"} and torch.equal(t1["w"], t2["w"]) and torch.equal(t1["b"], t2["b"])
    assert t2["b"].dtype == torch.int64 and m1 == m2 == {"loss": [0.5, 0.25], "epochs": 2}
    # a fresh store object (another chapter, another process) hits too
    other = ArtifactStore(tmp_path)
    _get(other, "net", {"width": 5}, calls, data_sha256=DATA)
    assert len(calls) == 1 and other.hits == 1
    assert [lk["hit"] for lk in store.lookups] == [False, True]


def test_key_depends_on_name_version_params_data_and_code(tmp_path):
    s = ArtifactStore(tmp_path)
    c = _compute([])
    k = s.key("net", {"width": 5, "lr": 0.1}, c, version=1, data_sha256=DATA)
    assert s.folder_name(k) == s.folder_name(s.key("net", {"lr": 0.1, "width": 5}, c, version=1, data_sha256=DATA))
    assert s.folder_name(k).startswith("net-")
    assert any(part.endswith("test_cache.py:_compute") for part in k["code"])  # the code compute lives in
    others = {s.folder_name(x) for x in (
        s.key("net2", {"width": 5, "lr": 0.1}, c, version=1, data_sha256=DATA),
        s.key("net", {"width": 6, "lr": 0.1}, c, version=1, data_sha256=DATA),
        s.key("net", {"width": 5, "lr": 0.1}, c, version=2, data_sha256=DATA),
        s.key("net", {"width": 5, "lr": 0.1}, c, version=1, data_sha256="cd" * 32),
        s.key("net", {"width": 5, "lr": 0.1}, c, version=1),
        {**k, "code": {**k["code"], "pretraining/core/train.py": "0" * 64}},
    )}
    assert s.folder_name(k) not in others and len(others) == 6


def test_bad_inputs_raise_clear_errors(tmp_path):
    s, c = ArtifactStore(tmp_path), _compute([])
    with pytest.raises(ValueError, match="name='a b' is not allowed"):
        s.key("a b", {}, c, version=1)
    with pytest.raises(ValueError, match="version=0 is not allowed"):
        s.key("net", {}, c, version=0)
    with pytest.raises(ValueError, match="data_sha256='xyz' is not allowed"):
        s.key("net", {}, c, version=1, data_sha256="xyz")
    with pytest.raises(ValueError, match=r"params\['lr'\] is nan"):
        s.key("net", {"lr": float("nan")}, c, version=1)
    with pytest.raises(TypeError, match=r"params\['f'\] is <built-in function len> of type"):
        s.key("net", {"f": len}, c, version=1)
    with pytest.raises(TypeError, match="expected \\(dict of tensors, dict of metadata\\)"):
        s.get_or_compute("net", {}, lambda: {"w": torch.zeros(1)}, version=1)
    with pytest.raises(TypeError, match=r"tensors\['w'\] is list"):
        s.get_or_compute("net", {}, lambda: ({"w": [1.0]}, {}), version=1)
    with pytest.raises(ValueError, match="net metadata\\['loss'\\] is inf"):
        s.get_or_compute("net", {}, lambda: ({"w": torch.zeros(1)}, {"loss": float("inf")}), version=1)
    assert not list(tmp_path.iterdir())  # nothing written by failed computes


def test_compute_defined_outside_a_library_file_is_refused(tmp_path):
    """A function whose code is not in its module's file (as in a notebook cell) cannot be keyed."""
    namespace = {"__name__": __name__}
    exec(compile("def compute():\n    return {}, {}\n", "<notebook cell>", "exec"), namespace)
    with pytest.raises(ValueError, match="not defined in a library module .*notebook cell"):
        ArtifactStore(tmp_path).get_or_compute("net", {}, namespace["compute"], version=1)


def test_canonical_json_is_canonical():
    assert canonical_json({"b": (1, 2), "a": torch.tensor([0.5])}) == '{"a":[0.5],"b":[1,2]}'
    assert canonical_json({"x": 1}) != canonical_json({"x": 1.0})


def _entry(store, name, params, compute, version=1):
    return store.root / store.folder_name(store.key(name, params, compute, version=version))


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "bad_manifest", "meta"])
def test_damaged_entry_is_recomputed_with_a_warning(tmp_path, damage):
    store, calls = ArtifactStore(tmp_path), []
    ref, _ = _get(store, "net", {"w": 1}, calls)
    entry = _entry(store, "net", {"w": 1}, _compute(calls))
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
    with pytest.warns(UserWarning, match="is refused"):
        got, meta = _get(store, "net", {"w": 1}, calls)
    assert len(calls) == 2 and torch.equal(got["w"], ref["w"]) and meta["epochs"] == 2
    again, _ = _get(ArtifactStore(tmp_path), "net", {"w": 1}, calls)
    assert len(calls) == 2 and torch.equal(again["w"], ref["w"])  # repaired: a hit now


def test_swapped_entries_are_refused_not_loaded_as_each_other(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    a, _ = _get(store, "net", {"seed": 1}, calls)
    b, _ = store.get_or_compute("net", {"seed": 2}, _compute(calls, seed=2), version=1)
    ea, eb = _entry(store, "net", {"seed": 1}, _compute([])), _entry(store, "net", {"seed": 2}, _compute([]))
    tmp = tmp_path / "swap"
    ea.rename(tmp)
    eb.rename(ea)
    tmp.rename(eb)
    with pytest.warns(UserWarning, match="holds another key"):
        again, _ = _get(store, "net", {"seed": 1}, calls)
    assert len(calls) == 3 and torch.equal(again["w"], a["w"]) and not torch.equal(again["w"], b["w"])


def test_no_temporary_files_left_and_clear(tmp_path):
    store = ArtifactStore(tmp_path)
    for w in range(3):
        _get(store, "net", {"w": w}, [])
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["net"] * 3
    assert not [p for p in tmp_path.rglob("*") if "tmp" in p.name]
    assert sorted(p.name for p in next(tmp_path.iterdir()).iterdir()) == [
        "manifest.json", "meta.json", "tensors.safetensors"]
    store.write_index("01_a", "quick")
    n, size = store.clear()
    assert n == 3 and size > 0 and not list(tmp_path.iterdir())


def test_atomic_write_bytes(tmp_path):
    p = tmp_path / "sub" / "r.json"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two" and [x.name for x in p.parent.iterdir()] == ["r.json"]


def test_device_argument_moves_tensors(tmp_path):
    t, _ = _get(ArtifactStore(tmp_path), "net", {}, [], device="cpu")
    assert t["w"].device.type == "cpu"


def test_index_ls_why_and_gc(tmp_path):
    old = ArtifactStore(tmp_path)
    _get(old, "net", {"epochs": 20, "width": 5}, [])
    _get(old, "other", {}, [])
    old.write_index("03_depth", "quick")
    new = ArtifactStore(tmp_path)
    _get(new, "net", {"epochs": 30, "width": 5}, [])  # a miss: the epochs changed
    new.write_index("03_depth", "quick")               # the latest run of 03_depth replaces the old index
    assert len(new.entries()) == 3
    why = new.why("net")
    assert why[0].startswith("net in 03_depth (quick): miss; what differs from the nearest stored entry:")
    assert why[1:] == ["    params.epochs: 20 -> 30"]
    used = new.used_by()
    assert list(used.values()) == [["03_depth (quick)"]]
    n, size = new.gc()
    assert n == 2 and size > 0 and [e.name for e in new.entries()] == ["net"]
    assert ArtifactStore(tmp_path).why("other")[0].startswith("other: no finished chapter run looked it up")


def _outer(store, calls):
    def compute():
        inner, _ = _get(store, "stack", {}, calls)  # an artifact computed from another one
        return {"w": inner["w"] * 2}, {}
    return compute


def test_an_entry_remembers_its_inputs_so_a_hit_keeps_them(tmp_path):
    first, calls = ArtifactStore(tmp_path), []
    first.get_or_compute("net", {}, _outer(first, calls), version=1)
    first.write_index("03_depth", "quick")
    second = ArtifactStore(tmp_path)
    second.get_or_compute("net", {}, _outer(second, calls), version=1)  # a hit: the stack is not looked up
    assert [lk["name"] for lk in second.lookups] == ["net"] and len(calls) == 1
    second.write_index("03_depth", "quick")
    stack = next(e for e in second.entries() if e.name == "stack").path.name
    assert second.lookups[0]["inputs"] == [stack] and second.used_by()[stack] == ["03_depth (quick)"]
    assert second.gc() == (0, 0) and len(second.entries()) == 2


def test_key_differences_names_each_changed_leaf():
    a = {"params": {"lr": 0.1, "sizes": [5]}, "code": {"pretraining/core/train.py": "1", "x.py:f": "2"}}
    b = {"params": {"lr": 0.2, "sizes": [5]}, "code": {"pretraining/core/train.py": "9"}}
    assert key_differences(b, a) == ["code[pretraining/core/train.py]: changed", "code[x.py:f]: gone (only in the stored entry)",
                                     "params.lr: 0.1 -> 0.2"]


# -- crashes: a subprocess writes an entry and is killed with SIGKILL ----------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import torch
    from pretraining.book import cache as S

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
    t, m = store.get_or_compute("big", {"seed": 7}, compute, version=1)
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
    _get(store, "net", {}, [])
    manifest = json.loads((_entry(store, "net", {}, _compute([])) / "manifest.json").read_text())
    assert set(manifest["files"]) == {"tensors.safetensors", "meta.json"}
    assert manifest["key"]["name"] == "net" and manifest["key"]["version"] == 1 and manifest["key"]["code"]
    assert all(len(r["sha256"]) == 64 for r in manifest["files"].values())
