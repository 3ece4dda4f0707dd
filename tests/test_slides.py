"""Slides: every lesson deck (and tests/data/slides_sample.ipynb) builds offline and works in
a browser that has no network.

The decks are built once per session into a temporary folder (vendor files from the
build/slides-cache of `python -m slides.build`, downloaded with npm the first time). Each deck
is then opened twice in headless Chromium (first slide; slide with a figure), with every
request sent to a closed port and no host name resolving, and a NetLog of the requests the
page attempted. Without chromium (or without npm and an empty cache) these tests are skipped,
except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from matplotlib import image as mpimg

from slides import build, lint

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = build.lesson_notebooks(ROOT) + build.translated_notebooks(ROOT) + [build.SAMPLE_NOTEBOOK]
IDS = [build.deck_stem(p) for p in NOTEBOOKS]
IN_CI = os.environ.get("CI", "").lower() == "true"

MIN_VAR_ANY = 1e-3    # grey-level variance of a slide's content area: blank page 0, title ~0.01
MIN_VAR_FIGURE = 5e-3  # a slide showing a heatmap: ~0.03
CONTENT = (slice(8, 690), slice(None))  # leave out the progress bar and the controls / slide number


def skip_or_fail(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the slide checks must run)")
    pytest.skip(reason)


# --------------------------------------------------------------------------- expectations
def expected_slides(nb) -> tuple[int, int]:
    """(horizontal, horizontal + vertical) slides implied by the metadata, computed here
    independently of slides.lint: the first cell that is not skip/notes opens slide 1;
    after it "slide" opens a horizontal slide, "subslide" a vertical one; fragment, notes,
    skip and "-" (also: missing) open nothing."""
    types = [(c.metadata.get("slideshow") or {}).get("slide_type") or "-" for c in nb.cells]
    shown = [i for i, t in enumerate(types) if t not in ("skip", "notes")]
    if not shown:
        return 0, 0
    rest = types[shown[0] + 1:]
    return 1 + rest.count("slide"), 1 + rest.count("slide") + rest.count("subslide")


def test_expected_slides_of_sample():
    nb = nbformat.read(build.SAMPLE_NOTEBOOK, as_version=4)
    assert expected_slides(nb) == (3, 5)
    assert lint.expected_counts(nb) == (3, 5)
    assert any("slideshow" not in c.metadata for c in nb.cells), "sample must keep a cell without metadata"
    assert any("hide-input" in c.metadata.get("tags", []) for c in nb.cells)


# --------------------------------------------------------------------------- build
@pytest.fixture(scope="session")
def decks(tmp_path_factory) -> dict[str, Path | Exception]:
    out = tmp_path_factory.mktemp("slides")
    try:
        build.install_vendor(out, build.DEFAULT_CACHE)
    except build.VendorUnavailable as err:
        skip_or_fail(f"reveal.js/MathJax not available: {err}")
    exporter = build.make_exporter()
    result: dict[str, Path | Exception] = {}
    for nb_path in NOTEBOOKS:
        try:
            result[build.deck_stem(nb_path)] = build.build_deck(nb_path, out, exporter)
        except Exception as err:  # reported by the test of that deck
            result[build.deck_stem(nb_path)] = err
    return result


def deck_of(decks, stem) -> Path:
    deck = decks[stem]
    if isinstance(deck, Exception):
        pytest.fail(f"{stem}: build failed: {type(deck).__name__}: {deck}")
    return deck


class _LoadedUrls(HTMLParser):
    """URLs of everything a page loads by itself (not links the reader may follow)."""

    ATTRS = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"), "iframe": ("src",),
             "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",),
             "embed": ("src",), "object": ("data",)}

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and name in self.ATTRS.get(tag, ()):
                self.urls.append((tag, value))


@pytest.mark.parametrize("stem", IDS)
def test_deck_is_self_contained(decks, stem):
    deck = deck_of(decks, stem)
    html = deck.read_text(encoding="utf-8")
    parser = _LoadedUrls()
    parser.feed(html)
    remote = [(t, u) for t, u in parser.urls if u.strip().lower().startswith(("http:", "https:", "//"))]
    assert not remote, f"{deck.name} loads from the network: {remote[:5]}"
    # the same check through the build's own scan, which also follows CSS @import chains
    # and reports local files that are missing
    assert build.remote_references(deck) == []
    assert "import mermaid" not in html, "the mermaid loader (a CDN module) is back"


def test_every_lesson_has_a_chinese_deck_in_chinese(decks):
    english = {p.stem for p in build.lesson_notebooks(ROOT)}
    chinese = {p.stem for p in build.translated_notebooks(ROOT)}
    assert english and chinese == english, f"lessons without a Chinese deck: {sorted(english - chinese)}"
    for stem in sorted(chinese):
        html = deck_of(decks, f"{stem}.zh").read_text(encoding="utf-8")
        assert deck_of(decks, f"{stem}.zh").name == f"{stem}.zh{build.DECK_SUFFIX}"
        assert '<html lang="zh">' in html, f"{stem}.zh: the deck does not declare Chinese"
        assert len(re.findall(r"[\u4e00-\u9fff]", html)) > 500, f"{stem}.zh: too little Chinese text"
    assert '<html lang="en">' in deck_of(decks, sorted(english)[0]).read_text(encoding="utf-8")


def test_markdown_diagram_is_embedded(decks):
    """../images/x.svg (here ../../images/...) is outside nbconvert's embed_images reach."""
    parser = _LoadedUrls()
    parser.feed(deck_of(decks, "slides_sample").read_text(encoding="utf-8"))
    imgs = [u for t, u in parser.urls if t == "img"]
    assert any(u.startswith("data:image/svg+xml;base64,") for u in imgs), imgs[:3]
    assert not [u for u in imgs if not u.startswith("data:")]


