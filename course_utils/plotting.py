"""Plots of the course: attention heat maps, accuracy by length, loss curves.

Every function here returns its Axes (or Figure) and never calls ``plt.show()``:
the notebook cell ends with ``plt.show()`` itself. Inputs are never modified.

Chinese labels need a CJK font: :mod:`course_utils.fonts` finds one, or shows
pinyin instead (``cjk_font``, ``has_cjk_font`` and ``label_tokens`` are re-exported
here).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_utils import fonts
from course_utils.fonts import cjk_font, has_cjk_font, label_tokens  # re-exported

__all__ = ["attention_grid", "cjk_font", "has_cjk_font", "label_tokens", "plot_by_length",
           "plot_history", "setup_style", "show_attention"]

# --------------------------------------------------------------------------- style
def setup_style() -> str | None:
    """Readable defaults for a projector, and the CJK font when one exists.

    Sets figure size (9, 4.5), font sizes >= 11, thicker lines and a light grid,
    and adds the CJK font (if any) as a fallback family, so Chinese characters
    render in every plot. Call once at the top of a notebook. Returns the CJK
    font's name or None. Introduced in notebook 00.
    """
    mpl.rcParams.update({
        "figure.figsize": (9.0, 4.5), "figure.dpi": 100, "savefig.dpi": 150,
        "font.size": 12, "axes.titlesize": 14, "axes.labelsize": 12,
        "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 11,
        "figure.titlesize": 15, "lines.linewidth": 2.0, "lines.markersize": 7,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "image.cmap": "viridis",
    })
    font = fonts.cjk_font()
    if font is not None:
        mpl.rcParams["font.family"] = ["sans-serif", font]  # per-glyph fallback to the CJK font
    return font


# --------------------------------------------------------------------------- attention
def _as_array(weights: Any) -> np.ndarray:
    """A float copy of a tensor / array / nested list (never a view of the input)."""
    if hasattr(weights, "detach"):  # torch.Tensor
        weights = weights.detach().to("cpu").float().numpy()
    return np.array(weights, dtype=float, copy=True)


def _weights_2d(weights: Any, src_tokens: Sequence[Any], tgt_tokens: Sequence[Any],
                name: str = "weights") -> np.ndarray:
    w = _as_array(weights)
    if w.ndim == 3 and w.shape[0] == 1:
        w = w[0]  # (1, T, S) -> (T, S)
    want = f"(T=len(tgt_tokens)={len(tgt_tokens)}, S=len(src_tokens)={len(src_tokens)})"
    if w.ndim != 2:
        raise ValueError(f"{name}: expected shape {want} or (1, T, S), got {tuple(w.shape)}")
    if w.shape != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(f"{name}: expected shape {want}, got {tuple(w.shape)} "
                         "(rows are target tokens, columns source tokens)")
    return w


def _default_limits(arrays: Sequence[np.ndarray], vmin: float | None,
                    vmax: float | None) -> tuple[float, float]:
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo >= 0.0 and hi <= 1.0:  # probabilities: a fixed 0..1 scale compares across plots
        lo, hi = 0.0, 1.0
    if hi <= lo:
        hi = lo + 1.0
    return (lo if vmin is None else vmin), (hi if vmax is None else vmax)


def show_attention(weights: Any, src_tokens: Sequence[Any], tgt_tokens: Sequence[Any],
                   ax: Axes | None = None, title: str | None = None, cmap: str = "viridis",
                   annotate: bool | None = None, gold: Sequence[tuple[int, int]] | None = None,
                   colorbar: bool = True, vmin: float | None = None, vmax: float | None = None,
                   xlabel: str = "source", ylabel: str = "target") -> Axes:
    """Heat map of one attention matrix: rows = target tokens, columns = source tokens.

    Args:
        weights: (T, S) tensor or array (a batch of one, (1, T, S), is accepted).
        src_tokens: S labels of the x axis; tgt_tokens: T labels of the y axis.
        annotate: write each weight in its cell; None (default) does so for small
            matrices (at most 12 x 12).
        gold: (src_idx, tgt_idx) pairs drawn as red outlines (the gold alignment).
        vmin, vmax: colour scale; default 0..1 for weights in [0, 1].

    Raises ValueError naming ``weights`` and both shapes when the tokens do not
    match. Returns the Axes. Introduced in notebook 00.
    """
    w = _weights_2d(weights, src_tokens, tgt_tokens)
    T, S = w.shape
    gold_pairs = [] if gold is None else [(int(s), int(t)) for s, t in gold]
    for s, t in gold_pairs:
        if not (0 <= s < S and 0 <= t < T):
            raise ValueError(f"gold: pair (src_idx={s}, tgt_idx={t}) is outside weights of "
                             f"shape (T={T}, S={S})")
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12.0, max(5.0, 0.6 * S + 3.0)),
                                      min(9.0, max(3.5, 0.5 * T + 2.0))),
                             layout="constrained")
    lo, hi = _default_limits([w], vmin, vmax)
    norm = Normalize(lo, hi)
    image = ax.imshow(w, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    families = fonts._families()
    ax.set_xticks(range(S))
    ax.set_xticklabels(fonts.label_tokens(src_tokens), rotation=45, ha="right",
                       rotation_mode="anchor", fontfamily=families)
    ax.set_yticks(range(T))
    ax.set_yticklabels(fonts.label_tokens(tgt_tokens), fontfamily=families)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    if title is not None:
        ax.set_title(fonts._text(title), fontfamily=families)
    if annotate is None:
        annotate = T <= 12 and S <= 12
    if annotate:
        colours = image.cmap(norm(w))  # (T, S, 4)
        size = 11 if max(T, S) <= 8 else 9
        for t in range(T):
            for s in range(S):
                r, g, b, _ = colours[t, s]
                ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(s, t, f"{w[t, s]:.2f}", ha="center", va="center", color=ink,
                        fontsize=size)
    for s, t in gold_pairs:
        ax.add_patch(Rectangle((s - 0.5, t - 0.5), 1, 1, fill=False, edgecolor="red",
                               linewidth=2.5))
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="weight")
    return ax


def attention_grid(weights: Any, src_tokens: Sequence[Any], tgt_tokens: Sequence[Any],
                   titles: Sequence[str] | None = None, ncols: int = 4, cmap: str = "viridis",
                   annotate: bool = False, gold: Sequence[tuple[int, int]] | None = None,
                   colorbar: bool = True, vmin: float | None = None, vmax: float | None = None,
                   suptitle: str | None = None,
                   figsize: tuple[float, float] | None = None) -> Figure:
    """Several attention maps (heads or layers) side by side, on one colour scale.

    Args:
        weights: (H, T, S) tensor or array ((1, H, T, S) accepted), or a list of
            (T, S) maps, all for the same tokens.
        titles: one per map; default "head 1", "head 2", ...
        ncols: maps per row.

    Returns the Figure. Introduced in notebook 06.
    """
    if isinstance(weights, (list, tuple)):
        maps = [_weights_2d(m, src_tokens, tgt_tokens, name=f"weights[{i}]")
                for i, m in enumerate(weights)]
    else:
        w = _as_array(weights)
        if w.ndim == 4 and w.shape[0] == 1:
            w = w[0]  # (1, H, T, S) -> (H, T, S)
        if w.ndim != 3:
            raise ValueError(f"weights: expected shape (H, T={len(tgt_tokens)}, "
                             f"S={len(src_tokens)}) or a list of (T, S), got {tuple(w.shape)}")
        maps = [_weights_2d(m, src_tokens, tgt_tokens, name=f"weights[{i}]")
                for i, m in enumerate(w)]
    if not maps:
        raise ValueError("weights: expected at least one attention map, got none")
    n = len(maps)
    if titles is None:
        titles = [f"head {i + 1}" for i in range(n)]
    elif len(titles) != n:
        raise ValueError(f"titles: expected {n} titles (one per map), got {len(titles)}")
    if ncols < 1:
        raise ValueError(f"ncols: expected at least 1, got {ncols}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    T, S = maps[0].shape
    if figsize is None:
        panel_w = min(4.0, max(2.6, 0.35 * S + 1.4))
        panel_h = min(4.0, max(2.4, 0.3 * T + 1.5))
        figsize = (min(16.0, panel_w * ncols + 1.2), panel_h * nrows + 0.4)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained")
    lo, hi = _default_limits(maps, vmin, vmax)
    used = []
    for i, (ax, m) in enumerate(zip(axes.flat, maps)):
        show_attention(m, src_tokens, tgt_tokens, ax=ax, title=titles[i], cmap=cmap,
                       annotate=annotate, gold=gold, colorbar=False, vmin=lo, vmax=hi,
                       xlabel="source" if i // ncols == nrows - 1 else "",
                       ylabel="target" if i % ncols == 0 else "")
        if i % ncols:
            ax.tick_params(labelleft=False)
        used.append(ax)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if colorbar:
        fig.colorbar(used[0].images[0], ax=used, shrink=0.9, label="weight")
    if suptitle is not None:
        fig.suptitle(fonts._text(suptitle), fontfamily=fonts._families())
    return fig


# --------------------------------------------------------------------------- curves
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_by_length(results: Mapping[str, Mapping[str, float] | Sequence[tuple[str, float]]],
                   metric: str = "exact match", ax: Axes | None = None,
                   title: str | None = None, xlabel: str = "source length (words)") -> Axes:
    """One line per model: a metric per length bucket, buckets in their given order.

    ``results`` maps a model name to ``{bucket_label: value}`` or to a sequence of
    ``(bucket_label, value)`` pairs, e.g. ``{"fixed context": {"4-9": 0.98,
    "10-19": 0.9}, "attention": {...}}``. A bucket a model lacks is a gap in its
    line. Values within [0, 1] get a 0..1 y axis. Introduced in notebook 01.
    """
    if not results:
        raise ValueError("results: expected at least one model, got an empty mapping")
    series: dict[str, dict[str, float]] = {}
    buckets: list[str] = []
    for name, rows in results.items():
        pairs = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
        values: dict[str, float] = {}
        for row in pairs:
            try:
                bucket, value = row
                values[str(bucket)] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"results[{name!r}]: expected {{bucket: value}} or "
                                 f"(bucket, value) pairs, got {row!r}") from None
        for bucket in values:
            if bucket not in buckets:
                buckets.append(bucket)
        series[str(name)] = values
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    x = np.arange(len(buckets))
    all_values = []
    for i, (name, values) in enumerate(series.items()):
        y = np.array([values.get(b, np.nan) for b in buckets])
        all_values.extend(v for v in y if np.isfinite(v))
        ax.plot(x, y, marker=_MARKERS[i % len(_MARKERS)], label=fonts._text(name))
    ax.set_xticks(x)
    ax.set_xticklabels(fonts.label_tokens(buckets), fontfamily=fonts._families())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    if all_values and min(all_values) >= 0.0 and max(all_values) <= 1.0:
        ax.set_ylim(0.0, 1.05)
    if title is not None:
        ax.set_title(fonts._text(title), fontfamily=fonts._families())
    ax.legend(prop={"family": fonts._families()})
    return ax


def _curve(obj: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses) of a list of floats, a tensor, or an object with ``losses`` [and ``steps``]."""
    steps = None
    if hasattr(obj, "losses"):
        steps = getattr(obj, "steps", None)
        obj = obj.losses
    losses = _as_array(obj).ravel()
    if losses.size == 0:
        raise ValueError(f"{name}: expected at least one loss value, got none")
    if steps is None or np.ndim(steps) == 0 or len(steps) == 0:  # History.steps is a count
        x = np.arange(1, losses.size + 1, dtype=float)
    else:
        x = _as_array(steps).ravel()
        if x.size != losses.size:
            raise ValueError(f"{name}: {x.size} steps but {losses.size} losses")
    return x, losses


