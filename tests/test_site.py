"""The course site: `./course site` builds it offline from the committed notebooks, and every page
works in a browser that has no network.

The site is built once per session into a temporary folder (Jupyter Book, the slide decks, the
homework release; MathJax and the slides' vendor files from build/site-cache and
build/slides-cache, downloaded with npm the first time). Every page is then opened in headless
Chromium through a probe copy (website.browser) with every request sent to a closed port:
no JavaScript error, no network request, math typeset; every internal link resolves; the
search finds the lesson that contains a word. The Chinese edition is a second tree (zh/) with one
page per lesson; every page of both trees has a language switch to the same page in the other
language (the other home page where there is none), which a reader sees and can follow. Without chromium (or without npm and an empty
cache) the browser tests are skipped, except under CI=true, where they fail.
The repository's address and what is made from it (website.links) are checked without a browser.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from slides import build as slides_build
from website import browser, links
from website import build as site_build

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
LESSONS = site_build.lesson_notebooks(ROOT)
ZH = site_build.ZH_DIR
PLACEHOLDERS = re.compile(r"<owner>|<repository>|<user(name)?>|<this repository|OWNER/REPO|your-?(user)?name/",
                          re.I)


def skip_or_fail(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the site checks must run)")
    pytest.skip(reason)


# --------------------------------------------------------------------------- the address
def test_readme_and_notebooks_agree_with_pyproject():
    stale = links.check(ROOT, write=False)
    assert stale == [], (f"made from [project.urls] {links.URL_KEY} but out of date: {stale}; "
                         "run .venv/bin/python -m website.links --write")


def test_no_placeholder_in_readme_or_notebooks():
    for path in [ROOT / "README.md", *LESSONS, *(ROOT / "docs").glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        found = PLACEHOLDERS.search(text)
        assert found is None, f"{path.relative_to(ROOT)} has the placeholder {found.group(0)!r}"


def test_address_parsing(tmp_path):
    def repo_of(table: str) -> links.Repo:
        (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n{table}', encoding="utf-8")
        return links.repository(tmp_path / "pyproject.toml")

    assert repo_of("").url is None
    assert repo_of('[project.urls]\nRepository = ""\n').url is None
    gh = repo_of('[project.urls]\nRepository = "https://github.com/some-org/attention-course.git"\n')
    assert gh.github == ("some-org", "attention-course")
    assert gh.install_spec == "attention-course @ git+https://github.com/some-org/attention-course.git"
    assert gh.colab_url("notebooks/03_x.ipynb") == \
        "https://colab.research.google.com/github/some-org/attention-course/blob/main/notebooks/03_x.ipynb"
    assert gh.binder_url("notebooks") == \
        "https://mybinder.org/v2/gh/some-org/attention-course/HEAD?urlpath=lab/tree/notebooks"
    other = repo_of('[project.urls]\nRepository = "https://gitlab.example.org/a/b"\n')
    assert other.github is None and other.colab_url("x") is None and other.install_spec.endswith("git+https://gitlab.example.org/a/b")
    with pytest.raises(ValueError, match="Repository must be an https:// address"):
        repo_of('[project.urls]\nRepository = "github.com/a/b"\n')


def test_readme_section_with_and_without_address():
    unset = links.readme_launch_section(links.Repo(None))
    assert "colab.research.google.com" not in unset and "mybinder.org" not in unset
    assert "[project.urls]" in unset and "website.links --write" in unset
    gh = links.readme_launch_section(links.Repo("https://github.com/some-org/attention-course"))
    assert "https://colab.research.google.com/github/some-org/attention-course/blob/main/notebooks/00_setup.ipynb" in gh
    assert "https://mybinder.org/v2/gh/some-org/attention-course/HEAD?urlpath=lab/tree/notebooks" in gh
    assert "git clone https://github.com/some-org/attention-course attention-course" in gh


def test_every_lesson_starts_with_the_prelude():
    repo = links.repository(ROOT / "pyproject.toml")
    for path in LESSONS:
        cell = links.first_code_cell(nbformat.read(path, as_version=4))
        assert cell.source.startswith(links.prelude(repo) + links.FIRST_LINE), \
            f"{path.name}: first code cell must begin with website.links.prelude() and then {links.FIRST_LINE!r}"


def _run_prelude(code: str, *, block: bool, cwd: Path) -> subprocess.CompletedProcess:
    """The prelude in a fresh Python, where course_utils cannot be found when ``block`` (no
    site-packages: -S); subprocess.run is replaced by a recorder so nothing is installed."""
    fake = ("import subprocess, json\n"
            "def _record(cmd, **kw):\n"
            "    print('PIP ' + json.dumps(cmd))\n"
            "    class R: returncode = 0\n"
            "    return R()\n"
            "subprocess.run = _record\n")
    flags = ["-I", "-S"] if block else ["-I"]
    return subprocess.run([sys.executable, *flags, "-c", fake + code], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def test_prelude_without_address_stops_with_one_sentence(tmp_path):
    proc = _run_prelude(links.prelude(links.Repo(None)), block=True, cwd=tmp_path)
    assert proc.returncode == 1
    message = proc.stderr.strip()
    assert message == links.MISSING_SENTENCE_NO_URL, message
    assert message.count(". ") == 0 and message.endswith("."), "one sentence"
    assert "PIP" not in proc.stdout


def test_prelude_with_address_installs_from_it(tmp_path):
    repo = links.Repo("https://github.com/some-org/attention-course")
    proc = _run_prelude(links.prelude(repo), block=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    pip = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("PIP ")]
    assert len(pip) == 1 and pip[0][1:] == ["-m", "pip", "install", "-q", repo.install_spec], pip
    assert "installing the course package from https://github.com/some-org/attention-course" in proc.stdout


@pytest.mark.parametrize("url", [None, "https://github.com/some-org/attention-course"])
def test_prelude_changes_nothing_where_course_utils_is_installed(url):
    import course_utils  # noqa: F401  (installed in this venv)

    proc = subprocess.run([sys.executable, "-c", "import course_utils"], capture_output=True, cwd=ROOT)
    if proc.returncode != 0:
        pytest.skip("course_utils is not importable from a plain python here")
    proc = _run_prelude(links.prelude(links.Repo(url)), block=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == "", (proc.stdout, proc.stderr)


def test_sync_rewrites_only_the_prelude(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · x"),
                                         nbformat.v4.new_code_cell(links.FIRST_LINE + "\nprint(SEED)")])
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="0\n")]
    nb.cells[1].execution_count = 1
    path = tmp_path / "99_x.ipynb"
    nbformat.write(nb, path)
    unset, gh = links.Repo(None), links.Repo("https://github.com/some-org/attention-course")
    assert links.sync_notebook(path, unset, write=True)
    assert not links.sync_notebook(path, unset, write=False)
    assert links.sync_notebook(path, gh, write=True)  # an old prelude is replaced, not stacked
    cell = nbformat.read(path, as_version=4).cells[1]
    assert cell.source == links.prelude(gh) + links.FIRST_LINE + "\nprint(SEED)"
    assert cell.outputs[0]["text"] == "0\n" and cell.execution_count == 1


# --------------------------------------------------------------------------- the build
@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("site")
    t0 = time.perf_counter()
    try:
        out = site_build.build(tmp / "site", tmp / "stage")
    except slides_build.VendorUnavailable as err:
        skip_or_fail(f"MathJax / reveal.js not available: {err}")
    print(f"\nsite built in {time.perf_counter() - t0:.1f} s (not asserted)")
    return out


def site_pages(site: Path) -> list[Path]:
    """Every page of the site, both languages (the slide decks have their own tests in test_slides.py)."""
    def in_book(parts):
        parts = parts[1:] if parts[0] == ZH else parts
        return parts[0] not in ("slides", "_static", "_sources") and not parts[-1].endswith(browser.PROBE_SUFFIX)

    return sorted(p for p in site.rglob("*.html") if in_book(p.relative_to(site).parts))


def test_site_has_every_lesson_and_page(site):
    for nb_path in LESSONS:
        assert (site / "notebooks" / f"{nb_path.stem}.html").is_file(), nb_path.stem
        assert (site / "slides" / f"{nb_path.stem}{slides_build.DECK_SUFFIX}").is_file()
        assert (site / "downloads" / "notebooks" / nb_path.name).read_bytes() == nb_path.read_bytes()
    for page in ["index.html", "search.html", "homework.html", "docs/homework.html", "docs/slides.html"]:
        assert (site / page).is_file(), page
    assert (site / "searchindex.js").is_file()
    for nb_path in LESSONS:
        zh = ROOT / site_build.ZH_SOURCES / nb_path.name
        assert (site / ZH / "downloads" / "notebooks" / nb_path.name).read_bytes() == zh.read_bytes()
    for page in ["index.html", "search.html", "searchindex.js"]:
        assert (site / ZH / page).is_file(), f"{ZH}/{page}"


def test_home_page_syllabus_has_measured_times(site):
    home = (site / "index.html").read_text(encoding="utf-8")
    table = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", home, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        link = re.search(r'href="notebooks/([^"]+)\.html"', row)
        if link and len(cells) == 4:
            table[link.group(1)] = cells
    readme = site_build.syllabus_rows(ROOT / "README.md")
    for nb_path in LESSONS:
        assert f'href="notebooks/{nb_path.stem}.html"' in home, f"home page does not link {nb_path.stem}"
        assert nb_path.stem in table, f"no syllabus row for {nb_path.stem}"
        want = readme.get(nb_path.stem, {"time": "not measured yet", "memory": "not measured yet"})
        assert table[nb_path.stem][2:] == [want["time"], want["memory"]], nb_path.stem
    text = re.sub(r"<[^>]+>", "", home)
    for words in ("./course open", "Syllabus", "Run it"):
        assert words in text


def test_lesson_pages_link_slides_and_download(site):
    for nb_path in LESSONS:
        page = (site / "notebooks" / f"{nb_path.stem}.html").read_text(encoding="utf-8")
        assert f'href="../slides/{nb_path.stem}{slides_build.DECK_SUFFIX}"' in page
        assert f'href="../downloads/notebooks/{nb_path.name}"' in page


def test_without_address_no_launch_links(site):
    if links.repository(ROOT / "pyproject.toml").github is not None:
        pytest.skip("a GitHub address is set")
    for page in site_pages(site):
        text = page.read_text(encoding="utf-8")
        for host in ("colab.research.google.com", "mybinder.org"):
            assert host not in text, f"{page.relative_to(site)} links {host} but no address is set"
        found = PLACEHOLDERS.search(text)
        assert found is None, f"{page.relative_to(site)}: placeholder {found.group(0)!r}"


def test_with_address_launch_links():
    repo = links.Repo("https://github.com/some-org/attention-course")
    line = site_build.lesson_links_html("03_additive_attention", repo, with_slides=True)
    assert repo.colab_url("notebooks/03_additive_attention.ipynb") in line
    assert repo.binder_url("notebooks/03_additive_attention.ipynb") in line
    cfg = site_build.config_yaml(repo)
    assert "colab_url: https://colab.research.google.com" in cfg and "binderhub_url: https://mybinder.org" in cfg
    bare = site_build.lesson_links_html("03_additive_attention", links.Repo(None), with_slides=True)
    assert "colab" not in bare.lower().replace("course-", "") and "binder" not in bare.lower()


def test_chinese_lesson_links_and_no_switch_without_a_second_language():
    repo = links.Repo("https://github.com/some-org/attention-course")
    line = site_build.lesson_links_html("03_additive_attention", repo, with_slides=True, lang="zh")
    assert repo.colab_url(f"{site_build.ZH_SOURCES}/03_additive_attention.ipynb") in line
    assert f'href="../../slides/03_additive_attention.zh{slides_build.DECK_SUFFIX}"' in line  # the Chinese deck
    assert 'href="../downloads/notebooks/03_additive_attention.ipynb"' in line
    assert site_build.SWITCH_TEMPLATE not in site_build.config_yaml(repo, "en", None)  # --no-zh: no dead switch
    assert site_build.SWITCH_TEMPLATE in site_build.config_yaml(repo, "en", ["index"])
    assert "zh_CN" in site_build.config_yaml(repo, "zh", ["index"])


def test_homework_downloads(site):
    page = (site / "homework.html").read_text(encoding="utf-8")
    hrefs = re.findall(r'href="(downloads/homework/[^"]+\.ipynb)"', page)
    assert hrefs, "the homework page offers no notebook"
    for href in hrefs:
        nb = nbformat.read(site / href, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, href


# --------------------------------------------------------------------------- the Chinese edition
def test_every_lesson_has_a_chinese_edition():
    missing = [p.name for p in LESSONS if not (ROOT / site_build.ZH_SOURCES / p.name).is_file()]
    assert not missing, f"no Chinese edition in {site_build.ZH_SOURCES}/ of {missing} (python -m i18n.translate build)"


def _html_lang(page: Path) -> str | None:
    m = re.search(r"<html[^>]*\slang=\"([^\"]*)\"", page.read_text(encoding="utf-8"))
    return m.group(1) if m else None


def test_chinese_tree_has_one_page_per_lesson_with_chinese_titles(site):
    assert sorted(p.stem for p in (site / ZH / "notebooks").glob("*.html")) == [p.stem for p in LESSONS]
    home = (site / ZH / "index.html").read_text(encoding="utf-8")
    for nb_path in LESSONS:
        title = site_build.notebook_title(nbformat.read(ROOT / site_build.ZH_SOURCES / nb_path.name, as_version=4))
        assert re.search(r"[\u4e00-\u9fff]", title), f"{nb_path.name}: Chinese title {title!r}"
        # the navigation (sidebar) of the Chinese tree names each lesson by its Chinese title
        link = re.search(rf'<a class="reference internal" href="notebooks/{nb_path.stem}\.html">([^<]*)</a>', home)
        assert link and html_lib.unescape(link.group(1)).strip() == title, (nb_path.stem, link and link.group(1))
    for page in site_pages(site):
        lang = _html_lang(page)
        if page.relative_to(site).parts[0] == ZH:
            assert lang and lang.lower().startswith("zh"), f"{page.relative_to(site)}: lang={lang!r}"
        else:
            assert lang == "en", f"{page.relative_to(site)}: lang={lang!r}"


class _Switches(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "course-lang-switch" in (a.get("class") or "").split():
            self._open = {**a, "text": ""}
            self.found.append(self._open)

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag == "a":
            self._open = None


def switch_problems(site: Path) -> tuple[list[str], int]:
    """Every page of both trees has one language switch, to an existing page of the other tree:
    the same page there (a lesson's switch goes to the same lesson) where it exists, else the
    other tree's home page. Returns (problems, switches that go to the same page)."""
    problems, same = [], 0
    zh_root = (site / ZH).resolve()
    for page in site_pages(site):
        rel = page.relative_to(site)
        in_zh = rel.parts[0] == ZH
        own, other = (site / ZH, site) if in_zh else (site, site / ZH)
        parser = _Switches()
        parser.feed(page.read_text(encoding="utf-8"))
        if len(parser.found) != 1:
            problems.append(f"{rel}: {len(parser.found)} language switches")
            continue
        sw = parser.found[0]
        href = sw.get("href") or ""
        parts = urlsplit(href)
        if not href or parts.scheme or href.startswith("/"):
            problems.append(f"{rel}: switch href {href!r} is not a relative link")
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        counterpart = other / page.relative_to(own)
        expected = (counterpart if counterpart.is_file() else other / "index.html").resolve()
        target_in_zh = target == zh_root or zh_root in target.parents
        if not target.is_file():
            problems.append(f"{rel}: switch to {href} (no such page)")
        elif target_in_zh == in_zh:
            problems.append(f"{rel}: switch to {href}, a page in its own language")
        elif target != expected:
            problems.append(f"{rel}: switch to {href}, not to {expected.relative_to(site.resolve())}")
        else:
            same += target == counterpart.resolve()
        if not sw["text"].strip():
            problems.append(f"{rel}: the switch has no text")
        want_lang = "en" if in_zh else "zh"
        if not (sw.get("hreflang") or "").lower().startswith(want_lang):
            problems.append(f"{rel}: switch hreflang {sw.get('hreflang')!r}, not {want_lang}")
    return problems, same


def test_language_switch_on_every_page_goes_to_the_counterpart(site):
    problems, same = switch_problems(site)
    assert not problems, "\n".join(problems[:20])
    # home, search, genindex and every lesson, in both directions
    assert same >= 2 * (len(LESSONS) + 3), same
    for nb_path in LESSONS:  # spelled out for the lessons
        assert f'href="../{ZH}/notebooks/{nb_path.stem}.html"' in \
            re.sub(r"\s+", " ", (site / "notebooks" / f"{nb_path.stem}.html").read_text(encoding="utf-8"))
        assert f'href="../../notebooks/{nb_path.stem}.html"' in \
            re.sub(r"\s+", " ", (site / ZH / "notebooks" / f"{nb_path.stem}.html").read_text(encoding="utf-8"))


def test_switch_check_catches_a_broken_switch(site, tmp_path):
    """switch_problems on a copy of the site's pages, three of them broken: it names each."""
    import shutil

    copy = tmp_path / "site"
    shutil.copytree(site, copy, ignore=shutil.ignore_patterns("_static", "_images", "_sources", "slides",
                                                              "downloads", "*.js", "*.inv"))
    assert switch_problems(copy)[0] == []
    a, b = LESSONS[3].stem, LESSONS[4].stem
    wrong = copy / ZH / "notebooks" / f"{a}.html"  # to the English page of another lesson
    wrong.write_text(wrong.read_text(encoding="utf-8").replace(f"../../notebooks/{a}.html", f"../../notebooks/{b}.html"),
                     encoding="utf-8")
    gone = copy / "notebooks" / f"{b}.html"  # no switch
    gone.write_text(gone.read_text(encoding="utf-8").replace("course-lang-switch", "course-something"), encoding="utf-8")
    dead = copy / "docs" / "slides.html"  # to a page that does not exist
    dead.write_text(dead.read_text(encoding="utf-8").replace(f"../{ZH}/index.html", f"../{ZH}/docs/slides.html"),
                    encoding="utf-8")
    problems = switch_problems(copy)[0]
    assert len(problems) == 3, problems
    assert any(p.startswith(f"{ZH}/notebooks/{a}.html: switch to ../../notebooks/{b}.html") for p in problems)
    assert any(p.startswith(f"notebooks/{b}.html: 0 language switches") for p in problems)
    assert any(p.startswith("docs/slides.html:") and "no such page" in p for p in problems)


def test_pages_load_nothing_from_the_network(site):
    assert site_build.remote_problems(site) == {}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        for key in {"a": ("href",), "link": ("href",), "img": ("src",), "script": ("src",),
                    "source": ("src",), "iframe": ("src",)}.get(tag, ()):
            if a.get(key):
                self.refs.append(a[key])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_every_internal_link_resolves(site):
    parsed: dict[Path, _Links] = {}
    broken, checked = [], 0
    for page in site_pages(site):
        for ref in _parse(page).refs:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith("//") or ref.startswith(("mailto:", "javascript:")):
                continue
            checked += 1
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {ref}")
                continue
            if parts.fragment and target.suffix == ".html":
                if target not in parsed:  # (setdefault would parse the page again for every link)
                    parsed[target] = _parse(target)
                ids = parsed[target].ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {ref} (no id {parts.fragment!r})")
    assert checked > 100, f"only {checked} links checked"
    assert not broken, f"{len(broken)} broken link(s): {broken[:10]}"


# --------------------------------------------------------------------------- browser
@pytest.fixture(scope="session")
def chromium() -> str:
    path = slides_build.find_chromium()
    if not path:
        skip_or_fail("chromium not found (Debian: apt-get install --no-install-recommends chromium)")
    return path


@pytest.fixture(scope="session")
def opened(site, chromium) -> dict[str, dict]:
    """Every page opened once in the offline browser, two at a time."""
    pages = site_pages(site)

    def run(page):
        try:
            return browser.open_page(page, chromium=chromium)
        except Exception as err:  # reported per page
            return {"error": repr(err)}

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, pages))
    return {str(p.relative_to(site)): r for p, r in zip(pages, results)}


