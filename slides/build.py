"""Build offline reveal.js slide decks from the committed, executed lesson notebooks.

    python -m slides.build                      # every notebooks/[0-9]*.ipynb -> build/slides/
                                                # and notebooks/zh/[0-9]*.ipynb -> <stem>.zh.slides.html
    python -m slides.build notebooks/03_x.ipynb # only some decks
    python -m slides.build --screenshot images/slides_screenshot.png

Notebooks are converted as they are stored (never re-executed) with nbconvert's reveal
template, slightly extended in ``slides/templates/course_reveal`` (no mermaid, no widget
manager, course CSS from ``slides/custom.css``). Slide structure comes from each cell's
``metadata.slideshow.slide_type`` (missing -> "-"); cells tagged ``hide-input`` show only
their output; prompts are hidden; the layout is 1280x800.

Everything a deck loads is local: reveal.js 4.0.2, jQuery 2.2.4, require.js 2.1.10 and
MathJax 2.7.7 (trimmed to ~4 MB) are fetched from the npm registry with ``npm pack`` the first
time, checked against the pinned sha512 below, kept in ``build/slides-cache/`` and copied
into ``build/slides/vendor/``; images in markdown cells are embedded as data URIs. Later
builds need neither npm nor a network. Copy the whole ``build/slides/`` folder to present.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import html as html_lib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
NOTEBOOK_GLOB = "notebooks/[0-9]*.ipynb"
ZH_GLOB = "notebooks/zh/[0-9]*.ipynb"
SAMPLE_NOTEBOOK = ROOT / "tests" / "data" / "slides_sample.ipynb"
DEFAULT_OUT = ROOT / "build" / "slides"
DEFAULT_CACHE = ROOT / "build" / "slides-cache"
DECK_SUFFIX = ".slides.html"

SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")
HIDE_INPUT_TAGS = {"hide-input"}
WIDTH, HEIGHT = 1280, 800

# npm package -> (version, sha512 integrity as printed by `npm pack --json`)
VENDOR = {
    "reveal.js": (
        "4.0.2",
        "sha512-LWZSUenufF1gpD7npxJ7KfoQQFKgc1D6XrLTFgKlwWNP1BQ74hT48KONFWMAw+8R/QUeaScCLCLrBVHDfFIEiw==",
    ),
    "jquery": (
        "2.2.4",
        "sha512-lBHj60ezci2u1v2FqnZIraShGgEXq35qCzMv4lITyHGppTnA13rwR0MgwyNJh9TnDs3aXUvd1xjAotfraMHX/Q==",
    ),
    "requirejs": (
        "2.1.10",
        "sha512-4JqdTihK3kOnT387LxCHuJZ/9QsKg2EIl7LmaW35PIyM4LwCI2jwyy4fy6pbY/ZZH2JoY/QEcb5PzULFPP6gcQ==",
    ),
    "mathjax": (
        "2.7.7",
        "sha512-OOl0B2/0tSJAtAZarXnQuLDBLgTNRqiI9VqHTQzPsxf4okT2iIpDrvaklK9x2QEMD1sDj4yRn11Ygci41DxMAQ==",
    ),
}
# What each package keeps (paths inside the tarball's package/; a trailing / keeps a folder)
# and the folder under vendor/ it goes to. Only reveal's "white" theme is kept: the other
# themes (nbconvert's default "simple" included) import fonts from fonts.googleapis.com.
VENDOR_KEEP = {
    "reveal.js": ("reveal.js", [
        "LICENSE", "dist/reveal.js", "dist/reveal.css", "dist/reset.css",
        "dist/theme/white.css", "dist/theme/fonts/source-sans-pro/", "plugin/notes/",
    ]),
    "jquery": ("jquery", ["LICENSE.txt", "dist/jquery.min.js"]),
    "requirejs": ("requirejs", ["README.md", "require.js"]),
    "mathjax": ("mathjax", [
        "LICENSE", "MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js",
        "jax/input/TeX/", "jax/output/CommonHTML/", "jax/element/", "extensions/",
        "fonts/HTML-CSS/TeX/woff/", "localization/en/",
    ]),
}
THEME = "white"
EXPORTER_URLS = {  # relative to the deck, so the folder can be moved or copied to a USB stick
    "reveal_url_prefix": "vendor/reveal.js",
    "jquery_url": "vendor/jquery/dist/jquery.min.js",
    "require_js_url": "vendor/requirejs/require.js",
    "mathjax_url": "vendor/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
}


class VendorUnavailable(RuntimeError):
    """The vendored JavaScript is neither cached nor downloadable (no npm or no registry)."""


def log(msg: str) -> None:
    print(f"[slides] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- metadata
def slide_type(cell) -> str:
    """A cell's ``metadata.slideshow.slide_type``; missing, empty or not a string -> "-".

    Unknown strings are returned as they are: nbconvert treats them like "-" and
    ``slides.lint`` reports them.
    """
    show = cell.get("metadata", {}).get("slideshow")
    value = show.get("slide_type") if isinstance(show, dict) else None
    return value if isinstance(value, str) and value else "-"


def prepare_notebook(nb):
    """A copy of ``nb`` ready for the exporter: every cell has a slide_type, no widget state
    (its manager would come from a CDN; outputs fall back to their text form), and the deck
    title is the first markdown heading."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        st = slide_type(cell)
        if not isinstance(cell.metadata.get("slideshow"), dict):
            cell.metadata["slideshow"] = {}
        cell.metadata["slideshow"]["slide_type"] = st
    if "title" not in nb.metadata:
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                m = re.search(r"^#{1,2}\s+(.+)$", cell.source, re.M)
                if m:
                    nb.metadata["title"] = re.sub(r"[*_`$\\]", "", m.group(1)).strip()
                    break
    return nb


