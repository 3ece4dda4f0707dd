"""A tiny Transformer encoder-decoder built from the course's MultiHeadAttention.

The layout of Vaswani et al. (2017) and of ``images/transformer_tiny.svg``:

* token embeddings scaled by sqrt(D), plus sinusoidal ``PositionalEncoding``;
* encoder layers: self-attention (padding mask (B, 1, 1, S)), then a
  position-wise feed-forward network;
* decoder layers: causal self-attention (mask (T, T)), cross-attention to the
  encoder output (padding mask (B, 1, 1, S)), then the feed-forward network;
* every sub-layer wrapped in a residual connection with LayerNorm. The default
  is **pre-norm**, ``x + sublayer(LayerNorm(x))`` with a final LayerNorm after
  each stack (Xiong et al., 2020; what GPT-2 and most later models use): on
  the course's budget, without a learning-rate warm-up, it learns faster than
  the paper's **post-norm** ``LayerNorm(x + sublayer(x))`` (drawn in the
  diagram), which ``TransformerConfig(norm_first=False)`` gives.

Embeddings start with std D^-0.5, so that scaled by sqrt(D) they are about as
large as the positional code (std 1 would drown the positions).

:class:`Transformer` follows ``course_utils.protocols.TranslationModel``, as
:class:`course_utils.models.Seq2Seq` does, so ``course_utils.train.train`` /
``evaluate`` / ``translate`` / ``attention_alignment`` work with it unchanged.
Every layer returns its attention weights; nothing is read back from module
state. Decoding one word at a time can use a KV cache (``use_cache=True``):
the decoder's self-attention appends each step's keys and values, the
cross-attention computes the encoder's once. Introduced in notebook 06.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from course_utils.checks import check_lengths, check_shape
from course_utils.data import Vocab
from course_utils.functional import causal_mask, padding_mask
from course_utils.multihead import KVCache, MultiHeadAttention
from course_utils.positional_attention import absolute_positions, self_attention
from course_utils.protocols import check_max_len, greedy_decode

__all__ = ["AttentionMaps", "DecoderLayer", "DecodingState", "EncoderLayer", "Transformer", "TransformerConfig"]


@dataclass
class TransformerConfig:
    """Sizes of a :class:`Transformer`. Introduced in notebook 06.

    ``num_layers`` encoder layers and as many decoder layers; ``d_ff`` is the
    hidden width of the feed-forward networks; ``max_len`` bounds S and T.
    """

    src_vocab: int
    tgt_vocab: int
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.0
    max_len: int = 128
    pad_id: int = Vocab.pad_id
    norm_first: bool = True  # True: pre-norm; False: post-norm (the paper, the diagram)
    positions: str = "sinusoidal"  # or "none", "learned", "relative", "alibi", "rotary" (notebook 08)


class _Residual(nn.Module):
    """Sub-layers with residual connections and LayerNorm, post- or pre-norm.

    A sub-layer ``i`` around ``f`` is ``post(i, x, f(pre(i, x)))``:
    pre-norm x + f(LayerNorm(x)), post-norm LayerNorm(x + f(x)).
    """

    def __init__(self, cfg: TransformerConfig, n_sublayers: int) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in range(n_sublayers))
        self.drop = nn.Dropout(cfg.dropout)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.ReLU(), nn.Linear(cfg.d_ff, cfg.d_model))

    def pre(self, i: int, x: Tensor) -> Tensor:
        """The input of sub-layer ``i``: LayerNorm(x) if pre-norm, else x."""
        return self.norms[i](x) if self.norm_first else x

    def post(self, i: int, x: Tensor, out: Tensor) -> Tensor:
        """The residual around sub-layer ``i`` whose output is ``out``."""
        return x + self.drop(out) if self.norm_first else self.norms[i](x + self.drop(out))


class EncoderLayer(_Residual):
    """Self-attention, then feed-forward, each with residual + LayerNorm. Introduced in notebook 06."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__(cfg, 2)
        self.self_attn = self_attention(cfg.positions, cfg.d_model, cfg.num_heads, cfg.dropout)

    def forward(self, x: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Shapes: x (B, S, D), src_mask (B, 1, 1, S) -> x (B, S, D), self-attention weights (B, H, S, S)."""
        h = self.pre(0, x)
        attended, weights = self.self_attn(h, h, h, src_mask)  # (B, S, D), (B, H, S, S)
        x = self.post(0, x, attended)
        return self.post(1, x, self.ff(self.pre(1, x))), weights


class DecoderLayer(_Residual):
    """Causal self-attention, cross-attention, feed-forward. Introduced in notebook 06."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__(cfg, 3)
        self.self_attn = self_attention(cfg.positions, cfg.d_model, cfg.num_heads, cfg.dropout, causal=True)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.num_heads, cfg.dropout)

    def forward(self, y: Tensor, memory: Tensor, tgt_mask: Tensor | None, src_mask: Tensor,
                cache: tuple[KVCache | None, KVCache | None] | None = None, use_cache: bool = False
                ) -> tuple[Tensor, Tensor, Tensor] | tuple[Tensor, Tensor, Tensor, tuple[KVCache, KVCache]]:
        """Run the layer; with ``use_cache`` also take and return (self, cross) KV caches.

        With a cache, ``y`` holds the new steps only and ``tgt_mask`` may be
        None for a single step (it sees every cached step and itself).

        Shapes:
            y (B, T, D), memory (B, S, D), tgt_mask (1, 1, T, L + T) or None, src_mask (B, 1, 1, S)
            -> y (B, T, D), self weights (B, H, T, L + T), cross weights (B, H, T, S)[, caches]
        """
        self_cache, cross_cache = (None, None) if cache is None else cache
        kw = {"use_cache": True} if use_cache else {}
        h = self.pre(0, y)
        attended, self_w, *new_self = self.self_attn(h, h, h, tgt_mask, cache=self_cache, **kw)  # (B, T, D)
        y = self.post(0, y, attended)
        h = self.pre(1, y)
        kv = memory if cross_cache is None else None  # a cross cache holds the memory's keys and values
        attended, cross_w, *new_cross = self.cross_attn(h, kv, kv, src_mask, cache=cross_cache, static_kv=use_cache,
                                                        **kw)  # queries from the decoder, (B, T, D)
        y = self.post(1, y, attended)
        y = self.post(2, y, self.ff(self.pre(2, y)))
        if use_cache:
            return y, self_w, cross_w, (new_self[0], new_cross[0])
        return y, self_w, cross_w