def test_every_page_loads_offline_without_errors(opened):
    assert len(opened) >= len(LESSONS) + 5
    bad = {}
    for page, res in opened.items():
        problems = []
        if "error" in res:
            problems.append(res["error"])
        elif res["probe"] is None:
            problems.append("the page's scripts never ran (no probe report)")
        else:
            problems += [f"JS error: {e}" for e in res["probe"]["errors"]]
            problems += [f"console: {e}" for e in browser.console_errors(res["stderr"])]
            if res["requests"] is None:
                problems.append("chromium wrote no NetLog")
            elif res["requests"]:
                problems.append(f"network requests: {res['requests'][:5]}")
        if problems:
            bad[page] = problems
    assert not bad, json.dumps(bad, indent=1)[:3000]


def test_switch_visible_and_chinese_pages_show_chinese(opened):
    """In the browser: one switch, inside the first screen, on every page; a Chinese page says
    lang zh and shows Chinese text (a lesson: hundreds of characters), an English page lang en."""
    bad = {}
    for page, res in opened.items():
        probe = res.get("probe") or {}
        problems = []
        if probe.get("switches") != 1 or not (probe.get("switch") or {}).get("visible"):
            problems.append(f"switch: {probe.get('switches')} found, {probe.get('switch')}")
        if page.startswith(f"{ZH}/"):
            if not (probe.get("lang") or "").lower().startswith("zh"):
                problems.append(f"lang {probe.get('lang')!r}")
            if probe.get("cjk", 0) < (200 if page.startswith(f"{ZH}/notebooks/") else 5):
                problems.append(f"only {probe.get('cjk')} Chinese characters shown")
        elif probe.get("lang") != "en":
            problems.append(f"lang {probe.get('lang')!r}")
        if problems:
            bad[page] = problems
    assert not bad, json.dumps(bad, indent=1, ensure_ascii=False)[:3000]


