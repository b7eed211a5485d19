"""The CLI on a two-chapter fixture book (tests/fixtures/mini, chapter modules in mini_chapters/)."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from pretraining.book import claims, profiles, results, site, specs
from pretraining.book.paths import BUILD_DIR_ENV
from pretraining.book.runtime import Chapter, key_result

FIXTURE = Path(__file__).parent / "fixtures" / "mini"
PY = sys.executable


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "mini"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != BUILD_DIR_ENV}
    env.update({specs.CHAPTERS_ENV: "mini_chapters", "PYTHONPATH": str(root)})
    return env


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pretraining", *args, "--root", str(root)], cwd=root,
                          capture_output=True, text=True, timeout=300, env=_env(root))


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
    assert b[4] == "cached"  # the same toy_weights computation as 01_alpha: a cross-chapter hit
    assert [p.name.split("-")[0] for p in (root / "_build" / "cache").iterdir() if not p.name.startswith(".")] \
        == ["toy_weights"]


def test_second_run_reports_cached(project):
    _, _, second, _ = project
    assert second.returncode == 0, second.stderr
    assert _line(second.stdout, "01_alpha").split()[4] == "cached"
    assert _line(second.stdout, "02_beta").split()[4] == "cached"


def test_results_json(project):
    root = project[0]
    r = json.loads((root / "_build" / "results" / "01_alpha.json").read_text())
    assert r["chapter"] == "01_alpha" and r["profile"] == "quick" and r["verdict"] == "supported"
    assert r["claim"] == "The toy weights have a finite total."
    assert r["parts"] == [{"key": "a", "claim": "the total is finite", "status": "holds",
                           "evidence": f"total {r['results']['total']:.3f}", "numbers": {}}]
    assert r["_cache"] == {"hits": 1, "misses": 0}  # of the second run
    assert r["glued"] == {"alpha_total": r["results"]["total"], "alpha_width": 4,
                          "key_result": f"Verdict at the quick profile: supported (1 of the 1 tested parts of the "
                                        f"claim hold). {r['finding']}"}
    assert len(r["results"]["w"]) == 4 and len(r["results"]["w"][0]) == 3  # tensor -> lists
    prov = r["_provenance"]
    assert prov["parameters"] == {"profile": "quick", "device": "cpu", "precision": "auto", "dataset": "mnist-10k",
                                  "seed": 0, "executor": "auto", "width": 4}
    assert prov["device"] == "cpu" and prov["precision"] == "fp32"  # auto is exact float32 off CUDA
    assert prov["executor"] == "local"  # auto without PRETRAINING_EXECUTOR
    assert prov["versions"]["torch"] and prov["wall time s"] >= 0
    assert prov["git commit"].startswith("unknown")  # the copy is not a git repository
    beta = json.loads((root / "_build" / "results" / "02_beta.json").read_text())
    assert beta["verdict"] == "inconclusive" and beta["parts"][0]["status"] == "not tested"


def test_executed_notebooks_are_prepared_and_sources_untouched(project):
    root = project[0]
    nb = nbformat.read(root / "_build" / "executed" / "chapters" / "01_alpha.ipynb", 4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata.tags
    assert 'device = "cpu"' in injected[0].source and "width" not in injected[0].source  # only non-defaults
    code = [c for c in nb.cells if c.cell_type == "code" and c not in injected]
    assert all("hide-input" in c.metadata.tags for c in code)
    for name in ("01_alpha", "02_beta"):
        src = root / "chapters" / f"{name}.ipynb"
        assert src.read_bytes() == (FIXTURE / "chapters" / f"{name}.ipynb").read_bytes()
        assert all(not c.get("outputs") for c in nbformat.read(src, 4).cells)


def test_build_renders_glue_parts_and_verdict_without_warnings(project):
    root, _, _, built = project
    assert built.returncode == 0, built.stdout + built.stderr
    html = root / "_build" / "html"
    alpha = (html / "chapters" / "01_alpha.html").read_text()
    plain = alpha.replace("<span class=\"pasted-text\">", "").replace("</span>", "")
    total = json.loads((root / "_build" / "results" / "01_alpha.json").read_text())["results"]["total"]
    assert f"The total is {total:.3f} for 4 rows." in plain
    assert "Verdict: supported" in plain and "the total is finite" in plain
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
    assert "error: -p widht: none of the chapters 01_alpha, 02_beta has a parameter 'widht'" in r.stderr
    r = _cli(root, "run", "01", "-p", "fail", "true")  # the run names 01_alpha alone
    assert r.returncode == 2 and ("error: -p fail: 01_alpha has no parameter 'fail'; its parameters are: "
                                  "profile, device, precision, dataset, seed, executor, width") in r.stderr
    r = _cli(root, "run", "-p", "profile", "smoke")
    assert r.returncode == 2 and "use --profile" in r.stderr
    r = _cli(root, "run", "07")
    assert r.returncode == 2 and "no chapter '07'; the chapters are: 01_alpha, 02_beta" in r.stderr
    r = _cli(root, "run", "03")
    assert r.returncode == 2 and "does not exist yet" in r.stderr
    assert not (root / "_build").exists()


def test_bad_values_are_refused_one_line_each_before_any_kernel(tmp_path):
    root = _copy(tmp_path)
    r = _cli(root, "run", "-p", "width", "0", "-p", "seed", "-2")
    assert r.returncode == 2 and "running" not in r.stdout
    assert r.stderr.splitlines() == [
        "error: profile quick: 4 problems:",
        "  01_alpha: seed=-2 is not allowed: an integer >= 0",
        "  01_alpha: width=0 is not allowed: an integer >= 1",
        "  02_beta: seed=-2 is not allowed: an integer >= 0",
        "  02_beta: width=0 is not allowed: an integer >= 1",
    ]
    assert not (root / "_build").exists()  # nothing was started, nothing deleted


def test_a_dask_scheduler_that_does_not_answer_is_one_line_before_any_kernel(tmp_path):
    import socket

    root = _copy(tmp_path)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _cli(root, "run", "-p", "executor", f"dask://127.0.0.1:{port}")
    assert r.returncode == 2 and "running" not in r.stdout
    assert len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(f"error: executor='dask://127.0.0.1:{port}': no Dask scheduler answers at 127.0.0.1:{port}")
    assert not (root / "_build").exists()
    env = {**_env(root), "PRETRAINING_EXECUTOR": "everywhere"}
    r = subprocess.run([PY, "-m", "pretraining", "run", "--root", str(root)], cwd=root, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 2 and r.stderr.startswith("error: PRETRAINING_EXECUTOR='everywhere' is not allowed")


def test_estimate_rehearses_the_chapters_with_a_work_plan_and_names_those_without(tmp_path):
    root = _copy(tmp_path)
    r = _cli(root, "estimate", "--jobs", "--json", str(tmp_path / "estimate.json"))
    assert r.returncode == 0, r.stderr
    assert "note: 02_beta has no work plan (work(p) in its module); not estimated" in r.stdout
    row = _line(r.stdout, "01_alpha").split()
    assert row[1] == "cpu/fp32" and float(row[2]) == pytest.approx(6 * 12 * 10 * 8 * 2, rel=0.01)  # 6 x (4 x 3) x B x steps x M
    assert "toy net" in r.stdout and _line(r.stdout, "total")
    saved = json.loads((tmp_path / "estimate.json").read_text())
    assert saved["profile"] == "quick" and [c["chapter"] for c in saved["chapters"]] == ["01_alpha"]
    job = saved["chapters"][0]["jobs"][0]
    assert job["flop"] == 6 * 12 * 10 * 8 * 2 and job["steps"] == 8 and job["predicted_seconds"] > 0
    bad = _cli(root, "estimate", "-p", "width", "0")
    assert bad.returncode == 2 and "rehearsing" not in bad.stderr
    assert bad.stderr.splitlines()[-2:] == ["  01_alpha: width=0 is not allowed: an integer >= 1",
                                            "  02_beta: width=0 is not allowed: an integer >= 1"]


def test_check_validates_a_profile_without_a_kernel(tmp_path):
    root = _copy(tmp_path)
    r = _cli(root, "run", "--profile", "smoke", "--check")
    assert r.returncode == 0, r.stderr
    assert "profile smoke: the parameters of 2 chapter(s) are valid (01_alpha, 02_beta)" in r.stdout
    (root / "params" / "smoke.yaml").write_text("chapters:\n  01_alpha: {width: -1}\n  02_beta: {fail: 3}\n")
    r = _cli(root, "run", "--profile", "smoke", "--check")
    assert r.returncode == 2 and "running" not in r.stdout and not (root / "_build").exists()
    assert r.stderr.splitlines()[1:] == ["  01_alpha: width=-1 is not allowed: an integer >= 1",
                                         "  02_beta: fail=3 is not allowed: True or False"]


def test_kernel_checks_again_for_plain_papermill(tmp_path):
    root = _copy(tmp_path)
    nb = root / "chapters" / "01_alpha.ipynb"
    r = subprocess.run([PY, "-m", "papermill", str(nb), str(tmp_path / "out.ipynb"), "-p", "width", "0",
                        "--cwd", str(root / "chapters")], capture_output=True, text=True, env=_env(root),
                       timeout=120)
    assert r.returncode != 0
    failed = nbformat.read(tmp_path / "out.ipynb", 4)
    tb = [o for c in failed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert tb[0]["traceback"] == ["ParameterError: width=0 is not allowed: an integer >= 1"]
    assert not (root / "_build" / "cache").exists()  # nothing was trained


def test_a_value_for_some_chapters_is_skipped_by_the_others(tmp_path):
    root = _copy(tmp_path)
    r = _cli(root, "run", "-p", "fail", "true")
    assert "note: -p fail: 01_alpha has no parameter 'fail'; not applied there" in r.stdout
    assert r.returncode == 1 and _line(r.stdout, "01_alpha").split()[4] == "computed"
    assert "FAILED chapters/02_beta.ipynb (profile quick)" in r.stderr
    assert "chapter.run(ch)" in r.stderr and "RuntimeError: failing on purpose" in r.stderr
    assert (root / "_build" / "failed" / "02_beta.ipynb").exists()
    assert not (root / "_build" / "executed" / "chapters" / "02_beta.ipynb").exists()
    # the kernel process's own output is not on the terminal but kept, and named, with the failed notebook
    kernel_log = root / "_build" / "failed" / "02_beta.kernel.log"
    assert "the kernel process's own stderr" not in r.stderr and "KeyboardInterrupt" not in r.stderr
    assert "the kernel process's own stderr" in kernel_log.read_text() and f"the kernel's own log: {kernel_log}" in r.stderr
    b = _cli(root, "build")
    assert b.returncode == 2 and not (root / "_build" / "html").exists()
    assert "chapters/02_beta failed in its last run" in b.stderr


def test_plain_papermill_and_help_notebook(tmp_path):
    root = _copy(tmp_path)
    nb = root / "chapters" / "01_alpha.ipynb"
    h = subprocess.run([PY, "-m", "papermill", "--help-notebook", str(nb)], capture_output=True,
                       text=True, env=_env(root), timeout=60)
    assert "width: int (default 4)" in h.stdout and "rows of the toy weight matrix" in h.stdout
    r = subprocess.run([PY, "-m", "papermill", str(nb), str(tmp_path / "out.ipynb"), "-p", "width", "3",
                        "--cwd", str(root / "chapters")], capture_output=True, text=True, env=_env(root),
                       timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads((root / "_build" / "results" / "01_alpha.json").read_text())
    assert res["_provenance"]["parameters"]["width"] == 3


def test_profile_yaml_is_validated(tmp_path):
    root = _copy(tmp_path)
    stems = site.toc_chapter_stems(root)
    (root / "params" / "bad.yaml").write_text("common: {}\nchapter: {}\n")
    with pytest.raises(profiles.ProfileError, match="unknown top-level key\\(s\\) chapter; allowed: common, chapters"):
        profiles.load_profile(root, "bad", stems)
    (root / "params" / "bad.yaml").write_text("chapters:\n  04_gamma: {}\n")
    with pytest.raises(profiles.ProfileError, match="chapter section '04_gamma' is not a chapter of _toc.yml; "
                                                    "the chapters are: 01_alpha, 02_beta, 03_not_written_yet"):
        profiles.load_profile(root, "bad", stems)
    (root / "params" / "bad.yaml").write_text("chapters:\n  02_beta: {depth: 3}\n")
    r = _cli(root, "run", "--profile", "bad")
    assert r.returncode == 2 and "chapters.02_beta.depth: 02_beta has no parameter 'depth'" in r.stderr
    assert profiles.load_profile(root, "smoke", stems)["chapters"]["01_alpha"] == {"width": 2}


def test_an_outdated_parameters_cell_is_caught_and_synced(tmp_path):
    root = _copy(tmp_path)
    path = root / "chapters" / "01_alpha.ipynb"
    nb = nbformat.read(path, 4)
    nb.cells[1].source = nb.cells[1].source.replace("width: int = 4", "width: int = 5")
    nbformat.write(nb, path)
    r = _cli(root, "run", "--check")
    assert r.returncode == 2 and ("chapters/01_alpha.ipynb: its parameters cell differs from the spec of its "
                                  "module (the defaults live in the module); run: python -m pretraining "
                                  "sync-params") in r.stderr
    s = _cli(root, "sync-params")
    assert s.returncode == 0 and "01_alpha: parameters cell rewritten from its spec" in s.stdout
    assert "02_beta: up to date" in s.stdout
    assert nbformat.read(path, 4).cells[1].source == nbformat.read(FIXTURE / "chapters" / "01_alpha.ipynb", 4).cells[1].source
    assert _cli(root, "run", "--check").returncode == 0


def test_editing_a_section_function_keeps_the_cache_editing_compute_does_not(tmp_path):
    root = _copy(tmp_path)
    assert _cli(root, "run", "01").returncode == 0
    module = root / "mini_chapters" / "ch01_alpha.py"
    module.write_text(module.read_text().replace('ch.glue("alpha_width", ch.params["width"], fmt="d")',
                                                 'ch.glue("alpha_width", ch.params["width"], fmt=",d")  # edited'))
    r = _cli(root, "run", "01")
    assert _line(r.stdout, "01_alpha").split()[4] == "cached"
    shared = root / "mini_chapters" / "shared.py"
    shared.write_text(shared.read_text().replace('"""Random weights (width, 3)', '"""(An edited docstring.) Random weights (width, 3)'))
    assert _line(_cli(root, "run", "01").stdout, "01_alpha").split()[4] == "cached"
    shared.write_text(shared.read_text().replace("torch.randn(p[\"width\"], 3,", "2 * torch.randn(p[\"width\"], 3,"))
    r = _cli(root, "run", "01")
    assert _line(r.stdout, "01_alpha").split()[4] == "computed"
    why = _cli(root, "cache", "why", "toy_weights")
    assert why.returncode == 0 and why.stdout.splitlines() == [
        "toy_weights in 01_alpha (quick): miss; what differs from the nearest stored entry:",
        "    code[mini_chapters/shared.py:toy_weights]: changed"]
    ls = _cli(root, "cache", "ls")
    assert "no finished run (gc removes it)" in ls.stdout and "01_alpha (quick)" in ls.stdout
    gc = _cli(root, "cache", "gc")
    assert gc.returncode == 0 and gc.stdout.startswith("removed 1 entries no finished run uses")
    assert "2 entries" not in _cli(root, "cache", "ls").stdout
    clear = _cli(root, "cache", "clear")
    assert clear.stdout.startswith("removed 1 cache entries")


def test_filtered_toc_drops_missing_entries_and_empty_parts():
    toc = {"root": "intro", "parts": [{"caption": "A", "chapters": [{"file": "x"}, {"file": "y"}]},
                                      {"caption": "B", "chapters": [{"file": "z"}]}]}
    assert site._filtered_toc(toc, {"intro", "y"}) == {
        "root": "intro", "parts": [{"caption": "A", "chapters": [{"file": "y"}]}]}


# -- the runtime and the results, in-process -----------------------------------------------------

SPEC = specs.ChapterSpec("09_test", claim="a claim", paper="a paper", params={})


def test_finish_rejects_nan_and_bad_parts(tmp_path, monkeypatch):
    monkeypatch.setenv(BUILD_DIR_ENV, str(tmp_path))
    ch = Chapter(SPEC, {**SPEC.defaults(), "device": "cpu", "profile": "smoke"}, tmp_path)
    holds = [claims.part("a", "x", True, "e")]
    with pytest.raises(ValueError, match=r"results\['errors'\]\[1\] is nan"):
        ch.finish({"errors": [0.1, math.nan]}, parts=holds, finding="x")
    with pytest.raises(TypeError, match="parts must be a non-empty list of claims.Part"):
        ch.finish({}, parts=[], finding="x")
    with pytest.raises(ValueError, match="glued value 'e' is nan"):
        ch.glue("e", float("nan"))
    assert not (tmp_path / "results").exists()
    rec = ch.finish({"e": 0.5}, parts=holds, finding="x")
    assert json.loads((tmp_path / "results" / "09_test.json").read_text()) == rec
    assert results.load_results(tmp_path)["09_test"]["results"]["e"] == 0.5
    assert rec["results"]["claim_parts"][0]["holds"] is True and rec["results"]["claim_parts"][0]["test"] == "threshold"
    assert (tmp_path / "cache" / ".index" / "smoke" / "09_test.json").exists()


def test_summary_table(tmp_path, monkeypatch):
    monkeypatch.setenv(BUILD_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(specs.CHAPTERS_ENV, "mini_chapters")
    monkeypatch.syspath_prepend(str(FIXTURE))
    spec = specs.load_spec("01_alpha")
    ch = Chapter(spec, {**spec.defaults(), "device": "cpu", "profile": "smoke"}, tmp_path)
    ch.finish({}, parts=[claims.part("a", "x", True, "e"), claims.part("b", "y", None, "n")],
              finding="err 1.2% < 2%")
    html = results.summary_table(["01_alpha", "02_beta"], tmp_path)
    assert "err 1.2% &lt; 2%" in html and "<strong>supported</strong><br>" in html and "profile smoke, " in html
    assert "1 of 1 tested parts hold, 1 not tested" in html and "The toy weights are shared." in html
    assert "<em>not run yet</em>" in html and html.count("<tr>") == 3
    # each part as a row of marks with its statement; its evidence on hover; the results file to download
    assert '<span class="part-mark" aria-label="holds">✓</span> (a) x' in html and 'title="e"' in html
    assert '<span class="part-mark" aria-label="not tested">–</span> (b) y' in html
    assert '<a href="results/01_alpha.json" download>' in html and "results/02_beta.json" not in html


def test_key_result_counts_the_parts():
    parts = claims.decide([claims.part("a", "x", True, "e"), claims.part("b", "y", False, "f"),
                           claims.part("c", "z", None, "n")])
    text = key_result(parts, claims.verdict(parts), "quick", "Error 1.2 %.")
    assert text == ("Verdict at the quick profile: " + claims.verdict(parts) + " (1 of the 2 tested parts of the claim "
                    "hold, 1 could not be tested). Error 1.2 %.")
    untested = claims.decide([claims.part("a", "x", None, "n"), claims.part("b", "y", None, "n")])
    assert key_result(untested, claims.verdict(untested), "smoke", "F.") == (
        f"Verdict at the smoke profile: {claims.verdict(untested)} (none of the 2 parts of the claim could be "
        "tested at this scale). F.")


def test_summary_figure_marks_each_tested_part(tmp_path, monkeypatch):
    monkeypatch.setenv(BUILD_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(specs.CHAPTERS_ENV, "mini_chapters")
    monkeypatch.syspath_prepend(str(FIXTURE))
    assert results.summary_figure(tmp_path) is None  # nothing run yet
    spec = specs.load_spec("01_alpha")
    ch = Chapter(spec, {**spec.defaults(), "device": "cpu", "profile": "smoke"}, tmp_path)
    tested = [claims.from_test("a", "x", {"p": 0.001, "effect": 1.0, "test": "t", "n": 10}, "e", direction=True),
              claims.from_test("b", "y", {"p": 0.4, "effect": 1.0, "test": "t", "n": 10}, "f", direction=True),
              claims.part("c", "z", None, "n")]
    ch.finish({}, parts=tested, finding="f")
    fig = results.summary_figure(tmp_path)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["01 (a)", "01 (b)"]  # untested (c) is in the table only
    filled = [line.get_markerfacecolor() for line in ax.lines if line.get_marker() == "o"]
    assert filled[0] != "white" and filled[1] == "white"  # (a) holds after Holm (p 0.002), (b) fails


def _papermill(root, tmp_path, *args):
    nb = root / "chapters" / "01_alpha.ipynb"
    return subprocess.run([PY, "-m", "papermill", str(nb), str(tmp_path / "out.ipynb"), *args,
                           "--cwd", str(root / "chapters")], capture_output=True, text=True, env=_env(root),
                          timeout=120)


def test_plain_papermill_reads_string_values_and_refuses_a_bare_profile(tmp_path):
    root = _copy(tmp_path)
    r = _papermill(root, tmp_path, "-r", "width", "3")  # -r passes the text "3"
    assert r.returncode == 0, r.stderr
    assert json.loads((root / "_build" / "results" / "01_alpha.json").read_text())["_provenance"]["parameters"]["width"] == 3
    r = _papermill(root, tmp_path, "-p", "profile", "smoke")
    assert r.returncode != 0
    tb = [o for c in nbformat.read(tmp_path / "out.ipynb", 4).cells for o in c.get("outputs", [])
          if o.get("output_type") == "error"]
    assert tb[0]["traceback"] == ["ParameterError: profile='smoke' is not allowed without its values (device='cpu', "
                                  "width=2): run `python -m pretraining run --profile smoke 01`, or pass them with -p"]
    r = _papermill(root, tmp_path, "-p", "profile", "smoke", "-p", "width", "2", "-p", "device", "cpu")
    assert r.returncode == 0, r.stderr


def test_one_bad_value_is_one_line(tmp_path):
    root = _copy(tmp_path)
    r = _cli(root, "run", "01", "-p", "width", "abc")
    assert r.returncode == 2 and r.stderr == "error: 01_alpha: width='abc' is not allowed: an integer >= 1\n"
