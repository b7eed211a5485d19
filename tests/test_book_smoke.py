"""The real book: `run --profile smoke` + `build` into a temporary folder, then every page in
headless Chromium: images load, no traceback / NaN / unrendered glue, internal links resolve, no
long raw dump, every figure has alt text, fills the column and has legible text, every chapter
opens with its key result, MathJax renders from the site itself; a full-page screenshot of each
page in <build>/screenshots/, copied to the repository's _build/screenshots/."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from selenium.webdriver.support.wait import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    build = tmp_path_factory.mktemp("smoke") / "_build"
    env = {k: v for k, v in os.environ.items() if k != "PRETRAINING_BUILD_DIR"}
    for args in (["run", "--profile", "smoke"], ["build"]):
        r = subprocess.run([sys.executable, "-m", "pretraining", *args, "--root", str(ROOT),
                            "--build-dir", str(build)], capture_output=True, text=True, env=env,
                           timeout=900)
        assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"
    return build


def test_smoke_book_builds_without_warnings(site):
    log = (site / "build.log").read_text()
    assert "WARNING" not in log and "build succeeded" in log
    assert (site / "html" / "index.html").exists() and (site / "html" / "summary.html").exists()
    # the sources are untouched: the repo's notebooks hold no outputs
    import nbformat
    for nb in [ROOT / "summary.ipynb", *sorted((ROOT / "chapters").glob("*.ipynb"))]:
        assert all(not c.get("outputs") for c in nbformat.read(nb, 4).cells), nb


def _driver(tmp_path):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        msg = f"headless browser check needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1400,1000"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


_NAN = re.compile(r"(?<![A-Za-z])nan(?![A-Za-z])", re.IGNORECASE)
MAX_PRE_LINES = 40
MIN_TEXT_PX = 9.0
MIN_FILL = 0.6  # a figure narrower than this share of the text column must say so (figclass "narrow")

# what the page shows of each image: its file, sizes, alt text, and the width of the text column
_IMAGES_JS = """
const col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const width = col.clientWidth;
return Array.from(col.querySelectorAll('img')).map(i => ({
  src: i.src, alt: i.getAttribute('alt') || '', shown: i.getBoundingClientRect().width,
  natural: i.naturalWidth, narrow: !!i.closest('.narrow'), column: width}));
