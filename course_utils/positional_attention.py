"""Multi-head attention that knows where words are, and the Transformer's choice of scheme.

:class:`PositionalAttention` is ``MultiHeadAttention`` with one of the schemes of
``course_utils.positions`` plugged into its seams: a :class:`RotaryEmbedding`
turns queries and keys in ``transform_qk``; an :class:`ALiBi` or
:class:`RelativePositionBias` adds its (H, T, S) bias in ``score_bias``. The
forward pass, the masks, the fused path and the KV cache are the parent's:
keys are rotated once, when they are new, and stored rotated.

``TransformerConfig.positions`` names the scheme (``POSITION_SCHEMES``):
``"sinusoidal"`` (the default, lesson 05's code added to the embeddings),
``"learned"`` (a trained vector per position, added), ``"none"``, or one that
acts in the self-attention of every layer: ``"relative"``, ``"alibi"``,
``"rotary"``. Cross-attention gets no positions in any scheme: query and key
positions there count steps of two different sentences. Introduced in notebook 08.
"""
from __future__ import annotations

from torch import Tensor, nn

from course_utils.multihead import MultiHeadAttention
from course_utils.positions import (
    ALiBi,
    LearnedPositionalEmbedding,
    PositionalEncoding,
    RelativePositionBias,
    RotaryEmbedding,
)

__all__ = ["NoPositions", "POSITION_SCHEMES", "PositionalAttention", "absolute_positions", "self_attention"]

POSITION_SCHEMES = ("none", "learned", "sinusoidal", "relative", "alibi", "rotary")
ABSOLUTE_SCHEMES = ("learned", "sinusoidal")


class PositionalAttention(MultiHeadAttention):
    """``MultiHeadAttention`` with rotary positions on q and k, or a position bias on the scores.

    ``rotary`` (a :class:`RotaryEmbedding` of width ``d_model // num_heads``)
    and ``position_bias`` (a module ``(q_pos (T,), k_pos (S,)) -> (H, T, S)``)
    may be given together or alone; with neither this is ``MultiHeadAttention``.
    Introduced in notebook 08.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 num_kv_heads: int | None = None, *, rotary: RotaryEmbedding | None = None,
                 position_bias: nn.Module | None = None) -> None:
        super().__init__(d_model, num_heads, dropout, bias, num_kv_heads)
        if rotary is not None and rotary.head_dim != self.head_dim:
            raise ValueError(f"rotary: expected head_dim={self.head_dim} (d_model // num_heads), "
                             f"got {rotary.head_dim}")
        if position_bias is not None and getattr(position_bias, "num_heads", num_heads) != num_heads:
            raise ValueError(f"position_bias: expected num_heads={num_heads}, got {position_bias.num_heads}")
        self.rotary, self.position_bias = rotary, position_bias

    def transform_qk(self, q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor) -> tuple[Tensor, Tensor]:
        """Turn every query by its position and every new key by its own.

        Shapes:
            q (B, H, T, Dh), k (B, Hkv, S_new, Dh), q_pos (T,), k_pos (S_new,) -> same shapes
        """
        if self.rotary is None:
            return q, k
        return self.rotary(q, q_pos), self.rotary(k, k_pos)  # (B, H, T, Dh), (B, Hkv, S_new, Dh)

    def score_bias(self, q_pos: Tensor, k_pos: Tensor) -> Tensor | None:
        """Shapes: q_pos (T,), k_pos (S,) over every key -> (H, T, S), or None without a bias."""
        return None if self.position_bias is None else self.position_bias(q_pos, k_pos)


class NoPositions(nn.Module):
    """Adds nothing: the embeddings go in as they are. Introduced in notebook 08."""

    def forward(self, x: Tensor, positions: Tensor | None = None, offset: int = 0) -> Tensor:
        """Shapes: x (B, S, D) -> (B, S, D), the same tensor (positions and offset are ignored)."""
        return x


def _check_scheme(scheme: str) -> None:
    if scheme not in POSITION_SCHEMES:
        raise ValueError(f"positions: expected one of {POSITION_SCHEMES}, got {scheme!r}")


def absolute_positions(scheme: str, d_model: int, max_len: int, dropout: float = 0.0) -> nn.Module:
    """What the Transformer adds to its embeddings for ``scheme``. Introduced in notebook 08.

    ``PositionalEncoding`` for "sinusoidal", ``LearnedPositionalEmbedding`` for
    "learned", :class:`NoPositions` for the others.
    """
    _check_scheme(scheme)
    if scheme == "sinusoidal":
        return PositionalEncoding(d_model, max_len, dropout)
    if scheme == "learned":
        return LearnedPositionalEmbedding(d_model, max_len, dropout)
    return NoPositions()


def self_attention(scheme: str, d_model: int, num_heads: int, dropout: float = 0.0,
                   causal: bool = False, relative_buckets: int = 16, relative_max_distance: int = 32,
                   relative_scale: float = 8.0) -> MultiHeadAttention:
    """The self-attention of one Transformer layer for ``scheme``. Introduced in notebook 08.

    Plain ``MultiHeadAttention`` for the schemes that act on the embeddings;
    :class:`PositionalAttention` with rotary positions, ALiBi, or a relative
    bias (one-way buckets when ``causal``) otherwise. The relative bias has
    16 buckets up to distance 32 (the course's sentences have at most 50 words)
    and ``scale=8``, so that it can grow within a few hundred steps.
    """
    _check_scheme(scheme)
    if scheme == "rotary":
        return PositionalAttention(d_model, num_heads, dropout, rotary=RotaryEmbedding(d_model // num_heads))
    if scheme == "alibi":
        return PositionalAttention(d_model, num_heads, dropout, position_bias=ALiBi(num_heads))
    if scheme == "relative":
        bias = RelativePositionBias(num_heads, relative_buckets, relative_max_distance, bidirectional=not causal,
                                    scale=relative_scale)
        return PositionalAttention(d_model, num_heads, dropout, position_bias=bias)
    return MultiHeadAttention(d_model, num_heads, dropout)
