"""Attention, one piece at a time: the facade the lessons import from.

Every attention name of the course is importable from here; each lives in the
layer that owns it (imports go downward only, no cycle):

* ``course_utils.functional``: ``masked_softmax``, ``attention()``, the mask
  helpers ``causal_mask``, ``padding_mask``, ``sliding_window_mask`` and the
  mask rules;
* ``course_utils.scoring``: ``Attention`` and its scores ``AdditiveAttention``,
  ``DotProductAttention``, ``GeneralAttention``, ``ConcatLinearAttention``;
* ``course_utils.positions``: ``PositionalEncoding`` and the other position
  schemes (``LearnedPositionalEmbedding``, ``RelativePositionBias``, ``ALiBi``
  with ``alibi_slopes``, ``RotaryEmbedding`` with ``rotate_half``);
* ``course_utils.multihead``: ``MultiHeadAttention`` (with grouped-query heads
  and its seams), ``KVCache``;
* ``course_utils.positional_attention``: ``PositionalAttention``, the schemes
  plugged into those seams;
* ``course_utils.tiled``: ``tiled_attention``, FlashAttention's forward.

Every module returns ``(context, weights)``. Masks are bool with True = "may
attend"; a query with nothing to attend to gets all-zero weights (and a zero
context), never NaN.

Shape letters as in ``course_utils``: B batch, T queries (target steps),
S keys / values (source steps), Dq / Dk / Dv their widths, Hd hidden width.
"""
from __future__ import annotations

from course_utils.functional import (
    attention,
    causal_mask,
    check_mask,
    check_module_mask,
    dot_scores,
    masked_softmax,
    open_empty_rows,
    padding_mask,
    sliding_window_mask,
    weigh,
)
from course_utils.multihead import KVCache, MultiHeadAttention
from course_utils.positional_attention import PositionalAttention
from course_utils.positions import (
    ALiBi,
    LearnedPositionalEmbedding,
    PositionalEncoding,
    RelativePositionBias,
    RotaryEmbedding,
    alibi_slopes,
    relative_position_bucket,
    rotate_half,
)
from course_utils.scoring import (
    AdditiveAttention,
    Attention,
    ConcatLinearAttention,
    DotProductAttention,
    GeneralAttention,
)
from course_utils.tiled import tiled_attention

__all__ = [
    "ALiBi", "AdditiveAttention", "Attention", "ConcatLinearAttention", "DotProductAttention",
    "GeneralAttention", "KVCache", "LearnedPositionalEmbedding", "MultiHeadAttention", "PositionalAttention",
    "PositionalEncoding", "RelativePositionBias", "RotaryEmbedding", "alibi_slopes", "attention",
    "causal_mask", "check_mask", "check_module_mask", "dot_scores", "masked_softmax",
    "open_empty_rows", "padding_mask", "relative_position_bucket", "rotate_half", "sliding_window_mask",
    "tiled_attention", "weigh",
]
