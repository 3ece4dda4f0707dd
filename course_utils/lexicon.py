"""The lexicon of the running example: every English word, its Chinese token and pinyin.

Tables map an English word to ``(Chinese token, pinyin)``; :func:`words` looks up the
Chinese (or English) words of one kind, e.g. ``words("time")`` -> ``["昨天", "今天", ...]``.
The grammar that uses them is in :mod:`course_utils.corpus`. Introduced in notebook 00.
"""
from __future__ import annotations

# English word -> (Chinese token, pinyin). Names keep their capital letter.
AGENTS = {
    "Tom": ("汤姆", "tāngmǔ"), "Jerry": ("杰瑞", "jiéruì"), "Lily": ("莉莉", "lìli"),
    "Max": ("马克斯", "mǎkèsī"), "cat": ("猫", "māo"), "dog": ("狗", "gǒu"),
    "mouse": ("老鼠", "lǎoshǔ"), "bird": ("鸟", "niǎo"), "teacher": ("老师", "lǎoshī"),
    "student": ("学生", "xuésheng"), "farmer": ("农民", "nóngmín"), "doctor": ("医生", "yīshēng"),
    "child": ("孩子", "háizi"), "girl": ("女孩", "nǚhái"), "boy": ("男孩", "nánhái"),
    "horse": ("马", "mǎ"),
}
THINGS = {
    "ball": ("球", "qiú"), "fish": ("鱼", "yú"), "apple": ("苹果", "píngguǒ"),
    "book": ("书", "shū"), "letter": ("信", "xìn"), "bread": ("面包", "miànbāo"),
    "cake": ("蛋糕", "dàngāo"), "hat": ("帽子", "màozi"), "key": ("钥匙", "yàoshi"),
    "kite": ("风筝", "fēngzheng"), "picture": ("画", "huà"), "song": ("歌", "gē"),
    "box": ("盒子", "hézi"), "flower": ("花", "huā"),
}
VERBS = {
    "chased": ("追逐", "zhuīzhú"), "saw": ("看见", "kànjiàn"), "found": ("找到", "zhǎodào"),
    "liked": ("喜欢", "xǐhuan"), "carried": ("搬", "bān"), "watched": ("看", "kàn"),
    "helped": ("帮助", "bāngzhù"), "followed": ("跟着", "gēnzhe"), "drew": ("画了", "huàle"),
    "bought": ("买了", "mǎile"), "ate": ("吃了", "chīle"), "washed": ("洗了", "xǐle"),
    "hid": ("藏了", "cángle"), "sold": ("卖了", "màile"),
}
ADJECTIVES = {
    "big": ("大", "dà"), "small": ("小", "xiǎo"), "old": ("老", "lǎo"),
    "young": ("年轻", "niánqīng"), "red": ("红色", "hóngsè"), "white": ("白色", "báisè"),
    "happy": ("快乐", "kuàilè"), "hungry": ("饿", "è"), "clever": ("聪明", "cōngming"),
    "lazy": ("懒", "lǎn"), "tiny": ("小小", "xiǎoxiǎo"), "brave": ("勇敢", "yǒnggǎn"),
}
PLACES = {
    "garden": ("花园", "huāyuán"), "park": ("公园", "gōngyuán"), "kitchen": ("厨房", "chúfáng"),
    "school": ("学校", "xuéxiào"), "street": ("街", "jiē"), "library": ("图书馆", "túshūguǎn"),
    "market": ("市场", "shìchǎng"), "forest": ("森林", "sēnlín"), "house": ("房子", "fángzi"),
    "river": ("河", "hé"),
}
# English preposition -> Chinese postposition; 在 (zài) is added before the place.
PREPOSITIONS = {
    "in": ("里", "lǐ"), "near": ("旁边", "pángbiān"), "behind": ("后面", "hòumian"),
    "under": ("下面", "xiàmian"), "outside": ("外面", "wàimian"),
}
# Time expressions (one or two English tokens) -> one Chinese token.
TIMES = {
    ("yesterday",): ("昨天", "zuótiān"), ("today",): ("今天", "jīntiān"),
    ("last", "night"): ("昨晚", "zuówǎn"), ("last", "week"): ("上周", "shàngzhōu"),
    ("this", "morning"): ("今天早上", "jīntiān zǎoshang"), ("once",): ("曾经", "céngjīng"),
}
ARTICLES = ("the", "a", "an")
ZAI = ("在", "zài")
AND = ("然后", "ránhòu")

PINYIN: dict[str, str] = {zh: py for table in (AGENTS, THINGS, VERBS, ADJECTIVES, PLACES,
                                               PREPOSITIONS, TIMES) for zh, py in table.values()}
PINYIN.update({ZAI[0]: ZAI[1], AND[0]: AND[1]})

# kind -> the tables (or single entries) that hold its words
_KINDS: dict[str, tuple] = {
    "agent": (AGENTS,), "thing": (THINGS,), "noun": (AGENTS, THINGS), "verb": (VERBS,),
    "adjective": (ADJECTIVES,), "place": (PLACES,), "preposition": (PREPOSITIONS,),
    "time": (TIMES,), "zai": ({(): ZAI},), "and": ({("and",): AND},),
}
KINDS = tuple(_KINDS)


def words(kind: str, language: str = "zh") -> list[str]:
    """The words of one kind, in lexicon order. Introduced in notebook 00.

    ``kind`` is one of :data:`KINDS`: "agent", "thing", "noun" (agents and things),
    "verb", "adjective", "place", "preposition" (in Chinese: the postposition after
    the place, 里, 旁边, ...), "time", "zai" (在, before a place) and "and" (然后).
    ``language`` "zh" gives the Chinese tokens, "en" the English words (a two-word
    time expression as one string, "last night"; "zai" has no English word).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if language not in ("zh", "en"):
        raise ValueError(f"language: expected 'zh' or 'en', got {language!r}")
    if language == "en" and kind == "zai":
        raise ValueError("kind='zai': 在 has no English word of its own (it comes with the preposition)")
    out = []
    for table in _KINDS[kind]:
        for en, (zh, _pinyin) in table.items():
            out.append(zh if language == "zh" else (" ".join(en) if isinstance(en, tuple) else en))
    return out


def to_pinyin(token: str) -> str:
    """Pinyin of a corpus token (the token itself if it has none). Introduced in notebook 00."""
    return PINYIN.get(token, token)
