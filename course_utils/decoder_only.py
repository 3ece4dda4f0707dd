"""A decoder-only translator: source and target in one sequence, one stack of causal layers.

The encoder-decoder of notebook 06 reads the English with one stack and writes
the Chinese with another that looks back through cross-attention. A language
model has only the second kind of layer, without cross-attention. It
translates all the same when the two sentences are written as **one** sequence::

    src_1 ... src_S  <sep>  tgt_1 ... tgt_n        (<sep> is the target's <bos>)

and it is asked to continue the sequence after ``<sep>`` (Radford et al., 2018,
2019). The "cross-attention" is then the part of each target step's
self-attention that lands on the source part of the sequence.

* Tokens: one embedding table for both languages; source id ``i`` is row ``i``,
  target id ``j`` is row ``src_vocab + j``. The output layer predicts target
  words only, and the loss counts the target part only: ``forward`` returns
  the logits of the target steps, (B, T, V), so ``course_utils.train`` trains
  it unchanged.
* Positions are counted per sentence, not per padded column: in a batch the
  target of a 5-word source starts at position 5 even when the batch pads
  sources to 9 words, and padded source columns are masked as keys. Padding
  therefore never changes an output.
* Masks are built from these positions: causal (step p sees steps <= p),
  optionally a **prefix** mask that lets the source see itself both ways
  (Raffel et al., 2020, "prefix LM"), optionally a **sliding window** (step p
  sees p - window + 1 .. p; Beltagy et al., 2020; Child et al., 2019).
* ``num_kv_heads`` < ``num_heads`` gives grouped-query (Ainslie et al., 2023)
  or multi-query (Shazeer, 2019) attention in every layer.
* Incremental decoding (``start_decoding`` / ``decode_step`` / ``reorder_state``,
  the protocol of ``course_utils.decoding``): the source is run once and its
  keys and values kept in one ``KVCache`` per layer; each step then appends one
  position. ``use_cache=False`` recomputes the whole sequence at every step;
  both give the same logits.

Introduced in notebook 09.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from course_utils.checks import check_shape
from course_utils.data import length_mask
from course_utils.multihead import MultiHeadAttention
from course_utils.positions import PositionalEncoding
from course_utils.protocols import check_max_len, greedy_decode

__all__ = ["DecoderBlock", "DecoderOnly", "DecoderOnlyConfig", "DecoderOnlyState", "sequence_mask"]


@dataclass
class DecoderOnlyConfig:
    """Sizes of a :class:`DecoderOnly` model. Introduced in notebook 09.

    ``max_len`` bounds the whole sequence, source + <sep> + target.
    ``prefix=True``: the source part attends both ways (prefix LM).
    ``window``: each step sees only the last ``window`` positions (None: all).
    """

    src_vocab: int
    tgt_vocab: int
    d_model: int = 64
    num_heads: int = 4
    num_kv_heads: int | None = None
    num_layers: int = 4
    d_ff: int = 128
    dropout: float = 0.0
    max_len: int = 256
    pad_id: int = 0
    prefix: bool = False
    window: int | None = None

    def __post_init__(self) -> None:
        if self.window is not None and self.window < 1:
            raise ValueError(f"window: expected None or a positive int, got {self.window!r}")


def sequence_mask(q_pos: Tensor, k_pos: Tensor, k_valid: Tensor, q_is_src: Tensor | None = None,
                  k_is_src: Tensor | None = None, window: int | None = None) -> Tensor:
    """The attention mask of a decoder-only model, from per-sentence positions.

    Query at position p may see key at position r when the key is real and
    r <= p (causal), or both are source steps (prefix LM: give ``q_is_src`` and
    ``k_is_src``); a ``window`` further requires p - r < window. Introduced in notebook 09.

    Shapes:
        q_pos (B, T), k_pos (B, S), k_valid (B, S), q_is_src (B, T), k_is_src (B, S)
        -> mask (B, 1, T, S), True = may attend
    """
    diff = q_pos[:, :, None] - k_pos[:, None, :]  # (B, T, S): how far back each key lies
    allowed = diff >= 0  # (B, T, S) causal
    if q_is_src is not None and k_is_src is not None:
        allowed = allowed | (q_is_src[:, :, None] & k_is_src[:, None, :])  # the source sees itself both ways
    if window is not None:
        allowed = allowed & (diff < window)  # keys more than window - 1 steps back are out of sight
    return (allowed & k_valid[:, None, :])[:, None]  # (B, 1, T, S)


class DecoderBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x)), then x + FF(LN(x)). Introduced in notebook 09."""

    def __init__(self, cfg: DecoderOnlyConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        kv = {} if cfg.num_kv_heads is None else {"num_kv_heads": cfg.num_kv_heads}
        self.attn = MultiHeadAttention(cfg.d_model, cfg.num_heads, cfg.dropout, **kv)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.ReLU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor, need_weights: bool = False, cache=None, use_cache: bool = False):
        """Shapes: x (B, L, D), mask (B, 1, L, L_keys) -> (B, L, D), weights (B, H, L, L_keys) or None[, cache].

        With ``use_cache`` the keys and values of ``x`` are appended to ``cache``
        (the keys seen are then cached + new) and the new cache is returned too.
        """
        h = self.norm1(x)
        if use_cache:
            a, w, cache = self.attn(h, h, h, mask, need_weights=need_weights, cache=cache, use_cache=True)
        else:
            a, w = self.attn(h, h, h, mask, need_weights=need_weights)
        x = x + self.drop(a)
        x = x + self.drop(self.ff(self.norm2(x)))
        return (x, w, cache) if use_cache else (x, w)


