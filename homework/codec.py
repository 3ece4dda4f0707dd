"""Values that cross the sandbox wall, as JSON (never pickle): used on both sides of it.

``encode`` turns a probe's result (or a test's inputs) into JSON text; ``decode`` reads it
back. Only these kinds pass: ``None``, ``bool``, ``int``, ``float``, ``str``, ``list``,
``tuple``, ``dict`` with ``str`` keys, and dense ``torch.Tensor`` of a bool, integer or
floating dtype. The grader decodes a student's values with ``json`` and builds fresh
tensors itself, so nothing a submission sends can run code in the grader's process.

This file is copied into the sandbox next to ``runner.py``; it imports nothing from the
course and imports torch only when a tensor is met.
"""
from __future__ import annotations

import json
import math

MAX_BYTES = 4_000_000  # one test's values, encoded
MAX_DEPTH = 20
_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64")


class CodecError(ValueError):
    """A value that cannot cross the wall (wrong kind, too big, malformed)."""


def _float(x: float):
    if math.isfinite(x):
        return x
    return {"__float__": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def _to_json(value, depth: int = 0):
    if depth > MAX_DEPTH:
        raise CodecError("values nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, (list, tuple)):
        items = [_to_json(v, depth + 1) for v in value]
        return items if isinstance(value, list) else {"__tuple__": items}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise CodecError("dict keys must be str")
        return {"__dict__": {k: _to_json(v, depth + 1) for k, v in value.items()}}
    kind = type(value).__module__ + "." + type(value).__name__
    if hasattr(value, "detach") and hasattr(value, "dtype") and hasattr(value, "shape"):
        import torch

        if not isinstance(value, torch.Tensor):
            raise CodecError(f"cannot send a {kind}")
        t = value.detach().to("cpu")
        if t.layout != torch.strided or t.is_complex():
            raise CodecError("only dense real tensors can be sent")
        dtype = str(t.dtype).replace("torch.", "")
        if dtype not in _DTYPES:
            raise CodecError(f"tensor dtype {dtype} cannot be sent")
        if t.numel() > MAX_BYTES // 2:
            raise CodecError(f"tensor of {t.numel()} elements is too large to send")
        flat = t.reshape(-1)
        if dtype in ("float16", "bfloat16"):
            flat = flat.float()
        data = flat.tolist()
        if t.dtype.is_floating_point:
            data = [_float(x) for x in data]
        return {"__tensor__": {"dtype": dtype, "shape": list(t.shape), "data": data}}
    if hasattr(value, "item") and hasattr(value, "dtype") and not hasattr(value, "shape"):
        return _to_json(value.item(), depth + 1)
    try:  # numpy scalars and 0-d arrays
        import numbers

        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return _float(float(value))
    except Exception:  # noqa: BLE001
        pass
    raise CodecError(f"cannot send a value of type {kind}")


def encode(value, max_bytes: int = MAX_BYTES) -> str:
    text = json.dumps(_to_json(value), separators=(",", ":"), allow_nan=False)
    if len(text) > max_bytes:
        raise CodecError(f"values take {len(text)} bytes, more than the {max_bytes} allowed")
    return text


def _from_json(obj, depth: int = 0):
    if depth > MAX_DEPTH + 2:
        raise CodecError("values nested too deeply")
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj
    if isinstance(obj, list):
        return [_from_json(v, depth + 1) for v in obj]
    if not isinstance(obj, dict) or len(obj) != 1:
        raise CodecError("malformed values")
    (tag, body), = obj.items()
    if tag == "__float__" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "__tuple__" and isinstance(body, list):
        return tuple(_from_json(v, depth + 1) for v in body)
    if tag == "__dict__" and isinstance(body, dict):
        return {str(k): _from_json(v, depth + 1) for k, v in body.items()}
    if tag == "__tensor__" and isinstance(body, dict):
        import torch

        dtype, shape, data = body.get("dtype"), body.get("shape"), body.get("data")
        if dtype not in _DTYPES or not isinstance(shape, list) or not isinstance(data, list):
            raise CodecError("malformed tensor")
        if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_BYTES for s in shape):
            raise CodecError("malformed tensor shape")
        numel = math.prod(shape)
        if numel != len(data):
            raise CodecError("tensor data does not match its shape")
        values = []
        for x in data:
            if isinstance(x, dict):
                x = _from_json(x, depth + 1)
            if isinstance(x, bool) and dtype != "bool" or not isinstance(x, (bool, int, float)):
                raise CodecError("malformed tensor data")
            values.append(x)
        target = getattr(torch, dtype)
        build = torch.float32 if dtype in ("float16", "bfloat16") else target
        try:
            return torch.tensor(values, dtype=build).reshape(shape).to(target)
        except (TypeError, ValueError, RuntimeError, OverflowError) as err:
            raise CodecError(f"malformed tensor data ({type(err).__name__})") from None
    raise CodecError("malformed values")


def decode(text: str, max_bytes: int = MAX_BYTES):
    if not isinstance(text, str) or len(text) > max_bytes:
        raise CodecError("values too large")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CodecError(f"malformed values ({type(err).__name__})") from None
    return _from_json(obj)
