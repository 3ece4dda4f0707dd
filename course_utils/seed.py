"""Seeding: one call makes a notebook reproducible. Introduced in notebook 00."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

DEFAULT_SEED = 0
MAX_SEED = 2**64 - 1
"""The largest seed torch accepts (seeds are 0 .. 2**64 - 1; NumPy gets ``seed % 2**32``)."""


def set_seed(seed: int | None = None) -> int:
    """Seed Python, NumPy and PyTorch; return the seed used.

    With ``seed=None`` the environment variable ``COURSE_SEED`` is read, so a
    whole course run can be repeated with another seed from outside
    (``COURSE_SEED=3 ./course test``); without it, ``DEFAULT_SEED`` is used.
    Seeds are integers in 0 .. 2**64 - 1 (what torch accepts; NumPy, whose seeds are
    32-bit, gets ``seed % 2**32``); anything else raises a ValueError.
    Introduced in notebook 00.
    """
    raw_from_env = seed is None
    if seed is None:
        raw = os.environ.get("COURSE_SEED", "").strip()
        if raw:
            try:
                seed = int(raw)
            except ValueError:
                raise ValueError(f"COURSE_SEED must be an integer, got {raw!r}") from None
        else:
            seed = DEFAULT_SEED
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= seed <= MAX_SEED:
        source = "COURSE_SEED" if raw_from_env else "seed"
        raise ValueError(f"{source}: expected an integer in 0..2**64 - 1, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed
