"""Build the course website into build/site/ with Jupyter Book 1.x, offline.

    python -m website.build                 # ./course site
    python -m website.build --no-slides --no-homework   # quicker, lessons and docs only
    python -m website.build --screenshots images/        # also the README's two pictures

The lessons are the committed, executed notebooks (``notebooks/[0-9]*.ipynb``, so new lessons
are picked up), never re-executed. The build stages a book in ``build/site-src/``: a home page
(what the course is, the syllabus with the times measured in the README's table, how to run it),
every lesson (with a line of links: its slide deck, the notebook to download, Colab and Binder
where the repository's address is set, see ``website.links``), the homework student notebooks
made by ``./course homework release`` for download, and docs/homework.md and docs/slides.md.
Jupyter Book turns it into HTML in ``build/site-src/_build/html``; that is copied to
``build/site/`` with the reveal.js decks of ``slides.build`` in ``build/site/slides/``.

Offline: math is typeset by MathJax 3.2.2 from ``_static/mathjax/`` (fetched once with
``npm pack``, checked against the pinned sha512, cached in ``build/site-cache/``, like the
slides' vendor files); the search is Sphinx's own (an index in ``searchindex.js``); widget state
is dropped (its manager would come from a CDN). Every page is scanned for anything it would
load from the network, and the build fails if one would.
"""

from __future__ import annotations

import argparse
import filecmp
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from slides import build as slides_build
from website import links

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "build" / "site"
DEFAULT_STAGE = ROOT / "build" / "site-src"
DEFAULT_CACHE = ROOT / "build" / "site-cache"
HOMEWORK_RELEASE = ROOT / "build" / "homework" / "release"  # where `./course homework release` writes
TITLE = "Attention, step by step"
DOCS = ("docs/homework.md", "docs/slides.md")  # instructors' pages
SITE_FILES: set[str] = set()  # repository paths the site has a page or a copy of (filled by stage())

MATHJAX = ("mathjax", "3.2.2",
           "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==")
# tex-mml-chtml.js is what Sphinx loads from a CDN by default; the rest is what it loads on demand.
MATHJAX_KEEP = ["LICENSE", "es5/tex-mml-chtml.js", "es5/input/tex/extensions/",
                "es5/output/chtml/fonts/woff-v2/", "es5/ui/", "es5/a11y/"]
MATHJAX_PATH = "mathjax/es5/tex-mml-chtml.js"  # relative to the site's _static/


