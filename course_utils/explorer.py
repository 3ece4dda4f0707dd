"""An interactive attention explorer: point at a target word, see where it looked.

``attention_explorer(weights, src_tokens, tgt_tokens, gold=None)`` returns an object that
Jupyter displays as a small self-contained HTML and JavaScript view (no CDN, no server, no
widget back-end): it works in JupyterLab, Colab, the course site and the reveal.js slides.

- Point at (or click, or move with the arrow keys between) a target word: the source words are
  shaded by that word's attention weights, with the weights written under them.
- Buttons switch between heads (and "mean" over heads) and between layers.
- A gold alignment, where given, outlines the source words each target word translates.
- Chinese tokens show their pinyin on hover.

Without JavaScript (GitHub's notebook viewer, an untrusted notebook) the view is still drawn,
fixed at the first target word. The static heat maps of ``course_utils.plotting`` stay the
printed record; this is for exploring. Introduced in notebook 03.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["AttentionExplorer", "attention_explorer"]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_COLOR = (72, 120, 208)   # the course's blue (plotting's first colour)
_GOLD = "#e08a1e"


def _as_array(weights) -> np.ndarray:
    if hasattr(weights, "detach"):  # a torch tensor, on any device
        weights = weights.detach().to("cpu").float().numpy()
    elif isinstance(weights, (list, tuple)) and weights and hasattr(weights[0], "detach"):
        weights = np.stack([np.asarray(w.detach().to("cpu").float()) for w in weights])
    return np.asarray(weights, dtype=np.float64)


def _check_tokens(name: str, tokens) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Iterable):
        raise TypeError(f"{name} must be a sequence of token strings, got {type(tokens).__name__}")
    tokens = [str(t) for t in tokens]
    if not tokens:
        raise ValueError(f"{name} must not be empty")
    return tokens


def _gold_matrix(gold, n_tgt: int, n_src: int) -> np.ndarray | None:
    """gold as a (T, S) bool matrix: from (src_index, tgt_index) pairs or from a matrix."""
    if gold is None:
        return None
    if hasattr(gold, "alignment"):  # a course_utils.data.Pair
        gold = gold.alignment
    if hasattr(gold, "detach"):
        gold = gold.detach().cpu().numpy()
    if isinstance(gold, np.ndarray) and gold.dtype == bool:
        if gold.shape != (n_tgt, n_src):
            raise ValueError(f"gold as a bool matrix must be (len(tgt_tokens), len(src_tokens)) = "
                             f"({n_tgt}, {n_src}), got {gold.shape}")
        return gold.copy()
    pairs = list(gold)
    out = np.zeros((n_tgt, n_src), dtype=bool)
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"gold must hold (src_index, tgt_index) pairs or be a ({n_tgt}, {n_src}) "
                             f"matrix, got the item {pair!r}")
        s, t = (int(v) for v in pair)
        if not (0 <= s < n_src and 0 <= t < n_tgt):
            raise ValueError(f"gold pair (src_index={s}, tgt_index={t}) is outside the "
                             f"{n_src} source and {n_tgt} target tokens")
        out[t, s] = True
    return out


def _pinyin_of(token: str) -> str | None:
    if not _CJK.search(token):
        return None
    try:
        from course_utils.data import to_pinyin
    except ImportError:  # pragma: no cover - the data module is part of the package
        return None
    py = to_pinyin(token)
    return py if py and py != token else None


class AttentionExplorer:
    """The explorer of one sentence pair. ``html`` is the fragment Jupyter shows;
    ``save(path)`` writes it as a standalone page. Made by ``attention_explorer``."""

    def __init__(self, weights: np.ndarray, src: list[str], tgt: list[str], gold: np.ndarray | None,
                 layer_names: list[str], head_names: list[str], title: str | None, digits: int):
        self.weights, self.src_tokens, self.tgt_tokens, self.gold = weights, src, tgt, gold
        self.layer_names, self.head_names, self.title, self.digits = layer_names, head_names, title, digits
        self.html = self._render()

    @property
    def num_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def num_heads(self) -> int:
        return self.weights.shape[1]

    def __repr__(self) -> str:
        return (f"AttentionExplorer({self.num_layers} layer(s) x {self.num_heads} head(s), "
                f"{len(self.tgt_tokens)} target x {len(self.src_tokens)} source tokens"
                f"{', gold alignment' if self.gold is not None else ''})")

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path) -> None:
        """A standalone HTML page with the explorer (UTF-8)."""
        title = html.escape(self.title or "Attention explorer")
        page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{title}</title></head>\n<body>\n{self.html}\n</body></html>\n")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)

    # ------------------------------------------------------------------ rendering
    def _render(self) -> str:
        w = np.round(self.weights, self.digits)
        payload = {
            "w": w.tolist(),
            "src": self.src_tokens, "tgt": self.tgt_tokens,
            "gold": None if self.gold is None else [np.flatnonzero(r).tolist() for r in self.gold],
            "layers": self.layer_names, "heads": self.head_names,
            "digits": self.digits, "color": list(_COLOR),
        }
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        uid = "cu-ax-" + hashlib.sha1(data.encode("utf-8")).hexdigest()[:10]
        first = w[0, 0, 0] if self.num_heads == 1 else w[0].mean(axis=0)[0]
        head0 = 0 if self.num_heads == 1 else -1  # several heads: start on their mean

        def token(text: str, cls: str, i: int, extra: str = "") -> str:
            py = _pinyin_of(text)
            tip = f' title="{html.escape(py)}"' if py else ""
            return (f'<span class="{cls}" data-i="{i}"{tip}{extra}>{html.escape(text)}'
                    + (f'<small class="cu-ax-py">{html.escape(py)}</small>' if py else "") + "</span>")

        def buttons(kind: str, names: list[str], active: int) -> str:
            if len(names) <= 1 and kind == "layer":
                return ""
            items = [(i, n) for i, n in enumerate(names)]
            if kind == "head" and len(names) > 1:
                items = [(-1, "mean")] + items
            if len(items) <= 1:
                return ""
            label = "layer" if kind == "layer" else "head"
            return (f'<div class="cu-ax-row"><span class="cu-ax-label">{label}</span>' + "".join(
                f'<button type="button" class="cu-ax-{kind}{" cu-ax-on" if i == active else ""}" '
                f'data-{kind}="{i}">{html.escape(n)}</button>' for i, n in items) + "</div>")

        tgt_html = "".join(token(t, "cu-ax-tgt" + (" cu-ax-on" if j == 0 else ""), j,
                                 ' tabindex="0" role="button"') for j, t in enumerate(self.tgt_tokens))
        src_cells = []
        for i, s in enumerate(self.src_tokens):
            value = float(first[i])
            is_gold = self.gold is not None and bool(self.gold[0, i])
            src_cells.append(
                f'<span class="cu-ax-src{" cu-ax-gold" if is_gold else ""}" data-i="{i}" data-w="{value:.{self.digits}f}">'
                f'<span class="cu-ax-box" style="background: {self._bg(value, float(first.max()))}">'
                + token(s, "cu-ax-word", i)
                + f'</span><small class="cu-ax-val">{value:.2f}</small></span>')
        legend = ("point at or click a target word (or use the arrow keys) to shade the source words by its "
                  "attention weights")
        if self.gold is not None:
            legend += '; <span class="cu-ax-goldkey">outlined</span>: the gold alignment'
        title = f'<div class="cu-ax-title">{html.escape(self.title)}</div>' if self.title else ""
        css = _CSS.replace("#ID", "#" + uid)
        return (
            f'<div class="cu-ax" id="{uid}" data-target="0" data-layer="0" data-head="{head0}">'
            f"<style>{css}</style>{title}"
            f"{buttons('layer', self.layer_names, 0)}{buttons('head', self.head_names, head0)}"
            f'<div class="cu-ax-row"><span class="cu-ax-label">target</span>{tgt_html}</div>'
            f'<div class="cu-ax-row"><span class="cu-ax-label">source</span>{"".join(src_cells)}</div>'
            f'<div class="cu-ax-legend">{legend}</div>'
            f'<script type="application/json" class="cu-ax-data">{_json_in_html(data)}</script>'
            f"<script>{_JS.replace('__ID__', uid)}</script></div>")

    @staticmethod
    def _bg(value: float, row_max: float) -> str:
        alpha = 0.0 if row_max <= 0 else min(1.0, value / row_max)
        return f"rgba({_COLOR[0]},{_COLOR[1]},{_COLOR[2]},{alpha:.3f})"


def _json_in_html(data: str) -> str:
    """JSON safe inside a <script> element (no "</script>" or "<!--" can end it early)."""
    return data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_CSS = """
