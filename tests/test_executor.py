"""Executors (:mod:`pretraining.book.executor`): the values they may take, a scheduler that does not
answer (one line, before any work), and chapter 3's artifacts computed on a Dask cluster of worker
processes on 127.0.0.1: the same entries, byte for byte, as computed in the chapter's process, also
when a worker is killed in the middle of its task. Every cluster here is local and closed by the test."""

import os
import signal
import socket
import threading
import time

import pytest

from pretraining.book import executor as ex
from pretraining.book.cache import _MANIFEST, _TENSORS
from pretraining.book.runtime import Chapter
from pretraining.book.specs import ParameterError
from pretraining.chapters import ch03_depth_study as ch03

pytestmark = pytest.mark.slow

TINY = {"n_seeds": 2, "depths": [1, 2], "width": 8, "rbm_epochs": 1, "dae_epochs": 1, "finetune_epochs": 2,
        "finetune_patience": 1, "finetune_max_extensions": 1, "finetune_select_seeds": 1, "member_chunk": 2,
        "stream_examples": 200}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _values(**changed) -> dict:
    return ch03.SPEC.check({**ch03.SPEC.defaults(), **TINY, "device": "cpu", **changed})


@pytest.mark.parametrize("value, ok", [
    ("auto", True), ("local", True), ("local-cluster:1", True), ("local-cluster:64", True),
    ("dask://127.0.0.1:8786", True), ("dask://gpu-box.lab:8786", True), ("dask://[::1]:8786", True),
    ("local-cluster:0", False), ("local-cluster:65", False), ("local-cluster", False), ("dask://host", False),
    ("dask://host:0", False), ("dask://host:70000", False), ("tcp://host:8786", False), ("", False), (2, False)])
def test_executor_values(value, ok):
    problem = ex.executor_problem(value)
    assert (problem is None) == ok
    if not ok:
        assert problem.startswith(f"executor={value!r} is not allowed") and "\n" not in problem


def test_auto_is_the_environment_variable_else_local(monkeypatch):
    monkeypatch.delenv(ex.EXECUTOR_ENV, raising=False)
    assert ex.resolve_executor("auto") == "local"
    monkeypatch.setenv(ex.EXECUTOR_ENV, "local-cluster:3")
    assert ex.resolve_executor("auto") == "local-cluster:3"
    assert ex.resolve_executor("local") == "local"  # a value given explicitly wins
    for bad in ("auto", "cluster"):
        monkeypatch.setenv(ex.EXECUTOR_ENV, bad)
        with pytest.raises(ValueError, match=rf"^PRETRAINING_EXECUTOR='{bad}' is not allowed; use 'local'"):
            ex.resolve_executor("auto")


def test_a_chapter_refuses_a_bad_executor_in_one_line(monkeypatch):
    with pytest.raises(ParameterError, match=r"^executor='local-cluster:0' is not allowed"):
        ch03.start({**ch03.SPEC.defaults(), **TINY, "executor": "local-cluster:0"})
    monkeypatch.setenv(ex.EXECUTOR_ENV, "nope")
    with pytest.raises(ParameterError, match=r"^PRETRAINING_EXECUTOR='nope' is not allowed"):
        ch03.start({**ch03.SPEC.defaults(), **TINY})


def test_a_scheduler_that_does_not_answer_is_one_line_before_any_work(tmp_path):
    port = _free_port()
    t0 = time.perf_counter()
    with pytest.raises(ex.ExecutorError) as info:
        Chapter(ch03.SPEC, _values(executor=f"dask://127.0.0.1:{port}"), tmp_path)
    assert time.perf_counter() - t0 < ex.CONNECT_TIMEOUT_S
    msg = str(info.value)
    assert msg.startswith(f"executor='dask://127.0.0.1:{port}': no Dask scheduler answers at 127.0.0.1:{port}")
    assert "\n" not in msg
    assert not (tmp_path / "cache").exists()


