"""Chinese labels in plots: finding a CJK font, and pinyin when there is none.

:func:`cjk_font` looks for a font that matplotlib knows (Noto Sans CJK, Source Han
Sans, WenQuanYi, PingFang, Microsoft YaHei, ...). Without one, labels that contain
CJK characters are shown as pinyin (from :func:`course_utils.lexicon.to_pinyin`) and
a single warning per process says so: a plot never shows empty boxes. On
Debian/Ubuntu: ``apt-get install -y fonts-noto-cjk``. Used by
:mod:`course_utils.plotting`; introduced in notebook 00.
"""
from __future__ import annotations

import functools
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl

from course_utils.lexicon import to_pinyin

__all__ = ["cjk_font", "has_cjk_font", "label_tokens"]

# --------------------------------------------------------------------------- CJK fonts
# Preferred families, simplified Chinese first; any other CJK family is taken after these.
_CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "PingFang SC", "Hiragino Sans GB",
    "Microsoft YaHei", "SimHei", "Heiti SC", "STHeiti", "Noto Sans CJK TC", "Noto Sans CJK HK",
    "Noto Sans CJK JP", "Noto Sans CJK KR", "Source Han Sans", "Source Han Sans TC",
    "Source Han Sans JP", "Heiti TC", "Noto Serif CJK SC", "Source Han Serif SC",
    "AR PL UMing CN", "AR PL UKai CN", "AR PL UMing TW", "AR PL UKai TW", "SimSun",
    "Droid Sans Fallback", "Arial Unicode MS",
)
# Lower-case pieces of family names that only CJK fonts have (second pass).
_CJK_NAME_HINTS = ("cjk", "source han", "wenquanyi", "pingfang", "hiragino", "yahei", "simhei",
                   "heiti", "ar pl u", "droid sans fallback", "simsun", "noto sans sc")
# Lower-case pieces of font file names, to find fonts installed after matplotlib's cache was built.
_CJK_FILE_HINTS = ("cjk", "sourcehan", "wqy", "wenquanyi", "pingfang", "hiragino", "msyh",
                   "simhei", "simsun", "heiti", "uming", "ukai", "droidsansfallback", "notosanssc")

_CJK_RE = re.compile("[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3190-\u31ff"
                     "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_UNKNOWN_ZH = "<zh>"
_PINYIN_WARNED = False  # one warning per process; tests reset it
# the warning points at the first frame outside these files (the caller's code)
_OWN_FILES = {__file__, os.path.join(os.path.dirname(__file__), "plotting.py")}


def _known_cjk_family() -> str | None:
    names = {f.name for f in mpl.font_manager.fontManager.ttflist}
    for family in _CJK_FAMILIES:
        if family in names:
            return family
    for name in sorted(names):
        if any(hint in name.lower() for hint in _CJK_NAME_HINTS):
            return name
    return None


@functools.cache
def cjk_font() -> str | None:
    """Name of an installed font family with Chinese glyphs, or None (cached).

    Looks at the fonts matplotlib knows first; if none is CJK, scans the system
    font folders once for CJK font files (installed after matplotlib built its
    font cache) and registers them. Introduced in notebook 00.
    """
    family = _known_cjk_family()
    if family is not None:
        return family
    try:
        paths = mpl.font_manager.findSystemFonts()
    except Exception:  # an odd font folder must not break plotting
        return None
    added = False
    for path in paths:
        stem = os.path.basename(path).lower().replace("-", "").replace("_", "")
        if any(hint in stem for hint in _CJK_FILE_HINTS):
            try:
                mpl.font_manager.fontManager.addfont(path)
                added = True
            except Exception:
                continue
    return _known_cjk_family() if added else None


def has_cjk_font() -> bool:
    """True when Chinese labels can be drawn as characters. Introduced in notebook 00."""
    return cjk_font() is not None


def _has_cjk(text: str) -> bool:
    return _CJK_RE.search(text) is not None


def _pinyin_of(token: str) -> str:
    """Readable ASCII/pinyin form of one token that contains CJK characters."""
    def lookup(piece: str) -> str | None:
        try:
            py = to_pinyin(piece)
        except Exception:
            return None
        if not isinstance(py, str) or not py.strip() or _has_cjk(py) or "?" in py:
            return None
        return py

    whole = lookup(token)
    if whole is not None:
        return whole
    # Not in the table as a whole: cover it greedily with the longest known pieces,
    # keeping non-CJK characters as they are ("汤姆," -> "tāngmǔ,").
    out, prev_pinyin, i = "", False, 0
    while i < len(token):
        if not _has_cjk(token[i]):
            j = i
            while j < len(token) and not _has_cjk(token[j]):
                j += 1
            out, prev_pinyin, i = out + token[i:j], False, j
            continue
        for j in range(len(token), i, -1):
            py = lookup(token[i:j])
            if py is not None:
                out, prev_pinyin, i = out + (" " if prev_pinyin else "") + py, True, j
                break
        else:
            return _UNKNOWN_ZH
    return out


def _warn_pinyin_once() -> None:
    global _PINYIN_WARNED
    if not _PINYIN_WARNED:
        _PINYIN_WARNED = True
        frame, level = sys._getframe(0), 1  # point the warning at the caller's code
        while frame is not None and frame.f_code.co_filename in _OWN_FILES:
            frame, level = frame.f_back, level + 1
        warnings.warn("No CJK font found: Chinese labels are shown as pinyin. Install one "
                      "(Debian/Ubuntu: apt-get install -y fonts-noto-cjk) and restart the "
                      "kernel to see the characters.", UserWarning, stacklevel=level)


def label_tokens(tokens: Sequence[Any]) -> list[str]:
    """Tokens as plot labels: unchanged when a CJK font exists, else CJK -> pinyin.

    Without a CJK font, a token with Chinese characters becomes its pinyin
    (``"汤姆"`` -> ``"tāngmǔ"``), or ``"<zh>"`` when it has no known pinyin;
    one warning per process says so. Returns a new list. Introduced in notebook 00.
    """
    labels = [str(t) for t in tokens]
    if not any(_has_cjk(s) for s in labels) or cjk_font() is not None:
        return labels
    _warn_pinyin_once()
    return [_pinyin_of(s) if _has_cjk(s) else s for s in labels]


def _text(text: str | None) -> str | None:
    """A title / legend entry with CJK words replaced by pinyin when no CJK font exists."""
    if text is None or not _has_cjk(text) or cjk_font() is not None:
        return text
    _warn_pinyin_once()
    return re.sub(r"\S+", lambda m: _pinyin_of(m.group()) if _has_cjk(m.group()) else m.group(),
                  text)


def _families() -> list[str]:
    """Font families for text that may hold CJK: the current ones, then the CJK font."""
    fam = mpl.rcParams["font.family"]
    families = [fam] if isinstance(fam, str) else list(fam)
    font = cjk_font()
    if font is not None and font not in families:
        families.append(font)
    return families