def test_build_tolerates_missing_metadata(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# No metadata"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_markdown_cell("## A slide"),
    ])
    nb.cells[2].metadata["slideshow"] = None
    nb.cells[3].metadata["slideshow"] = {"slide_type": "slide"}
    path = tmp_path / "bare.ipynb"
    nbformat.write(nb, path)
    deck = build.build_deck(path, tmp_path)
    sections = build.deck_sections(deck.read_text(encoding="utf-8"))
    assert [(h, v) for h, v, _ in sections] == [(0, 0), (1, 0)]
    assert expected_slides(nb) == lint.expected_counts(nb) == (2, 2)


# --------------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def chromium() -> str:
    path = build.find_chromium()
    if not path:
        skip_or_fail("chromium not found (Debian: apt-get install --no-install-recommends chromium)")
    return path


@pytest.fixture(scope="session")
def browser(decks, chromium, tmp_path_factory) -> dict:
    """Open every deck twice (first slide; slide with a figure), two browsers at a time."""
    shots = tmp_path_factory.mktemp("shots")
    jobs = {}
    for stem, deck in decks.items():
        if isinstance(deck, Exception):
            continue
        jobs[(stem, "first")] = (deck.resolve().as_uri(), shots / f"{stem}-first.png",
                                 shots / f"{stem}-first.netlog.json")
        url_hash = build.image_slide_hash(deck.read_text(encoding="utf-8"))
        if url_hash:
            jobs[(stem, "figure")] = (deck.resolve().as_uri() + url_hash,
                                      shots / f"{stem}-figure.png", shots / f"{stem}-figure.netlog.json")
    canary = shots / "canary.html"
    canary.write_text(
        '<!DOCTYPE html><html><head><title>canary</title>'
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Lato"></head>'
        '<body><img src="https://example.com/canary.png" '
        'onload="document.body.setAttribute(\'data-img\', \'loaded\')" '
        'onerror="document.body.setAttribute(\'data-img\', \'blocked\')"></body></html>')
    jobs[("canary", "first")] = (canary.as_uri(), None, shots / "canary.netlog.json")

    def run(job):
        url, png, netlog = job
        try:
            dom, err = build.run_chromium(url, screenshot=png, netlog=netlog, chromium=chromium)
            return {"dom": dom, "stderr": err, "png": png,
                    "requests": build.page_requests(netlog) if netlog.exists() else None}
        except Exception as err:
            return {"error": err}

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(jobs, pool.map(run, jobs.values())))
    return results


def _result(browser, stem, kind):
    res = browser.get((stem, kind))
    if res is None:
        pytest.fail(f"{stem}: no browser run ({kind})")
    if "error" in res:
        pytest.fail(f"{stem}: chromium failed: {res['error']!r}")
    return res


def _reveal_ready(dom: str) -> bool:
    start = dom.find('<div class="reveal')
    return start >= 0 and " ready" in dom[start:dom.find(">", start)]


def _content_variance(png: Path) -> float:
    pixels = mpimg.imread(png)[..., :3]
    return float(pixels[CONTENT].mean(axis=2).var())


def test_browser_has_no_network(browser):
    """The checks below mean something only if the test browser cannot fetch anything, and
    if the NetLog shows what a page tried to fetch."""
    res = _result(browser, "canary", "first")
    assert 'data-img="blocked"' in res["dom"], "the test browser reached the network"
    assert res["requests"] is not None, "chromium wrote no NetLog"
    assert "https://example.com/canary.png" in res["requests"]
    assert any(u.startswith("https://fonts.googleapis.com/") for u in res["requests"])