@pytest.mark.parametrize("start", [f"{ZH}/notebooks/{LESSONS[3].stem}.html", f"notebooks/{LESSONS[-1].stem}.html"])
def test_switch_navigates_to_the_counterpart(site, chromium, start):
    """A click on the switch of a lesson page opens the same lesson in the other language."""
    in_zh = start.startswith(f"{ZH}/")
    stem = Path(start).stem
    res = browser.open_page(site / start, click="a.course-lang-switch", chromium=chromium)
    dom = res["dom"]
    lang = re.search(r"<html[^>]*\slang=\"([^\"]*)\"", dom)
    assert res["probe"] is None, "still on the page: the click did not navigate"
    assert lang and lang.group(1).lower().startswith("en" if in_zh else "zh"), lang and lang.group(1)
    src = ROOT / "notebooks" / f"{stem}.ipynb" if in_zh else ROOT / site_build.ZH_SOURCES / f"{stem}.ipynb"
    want = site_build.notebook_title(nbformat.read(src, as_version=4))
    title = html_lib.unescape(re.search(r"<title>(.*?)</title>", dom, re.S).group(1)).strip()
    assert title.startswith(want), (title, want)
    # the page reached is the counterpart: its own switch leads back to the start
    assert (f"../{ZH}/notebooks/{stem}.html" if in_zh else f"../../notebooks/{stem}.html") in re.sub(r"\s+", " ", dom)
    assert res["requests"] == []