@dataclass
class DecoderOnlyState:
    """Where incremental decoding stands; every tensor is batch-first. Introduced in notebook 09.

    ``caches`` holds one ``KVCache`` per layer (None when decoding without a cache);
    ``tokens`` the target ids fed so far, starting with <sep>/<bos>.
    """

    src: Tensor  # (B, S)
    src_lengths: Tensor  # (B,)
    src_valid: Tensor  # (B, S) True at real source tokens
    tokens: Tensor  # (B, t) target ids fed so far
    caches: list | None = field(default=None)


class DecoderOnly(nn.Module):
    """Decoder-only translator with the interface of ``Seq2Seq`` and ``Transformer``.

    ``forward(src, src_lengths, tgt_in)`` returns the target steps' logits
    (B, T, V) and the last layer's attention of the target steps on the source
    part, averaged over heads, (B, T, S) (differentiable; the rest of each row's
    weight lies on the target part). Introduced in notebook 09.
    """

    def __init__(self, cfg: DecoderOnlyConfig, bos_id: int = 1, eos_id: int = 2) -> None:
        super().__init__()
        self.cfg, self.bos_id, self.eos_id, self.pad_id = cfg, bos_id, eos_id, cfg.pad_id
        self.embed = nn.Embedding(cfg.src_vocab + cfg.tgt_vocab, cfg.d_model)
        self.pos = PositionalEncoding(cfg.d_model, cfg.max_len)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.tgt_vocab)
        nn.init.normal_(self.embed.weight, std=cfg.d_model ** -0.5)  # scaled by sqrt(D): about as large as positions

    @property
    def has_attention(self) -> bool:
        """True: ``forward`` and ``greedy_decode`` return weights on the source."""
        return True

    # ------------------------------------------------------------------ the sequence
    def _check_src(self, src: Tensor, src_lengths: Tensor) -> dict[str, int]:
        bound = check_shape("src", src, ("B", "S"))
        check_shape("src_lengths", src_lengths, ("B",), bound)
        S = bound["S"]
        if len(src_lengths) and (int(src_lengths.min()) < 1 or int(src_lengths.max()) > S):
            raise ValueError(f"src_lengths: expected values in 1..S={S} for src of shape {tuple(src.shape)}, "
                             f"got {src_lengths.tolist()}")
        return bound

    def _embed(self, ids: Tensor, positions: Tensor) -> Tensor:
        if positions.numel() and int(positions.max()) >= self.cfg.max_len:
            raise ValueError(f"src + tgt: positions up to {int(positions.max())}, "
                             f"expected fewer than max_len={self.cfg.max_len}")
        return self.embed(ids) * math.sqrt(self.cfg.d_model) + self.pos.pe[positions]  # (B, L, D)

    def _layout(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One sequence per sentence pair: ids, positions, real-key flags, source flags, each (B, S + T)."""
        B, S = src.shape
        T = tgt_in.shape[1]
        lengths = src_lengths.to(src.device)
        ids = torch.cat([src, tgt_in + self.cfg.src_vocab], dim=1)  # (B, S + T): target ids after the source's
        steps = torch.arange(T, device=src.device)  # (T,)
        positions = torch.cat([torch.arange(S, device=src.device).expand(B, S),
                               lengths[:, None] + steps[None, :]], dim=1)  # (B, S + T): per-sentence positions
        src_valid = length_mask(lengths, S)  # (B, S)
        valid = torch.cat([src_valid, torch.ones(B, T, dtype=torch.bool, device=src.device)], dim=1)  # (B, S + T)
        is_src = torch.cat([torch.ones(B, S, dtype=torch.bool, device=src.device),
                            torch.zeros(B, T, dtype=torch.bool, device=src.device)], dim=1)  # (B, S + T)
        return ids, positions, valid, is_src

    def _mask(self, q_pos: Tensor, k_pos: Tensor, k_valid: Tensor, q_is_src: Tensor, k_is_src: Tensor) -> Tensor:
        prefix = (q_is_src, k_is_src) if self.cfg.prefix else (None, None)
        return sequence_mask(q_pos, k_pos, k_valid, *prefix, window=self.cfg.window)  # (B, 1, Lq, Lk)

    def run(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, all_weights: bool = False
            ) -> tuple[Tensor, list[Tensor | None]]:
        """The whole sequence through every block.

        Shapes:
            src (B, S), src_lengths (B,), tgt_in (B, T)
            -> hidden states (B, S + T, D), per block weights (B, H, S + T, S + T)
               (only the last block's unless ``all_weights``; None for the others)
        """
        bound = self._check_src(src, src_lengths)
        check_shape("tgt_in", tgt_in, ("B", "T"), bound)
        ids, positions, valid, is_src = self._layout(src, src_lengths, tgt_in)
        mask = self._mask(positions, positions, valid, is_src, is_src)  # (B, 1, S + T, S + T)
        x = self._embed(ids, positions)  # (B, S + T, D)
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, mask, need_weights=all_weights or i == len(self.blocks) - 1)
            weights.append(w)
        return self.norm(x), weights

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced pass; the loss belongs on the target part only.

        Shapes:
            src (B, S), src_lengths (B,), tgt_in (B, T) = <bos> y
            -> logits (B, T, V) of the target steps, weights (B, T, S) on the source part
        """
        S = src.shape[1]
        h, weights = self.run(src, src_lengths, tgt_in)
        logits = self.out(h[:, S:])  # (B, T, D) -> (B, T, V): only the target steps are predicted
        return logits, weights[-1][:, :, S:, :S].mean(1)  # (B, H, T, S) -> (B, T, S)

    def attention_maps(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> list[Tensor]:
        """Per block, the weights of the whole sequence (B, H, S + T, S + T), from this call."""
        return self.run(src, src_lengths, tgt_in, all_weights=True)[1]

    # ------------------------------------------------------------ incremental decoding
    def start_decoding(self, src: Tensor, src_lengths: Tensor, use_cache: bool = True) -> DecoderOnlyState:
        """Read the source; with ``use_cache`` run it once and keep its keys and values per block.

        Shapes: src (B, S), src_lengths (B,) -> state
        """
        bound = self._check_src(src, src_lengths)
        B, S = bound["B"], bound["S"]
        lengths = src_lengths.to(src.device)
        src_valid = length_mask(lengths, S)  # (B, S)
        tokens = src.new_empty(B, 0)  # (B, 0): no target token yet
        if not use_cache:
            return DecoderOnlyState(src, lengths, src_valid, tokens, None)
        positions = torch.arange(S, device=src.device).expand(B, S)  # (B, S)
        is_src = torch.ones(B, S, dtype=torch.bool, device=src.device)  # (B, S)
        mask = self._mask(positions, positions, src_valid, is_src, is_src)  # (B, 1, S, S)
        x, caches = self._embed(src, positions), []  # (B, S, D)
        for block in self.blocks:
            x, _, cache = block(x, mask, need_weights=False, cache=None, use_cache=True)
            caches.append(cache)  # keys and values (B, Hkv, S, Dh)
        return DecoderOnlyState(src, lengths, src_valid, tokens, caches)

    @torch.no_grad()
    def decode_step(self, state: DecoderOnlyState, prev_tokens: Tensor) -> tuple[Tensor, Tensor, DecoderOnlyState]:
        """Feed one target token per sentence; return the next word's logits.

        Shapes:
            prev_tokens (B,) -> logits (B, V), weights (B, S) (last block, mean over heads,
            on the source part), the new state
        """
        B, S = state.src.shape
        check_shape("prev_tokens", prev_tokens, (B,))
        tokens = torch.cat([state.tokens, prev_tokens[:, None]], dim=1)  # (B, t + 1)
        if state.caches is None:  # recompute the whole sequence
            h, weights = self.run(state.src, state.src_lengths, tokens)
            w = weights[-1][:, :, -1, :S].mean(1)  # (B, H, S + t + 1, S + t + 1) -> (B, S)
            return self.out(h[:, -1]), w, DecoderOnlyState(state.src, state.src_lengths, state.src_valid, tokens)
        t = tokens.shape[1] - 1  # this token's index in the target part
        q_pos = (state.src_lengths + t)[:, None]  # (B, 1)
        k_pos = torch.cat([torch.arange(S, device=tokens.device).expand(B, S),
                           state.src_lengths[:, None] + torch.arange(t + 1, device=tokens.device)], dim=1)  # (B, S + t + 1)
        k_valid = torch.cat([state.src_valid, torch.ones(B, t + 1, dtype=torch.bool, device=tokens.device)], dim=1)
        no = torch.zeros_like(q_pos, dtype=torch.bool)  # (B, 1): the query is a target step
        mask = self._mask(q_pos, k_pos, k_valid, no, k_valid.new_zeros(k_valid.shape))  # (B, 1, 1, S + t + 1)
        x = self._embed(prev_tokens[:, None] + self.cfg.src_vocab, q_pos)  # (B, 1, D)
        caches, w = [], None
        for i, block in enumerate(self.blocks):
            x, w, cache = block(x, mask, need_weights=i == len(self.blocks) - 1,
                                cache=state.caches[i], use_cache=True)
            caches.append(cache)
        logits = self.out(self.norm(x[:, 0]))  # (B, D) -> (B, V)
        return logits, w[:, :, 0, :S].mean(1), DecoderOnlyState(state.src, state.src_lengths, state.src_valid,
                                                                  tokens, caches)

    def reorder_state(self, state: DecoderOnlyState, index: Tensor) -> DecoderOnlyState:
        """Keep (or repeat) rows ``index`` of every tensor of ``state`` (beam search). Shapes: index (B',)."""
        caches = None if state.caches is None else [c.reorder(index) for c in state.caches]
        return DecoderOnlyState(state.src[index], state.src_lengths[index], state.src_valid[index],
                                state.tokens[index], caches)

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, src_lengths: Tensor, max_len: int = 60, use_cache: bool = True
                      ) -> tuple[Tensor, Tensor]:
        """Translate by always taking the most likely next word, with the KV cache by default.

        ``protocols.greedy_decode`` over this model's ``decode_step``, with ``max_len``
        cut so that source + <sep> + target fit in ``cfg.max_len`` positions.

        Shapes:
            src (B, S), src_lengths (B,) -> tokens (B, L), weights (B, L, S), L <= max_len;
            positions after <eos> hold <eos>.
        """
        room = self.cfg.max_len - int(src_lengths.max()) if len(src_lengths) else max_len
        return greedy_decode(self, src, src_lengths, max(0, min(check_max_len(max_len), room)), use_cache)
