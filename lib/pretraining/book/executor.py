"""Where a chapter's missing artifacts are computed: in its own process, or on a Dask cluster.

The ``executor`` parameter (every chapter has it; ``auto`` means ``$PRETRAINING_EXECUTOR`` when that is
set, else ``local``) takes one of

- ``local``: in the chapter's process, one after the other (the default);
- ``local-cluster:N``: a Dask cluster of N worker processes on this machine (127.0.0.1), started
  when the chapter first has something to compute and closed when it finishes; on a machine
  with GPUs worker i sees only GPU i mod (number of GPUs), so N = the number of GPUs puts one worker on
  each;
- ``dask://HOST:PORT``: the workers of an existing Dask scheduler (``dask scheduler`` on a GPU box,
  ``dask-jobqueue`` on Slurm; see the book's page on reproducing it).

The unit of work is one cached artifact (:meth:`pretraining.book.runtime.Chapter.cached_many`): the
chapter looks every artifact up, sends the computations of the missing ones (a function and what it
refers to, pickled by Dask) to the workers, and stores what they return (tensors, metadata and the
entries they loaded) in its own cache, atomically, as it arrives. A worker rebuilds the chapter from
its name and parameters (:func:`pretraining.book.runtime.worker_chapter`), so it loads the data set
itself and computes on its own device, with as many CPU threads as the chapter's process (float sums
depend on how a computation is split over threads: this is what makes its numbers a local run's).
The artifacts a computation loads (a pre-trained stack) are looked up in the cache folder at the same
path: shared on one machine and on a shared filesystem, otherwise the worker recomputes them (the same
numbers, more time). A worker that dies mid-task
(killed, out of memory) is replaced and its task is run again elsewhere by the scheduler; nothing is
stored until a task has returned, so no entry is ever half-written.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["EXECUTOR_ENV", "ExecutorError", "executor_problem", "resolve_executor", "open_executor",
           "DaskExecutor", "MAX_LOCAL_WORKERS"]

EXECUTOR_ENV = "PRETRAINING_EXECUTOR"
"""The executor of chapters whose ``executor`` parameter is ``auto``."""

MAX_LOCAL_WORKERS = 64
"""The most worker processes ``local-cluster:N`` may start."""

CONNECT_TIMEOUT_S = 10
"""How long to wait for a Dask scheduler to answer."""

_CLUSTER = re.compile(r"local-cluster:(\d+)")
_ADDRESS = re.compile(r"dask://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})")
_CHOICES = "'local', 'local-cluster:N' (N from 1 to 64) or 'dask://HOST:PORT' (an existing Dask scheduler)"
_ALLOWED = "'auto', " + _CHOICES


class ExecutorError(RuntimeError):
    """The executor cannot be used (no scheduler answers, a cluster does not start). One line."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of the full traceback: one line in the notebook.
        return [f"ExecutorError: {self}"]


def executor_problem(value: Any) -> str | None:
    """Why ``value`` is not an executor (one line naming it and what is allowed), or None."""
    if not isinstance(value, str):
        return f"executor={value!r} is not allowed; use {_ALLOWED}"
    if value in ("auto", "local") or _ADDRESS.fullmatch(value):
        if value.startswith("dask://") and not 0 < int(value.rsplit(":", 1)[1]) < 65536:
            return f"executor={value!r} is not allowed: the port must be 1..65535"
        return None
    m = _CLUSTER.fullmatch(value)
    if m and 1 <= int(m.group(1)) <= MAX_LOCAL_WORKERS:
        return None
    return f"executor={value!r} is not allowed; use {_ALLOWED}"


def resolve_executor(value: str) -> str:
    """The executor ``value`` stands for: ``auto`` is ``$PRETRAINING_EXECUTOR`` when set, else ``local``.
    Raises ValueError (one line) for a bad value, naming where it came from."""
    if value == "auto" and os.environ.get(EXECUTOR_ENV):
        value = os.environ[EXECUTOR_ENV]
        if value == "auto" or executor_problem(value):
            raise ValueError(f"{EXECUTOR_ENV}={value!r} is not allowed; use {_CHOICES}")
    problem = executor_problem(value)
    if problem:
        raise ValueError(problem)
    return "local" if value == "auto" else value


def open_executor(value: str) -> DaskExecutor | None:
    """The executor for a resolved ``value`` (:func:`resolve_executor`); None for ``local`` (the chapter
    computes in its own process). A ``dask://`` scheduler is reached now (:class:`ExecutorError` in one
    line when it does not answer); a local cluster is only started when there is work for it."""
    if value == "local":
        return None
    executor = DaskExecutor(value)
    if value.startswith("dask://"):
        executor.client()
    return executor