# --------------------------------------------------------------------------- vendor files
def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _fetch_tarball(name: str, version: str, integrity: str, npm_dir: Path) -> Path:
    tgz = npm_dir / f"{name}-{version}.tgz"
    if tgz.exists() and _integrity(tgz) == integrity:
        return tgz
    npm = shutil.which("npm")
    if npm is None:
        raise VendorUnavailable(
            f"npm not found and {tgz} not cached: install Node.js/npm (Debian: apt-get install "
            f"npm) or put the tarball there (`npm pack {name}@{version}`)")
    npm_dir.mkdir(parents=True, exist_ok=True)
    log(f"npm pack {name}@{version}")
    with tempfile.TemporaryDirectory(dir=npm_dir) as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", f"{name}@{version}", "--json", "--pack-destination", tmp],
                capture_output=True, text=True, timeout=300, cwd=tmp)
        except subprocess.TimeoutExpired as err:
            raise VendorUnavailable(f"npm pack {name}@{version} timed out") from err
        got = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(got) != 1:
            raise VendorUnavailable(
                f"npm pack {name}@{version} failed (rc={proc.returncode}): "
                f"{proc.stderr.strip()[-500:]}")
        if _integrity(got[0]) != integrity:
            raise RuntimeError(f"{got[0].name}: sha512 differs from the pinned integrity")
        os.replace(got[0], tgz)
    return tgz


def _extract_kept(tgz: Path, keep: list[str], dest: Path) -> None:
    with tarfile.open(tgz) as tar:
        members = []
        for m in tar.getmembers():
            rel = m.name.split("/", 1)[1] if "/" in m.name else ""
            if not m.isfile() or not any(rel == k or (k.endswith("/") and rel.startswith(k))
                                         for k in keep):
                continue
            if rel.startswith("/") or ".." in rel.split("/"):
                raise RuntimeError(f"{tgz.name}: unsafe path {m.name}")
            m.name = rel
            members.append(m)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(dest, members=members, filter="data")
        else:
            tar.extractall(dest, members=members)


