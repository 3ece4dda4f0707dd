"""Check every homework: its format, full marks for the instructor's answers, zero for the release.

The instructor's answers are filled into the released notebook (as a student would submit
them) and graded by the real grader, sandbox included, together with the unfilled release; the
same for the Chinese release (``release/zh/``, students ``solution-zh`` and ``unfilled-zh``), which
must also get, test by test, the points of the English one. A homework with a translation file
but no current Chinese edition is a problem.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat

from homework import CELL_TIMEOUT, assignments, source_dir
from homework.release import ZH, chinese_problems, release
from homework.spec import load, nbgrader_meta, strip_solution_markers


def solved(release_nb: Path, source_nb: Path) -> nbformat.NotebookNode:
    """The released notebook with every answer cell taken from the instructor's notebook."""
    released = nbformat.read(release_nb, as_version=4)
    source = nbformat.read(source_nb, as_version=4)
    answers = {nbgrader_meta(c).get("grade_id"): c.source for c in source.cells if nbgrader_meta(c).get("solution")}
    for cell in released.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in answers:
            cell.source = strip_solution_markers(answers[gid])
    return released


def validate(source: Path | None = None, cell_timeout: float = CELL_TIMEOUT, unsafe_no_sandbox: bool = False,
             log=print) -> list[str]:
    from homework.grade import grade

    src = source_dir(source)
    problems = []
    names = assignments(src)
    for name in names:
        problems += load(src / name / f"{name}.ipynb").problems
    if problems:
        return problems
    with tempfile.TemporaryDirectory(prefix="homework-validate-") as tmp:
        tmp = Path(tmp)
        released = release(tmp / "build", source=src, log=lambda *a: None)
        editions = [("", released)]
        zh = {name: tmp / "build" / "release" / ZH / name / f"{name}.ipynb" for name in names}
        for name in names:
            why = chinese_problems(src / name / f"{name}.ipynb")
            if why:
                problems += [f"Chinese {name}: {p}" for p in why]
        zh = {name: path for name, path in zh.items() if path.is_file()}
        if zh:
            editions.append(("-zh", zh))
        for suffix, paths in editions:
            for name, path in paths.items():
                for student, nb in ((f"solution{suffix}", solved(path, src / name / f"{name}.ipynb")),
                                    (f"unfilled{suffix}", nbformat.read(path, as_version=4))):
                    target = tmp / "subs" / student / name / f"{name}.ipynb"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    nbformat.write(nb, target)
        report = grade(tmp / "subs", tmp / "out", source=src, cell_timeout=cell_timeout,
                       unsafe_no_sandbox=unsafe_no_sandbox, log=lambda *a: None)
        problems += report.attention
        for name in names:
            score, top = report.scores[("solution", name)]
            verdict = "ok" if score == top else "FAILED"
            log(f"instructor {name}: {score:g}/{top:g} {verdict}")
            if score != top:
                problems += [f"instructor {name}: {t.test} fails: {t.error}" for t in report.tests
                             if (t.student, t.assignment) == ("solution", name) and t.points < t.max_points]
            zero = report.score("unfilled", name)
            log(f"unfilled {name}: {zero:g}/{top:g} {'ok' if zero == 0 else 'FAILED'}")
            if zero:
                problems += [f"unfilled {name}: {t.test} passes without an answer" for t in report.tests
                             if (t.student, t.assignment) == ("unfilled", name) and t.points]
            if name in zh:
                for student in ("solution", "unfilled"):
                    en_points = report.test_points(student, name)
                    zh_points = report.test_points(f"{student}-zh", name)
                    same = en_points == zh_points
                    log(f"{student} {name}, Chinese: {sum(zh_points.values()):g}/{top:g} "
                        f"{'ok, the same points per test' if same else 'FAILED'}")
                    if not same:
                        problems.append(f"Chinese {name}: {student} gets {zh_points}, the English one {en_points}")
    log("all homework behave" if not problems else f"{len(problems)} problem(s)")
    return problems
