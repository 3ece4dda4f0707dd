"""Tests of course_utils.plotting and course_utils.fonts: labels, shapes, the pinyin fallback,
untouched inputs.

They pass with and without a CJK font installed: font detection is monkeypatched
where the outcome depends on it.
"""
import types
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from course_utils import fonts, plotting  # noqa: E402

SRC = ["Tom", "chase", "Jerry"]
TGT = ["汤姆", "追逐", "杰瑞"]
FAKE_PINYIN = {"汤姆": "tāngmǔ", "追逐": "zhuīzhú", "杰瑞": "jiéruì", "在": "zài"}


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    def no_show(*args, **kwargs):
        raise AssertionError("plotting functions must not call plt.show()")

    monkeypatch.setattr(plt, "show", no_show)
    monkeypatch.setattr(fonts, "_PINYIN_WARNED", False)
    with matplotlib.rc_context():
        yield
    plt.close("all")


@pytest.fixture
def with_font(monkeypatch):
    """Pretend a CJK font exists (labels are not drawn, so no glyph is needed)."""
    monkeypatch.setattr(fonts, "cjk_font", lambda: "DejaVu Sans")


@pytest.fixture
def no_font(monkeypatch):
    """No CJK font, and a known pinyin table (to_pinyin returns unknown tokens as they are)."""
    monkeypatch.setattr(fonts, "cjk_font", lambda: None)
    monkeypatch.setattr(fonts, "to_pinyin", lambda token: FAKE_PINYIN.get(token, token))


def ticks(labels):
    return [t.get_text() for t in labels]


def pinyin_warnings(record):
    return [w for w in record if "No CJK font" in str(w.message)]


def test_show_attention_labels_rows_are_target_columns_source(with_font):
    w = torch.softmax(torch.randn(3, 3), dim=-1)
    ax = plotting.show_attention(w, SRC, TGT, title="Tom chase Jerry")
    assert ticks(ax.get_xticklabels()) == SRC
    assert ticks(ax.get_yticklabels()) == TGT
    assert ax.get_title() == "Tom chase Jerry"
    image = ax.images[0].get_array()
    assert image.shape == (3, 3)
    np.testing.assert_allclose(np.asarray(image), w.numpy(), rtol=1e-6)


def test_show_attention_non_square_and_batch_of_one(with_font):
    w = torch.rand(1, 2, 4)  # (1, T, S)
    ax = plotting.show_attention(w, ["a", "b", "c", "d"], ["x", "y"], colorbar=False)
    assert ticks(ax.get_xticklabels()) == ["a", "b", "c", "d"]
    assert ticks(ax.get_yticklabels()) == ["x", "y"]
    assert len(ax.figure.axes) == 1  # no colour bar


def test_show_attention_draws_on_given_axes():
    fig, ax = plt.subplots()
    out = plotting.show_attention(np.eye(2), ["a", "b"], ["c", "d"], ax=ax)
    assert out is ax
    assert len(fig.axes) == 2  # the axes and its colour bar


@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (2, 3, 3), (3,), (1, 1, 3, 3)])
def test_show_attention_bad_shape_names_weights_and_shapes(shape):
    with pytest.raises(ValueError) as err:
        plotting.show_attention(torch.rand(shape), SRC, ["a", "b", "c"])
    msg = str(err.value)
    assert msg.startswith("weights")
    assert str(shape) in msg  # the shape received
    assert "T=len(tgt_tokens)=3" in msg and "S=len(src_tokens)=3" in msg  # the one expected


def test_show_attention_gold_outlines_and_annotations(with_font):
    gold = [(0, 0), (1, 1), (2, 2)]
    ax = plotting.show_attention(np.full((3, 3), 1 / 3), SRC, TGT, gold=gold)
    outlines = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert sorted((int(p.get_x() + 0.5), int(p.get_y() + 0.5)) for p in outlines) == gold
    assert [t.get_text() for t in ax.texts] == ["0.33"] * 9  # small matrix: auto-annotated
    ax = plotting.show_attention(np.full((3, 3), 1 / 3), SRC, TGT, annotate=False)
    assert len(ax.texts) == 0
    big = plotting.show_attention(np.full((20, 20), 0.05), list("abcdefghijklmnopqrst"),
                                  list("ABCDEFGHIJKLMNOPQRST"))
    assert len(big.texts) == 0  # large matrix: not annotated by default