def log(msg: str) -> None:
    print(f"[site] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- small helpers
def write_if_changed(path: Path, data: str | bytes) -> None:
    """Write ``path`` only when its content changes, so Sphinx rebuilds only what changed."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.is_file() and path.read_bytes() == raw:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)


def copy_if_changed(src: Path, dst: Path) -> None:
    if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def lesson_notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(root.glob(links.NOTEBOOK_GLOB))


def notebook_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return ""


def ensure_mathjax(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The trimmed MathJax 3 tree in ``cache_dir/mathjax`` (npm pack on the first build)."""
    name, version, integrity = MATHJAX
    dest = cache_dir / "mathjax"
    stamp = json.dumps({"version": version, "integrity": integrity, "keep": MATHJAX_KEEP})
    if (dest / "STAMP.json").is_file() and (dest / "STAMP.json").read_text() == stamp:
        return dest
    tgz = slides_build._fetch_tarball(name, version, integrity, cache_dir / "npm")
    tmp = cache_dir / "mathjax.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    slides_build._extract_kept(tgz, MATHJAX_KEEP, tmp)
    (tmp / "STAMP.json").write_text(stamp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


# --------------------------------------------------------------------------- README facts
def syllabus_rows(readme: Path = ROOT / "README.md") -> dict[str, dict]:
    """The README syllabus table, by notebook stem: idea, wall time, peak memory."""
    text = readme.read_text(encoding="utf-8")
    m = re.search(r"<!-- syllabus:start -->(.*?)<!-- syllabus:end -->", text, re.S)
    rows: dict[str, dict] = {}
    note = ""
    if not m:
        return rows
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        link = re.search(r"\((notebooks/([^)]+)\.ipynb)\)", line)
        if line.startswith("|") and link and len(cells) >= 5:
            rows[link.group(2)] = {"idea": cells[2], "time": cells[3], "memory": cells[4]}
        elif line.startswith("Measured"):
            note = line.strip()
    rows["_note"] = {"text": note}
    return rows


# --------------------------------------------------------------------------- staging
def _rel(target: str, start: str) -> str:
    return os.path.relpath(target, start).replace(os.sep, "/")


def fix_links(markdown: str, doc: str, site_files: set[str], repo: links.Repo) -> str:
    """Markdown links of ``doc`` (a path in the repository) that point at repository files:
    to the staged copy when the site has it, else to the repository's web page (when set),
    else to plain text, so that no link on the site is dead."""
    doc_dir = os.path.dirname(doc)

    def resolve(target: str) -> str | None:
        for base in (doc_dir, ""):
            path = os.path.normpath(os.path.join(base, target)).replace(os.sep, "/")
            if (ROOT / path).exists() and not path.startswith(".."):
                return path
        return None

    def repl(m: re.Match) -> str:
        bang, text, target = m.group(1), m.group(2), m.group(3)
        url, _, frag = target.partition("#")
        if not url or re.match(r"^[a-z][a-z0-9+.-]*:", url, re.I) or url.startswith("//"):
            return m.group(0)
        path = resolve(url)
        if path in site_files:
            return f"{bang}[{text}]({_rel(path, doc_dir or '.')}{'#' + frag if frag else ''})"
        if path is not None and repo.blob_url(path):
            return f"{bang}[{text}]({repo.blob_url(path)})"
        return text if not bang else f"*{text}*"

    return re.sub(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)", repl, markdown)


def lesson_links_html(stem: str, repo: links.Repo, with_slides: bool) -> str:
    parts = []
    if with_slides:
        parts.append(f'<a class="course-slides" href="../slides/{stem}{slides_build.DECK_SUFFIX}">slides</a>')
    parts.append(f'<a class="course-download" href="../downloads/notebooks/{stem}.ipynb" '
                 f'download>notebook (.ipynb)</a>')
    colab = repo.colab_url(f"notebooks/{stem}.ipynb")
    binder = repo.binder_url(f"notebooks/{stem}.ipynb")
    if colab:
        parts.append(f'<a class="course-colab" href="{html_lib.escape(colab)}">open in Colab</a>')
    if binder:
        parts.append(f'<a class="course-binder" href="{html_lib.escape(binder)}">launch on Binder</a>')
    return '<p class="course-links">This lesson as ' + " · ".join(parts) + "</p>"


def stage_notebook(src: Path, dst: Path, repo: links.Repo, with_slides: bool) -> None:
    """A copy of a lesson for the book: links line after the title cell; no widget state."""
    import nbformat

    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data and "application/vnd.jupyter.widget-view+json" in data:
                data.pop("application/vnd.jupyter.widget-view+json")
        if cell.cell_type == "markdown":
            cell.source = fix_links(cell.source, f"notebooks/{src.name}", SITE_FILES, repo)
    first_md = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    links_cell = nbformat.v4.new_markdown_cell(lesson_links_html(src.stem, repo, with_slides))
    if nb.nbformat_minor < 5:  # cell ids came with nbformat 4.5
        links_cell.pop("id", None)
    nb.cells.insert(first_md + 1, links_cell)
    write_if_changed(dst, nbformat.writes(nb))


def home_page(notebooks: list[Path], repo: links.Repo, homework: list[tuple[str, str]]) -> str:
    import nbformat

    rows = syllabus_rows()
    lines = [f"# {TITLE}", "",
             "An open course that builds attention from the ground up, in Jupyter notebooks with PyTorch,",
             "on a laptop CPU. One small translation task runs through it: English to Chinese, starting",
             "with *Tom chase Jerry* → 汤姆 追逐 杰瑞. Each lesson builds its idea inline first and compares",
             "it with the tested helper package `course_utils`; every claim it makes is measured in a cell",
             "and guarded by an `assert`.", "",
             "Every lesson is also a slide deck, and most have a graded homework.", "",
             "## Syllabus", "",
             "| lesson | idea | wall time (s) | peak memory (MB) |",
             "| --- | --- | --- | --- |"]
    for nb_path in notebooks:
        title = notebook_title(nbformat.read(nb_path, as_version=4))
        short = re.split(r"[:(]", title, maxsplit=1)[0].strip() or nb_path.stem
        row = rows.get(nb_path.stem)
        idea = row["idea"] if row else title.partition("·")[2].strip() or nb_path.stem
        wall = row["time"] if row else "not measured yet"
        mem = row["memory"] if row else "not measured yet"
        lines.append(f"| [{short.replace('|', '/')}](notebooks/{nb_path.name}) | {idea} | {wall} | {mem} |")
    note = rows.get("_note", {}).get("text")
    lines += ["", note or "", "",
              "Each lesson is written to run in about 90 s on two CPU cores, with peak memory well under 2 GB.",
              "", "## Run it", "",
              "**On your laptop** (Python 3.10 or newer, bash: Linux, macOS or WSL), in a clone of the",
              "course repository:", "",
              "```bash", "./course open     # set up .venv/ once, then JupyterLab on the lessons",
              "./course test     # the unit tests and every lesson run top to bottom", "```", ""]
    if repo.github:
        lines += ["**On Colab**: every lesson page has an *open in Colab* link; the lesson's first cell",
                  "installs the course package when it is missing. "
                  f"[Lesson 00 on Colab]({repo.colab_url('notebooks/00_setup.ipynb')}).", "",
                  f"**On Binder**: [launch the course on Binder]({repo.binder_url('notebooks')}) "
                  "(a temporary JupyterLab with about 2 GB of memory: download your work).", ""]
    elif repo.url:
        lines += [f"The course package installs from {repo.url} wherever it is missing "
                  "(the first cell of every lesson does it).", ""]
    lines += ["Each lesson page also offers the notebook itself for download and its slide deck.", ""]
    if homework:
        lines += ["## Homework", "", "Student notebooks to download and fill in: [Homework](homework.md).", ""]
    lines += ["## For instructors", "",
              "- [Homework: release and grading](docs/homework.md)",
              "- [Slides: presenting the lessons](docs/slides.md)", ""]
    return "\n".join(lines)


def homework_page(homework: list[tuple[str, str]]) -> str:
    lines = ["# Homework", "",
             "Download a notebook, open it in JupyterLab (in the course's environment, where",
             "`course_utils` is installed), replace every `raise NotImplementedError()` with your code,",
             "and run the checks in the notebook. Your instructor grades the saved notebook.", ""]
    for name, title in homework:
        lines.append(f'- <a href="downloads/homework/{name}" download>{html_lib.escape(name)}</a>: {title}')
    lines.append("")
    return "\n".join(lines)


def release_homework() -> list[Path]:
    """Run the public release command (``./course homework release``); the student notebooks."""
    log("homework: python -m homework.cli release")
    proc = subprocess.run([sys.executable, "-m", "homework.cli", "release"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"./course homework release failed (rc={proc.returncode}): "
                           f"{(proc.stdout + proc.stderr).strip()[-800:]}")
    # hwNN/hwNN.ipynb only: release/zh/hwNN/hwNN.ipynb (the Chinese edition) has the same file names
    found = sorted(HOMEWORK_RELEASE.glob("hw[0-9][0-9]/hw[0-9][0-9].ipynb"))
    if not found:
        raise RuntimeError(f"./course homework release wrote no notebook under {HOMEWORK_RELEASE}")
    return found


def config_yaml(repo: links.Repo) -> str:
    cfg = {
        "title": TITLE,
        "author": "The authors of \"Attention, step by step\"",
        "copyright": "CC BY 4.0 (prose), MIT (code)",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},
        "parse": {"myst_enable_extensions": ["dollarmath", "amsmath", "html_image", "colon_fence"]},
        "html": {"use_download_button": False, "home_page_in_navbar": True,
                 "extra_footer": "Built offline from the committed notebooks with Jupyter Book."},
        "sphinx": {"config": {
            "mathjax_path": MATHJAX_PATH,
            "html_show_sourcelink": False,
            "suppress_warnings": ["mystnb.unknown_mime_type"],
            "nb_ipywidgets_js": {},
            "html_theme_options": {"search_bar_text": "Search the course…"},
        }},
    }
    if repo.github:
        cfg["repository"] = {"url": f"https://github.com/{repo.github[0]}/{repo.github[1]}",
                             "branch": repo.branch, "path_to_book": ""}
        cfg["html"].update({"use_repository_button": True})
        cfg["launch_buttons"] = {"notebook_interface": "jupyterlab",
                                 "binderhub_url": "https://mybinder.org",
                                 "colab_url": "https://colab.research.google.com"}
    else:
        cfg["launch_buttons"] = {"binderhub_url": "", "colab_url": "", "thebe": False}
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)


def toc_yaml(notebooks: list[Path], homework: bool) -> str:
    import yaml

    parts = [{"caption": "Lessons", "chapters": [{"file": f"notebooks/{p.stem}"} for p in notebooks]}]
    if homework:
        parts.append({"caption": "Homework", "chapters": [{"file": "homework"}]})
    parts.append({"caption": "For instructors", "chapters": [{"file": d[:-3]} for d in DOCS]})
    return yaml.safe_dump({"format": "jb-book", "root": "index", "parts": parts}, sort_keys=False)


COURSE_CSS = """\
/* Course additions to the book theme */
p.course-links { font-size: 0.95em; padding: 0.4em 0.8em; border-left: 3px solid #4878d0;
                 background: #f4f6fb; }
"""


def stage(stage_dir: Path, notebooks: list[Path], repo: links.Repo, homework: list[Path],
          with_slides: bool, cache_dir: Path) -> None:
    """Write the book's sources into ``stage_dir`` (unchanged files keep their mtime)."""
    import nbformat

    SITE_FILES.clear()
    SITE_FILES.update(f"notebooks/{p.name}" for p in notebooks)
    SITE_FILES.update(DOCS)
    for img in sorted((ROOT / "images").glob("*")):
        if img.is_file():
            SITE_FILES.add(f"images/{img.name}")
            copy_if_changed(img, stage_dir / "images" / img.name)
    # lessons that are gone from notebooks/ leave the stage too
    for old in (stage_dir / "notebooks").glob("*.ipynb") if (stage_dir / "notebooks").is_dir() else []:
        if f"notebooks/{old.name}" not in SITE_FILES:
            old.unlink()
    for nb_path in notebooks:
        stage_notebook(nb_path, stage_dir / "notebooks" / nb_path.name, repo, with_slides)
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        write_if_changed(stage_dir / doc, fix_links(text, doc, SITE_FILES, repo))
    hw = []
    for path in homework:
        nb = nbformat.read(path, as_version=4)
        hw.append((path.name, notebook_title(nb).replace("|", "\\|") or path.stem))
    write_if_changed(stage_dir / "index.md", home_page(notebooks, repo, hw))
    homework_md = stage_dir / "homework.md"
    if hw:
        write_if_changed(homework_md, homework_page(hw))
    elif homework_md.exists():
        homework_md.unlink()
    write_if_changed(stage_dir / "_config.yml", config_yaml(repo))
    write_if_changed(stage_dir / "_toc.yml", toc_yaml(notebooks, bool(hw)))
    static = stage_dir / "_static"
    write_if_changed(static / "course.css", COURSE_CSS)
    # MathJax is copied into the built site, not staged: Jupyter Book adds a <script> for every
    # .js file under the book's _static/ to every page.
    shutil.rmtree(static / "mathjax", ignore_errors=True)


def run_jupyter_book(stage_dir: Path) -> Path:
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
           "build", str(stage_dir), "--builder", "html"]
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
    proc = subprocess.run(cmd, cwd=stage_dir, capture_output=True, text=True, env=env, timeout=1200)
    out = proc.stdout + proc.stderr
    warnings = [ln for ln in out.splitlines() if "WARNING" in ln or "ERROR" in ln]
    for ln in warnings[:40]:
        log(f"sphinx: {ln.strip()}")
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (rc={proc.returncode}):\n{out[-3000:]}")
    html = stage_dir / "_build" / "html"
    if not (html / "index.html").is_file():
        raise RuntimeError(f"jupyter-book wrote no {html / 'index.html'}:\n{out[-2000:]}")
    return html


