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

:class:`Transformer` has the interface of :class:`course_utils.models.Seq2Seq`,
so ``course_utils.train.train`` / ``evaluate`` / ``translate`` /
``attention_alignment`` work with it unchanged. Introduced in notebook 06.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from course_utils.checks import check_shape
from course_utils.functional import causal_mask, padding_mask
from course_utils.multihead import MultiHeadAttention
from course_utils.positional_attention import absolute_positions, self_attention

__all__ = ["DecoderLayer", "EncoderLayer", "Transformer", "TransformerConfig"]


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
    pad_id: int = 0
    norm_first: bool = True  # True: pre-norm; False: post-norm (the paper, the diagram)
    positions: str = "sinusoidal"  # or "none", "learned", "relative", "alibi", "rotary" (notebook 08)


class _Residual(nn.Module):
    """Sub-layers with residual connections and LayerNorm, post- or pre-norm."""

    def __init__(self, cfg: TransformerConfig, n_sublayers: int) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in range(n_sublayers))
        self.drop = nn.Dropout(cfg.dropout)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.ReLU(), nn.Linear(cfg.d_ff, cfg.d_model))

    def sub(self, i: int, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        """Sub-layer ``i`` around ``fn``: LayerNorm(x + fn(x)), or x + fn(LayerNorm(x)) if pre-norm."""
        if self.norm_first:
            return x + self.drop(fn(self.norms[i](x)))
        return self.norms[i](x + self.drop(fn(x)))


class EncoderLayer(_Residual):
    """Self-attention, then feed-forward, each with residual + LayerNorm. Introduced in notebook 06."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__(cfg, 2)
        self.self_attn = self_attention(cfg.positions, cfg.d_model, cfg.num_heads, cfg.dropout)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        """Shapes: x (B, S, D), src_mask (B, 1, 1, S) -> (B, S, D)."""
        x = self.sub(0, x, lambda h: self.self_attn(h, h, h, src_mask)[0])
        return self.sub(1, x, self.ff)


class DecoderLayer(_Residual):
    """Causal self-attention, cross-attention, feed-forward. Introduced in notebook 06."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__(cfg, 3)
        self.self_attn = self_attention(cfg.positions, cfg.d_model, cfg.num_heads, cfg.dropout, causal=True)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.num_heads, cfg.dropout)

    def forward(self, y: Tensor, memory: Tensor, tgt_mask: Tensor, src_mask: Tensor) -> Tensor:
        """Shapes: y (B, T, D), memory (B, S, D), tgt_mask (1, 1, T, T), src_mask (B, 1, 1, S) -> (B, T, D)."""
        y = self.sub(0, y, lambda h: self.self_attn(h, h, h, tgt_mask)[0])
        y = self.sub(1, y, lambda h: self.cross_attn(h, memory, memory, src_mask)[0])  # queries from the decoder
        return self.sub(2, y, self.ff)