class AttentionMaps(NamedTuple):
    """Every attention weight of one teacher-forced pass, one (B, H, ., .) tensor per layer.

    Shapes:
        encoder [(B, H, S, S)], decoder_self [(B, H, T, T)], cross [(B, H, T, S)]
    """

    encoder: list[Tensor]
    decoder_self: list[Tensor]
    cross: list[Tensor]


@dataclass
class DecodingState:
    """What :meth:`Transformer.decode_step` needs, batch-first. Introduced in notebook 07.

    ``tokens`` are the tokens fed so far (starting with <bos> once the first
    step ran); ``caches`` one (self, cross) pair of KV caches per decoder
    layer when decoding with the cache, else None (the whole prefix is
    recomputed every step).

    Shapes:
        memory (B, S, D), src_mask (B, 1, 1, S), tokens (B, t)
    """

    memory: Tensor
    src_mask: Tensor
    tokens: Tensor
    caches: list[tuple[KVCache | None, KVCache | None]] | None


class Transformer(nn.Module):
    """Encoder-decoder Transformer with the interface of ``Seq2Seq``. Introduced in notebook 06.

    ``forward`` returns the cross-attention weights of the last decoder layer
    averaged over its heads, (B, T, S), the shape every course helper expects
    (``attention_alignment``, ``show_attention``); :meth:`attention_maps`
    returns every layer's per-head weights. ``bos_id`` / ``eos_id`` default to
    the vocabulary's (``Vocab``), ``pad_id`` is the config's.
    """

    def __init__(self, cfg: TransformerConfig, bos_id: int = Vocab.bos_id, eos_id: int = Vocab.eos_id) -> None:
        super().__init__()
        self.cfg, self.bos_id, self.eos_id, self.pad_id = cfg, bos_id, eos_id, cfg.pad_id
        self.src_embed = nn.Embedding(cfg.src_vocab, cfg.d_model, padding_idx=cfg.pad_id)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab, cfg.d_model, padding_idx=cfg.pad_id)
        self.pos = absolute_positions(cfg.positions, cfg.d_model, cfg.max_len, cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        final_norm = nn.LayerNorm if cfg.norm_first else (lambda d: nn.Identity())  # pre-norm ends with a norm
        self.enc_norm, self.dec_norm = final_norm(cfg.d_model), final_norm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.tgt_vocab)
        for embed in (self.src_embed, self.tgt_embed):  # std D^-0.5 (see the module docstring)
            nn.init.normal_(embed.weight, std=cfg.d_model ** -0.5)
            embed.weight.data[cfg.pad_id] = 0.0

    @property
    def has_attention(self) -> bool:
        """True: ``forward`` and ``greedy_decode`` return attention weights."""
        return True

    def _embed(self, embed: nn.Embedding, tokens: Tensor, offset: int = 0) -> Tensor:
        return self.pos(embed(tokens) * math.sqrt(self.cfg.d_model), offset=offset)  # (B, L, D)

    def _encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        S = check_lengths(src, src_lengths)["S"]
        if S > self.cfg.max_len:
            raise ValueError(f"src: expected at most max_len={self.cfg.max_len} steps, got {tuple(src.shape)}")
        src_mask = padding_mask(src_lengths.to(src.device), S)  # (B, 1, 1, S)
        x, weights = self._embed(self.src_embed, src), []  # (B, S, D)
        for layer in self.encoder:
            x, w = layer(x, src_mask)  # (B, S, D), (B, H, S, S)
            weights.append(w)
        return self.enc_norm(x), src_mask, weights

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a padded batch.

        Shapes:
            src (B, S), src_lengths (B,) in 1..S -> memory (B, S, D), src_mask (B, 1, 1, S) (True = real token)
        """
        memory, src_mask, _ = self._encode(src, src_lengths)
        return memory, src_mask

    def _decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor
                ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        bound = check_shape("memory", memory, ("B", "S", self.cfg.d_model))
        check_shape("tgt_in", tgt_in, ("B", "T"), bound)
        if bound["T"] > self.cfg.max_len:
            raise ValueError(f"tgt_in: expected at most max_len={self.cfg.max_len} steps, got {tuple(tgt_in.shape)}")
        tgt_mask = causal_mask(bound["T"], device=tgt_in.device)[None, None]  # (1, 1, T, T): never read as (B, S)
        y, self_ws, cross_ws = self._embed(self.tgt_embed, tgt_in), [], []  # (B, T, D)
        for layer in self.decoder:
            y, self_w, cross_w = layer(y, memory, tgt_mask, src_mask)  # (B, T, D), (B, H, T, T), (B, H, T, S)
            self_ws.append(self_w)
            cross_ws.append(cross_w)
        return self.out(self.dec_norm(y)), self_ws, cross_ws  # (B, T, V)

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor) -> Tensor:
        """Teacher-forced decoder pass. Padding at the end of ``tgt_in`` needs no mask:
        the causal mask already hides every later position from a real one.

        Shapes:
            tgt_in (B, T), memory (B, S, D), src_mask (B, 1, 1, S) -> logits (B, T, V)
        """
        return self._decode(tgt_in, memory, src_mask)[0]

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced pass.

        Shapes:
            src (B, S), src_lengths (B,) in 1..S, tgt_in (B, T) = <bos> y
            -> logits (B, T, V), weights (B, T, S): the last decoder layer's
               cross-attention averaged over heads (differentiable; per head: attention_maps().cross[-1])
        """
        bound = check_shape("src", src, ("B", "S"))
        check_shape("tgt_in", tgt_in, ("B", "T"), bound)
        memory, src_mask = self.encode(src, src_lengths)
        logits, _, cross = self._decode(tgt_in, memory, src_mask)  # (B, T, V)
        return logits, cross[-1].mean(1)  # (B, H, T, S) -> (B, T, S)

    def attention_maps(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> AttentionMaps:
        """Every layer's per-head weights of a teacher-forced pass (wrap in ``torch.no_grad()`` to plot).

        Shapes:
            src (B, S), src_lengths (B,), tgt_in (B, T)
            -> AttentionMaps(encoder [(B, H, S, S)], decoder_self [(B, H, T, T)], cross [(B, H, T, S)])
        """
        bound = check_shape("src", src, ("B", "S"))
        check_shape("tgt_in", tgt_in, ("B", "T"), bound)
        memory, src_mask, encoder = self._encode(src, src_lengths)
        _, decoder_self, cross = self._decode(tgt_in, memory, src_mask)
        return AttentionMaps(encoder, decoder_self, cross)

    # ------------------------------------------------------ incremental decoding ---

    def start_decoding(self, src: Tensor, src_lengths: Tensor, use_cache: bool = True) -> DecodingState:
        """Encode the source once; ``use_cache`` picks KV-cached steps or full recomputation.

        Shapes:
            src (B, S), src_lengths (B,) -> DecodingState(memory (B, S, D), src_mask (B, 1, 1, S), tokens (B, 0))
        """
        memory, src_mask = self.encode(src, src_lengths)
        tokens = torch.empty(src.shape[0], 0, dtype=torch.long, device=src.device)  # (B, 0)
        caches = [(None, None) for _ in self.decoder] if use_cache else None
        return DecodingState(memory, src_mask, tokens, caches)

    def decode_step(self, state: DecodingState, prev_tokens: Tensor
                    ) -> tuple[Tensor, Tensor, DecodingState]:
        """Feed one token per sentence; return the next word's logits, the weights and the new state.

        Without a cache the decoder reruns over every token fed so far and
        keeps the last row (the causal mask makes the earlier rows unchanged);
        with it, only the new token goes through the layers.

        Shapes:
            prev_tokens (B,) -> logits (B, V), weights (B, S) (last layer's cross-attention,
            mean over heads), state
        """
        check_shape("prev_tokens", prev_tokens, (state.tokens.shape[0],))
        tokens = torch.cat([state.tokens, prev_tokens[:, None].to(state.tokens)], 1)  # (B, t + 1)
        t = tokens.shape[1]
        if t > self.cfg.max_len:
            raise ValueError(f"prev_tokens: step {t} is past max_len={self.cfg.max_len} of this Transformer")
        if state.caches is None:
            logits, _, cross = self._decode(tokens, state.memory, state.src_mask)  # (B, t, V)
            new = DecodingState(state.memory, state.src_mask, tokens, None)
            return logits[:, -1], cross[-1][:, :, -1].mean(1), new  # (B, V), (B, H, S) -> (B, S)
        y = self._embed(self.tgt_embed, prev_tokens[:, None], offset=t - 1)  # (B, 1, D) at position t - 1
        caches = []
        for layer, cache in zip(self.decoder, state.caches):
            y, _, cross_w, cache = layer(y, state.memory, None, state.src_mask, cache=cache, use_cache=True)
            caches.append(cache)  # y (B, 1, D), cross_w (B, H, 1, S)
        logits = self.out(self.dec_norm(y))[:, 0]  # (B, 1, V) -> (B, V)
        weights = cross_w[:, :, 0].mean(1)  # (B, H, 1, S) -> (B, H, S) -> (B, S): last layer, mean over heads
        return logits, weights, DecodingState(state.memory, state.src_mask, tokens, caches)

    def reorder_state(self, state: DecodingState, index: Tensor) -> DecodingState:
        """The state of the sentences ``index`` (B',), picked or repeated (beam search)."""
        caches = None if state.caches is None else [
            tuple(None if c is None else c.reorder(index) for c in pair) for pair in state.caches]
        return DecodingState(state.memory.index_select(0, index), state.src_mask.index_select(0, index),
                             state.tokens.index_select(0, index), caches)

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, src_lengths: Tensor, max_len: int = 60,
                      use_cache: bool = True) -> tuple[Tensor, Tensor]:
        """Translate by always taking the most likely next word (``protocols.greedy_decode``).

        ``use_cache=False`` reruns the decoder over the prefix at every step;
        both give the same tokens and weights (to rounding).

        Shapes:
            src (B, S), src_lengths (B,) -> tokens (B, L), weights (B, L, S) (last layer,
            mean over heads), with L <= min(max_len, cfg.max_len) (``max_len=0``: (B, 0), (B, 0, S));
            positions after <eos> hold <eos>.
        """
        return greedy_decode(self, src, src_lengths, min(check_max_len(max_len), self.cfg.max_len), use_cache)
