"""course_utils.explorer: the interactive attention view.

Without a browser: argument checks, the HTML is self-contained (nothing from the network,
tokens escaped, data that cannot end its <script> early), pinyin on Chinese tokens, and a
static first view for renderers that run no JavaScript. With headless Chromium (network
blocked, through website.browser's probe): pointer and click events change the highlighted
weights, and heads and layers switch, in a standalone page and inside a reveal.js deck.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_utils.data import TINY_EXAMPLE, to_pinyin
from course_utils.explorer import AttentionExplorer, attention_explorer
from slides import build as slides_build
from website import browser

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def weights(L=2, H=3, T=3, S=3, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(L, H, T, S, generator=g), dim=-1)


def tiny(**kw) -> AttentionExplorer:
    p = TINY_EXAMPLE
    return attention_explorer(weights(T=len(p.tgt), S=len(p.src)), p.src, p.tgt, gold=p.alignment, **kw)


# --------------------------------------------------------------------------- arguments
def test_shapes_are_normalised_to_layers_and_heads():
    src, tgt = ["a", "b", "c"], ["x", "y"]
    assert attention_explorer(np.full((2, 3), 1 / 3), src, tgt).weights.shape == (1, 1, 2, 3)
    assert attention_explorer(torch.full((4, 2, 3), 1 / 3), src, tgt).weights.shape == (1, 4, 2, 3)
    assert attention_explorer(weights(2, 4, 2, 3), src, tgt).weights.shape == (2, 4, 2, 3)
    per_layer = [weights(1, 4, 2, 3)[0], weights(1, 4, 2, 3, seed=1)[0]]
    ex = attention_explorer(per_layer, src, tgt)
    assert ex.weights.shape == (2, 4, 2, 3) and (ex.num_layers, ex.num_heads) == (2, 4)
    assert repr(ex) == "AttentionExplorer(2 layer(s) x 4 head(s), 2 target x 3 source tokens)"


@pytest.mark.parametrize("args, kwargs, match", [
    ((torch.ones(2, 3, 2, 3, 1), ["a", "b", "c"], ["x", "y"]), {}, r"weights must be \(T, S\).*got shape \(2, 3, 2, 3, 1\)"),
    ((torch.ones(3, 2) / 2, ["a", "b", "c"], ["x", "y"]), {}, r"\(T, S\) = \(3, 2\).*expected.*\(2, 3\)"),
    ((torch.full((2, 3), float("nan")), ["a", "b", "c"], ["x", "y"]), {}, "NaN"),
    ((-torch.ones(2, 3), ["a", "b", "c"], ["x", "y"]), {}, "negative"),
    ((torch.ones(2, 3), "abc", ["x", "y"]), {}, "src_tokens must be a sequence"),
    ((torch.ones(2, 0), [], ["x", "y"]), {}, "src_tokens must not be empty"),
    ((torch.ones(2, 3), ["a", "b", "c"], ["x", "y"]), {"gold": [(3, 0)]}, r"gold pair \(src_index=3, tgt_index=0\)"),
    ((torch.ones(2, 3), ["a", "b", "c"], ["x", "y"]), {"gold": [(0, 1, 2)]}, "gold must hold"),
    ((torch.ones(2, 3), ["a", "b", "c"], ["x", "y"]), {"gold": np.ones((3, 2), bool)}, r"gold as a bool matrix.*\(2, 3\)"),
    ((torch.ones(2, 2, 3), ["a", "b", "c"], ["x", "y"]), {"head_names": ["a"]}, "head_names has 1 names, expected 2"),
    ((torch.ones(2, 1, 2, 3), ["a", "b", "c"], ["x", "y"]), {"layer_names": ["a"]}, "layer_names has 1 names, expected 2"),
    ((torch.ones(2, 3), ["a", "b", "c"], ["x", "y"]), {"digits": 0}, "digits must be"),
])
def test_bad_arguments_say_what_they_got(args, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        attention_explorer(*args, **kwargs)


def test_gold_from_pairs_a_pair_or_a_matrix():
    p = TINY_EXAMPLE
    w = torch.full((len(p.tgt), len(p.src)), 1 / len(p.src))
    a = attention_explorer(w, p.src, p.tgt, gold=p.alignment).gold
    b = attention_explorer(w, p.src, p.tgt, gold=p).gold
    c = attention_explorer(w, p.src, p.tgt, gold=torch.eye(3, dtype=torch.bool)).gold
    assert a.dtype == bool and (a == b).all() and (a == c).all() and a.sum() == len(p.alignment)


def test_fully_masked_row_is_allowed():
    w = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    ex = attention_explorer(w, ["a", "b", "c"], ["x", "<pad>"])
    assert "NaN" not in ex.html and "rgba(72,120,208,0.000)" in ex.html


# --------------------------------------------------------------------------- HTML
def test_html_is_self_contained_and_static_view_is_drawn():
    ex = tiny(title="Tom chase Jerry")
    html = ex.html
    assert ex._repr_html_() == html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), "loads something from the network"
    assert "require(" not in html and "import(" not in html and "<link" not in html
    # the first target's weights are in the markup itself (GitHub's viewer runs no script)
    assert html.count('class="cu-ax-src') == len(TINY_EXAMPLE.src)
    assert len(re.findall(r'data-w="0\.\d{3}"', html)) == len(TINY_EXAMPLE.src)
    assert 'class="cu-ax-src cu-ax-gold"' in html
    assert ex.html == tiny(title="Tom chase Jerry").html, "the same input gives the same output"


def test_tokens_are_escaped_and_data_cannot_close_the_script():
    evil = ["</script><script>alert(1)</script>", "a&b", '"q"']
    ex = attention_explorer(torch.full((1, 3), 1 / 3), evil, ["<eos>"])
    data = re.search(r'<script type="application/json" class="cu-ax-data">(.*?)</script>', ex.html, re.S)
    assert data and json.loads(data.group(1))["src"] == evil
    assert "<script>alert(1)" not in ex.html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in ex.html


def test_chinese_tokens_have_pinyin_on_hover():
    ex = tiny()
    for zh in TINY_EXAMPLE.tgt:
        py = to_pinyin(zh)
        assert py != zh
        assert f'title="{py}"' in ex.html, f"no pinyin tooltip for {zh}"
    assert 'title="Tom"' not in ex.html


def test_save_writes_a_page(tmp_path):
    path = tmp_path / "explorer.html"
    tiny(title="demo").save(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<title>demo</title>" in text and 'class="cu-ax"' in text


def test_lessons_03_and_06_use_the_explorer():
    for stem in ("03_additive_attention", "06_multi_head_attention"):
        nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code" and "attention_explorer(" in c.source]
        assert cells, f"lesson {stem} has no attention_explorer cell"
        heat = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                and ("show_attention(" in c.source or "attention_grid(" in c.source)]
        first = nb.cells.index(cells[0])
        assert any(i < first for i in heat), f"{stem}: the explorer should follow a static heat map"
        assert (cells[0].metadata.get("slideshow") or {}).get("slide_type"), f"{stem}: slide_type missing"


# --------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def chromium() -> str:
    path = slides_build.find_chromium()
    if not path:
        if IN_CI:
            pytest.fail("chromium not found (CI=true: the explorer's browser check must run)")
        pytest.skip("chromium not found (Debian: apt-get install --no-install-recommends chromium)")
    return path


def _check_interaction(res: dict, layers: bool) -> None:
    probe = res["probe"]
    assert probe is not None, f"the page's scripts never ran: {res['stderr'][-500:]}"
    assert probe["errors"] == [] and browser.console_errors(res["stderr"]) == []
    assert res["requests"] == [], res["requests"]
    assert probe["explorers"] == 1 and len(probe["actions"]) == 1
    rec = probe["actions"][0]
    before, hover, left, click = rec["before"], rec["hover"], rec["left"], rec["click"]
    assert before["ready"] == "1" and before["target"] == "0" and before["head"] == "-1"
    # pointing at the last target word previews its weights; leaving restores the selection
    assert hover["w"] != before["w"] and hover["bg"] != before["bg"]
    assert left["w"] == before["w"] and left["target"] == "0"
    # a click selects it
    assert click["target"] == str(len(TINY_EXAMPLE.tgt) - 1) and click["w"] == hover["w"]
    # switching to the last head changes the weights shown for the same word
    assert rec["head"]["head"] == "2" and rec["head"]["w"] != click["w"]
    if layers:
        assert rec["layer"]["layer"] == "1" and rec["layer"]["w"] != rec["head"]["w"]
    # what is shown is what was given: the last head, layer shown, last target word
    return rec


def test_explorer_responds_to_pointer_and_click(tmp_path, chromium):
    ex = tiny()
    page = tmp_path / "explorer.html"
    ex.save(page)
    res = browser.open_page(page, actions=True, chromium=chromium, window=(1000, 400))
    rec = _check_interaction(res, layers=True)
    last_t = len(TINY_EXAMPLE.tgt) - 1
    want = [f"{v:.3f}" for v in np.round(ex.weights[1, 2, last_t], 3)]
    assert rec["layer"]["w"] == want


def test_explorer_works_inside_a_slide_deck(tmp_path, chromium):
    """The same output, converted by the course's reveal.js build (./course slides)."""
    ex = tiny()
    md = nbformat.v4.new_markdown_cell("# Explorer in a deck")
    md.metadata["slideshow"] = {"slide_type": "slide"}
    code = nbformat.v4.new_code_cell("attention_explorer(...)", execution_count=1)
    code.metadata["slideshow"] = {"slide_type": "slide"}
    code.outputs = [nbformat.v4.new_output("execute_result", execution_count=1,
                                           data={"text/html": ex.html, "text/plain": repr(ex)})]
    nb_path = tmp_path / "deck.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[md, code]), nb_path)
    try:
        slides_build.install_vendor(tmp_path, slides_build.DEFAULT_CACHE)
    except slides_build.VendorUnavailable as err:
        if IN_CI:
            pytest.fail(f"reveal.js not available: {err}")
        pytest.skip(f"reveal.js not available: {err}")
    deck = slides_build.build_deck(nb_path, tmp_path)
    assert slides_build.remote_references(deck) == []
    res = browser.open_page(deck, actions=True, chromium=chromium)
    _check_interaction(res, layers=True)
