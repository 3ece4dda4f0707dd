"""Graded homework for "Attention, step by step": release, sandboxed grading, validation.

One source of truth per homework: the instructor notebook ``hwNN/hwNN.ipynb`` (solutions,
visible tests, hidden checks), in ``notebooks/homework/source/`` of this repository or, for a
course whose solutions must stay private, in a folder given with ``--source`` or the
``COURSE_HOMEWORK_SOURCE`` environment variable (docs/homework.md, "Keeping solutions private").

    build/homework/release/hwNN/hwNN.ipynb   the student versions (``release``)
    build/homework/graded/                    the last ``grade`` run: grades.csv, feedback.csv/.html,
                                              notes.csv, logs/

Commands (``python -m homework.cli ...`` or ``./course homework ...``): ``release``,
``grade DIR``, ``validate``, ``export-sources DEST``. See docs/homework.md.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = ROOT / "notebooks" / "homework" / "source"
BUILD_DIR = ROOT / "build" / "homework"
SOURCE_ENV = "COURSE_HOMEWORK_SOURCE"

# Defaults of the grader; see docs/homework.md for why these values.
CELL_TIMEOUT = 30  # seconds per cell or probe
NOTEBOOK_TIMEOUT = 240  # seconds per sandbox run of a notebook

_HW = re.compile(r"^hw\d\d$")


def source_dir(source: Path | str | None = None) -> Path:
    """Where the instructor notebooks are: ``source``, else $COURSE_HOMEWORK_SOURCE, else the repository's."""
    if source is None:
        source = os.environ.get(SOURCE_ENV) or SOURCE_DIR
    return Path(source).expanduser().resolve()


def assignments(source: Path | str | None = None) -> list[str]:
    """Names of the homework, ``["hw01", ...]``: every ``hwNN/hwNN.ipynb`` in the source folder."""
    src = source_dir(source)
    if not src.is_dir():
        return []
    return sorted(p.name for p in src.iterdir()
                  if p.is_dir() and _HW.match(p.name) and (p / f"{p.name}.ipynb").is_file())
