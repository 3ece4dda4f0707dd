"""Open built pages in headless Chromium with the network blocked, and report what happened.

Reuses the slides' harness (``slides.build.run_chromium``: every request goes to a closed
port, no host name resolves, a NetLog records what the page tried to fetch). A page is opened
through a *probe copy* written next to it (so its relative links still resolve): the copy
records JavaScript errors from the first script on, and when ``actions`` are asked for, it
pokes the page the way a reader would (pointer and click events on the attention explorer)
and writes what it saw into ``<html data-probe="...">``, which ``--dump-dom`` returns.
Used by tests/test_site.py, tests/test_explorer.py and ``python -m website.build --screenshots``.
"""

from __future__ import annotations

import json
import re
import tempfile
from html import unescape
from pathlib import Path

from slides import build as slides_build

PROBE_SUFFIX = ".probe.html"

_HEAD_JS = r"""<script>
window.__probe = {errors: [], actions: []};
window.addEventListener("error", function (e) {
  window.__probe.errors.push(String(e.message || e.type) + " @ " + (e.filename || (e.target && (e.target.src || e.target.href)) || "") + ":" + (e.lineno || ""));
}, true);
window.addEventListener("unhandledrejection", function (e) { window.__probe.errors.push("unhandled rejection: " + String(e.reason)); });
</script>"""

# Runs after load. Every 250 ms (virtual time) it rewrites the report, so the DOM dumped at the
# end of the time budget holds the last one.
_TAIL_JS = r"""<script>
(function () {
  var ACT = __ACTIONS__;
  var CLICK = __CLICK__;
  function explorerState(root) {
    return {target: root.getAttribute("data-target"), head: root.getAttribute("data-head"),
            layer: root.getAttribute("data-layer"), ready: root.getAttribute("data-ready"),
            w: Array.prototype.map.call(root.querySelectorAll(".cu-ax-src"), function (e) { return e.getAttribute("data-w"); }),
            bg: Array.prototype.map.call(root.querySelectorAll(".cu-ax-box"), function (e) { return e.style.background; })};
  }
  function fire(el, type) {
    var ev = (type.indexOf("pointer") === 0 && window.PointerEvent)
      ? new PointerEvent(type, {bubbles: type !== "pointerenter" && type !== "pointerleave", pointerType: "mouse"})
      : new MouseEvent(type, {bubbles: true, cancelable: true});
    el.dispatchEvent(ev);
  }
  function act() {
    var roots = document.querySelectorAll(".cu-ax");
    Array.prototype.forEach.call(roots, function (root, k) {
      var rec = {index: k, before: explorerState(root)};
      var tg = root.querySelectorAll(".cu-ax-tgt");
      var last = tg[tg.length - 1];
      fire(last, "pointerenter"); rec.hover = explorerState(root);
      fire(last, "pointerleave"); rec.left = explorerState(root);
      fire(last, "click"); rec.click = explorerState(root);
      var heads = root.querySelectorAll("button.cu-ax-head");
      if (heads.length > 1) { fire(heads[heads.length - 1], "click"); rec.head = explorerState(root); }
      var layers = root.querySelectorAll("button.cu-ax-layer");
      if (layers.length > 1) { fire(layers[layers.length - 1], "click"); rec.layer = explorerState(root); }
      window.__probe.actions.push(rec);
    });
  }
  function report() {
    var p = window.__probe;
    p.title = document.title;
    p.mathjax = document.querySelectorAll("mjx-container").length;
    p.mathjaxErrors = document.querySelectorAll("mjx-merror, .MathJax_Error").length;
    p.mathSource = document.querySelectorAll(".math").length;
    p.explorers = document.querySelectorAll(".cu-ax").length;
    p.search = Array.prototype.map.call(document.querySelectorAll("#search-results li a, ul.search li a"),
                                        function (a) { return a.getAttribute("href"); });
    p.searchDone = !!document.querySelector("#search-results p.search-summary, #search-results .search-summary");
    p.lang = document.documentElement.getAttribute("lang");
    p.cjk = (((document.body && document.body.innerText) || "").match(/[\u4e00-\u9fff]/g) || []).length;
    var sw = document.querySelectorAll("a.course-lang-switch");
    p.switches = sw.length;
    if (sw.length) {
      var r = sw[0].getBoundingClientRect(), cs = window.getComputedStyle(sw[0]);
      p.switch = {href: sw[0].getAttribute("href"), text: sw[0].textContent.trim(),
                  visible: r.width > 0 && r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight &&
                           r.left >= 0 && r.right <= window.innerWidth &&
                           cs.visibility !== "hidden" && cs.display !== "none" && cs.opacity !== "0"};
    }
    document.documentElement.setAttribute("data-probe", JSON.stringify(p));
  }
  window.addEventListener("load", function () {
    if (ACT) { setTimeout(act, 500); }
    if (CLICK) { setTimeout(function () { report(); var el = document.querySelector(CLICK); if (el) { el.click(); } }, 300); }
    setInterval(report, 250);
    report();
  });
})();
</script>"""


