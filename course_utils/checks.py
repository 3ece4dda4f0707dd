"""Shape checks that explain themselves.

Every public function of the course checks its inputs with these helpers, so a
wrong shape fails at once with a message naming the argument, the shape it got
and the shape it expected, e.g.::

    ValueError: keys: expected shape (B=2, S, Dk=16), got (2, 7, 15)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

Dim = int | str | None  # an int must match; a str names a free dim (bound on first use); None: anything


def check_shape(name: str, tensor: torch.Tensor, expected: Sequence[Dim],
                bound: dict[str, int] | None = None) -> dict[str, int]:
    """Check ``tensor.shape`` against ``expected`` and return the named sizes.

    ``expected`` holds ints (must match), letters (a named size: the same
    letter must have the same size everywhere, across calls that share
    ``bound``) or None (any size). Raises ValueError naming ``name``, the
    expected pattern and the shape received.
    """
    bound = {} if bound is None else bound
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape {_pattern(expected, bound)}, "
                        f"got {type(tensor).__name__}")
    shape = tuple(tensor.shape)
    ok = len(shape) == len(expected)
    new = dict(bound)
    if ok:
        for size, want in zip(shape, expected):
            if want is None:
                continue
            if isinstance(want, int):
                ok = ok and size == want
            elif want in new:
                ok = ok and size == new[want]
            else:
                new[want] = size
    if not ok:
        raise ValueError(f"{name}: expected shape {_pattern(expected, bound)}, got {shape}")
    bound.update(new)
    return bound


def check_broadcastable(name: str, tensor: torch.Tensor, target: Sequence[int],
                        pattern: str) -> None:
    """Check that ``tensor`` broadcasts to ``target`` (its description: ``pattern``)."""
    shape = tuple(tensor.shape)
    try:
        torch.broadcast_shapes(shape, tuple(target))
        ok = len(shape) <= len(target) and torch.broadcast_shapes(shape, tuple(target)) == tuple(target)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected a shape broadcastable to {pattern} = {tuple(target)}, got {shape}")


def check_int(name: str, value: object, minimum: int = 0, what: str = "") -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``, else a ValueError naming ``name``.

    ``what`` says what the number means, e.g. "the most tokens to decode".
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        meaning = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected an int >= {minimum}{meaning}, got {value!r}")
    return value


def check_lengths(src: torch.Tensor, src_lengths: torch.Tensor) -> dict[str, int]:
    """Check a padded batch ``src`` (B, S) and its ``src_lengths`` (B,); return {"B", "S"}.

    Every length must be an integer in 1..S and the batch must hold at least
    one sentence; the errors name the argument, the values and the shape.
    """
    bound = check_shape("src", src, ("B", "S"))
    check_shape("src_lengths", src_lengths, ("B",), bound)
    if bound["B"] == 0:
        raise ValueError(f"src: expected at least one sentence, got shape {tuple(src.shape)}")
    if src_lengths.dtype.is_floating_point or src_lengths.dtype == torch.bool or src_lengths.is_complex():
        raise TypeError(f"src_lengths: expected integer lengths, got dtype {src_lengths.dtype}")
    S = bound["S"]
    if int(src_lengths.min()) < 1 or int(src_lengths.max()) > S:
        raise ValueError(f"src_lengths: expected values in 1..S={S} for src of shape {tuple(src.shape)}, "
                         f"got {src_lengths.tolist()}")
    return bound


def check_same_dtype(**tensors: torch.Tensor) -> torch.dtype:
    """Check that the named tensors share one dtype and return it.

    Raises TypeError naming every argument with its dtype, e.g.
    ``queries, keys and values: expected one dtype, got queries float32, keys float16, values float32``.
    """
    dtypes = {name: t.dtype for name, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(dtypes.values())) > 1:
        names = list(dtypes)
        joined = ", ".join(names[:-1]) + " and " + names[-1]
        got = ", ".join(f"{name} {str(d).replace('torch.', '')}" for name, d in dtypes.items())
        raise TypeError(f"{joined}: expected one dtype, got {got}")
    return next(iter(dtypes.values())) if dtypes else torch.get_default_dtype()


def _pattern(expected: Sequence[Dim], bound: dict[str, int]) -> str:
    parts = []
    for want in expected:
        if want is None:
            parts.append("*")
        elif isinstance(want, int):
            parts.append(str(want))
        elif want in bound:
            parts.append(f"{want}={bound[want]}")
        else:
            parts.append(want)
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
