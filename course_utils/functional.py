"""The attention kernel and the mask rules, as plain functions.

The bottom layer of the attention code: ``course_utils.scoring`` (the
single-head modules), ``course_utils.positions`` and ``course_utils.multihead``
build on it, and it imports nothing of the course but ``checks``.

Masks are bool with True = "may attend". A query with nothing to attend to
gets all-zero weights (and a zero context), never NaN.

Shape letters as in ``course_utils``: B batch, H heads, T queries (target
steps), S keys / values (source steps), Dq / Dv widths of queries and values.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from course_utils.checks import check_broadcastable, check_int, check_same_dtype, check_shape

__all__ = [
    "attention", "causal_mask", "check_mask", "check_module_mask", "dot_scores", "masked_softmax",
    "open_empty_rows", "padding_mask", "sliding_window_mask", "weigh",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


# -------------------------------------------------------------- mask rules ---

def check_mask(mask: Tensor, target: tuple[int, ...], pattern: str) -> None:
    """Raise unless ``mask`` is a bool tensor that broadcasts to ``target`` in one way only.

    ``pattern`` describes ``target`` in shape letters, e.g. "(B, T, S)".
    The generic rule of ``masked_softmax`` and ``attention()``: broadcasting as
    in PyTorch (a lower-rank mask is aligned from the right), except where that
    could misread the mask. A mask of 2 or more dims but fewer than ``target``
    whose first dim equals ``target``'s first dim B > 1, where the dim it is
    aligned with is also B wide, may be per sentence ((B, S) against (B, T, S)
    with B == T) or shared ((T, S)): it is rejected, never guessed. The modules
    use the stricter :func:`check_module_mask`. Introduced in notebook 02.
    """
    _check_bool(mask)
    shape, n = tuple(mask.shape), len(target)
    if _ambiguous(shape, target):
        raise ValueError(
            f"mask: shape {shape} is ambiguous against {pattern} = {target}: broadcasting reads a "
            f"{len(shape)}-D mask as the last {len(shape)} dims {target[n - len(shape):]}, but its first "
            f"dim {shape[0]} is also the size of the first dim, so it may be one row per sentence. Give "
            f"all {n} dims: a per-sentence mask with size-1 dims inserted (mask[:, None] for (B, 1, S)), "
            f"a shared one with leading 1s (mask[None])")
    check_broadcastable("mask", mask, target, pattern)


def _ambiguous(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether a mask of ``shape`` could be read two ways against ``target``: it has
    2 or more dims but fewer than ``target``, its first dim equals ``target``'s first
    (B > 1), and the dim broadcasting aligns it with is also B wide."""
    n, k = len(target), len(shape)
    return 2 <= k < n and target[0] > 1 and shape[0] == target[0] == target[n - k]


def _check_bool(mask: object) -> None:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask: expected a bool tensor (True = may attend), got {got}")


def check_module_mask(mask: Tensor, sizes: dict[str, int], accepted: str) -> None:
    """The mask rule of the attention modules: never read a mask in the wrong shape.

    ``sizes`` names the dims of the full mask in order, e.g. ``{"B": 2, "H": 4,
    "T": 5, "S": 7}``; ``accepted`` lists the shapes the module accepts (for
    the error message). A mask of lower rank broadcasts from the right, so its
    first dim stands for a later letter (a 2-D mask is (T, S) for
    ``MultiHeadAttention``). When that first dim equals B > 1 and the letter it
    stands for is also B wide (a (B, S) padding mask with B == T, a (B, T, S)
    mask with B == H), the mask could be either: it is rejected, never guessed.
    A 1-D mask is always (S,): no per-sentence mask has one dim.
    Introduced in notebook 06.
    """
    letters, target = list(sizes), tuple(sizes.values())
    pattern = "(" + ", ".join(letters) + ")"
    _check_bool(mask)
    shape = tuple(mask.shape)
    if not 1 <= len(shape) <= len(target):
        raise ValueError(f"mask: expected 1 to {len(target)} dims broadcastable to {pattern} = {target}, "
                         f"got {len(shape)} dims {shape}; accepted: {accepted}")
    B = sizes[letters[0]]
    if _ambiguous(shape, target):
        read = "(" + ", ".join(letters[len(target) - len(shape):]) + ")"
        raise ValueError(
            f"mask: shape {shape} is ambiguous: a {len(shape)}-D mask is read as {read}, but its first dim "
            f"{shape[0]} is also the batch size {letters[0]}={B}, so it may be a per-sentence mask. Give "
            f"all {len(target)} dims: accepted {accepted}")
    try:
        check_broadcastable("mask", mask, target, pattern)
    except ValueError as err:
        raise ValueError(f"{err}; accepted: {accepted}") from None


