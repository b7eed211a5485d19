"""Cache keys hold only the library code a result depends on: edits elsewhere keep every entry.

The real library is copied to a temporary folder, edited there, and imported in a fresh process;
the code digests of real artifact computations (the shared stack pre-training and each chapter's
``run``, which encloses the chapter's compute closures) are compared before and after the edit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pretraining.book import codehash

LIB = Path(__file__).resolve().parents[1] / "lib" / "pretraining"
CHAPTERS = sorted(p.stem for p in (LIB / "chapters").glob("ch*.py"))

PROBE = """
import json, sys
from pretraining.book import codehash
from pretraining.book import experiments
import importlib
out = {"stack": codehash.digest(codehash.dependencies(experiments.pretrained_stack))}
for name in sys.argv[1:]:
    module = importlib.import_module("pretraining.chapters." + name)
    out[name] = codehash.digest(codehash.dependencies(module.run))
print(json.dumps(out))
"""


def _digests(lib_parent: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(lib_parent)}
    r = subprocess.run([sys.executable, "-c", PROBE, *CHAPTERS], capture_output=True, text=True,
                       env=env, timeout=300, cwd=lib_parent)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    parent = tmp_path_factory.mktemp("lib")
    shutil.copytree(LIB, parent / "pretraining", ignore=shutil.ignore_patterns("__pycache__"))
    return parent


@pytest.fixture(scope="module")
def before(copy):
    return _digests(copy)


def _edit(copy: Path, rel: str, old: str, new: str) -> str:
    path = copy / "pretraining" / rel
    text = path.read_text()
    assert old in text, f"{rel}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))
    return text


def test_every_chapter_run_has_code_dependencies(before):
    assert set(before) == {"stack", *CHAPTERS} and all(re.fullmatch("[0-9a-f]{64}", v) for v in before.values())


@pytest.mark.parametrize("rel, old, new", [
    # a figure module: colours, sizes, a new function
    ("analysis/figures.py", '"figure.dpi": 110,', '"figure.dpi": 144,'),
    ("analysis/figures.py", "def use_style() -> None:", "def added_figure() -> None:\n    return None\n\n\ndef use_style() -> None:"),
    # a docstring and a comment of the training core
    ("core/train.py", '"""Supervised fine-tuning of ``clf`` in place', '"""(Edited docstring.) Supervised fine-tuning of ``clf`` in place'),
    ("core/train.py", "EVAL_EXAMPLES = 1000  #", "EVAL_EXAMPLES = 1000  # an edited comment;"),
    # the book machinery and the CLI
    ("book/cli.py", 'help="stream the notebooks\' outputs")', 'help="stream the outputs of the notebooks")'),
    ("book/runtime.py", '"wall time s": round(time.perf_counter() - self._t0, 1)', '"wall time s": round(time.perf_counter() - self._t0, 2)'),
    ("book/specs.py", '"auto, cpu, cuda or mps"', '"auto, cpu, cuda or mps (edited help)"'),
    # a section (figure) function of a chapter module
    ("chapters/ch01_pretraining.py", 'title=f"{name} stack, first layer', 'title=f"{name}: first layer'),
])
def test_edits_outside_the_numeric_code_keep_every_key(copy, before, rel, old, new):
    original = _edit(copy, rel, old, new)
    try:
        assert _digests(copy) == before
    finally:
        (copy / "pretraining" / rel).write_text(original)


def test_editing_the_training_core_changes_what_uses_it(copy, before):
    original = _edit(copy, "core/train.py", "EVAL_EXAMPLES = 1000", "EVAL_EXAMPLES = 999")
    try:
        after = _digests(copy)
    finally:
        (copy / "pretraining" / "core/train.py").write_text(original)
    assert after["stack"] != before["stack"]
    assert all(after[c] != before[c] for c in CHAPTERS)  # every chapter trains through core.train


def test_editing_one_chapters_compute_changes_only_that_chapter(copy, before):
    rel = "chapters/ch01_pretraining.py"
    original = _edit(copy, rel, 'steps = sorted({s for s in (1, 10, 100,', 'steps = sorted({s for s in (1, 10, 50, 100,')
    try:
        after = _digests(copy)
    finally:
        (copy / "pretraining" / rel).write_text(original)
    assert after["ch01_pretraining"] != before["ch01_pretraining"]
    assert {k: v for k, v in after.items() if k != "ch01_pretraining"} == \
        {k: v for k, v in before.items() if k != "ch01_pretraining"}


def test_dependencies_follow_names_not_annotations_and_strip_docstrings(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text("SCALE = 2\n\ndef double(x):\n    return SCALE * x\n")
    (pkg / "plots.py").write_text("def draw():\n    return 'red'\n")
    (pkg / "chapter.py").write_text(
        "from __future__ import annotations\n\nfrom . import plots\nfrom .core import double\n\n"
        "LIMIT = 3\n\n"
        "def helper(x):\n    '''A docstring.'''\n    return double(x) + LIMIT\n\n"
        "def run(ch: plots.Unused = None):\n    def compute():\n        return helper(1)\n    return compute\n\n"
        "def figure():\n    return plots.draw()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    chapter = importlib.import_module("fakepkg.chapter")
    deps = codehash.dependencies(chapter.run())
    assert sorted(deps) == ["fakepkg/chapter.py:LIMIT", "fakepkg/chapter.py:helper", "fakepkg/chapter.py:run",
                            "fakepkg/core.py"]
    assert codehash.dependencies(chapter.figure) .keys() >= {"fakepkg/plots.py"}