class Transformer(nn.Module):
    """Encoder-decoder Transformer with the interface of ``Seq2Seq``. Introduced in notebook 06.

    ``forward`` returns the cross-attention weights of the last decoder layer
    averaged over its heads, (B, T, S), the shape every course helper expects
    (``attention_alignment``, ``show_attention``). The per-head, per-layer
    weights of the last call are kept for plotting:
    :meth:`cross_attention_weights`, :meth:`self_attention_weights` and
    :meth:`encoder_attention_weights`, each a list (one per layer) of (B, H, T, S).
    """

    def __init__(self, cfg: TransformerConfig, bos_id: int = 1, eos_id: int = 2) -> None:
        super().__init__()
        self.cfg, self.bos_id, self.eos_id = cfg, bos_id, eos_id
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

    def _embed(self, embed: nn.Embedding, tokens: Tensor) -> Tensor:
        return self.pos(embed(tokens) * math.sqrt(self.cfg.d_model))  # (B, L, D)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a padded batch.

        Shapes:
            src (B, S), src_lengths (B,) -> memory (B, S, D), src_mask (B, 1, 1, S) (True = real token)
        """
        bound = check_shape("src", src, ("B", "S"))
        check_shape("src_lengths", src_lengths, ("B",), bound)
        S = bound["S"]
        if S > self.cfg.max_len:
            raise ValueError(f"src: expected at most max_len={self.cfg.max_len} steps, got {tuple(src.shape)}")
        if len(src_lengths) and (int(src_lengths.min()) < 1 or int(src_lengths.max()) > S):
            raise ValueError(f"src_lengths: expected values in 1..S={S} for src of shape {tuple(src.shape)}, "
                             f"got {src_lengths.tolist()}")
        src_mask = padding_mask(src_lengths.to(src.device), S)  # (B, 1, 1, S)
        x = self._embed(self.src_embed, src)  # (B, S, D)
        for layer in self.encoder:
            x = layer(x, src_mask)  # (B, S, D)
        return self.enc_norm(x), src_mask

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor) -> Tensor:
        """Teacher-forced decoder pass. Padding at the end of ``tgt_in`` needs no mask:
        the causal mask already hides every later position from a real one.

        Shapes:
            tgt_in (B, T), memory (B, S, D), src_mask (B, 1, 1, S) -> logits (B, T, V)
        """
        bound = check_shape("memory", memory, ("B", "S", self.cfg.d_model))
        check_shape("tgt_in", tgt_in, ("B", "T"), bound)
        if bound["T"] > self.cfg.max_len:
            raise ValueError(f"tgt_in: expected at most max_len={self.cfg.max_len} steps, got {tuple(tgt_in.shape)}")
        tgt_mask = causal_mask(bound["T"], device=tgt_in.device)[None, None]  # (1, 1, T, T): never read as (B, S)
        y = self._embed(self.tgt_embed, tgt_in)  # (B, T, D)
        for layer in self.decoder:
            y = layer(y, memory, tgt_mask, src_mask)  # (B, T, D)
        return self.out(self.dec_norm(y))  # (B, T, V)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced pass.

        Shapes:
            src (B, S), src_lengths (B,), tgt_in (B, T) = <bos> y
            -> logits (B, T, V), weights (B, T, S): the last decoder layer's
               cross-attention averaged over heads (per head: cross_attention_weights()[-1])
        """
        bound = check_shape("src", src, ("B", "S"))
        check_shape("tgt_in", tgt_in, ("B", "T"), bound)
        memory, src_mask = self.encode(src, src_lengths)
        logits = self.decode(tgt_in, memory, src_mask)  # (B, T, V)
        return logits, self.cross_attention_weights()[-1].mean(1)  # (B, H, T, S) -> (B, T, S)

    def cross_attention_weights(self) -> list[Tensor]:
        """Per decoder layer, the last call's cross-attention weights (B, H, T, S), detached."""
        return [layer.cross_attn.attention_weights for layer in self.decoder]

    def self_attention_weights(self) -> list[Tensor]:
        """Per decoder layer, the last call's causal self-attention weights (B, H, T, T), detached."""
        return [layer.self_attn.attention_weights for layer in self.decoder]

    def encoder_attention_weights(self) -> list[Tensor]:
        """Per encoder layer, the last call's self-attention weights (B, H, S, S), detached."""
        return [layer.self_attn.attention_weights for layer in self.encoder]

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, src_lengths: Tensor, max_len: int = 60) -> tuple[Tensor, Tensor]:
        """Translate by always taking the most likely next word.

        Each step reruns the decoder over the prefix (no cache: simple, and the
        causal mask makes row t of every step the same). Afterwards the
        ``*_attention_weights()`` methods hold the weights of the whole
        decoded sequence, per layer and head.

        Shapes:
            src (B, S), src_lengths (B,) -> tokens (B, L), weights (B, L, S) (last layer,
            mean over heads), with L <= max_len; positions after <eos> hold <eos>.
        """
        memory, src_mask = self.encode(src, src_lengths)
        B = src.shape[0]
        ys = torch.full((B, 1), self.bos_id, dtype=torch.long, device=src.device)  # (B, 1)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)  # (B,)
        for _ in range(min(max_len, self.cfg.max_len)):
            logits = self.decode(ys, memory, src_mask)  # (B, t, V)
            nxt = logits[:, -1].argmax(-1).masked_fill(done, self.eos_id)  # (B,)
            ys = torch.cat([ys, nxt[:, None]], dim=1)  # (B, t + 1)
            done = done | (nxt == self.eos_id)
            if bool(done.all()):
                break
        weights = self.cross_attention_weights()[-1].mean(1)  # (B, H, L, S) -> (B, L, S)
        return ys[:, 1:], weights  # (B, L), (B, L, S)
