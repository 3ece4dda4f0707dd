"""Check the slide metadata of lesson notebooks (for lesson writers).

    python -m slides.lint notebooks/*.ipynb            # exit 1 when something is reported
    python -m slides.lint --warn-only notebooks/*.ipynb  # report, exit 0

Reports, one line each (``file: where: what``):
- cells without ``metadata.slideshow.slide_type`` (they behave as "-") or with an unknown one;
- slides that will not fit a 1280x800 projector: more than one figure, more than 15 lines of
  visible code, or an estimated height above 30 lines (a figure counts 17, a heading 2);
- things that cannot work offline: remote images, saved widget state, mermaid diagrams.

A slide is named by its reveal.js URL hash, ``#/h/v`` (0-based), so
``build/slides/<notebook>.slides.html#/3/1`` opens it. Notes and skipped cells are not shown,
so they never make a slide too tall; fragments are (they all end up visible); the input of a
cell tagged ``hide-input`` is not shown.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from slides.build import HIDE_INPUT_TAGS, SLIDE_TYPES, slide_type

MAX_FIGURES = 1
MAX_CODE_LINES = 15
MAX_HEIGHT = 30
FIGURE_LINES = 17  # a figure of figsize (9, 4.5) is shown at most 480 px high (slides/custom.css)
MAX_OUTPUT_LINES = 14  # longer text outputs scroll inside the slide (custom.css: 360 px)

_MD_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)|<img\b[^>]*\bsrc\s*=\s*['\"]([^'\"]+)", re.I)
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


@dataclass
class Slide:
    """One reveal.js slide (a vertical one: nbconvert nests every slide)."""

    h: int
    v: int
    cells: list = field(default_factory=list)  # (index, cell) of the cells shown on it

    @property
    def name(self) -> str:
        return f"slide #/{self.h}/{self.v}"


def group_slides(nb) -> list[Slide]:
    """The notebook's slides as nbconvert builds them: the first cell that is neither
    skip nor notes opens the first slide whatever its type; later, "slide" opens a new
    horizontal slide and "subslide" a new vertical one."""
    slides: list[Slide] = []
    for i, cell in enumerate(nb.cells):
        st = slide_type(cell)
        if st in ("skip", "notes"):
            continue
        if not slides:
            slides.append(Slide(0, 0))
        elif st == "slide":
            slides.append(Slide(slides[-1].h + 1, 0))
        elif st == "subslide":
            slides.append(Slide(slides[-1].h, slides[-1].v + 1))
        slides[-1].cells.append((i, cell))
    return slides


def expected_counts(nb) -> tuple[int, int]:
    """(horizontal slides, all slides) that the deck of ``nb`` must have."""
    slides = group_slides(nb)
    return (slides[-1].h + 1 if slides else 0), len(slides)


def _cell_label(i: int, cell) -> str:
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    first = first if len(first) <= 40 else first[:37] + "..."
    return f"cell {i + 1} ({cell.cell_type}{': ' + repr(first) if first else ''})"


def _text_lines(text: str) -> int:
    return len(text.rstrip("\n").splitlines()) if text.strip() else 0


def _measure(slide: Slide) -> tuple[int, int, int]:
    """(figures, visible code lines, estimated height in lines) of a slide."""
    figures = code = height = 0
    for _, cell in slide.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if not line.strip():
                    continue
                if _MD_IMAGE.search(line):
                    figures += 1
                    height += FIGURE_LINES
                else:
                    height += 2 if line.lstrip().startswith("#") else 1 + len(line) // 90
            continue
        if cell.cell_type != "code":
            height += _text_lines(cell.source)
            continue
        if not HIDE_INPUT_TAGS & set(cell.metadata.get("tags", [])):
            n = _text_lines(cell.source)
            code += n
            height += n + (1 if n else 0)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if any(m in data for m in _IMAGE_MIMES):
                figures += 1
                height += FIGURE_LINES
            elif out.get("output_type") == "stream":
                height += min(_text_lines(out.get("text", "")), MAX_OUTPUT_LINES)
            elif "text/html" in data:
                html = data["text/html"]
                html = "".join(html) if isinstance(html, list) else html
                height += min(max(html.count("<tr"), 1), MAX_OUTPUT_LINES)
            elif "text/plain" in data:
                text = data["text/plain"]
                text = "".join(text) if isinstance(text, list) else text
                height += min(_text_lines(text), MAX_OUTPUT_LINES)
            elif out.get("output_type") == "error":
                height += MAX_OUTPUT_LINES
    return figures, code, height


def lint_notebook(nb, *, max_figures: int = MAX_FIGURES, max_code_lines: int = MAX_CODE_LINES,
                  max_height: int = MAX_HEIGHT) -> list[str]:
    """Problems found in a notebook, as ``where: what`` strings."""
    problems = []
    for i, cell in enumerate(nb.cells):
        show = cell.get("metadata", {}).get("slideshow")
        raw = show.get("slide_type") if isinstance(show, dict) else None
        if not raw:
            problems.append(f"{_cell_label(i, cell)}: no slideshow.slide_type (shown as \"-\")")
        elif raw not in SLIDE_TYPES:
            problems.append(f"{_cell_label(i, cell)}: unknown slide_type {raw!r} "
                            f"(one of {', '.join(SLIDE_TYPES)}; shown as \"-\")")
        if cell.cell_type == "markdown":
            for m in _MD_IMAGE.finditer(cell.source):
                src = m.group(1) or m.group(2)
                if re.match(r"^(https?:)?//", src):
                    problems.append(f"{_cell_label(i, cell)}: remote image {src} "
                                    "(not shown offline: put it in images/)")
            if re.search(r"^\s*```\s*mermaid", cell.source, re.M):
                problems.append(f"{_cell_label(i, cell)}: mermaid diagram (the offline slides "
                                "show its source: draw it as SVG in images/)")
    if "widgets" in nb.metadata:
        problems.append("notebook metadata: saved widget state (widgets need a CDN; the slides "
                        "show their text form: use plain tqdm or clear widget state)")

    slides = group_slides(nb)
    if not slides:
        problems.append("every cell is skip or notes: no slide at all")
    elif slide_type(slides[0].cells[0][1]) not in ("slide", "subslide"):
        i, cell = slides[0].cells[0]
        problems.append(f"{_cell_label(i, cell)}: the first shown cell opens the first slide; "
                        "mark it \"slide\"")
    for slide in slides:
        figures, code, height = _measure(slide)
        first, last = slide.cells[0][0] + 1, slide.cells[-1][0] + 1
        where = f"{slide.name} (cells {first}-{last})" if first != last else f"{slide.name} (cell {first})"
        if figures > max_figures:
            problems.append(f"{where}: {figures} figures (max {max_figures}): "
                            "start a subslide before the next figure")
        if code > max_code_lines:
            problems.append(f"{where}: {code} lines of code shown (max {max_code_lines}): "
                            "split the cell, mark set-up code skip, or tag it hide-input")
        if height > max_height and figures <= max_figures and code <= max_code_lines:
            problems.append(f"{where}: about {height} lines high (max {max_height}): "
                            "start a subslide")
    return problems


def main(argv: list[str] | None = None) -> int:
    import nbformat

    ap = argparse.ArgumentParser(prog="python -m slides.lint", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--warn-only", action="store_true", help="report but exit 0")
    ap.add_argument("--max-figures", type=int, default=MAX_FIGURES)
    ap.add_argument("--max-code-lines", type=int, default=MAX_CODE_LINES)
    ap.add_argument("--max-height", type=int, default=MAX_HEIGHT,
                    help="estimated lines per slide (a figure counts %d)" % FIGURE_LINES)
    args = ap.parse_args(argv)

    total, unreadable = 0, False
    for path in args.notebooks:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # a notebook being written may be invalid JSON for a moment
            print(f"{path}: cannot read: {type(err).__name__}: {err}")
            unreadable = True
            continue
        problems = lint_notebook(nb, max_figures=args.max_figures,
                                 max_code_lines=args.max_code_lines, max_height=args.max_height)
        for p in problems:
            print(f"{path}: {p}")
        total += len(problems)
    word = "warning" if args.warn_only else "problem"
    print(f"{total} {word}{'s' if total != 1 else ''} in {len(args.notebooks)} notebook(s)",
          file=sys.stderr)
    if args.warn_only:
        return 0
    return 2 if unreadable else (1 if total else 0)


if __name__ == "__main__":
    sys.exit(main())
