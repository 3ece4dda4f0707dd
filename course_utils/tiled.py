"""Tiled attention: the forward pass of FlashAttention, written to be read.

``tiled_attention`` computes exactly ``softmax(q k^T / sqrt(Dh)) v`` without
ever building the (T, S) table of scores. The queries are cut into blocks of
``block_q`` rows, the keys and values into blocks of ``block_k`` rows; for one
query block at a time it walks over the key blocks with lesson 06's online
softmax (Milakov & Gimelshein, 2018): a running maximum ``m``, a running sum
``total`` of exp(score - m) and a running weighted sum ``acc`` of values, all
three rescaled by exp(m_old - m_new) whenever a block brings a larger score.
At any moment it holds one (block_q, block_k) block of scores, never more.
With ``causal=True`` the key blocks that lie entirely above the diagonal are
not visited at all: about half the work for T = S. The arithmetic is the same
as the explicit path's; what changes is the memory (Dao et al., 2022).

This is a teaching kernel: Python loops over blocks, far slower than
``F.scaled_dot_product_attention``. Introduced in notebook 09.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from course_utils.checks import check_shape

__all__ = ["tiled_attention"]


def _check_block(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def tiled_attention(q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False,
                    block_q: int = 64, block_k: int = 64, scale: float | None = None) -> Tensor:
    """Scaled dot-product attention over blocks of queries and keys (FlashAttention's forward).

    Equal to ``F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)``
    up to rounding, for any T, S and block sizes. ``causal=True`` lets query t see keys
    0..t (the top-left diagonal, as in ``causal_mask(T, S)`` and SDPA) and skips every
    key block that starts after the last query of the current query block.
    ``scale`` defaults to 1 / sqrt(Dh). Introduced in notebook 09.

    Shapes:
        q (..., T, Dh), k (..., S, Dh), v (..., S, Dv), the same leading dims
        -> output (..., T, Dv)
    """
    block_q, block_k = _check_block("block_q", block_q), _check_block("block_k", block_k)
    if not isinstance(q, Tensor) or q.dim() < 2:
        raise ValueError(f"q: expected a tensor of shape (..., T, Dh), got "
                         f"{tuple(q.shape) if isinstance(q, Tensor) else type(q).__name__}")
    lead = tuple(q.shape[:-2])
    bound = check_shape("q", q, (*lead, "T", "Dh"))
    check_shape("k", k, (*lead, "S", "Dh"), bound)
    check_shape("v", v, (*lead, "S", "Dv"), bound)
    T, S = bound["T"], bound["S"]
    scale = 1.0 / math.sqrt(bound["Dh"]) if scale is None else scale

    out = q.new_zeros(*lead, T, bound["Dv"])  # (..., T, Dv), filled one query block at a time
    for q0 in range(0, T, block_q):
        q1 = min(q0 + block_q, T)
        q_blk = q[..., q0:q1, :] * scale  # (..., bq, Dh)
        m = q.new_full((*lead, q1 - q0, 1), float("-inf"))  # (..., bq, 1) running max of the scores
        total = q.new_zeros(*lead, q1 - q0, 1)  # (..., bq, 1) running sum of exp(score - m)
        acc = q.new_zeros(*lead, q1 - q0, bound["Dv"])  # (..., bq, Dv) running weighted sum of values
        k_end = min(S, q1) if causal else S  # causal: key blocks starting at or after q1 are never needed
        for k0 in range(0, k_end, block_k):
            k1 = min(k0 + block_k, k_end)
            scores = q_blk @ k[..., k0:k1, :].transpose(-2, -1)  # (..., bq, Dh) @ (..., Dh, bk) -> (..., bq, bk)
            if causal and k1 - 1 > q0:  # the block touches the diagonal: hide keys after each query
                rows = torch.arange(q0, q1, device=q.device)[:, None]  # (bq, 1) query positions
                cols = torch.arange(k0, k1, device=q.device)[None, :]  # (1, bk) key positions
                scores = scores.masked_fill(cols > rows, float("-inf"))  # (..., bq, bk)
            m_new = torch.maximum(m, scores.amax(-1, keepdim=True))  # (..., bq, 1)
            m_safe = m_new.masked_fill(m_new == float("-inf"), 0.0)  # a row with no key yet: no NaN
            p = torch.exp(scores - m_safe)  # (..., bq, bk), 0 where masked
            rescale = torch.exp(m - m_safe)  # (..., bq, 1), 0 on the first visit
            total = total * rescale + p.sum(-1, keepdim=True)  # (..., bq, 1)
            acc = acc * rescale + p @ v[..., k0:k1, :]  # (..., bq, bk) @ (..., bk, Dv) -> (..., bq, Dv)
            m = m_new
        out[..., q0:q1, :] = acc / total.clamp_min(torch.finfo(acc.dtype).tiny)  # (..., bq, Dv); 0 if no key
    return out
