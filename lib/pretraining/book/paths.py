"""Where the book is: its root folder (the one with ``_toc.yml``) and its build folder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BUILD_DIR_ENV", "RUN_DIR_ENV", "RUN_ID_ENV", "BUILD_FOLDERS", "find_root", "build_dir", "results_dir"]

BUILD_DIR_ENV = "PRETRAINING_BUILD_DIR"
"""Set by ``python -m pretraining run`` for the kernels it starts."""
RUN_DIR_ENV = "PRETRAINING_RUN_DIR"
"""Set by ``run`` for a chapter's kernel: the private folder its results are written to until the
chapter has succeeded and the CLI publishes them (unset for plain papermill: results go straight to
``<build>/results``)."""
RUN_ID_ENV = "PRETRAINING_RUN_ID"
"""Set by ``run``: the id of this execution, recorded in the results and the executed notebook."""
BUILD_FOLDERS = ("executed", "results", "running", "failed", "cache", "html")
"""The folders of a build folder (each must be a folder, not a file)."""


def find_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _toc.yml found in {here} or above; run from inside the book")


def build_dir() -> Path:
    """``$PRETRAINING_BUILD_DIR`` if set, else ``<repo root>/_build`` (so plain papermill works too)."""
    env = os.environ.get(BUILD_DIR_ENV)
    return Path(env).resolve() if env else find_root() / "_build"


def results_dir(build: str | Path | None = None) -> Path:
    """The folder of the chapters' results JSON files."""
    return Path(build or build_dir()) / "results"
