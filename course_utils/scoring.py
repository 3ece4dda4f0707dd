"""Single-head attention modules that differ only in their ``score``.

``Attention`` checks shapes and masks, asks ``score`` for (B, T, S) scores and
averages the values with the masked softmax of ``course_utils.functional``;
the subclasses say how a query and a key are compared (additive, dot product,
general, and the query-blind concat pitfall). Each keeps a detached copy of
its last weights in ``self.attention_weights`` for plotting (nothing in the
course reads it back). Re-exported from ``course_utils.attention``.

Shape letters: B batch, T queries, S keys / values, Dq / Dk / Dv their
widths, Hd hidden width.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_utils.checks import check_same_dtype, check_shape
from course_utils.functional import check_module_mask, dot_scores, weigh

__all__ = ["AdditiveAttention", "Attention", "ConcatLinearAttention", "DotProductAttention", "GeneralAttention"]

MASK_SHAPES = "(B or 1, T or 1, S or 1), e.g. padding_mask(lengths, ndim=3) (B, 1, S); (T, S) if B != T; (S,)"


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
            mask bool, True = may attend, or None; accepted shapes (each dim its size or 1):
            (B, T, S), e.g. padding_mask(lengths, ndim=3) (B, 1, S); (T, S), e.g. a causal
            mask, rejected when B == T > 1 (it could be a (B, S) padding mask: add a leading
            1); (S,)
            -> context (B, T, Dv), weights (B, T, S)
        """
        widths = {"Dq": self.query_dim, "Dk": self.key_dim}
        bound = check_shape("queries", queries, ("B", "T", "Dq"),
                            {name: size for name, size in widths.items() if size is not None})
        check_shape("keys", keys, ("B", "S", self.key_width), bound)
        check_shape("values", values, ("B", "S", "Dv"), bound)
        check_same_dtype(queries=queries, keys=keys, values=values)
        if mask is not None:
            check_module_mask(mask, {"B": bound["B"], "T": bound["T"], "S": bound["S"]}, MASK_SHAPES)
        context, weights = weigh(self.score(queries, keys), values, mask)  # (B, T, Dv), (B, T, S)
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
        return dot_scores(queries, keys, scale)  # (B, T, S)


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
