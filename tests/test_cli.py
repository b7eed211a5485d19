"""The CLI on a two-chapter fixture book (tests/fixtures/mini), and the book module."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from pretraining import book, cli
from pretraining.book import BUILD_DIR_ENV, Chapter

FIXTURE = Path(__file__).parent / "fixtures" / "mini"
PY = sys.executable


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    shutil.copytree(FIXTURE, root)
    return root


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != BUILD_DIR_ENV}
    return subprocess.run([PY, "-m", "pretraining", *args, "--root", str(root)], cwd=root,
                          capture_output=True, text=True, timeout=300, env=env)


def _line(out: str, stem: str) -> str:
    return next(ln for ln in out.splitlines() if ln.startswith(stem + " "))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The fixture book, run twice and built once."""
    root = _copy(tmp_path_factory.mktemp("p"))
    first = _cli(root, "run")
    second = _cli(root, "run")
    built = _cli(root, "build")
    return root, first, second, built


def test_run_executes_in_toc_order_and_second_chapter_reuses_the_cache(project):
    root, first, _, _ = project
    assert first.returncode == 0, first.stderr
    assert "note: chapters/03_not_written_yet is listed in _toc.yml but has no source file yet" in first.stdout
    lines = [ln for ln in first.stdout.splitlines() if ln.startswith("0")]
    assert [ln.split()[0] for ln in lines] == ["01_alpha", "02_beta"]
    a, b = _line(first.stdout, "01_alpha").split(), _line(first.stdout, "02_beta").split()
    assert a[1] == "quick" and a[3] == "s" and float(a[2]) > 0 and a[4] == "computed"
    assert b[4] == "cached"  # same toy_weights params as 01_alpha: a cross-chapter hit
    assert len(list((root / "_build" / "cache").iterdir())) == 1


def test_second_run_reports_cached(project):
    _, _, second, _ = project
    assert second.returncode == 0, second.stderr
    assert _line(second.stdout, "01_alpha").split()[4] == "cached"
    assert _line(second.stdout, "02_beta").split()[4] == "cached"


def test_results_json(project):
    root = project[0]
    r = json.loads((root / "_build" / "results" / "01_alpha.json").read_text())
    assert r["chapter"] == "01_alpha" and r["profile"] == "quick" and r["verdict"] == "supported"
    assert r["_cache"] == {"hits": 1, "misses": 0}  # of the second run
    assert r["glued"] == {"alpha_total": r["results"]["total"], "alpha_width": 4}
    assert len(r["results"]["w"]) == 4 and len(r["results"]["w"][0]) == 3  # tensor -> lists
    prov = r["_provenance"]
    assert prov["parameters"] == {"profile": "quick", "device": "cpu", "seed": 0, "width": 4}
    assert prov["device"] == "cpu" and prov["versions"]["torch"] and prov["wall time s"] >= 0
    assert prov["git commit"].startswith("unknown")  # the copy is not a git repository