def ensure_vendor(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The trimmed vendor tree in ``cache_dir/vendor`` (downloaded with npm pack if missing)."""
    vendor = cache_dir / "vendor"
    stamp = json.dumps({k: list(v) for k, v in VENDOR.items()} | {"keep": VENDOR_KEEP},
                       sort_keys=True)
    if (vendor / "STAMP.json").is_file() and (vendor / "STAMP.json").read_text() == stamp:
        return vendor
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vendor-", dir=cache_dir))
    tmp.chmod(0o755)
    try:
        for name, (version, integrity) in VENDOR.items():
            tgz = _fetch_tarball(name, version, integrity, cache_dir / "npm")
            folder, keep = VENDOR_KEEP[name]
            _extract_kept(tgz, keep, tmp / folder)
        remote = [f"{p.relative_to(tmp)}: {u}" for p in tmp.rglob("*.css") for u in _css_remote_refs(p)]
        if remote:
            raise RuntimeError("vendored CSS needs the network: " + "; ".join(remote))
        (tmp / "STAMP.json").write_text(stamp)
        if vendor.exists():
            shutil.rmtree(vendor)
        os.replace(tmp, vendor)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return vendor


def install_vendor(out_dir: Path, cache_dir: Path = DEFAULT_CACHE) -> None:
    """Copy the cached vendor tree to ``out_dir/vendor`` unless it is already there."""
    src = ensure_vendor(cache_dir)
    dst = out_dir / "vendor"
    if (dst / "STAMP.json").is_file() and (dst / "STAMP.json").read_text() == (src / "STAMP.json").read_text():
        return
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


# --------------------------------------------------------------------------- conversion
def make_exporter():
    from nbconvert.exporters import SlidesExporter
    from traitlets.config import Config

    c = Config()
    c.TemplateExporter.extra_template_basedirs = [str(HERE / "templates")]
    c.SlidesExporter.template_name = "course_reveal"
    c.TemplateExporter.exclude_input_prompt = True
    c.TemplateExporter.exclude_output_prompt = True
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = set(HIDE_INPUT_TAGS)
    for key, value in EXPORTER_URLS.items():
        setattr(c.SlidesExporter, key, value)
    c.SlidesExporter.reveal_theme = THEME
    c.SlidesExporter.reveal_transition = "fade"
    c.SlidesExporter.reveal_number = "c/t"
    c.SlidesExporter.reveal_width = str(WIDTH)
    c.SlidesExporter.reveal_height = str(HEIGHT)
    # nbconvert's reveal_scroll compares layout and screen pixels: the template scrolls instead
    c.SlidesExporter.embed_images = True
    return SlidesExporter(config=c)


def _embed_local_images(html: str, nb_dir: Path) -> tuple[str, list[str]]:
    """Embed <img src="relative/path"> as data URIs (nbconvert's embed_images refuses paths
    outside the notebook's folder, such as the course's ../images/x.svg)."""
    import mimetypes

    from bs4 import BeautifulSoup

    if not re.search(r"""<img\b[^>]*\bsrc=["'](?!data:)""", html):
        return html, []
    soup = BeautifulSoup(html, features="html.parser")
    missing, changed = [], False
    allowed = (ROOT.resolve(), nb_dir.resolve())
    for img in soup.find_all("img"):
        src = img.get("src", "")
        parts = urlsplit(src)
        if not src or parts.scheme or src.startswith("//"):
            continue
        path = (nb_dir / unquote(parts.path)).resolve()
        if not path.is_file() or not any(path.is_relative_to(a) for a in allowed):
            missing.append(src)
            continue
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        img["src"] = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
        changed = True
    return (str(soup) if changed else html), missing


def language_of(nb) -> str:
    """The notebook's language: "zh" for the Chinese edition (i18n.translate marks it), else "en"."""
    return (nb.metadata.get("course") or {}).get("language") or "en"


def deck_stem(nb_path: Path) -> str:
    """``03_x`` for notebooks/03_x.ipynb, ``03_x.zh`` for its Chinese edition notebooks/zh/03_x.ipynb."""
    nb_path = Path(nb_path)
    return f"{nb_path.stem}.zh" if nb_path.parent.name == "zh" else nb_path.stem


def build_deck(nb_path: Path, out_dir: Path, exporter=None) -> Path:
    """Convert one notebook (as stored, not re-executed) to ``out_dir/<deck_stem>.slides.html``."""
    import nbformat

    exporter = exporter or make_exporter()
    nb = prepare_notebook(nbformat.read(nb_path, as_version=4))
    resources = {
        "metadata": {"name": deck_stem(nb_path), "path": str(nb_path.parent)},
        "course_css": (HERE / "custom.css").read_text(encoding="utf-8"),
    }
    # <html lang>, which picks the CJK fonts; an ISO 639-1 code ("zh-CN" is refused by nbconvert)
    exporter.language_code = language_of(nb)
    html, _ = exporter.from_notebook_node(nb, resources=resources)
    html, missing = _embed_local_images(html, nb_path.parent)
    for src in missing:
        log(f"WARNING {nb_path.name}: image not found: {src}")
    deck = out_dir / (deck_stem(nb_path) + DECK_SUFFIX)
    deck.write_text(html, encoding="utf-8")
    return deck


def write_index(out_dir: Path, decks: list[Path]) -> Path:
    items = []
    for deck in decks:
        m = re.search(r"<title>(.*?)</title>", deck.read_text(encoding="utf-8"), re.S)
        title = m.group(1).strip() if m else deck.stem
        items.append(f'<li><a href="{html_lib.escape(deck.name)}">{title}</a></li>')
    index = out_dir / "index.html"
    index.write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Attention, step by step: slides</title></head>\n"
        "<body style=\"font-family: sans-serif; font-size: 20px; margin: 2em\">\n"
        "<h1>Attention, step by step: slides</h1>\n<ul>\n" + "\n".join(items) + "\n</ul>\n"
        "<p>Keys: arrows or space to move, <kbd>Esc</kbd> overview, <kbd>S</kbd> speaker notes, "
        "<kbd>F</kbd> full screen.</p>\n</body></html>\n", encoding="utf-8")
    return index