def test_math_is_typeset(opened):
    with_math = 0
    for page, res in opened.items():
        probe = res.get("probe") or {}
        if probe.get("mathSource"):
            with_math += 1
            assert probe["mathjax"] >= probe["mathSource"], \
                f"{page}: {probe['mathjax']} of {probe['mathSource']} formulas typeset"
            assert probe["mathjaxErrors"] == 0, f"{page}: MathJax errors"
    assert with_math >= 3, f"only {with_math} page(s) have math"


def _unique_words(lesson: Path) -> list[str]:
    """Prose words of ``lesson`` found nowhere else on the site (markdown, code or outputs)."""
    def words(text):
        return set(re.findall(r"\b[a-z]{8,}\b", text.lower()))

    def md(path):  # prose only: no math, code, link targets or HTML, which the index may leave out
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        for pattern in (r"\$\$.*?\$\$", r"\$[^$]*\$", r"`[^`]*`", r"\]\([^)]*\)", r"<[^>]+>"):
            text = re.sub(pattern, " ", text, flags=re.S)
        return text

    elsewhere = set()
    for other in LESSONS:
        if other != lesson:
            elsewhere |= words(other.read_text(encoding="utf-8"))
    for doc in site_build.DOCS:
        elsewhere |= words((ROOT / doc).read_text(encoding="utf-8"))
    elsewhere |= words((ROOT / "README.md").read_text(encoding="utf-8"))
    return sorted(words(md(lesson)) - elsewhere)


