"""The running example: a synthetic English -> Chinese parallel corpus.

A small grammar writes subject-verb-object clauses and translates them word by
word, with the three reorderings that make translation more than a lookup:

* time words move to the front of the clause ("... yesterday" -> 昨天 ...);
* place phrases move before the verb ("... in the garden" -> 在 花园 里 ...);
* articles ("the", "a") align to nothing.

Clauses are joined by "and" (-> 然后), so sentences run from 4 to about 50 source
tokens, long enough to break a fixed-context encoder-decoder. Every pair carries
its gold word alignment, and every Chinese token has a pinyin form for plots
drawn without a CJK font. Introduced in notebook 00.
"""
from __future__ import annotations

import hashlib
import random
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

# --------------------------------------------------------------------------- lexicon
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

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"


def to_pinyin(token: str) -> str:
    """Pinyin of a corpus token (the token itself if it has none). Introduced in notebook 00."""
    return PINYIN.get(token, token)


# --------------------------------------------------------------------------- pairs
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
"""The course's running example, a dictionary lookup: Tom chase Jerry -> 汤姆 追逐 杰瑞. Introduced in notebook 00."""


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
    result never exceeds ``max_len`` source tokens. Introduced in notebook 00.
    """
    target_len = rng.randint(4, max_len) if target_len is None else target_len
    while True:
        b = _Builder()
        _clause(rng, b)
        while len(b.src) < target_len - 3:
            and_pos = b.add_src("and")
            b.add_tgt(AND[0], and_pos)
            _clause(rng, b)
        if len(b.src) <= max_len:
            return Pair(tuple(b.src), tuple(b.tgt), tuple(b.links))


# --------------------------------------------------------------------------- vocabularies
class Vocab:
    """Token <-> id mapping with ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3.

    Introduced in notebook 00.
    """

    specials = (PAD, BOS, EOS, UNK)

    def __init__(self, tokens: Iterable[str]) -> None:
        self.itos: list[str] = list(self.specials)
        seen = set(self.itos)
        for tok in tokens:
            if tok not in seen:
                seen.add(tok)
                self.itos.append(tok)
        self.stoi = {tok: i for i, tok in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]]) -> Vocab:
        """A vocabulary of every token in ``sentences``, in sorted order (deterministic)."""
        return cls(sorted({tok for sent in sentences for tok in sent}))

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = [self.stoi.get(tok, self.unk_id) for tok in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first ``<eos>``, without ``<pad>`` and ``<bos>``."""
        out = []
        for i in (int(i) for i in ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return out


# --------------------------------------------------------------------------- corpus
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
    split encodes without ``<unk>``. Introduced in notebook 00.
    """
    rng = random.Random(f"course-corpus-{seed}")
    seen: set[tuple[str, ...]] = set()
    splits: list[list[Pair]] = []
    for n in (n_train, n_valid, n_test):
        pairs: list[Pair] = []
        while len(pairs) < n:
            pair = generate_pair(rng, rng.randint(min_len, max_len), max_len)
            if pair.src not in seen and len(pair.src) >= min_len:
                seen.add(pair.src)
                pairs.append(pair)
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


def bucket_by_length(pairs: Iterable[Pair], edges: Sequence[int] = (4, 10, 20, 30, 40, 51)
                     ) -> dict[str, list[Pair]]:
    """Pairs grouped by source length: ``{"4-9": [...], "10-19": [...], ...}``.

    ``edges`` are bucket starts plus one past the end. Introduced in notebook 00.
    """
    buckets = {f"{lo}-{hi - 1}": [] for lo, hi in zip(edges[:-1], edges[1:])}
    bounds = list(zip(edges[:-1], edges[1:]))
    for pair in pairs:
        for (lo, hi), key in zip(bounds, buckets):
            if lo <= len(pair.src) < hi:
                buckets[key].append(pair)
                break
    return buckets


# --------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """A padded batch. Introduced in notebook 01.

    Shapes: ``src`` (B, S), ``src_lengths`` (B,), ``tgt_in`` (B, T) = <bos> y,
    ``tgt_out`` (B, T) = y <eos>, ``tgt_lengths`` (B,) counting <eos>.
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_lengths: torch.Tensor
    pairs: list[Pair] = field(repr=False, default_factory=list)

    @property
    def src_mask(self) -> torch.Tensor:
        """(B, S) bool, True at real (non-padding) source tokens."""
        return length_mask(self.src_lengths, self.src.shape[1])  # (B, S)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.src.to(device), self.src_lengths.to(device), self.tgt_in.to(device),
                     self.tgt_out.to(device), self.tgt_lengths.to(device), self.pairs)

    def __len__(self) -> int:
        return self.src.shape[0]