def lesson_notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(root.glob(NOTEBOOK_GLOB))


def translated_notebooks(root: Path = ROOT) -> list[Path]:
    """The Chinese edition of the lessons (python -m i18n.translate build): one deck each."""
    return sorted(root.glob(ZH_GLOB))


def build(notebooks: list[Path], out_dir: Path = DEFAULT_OUT,
          cache_dir: Path = DEFAULT_CACHE) -> list[Path]:
    """Build one deck per notebook into ``out_dir`` (plus vendor/ and index.html)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    install_vendor(out_dir, cache_dir)
    exporter = make_exporter()
    decks, failed = [], []
    for nb_path in notebooks:
        t0 = time.perf_counter()
        try:
            deck = build_deck(Path(nb_path), out_dir, exporter)
        except Exception as err:  # keep going: one broken notebook must not hide the others
            log(f"FAILED {nb_path}: {type(err).__name__}: {err}")
            failed.append(nb_path)
            continue
        problems = remote_references(deck)
        if problems:
            log(f"FAILED {deck.name} would need the network: {problems[:5]}")
            failed.append(nb_path)
        decks.append(deck)
        log(f"{deck}  ({time.perf_counter() - t0:.1f} s)")
    write_index(out_dir, decks)
    if failed:
        raise SystemExit(f"[slides] {len(failed)} deck(s) failed: {', '.join(map(str, failed))}")
    return decks


# --------------------------------------------------------------------------- offline checks
_CSS_URL = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")]+)""", re.I)