@pytest.mark.parametrize("lesson", [LESSONS[1], LESSONS[-1]], ids=lambda p: p.stem)
def test_search_finds_the_lesson(site, chromium, lesson):
    candidates = _unique_words(lesson)
    assert candidates, f"no word is unique to {lesson.name}"
    word = candidates[0]
    res = browser.open_page(site / "search.html", query=f"?q={word}", chromium=chromium, budget_ms=8000)
    probe = res["probe"]
    assert probe and probe["searchDone"], f"the search for {word!r} did not finish: {res['stderr'][-500:]}"
    assert f"notebooks/{lesson.stem}.html" in [h.split("?")[0].split("#")[0] for h in probe["search"]], \
        f"searching {word!r} did not return {lesson.stem}: {probe['search']}"
    assert res["requests"] == [] and probe["errors"] == []


def test_chinese_words_are_index_terms():
    from website.zh_search import cjk_terms

    assert cjk_terms("加性注意力 Bahdanau，打分") == ["加性注意力", "加性", "性注", "注意", "意力", "打分", "打分"]


@pytest.mark.parametrize("lesson", [LESSONS[1], LESSONS[-1]], ids=lambda p: p.stem)
def test_chinese_search_finds_the_lesson(site, chromium, lesson):
    """The Chinese tree's search finds a lesson by the Chinese words of its title (without jieba:
    website/zh_search.py)."""
    title = site_build.notebook_title(nbformat.read(ROOT / site_build.ZH_SOURCES / lesson.name, as_version=4))
    word = max(re.findall(r"[\u4e00-\u9fff]+", title.partition("·")[2]), key=len)
    res = browser.open_page(site / ZH / "search.html", query=f"?q={word}", chromium=chromium, budget_ms=8000)
    probe = res["probe"]
    assert probe and probe["searchDone"], f"the search for {word!r} did not finish: {res['stderr'][-500:]}"
    assert f"notebooks/{lesson.stem}.html" in [h.split("?")[0].split("#")[0] for h in probe["search"]], \
        f"searching {word!r} did not return {lesson.stem}: {probe['search']}"
    assert res["requests"] == [] and probe["errors"] == []