def probe_copy(page: Path, actions: bool = False, click: str | None = None) -> Path:
    """A copy of ``page`` beside it, with the probe scripts (first in <head>, last in <body>)."""
    text = page.read_text(encoding="utf-8")
    head = re.search(r"<head[^>]*>", text, re.I)
    if head is None:
        raise ValueError(f"{page}: no <head>")
    text = text[:head.end()] + _HEAD_JS + text[head.end():]
    tail = _TAIL_JS.replace("__ACTIONS__", "true" if actions else "false").replace("__CLICK__", json.dumps(click))
    idx = text.lower().rfind("</body>")
    text = (text[:idx] + tail + text[idx:]) if idx >= 0 else text + tail
    out = page.with_name(page.name[:-len(".html")] + PROBE_SUFFIX)
    out.write_text(text, encoding="utf-8")
    return out


def read_probe(dom: str) -> dict | None:
    m = re.search(r'<html[^>]*\sdata-probe="([^"]*)"', dom)
    return json.loads(unescape(m.group(1))) if m else None


def open_page(page: Path, *, query: str = "", actions: bool = False, click: str | None = None,
              screenshot: Path | None = None,
              budget_ms: int = 6000, window: tuple[int, int] = (1280, 800), chromium: str | None = None) -> dict:
    """Open ``page`` (through a probe copy) offline; returns {"probe", "requests", "stderr", "dom"}.

    ``query`` is appended to the URL (e.g. "?q=word" for the search page). "requests" lists
    every network request the page attempted (file:// loads are not network requests).
    ``click``: a CSS selector; the first element it matches is clicked 300 ms after load (a
    link navigates away: "dom" is then the page it led to, and "probe" None there).
    """
    probe = probe_copy(page, actions, click)
    try:
        with tempfile.TemporaryDirectory(prefix="site-netlog-") as tmp:
            netlog = Path(tmp) / "netlog.json"
            dom, err = slides_build.run_chromium(probe.resolve().as_uri() + query, screenshot=screenshot,
                                                 netlog=netlog, chromium=chromium, window=window,
                                                 budget_ms=budget_ms)
            requests = slides_build.page_requests(netlog) if netlog.exists() else None
    finally:
        probe.unlink(missing_ok=True)
    return {"probe": read_probe(dom), "requests": requests, "stderr": err, "dom": dom}


def console_errors(stderr: str) -> list[str]:
    """JavaScript errors Chromium logged to stderr (a second source besides the probe)."""
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln and "Uncaught" in ln]


_FOCUS_JS = """<script>window.addEventListener("load", function () {
  var el = (%s);
  if (!el) { return; }
  var node = el.closest(".cell") || el;
  while (node && node.parentElement && node.tagName !== "ARTICLE" && node !== document.body) {
    for (var p = node.previousElementSibling; p; p = p.previousElementSibling) {
      if (p.tagName !== "SCRIPT" && p.tagName !== "STYLE") { p.style.display = "none"; }
    }
    node = node.parentElement;
  }
  %s
});</script>"""


def focused_screenshot(page: Path, element_js: str, png: Path, window: tuple[int, int], then_js: str = "") -> dict:
    """Screenshot of ``page`` with everything before the element (a JS expression) hidden, so it
    shows at the top: headless Chromium's screenshot ignores scrolling."""
    text = page.read_text(encoding="utf-8")
    idx = text.lower().rfind("</body>")
    text = text[:idx] + _FOCUS_JS % (element_js, then_js) + text[idx:]
    tmp = page.with_name("_screenshot.html")
    tmp.write_text(text, encoding="utf-8")
    try:
        return open_page(tmp, screenshot=png, window=window)
    finally:
        tmp.unlink(missing_ok=True)


def readme_screenshots(site: Path, out_dir: Path) -> list[Path]:
    """site_lesson.png (lesson 03 at its first figure) and site_explorer.png (the first
    explorer in the site's lessons, its third target word selected) for the README."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    lesson = site / "notebooks" / "03_additive_attention.html"
    if not lesson.is_file():
        lesson = sorted((site / "notebooks").glob("*.html"))[0]
    png = out_dir / "site_lesson.png"
    focused_screenshot(lesson, 'document.querySelector("article .cell_output img")', png, (1280, 800))
    shots.append(png)
    with_explorer = [p for p in sorted((site / "notebooks").glob("*.html"))
                     if 'class="cu-ax"' in p.read_text(encoding="utf-8")]
    if with_explorer:
        png = out_dir / "site_explorer.png"
        focused_screenshot(with_explorer[0], 'document.querySelector(".cu-ax")', png, (1280, 520),
                           'var t = el.querySelectorAll(".cu-ax-tgt"); t[Math.min(2, t.length - 1)].click();')
        shots.append(png)
    return shots
