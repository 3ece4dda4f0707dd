"""Homework (nbgrader): the release hides what it must, and grading is right and robust.

One release and one grading run per session (module fixtures), into a temporary
folder, so build/homework/ is left alone. The run grades, as separate students:

* ``solution``: every released notebook with the instructor's answers filled in,
* ``unfilled``: every released notebook as handed out,
* ``raises`` (hw01, exercise 2 raises), ``loops`` (hw06, exercise 1 never returns),
  ``edits`` (hw04, exercise 2 wrong and its test cell replaced by ``pass``),
  ``deletes`` (hw05, exercise 4 wrong and its test cell deleted; exercise 5's answer and
  test cells both deleted, which alone makes nbgrader 0.9.6 fail the notebook with a KeyError).

The stuck and dead kernel cases of ``GuardedExecute`` are checked on a tiny
notebook that does not import torch.
"""
from __future__ import annotations

import csv
import json
import re

import nbformat
import pytest

from homework import SOURCE_DIR, assignments
from homework.grade import grade, repair
from homework.release import check_release, prepare_environment, release, secret_lines

pytestmark = pytest.mark.slow

CELL_TIMEOUT = 20  # the grader's default is 30 s; 20 s keeps the endless loop cheap yet spares slow imports
NAMES = assignments()
# (student, homework, the test cells that must score 0, points lost)
BROKEN = [
    ("raises", "hw01", ("test_ex2",), 3),
    ("loops", "hw06", ("test_ex1",), 3),
    ("edits", "hw04", ("test_ex2",), 3),
    ("deletes", "hw05", ("test_ex4", "test_ex5"), 4),
]


def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _cell(nb, gid):
    return next(c for c in nb.cells if _gid(c) == gid)


def _strip_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


def _solved(course, name):
    """The released notebook with every answer cell taken from the instructor's notebook."""
    released = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    source = nbformat.read(SOURCE_DIR / name / f"{name}.ipynb", as_version=4)
    answers = {_gid(c): c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in released.cells:
        if _gid(cell) in answers:
            cell.source = _strip_solution_markers(answers[_gid(cell)])
    return released


def _inject(cell, code: str) -> None:
    """Put ``code`` (indented into the function body) right after the answer function's docstring."""
    lines = cell.source.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith('    """') and line.rstrip().endswith('"""'))
    lines[at + 1:at + 1] = ["    " + line for line in code.splitlines()]
    cell.source = "\n".join(lines)


def _put(root, student, name, nb):
    path = root / student / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("homework") / "course"
    release(root, log=lambda *a: None)
    return root


def make_submissions(course, subs) -> None:
    """The graded run's submissions, from the release in ``course`` (see the module docstring)."""
    for name in NAMES:
        _put(subs, "solution", name, _solved(course, name))
        _put(subs, "unfilled", name, nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4))

    nb = _solved(course, "hw01")  # raises inside one exercise
    _inject(_cell(nb, "ex2_exact_match"), 'raise RuntimeError("student bug")')
    _put(subs, "raises", "hw01", nb)

    nb = _solved(course, "hw06")  # an endless loop inside one exercise
    _inject(_cell(nb, "ex1_ablate_head"), "while True:\n    pass")
    _put(subs, "loops", "hw06", nb)

    nb = _solved(course, "hw04")  # a wrong answer whose test cell is edited into `pass`
    _cell(nb, "ex2_decoder_mask").source = (
        "def decoder_mask(lengths, T):\n    return torch.ones(len(lengths), 1, T, T, dtype=torch.bool)")
    _cell(nb, "test_ex2").source = "pass"
    _put(subs, "edits", "hw04", nb)

    nb = _solved(course, "hw05")  # a wrong answer whose test cell is deleted
    _cell(nb, "ex4_causal_mask").source = (
        "def causal_mask(T):\n    return torch.ones(T, T, dtype=torch.bool).triu()")
    nb.cells = [c for c in nb.cells if _gid(c) not in ("test_ex4", "ex5_answer", "test_ex5")]
    _put(subs, "deletes", "hw05", nb)


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    make_submissions(course, subs)
    out = tmp_path_factory.mktemp("graded")
    return grade(subs, out, course_root=course, cell_timeout=CELL_TIMEOUT, log=lambda *a: None)


# ------------------------------------------------------- the source notebooks ---