"""


def _figure_problems(rel: str, images: list[dict]) -> list[str]:
    from PIL import Image

    from pretraining.analysis.figures import SMALLEST_FONT_PT

    out = []
    for im in images:
        path = Path(unquote(urlparse(im["src"]).path))
        name = path.name
        if not im["alt"].strip() or re.fullmatch(r"[0-9a-f]{20,}(\.png)?", im["alt"].strip()):
            out.append(f"{rel}: image {name} has no alt text (got {im['alt']!r})")
        if not im["narrow"] and im["shown"] < MIN_FILL * im["column"]:
            out.append(f"{rel}: image {name} is shown {im['shown']:.0f} px wide, less than {MIN_FILL:.0%} of the "
                       f"{im['column']} px column")
        if path.suffix == ".png" and path.exists() and im["natural"]:
            dpi = (Image.open(path).info.get("dpi") or (72, 72))[0]
            px = SMALLEST_FONT_PT / 72 * dpi * im["shown"] / im["natural"]
            if px < MIN_TEXT_PX:
                out.append(f"{rel}: image {name}: its {SMALLEST_FONT_PT} pt text is shown {px:.1f} px high "
                           f"(at least {MIN_TEXT_PX:g}); make the figure narrower than the page")
    return out


def test_every_page_in_a_real_browser(site, tmp_path):
    html = site / "html"
    pages = sorted(p for p in html.rglob("*.html")
                   if p.name not in ("genindex.html", "search.html") and "_static" not in p.parts
                   and "_sources" not in p.parts)
    assert {p.relative_to(html).as_posix() for p in pages} >= {"index.html", "intro.html",
                                                                "summary.html", "reproduce.html"}
    shots = site / "screenshots"
    shots.mkdir(exist_ok=True)
    driver = _driver(tmp_path)
    problems = []
    try:
        driver.set_page_load_timeout(60)
        for page in pages:
            rel = page.relative_to(html).as_posix()
            driver.get(page.as_uri())
            WebDriverWait(driver, 120).until(lambda d: d.execute_script("return document.readyState") == "complete")
            text = driver.find_element("tag name", "body").text
            main = driver.execute_script(
                "const m = document.querySelector('main') || document.body; return m.innerText;")
            if "Traceback (most recent call last)" in text:
                problems.append(f"{rel}: shows a Python traceback")
            if _NAN.search(main):
                problems.append(f"{rel}: shows NaN: ...{main[max(0, _NAN.search(main).start() - 60):][:120]}...")
            if "{glue" in main or "glue:text" in main:
                problems.append(f"{rel}: unrendered glue role")
            long_pre = driver.execute_script(
                "return Array.from(document.querySelectorAll('main pre')).map(p => p.innerText.split('\\n').length)"
                ".filter(n => n > arguments[0]);", MAX_PRE_LINES)
            problems += [f"{rel}: a raw block of {n} lines (more than {MAX_PRE_LINES})" for n in long_pre]
            problems += _figure_problems(rel, driver.execute_script(_IMAGES_JS))
            if rel.startswith("chapters/") and "Key result" not in main:
                problems.append(f"{rel}: no key-result box under the claim")
            broken = driver.execute_script(
                "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                ".map(i => i.src);")
            problems += [f"{rel}: image not loaded: {src}" for src in broken]
            hrefs = driver.execute_script(
                "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);")
            for href in hrefs:
                u = urlparse(href)
                if u.scheme != "file":
                    continue  # external links are not checked (no internet)
                if not Path(unquote(u.path)).exists():
                    problems.append(f"{rel}: broken internal link {href}")
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1400, min(height + 50, 20000))  # the whole page in one picture
            driver.save_screenshot(str(shots / (rel.replace("/", "__") + ".png")))
            driver.set_window_size(1400, 1000)
    finally:
        driver.quit()
    # also where a reader of `make test` looks for them (the smoke site itself lives in a temporary folder)
    keep = ROOT / "_build" / "screenshots"
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(shots, keep)
    assert not problems, "\n".join(problems)
    assert len(list(shots.glob("*.png"))) == len(pages)


def test_mathematics_renders_without_a_network(site, tmp_path):
    """MathJax is served from the built site; this browser reaches no network at all."""
    page = site / "html" / "chapters" / "03_depth_study.html"
    assert "_static/mathjax/tex-chtml.js" in page.read_text()
    driver = _driver(tmp_path)
    try:
        driver.get(page.as_uri())
        WebDriverWait(driver, 120).until(
            lambda d: d.execute_script("return document.querySelectorAll('mjx-container').length") > 0)
    finally:
        driver.quit()


def test_summary_offers_the_results_files(site):
    summary = (site / "html" / "summary.html").read_text()
    for stem in ("01_pretraining", "03_depth_study"):
        assert f'href="results/{stem}.json"' in summary
        assert json.loads((site / "html" / "results" / f"{stem}.json").read_text())["chapter"] == stem


def test_every_glued_figure_is_placed_on_its_page(site):
    """A figure glued by a chapter (``ch.figure``) but placed by no {glue:figure} would silently vanish."""
    import nbformat

    missing = []
    for nb_path in sorted((site / "executed").rglob("*.ipynb")):
        nb = nbformat.read(nb_path, 4)
        glued = {o["metadata"]["scrapbook"]["name"] for c in nb.cells for o in c.get("outputs", [])
                 if o.get("metadata", {}).get("scrapbook") and any(k.endswith("image/png") for k in o.get("data", {}))}
        placed = set(re.findall(r"\{glue:figure\}\s+(\S+)", "\n".join(c.source for c in nb.cells
                                                                        if c.cell_type == "markdown")))
        missing += [f"{nb_path.name}: {k}" for k in sorted(glued - placed)]
    assert not missing, f"glued figures that no page shows: {missing}"


@pytest.mark.parametrize("chapter, artifact", [("03_depth_study", "depthstudy"),
                                               ("05_generative_vs_discriminative", "ch5_budget")])
def test_a_chapter_on_a_local_dask_cluster_gives_the_same_results(site, tmp_path, chapter, artifact):
    """`-p executor local-cluster:2`: the chapter's artifacts computed by two worker processes give the
    results file of the local run (the smoke book's), all but the provenance and the wall times."""
    build = tmp_path / "_build"
    env = {k: v for k, v in os.environ.items() if k not in ("PRETRAINING_BUILD_DIR", "PRETRAINING_EXECUTOR")}
    r = subprocess.run([sys.executable, "-m", "pretraining", "run", "--profile", "smoke", chapter,
                        "-p", "executor", "local-cluster:2", "--root", str(ROOT), "--build-dir", str(build)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(rf"computed {artifact}_\w+ on local-cluster:2, \d+ of \d+ \(2 workers: cpu", r.stderr)
    local, cluster = (json.loads((b / "results" / f"{chapter}.json").read_text()) for b in (site, build))
    timings = {"train_note", "stream_seconds"}  # seconds of this run

    def numbers(record: dict) -> dict:
        glued = {k: v for k, v in record["glued"].items() if k not in timings}
        return {"glued": glued, **{k: record[k] for k in ("verdict", "finding", "parts", "results")}}

    assert numbers(cluster) == numbers(local)
    assert (local["_provenance"]["executor"], cluster["_provenance"]["executor"]) == ("local", "local-cluster:2")
