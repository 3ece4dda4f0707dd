"""Measuring instruments of the course: wall time, FLOPs, autograd chain length, tensor memory.

* :func:`best_ms` / :func:`median_ms`: wall-clock time of a call, in milliseconds
  (print it; never assert on it: a busy machine changes it);
* :func:`count_flops`: FLOPs of the matrix products a call runs (deterministic);
* :func:`graph_depth`: the longest chain of operations in a tensor's autograd graph
  (what a GPU cannot parallelise; deterministic);
* :class:`TensorMemory`: peak bytes of the tensors created inside a ``with`` block.

Lessons assert on the counts (FLOPs, depth, bytes) and print the times.
Introduced in notebook 01 (timing) and notebook 05 (FLOPs and graph depth).
"""
from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode  # the hook PyTorch's own tools use
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["TensorMemory", "best_ms", "count_flops", "graph_depth", "median_ms"]


def _sync() -> None:
    """Wait for queued GPU work (CUDA runs asynchronously); nothing to do on the CPU."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _times_ms(fn: Callable[..., Any], args: tuple, kwargs: dict, repeats: int, warmup: int) -> list[float]:
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected an int >= 1, got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: expected an int >= 0, got {warmup!r}")
    for _ in range(warmup):
        fn(*args, **kwargs)
    _sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        _sync()
        times.append(1e3 * (time.perf_counter() - start))
    return times


def best_ms(fn: Callable[..., Any], *args: Any, repeats: int = 5, warmup: int = 1, **kwargs: Any) -> float:
    """Fastest of ``repeats`` calls of ``fn(*args, **kwargs)``, in ms, after ``warmup`` calls.

    The fastest run is the one least disturbed by other programs. Introduced in notebook 01.
    """
    return min(_times_ms(fn, args, kwargs, repeats, warmup))


def median_ms(fn: Callable[..., Any], *args: Any, repeats: int = 5, warmup: int = 1, **kwargs: Any) -> float:
    """Median of ``repeats`` calls of ``fn(*args, **kwargs)``, in ms, after ``warmup`` calls.

    Introduced in notebook 04.
    """
    return statistics.median(_times_ms(fn, args, kwargs, repeats, warmup))


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs (2 per multiply-add) of the matrix products that ``fn(*args, **kwargs)`` runs.

    Counted by PyTorch's ``FlopCounterMode`` (matmul, linear, convolution, attention
    kernels; element-wise work such as softmax is not counted). Introduced in notebook 05.
    """
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def graph_depth(tensor: torch.Tensor) -> int:
    """Longest chain of operations from ``tensor`` back to the inputs in its autograd graph.

    Operations on one chain must run one after the other; a deeper graph cannot be
    parallelised away. ``tensor`` must come from a computation that records gradients
    (``requires_grad``), else ValueError. Introduced in notebook 05.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.grad_fn is None:
        raise ValueError("tensor: expected the result of operations on tensors that require grad "
                         "(it has no grad_fn: nothing was recorded)")
    depth: dict[Any, int] = {}
    stack = [(tensor.grad_fn, False)]
    while stack:  # iterative depth-first search: long chains (a GRU over 512 steps) stay off the C stack
        fn, ready = stack.pop()
        if fn in depth:
            continue
        kids = [k for k, _ in fn.next_functions if k is not None]
        if ready:
            depth[fn] = 1 + max((depth[k] for k in kids), default=0)
        else:
            stack.append((fn, True))
            stack.extend((k, False) for k in kids if k not in depth)
    return depth[tensor.grad_fn]


class TensorMemory(TorchDispatchMode):
    """Peak bytes of the tensors created inside a ``with`` block (inputs and parameters not counted).

    ``with TensorMemory() as meter: out = f(x)`` then ``meter.peak`` (bytes). Storages
    shared by views count once; a tensor freed inside the block stops counting.
    With ``table=N``, ``meter.tables`` counts the new tensors of at least N elements
    (``table=T * S``: how many whole (T, S) score tables were made).
    Introduced in notebook 06 (``table`` in notebook 09).
    """

    def __init__(self, table: int | None = None) -> None:
        super().__init__()
        self.table = table

    def __enter__(self) -> TensorMemory:
        self.live: dict[int, tuple[int, int]] = {}
        self.outside: set[int] = set()
        self.now = 0
        self.peak = 0
        self.tables = 0
        return super().__enter__()

    def _free(self, key: int) -> None:
        count, nbytes = self.live[key]
        if count > 1:
            self.live[key] = (count - 1, nbytes)
        else:
            del self.live[key]
            self.now -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_flatten((args, kwargs))[0]:  # storages that existed before: not ours
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.live:
                self.outside.add(t.untyped_storage().data_ptr())
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key in self.outside or storage.nbytes() == 0:
                continue
            count, nbytes = self.live.get(key, (0, storage.nbytes()))
            if count == 0:  # a new storage (views share their base's)
                self.now += nbytes
                self.peak = max(self.peak, self.now)
                self.tables += self.table is not None and t.numel() >= self.table
            self.live[key] = (count + 1, nbytes)
            weakref.finalize(t, self._free, key)
        return out