def length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) bool, True at the first ``lengths[b]`` positions of row b (real tokens).

    Shapes: lengths (B,) -> (B, width). Introduced in notebook 01.
    """
    steps = torch.arange(width, device=lengths.device)  # (width,)
    return steps[None, :] < lengths[:, None]  # (B, width)


def _pad(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


def make_batch(pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab) -> Batch:
    """Encode and pad ``pairs`` into one :class:`Batch`. Introduced in notebook 01."""
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one pair, got an empty sequence")
    src = [src_vocab.encode(p.src) for p in pairs]
    tgt = [tgt_vocab.encode(p.tgt) for p in pairs]
    return Batch(
        src=_pad(src, src_vocab.pad_id),
        src_lengths=torch.tensor([len(s) for s in src], dtype=torch.long),
        tgt_in=_pad([[tgt_vocab.bos_id] + t for t in tgt], tgt_vocab.pad_id),
        tgt_out=_pad([t + [tgt_vocab.eos_id] for t in tgt], tgt_vocab.pad_id),
        tgt_lengths=torch.tensor([len(t) + 1 for t in tgt], dtype=torch.long),
        pairs=list(pairs),
    )


def iterate_batches(pairs: Sequence[Pair], src_vocab: Vocab, tgt_vocab: Vocab,
                    batch_size: int = 64, shuffle: bool = True, seed: int = 0,
                    bucket: bool = True) -> Iterator[Batch]:
    """One epoch of batches. With ``bucket``, each batch holds sentences of
    similar length (less padding, faster); batch order is still shuffled.
    Introduced in notebook 01.
    """
    order = list(range(len(pairs)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    if bucket:  # sort within windows of 50 batches, then shuffle the batches
        window = batch_size * 50
        order = [i for k in range(0, len(order), window)
                 for i in sorted(order[k:k + window], key=lambda i: len(pairs[i].src))]
    chunks = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(chunks)
    for chunk in chunks:
        yield make_batch([pairs[i] for i in chunk], src_vocab, tgt_vocab)


# --------------------------------------------------------------------------- real corpora
def load_tsv_pairs(source: str | Path, cache_dir: str | Path | None = None,
                   sha256: str | None = None, max_pairs: int | None = None,
                   lowercase: bool = True) -> list[Pair]:
    """Load a tab-separated parallel corpus (``source<TAB>target[<TAB>...]`` per line).

    ``source`` is a local path or an http(s) URL; a URL is downloaded once into
    ``cache_dir`` (default ``~/.cache/attention-course``) and reused. With
    ``sha256`` the file's checksum is verified and a mismatch raises ValueError.
    This is how the course would read a real corpus such as the Tatoeba
    English-French pairs; no notebook or test downloads anything.
    Tokenisation is whitespace with punctuation split off. Introduced in notebook 00.
    """
    path = _fetch(str(source), cache_dir) if str(source).startswith(("http://", "https://")) else Path(source)
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256.lower():
            raise ValueError(f"sha256 of {path}: expected {sha256}, got {digest}")
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 2:
                raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got {line[:60]!r}")
            pairs.append(Pair(_tokenize(cols[0], lowercase), _tokenize(cols[1], lowercase)))
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
    return pairs


def _tokenize(text: str, lowercase: bool) -> tuple[str, ...]:
    text = text.lower() if lowercase else text
    out = []
    for word in text.split():
        core = word.strip(".,!?;:\"«»¿¡")
        lead, trail = word[: word.find(core)] if core else word, word[word.find(core) + len(core):] if core else ""
        out += list(lead) + ([core] if core else []) + list(trail)
    return tuple(out)


def _fetch(url: str, cache_dir: str | Path | None) -> Path:
    cache = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "attention-course"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / url.rstrip("/").rsplit("/", 1)[-1]
    if not target.exists():
        tmp = target.with_suffix(target.suffix + ".part")
        urllib.request.urlretrieve(url, tmp)  # noqa: S310 - only called on explicit request
        tmp.replace(target)
    return target