def test_gold_pair_is_src_then_tgt():
    ax = plotting.show_attention(np.zeros((2, 4)), list("abcd"), ["x", "y"], gold=[(3, 1)])
    (outline,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert (outline.get_x() + 0.5, outline.get_y() + 0.5) == (3, 1)  # x = source, y = target
    with pytest.raises(ValueError, match="gold"):
        plotting.show_attention(np.zeros((2, 4)), list("abcd"), ["x", "y"], gold=[(1, 3)])


def test_inputs_are_not_modified(no_font):
    w = torch.softmax(torch.randn(1, 3, 3), dim=-1).requires_grad_()
    w_before = w.detach().clone()
    arr = np.random.default_rng(0).random((2, 3, 3))
    arr_before = arr.copy()
    src, tgt, gold = list(SRC), list(TGT), [(0, 0), (2, 2)]
    results = {"attention": {"4-9": 0.9, "10-19": 0.8}}
    losses = [3.0, 2.0, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plotting.show_attention(w, src, tgt, gold=gold)
        plotting.attention_grid(arr, src, tgt, gold=gold)
        plotting.label_tokens(tgt)
        plotting.plot_by_length(results)
        plotting.plot_history(losses, smooth=2)
    assert torch.equal(w.detach(), w_before)
    assert np.array_equal(arr, arr_before)
    assert src == SRC and tgt == TGT and gold == [(0, 0), (2, 2)]
    assert results == {"attention": {"4-9": 0.9, "10-19": 0.8}} and losses == [3.0, 2.0, 1.0]


# --------------------------------------------------------------------------- fonts
def test_cjk_font_scans_once_and_has_cjk_font_follows_it(monkeypatch):
    scans = []
    monkeypatch.setattr(fonts, "_known_cjk_family", lambda: scans.append(1) or "Noto Sans CJK SC")
    fonts.cjk_font.cache_clear()
    try:
        assert fonts.cjk_font() == "Noto Sans CJK SC" and fonts.cjk_font() == "Noto Sans CJK SC"
        assert scans == [1], "the font search must run once per process, then come from the cache"
    finally:
        fonts.cjk_font.cache_clear()
    for found, expected in (("Some CJK", True), (None, False)):
        monkeypatch.setattr(fonts, "cjk_font", lambda found=found: found)
        assert fonts.has_cjk_font() is expected


def test_plotting_still_exports_the_font_helpers():
    for name in ("cjk_font", "has_cjk_font", "label_tokens"):
        assert getattr(plotting, name) is getattr(fonts, name), name


def test_font_detection_prefers_chinese_families_and_may_find_none(monkeypatch):
    fm = matplotlib.font_manager
    fake = [types.SimpleNamespace(name=n) for n in ("DejaVu Sans", "Noto Sans CJK JP",
                                                    "WenQuanYi Zen Hei")]
    monkeypatch.setattr(fm.fontManager, "ttflist", fake)
    assert fonts.cjk_font.__wrapped__() == "WenQuanYi Zen Hei"  # SC-capable before JP
    monkeypatch.setattr(fm.fontManager, "ttflist", fake[:1])
    monkeypatch.setattr(fm, "findSystemFonts", lambda *a, **k: ["/fonts/DejaVuSans.ttf"])
    assert fonts.cjk_font.__wrapped__() is None


def test_with_font_labels_stay_chinese_and_nothing_warns(with_font):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert plotting.label_tokens(TGT) == TGT
        plotting.show_attention(np.eye(3), SRC, TGT)
    assert pinyin_warnings(record) == []


def test_without_font_labels_become_pinyin_with_one_warning(no_font):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert plotting.label_tokens(TGT) == ["tāngmǔ", "zhuīzhú", "jiéruì"]
        ax = plotting.show_attention(np.eye(3), SRC, TGT, title="汤姆 追逐 杰瑞")
        fig = plotting.attention_grid(np.stack([np.eye(3)] * 2), SRC, TGT)
        plotting.label_tokens(["在"])
    assert len(pinyin_warnings(record)) == 1
    assert ticks(ax.get_yticklabels()) == ["tāngmǔ", "zhuīzhú", "jiéruì"]
    assert ticks(ax.get_xticklabels()) == SRC
    assert ax.get_title() == "tāngmǔ zhuīzhú jiéruì"
    assert ticks(fig.axes[0].get_yticklabels()) == ["tāngmǔ", "zhuīzhú", "jiéruì"]


def test_without_font_unknown_tokens_are_readable(no_font):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = plotting.label_tokens(["<bos>", "汤姆追逐", "猫", "杰瑞,", 7])
    assert labels == ["<bos>", "tāngmǔ zhuīzhú", "<zh>", "jiéruì,", "7"]
    assert not any(fonts._has_cjk(s) or "?" in s or "\\u" in s for s in labels)


def test_without_font_ascii_labels_do_not_warn(no_font):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert plotting.label_tokens(SRC) == SRC
        plotting.plot_by_length({"attention": {"4-9": 1.0}})
    assert pinyin_warnings(record) == []


def test_real_pinyin_table_gives_no_cjk(monkeypatch):
    monkeypatch.setattr(fonts, "cjk_font", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = plotting.label_tokens(TGT + ["不在词表里"])
    assert all(s and not fonts._has_cjk(s) and "?" not in s for s in labels)
    assert labels[-1] == "<zh>"


@pytest.mark.skipif(not plotting.has_cjk_font(), reason="no CJK font installed")
def test_real_cjk_font_draws_without_missing_glyphs():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ax = plotting.show_attention(np.eye(3), SRC, TGT, title="Tom chase Jerry → 汤姆 追逐 杰瑞")
        ax.figure.canvas.draw()
    assert [str(w.message) for w in record if "missing" in str(w.message).lower()] == []


# --------------------------------------------------------------------------- grid
def test_attention_grid_heads_share_one_colour_scale(with_font):
    w = torch.softmax(torch.randn(6, 3, 3) * torch.arange(1, 7).view(6, 1, 1), dim=-1)
    fig = plotting.attention_grid(w, SRC, TGT, ncols=4)
    heads = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert len(heads) == 6
    assert [ax.get_title() for ax in heads] == [f"head {i}" for i in range(1, 7)]
    assert {ax.images[0].get_clim() for ax in heads} == {(0.0, 1.0)}
    assert ticks(heads[0].get_yticklabels()) == TGT
    assert ticks(heads[5].get_xticklabels()) == SRC


def test_attention_grid_list_of_layers_with_titles():
    maps = [np.full((2, 3), v) for v in (1.0, 3.0)]  # outside [0, 1]: scale from the data
    fig = plotting.attention_grid(maps, ["a", "b", "c"], ["x", "y"], titles=["layer 1", "layer 2"])
    heads = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in heads] == ["layer 1", "layer 2"]
    assert heads[0].images[0].get_clim() == heads[1].images[0].get_clim() == (1.0, 3.0)


def test_attention_grid_bad_inputs():
    with pytest.raises(ValueError, match=r"weights\[1\].*\(2, 4\)"):
        plotting.attention_grid([np.zeros((2, 3)), np.zeros((2, 4))], ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match=r"weights.*\(2, 3\)"):
        plotting.attention_grid(np.zeros((2, 3)), ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="titles"):
        plotting.attention_grid(np.zeros((2, 2, 3)), ["a", "b", "c"], ["x", "y"], titles=["one"])


# --------------------------------------------------------------------------- curves
def test_plot_by_length_one_line_per_model_buckets_in_order():
    results = {
        "fixed context": {"4-9": 0.98, "10-19": 0.9, "20-29": 0.5, "30-50": 0.1},
        "attention": [("4-9", 0.99), ("10-19", 0.97), ("20-29", 0.95), ("30-50", 0.9)],
    }
    ax = plotting.plot_by_length(results, metric="exact match")
    assert ticks(ax.get_xticklabels()) == ["4-9", "10-19", "20-29", "30-50"]
    assert [line.get_label() for line in ax.get_lines()] == ["fixed context", "attention"]
    assert list(ax.get_lines()[1].get_ydata()) == [0.99, 0.97, 0.95, 0.9]
    assert all(line.get_marker() not in (None, "None", "") for line in ax.get_lines())
    assert ax.get_ylabel() == "exact match"
    assert ax.get_ylim()[0] == 0.0 and 1.0 <= ax.get_ylim()[1] <= 1.1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fixed context", "attention"]


def test_plot_by_length_missing_bucket_is_a_gap_and_bad_rows_raise():
    ax = plotting.plot_by_length({"a": {"short": 0.5, "long": 0.2}, "b": {"long": 0.4}})
    assert np.isnan(ax.get_lines()[1].get_ydata()[0])
    with pytest.raises(ValueError, match="results"):
        plotting.plot_by_length({})
    with pytest.raises(ValueError, match="results"):
        plotting.plot_by_length({"a": [0.5, 0.2]})


def test_plot_history_accepts_list_dict_and_object():
    ax = plotting.plot_history([3.0, 2.0, 1.5])
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == [3.0, 2.0, 1.5] and list(line.get_xdata()) == [1, 2, 3]

    history = types.SimpleNamespace(losses=[2.0, 1.0], steps=[100, 200])
    ax = plotting.plot_history({"fixed context": [4.0, 3.0, 2.0], "attention": history})
    assert [line.get_label() for line in ax.get_lines()] == ["fixed context", "attention"]
    assert list(ax.get_lines()[1].get_xdata()) == [100, 200]

    ax = plotting.plot_history(types.SimpleNamespace(losses=torch.tensor([1.0, 0.5])))
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2]


def test_plot_history_smoothing():
    ax = plotting.plot_history([0.0, 4.0, 0.0, 4.0, 0.0], smooth=2)
    raw, smooth = ax.get_lines()
    assert list(raw.get_ydata()) == [0.0, 4.0, 0.0, 4.0, 0.0]
    assert np.allclose(smooth.get_ydata(), [2.0, 2.0, 2.0, 2.0, 0.0])
    ax = plotting.plot_history([1.0] * 5, smooth=0.9)
    assert np.allclose(ax.get_lines()[1].get_ydata(), 1.0)  # debiased EMA of a constant
    with pytest.raises(ValueError, match="smooth"):
        plotting.plot_history([1.0, 2.0], smooth=1)
    with pytest.raises(ValueError, match="history"):
        plotting.plot_history([])


# --------------------------------------------------------------------------- style
def test_setup_style_projector_defaults():
    font = plotting.setup_style()
    assert tuple(matplotlib.rcParams["figure.figsize"]) == (9.0, 4.5)
    for key in ("font.size", "axes.labelsize", "xtick.labelsize", "legend.fontsize"):
        assert float(matplotlib.rcParams[key]) >= 11
    assert font == plotting.cjk_font()
    if font is not None:
        assert font in matplotlib.rcParams["font.family"]


def test_docstrings_name_the_notebook():
    expected = {"setup_style": "00", "plot_by_length": "01", "plot_history": "01",
                "show_attention": "00", "attention_grid": "06"}
    for name, nb in expected.items():
        assert f"Introduced in notebook {nb}" in getattr(plotting, name).__doc__, name
    for name in plotting.__all__:
        assert "Introduced in notebook" in getattr(plotting, name).__doc__, name