@pytest.mark.parametrize("name", NAMES)
def test_source_notebook_structure(name):
    """At least 4 exercises, one "debug this", a predict-then-measure, a hidden multiple choice."""
    from nbgrader.nbgraderformat import MetadataValidator

    nb = nbformat.read(SOURCE_DIR / name / f"{name}.ipynb", as_version=4)
    MetadataValidator().validate_nb(nb)
    ids = [_gid(c) for c in nb.cells if _gid(c)]
    assert len(ids) == len(set(ids)), f"{name}: duplicate grade ids"
    exercises = {m.group(1) for gid in ids if (m := re.match(r"(?:test_)?(ex\d+)", gid))}
    assert len(exercises) >= 4, f"{name}: only {len(exercises)} exercises"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert len(re.findall(r"^## \d+\. Debug this", markdown, re.M)) == 1, f"{name}: needs exactly one debug exercise"
    assert any(re.search(r"^prediction = ", c.source, re.M) for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("solution")), f"{name}: no predict-then-measure question"
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert all(c.metadata["nbgrader"]["points"] > 0 and "assert" in c.source for c in tests)
    hidden = [c for c in tests if "### BEGIN HIDDEN TESTS" in c.source]
    assert len(hidden) >= 4, f"{name}: only {len(hidden)} test cells with hidden tests"
    assert any(re.search(r"^assert answer == ", c.source, re.M) for c in hidden), \
        f"{name}: no multiple-choice question checked by a hidden test"
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name}: stored outputs"
    # every answer cell is followed by its test before the next answer cell
    kinds = ["S" if c.metadata["nbgrader"].get("solution") else "T"
             for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")]
    assert "SS" not in "".join(kinds) and kinds[-1] == "T", f"{name}: an answer cell without a test"


def test_repair_puts_back_what_was_removed_or_changed():
    name = "hw04"
    released = nbformat.read(SOURCE_DIR / name / f"{name}.ipynb", as_version=4)
    sub = nbformat.from_dict(json.loads(json.dumps(released)))
    gone = ("ex2_decoder_mask", "test_ex2")  # an answer cell and its test
    assert all(any(_gid(c) == gid for c in released.cells) for gid in gone)
    sub.cells = [c for c in sub.cells if _gid(c) not in gone]
    _cell(sub, "test_ex4").source = "pass"
    _cell(sub, "test_ex5").metadata["nbgrader"]["points"] = 100
    copy = nbformat.from_dict(json.loads(json.dumps(_cell(sub, "test_ex1_basic"))))
    sub.cells.append(copy)  # a duplicated test cell becomes a plain cell
    fixed, notes = repair(sub, released)
    assert [_gid(c) for c in fixed.cells if _gid(c)] == [_gid(c) for c in released.cells if _gid(c)]
    assert _cell(fixed, "test_ex4").source == _cell(released, "test_ex4").source
    assert _cell(fixed, "test_ex5").metadata["nbgrader"]["points"] == 1
    assert "nbgrader" not in fixed.cells[-1].metadata
    assert len(notes) == 5, notes


# ------------------------------------------------------------------ release ---

def test_release_hides_hidden_tests_and_solutions(course):
    assert check_release(course / "source", course / "release") == []
    for name in NAMES:
        text = (course / "release" / name / f"{name}.ipynb").read_text()
        assert "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
        secrets = secret_lines(SOURCE_DIR / name / f"{name}.ipynb")
        assert len(secrets) >= 10, f"{name}: the leak check would be vacuous"
        released_lines = {line.strip() for line in
                          "\n".join(c.source for c in nbformat.read(course / "release" / name / f"{name}.ipynb",
                                                                     as_version=4).cells).splitlines()}
        assert not secrets & released_lines
        assert "raise NotImplementedError()" in text


def test_check_release_catches_a_leak(course, tmp_path):
    leaky = tmp_path / "release"
    for name in NAMES:
        (leaky / name).mkdir(parents=True)
        (leaky / name / f"{name}.ipynb").write_text((SOURCE_DIR / name / f"{name}.ipynb").read_text())
    problems = check_release(course / "source", leaky)
    assert any("BEGIN HIDDEN TESTS" in p for p in problems)
    assert any("hidden-test or solution line" in p for p in problems)


# ------------------------------------------------------------------ grading ---

def test_instructor_solutions_score_full_marks(graded):
    assert not graded.failures
    for name in NAMES:
        score, top = graded.scores[("solution", name)]
        assert top >= 10 and score == top, (name, graded.test_points("solution", name))


def test_unfilled_release_scores_zero(graded):
    for name in NAMES:
        points = graded.test_points("unfilled", name)
        assert points and all(p == 0 for p in points.values()), (name, points)
        assert graded.score("unfilled", name) == 0


@pytest.mark.parametrize("student, name, broken, lost", BROKEN)
def test_broken_submission_loses_only_its_exercise(graded, student, name, broken, lost):
    full = graded.test_points("solution", name)
    got = graded.test_points(student, name)
    assert sorted(got) == sorted(full), f"{student}/{name}: not every test cell was graded"
    assert all(got[t] == 0 for t in broken), f"{student}/{name}: a broken exercise scored points: {got}"
    assert {t: p for t, p in got.items() if t not in broken} == {t: p for t, p in full.items() if t not in broken}, \
        f"{student}/{name}: another exercise lost points"
    assert graded.score(student, name) == graded.scores[("solution", name)][1] - lost


def test_edited_and_deleted_test_cells_are_restored_with_hidden_tests(graded):
    """nbgrader put its own copy back (the hidden tests come from its database, not the release)."""
    for student, name, test in (("edits", "hw04", "test_ex2"), ("deletes", "hw05", "test_ex4"),
                                ("deletes", "hw05", "test_ex5")):
        nb = nbformat.read(graded.out / "course" / "autograded" / student / name / f"{name}.ipynb", as_version=4)
        assert "BEGIN HIDDEN TESTS" in _cell(nb, test).source, f"{student}/{name}: {test} not restored"
    assert any("edited, restored" in n for n in graded.notes[("edits", "hw04")])
    assert sum("missing, put back" in n for n in graded.notes[("deletes", "hw05")]) == 3


def test_reports_are_written(graded):
    with open(graded.out / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    students = {"solution", "unfilled", *(b[0] for b in BROKEN)}
    assert {(r["student_id"], r["assignment"]) for r in rows} == {(s, n) for s in students for n in NAMES}
    by_key = {(r["student_id"], r["assignment"]): float(r["score"]) for r in rows}
    assert all(by_key[k] == v[0] for k, v in graded.scores.items())
    with open(graded.out / "feedback.csv", newline="") as fh:
        feedback = list(csv.DictReader(fh))
    loop = next(r for r in feedback if (r["student"], r["assignment"], r["test"]) == ("loops", "hw06", "test_ex1"))
    assert loop["passed"] == "0" and loop["error"].startswith("CellTimeoutError"), loop
    raised = next(r for r in feedback if (r["student"], r["assignment"], r["test"]) == ("raises", "hw01", "test_ex2"))
    assert "student bug" in raised["error"]
    page = (graded.out / "feedback.html").read_text()
    assert "student bug" in page and "hw06" in page
    assert "total" in graded.table()


# ------------------------------------------------------- stuck and dead kernels ---

def test_guarded_execute_survives_stuck_and_dead_kernels(tmp_path):
    """A kernel that ignores the interrupt, then one that exits: later cells still run and pass."""
    from homework.config import nbgrader_config
    from homework.execute import GuardedExecute

    prepare_environment()
    cells = [
        "x = 41",
        "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass",
        "assert x == 41\nx += 1",
        "import os\nos._exit(1)",
        "assert x == 42",
        "raise ValueError('a plain error')",
        "print('still running')",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    config = nbgrader_config(tmp_path, cell_timeout=3, notebook_timeout=60)
    nb, _ = GuardedExecute(config=config).preprocess(nb, {"metadata": {"path": str(tmp_path)}})

    def errors(i):
        return [o.get("ename") for o in nb.cells[i].outputs if o.output_type == "error"]

    assert errors(0) == [] and errors(2) == [] and errors(4) == [], [errors(i) for i in range(7)]
    assert "CellTimeoutError" in errors(1)
    assert "DeadKernelError" in errors(3)
    assert errors(5) == ["ValueError"]
    assert nb.cells[6].outputs[0]["text"].strip() == "still running"


def test_guarded_execute_notebook_time_limit(tmp_path):
    """Cells that could not start before the notebook's time limit get an error, so their tests fail."""
    from homework.config import nbgrader_config
    from homework.execute import GuardedExecute

    prepare_environment()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in
                                         ("import time\ntime.sleep(30)", "assert True")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    config = nbgrader_config(tmp_path, cell_timeout=30, notebook_timeout=3)
    nb, _ = GuardedExecute(config=config).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert any(o.output_type == "error" for o in nb.cells[0].outputs)
    assert [o.get("ename") for o in nb.cells[1].outputs] == ["NotRun"]
