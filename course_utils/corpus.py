"""The running example: a synthetic English -> Chinese parallel corpus.

A small grammar writes subject-verb-object clauses and translates them word by
word, with the three reorderings that make translation more than a lookup:

* time words move to the front of the clause ("... yesterday" -> 昨天 ...);
* place phrases move before the verb ("... in the garden" -> 在 花园 里 ...);
* articles ("the", "a") align to nothing.

Clauses are joined by "and" (-> 然后), so sentences run from 3 to about 50 source
tokens, long enough to break a fixed-context encoder-decoder. Every pair carries
its gold word alignment. The words are in :mod:`course_utils.lexicon`.
Introduced in notebook 00.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from course_utils.batching import Vocab
from course_utils.lexicon import ADJECTIVES, AGENTS, AND, ARTICLES, PLACES, PREPOSITIONS, THINGS, TIMES, VERBS, ZAI
from course_utils.pairs import Pair

SHORTEST = 3
"""The shortest sentence the grammar writes: a name, a verb, a name ("Tom saw Jerry")."""
_MAX_TRIES = 2_000  # draws in a row without a new sentence before make_corpus gives up


class _Builder:
    """Accumulates source and target tokens and the alignment between them."""

    def __init__(self) -> None:
        self.src: list[str] = []
        self.tgt: list[str] = []
        self.links: list[tuple[int, int]] = []

    def add_src(self, word: str) -> int:
        self.src.append(word)
        return len(self.src) - 1

    def add_tgt(self, word: str, *src_positions: int) -> None:
        self.tgt.append(word)
        self.links += [(s, len(self.tgt) - 1) for s in src_positions]


def _noun_phrase(rng: random.Random, nouns: dict, b: _Builder) -> list[tuple[str, int]]:
    """English noun phrase into ``b.src``; return its Chinese tokens with source positions."""
    noun = rng.choice(list(nouns))
    out = []
    if noun[0].islower():  # names take no article or adjective
        adjectives = rng.sample(list(ADJECTIVES), k=rng.choice((0, 0, 1, 1, 2)))
        article = "the" if rng.random() < 0.6 else "a"
        if article == "a" and (adjectives or [noun])[0][0] in "aeiou":
            article = "an"
        b.add_src(article)
        for adj in adjectives:
            out.append((ADJECTIVES[adj][0], b.add_src(adj)))
    out.append((nouns[noun][0], b.add_src(noun)))
    return out


def _clause(rng: random.Random, b: _Builder) -> None:
    """English: SUBJ VERB OBJ [PREP the PLACE] [TIME]; Chinese: [TIME] SUBJ [在 PLACE PREP] VERB OBJ."""
    subj = _noun_phrase(rng, AGENTS, b)
    verb = rng.choice(list(VERBS))
    verb_pos = b.add_src(verb)
    obj = _noun_phrase(rng, AGENTS if rng.random() < 0.4 else THINGS, b)
    place: list[tuple[str, int]] = []
    if rng.random() < 0.5:
        prep = rng.choice(list(PREPOSITIONS))
        prep_pos = b.add_src(prep)
        b.add_src("the")
        noun = rng.choice(list(PLACES))
        place = [(ZAI[0], prep_pos), (PLACES[noun][0], b.add_src(noun)), (PREPOSITIONS[prep][0], prep_pos)]
    time: list[tuple[str, tuple[int, ...]]] = []
    if rng.random() < 0.35:
        words = rng.choice(list(TIMES))
        time = [(TIMES[words][0], tuple(b.add_src(w) for w in words))]
    for zh, positions in time:
        b.add_tgt(zh, *positions)
    for zh, pos in subj + place:
        b.add_tgt(zh, pos)
    b.add_tgt(VERBS[verb][0], verb_pos)
    for zh, pos in obj:
        b.add_tgt(zh, pos)


def generate_pair(rng: random.Random, target_len: int | None = None, max_len: int = 50) -> Pair:
    """Generate one sentence pair, of about ``target_len`` source tokens if given.

    Clauses are added while the sentence is shorter than ``target_len``; the
    result never exceeds ``max_len`` source tokens (at least 3, the shortest
    sentence). Introduced in notebook 00.
    """
    if max_len < SHORTEST:
        raise ValueError(f"max_len: expected at least {SHORTEST} (the shortest sentence, "
                         f"'Tom saw Jerry'), got {max_len}")
    target_len = rng.randint(min(4, max_len), max_len) if target_len is None else target_len
    while True:
        b = _Builder()
        _clause(rng, b)
        while len(b.src) < target_len - 3:
            and_pos = b.add_src("and")
            b.add_tgt(AND[0], and_pos)
            _clause(rng, b)
        if len(b.src) <= max_len:
            return Pair(tuple(b.src), tuple(b.tgt), tuple(b.links))


@dataclass
class Corpus:
    """Train / valid / test splits and the two vocabularies. Introduced in notebook 00."""

    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]
    src_vocab: Vocab = field(repr=False)
    tgt_vocab: Vocab = field(repr=False)


def make_corpus(n_train: int = 12000, n_valid: int = 600, n_test: int = 1500,
                min_len: int = 4, max_len: int = 50, seed: int = 0) -> Corpus:
    """Generate a deterministic corpus with disjoint splits.

    Source lengths are spread evenly over ``min_len..max_len``. The same ``seed``
    always gives the same corpus; vocabularies cover the whole lexicon, so every
    split encodes without ``<unk>``. ``max_len`` must be at least 3 (the shortest
    sentence) and ``min_len <= max_len``; asking for more distinct sentences than the
    grammar writes in that range raises a ValueError (after 2,000 draws in a row
    without a new one) instead of searching forever. Introduced in notebook 00.
    """
    for name, n in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"{name}: expected an int >= 0, got {n!r}")
    if max_len < SHORTEST:
        raise ValueError(f"max_len: expected at least {SHORTEST} (the shortest sentence, "
                         f"'Tom saw Jerry'), got {max_len}")
    if min_len > max_len:
        raise ValueError(f"min_len: expected at most max_len={max_len}, got {min_len}")
    rng = random.Random(f"course-corpus-{seed}")
    seen: set[tuple[str, ...]] = set()
    splits: list[list[Pair]] = []
    for n in (n_train, n_valid, n_test):
        pairs: list[Pair] = []
        misses = 0
        while len(pairs) < n:
            pair = generate_pair(rng, rng.randint(min_len, max_len), max_len)
            if pair.src not in seen and len(pair.src) >= min_len:
                seen.add(pair.src)
                pairs.append(pair)
                misses = 0
                continue
            misses += 1
            if misses >= _MAX_TRIES:
                raise ValueError(
                    f"make_corpus: asked for {n_train + n_valid + n_test} distinct sentences of "
                    f"{min_len}..{max_len} source tokens, but {_MAX_TRIES} draws in a row found no new "
                    f"one after {len(seen)}: the grammar has (about) no more; ask for fewer "
                    "sentences or widen min_len..max_len")
        splits.append(pairs)
    src_vocab, tgt_vocab = lexicon_vocabs()
    return Corpus(*splits, src_vocab=src_vocab, tgt_vocab=tgt_vocab)


def lexicon_vocabs() -> tuple[Vocab, Vocab]:
    """Source and target vocabularies of the whole grammar (independent of any sample)."""
    src = set(ARTICLES) | {"and"} | {w for words in TIMES for w in words}
    tgt = {ZAI[0], AND[0]} | {zh for zh, _ in TIMES.values()}
    for table in (AGENTS, THINGS, VERBS, ADJECTIVES, PLACES, PREPOSITIONS):
        src |= set(table)
        tgt |= {zh for zh, _ in table.values()}
    return Vocab(sorted(src)), Vocab(sorted(tgt))
