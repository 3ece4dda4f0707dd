"""Check the homework with nbgrader's ``Validator`` (its Python API: the ``nbgrader
validate`` command exits 0 even when validation fails, jupyter/nbgrader#1908).

Every instructor notebook must pass all its tests, hidden ones included; with
``release_too``, every unfilled student notebook must fail every test cell
(``Validator(invert=True)``).
"""
from __future__ import annotations

import time
from pathlib import Path

from nbgrader.validator import Validator

from homework import BUILD_DIR, CELL_TIMEOUT, SOURCE_DIR, assignments
from homework.config import nbgrader_config
from homework.release import prepare_environment, release


def validate(release_too: bool = False, cell_timeout: int = CELL_TIMEOUT, log=print) -> list[str]:
    """Problems found; an empty list means every notebook behaves."""
    prepare_environment()
    config = nbgrader_config(BUILD_DIR, cell_timeout=cell_timeout)
    problems = []
    paths = [("instructor", SOURCE_DIR / name / f"{name}.ipynb", False) for name in assignments()]
    if release_too:
        released = release(log=log)
        paths += [("unfilled", Path(p), True) for p in released.values()]
    for kind, path, invert in paths:
        start = time.perf_counter()
        result = Validator(config=config, invert=invert).validate(str(path))
        verdict = "ok" if not result else "FAILED"
        log(f"{kind} {path.parent.name}: {verdict} ({time.perf_counter() - start:.1f} s)")
        if result:
            problems.append(f"{kind} {path.parent.name}: {_summary(result)}")
    log("all notebooks behave" if not problems else f"{len(problems)} notebook(s) do not behave")
    return problems


def _summary(result: dict) -> str:
    lines = []
    for key, cells in result.items():
        for cell in cells:
            text = (cell.get("error") or cell.get("source") or "").strip().splitlines()
            lines.append(f"{key}: {text[-1] if text else ''}")
    return "; ".join(lines)[:2000]
