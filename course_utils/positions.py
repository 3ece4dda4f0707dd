"""Position information for attention, which by itself ignores word order.

``PositionalEncoding`` adds the fixed sinusoidal code of "Attention Is All You
Need" to the embeddings. Positions that act inside attention instead (rotary,
ALiBi, relative biases) plug into ``MultiHeadAttention``'s ``transform_qk`` /
``score_bias`` seams and live here too. Re-exported from
``course_utils.attention``.

Notebook 08 adds the other schemes: ``LearnedPositionalEmbedding`` (a trained
vector per position, added like the sinusoidal code); ``RelativePositionBias``
(a trained score bias per head and bucket of the offset, T5, Raffel et al. 2020);
``ALiBi`` (``-slope_h * |query - key|``, Press et al. 2022, with ``alibi_slopes``);
``RotaryEmbedding`` (queries and keys turned by position x frequency, Su et al.,
RoFormer). The last three act inside attention, after the heads are split,
with query and key positions given explicitly, so that cached decoding rotates
step t by t (``course_utils.positional_attention`` plugs them in).

Shape letters: B batch, S steps, D model width, H heads, T query steps, S key
steps (in the biases), Dh head width.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_utils.checks import check_int, check_shape

__all__ = ["ALiBi", "LearnedPositionalEmbedding", "PositionalEncoding", "RelativePositionBias", "RotaryEmbedding",
           "alibi_slopes", "relative_position_bucket", "rotate_half"]


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal position code of "Attention Is All You Need".

    pe[pos, 2i] = sin(pos / 10000^(2i/D)), pe[pos, 2i+1] = cos(pos / 10000^(2i/D)),
    kept in the buffer ``pe`` (max_len, D). Introduced in notebook 05.
    """

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
        inv_freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (ceil(D/2),)
        angle = position * inv_freq  # (max_len, ceil(D/2))
        pe = torch.empty(max_len, d_model, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
        self.register_buffer("pe", pe.to(torch.get_default_dtype()), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Add positions offset..offset+S-1 to a batch of sequences.

        ``offset`` > 0 continues a sequence (one decoding step at position
        ``offset``, say).

        Shapes:
            x (B, S, D) with offset + S <= max_len -> (B, S, D)
        """
        bound = check_shape("x", x, ("B", "S", "D"), {"D": self.d_model})
        check_int("offset", offset, 0)
        end = offset + bound["S"]
        if end > self.max_len:
            raise ValueError(f"x: {bound['S']} steps from offset {offset}, more than max_len={self.max_len} "
                             f"of this PositionalEncoding, got {tuple(x.shape)}")
        return self.dropout(x + self.pe[offset:end].to(x.dtype))  # (B, S, D) + (S, D)


def _check_positions(name: str, pos: Tensor) -> None:
    if not isinstance(pos, Tensor) or pos.dim() != 1 or pos.dtype not in (torch.int64, torch.int32):
        got = f"{pos.dtype} of shape {tuple(pos.shape)}" if isinstance(pos, Tensor) else type(pos).__name__
        raise ValueError(f"{name}: expected integer positions of shape (L,), got {got}")


# ------------------------------------------------------------------ absolute ---

class LearnedPositionalEmbedding(nn.Module):
    """Adds a trained vector per position 0..max_len-1 (GPT-2, BERT). Introduced in notebook 08.

    The table starts like the course's word embeddings scaled by sqrt(D): std 1,
    about the size of the sinusoidal code. A position that no training sentence
    reached keeps its random start.
    """

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=1.0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, positions: Tensor | None = None, offset: int = 0) -> Tensor:
        """Add the vectors of ``positions`` (default offset..offset+S-1, as ``PositionalEncoding``).

        Shapes:
            x (B, S, D), positions (S,) or None -> (B, S, D)
        """
        bound = check_shape("x", x, ("B", "S", "D"), {"D": self.d_model})
        if positions is None:
            check_int("offset", offset, 0)
            positions = torch.arange(offset, offset + bound["S"], device=x.device)  # (S,)
        _check_positions("positions", positions)
        if len(positions) != bound["S"]:
            raise ValueError(f"positions: expected {bound['S']} positions for x of shape {tuple(x.shape)}, "
                             f"got {len(positions)}")
        if len(positions) and int(positions.max()) >= self.max_len:
            raise ValueError(f"positions: expected values below max_len={self.max_len}, got {int(positions.max())}")
        return self.dropout(x + self.embedding(positions))  # (B, S, D) + (S, D)


# ------------------------------------------------------------------ rotary ---

def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension. Introduced in notebook 08.

    Dimension i is paired with i + Dh/2; this is the 90-degree turn of every pair.
    Shapes: (..., Dh) with Dh even -> (..., Dh).
    """
    x1, x2 = x.chunk(2, dim=-1)  # (..., Dh/2) each
    return torch.cat([-x2, x1], dim=-1)  # (..., Dh)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoFormer), in the rotate-half form. Introduced in notebook 08.

    Pair i of a head, dimensions (i, i + Dh/2), is turned by the angle
    ``position * theta_i`` with ``theta_i = base^(-2i / Dh)``:
    ``x * cos + rotate_half(x) * sin``. Seen as complex numbers
    ``z_i = x_i + 1j * x_{i + Dh/2}``, that is ``z_i * exp(1j * position * theta_i)``.
    A query at m and a key at n rotated so have a dot product that depends on
    m - n only. No parameters.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim <= 0 or head_dim % 2:
            raise ValueError(f"head_dim: expected a positive even number, got {head_dim}")
        self.head_dim, self.base = head_dim, base
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (Dh/2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def angles(self, positions: Tensor) -> Tensor:
        """Shapes: positions (T,) -> angles (T, Dh/2), position x theta_i, in float64."""
        _check_positions("positions", positions)
        return positions.to(torch.float64)[:, None] * self.inv_freq.to(positions.device)  # (T, 1) * (Dh/2,)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate every pair of ``x`` by its position's angles. ``x`` is not modified.

        Shapes:
            x (..., T, Dh), positions (T,) -> (..., T, Dh)
        """
        if x.dim() < 2 or x.shape[-1] != self.head_dim:
            raise ValueError(f"x: expected shape (..., T, Dh={self.head_dim}), got {tuple(x.shape)}")
        _check_positions("positions", positions)
        if len(positions) != x.shape[-2]:
            raise ValueError(f"positions: expected T={x.shape[-2]} positions for x of shape {tuple(x.shape)}, "
                             f"got {len(positions)}")
        angle = self.angles(positions).repeat(1, 2)  # (T, Dh): pair i's angle at i and i + Dh/2
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)  # (T, Dh), computed in float64
        return x * cos + rotate_half(x) * sin  # (..., T, Dh)


# ------------------------------------------------------------------- biases ---

def relative_position_bucket(relative: Tensor, num_buckets: int = 32, max_distance: int = 128,
                             bidirectional: bool = True) -> Tensor:
    """T5's buckets for offsets ``relative = key - query``. Introduced in notebook 08.

    Bidirectional: half of the buckets for keys after the query, half for keys
    at or before it. In each half, small distances 0..n/2-1 get a bucket each,
    larger ones share buckets spaced logarithmically up to ``max_distance``;
    every distance from ``max_distance`` on falls into the last bucket.
    Shapes: relative (...) int -> buckets (...) int64 in 0..num_buckets-1.
    """
    n = num_buckets
    bucket = torch.zeros_like(relative, dtype=torch.long)
    if bidirectional:
        n //= 2
        bucket = bucket + (relative > 0).long() * n  # keys after the query: upper half
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)  # only keys at or before the query count
    exact = n // 2
    if exact < 1 or max_distance <= exact:
        raise ValueError(f"num_buckets={num_buckets}, max_distance={max_distance}: expected at least 2 buckets "
                         f"per direction and max_distance above {exact}")
    far = distance.clamp(min=1).to(torch.float64)
    log_bucket = exact + (torch.log(far / exact) / math.log(max_distance / exact) * (n - exact)).long()
    log_bucket = log_bucket.clamp(max=n - 1)
    return bucket + torch.where(distance < exact, distance.long(), log_bucket)


class RelativePositionBias(nn.Module):
    """A trained score bias per head and bucket of the offset key - query (T5). Introduced in notebook 08.

    Starts at zero: at the first step attention is as if there were no positions.
    The bias is ``scale * table``: Adam moves each number of ``table`` by about
    the learning rate per step, so ``scale`` > 1 lets a short run reach biases of
    several units (the same as a ``scale`` times larger learning rate for the table).
    """

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128,
                 bidirectional: bool = True, scale: float = 1.0) -> None:
        super().__init__()
        self.num_heads, self.num_buckets = num_heads, num_buckets
        self.max_distance, self.bidirectional, self.scale = max_distance, bidirectional, float(scale)
        relative_position_bucket(torch.zeros(1, dtype=torch.long), num_buckets, max_distance, bidirectional)  # checks
        self.bias = nn.Embedding(num_buckets, num_heads)
        nn.init.zeros_(self.bias.weight)

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """Shapes: q_pos (T,), k_pos (S,) -> bias (H, T, S), added to the scores."""
        _check_positions("q_pos", q_pos)
        _check_positions("k_pos", k_pos)
        relative = k_pos[None, :] - q_pos[:, None]  # (T, S)
        buckets = relative_position_bucket(relative, self.num_buckets, self.max_distance, self.bidirectional)
        return self.scale * self.bias(buckets).permute(2, 0, 1)  # (T, S, H) -> (H, T, S)


def alibi_slopes(num_heads: int) -> Tensor:
    """The head slopes of ALiBi (Press et al., 2022), shape (H,). Introduced in notebook 08.

    For H a power of two: the geometric sequence that starts at 2^(-8/H) and
    has that ratio, 2^(-8/H), 2^(-16/H), ..., 2^-8. Otherwise, with P the
    largest power of two below H: the P slopes for P heads, then every other
    slope of those for 2P heads, until there are H.
    """
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads: expected a positive int, got {num_heads!r}")

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    p = 2 ** int(math.floor(math.log2(num_heads)))
    slopes = power_of_two(p)
    if p < num_heads:
        slopes += power_of_two(2 * p)[0::2][: num_heads - p]
    return torch.tensor(slopes, dtype=torch.float32)


class ALiBi(nn.Module):
    """Attention with linear biases: ``-slope_h * |query - key|`` added to head h's scores.

    Symmetric in the offset, for an encoder that looks both ways (the paper's
    causal decoder sees keys before the query only, where |q - k| = q - k).
    No parameters. Introduced in notebook 08.
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.register_buffer("slopes", alibi_slopes(num_heads), persistent=False)

    def forward(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """Shapes: q_pos (T,), k_pos (S,) -> bias (H, T, S), added to the scores."""
        _check_positions("q_pos", q_pos)
        _check_positions("k_pos", k_pos)
        distance = (k_pos[None, :] - q_pos[:, None]).abs().to(self.slopes.dtype)  # (T, S)
        return -self.slopes.to(distance.device)[:, None, None] * distance  # (H, 1, 1) * (T, S) -> (H, T, S)
