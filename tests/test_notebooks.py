"""The source notebooks are stored clean and follow the chapter conventions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC_CHAPTERS = [entry["file"] for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
                for entry in part["chapters"] if entry["file"].startswith("chapters/")]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb")) + [ROOT / "summary.ipynb"]


def test_every_toc_chapter_exists() -> None:
    missing = [f for f in TOC_CHAPTERS if not (ROOT / f"{f}.ipynb").is_file()]
    assert not missing, f"chapters listed in _toc.yml but not written: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_source_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
    assert nb["metadata"]["kernelspec"]["name"] == "pretraining"


@pytest.mark.parametrize("path", sorted((ROOT / "chapters").glob("*.ipynb")), ids=lambda p: p.name)
def test_chapter_validates_its_parameters_right_after_the_parameters_cell(path: Path) -> None:
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
    assert f'book.start("{path.stem}"' in "".join(code[1]["source"]), f"{path.name}: second code cell must call book.start(\"{path.stem}\", ...)"
    assert "ch.finish(" in "".join("".join(c["source"]) for c in code), f"{path.name}: never calls ch.finish"