def _smoothed(y: np.ndarray, smooth: float) -> np.ndarray:
    if smooth >= 1:  # centred moving average over `smooth` points (fewer at the ends)
        k = int(smooth)
        before, after = (k - 1) // 2, k // 2
        c = np.concatenate([[0.0], np.cumsum(y)])
        i = np.arange(y.size)
        lo, hi = np.maximum(i - before, 0), np.minimum(i + after + 1, y.size)
        return (c[hi] - c[lo]) / (hi - lo)
    out, avg = np.empty_like(y), 0.0  # exponential moving average, debiased
    for i, v in enumerate(y):
        avg = smooth * avg + (1 - smooth) * v
        out[i] = avg / (1 - smooth ** (i + 1))
    return out


def plot_history(history: Any, ax: Axes | None = None, smooth: float = 0,
                 title: str | None = None, xlabel: str = "step", ylabel: str = "loss",
                 logy: bool = False) -> Axes:
    """Loss curves.

    ``history`` is a list of floats, an object with ``losses`` (and optional
    ``steps``), or a dict name -> either of those (one curve each). ``smooth``:
    0 plots the raw values; an int k >= 2 a centred mean over k points; a float
    in (0, 1) an exponential moving average with that factor (the raw curve is
    then drawn faintly behind). Introduced in notebook 01.
    """
    if not (smooth == 0 or smooth >= 2 or 0 < smooth < 1):
        raise ValueError(f"smooth: expected 0, an int >= 2 or a float in (0, 1), got {smooth}")
    if isinstance(history, Mapping):
        if not history:
            raise ValueError("history: expected at least one curve, got an empty mapping")
        curves = {str(k): _curve(v, f"history[{k!r}]") for k, v in history.items()}
    else:
        curves = {"train": _curve(history, "history")}
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    for name, (x, y) in curves.items():
        if smooth:
            (raw,) = ax.plot(x, y, alpha=0.25, linewidth=1)
            ax.plot(x, _smoothed(y, smooth), color=raw.get_color(), label=fonts._text(name))
        else:
            ax.plot(x, y, label=fonts._text(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title is not None:
        ax.set_title(fonts._text(title), fontfamily=fonts._families())
    if len(curves) > 1:
        ax.legend(prop={"family": fonts._families()})
    return ax