#ID { font-family: "Noto Sans CJK SC", "Noto Sans", system-ui, sans-serif; font-size: 15px;
      line-height: 1.4; margin: 0.5em 0; color: #222; }
#ID .cu-ax-title { font-weight: 600; margin-bottom: 0.3em; }
#ID .cu-ax-row { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 4px; margin: 4px 0; }
#ID .cu-ax-label { width: 4.5em; color: #666; font-size: 0.85em; padding-top: 0.35em; }
#ID button { font: inherit; font-size: 0.85em; padding: 1px 8px; border: 1px solid #bbb;
             border-radius: 3px; background: #f6f6f6; cursor: pointer; }
#ID button.cu-ax-on { background: #4878d0; border-color: #4878d0; color: #fff; }
#ID .cu-ax-tgt { padding: 2px 6px; border: 1px solid #ccc; border-radius: 3px; cursor: pointer;
                 text-align: center; }
#ID .cu-ax-tgt.cu-ax-on { background: #222; color: #fff; border-color: #222; }
#ID .cu-ax-src { display: inline-flex; flex-direction: column; align-items: center; }
#ID .cu-ax-box { padding: 2px 6px; border: 2px solid transparent; border-radius: 3px; }
#ID .cu-ax-gold .cu-ax-box { border-color: #e08a1e; }
#ID .cu-ax-val { color: #555; font-size: 0.75em; font-variant-numeric: tabular-nums; }
#ID .cu-ax-py { display: block; color: #777; font-size: 0.7em; line-height: 1; }
#ID .cu-ax-tgt.cu-ax-on .cu-ax-py { color: #ddd; }
#ID .cu-ax-legend { color: #666; font-size: 0.8em; margin-top: 2px; }
#ID .cu-ax-goldkey { border: 2px solid #e08a1e; padding: 0 3px; border-radius: 3px; }
""".replace("#e08a1e", _GOLD)

# Plain ES5, no globals besides one closure; runs wherever the HTML is shown with scripts on.
_JS = r"""
(function () {
  var root = document.getElementById("__ID__");
  if (!root || root.getAttribute("data-ready")) { return; }
  var d = JSON.parse(root.querySelector("script.cu-ax-data").textContent);
  var state = {t: +root.getAttribute("data-target"), l: +root.getAttribute("data-layer"),
               h: +root.getAttribute("data-head"), pinned: 0};
  function row(l, h, t) {
    var heads = d.w[l], out = [], i, k;
    if (h >= 0) { return heads[h][t]; }
    for (i = 0; i < d.src.length; i++) {
      var s = 0;
      for (k = 0; k < heads.length; k++) { s += heads[k][t][i]; }
      out.push(s / heads.length);
    }
    return out;
  }
  function all(sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); }
  function draw(t) {
    var w = row(state.l, state.h, t), max = 0, i;
    for (i = 0; i < w.length; i++) { if (w[i] > max) { max = w[i]; } }
    var gold = d.gold ? d.gold[t] : [];
    all(".cu-ax-src").forEach(function (el, i) {
      var a = max > 0 ? Math.min(1, w[i] / max) : 0;
      el.querySelector(".cu-ax-box").style.background =
        "rgba(" + d.color[0] + "," + d.color[1] + "," + d.color[2] + "," + a.toFixed(3) + ")";
      el.querySelector(".cu-ax-val").textContent = w[i].toFixed(2);
      el.setAttribute("data-w", w[i].toFixed(d.digits));
      el.classList.toggle("cu-ax-gold", gold.indexOf(i) >= 0);
    });
    all(".cu-ax-tgt").forEach(function (el, j) { el.classList.toggle("cu-ax-on", j === t); });
    root.setAttribute("data-target", t);
    root.setAttribute("data-layer", state.l);
    root.setAttribute("data-head", state.h);
  }
  function pick(t) { state.t = t; draw(t); }
  all(".cu-ax-tgt").forEach(function (el) {
    var j = +el.getAttribute("data-i");
    el.addEventListener("pointerenter", function () { draw(j); });
    el.addEventListener("pointerleave", function () { draw(state.t); });
    el.addEventListener("click", function () { pick(j); });
    el.addEventListener("focus", function () { pick(j); });
    el.addEventListener("keydown", function (ev) {
      var n = d.tgt.length, k = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
      if (k) { ev.preventDefault(); var next = root.querySelectorAll(".cu-ax-tgt")[(j + k + n) % n]; next.focus(); }
    });
  });
  function switcher(kind, key) {
    all("button.cu-ax-" + kind).forEach(function (b) {
      b.addEventListener("click", function () {
        state[key] = +b.getAttribute("data-" + kind);
        all("button.cu-ax-" + kind).forEach(function (o) { o.classList.toggle("cu-ax-on", o === b); });
        draw(state.t);
      });
    });
  }
  switcher("head", "h");
  switcher("layer", "l");
  draw(state.t);
  root.setAttribute("data-ready", "1");
})();
"""


def attention_explorer(weights, src_tokens: Sequence[str], tgt_tokens: Sequence[str], gold=None, *,
                       layer_names: Sequence[str] | None = None, head_names: Sequence[str] | None = None,
                       title: str | None = None, digits: int = 3) -> AttentionExplorer:
    """An interactive view of attention weights over one sentence pair.

    weights: (T, S) one head; (H, T, S) heads of one layer; (L, H, T, S) or a list of L
        (H, T, S) tensors: layers and heads. T = len(tgt_tokens) query positions (rows),
        S = len(src_tokens) key positions. A torch tensor (any device) or an array; slice
        away padding first. Rows need not sum to 1 (a fully masked row is all zeros).
    src_tokens, tgt_tokens: the tokens of the keys and of the queries (for self-attention,
        the same sentence twice).
    gold: the gold alignment: (src_index, tgt_index) pairs as in ``Pair.alignment``, a
        ``Pair``, or a (T, S) bool matrix; outlined in the view.
    layer_names, head_names: button labels (default "1", "2", ...).
    title: a line above the view. digits: decimals kept in the page (default 3).
    """
    src = _check_tokens("src_tokens", src_tokens)
    tgt = _check_tokens("tgt_tokens", tgt_tokens)
    w = _as_array(weights)
    if w.ndim == 2:
        w = w[None, None]
    elif w.ndim == 3:
        w = w[None]
    elif w.ndim != 4:
        raise ValueError(f"weights must be (T, S), (H, T, S) or (L, H, T, S), got shape {tuple(w.shape)} "
                         "(for a batch, pick one sentence: weights[b])")
    if w.shape[-2:] != (len(tgt), len(src)):
        raise ValueError(f"weights have (T, S) = {tuple(w.shape[-2:])} in their last two dimensions, "
                         f"expected (len(tgt_tokens), len(src_tokens)) = ({len(tgt)}, {len(src)})")
    if not np.isfinite(w).all():
        raise ValueError("weights contain NaN or infinity; expected finite attention weights")
    if (w < 0).any():
        raise ValueError(f"weights contain negative values (min {w.min():.3g}); expected attention weights >= 0")
    L, H = w.shape[:2]
    layers = [str(n) for n in (layer_names or [str(i + 1) for i in range(L)])]
    heads = [str(n) for n in (head_names or [str(i + 1) for i in range(H)])]
    if len(layers) != L:
        raise ValueError(f"layer_names has {len(layers)} names, expected {L} (one per layer of weights)")
    if len(heads) != H:
        raise ValueError(f"head_names has {len(heads)} names, expected {H} (one per head of weights)")
    if not isinstance(digits, int) or not 1 <= digits <= 6:
        raise ValueError(f"digits must be an int from 1 to 6, got {digits!r}")
    return AttentionExplorer(w, src, tgt, _gold_matrix(gold, len(tgt), len(src)), layers, heads, title, digits)
