"""Every lesson's solutions notebook (notebooks/solutions/NN_solutions.ipynb) runs top to bottom
in a fresh kernel without an error, so its asserts keep the worked answers true. COURSE_SEED and
COURSE_FAST are inherited by the kernel, as for the lessons."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_solutions.ipynb"))
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_solutions_exist_for_lessons():
    assert SOLUTIONS, "no solutions notebooks found"
    lessons = {p.name[:2] for p in LESSONS}
    assert {p.name[:2] for p in SOLUTIONS} <= lessons, "a solutions notebook without its lesson"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_notebook_runs(path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, 4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
