"""A sentence pair with its gold word alignment, and grouping pairs by length.

Introduced in notebook 00.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pair:
    """One sentence pair with its gold alignment.

    ``alignment`` holds ``(src_index, tgt_index)`` pairs: target word ``tgt_index``
    translates source word ``src_index``. A target word may align to several source
    words (在 and 里 both come from "in") and articles align to nothing.
    Introduced in notebook 00.
    """

    src: tuple[str, ...]
    tgt: tuple[str, ...]
    alignment: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", tuple(self.src))
        object.__setattr__(self, "tgt", tuple(self.tgt))
        object.__setattr__(self, "alignment", tuple(tuple(a) for a in self.alignment))

    def aligned_source(self) -> list[list[int]]:
        """For each target position, the source positions it aligns to."""
        out: list[list[int]] = [[] for _ in self.tgt]
        for s, t in self.alignment:
            out[t].append(s)
        return out


TINY_EXAMPLE = Pair(("Tom", "chase", "Jerry"), ("汤姆", "追逐", "杰瑞"), ((0, 0), (1, 1), (2, 2)))
"""The course's dictionary-lookup example: Tom chase Jerry -> 汤姆 追逐 杰瑞. Introduced in notebook 00."""


def bucket_by_length(pairs: Iterable[Pair], edges: Sequence[int] = (4, 10, 20, 30, 40, 51)
                     ) -> dict[str, list[Pair]]:
    """Pairs grouped by source length: ``{"4-9": [...], "10-19": [...], ...}``.

    ``edges`` are bucket starts plus one past the end. Introduced in notebook 00.
    """
    buckets: dict[str, list[Pair]] = {f"{lo}-{hi - 1}": [] for lo, hi in zip(edges[:-1], edges[1:])}
    bounds = list(zip(edges[:-1], edges[1:]))
    for pair in pairs:
        for (lo, hi), key in zip(bounds, buckets):
            if lo <= len(pair.src) < hi:
                buckets[key].append(pair)
                break
    return buckets