def _chapter(build, executor: str) -> Chapter:
    return Chapter(ch03.SPEC, _values(executor=executor), build)


def _entries(build) -> dict[str, tuple[bytes, list[str]]]:
    """{entry folder: (its tensors file, the inputs its manifest names)} of a build's cache."""
    import json

    out = {}
    for entry in sorted((build / "cache").iterdir()):
        if not entry.name.startswith("."):
            out[entry.name] = ((entry / _TENSORS).read_bytes(), json.loads((entry / _MANIFEST).read_text())["inputs"])
    return out


def _study(ch: Chapter):
    study = ch03.make_study(ch, progress=False)
    settings = study.run_all()
    streams = study.streams(["random", "rbm"], n_examples=200, batch_size=50, stream_seed=0)
    return ({i: {d: (r.test_error, r.selection) for d, r in per.items()} for i, per in settings.items()},
            {i: (r.test_error, r.lr) for i, r in streams.items()})


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    build = tmp_path_factory.mktemp("local")
    return _study(_chapter(build, "local")), _entries(build)


def test_a_local_cluster_computes_the_same_artifacts_as_the_chapters_process(tmp_path, local_run):
    (numbers, entries) = local_run
    ch = _chapter(tmp_path, "local-cluster:2")
    try:
        assert _study(ch) == numbers
        where = ch.executor.where()
    finally:
        ch.executor.close()
    assert where.startswith("2 workers: cpu")
    got = _entries(tmp_path)
    assert got.keys() == entries.keys()  # the same keys (folder names hash them)
    assert all(got[k][0] == entries[k][0] for k in got)  # the same tensors, byte for byte
    rbm = [k for k in got if k.startswith("depthstudy_rbm_")]
    assert rbm and all(any(i.startswith("rbm_stack-") for i in got[k][1]) for k in rbm)  # inputs recorded there
    # a second run finds everything: nothing is computed, so no cluster is started
    again = _chapter(tmp_path, "local-cluster:2")
    assert _study(again) == numbers
    assert again.store.misses == 0 and again.executor._client is None


def test_a_worker_killed_mid_task_is_replaced_and_the_artifacts_are_the_same(tmp_path, local_run):
    (numbers, entries) = local_run
    ch = _chapter(tmp_path, "local-cluster:2")
    client = ch.executor.client()
    pids = client.run(os.getpid)
    killed: list[str] = []

    def kill_the_first_busy_worker():
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline and not killed:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                time.sleep(0.3)  # into its task
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_busy_worker, daemon=True)
    killer.start()
    try:
        assert _study(ch) == numbers
    finally:
        killer.join(timeout=5)
        ch.executor.close()
    assert killed, "no worker was ever busy"
    got = _entries(tmp_path)
    assert got.keys() == entries.keys() and all(got[k][0] == entries[k][0] for k in got)
    assert all(ch.store.lookup(e.key) is not None for e in ch.store.entries())  # every entry whole


def test_an_existing_scheduler_by_its_address(tmp_path, local_run):
    """Workers started with Dask's defaults (one OpenMP thread each) compute with the chapter's threads."""
    from distributed import LocalCluster

    (numbers, entries) = local_run
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        port = int(cluster.scheduler_address.rsplit(":", 1)[1])
        executor = ex.open_executor(f"dask://127.0.0.1:{port}")
        try:
            got: dict[int, int] = {}
            executor.run([lambda: 6 * 7, lambda: 2 ** 10], lambda i, r, where: got.__setitem__(i, r))
            assert got == {0: 42, 1: 1024}
            assert executor.where() == "2 workers: cpu, cpu"
        finally:
            executor.close()
        ch = _chapter(tmp_path, f"dask://127.0.0.1:{port}")
        try:
            assert _study(ch) == numbers
        finally:
            ch.executor.close()
    got = _entries(tmp_path)
    assert got.keys() == entries.keys() and all(got[k][0] == entries[k][0] for k in got)
