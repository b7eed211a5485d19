"""The chapter notebooks tell the story and the chapter modules do the work; the profiles check out."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pretraining.book.specs import load_spec

ROOT = Path(__file__).resolve().parents[1]
TOC_CHAPTERS = [entry["file"] for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
                for entry in part["chapters"] if entry["file"].startswith("chapters/")]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
NOTEBOOKS = CHAPTERS + [ROOT / "summary.ipynb"]


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_every_toc_chapter_exists_and_has_a_module() -> None:
    missing = [f for f in TOC_CHAPTERS if not (ROOT / f"{f}.ipynb").is_file()]
    assert not missing, f"chapters listed in _toc.yml but not written: {missing}"
    for f in TOC_CHAPTERS:
        stem = Path(f).name
        assert (ROOT / "lib" / "pretraining" / "chapters" / f"ch{stem}.py").is_file()
        assert load_spec(stem).name == stem


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_source_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
    assert nb["metadata"]["kernelspec"]["name"] == "pretraining"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_parameters_cell_is_the_spec(path: Path) -> None:
    code = _code_cells(path)
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
    assert "".join(code[0]["source"]).strip() == load_spec(path.stem).parameters_cell(), \
        f"{path.name}: the parameters cell differs from its module's SPEC; run: python -m pretraining sync-params"


def _is_story_call(node: ast.AST) -> bool:
    """``chapter.f(a, b, ...)`` with names or constants as arguments (``globals()`` allowed)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "chapter"):
        return False
    args = [*node.args, *(k.value for k in node.keywords)]
    return all(isinstance(a, (ast.Name, ast.Constant))
               or (isinstance(a, ast.Call) and isinstance(a.func, ast.Name) and a.func.id == "globals" and not a.args)
               for a in args)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_notebook_code_only_calls_its_chapter_module(path: Path) -> None:
    """No compute function, verdict rule, statistic or sentence builder lives in a notebook."""
    code = _code_cells(path)[1:]
    first = "".join(code[0]["source"])
    assert f"from pretraining.chapters import ch{path.stem} as chapter" in first, \
        f"{path.name}: the first code cell after the parameters must import its chapter module as `chapter`"
    assert "ch = chapter.start(globals())" in first, f"{path.name}: ... and call ch = chapter.start(globals())"
    for cell in code:
        for node in ast.parse("".join(cell["source"])).body:
            ok = (isinstance(node, (ast.Import, ast.ImportFrom))
                  or (isinstance(node, ast.Expr) and _is_story_call(node.value))
                  or (isinstance(node, ast.Assign) and len(node.targets) == 1
                      and isinstance(node.targets[0], ast.Name) and _is_story_call(node.value)))
            assert ok, f"{path.name}: `{ast.unparse(node)}` is logic; move it into lib/pretraining/chapters/ch{path.stem}.py"
    assert "".join(code[-1]["source"]).strip() == "chapter.finish(ch, res)", f"{path.name}: the last code cell must be chapter.finish(ch, res)"


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_every_profile_checks_without_running(profile: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PRETRAINING_BUILD_DIR"}
    r = subprocess.run([sys.executable, "-m", "pretraining", "run", "--profile", profile, "--check",
                        "--root", str(ROOT), "--build-dir", "/nonexistent/never-used"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert f"profile {profile}: the parameters of {len(TOC_CHAPTERS)} chapter(s) are valid" in r.stdout


OLD_NAMES = ("rbm_rate", "rbm_layer_lr", "rbm_layer_epochs", "rbm_batch_size", "pretrain_batch", "pretrain_lr",
             "dae_rate", "dae_masking", "n_nets", "pretrain_hidden_sizes", "pretrain_epochs", "finetune_rates",
             "finetune_batch", "stream_rate", "stream_batch", "stream_lr")


def test_the_old_parameter_names_appear_nowhere() -> None:
    files = [*ROOT.glob("lib/pretraining/**/*.py"), *CHAPTERS, *ROOT.glob("params/*.yaml"), ROOT / "README.md",
             *ROOT.glob("*.md"), *ROOT.glob("tests/*.py"), *ROOT.glob("bench/*.py")]
    pattern = re.compile(r"\b(" + "|".join(OLD_NAMES) + r")\b")
    this = Path(__file__).resolve()
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in files if p.resolve() != this
             for m in pattern.finditer(p.read_text())]
    assert not found, "old parameter names: " + ", ".join(found)


_FIGURE = re.compile(r"```\{glue:figure\} +(\S+)\n((?::[a-z]+:[^\n]*\n)*)\n?(.*?)```", re.S)
KEY_RESULT_BOX = "```{admonition} Key result\n:class: tip key-result\n{glue:text}`key_result`\n```"


def _markdown(path: Path) -> str:
    return "\n\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_is_numbered_captioned_and_described(path: Path) -> None:
    """Each {glue:figure} has a :name: (its number and cross-reference), a real :alt: text and a caption."""
    text = _markdown(path)
    found = _FIGURE.findall(text)
    assert len(found) == text.count("{glue:figure}"), f"{path.name}: a glue:figure directive is malformed"
    for key, options, caption in found:
        opts = dict(re.findall(r":([a-z]+): ?([^\n]*)", options))
        assert opts.get("name", "").startswith("fig-"), f"{path.name}: figure {key} needs :name: fig-..."
        assert len(opts.get("alt", "").split()) >= 8, f"{path.name}: figure {key} needs an :alt: text that describes it"
        assert caption.strip(), f"{path.name}: figure {key} has no caption"
    names = [dict(re.findall(r":([a-z]+): ?([^\n]*)", o))["name"] for _, o, _ in found]
    assert len(set(names)) == len(names), f"{path.name}: two figures share a :name:"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_opens_with_its_key_result(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), path.name
    assert "".join(cells[1]["source"]).strip() == KEY_RESULT_BOX, \
        f"{path.name}: the cell after the title and claim must be the key-result box:\n{KEY_RESULT_BOX}"