def test_explorers_in_the_site_respond(site, chromium):
    """Every explorer among the lessons' stored outputs reacts to a click on a target word."""
    pages = [p for p in site_pages(site) if 'class="cu-ax"' in p.read_text(encoding="utf-8")]
    executed = []
    for nb_path in LESSONS:
        for cell in nbformat.read(nb_path, as_version=4).cells:
            if cell.cell_type == "code" and "attention_explorer(" in cell.source and cell.execution_count:
                assert any("text/html" in o.get("data", {}) for o in cell.outputs), \
                    f"{nb_path.name}: an executed explorer cell without its HTML output"
                executed.append(nb_path.stem)
    if not pages:
        assert not executed
        pytest.skip("no lesson's stored outputs hold an explorer yet (lessons 03 and 06 do once re-executed)")
    for page in pages:
        res = browser.open_page(page, actions=True, chromium=chromium)
        probe = res["probe"]
        assert probe and probe["errors"] == [] and res["requests"] == []
        assert probe["actions"], f"{page.name}: no explorer found by the probe"
        for rec in probe["actions"]:
            assert rec["before"]["ready"] == "1"
            assert rec["click"]["target"] != rec["before"]["target"]
            assert rec["click"]["w"] != rec["before"]["w"], f"{page.name}: a click changed no weight"
