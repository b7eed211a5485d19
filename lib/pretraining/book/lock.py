"""One process at a time on a build folder: ``run``, ``build`` and ``cache gc|clear`` take its lock.

The lock is ``<build>/.lock``, held with ``fcntl.flock`` for as long as the command runs; the
operating system releases it when the process ends, however it ends, so the lock of a killed process
is simply taken over by the next command. The file records who holds it, for the message a second
command gets.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BuildLocked", "build_lock"]


class BuildLocked(Exception):
    """Another process holds the build folder; the message says which."""


@contextmanager
def build_lock(build: Path, command: str):
    """Hold ``<build>/.lock`` for the ``with`` block, or raise :class:`BuildLocked` at once."""
    build.mkdir(parents=True, exist_ok=True)
    path = build / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                who = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                who = {}
            raise BuildLocked(
                f"the build folder {build} is in use by `{who.get('command', 'another command')}` "
                f"(pid {who.get('pid', '?')}, since {who.get('since', '?')}); wait for it to finish or "
                "stop it") from None
        record = {"pid": os.getpid(), "command": command, "argv": sys.argv,
                  "since": _dt.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
