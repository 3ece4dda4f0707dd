"""Shared set-up for the course's tests (pytest loads this before any test in tests/).

* matplotlib draws off-screen (Agg) in the test process.
* MPLBACKEND is removed from the environment: the kernels that nbval starts for the
  lesson notebooks inherit the environment, and ipykernel keeps its inline backend
  (what learners get in Jupyter) only when MPLBACKEND is unset.
* COURSE_FAST, COURSE_SEED and COURSE_DEVICE are left as the caller set them
  (`COURSE_FAST=1 ./course test`, `COURSE_SEED=3 ./course test`).
* hypothesis runs without a deadline: on a shared CPU, first calls into torch are
  slow now and then, which is noise, not a failure.
* Notebooks under tests/ (fixtures such as tests/data/*.ipynb) are data for other
  tests, never collected by nbval; only the lesson notebooks are.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.pop("MPLBACKEND", None)

try:
    from hypothesis import settings
except ImportError:  # hypothesis is a dev extra; tests that need it import it themselves
    pass
else:
    settings.register_profile("course", deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Keep nbval away from notebooks stored under tests/ (this conftest sees only those)."""
    if collection_path.suffix == ".ipynb":
        return True
    return None


@pytest.fixture
def seed() -> int:
    """Seed Python, NumPy and torch afresh for one test; returns the seed (COURSE_SEED or 0)."""
    import course_utils as cu

    return cu.set_seed()
