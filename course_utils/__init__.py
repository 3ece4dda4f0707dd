"""Helpers for the course "Attention, step by step".

The notebooks build each idea inline first, then import the package's version of
it from here and use that from then on. Every public object says which notebook
introduces it.

Shape convention (used in every docstring and shape comment of the course):

    B  batch size                 S  source steps (keys / values)
    T  target steps (queries)     D  model width (d_model)
    H  number of heads            Dh head width, D // H
    E  embedding width            V  vocabulary size
    Dq, Dk, Dv  widths of queries, keys and values

Tensors are batch first: a batch of source sentences is (B, S), its embeddings
(B, S, E), attention weights (B, T, S) or, with heads, (B, H, T, S).
Masks are bool with True = "may attend".
"""
from course_utils.device import DEFAULT_THREADS, course_threads, describe_device, pick_device, set_threads
from course_utils.seed import DEFAULT_SEED, set_seed

__all__ = ["DEFAULT_SEED", "DEFAULT_THREADS", "course_threads", "describe_device", "pick_device",
           "set_seed", "set_threads"]
__version__ = "0.1.0"
