"""A Sphinx extension for the Chinese book (website.build stages it as _ext/course_zh_search.py):
Chinese words in its search index without jieba.

Sphinx's Chinese search indexes Chinese text only through jieba (not installed with the course);
without it only Latin words are found. Here, without jieba, every run of Chinese characters is a
term, and so is every two-character piece of it: a two-character query matches a piece exactly,
a longer one matches the runs that contain it (Sphinx's search matches part of a term for
queries longer than two characters). It also makes Sphinx's lookup of Latin words fast (_TermSet).
"""

from __future__ import annotations

import re

CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def cjk_terms(text: str) -> list[str]:
    terms = []
    for run in CJK_RUN.findall(text):
        terms.append(run)
        terms.extend(run[i:i + 2] for i in range(len(run) - 1))
    return terms


class _TermSet(set):
    """Sphinx's Chinese search keeps every Latin word it has seen in a list and looks each word
    it stems up in it (O(n) each: half the Chinese book's build time); a set, same interface."""

    def extend(self, words) -> None:
        self.update(words)


def setup(app):
    from sphinx.search import zh

    if not isinstance(zh.SearchChinese.latin_terms, _TermSet):
        zh.SearchChinese.latin_terms = _TermSet(zh.SearchChinese.latin_terms)

    if not zh.JIEBA and not getattr(zh.SearchChinese, "_course_cjk", False):
        latin_split = zh.SearchChinese.split

        def split(self, input: str) -> list[str]:
            return cjk_terms(input) + latin_split(self, input)

        zh.SearchChinese.split = split
        zh.SearchChinese._course_cjk = True
    return {"parallel_read_safe": True, "parallel_write_safe": True}