def open_empty_rows(mask: Tensor, dim: int = -1) -> tuple[Tensor, Tensor | None]:
    """Let rows of ``mask`` that allow nothing along ``dim`` allow everything.

    Returns the new mask and the rows it opened (bool, size 1 along ``dim``),
    or the mask itself and None when every row allows something. A softmax
    over an opened row is finite, values and gradients; the caller then sets
    the result of those rows to zero. Costs a reduction over the mask only.
    Introduced in notebook 02.
    """
    has_key = mask.any(dim, keepdim=True)  # mask's shape, size 1 along dim
    if bool(has_key.all()):
        return mask, None
    return mask | ~has_key, ~has_key


def causal_mask(T: int, S: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """(T, S) bool mask, True where query t may attend to key s, i.e. s <= t.

    ``S`` defaults to ``T`` (self-attention). Lower triangular: query t sees
    keys 0..t, never a later one. Introduced in notebook 04.
    """
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril()  # (T, S)


def sliding_window_mask(T: int, window: int, device: torch.device | str | None = None) -> Tensor:
    """(T, T) bool mask: query t sees keys t-window+1 .. t (causal, at most ``window`` keys).

    ``window=1``: each step sees itself only; ``window >= T``: the causal
    mask. For ``MultiHeadAttention`` (both paths) pass it as
    ``mask[None, None]`` (1, 1, T, T) when the batch size equals T.
    Introduced in notebook 09.
    """
    check_int("window", window, 1, "the number of keys each query sees")
    steps = torch.arange(T, device=device)  # (T,)
    gap = steps[:, None] - steps[None, :]  # (T, 1) - (1, T) -> (T, T): query t minus key s
    return (gap >= 0) & (gap < window)  # (T, T)


def padding_mask(lengths: Tensor, max_len: int | None = None, ndim: int = 4) -> Tensor:
    """Bool padding mask from sentence lengths: True at the real tokens.

    ``max_len`` (the padded width S) defaults to the longest length. ``ndim``
    picks the layout each consumer accepts without ambiguity:
    4 -> (B, 1, 1, S) for ``MultiHeadAttention``, 3 -> (B, 1, S) for the
    single-head modules, 2 -> (B, S). Introduced in notebook 04.

    Shapes:
        lengths (B,) ints -> (B, 1, 1, S), (B, 1, S) or (B, S)
    """
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    check_shape("lengths", lengths, ("B",))
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(f"lengths: expected integer lengths, got dtype {lengths.dtype}")
    if ndim not in (2, 3, 4):
        raise ValueError(f"ndim: expected 2 (B, S), 3 (B, 1, S) or 4 (B, 1, 1, S), got {ndim!r}")
    longest = int(lengths.max()) if len(lengths) else 0
    S = longest if max_len is None else max_len
    if len(lengths) and int(lengths.min()) < 0:
        raise ValueError(f"lengths: expected values >= 0, got {lengths.tolist()}")
    if longest > S:
        raise ValueError(f"lengths: expected values <= max_len={S}, got {lengths.tolist()}")
    keep = torch.arange(S, device=lengths.device)[None, :] < lengths[:, None]  # (1, S) < (B, 1) -> (B, S)
    return keep.view(keep.shape[0], *([1] * (ndim - 2)), S)  # (B, S) -> (B, [1, [1,]] S)


# ------------------------------------------------------------ the softmax ---

def masked_softmax(scores: Tensor, mask: Tensor | None = None, dim: int = -1) -> Tensor:
    """Softmax of ``scores`` over ``dim`` where only ``mask``-ed positions count.

    ``mask`` is bool, True = may attend, broadcastable to ``scores``. Masked
    positions get exactly 0 whatever their score (even NaN or inf: a masked
    score is replaced, never added to). A row with no allowed position gets
    all-zero weights and zero gradients, never NaN. ``dim`` counts in the
    scores' dims, also with a lower-rank mask. The inputs are not modified.
    Introduced in notebook 02.

    Shapes:
        scores (...), mask broadcastable to scores' shape or None -> weights, scores' shape
    """
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores: expected a torch.Tensor, got {type(scores).__name__}")
    if mask is not None:
        check_mask(mask, tuple(scores.shape), "scores")
    return _masked_softmax(scores, mask, _softmax_dim(dim, scores))


def _softmax_dim(dim: object, scores: Tensor) -> int:
    """``dim`` as a negative index into ``scores`` (so that it names the same dim of a shorter mask)."""
    n = scores.dim()
    if isinstance(dim, bool) or not isinstance(dim, int) or not -n <= dim < n:
        raise ValueError(f"dim: expected an int in {-n}..{n - 1} for scores of shape {tuple(scores.shape)}, "
                         f"got {dim!r}")
    return dim - n if dim >= 0 else dim


def _masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1, scratch: bool = False) -> Tensor:
    # ``dim`` < 0 here. Masked scores are *replaced* by -inf (masked_fill), so a NaN or inf
    # there cannot reach the row's sum; a row with no allowed key gets scores 0 (a finite
    # softmax, values and gradients) and is set to zero afterwards.
    # scratch=True: ``scores`` is a fresh product that nothing else holds (the output of
    # dot_scores), so it is filled in place and, when autograd is not recording, the softmax
    # is taken in place too: each saves allocating a (..., T, S) tensor.
    empty = None
    if mask is not None:
        mask = mask.view((1,) * (scores.dim() - mask.dim()) + tuple(mask.shape))  # scores' rank, dims of size 1
        has_key = mask.any(dim, keepdim=True)  # mask's shape, size 1 along dim
        empty = None if bool(has_key.all()) else ~has_key
        fill = scores.masked_fill_ if scratch else scores.masked_fill
        scores = fill(~mask, float("-inf"))  # exp(-inf) = 0 exactly
        if empty is not None:
            scores = scores.masked_fill_(empty, 0.0)  # scores is a new tensor by now
    in_place = scratch and not (torch.is_grad_enabled() and scores.requires_grad)
    weights = torch.softmax(scores, dim, out=scores) if in_place else torch.softmax(scores, dim)
    return weights if empty is None else weights.masked_fill(empty, 0.0)