_THEBE = re.compile(r'<script>const THEBE_JS_URL = [^<]*</script>\s*|<script async="async" src="[^"]*sphinx-thebe\.js[^"]*"></script>\s*')


def tidy_html(out_dir: Path) -> None:
    """Drop what the theme ships but the site never uses, and which names a CDN or is a template:
    sphinx-thebe's loader (thebe, live code cells from a Binder kernel, is not enabled here; its
    script only holds the CDN address of thebe) and the themes' Jinja macro files in _static/."""
    for page in out_dir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = _THEBE.sub("", text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    for macro in (out_dir / "_static").glob("*webpack-macros.html"):
        macro.unlink()


def remote_problems(out_dir: Path) -> dict[str, list[str]]:
    """Per page: what it would load from the network (or a local file it lacks)."""
    found = {}
    for page in sorted(out_dir.rglob("*.html")):
        if "slides" in page.relative_to(out_dir).parts[:1]:
            continue  # the decks are checked by slides.build itself
        problems = slides_build.remote_references(page)
        if problems:
            found[str(page.relative_to(out_dir))] = problems
    return found


def build(out_dir: Path = DEFAULT_OUT, stage_dir: Path = DEFAULT_STAGE, cache_dir: Path = DEFAULT_CACHE,
          notebooks: list[Path] | None = None, with_slides: bool = True,
          with_homework: bool = True) -> Path:
    t0 = time.perf_counter()
    repo = links.repository()
    notebooks = lesson_notebooks() if notebooks is None else notebooks
    if not notebooks:
        raise RuntimeError(f"no lesson notebook matches {links.NOTEBOOK_GLOB}")
    homework = release_homework() if with_homework else []
    stage(stage_dir, notebooks, repo, homework, with_slides, cache_dir)
    log(f"staged {len(notebooks)} lesson(s), {len(homework)} homework in {stage_dir} "
        f"({time.perf_counter() - t0:.1f} s); repository: {repo.url or 'not set (no Colab/Binder links)'}")
    t1 = time.perf_counter()
    html = run_jupyter_book(stage_dir)
    log(f"jupyter-book: {time.perf_counter() - t1:.1f} s")
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(html, tmp, ignore=shutil.ignore_patterns(".buildinfo", ".doctrees"))
    shutil.rmtree(tmp / "_static" / "mathjax", ignore_errors=True)
    shutil.copytree(ensure_mathjax(cache_dir), tmp / "_static" / "mathjax")
    tidy_html(tmp)
    for nb_path in notebooks:  # the notebooks as committed, for download
        copy_if_changed(nb_path, tmp / "downloads" / "notebooks" / nb_path.name)
    for path in homework:
        copy_if_changed(path, tmp / "downloads" / "homework" / path.name)
    if with_slides:
        t2 = time.perf_counter()
        slides_build.build(notebooks, tmp / "slides", slides_build.DEFAULT_CACHE)
        log(f"slides: {time.perf_counter() - t2:.1f} s")
    problems = remote_problems(tmp)
    if problems:
        raise RuntimeError("pages that would need the network: " + "; ".join(
            f"{page}: {items[:3]}" for page, items in list(problems.items())[:5]))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    log(f"site in {out_dir} ({time.perf_counter() - t0:.1f} s); open {out_dir / 'index.html'}")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m website.build", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default build/site)")
    ap.add_argument("--stage", type=Path, default=DEFAULT_STAGE,
                    help="where the book's sources are staged (default build/site-src)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="MathJax download cache")
    ap.add_argument("--no-slides", action="store_true", help="leave out the slide decks")
    ap.add_argument("--no-homework", action="store_true", help="leave out the homework downloads")
    ap.add_argument("--screenshots", type=Path, metavar="DIR",
                    help="also save site_lesson.png and site_explorer.png into DIR (for the README)")
    args = ap.parse_args(argv)
    try:
        out = build(args.out, args.stage, args.cache, with_slides=not args.no_slides,
                    with_homework=not args.no_homework)
    except (RuntimeError, slides_build.VendorUnavailable) as err:
        log(f"ERROR {err}")
        return 1
    if args.screenshots:
        from website import browser

        browser.readme_screenshots(out, args.screenshots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
