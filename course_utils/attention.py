"""Attention, one piece at a time: masks, scores, weights, positions.

Every module here returns ``(context, weights)`` and keeps a detached copy of
its last weights in ``self.attention_weights`` for plotting. Masks are bool
with True = "may attend"; a query with nothing to attend to gets all-zero
weights (and a zero context), never NaN. ``MultiHeadAttention`` lives in
``course_utils.multihead`` and is re-exported from here.

Shape letters as in ``course_utils``: B batch, T queries (target steps),
S keys / values (source steps), Dq / Dk / Dv their widths, Hd hidden width.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_utils.checks import check_broadcastable, check_shape

if TYPE_CHECKING:
    from course_utils.multihead import MultiHeadAttention

__all__ = [
    "AdditiveAttention", "Attention", "ConcatLinearAttention", "DotProductAttention",
    "GeneralAttention", "MultiHeadAttention", "PositionalEncoding", "attention",
    "causal_mask", "masked_softmax",
]


def __getattr__(name: str):
    # Re-export MultiHeadAttention lazily: course_utils.multihead imports this
    # module, so importing it at the top here would be a cycle.
    if name == "MultiHeadAttention":
        from course_utils.multihead import MultiHeadAttention
        return MultiHeadAttention
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------- masks ---

def _check_mask(mask: Tensor, target: tuple[int, ...], pattern: str) -> None:
    """Raise unless ``mask`` is a bool tensor that broadcasts to ``target``.

    ``pattern`` describes ``target`` in shape letters, e.g. "(B, T, S)".
    """
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask: expected a bool tensor (True = may attend), got {got}")
    check_broadcastable("mask", mask, target, pattern)


def _open_empty_rows(mask: Tensor, dim: int = -1) -> tuple[Tensor, Tensor | None]:
    """Let rows of ``mask`` that allow nothing along ``dim`` allow everything.

    Returns the new mask and the rows it opened (bool, size 1 along ``dim``),
    or the mask itself and None when every row allows something. A softmax
    over an opened row is finite, values and gradients; the caller then sets
    the result of those rows to zero. Costs a reduction over the mask only.
    """
    has_key = mask.any(dim, keepdim=True)  # mask's shape, size 1 along dim
    if bool(has_key.all()):
        return mask, None
    return mask | ~has_key, ~has_key


def masked_softmax(scores: Tensor, mask: Tensor | None = None, dim: int = -1) -> Tensor:
    """Softmax of ``scores`` over ``dim`` where only ``mask``-ed positions count.

    ``mask`` is bool, True = may attend, broadcastable to ``scores``. Masked
    positions get exactly 0. A row with no allowed position gets all-zero
    weights and zero gradients, never NaN. The inputs are not modified.
    Introduced in notebook 02.
    """
    if mask is not None:
        _check_mask(mask, tuple(scores.shape), "scores")
    return _masked_softmax(scores, mask, dim)


def _masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1, scratch: bool = False) -> Tensor:
    # The mask is added as a (mask-sized) bias of 0 / -inf, as nn.MultiheadAttention does:
    # unlike masked_fill, an addition passes its gradient back without a new (..., T, S) tensor.
    # scratch=True: ``scores`` is a fresh product that nothing else holds (the output of
    # _dot_scores), so the bias is added in place and, when autograd is not recording,
    # the softmax is taken in place too: each saves allocating a (..., T, S) tensor.
    empty = None
    if mask is not None:
        mask, empty = _open_empty_rows(mask, dim)
        bias = torch.zeros_like(mask, dtype=scores.dtype).masked_fill_(~mask, float("-inf"))  # mask's shape
        scores = scores.add_(bias) if scratch else scores + bias  # exp(-inf) = 0 exactly
    in_place = scratch and not (torch.is_grad_enabled() and scores.requires_grad)
    weights = torch.softmax(scores, dim, out=scores) if in_place else torch.softmax(scores, dim)
    return weights if empty is None else weights.masked_fill(empty, 0.0)


def causal_mask(T: int, S: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """(T, S) bool mask, True where query t may attend to key s, i.e. s <= t.

    ``S`` defaults to ``T`` (self-attention). Lower triangular: query t sees
    keys 0..t, never a later one. Introduced in notebook 04.
    """
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril()  # (T, S)


# ------------------------------------------------- the functional kernel ---

def _dot_scores(queries: Tensor, keys: Tensor, scale: float) -> Tensor:
    """``scale * queries @ keys^T`` over any leading dims, (..., T, S).

    The scale is applied to the queries, the smaller tensor, not the scores.
    """
    return (queries * scale) @ keys.transpose(-2, -1)  # (..., T, D) @ (..., D, S) -> (..., T, S)


def _weigh(scores: Tensor, values: Tensor, mask: Tensor | None,
          dropout_p: float = 0.0, scratch: bool = False) -> tuple[Tensor, Tensor]:
    """Masked softmax of ``scores``, then the weighted average of ``values``.

    Returns ``(context, weights)``; dropout (when ``dropout_p`` > 0) acts on
    the weights used for the context, the returned weights are not dropped.
    ``scratch=True`` lets ``scores`` be overwritten: only for the fresh output
    of ``_dot_scores`` (a subclass's ``score()`` may be kept by autograd).
    """
    weights = _masked_softmax(scores, mask, -1, scratch)  # (..., T, S)
    mixed = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return mixed @ values, weights  # (..., T, S) @ (..., S, Dv) -> (..., T, Dv)


def attention(queries: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None,
              scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention, spelled out: matmul, masked softmax, matmul.

    ``scale`` defaults to 1 / sqrt(Dq). Same result as
    ``F.scaled_dot_product_attention`` (which returns no weights), except
    that a query with nothing to attend to gets a zero context everywhere.
    Introduced in notebook 04.

    Shapes:
        queries (..., T, Dq), keys (..., S, Dq), values (..., S, Dv), the
        same leading dims; mask broadcastable to (..., T, S) or None
        -> context (..., T, Dv), weights (..., T, S)
    """
    if queries.dim() < 2:
        raise ValueError(f"queries: expected shape (..., T, Dq), got {tuple(queries.shape)}")
    lead = tuple(queries.shape[:-2])
    bound = check_shape("queries", queries, (*lead, "T", "Dq"))
    check_shape("keys", keys, (*lead, "S", "Dq"), bound)
    check_shape("values", values, (*lead, "S", "Dv"), bound)
    if mask is not None:
        _check_mask(mask, (*lead, bound["T"], bound["S"]), "(..., T, S)")
    scale = 1.0 / math.sqrt(bound["Dq"]) if scale is None else scale
    return _weigh(_dot_scores(queries, keys, scale), values, mask, scratch=True)


# ------------------------------------------------ attention with a score ---

class Attention(nn.Module):
    """Attention with an overridable ``score``: everything else is shared.

    ``forward`` checks the shapes, asks ``score`` for (B, T, S) scores, applies
    the mask and the softmax, and averages the values. Subclasses only say how
    a query and a key are compared. ``self.attention_weights`` keeps the last
    weights, detached, for plotting. Introduced in notebook 03.
    """

    key_width = "Dk"  # the letter the keys' width must match in shape checks

    def __init__(self, query_dim: int | None = None, key_dim: int | None = None) -> None:
        super().__init__()
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.attention_weights: Tensor | None = None

    def score(self, queries: Tensor, keys: Tensor) -> Tensor:
        """Scores (B, T, S) of every query against every key."""
        raise NotImplementedError(f"{type(self).__name__} must define score(queries, keys)")

    def forward(self, queries: Tensor, keys: Tensor, values: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Weighted average of ``values``, weights from ``score`` and ``mask``.

        Shapes:
            queries (B, T, Dq), keys (B, S, Dk), values (B, S, Dv),
            mask broadcastable to (B, T, S) (e.g. (B, 1, S) padding, (T, S) causal) or None
            -> context (B, T, Dv), weights (B, T, S)
        """
        widths = {"Dq": self.query_dim, "Dk": self.key_dim}
        bound = check_shape("queries", queries, ("B", "T", "Dq"),
                            {name: size for name, size in widths.items() if size is not None})
        check_shape("keys", keys, ("B", "S", self.key_width), bound)
        check_shape("values", values, ("B", "S", "Dv"), bound)
        if mask is not None:
            _check_mask(mask, (bound["B"], bound["T"], bound["S"]), "(B, T, S)")
        context, weights = _weigh(self.score(queries, keys), values, mask)  # (B, T, Dv), (B, T, S)
        self.attention_weights = weights.detach()
        return context, weights


class AdditiveAttention(Attention):
    """Bahdanau's additive attention: score(q, k) = v^T tanh(W_q q + W_k k).

    Queries and keys are projected once to width ``hidden_dim`` and added by
    broadcasting, (B, T, 1, Hd) + (B, 1, S, Hd), so the score depends on the
    query and the key together. Introduced in notebook 03.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__(query_dim, key_dim)
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim)  # one bias is enough: the two are added
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def score(self, queries: Tensor, keys: Tensor) -> Tensor:
        q = self.W_q(queries).unsqueeze(2)  # (B, T, 1, Hd)
        k = self.W_k(keys).unsqueeze(1)  # (B, 1, S, Hd)
        return self.v(torch.tanh(q + k)).squeeze(-1)  # (B, T, S, Hd) -> (B, T, S)


class DotProductAttention(Attention):
    """Dot-product attention: score(q, k) = q . k, divided by sqrt(d) when ``scaled``.

    Queries and keys must have the same width (the keys' width is checked
    against the queries'). Same result as ``F.scaled_dot_product_attention``
    (``scale=1`` when unscaled). Introduced in notebook 02.
    """

    key_width = "Dq"  # q . k needs Dk == Dq

    def __init__(self, scaled: bool = True) -> None:
        super().__init__()
        self.scaled = scaled

    def score(self, queries: Tensor, keys: Tensor) -> Tensor:
        scale = 1.0 / math.sqrt(queries.shape[-1]) if self.scaled else 1.0
        return _dot_scores(queries, keys, scale)  # (B, T, S)


class GeneralAttention(Attention):
    """Luong's "general" (bilinear) attention: score(q, k) = q^T W k.

    ``W`` maps keys to the queries' width, so queries and keys may differ in
    width. Introduced in notebook 04.
    """

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__(query_dim, key_dim)
        self.W = nn.Linear(key_dim, query_dim, bias=False)

    def score(self, queries: Tensor, keys: Tensor) -> Tensor:
        return queries @ self.W(keys).transpose(1, 2)  # (B, T, Dq) @ (B, Dq, S) -> (B, T, S)


class ConcatLinearAttention(Attention):
    """The pitfall: score = Linear([k; q]), which ignores the query.

    Written as in the source article: each key is concatenated with the query
    and one linear layer ``linear`` maps the pair to a number. Split its
    weight into the part that sees the key and the part that sees the query::

        score(q, k_s) = w_k . k_s + w_q . q + b

    The last two terms are the same for every source position s, and softmax
    does not change when a constant is added to all its inputs::

        exp(w_k . k_s + c) / sum_s' exp(w_k . k_s' + c) = exp(w_k . k_s) / sum_s' exp(w_k . k_s')

    So the weights depend on the keys alone: every query (every decoder step)
    gets the same row of weights, and the "attention" cannot follow the
    translation. Only a non-linearity between the two parts (``tanh`` in
    ``AdditiveAttention``) or a product (``DotProductAttention``) lets the
    query matter. Kept as a bug to find. Introduced in notebook 03.
    """

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__(query_dim, key_dim)
        self.linear = nn.Linear(key_dim + query_dim, 1)

    def score(self, queries: Tensor, keys: Tensor) -> Tensor:
        B, T, S = queries.shape[0], queries.shape[1], keys.shape[1]
        pairs = torch.cat([keys.unsqueeze(1).expand(B, T, S, -1),
                           queries.unsqueeze(2).expand(B, T, S, -1)], dim=-1)  # (B, T, S, Dk + Dq)
        return self.linear(pairs).squeeze(-1)  # (B, T, S, 1) -> (B, T, S)


# -------------------------------------------------------------- positions ---

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

    def forward(self, x: Tensor) -> Tensor:
        """Add positions 0..S-1 to a batch of sequences.

        Shapes:
            x (B, S, D) with S <= max_len -> (B, S, D)
        """
        bound = check_shape("x", x, ("B", "S", "D"), {"D": self.d_model})
        if bound["S"] > self.max_len:
            raise ValueError(f"x: {bound['S']} steps, more than max_len={self.max_len} "
                             f"of this PositionalEncoding, got {tuple(x.shape)}")
        return self.dropout(x + self.pe[: bound["S"]].to(x.dtype))  # (B, S, D) + (S, D)