# ------------------------------------------------------------- the kernel ---

def dot_scores(queries: Tensor, keys: Tensor, scale: float) -> Tensor:
    """``scale * queries @ keys^T`` over any leading dims, (..., T, S).

    The scale is applied to the queries, the smaller tensor, not the scores.
    float16 / bfloat16 inputs give float32 scores: a score above 65504 would
    be inf in float16 (and its softmax NaN), where SDPA computes in float32.
    Introduced in notebook 04.
    """
    if queries.dtype in _LOW_PRECISION:
        queries, keys = queries.float(), keys.float()
    return (queries * scale) @ keys.transpose(-2, -1)  # (..., T, D) @ (..., D, S) -> (..., T, S)


def weigh(scores: Tensor, values: Tensor, mask: Tensor | None,
          dropout_p: float = 0.0, scratch: bool = False) -> tuple[Tensor, Tensor]:
    """Masked softmax of ``scores``, then the weighted average of ``values``.

    Returns ``(context, weights)``; dropout (when ``dropout_p`` > 0) acts on
    the weights used for the context, the returned weights are not dropped.
    ``scratch=True`` lets ``scores`` be overwritten: only for the fresh output
    of ``dot_scores`` (a subclass's ``score()`` may be kept by autograd).
    Introduced in notebook 03.

    Shapes:
        scores (..., T, S), values (..., S, Dv), mask broadcastable to (..., T, S) or None
        -> context (..., T, Dv), weights (..., T, S)
    """
    weights = _masked_softmax(scores, mask, -1, scratch).to(values.dtype)  # (..., T, S), float32 scores cast back
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
    check_same_dtype(queries=queries, keys=keys, values=values)
    if mask is not None:
        check_mask(mask, (*lead, bound["T"], bound["S"]), "(..., T, S)")
    scale = 1.0 / math.sqrt(bound["Dq"]) if scale is None else scale
    return weigh(dot_scores(queries, keys, scale), values, mask, scratch=True)