@pytest.mark.parametrize("stem", IDS)
def test_deck_in_browser(decks, browser, stem):
    deck = deck_of(decks, stem)
    res = _result(browser, stem, "first")
    dom = res["dom"]
    # (1) reveal.js initialised without network: a CDN dependency would leave class="reveal"
    assert _reveal_ready(dom), f"reveal.js did not start in {deck.name}: {res['stderr'][-500:]}"
    # (2) as many slides as the metadata says
    nb = nbformat.read(next(p for p in NOTEBOOKS if build.deck_stem(p) == stem), as_version=4)
    want_h, want_all = expected_slides(nb)
    sections = build.deck_sections(dom)
    got_h = len({h for h, _, _ in sections})
    assert (got_h, len(sections)) == (want_h, want_all), \
        f"{deck.name}: {got_h} horizontal / {len(sections)} slides, metadata says {want_h} / {want_all}"
    total = dom.split('class="slide-number-b">', 1)[-1].split("<", 1)[0].strip()
    assert total == str(want_all), f"reveal.js counts {total} slides, metadata says {want_all}"
    # (3) the first slide shows something
    var = _content_variance(res["png"])
    assert var > MIN_VAR_ANY, f"first slide of {deck.name} looks blank (variance {var:.2e})"
    # (4) no request left the page (file:// loads are not network requests)
    assert res["requests"] is not None, "chromium wrote no NetLog"
    assert res["requests"] == [], f"{deck.name} tried the network: {res['requests'][:5]}"
    assert 'class="MathJax_Error"' not in dom, f"MathJax failed in {deck.name}"


@pytest.mark.parametrize("stem", IDS)
def test_figure_slide(decks, browser, stem):
    deck = deck_of(decks, stem)
    url_hash = build.image_slide_hash(deck.read_text(encoding="utf-8"))
    if url_hash is None:
        if deck.name.startswith("slides_sample"):
            pytest.fail("the sample deck must have a figure output")
        pytest.skip(f"{deck.name} has no figure output")
    res = _result(browser, stem, "figure")
    assert _reveal_ready(res["dom"])
    present = [sec for _, _, sec in build.deck_sections(res["dom"])
               if "present" in (sec.get("class") or [])]
    assert present and present[-1].select_one(".jp-OutputArea-output img") is not None, \
        f"{deck.name}{url_hash} is not the slide with the figure"
    var = _content_variance(res["png"])
    assert var > MIN_VAR_FIGURE, f"{deck.name}{url_hash} looks blank (variance {var:.2e})"
    assert res["requests"] == []


def test_sample_math_is_typeset(browser):
    dom = _result(browser, "slides_sample", "first")["dom"]
    assert 'class="mjx-chtml' in dom, "MathJax did not typeset the sample's formula"


# --------------------------------------------------------------------------- lint
def test_lint_warn_mode_on_lessons():
    proc = subprocess.run(
        [sys.executable, "-m", "slides.lint", "--warn-only", *map(str, NOTEBOOKS)],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "notebook(s)" in proc.stderr
    for line in proc.stdout.splitlines():
        assert line.split(":", 1)[0] in {str(p) for p in NOTEBOOKS}, line


def test_lint_finds_problems():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    png = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=",
                                                                    "text/plain": "<Figure>"}}
    cells = [md("# Title"), code("\n".join(f"x{i} = {i}" for i in range(20))),
             md("## Two figures"), code("plot()"), code("plot()"), md("no metadata"),
             md("![remote](https://example.com/a.png)"), md("bad type")]
    cells[3].outputs = [nbformat.from_dict(png)]
    cells[4].outputs = [nbformat.from_dict(png)]
    for cell, st in zip(cells, ["slide", "-", "slide", "-", "-", None, "-", "Slide"]):
        if st:
            cell.metadata["slideshow"] = {"slide_type": st}
    nb = nbformat.v4.new_notebook(cells=cells)
    found = "\n".join(lint.lint_notebook(nb))
    assert "slide #/0/0 (cells 1-2): 20 lines of code" in found
    assert "slide #/1/0 (cells 3-8): 3 figures" in found  # 2 plots + the markdown image
    assert "cell 6 (markdown: 'no metadata'): no slideshow.slide_type" in found
    assert "unknown slide_type 'Slide'" in found
    assert "remote image https://example.com/a.png" in found
    # hiding the input or skipping the cell fixes the first problem
    cells[1].metadata["tags"] = ["hide-input"]
    assert "lines of code" not in "\n".join(lint.lint_notebook(nb))