def _is_remote(url: str) -> bool:
    url = url.strip()
    return bool(re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", url, re.I)) and not url.lower().startswith("file:")


def _css_remote_refs(css_file: Path, seen: set | None = None) -> list[str]:
    """Remote URLs in a local CSS file and the local files it @imports."""
    seen = set() if seen is None else seen
    if css_file in seen or not css_file.is_file():
        return []
    seen.add(css_file)
    found = []
    for m in _CSS_URL.finditer(css_file.read_text(encoding="utf-8", errors="replace")):
        url = m.group(1) or m.group(2)
        if _is_remote(url):
            found.append(url)
        elif m.group(1) and not url.startswith("data:"):
            found += _css_remote_refs((css_file.parent / urlsplit(url).path).resolve(), seen)
    return found


def remote_references(deck: Path) -> list[str]:
    """Everything in a deck that would be fetched from elsewhere than the deck's folder:
    remote (http, https, protocol-relative) URLs in src/href/data/poster/srcset of loading
    elements, in inline CSS and in the local CSS it links; local files that do not exist."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(deck.read_text(encoding="utf-8"), features="html.parser")
    problems = []
    attrs = {"script": ["src"], "link": ["href"], "img": ["src", "srcset"], "iframe": ["src"],
             "source": ["src", "srcset"], "video": ["src", "poster"], "audio": ["src"],
             "embed": ["src"], "object": ["data"], "input": ["src"], "track": ["src"],
             "image": ["href", "xlink:href"], "use": ["href", "xlink:href"]}
    for tag in soup.find_all(list(attrs)):
        if tag.name == "link" and not set(tag.get("rel", [])) & {"stylesheet", "preload", "icon",
                                                                  "modulepreload", "prefetch"}:
            continue
        for attr in attrs[tag.name]:
            value = tag.get(attr)
            if not value:
                continue
            urls = [u.strip().split(" ")[0] for u in value.split(",")] if attr == "srcset" else [value]
            for url in urls:
                if _is_remote(url):
                    problems.append(f"<{tag.name} {attr}={url}>")
                elif not url.startswith(("data:", "#", "blob:", "about:")):
                    local = (deck.parent / unquote(urlsplit(url).path)).resolve()
                    if not local.is_file():
                        problems.append(f"<{tag.name} {attr}={url}> (missing file)")
                    elif local.suffix == ".css":
                        problems += [f"{url}: {u}" for u in _css_remote_refs(local)]
    for style in soup.find_all("style"):
        problems += [f"<style>: {m.group(1) or m.group(2)}" for m in _CSS_URL.finditer(style.get_text())
                     if _is_remote(m.group(1) or m.group(2))]
    for tag in soup.find_all(style=True):
        problems += [f"style=: {m.group(2)}" for m in _CSS_URL.finditer(tag["style"])
                     if m.group(2) and _is_remote(m.group(2))]
    for script in soup.find_all("script", src=False):
        code = script.get_text()
        problems += [f"<script> import {u}" for u in
                     re.findall(r"""\bimport\s*(?:[^'"]*?\bfrom\s*)?\(?\s*['"]([^'"]+)""", code)
                     if _is_remote(u)]
        # require([...]) lists, script loaders of cell outputs (plotly, bokeh, ...)
        problems += [f"<script> {u}" for u in
                     re.findall(r"""['"]((?:https?:)?//[^'"\s]+?\.(?:m?js|css)(?:\?[^'"\s]*)?)['"]""", code)]
    return problems


# --------------------------------------------------------------------------- deck structure
def deck_sections(html: str):
    """The deck's slides as [(h, v, section)] in reveal order (nbconvert nests every slide)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, features="html.parser")
    slides = soup.select_one("div.reveal > div.slides")
    out = []
    if slides is None:
        return out
    for h, top in enumerate(slides.find_all("section", recursive=False)):
        subs = top.find_all("section", recursive=False) or [top]
        out += [(h, v, sub) for v, sub in enumerate(subs)]
    return out


def image_slide_hash(html: str) -> str | None:
    """URL hash (#/h/v or #/h/v/f) of the first slide showing an <img> from a cell output."""
    for h, v, sec in deck_sections(html):
        img = sec.select_one(".jp-OutputArea-output img")
        if img is None:
            continue
        frag = img.find_parent("div", class_="fragment")
        if frag is not None:
            return f"#/{h}/{v}/{sec.select('.fragment').index(frag)}"
        return f"#/{h}/{v}"
    return None


# --------------------------------------------------------------------------- headless browser
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    # no network: requests go to a closed local port, and no host name resolves
    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for cand in CHROMIUM_CANDIDATES:
        path = cand if os.path.isabs(cand) and os.access(cand, os.X_OK) else shutil.which(cand)
        if path:
            return path
    return None


def run_chromium(url: str, *, screenshot: Path | None = None, dump_dom: bool = True,
                 netlog: Path | None = None, chromium: str | None = None,
                 window: tuple[int, int] = (WIDTH, HEIGHT), budget_ms: int = 8000,
                 timeout: float = 90) -> tuple[str, str]:
    """Open ``url`` in headless Chromium without network; returns (DOM after scripts, stderr).

    ``netlog`` records every network request the browser attempts (see page_requests).
    The whole process group is killed on timeout, so no Chromium is left behind.
    """
    chromium = chromium or find_chromium()
    if not chromium:
        raise FileNotFoundError("chromium not found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="slides-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}",
               "--enable-logging=stderr", "--v=0"]
        if netlog:
            cmd += [f"--log-net-log={Path(netlog).resolve()}", "--net-log-capture-mode=Default"]
        if screenshot:
            cmd.append(f"--screenshot={Path(screenshot).resolve()}")
        if dump_dom:
            cmd.append("--dump-dom")
        cmd.append(url)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", start_new_session=True, cwd=profile)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # helpers (zygote, GPU, renderers) are in its group
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return out, err


def page_requests(netlog: Path) -> list[str]:
    """Network requests made on behalf of a page, from a Chromium NetLog file.

    The browser's own background requests (update checks, time sync, account lookups:
    initiator "not an origin", not tied to a page) are left out; any request with a page
    origin (file://, null, or a web origin) is reported, whether it succeeded or not.
    """
    text = netlog.read_text(encoding="utf-8", errors="replace").strip()
    for tail in ("", "]}", "}]}", "]}\n"):
        try:
            data = json.loads(text.rstrip(",") + tail)
            break
        except json.JSONDecodeError:
            continue
    else:  # unreadable (truncated mid-event): fall back to a plain scan of the URLs
        urls = re.findall(r'"initiator":"(?!not an origin)[^"]*"[^{}]*?"url":"([^"]+)"', text)
        return sorted(set(urls))
    types = {v: k for k, v in data["constants"]["logEventTypes"].items()}
    found = set()
    for ev in data.get("events", []):
        p = ev.get("params") or {}
        if types.get(ev.get("type")) != "URL_REQUEST_START_JOB" or "url" not in p:
            continue
        if p.get("initiator", "") != "not an origin" or "file://" in p.get("network_isolation_key", ""):
            found.add(p["url"])
    return sorted(found)


def reveal_ready(dom: str) -> bool:
    """Whether reveal.js initialised: its <div class="reveal ..."> got the class "ready"."""
    m = re.search(r'<div class="(reveal\b[^"]*)"', dom)
    return bool(m) and "ready" in m.group(1).split()


def screenshot_deck(deck: Path, png: Path, url_hash: str | None = None) -> str:
    """PNG of a deck (first slide, or the slide at ``url_hash``); returns the DOM."""
    png.parent.mkdir(parents=True, exist_ok=True)
    dom, err = run_chromium(deck.resolve().as_uri() + (url_hash or ""), screenshot=png)
    if not reveal_ready(dom):
        raise RuntimeError(f"reveal.js did not start in {deck} (stderr: {err[-300:]})")
    return dom


def readme_screenshot(decks: list[Path], png: Path, cache_dir: Path) -> None:
    """Screenshot of the first deck with a figure; the sample deck until a lesson has one."""
    for deck in decks:
        url_hash = image_slide_hash(deck.read_text(encoding="utf-8"))
        if url_hash:
            screenshot_deck(deck, png, url_hash)
            log(f"screenshot of {deck.name}{url_hash} -> {png}")
            return
    with tempfile.TemporaryDirectory(prefix="slides-sample-") as tmp:
        install_vendor(Path(tmp), cache_dir)
        deck = build_deck(SAMPLE_NOTEBOOK, Path(tmp))
        url_hash = image_slide_hash(deck.read_text(encoding="utf-8"))
        screenshot_deck(deck, png, url_hash)
        log(f"no lesson deck has a figure yet: screenshot of the sample deck{url_hash} -> {png}")


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slides.build", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help=f"notebooks to convert (default: {NOTEBOOK_GLOB})")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: build/slides)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help="where the npm tarballs and the trimmed vendor tree are kept "
                         "(default: build/slides-cache)")
    ap.add_argument("--sample", action="store_true", help="also build tests/data/slides_sample.ipynb")
    ap.add_argument("--screenshot", type=Path, metavar="PNG",
                    help="also save a 1280x800 screenshot of a slide with a figure (for the README)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    notebooks = args.notebooks or lesson_notebooks() + translated_notebooks()
    if args.sample:
        notebooks.append(SAMPLE_NOTEBOOK)
    if not notebooks:
        log(f"no notebook matches {NOTEBOOK_GLOB}")
    try:
        decks = build(notebooks, args.out, args.cache)
    except VendorUnavailable as err:
        log(f"ERROR {err}")
        return 2
    log(f"{len(decks)} deck(s) in {args.out} ({time.perf_counter() - t0:.1f} s); "
        f"open {args.out / 'index.html'}")
    if args.screenshot:
        readme_screenshot(decks, args.screenshot, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
