"""Vocabularies (token <-> id) and padded batches of sentence pairs.

Introduced in notebooks 00 (Vocab) and 01 (batches).
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from course_utils.pairs import Pair

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"


class Vocab:
    """Token <-> id mapping with ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3.

    Introduced in notebook 00.
    """

    specials = (PAD, BOS, EOS, UNK)
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

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

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = [self.stoi.get(tok, self.unk_id) for tok in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first ``<eos>``, without ``<pad>`` and ``<bos>``.

        An id outside ``0 .. len(self) - 1`` (a negative one included: it is not read
        from the end) raises a ValueError that names its position.
        """
        out = []
        for position, i in enumerate(int(i) for i in ids):
            if not 0 <= i < len(self.itos):
                raise ValueError(f"ids: expected token ids in 0..{len(self.itos) - 1} (the vocabulary "
                                 f"has {len(self.itos)} tokens), got {i} at position {position}")
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return out


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
