"""Seeding: one call makes a notebook reproducible. Introduced in notebook 00."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

DEFAULT_SEED = 0


def set_seed(seed: int | None = None) -> int:
    """Seed Python, NumPy and PyTorch; return the seed used.

    With ``seed=None`` the environment variable ``COURSE_SEED`` is read, so a
    whole course run can be repeated with another seed from outside
    (``COURSE_SEED=3 ./course test``); without it, ``DEFAULT_SEED`` is used.
    Introduced in notebook 00.
    """
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
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed
