"""Graded homework for "Attention, step by step", built on nbgrader.

One source of truth per homework: ``notebooks/homework/source/hwNN/hwNN.ipynb``,
the instructor notebook with the solutions, the visible tests and the hidden
tests. Everything else is generated under ``build/homework/`` (gitignored)::

    build/homework/                 the nbgrader course directory
        source/hwNN/hwNN.ipynb      copied from notebooks/homework/source
        release/hwNN/hwNN.ipynb     the student versions (``release``)
        gradebook.db                cells, points and checksums, written at release
        nbgrader_config.py          the same settings, for running nbgrader by hand
    build/homework/graded/          the last ``grade`` run (a fresh course copy each time):
        grades.csv                  nbgrader's export, one row per student and homework
        feedback.csv, feedback.html one row per student, homework and test cell

Commands (``python -m homework.cli ...`` or ``./course homework ...``):
``release``, ``grade DIR``, ``validate``. See docs/homework.md.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "notebooks" / "homework" / "source"
BUILD_DIR = ROOT / "build" / "homework"
COURSE_ID = "attention-course"

# Defaults of the grader; see docs/homework.md for why these values.
CELL_TIMEOUT = 30  # seconds per cell (nbgrader's own default)
NOTEBOOK_TIMEOUT = 240  # seconds per notebook, all cells and restarts together

_HW = re.compile(r"^hw\d\d$")


def assignments(source_dir: Path = SOURCE_DIR) -> list[str]:
    """Names of the homework assignments, ``["hw01", ..., "hw06"]``, from the source folder."""
    return sorted(p.name for p in source_dir.iterdir()
                  if p.is_dir() and _HW.match(p.name) and (p / f"{p.name}.ipynb").is_file())
