"""Diagrams: every SVG in images/ parses, and every image a notebook points to exists."""
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
NOTEBOOKS = ROOT / "notebooks"
SVG_NS = "{http://www.w3.org/2000/svg}"
CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
# ![alt](../images/x.svg), ![alt](../images/x.svg "title"), <img src="../images/x.svg">
IMAGE_REF = re.compile(r"""(?:\]\(|src=["'])((?:\.\./)+images/[^)\s"']+)""")

SVGS = sorted(IMAGES.glob("*.svg"))
assert SVGS, f"no diagrams found in {IMAGES}"  # a parametrized test over nothing would pass


def image_refs(notebook: Path) -> list[str]:
    """Relative image paths ('../images/...') named in a notebook's markdown cells."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    refs = []
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else source
            refs.extend(IMAGE_REF.findall(text))
    return refs


def missing_images(notebooks: list[Path]) -> list[str]:
    return [f"{nb.relative_to(nb.parents[1])}: {ref}" for nb in notebooks
            for ref in image_refs(nb) if not (nb.parent / ref).is_file()]


def test_the_course_diagrams_exist():
    names = {p.name for p in SVGS}
    for name in ("bottleneck.svg", "attention_decoder.svg", "qkv_lookup.svg",
                 "multi_head.svg", "transformer_tiny.svg"):
        assert name in names, f"images/{name} is missing"


@pytest.mark.parametrize("svg", SVGS, ids=lambda p: p.name)
def test_svg_parses_and_cjk_text_names_a_cjk_font(svg):
    root = ET.parse(svg).getroot()  # raises on malformed XML
    assert root.tag == f"{SVG_NS}svg", f"{svg.name}: root element is {root.tag}, not <svg>"
    assert root.get("viewBox"), f"{svg.name}: no viewBox, so it will not scale"
    parents = {child: parent for parent in root.iter() for child in parent}
    for text in root.iter(f"{SVG_NS}text"):
        content = "".join(text.itertext())
        if not CJK.search(content):
            continue
        node, fonts = text, ""
        while node is not None and not fonts:  # the nearest element that sets a font
            style = node.get("style") or ""
            fonts = node.get("font-family") or (style if "font-family" in style else "")
            node = parents.get(node)
        assert "Noto Sans CJK SC" in fonts, f"{svg.name}: text {content!r} names no CJK font"


def test_notebook_image_references_exist():
    notebooks = [nb for nb in sorted(NOTEBOOKS.rglob("*.ipynb")) if ".ipynb_checkpoints" not in nb.parts]
    lessons = [nb for nb in notebooks if nb.parent == NOTEBOOKS]
    assert len(lessons) >= 7, f"expected the lesson notebooks under {NOTEBOOKS}, found {len(lessons)}"
    assert sum(len(image_refs(nb)) for nb in lessons) >= 5, "the lessons show the course diagrams"
    assert missing_images(notebooks) == []


def test_reference_check_catches_a_missing_image(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "there.svg").write_text("<svg/>")
    (tmp_path / "notebooks").mkdir()
    nb = tmp_path / "notebooks" / "01_demo.ipynb"
    nb.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["![ok](../images/there.svg)\n",
                                             "<img src=\"../images/gone.svg\" width=600>"]},
        {"cell_type": "code", "source": "print('../images/not_markdown.svg')"},
        {"cell_type": "markdown", "source": "![bad](../images/also_gone.svg \"title\")"},
    ]}))
    assert image_refs(nb) == ["../images/there.svg", "../images/gone.svg",
                              "../images/also_gone.svg"]
    assert missing_images([nb]) == ["notebooks/01_demo.ipynb: ../images/gone.svg",
                                    "notebooks/01_demo.ipynb: ../images/also_gone.svg"]