Task = Callable[[], Any]
OnResult = Callable[[int, Any, str], None]
"""on_result(i, result, where): task i finished with ``result``; ``where``: the workers and their devices."""


class DaskExecutor:
    """Tasks on a Dask cluster: ``local-cluster:N`` (started on first use) or ``dask://HOST:PORT``."""

    def __init__(self, name: str):
        self.name = name
        self._client = None
        self._cluster = None
        self._devices: dict[str, str] = {}

    def client(self):
        """The ``distributed.Client`` (connecting or starting the cluster on the first call)."""
        if self._client is not None:
            return self._client
        from distributed import Client

        if self.name.startswith("dask://"):
            host, port = self.name.removeprefix("dask://").rsplit(":", 1)
            _probe(host.strip("[]"), int(port), self.name)
            try:
                self._client = Client(f"tcp://{host}:{port}", timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ExecutorError(f"executor={self.name!r}: the Dask scheduler at {host}:{port} did not "
                                    f"answer ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        else:
            self._cluster = _local_cluster(int(self.name.split(":")[1]))
            self._client = Client(self._cluster, set_as_default=False)
        atexit.register(self.close)
        self._devices = {w: d for w, d in self._client.run(_worker_device).items()}
        if not self._devices:
            raise ExecutorError(f"executor={self.name!r}: the scheduler has no workers")
        return self._client

    def run(self, tasks: Sequence[Task], on_result: OnResult) -> None:
        """Run the tasks on the workers, calling ``on_result`` as each one finishes (in the order
        they finish). A task that raises cancels the others and its exception is raised here."""
        from distributed import as_completed

        client = self.client()
        futures = [client.submit(_call, task, pure=False) for task in tasks]
        order = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures, loop=client.loop):
                on_result(order[future.key], future.result(), self.where())
        except BaseException:
            client.cancel(futures)
            raise

    def where(self) -> str:
        """The workers and their devices, e.g. ``2 workers: cpu, cpu``."""
        live = self._client.scheduler_info(n_workers=-1)["workers"] if self._client is not None else {}
        for w in live:
            if w not in self._devices:  # a worker that replaced one that died
                self._devices.update(self._client.run(_worker_device, workers=[w]))
        devices = [self._devices.get(w, "?") for w in sorted(live)]
        return f"{len(devices)} worker{'s' * (len(devices) != 1)}: {', '.join(devices)}"

    def close(self) -> None:
        for thing in (self._client, self._cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing at exit: nothing left to do about it
                    pass
        self._client = self._cluster = None


def _call(task: Task) -> Any:
    return task()


def _worker_device() -> str:
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def _probe(host: str, port: int, name: str) -> None:
    """One line, fast, when nothing listens at host:port (before any work and before Dask's retries)."""
    t0 = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ExecutorError(f"executor={name!r}: no Dask scheduler answers at {host}:{port} "
                            f"({exc.strerror or type(exc).__name__} after {time.perf_counter() - t0:.1f} s); "
                            "start one (`dask scheduler`) or use executor 'local'") from None


def _local_cluster(n: int):
    """A Dask cluster of ``n`` single-task worker processes on 127.0.0.1 (see the module docstring)."""
    import dask
    import torch
    from distributed import Nanny, Scheduler, SpecCluster

    gpus = torch.cuda.device_count()
    workers = {}
    for i in range(n):
        env = {"CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else {}
        workers[f"worker-{i}"] = {"cls": Nanny, "options": {"nthreads": 1, "host": "127.0.0.1", "env": env,
                                                            "memory_limit": 0, "dashboard": False,
                                                            "silence_logs": logging.ERROR}}
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False}}
    # each task computes with the chapter's threads (worker_chapter): more threads than cores must
    # sleep when they wait, not spin
    passive = {}
    if n * torch.get_num_threads() > (os.cpu_count() or 1):
        passive = {"distributed.nanny.pre-spawn-environ.OMP_WAIT_POLICY": "PASSIVE"}
    try:
        with dask.config.set(passive):
            return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR, name=f"local-cluster:{n}")
    except Exception as exc:  # noqa: BLE001 - one line for whatever stopped it
        raise ExecutorError(f"executor='local-cluster:{n}': the cluster did not start "
                            f"({type(exc).__name__}: {exc})") from None