def test_executed_notebooks_are_prepared_and_sources_untouched(project):
    root = project[0]
    nb = nbformat.read(root / "_build" / "executed" / "chapters" / "01_alpha.ipynb", 4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata.tags
    assert "width = 4" in injected[0].source
    code = [c for c in nb.cells if c.cell_type == "code" and c not in injected]
    assert all("hide-input" in c.metadata.tags for c in code)
    for name in ("01_alpha", "02_beta"):
        src = root / "chapters" / f"{name}.ipynb"
        assert src.read_bytes() == (FIXTURE / "chapters" / f"{name}.ipynb").read_bytes()
        assert all(not c.get("outputs") for c in nbformat.read(src, 4).cells)


def test_build_renders_glue_without_warnings(project):
    root, _, _, built = project
    assert built.returncode == 0, built.stdout + built.stderr
    html = root / "_build" / "html"
    alpha = (html / "chapters" / "01_alpha.html").read_text()
    total = json.loads((root / "_build" / "results" / "01_alpha.json").read_text())["results"]["total"]
    assert f"The total is {total:.3f} for 4 rows." in alpha.replace("<span class=\"pasted-text\">", "").replace("</span>", "")
    assert f"{total:.2f}" in (html / "chapters" / "02_beta.html").read_text()
    assert "Provenance of these results" in alpha and "injected-parameters" not in alpha
    assert "{glue" not in alpha and "Traceback" not in alpha
    assert not (html / "chapters" / "03_not_written_yet.html").exists()
    assert "WARNING" not in (root / "_build" / "build.log").read_text()


def test_fast_failures_before_any_kernel(tmp_path):
    root = _copy(tmp_path)
    r = _cli(root, "run", "--profile", "nope")
    assert r.returncode == 2 and "running" not in r.stdout
    assert "error: unknown profile 'nope'; the profiles are: quick, smoke" in r.stderr
    r = _cli(root, "run", "-p", "widht", "3")
    assert r.returncode == 2 and "running" not in r.stdout
    assert ("error: -p widht: 01_alpha has no parameter 'widht'; its parameters are: "
            "profile, device, seed, width") in r.stderr
    r = _cli(root, "run", "-p", "profile", "smoke")
    assert r.returncode == 2 and "use --profile" in r.stderr
    r = _cli(root, "run", "07")
    assert r.returncode == 2 and "no chapter '07'; the chapters are: 01_alpha, 02_beta" in r.stderr
    r = _cli(root, "run", "03")
    assert r.returncode == 2 and "does not exist yet" in r.stderr
    assert not (root / "_build").exists()


def test_bad_value_fails_in_the_kernel_before_training(tmp_path):
    root = _copy(tmp_path)
    r = _cli(root, "run", "01", "-p", "width", "0")
    assert r.returncode == 1
    assert "ParameterError: width=0 is not allowed: an integer >= 1" in r.stderr
    assert "book.start(" in r.stderr  # the failing cell's source, shortened
    assert not (root / "_build" / "cache").exists()  # nothing was trained
    failed = nbformat.read(root / "_build" / "failed" / "01_alpha.ipynb", 4)
    tb = [o for c in failed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert tb[0]["traceback"] == ["ParameterError: width=0 is not allowed: an integer >= 1"]


def test_failing_notebook_stops_and_is_never_rendered(tmp_path):
    root = _copy(tmp_path)
    r = _cli(root, "run", "-p", "fail", "true")
    # -p applies to every selected chapter: 01_alpha has no `fail`, so nothing runs
    assert r.returncode == 2 and "01_alpha has no parameter 'fail'" in r.stderr
    r = _cli(root, "run", "02", "-p", "fail", "true")
    assert r.returncode == 1
    assert "FAILED chapters/02_beta.ipynb (profile quick)" in r.stderr
    assert 'raise RuntimeError("failing on purpose")' in r.stderr
    assert "RuntimeError: failing on purpose" in r.stderr
    assert (root / "_build" / "failed" / "02_beta.ipynb").exists()
    assert not (root / "_build" / "executed" / "chapters" / "02_beta.ipynb").exists()
    b = _cli(root, "build")
    assert b.returncode == 2 and not (root / "_build" / "html").exists()
    assert "chapters/01_alpha has not been executed; run: python -m pretraining run 01" in b.stderr
    assert "chapters/02_beta failed in its last run" in b.stderr


def test_plain_papermill_and_help_notebook(tmp_path):
    root = _copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != BUILD_DIR_ENV}
    nb = root / "chapters" / "01_alpha.ipynb"
    h = subprocess.run([PY, "-m", "papermill", "--help-notebook", str(nb)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert "width: int (default 4)" in h.stdout and "rows of the toy weight matrix" in h.stdout
    r = subprocess.run([PY, "-m", "papermill", str(nb), str(tmp_path / "out.ipynb"), "-p", "width", "3",
                        "--cwd", str(root / "chapters")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads((root / "_build" / "results" / "01_alpha.json").read_text())
    assert res["_provenance"]["parameters"]["width"] == 3


def test_profile_yaml_is_validated(tmp_path):
    root = _copy(tmp_path)
    (root / "params" / "bad.yaml").write_text("common: {}\nchapter: {}\n")
    with pytest.raises(cli.CliError, match="unknown top-level key\\(s\\) chapter; allowed: common, chapters"):
        cli.load_profile(root, "bad")
    (root / "params" / "bad.yaml").write_text("chapters:\n  04_gamma: {}\n")
    with pytest.raises(cli.CliError, match="chapter section '04_gamma' is not a chapter of _toc.yml; "
                                           "the chapters are: 01_alpha, 02_beta, 03_not_written_yet"):
        cli.load_profile(root, "bad")
    (root / "params" / "bad.yaml").write_text("chapters:\n  02_beta: {depth: 3}\n")
    r = _cli(root, "run", "--profile", "bad")
    assert r.returncode == 2 and "chapters.02_beta.depth: 02_beta has no parameter 'depth'" in r.stderr
    assert cli.load_profile(root, "smoke")["chapters"]["01_alpha"] == {"width": 2}


def test_parameters_cell_convention_is_checked(tmp_path):
    root = _copy(tmp_path)
    path = root / "chapters" / "01_alpha.ipynb"
    nb = nbformat.read(path, 4)
    nb.cells[1].source = nb.cells[1].source.replace("(at least 1)", "(>= 1)")
    nbformat.write(nb, path)
    with pytest.raises(cli.CliError, match="papermill cannot read the parameter 'width'.*no '=' in the help"):
        cli.declared_parameters(path)
    nb.cells[1].source = nb.cells[1].source.replace("  # rows of the toy weight matrix (>= 1)", "")
    nbformat.write(nb, path)
    with pytest.raises(cli.CliError, match="parameter 'width' has no help text"):
        cli.declared_parameters(path)


def test_filtered_toc_drops_missing_entries_and_empty_parts():
    toc = {"root": "intro", "parts": [{"caption": "A", "chapters": [{"file": "x"}, {"file": "y"}]},
                                      {"caption": "B", "chapters": [{"file": "z"}]}]}
    assert cli._filtered_toc(toc, {"intro", "y"}) == {
        "root": "intro", "parts": [{"caption": "A", "chapters": [{"file": "y"}]}]}


# -- the book module, in-process -------------------------------------------------------------

def test_finish_rejects_nan_and_bad_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv(BUILD_DIR_ENV, str(tmp_path))
    ch = Chapter("09_test", {"profile": "smoke", "device": "cpu"}, tmp_path)
    with pytest.raises(ValueError, match=r"results\['errors'\]\[1\] is nan"):
        ch.finish({"errors": [0.1, math.nan]}, finding="x", verdict="supported")
    with pytest.raises(ValueError, match="verdict='yes' is not allowed: one of supported"):
        ch.finish({}, finding="x", verdict="yes")
    with pytest.raises(ValueError, match="glued value 'e' is nan"):
        ch.glue("e", float("nan"))
    assert not (tmp_path / "results").exists()
    rec = ch.finish({"e": 0.5}, finding="x", verdict="inconclusive")
    assert json.loads((tmp_path / "results" / "09_test.json").read_text()) == rec
    assert book.load_results(tmp_path)["09_test"]["results"] == {"e": 0.5}


def test_summary_table(tmp_path, monkeypatch):
    monkeypatch.setenv(BUILD_DIR_ENV, str(tmp_path))
    Chapter("01_a", {"profile": "smoke"}, tmp_path).finish({}, finding="err 1.2% < 2%", verdict="supported")
    html = book.summary_table([{"chapter": "01_a", "claim": "c1", "paper": "p1"},
                               {"chapter": "02_b", "claim": "c2", "paper": "p2"}], tmp_path)
    assert "err 1.2% &lt; 2%" in html and "<strong>supported</strong> (smoke)" in html
    assert "<em>not run yet</em>" in html and html.count("<tr>") == 3
