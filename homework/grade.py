"""Grade a folder of submissions with nbgrader; write grades.csv and per-test feedback.

``grade(DIR)`` expects ``DIR/<student>/hwNN/hwNN.ipynb``. Each run starts from a
fresh copy of the released course (``source/`` and ``gradebook.db``) in
``OUT/course``, so runs never mix. For every submitted notebook:

1. ``repair`` compares it with the released notebook, cell id by cell id: test
   and answer cells that were deleted are put back where they belong (an answer
   cell comes back as the unfilled stub, so it scores zero), nbgrader metadata
   that was edited or duplicated is reset to the released one. nbgrader itself
   then replaces the source of every test cell from its database (its checksum
   check), which also puts the hidden tests back.
2. nbgrader's ``autograde`` runs it in a fresh kernel with ``GuardedExecute``
   (homework/execute.py): errors do not stop the run, a cell is interrupted after
   ``cell_timeout`` seconds, a hung or dead kernel is restarted, and the whole
   notebook gets ``notebook_timeout`` seconds.
3. nbgrader's CSV export writes ``OUT/grades.csv``; ``OUT/feedback.csv`` and
   ``OUT/feedback.html`` list every test cell of every submission with its points
   and, when it failed, the error it raised.
"""
from __future__ import annotations

import csv
import html
import json
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins.export import CsvExportPlugin

from homework import BUILD_DIR, CELL_TIMEOUT, NOTEBOOK_TIMEOUT, SOURCE_DIR, assignments
from homework.release import MANIFEST, make_api, prepare_environment, release, sha256

_STUDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")


@dataclass
class TestResult:
    """One test cell of one submission."""

    student: str
    assignment: str
    test: str
    points: float
    max_points: float
    error: str = ""  # "Name: message" of the error the cell raised, if it failed


@dataclass
class GradeReport:
    """What ``grade`` did: totals, per-test results, notes about repaired submissions."""

    out: Path
    students: list[str]
    assignments: list[str]
    scores: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (student, hw) -> (score, max)
    tests: list[TestResult] = field(default_factory=list)
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # autograde errors
    skipped: list[str] = field(default_factory=list)  # folders whose names are not usable student ids

    def score(self, student: str, assignment: str) -> float:
        return self.scores[(student, assignment)][0]

    def test_points(self, student: str, assignment: str) -> dict[str, float]:
        return {t.test: t.points for t in self.tests if (t.student, t.assignment) == (student, assignment)}

    def table(self) -> str:
        """Scores as a fixed-width text table, one row per student; "-" where nothing was submitted."""
        width = max([7, *map(len, self.students)])
        head = f"{'student':<{width}} " + " ".join(f"{a:>9}" for a in self.assignments) + f" {'total':>11}"
        rows = [head, "-" * len(head)]
        for s in self.students:
            got = [self.scores.get((s, a), (0.0, 0.0)) for a in self.assignments]
            cells = " ".join(f"{score:>4g}/{top:<4g}" if (s, a) in self.notes else f"{'-':>4}/{top:<4g}"
                             for a, (score, top) in zip(self.assignments, got))
            total = f"{sum(x for x, _ in got):g}/{sum(y for _, y in got):g}"
            rows.append(f"{s:<{width}} {cells} {total:>11}")
        return "\n".join(rows)


# ----------------------------------------------------------------- repair ---

def _nbgrader_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def repair(submitted: nbformat.NotebookNode, released: nbformat.NotebookNode
           ) -> tuple[nbformat.NotebookNode, list[str]]:
    """Make ``submitted`` structurally match ``released`` again; return it and what was changed.

    Keeps the student's answers. Restores the nbgrader metadata, the cell type and
    (for locked cells) the released source of every graded cell, and re-inserts
    missing ones after the closest graded cell that precedes them in the release.
    """
    notes: list[str] = []
    reference = {_nbgrader_id(c): c for c in released.cells if _nbgrader_id(c)}
    order = [_nbgrader_id(c) for c in released.cells if _nbgrader_id(c)]
    cells, seen = [], set()
    for cell in submitted.cells:
        gid = _nbgrader_id(cell)
        if gid is not None and (gid not in reference or gid in seen):
            del cell.metadata["nbgrader"]  # a copy of a graded cell, or an unknown id: plain cell
            notes.append(f"cell {gid}: duplicate or unknown nbgrader id, graded as a plain cell")
            gid = None
        if gid is not None:
            seen.add(gid)
            ref = reference[gid]
            if cell.cell_type != ref.cell_type:
                notes.append(f"cell {gid}: type changed to {cell.cell_type}, restored")
                cell = nbformat.from_dict(json.loads(json.dumps(ref)))
            if cell.metadata.get("nbgrader") != ref.metadata["nbgrader"]:
                notes.append(f"cell {gid}: nbgrader metadata edited, restored")
                cell.metadata["nbgrader"] = json.loads(json.dumps(ref.metadata["nbgrader"]))
            if ref.metadata["nbgrader"].get("locked") and cell.source != ref.source:
                notes.append(f"test cell {gid}: edited, restored")
                cell.source = ref.source
        cells.append(cell)
    for k, gid in enumerate(order):
        if gid in seen:
            continue
        kind = "test cell" if reference[gid].metadata["nbgrader"].get("grade") else "answer cell"
        notes.append(f"{kind} {gid}: missing, put back" + (" (unfilled)" if kind == "answer cell" else ""))
        at = 0
        for prev in reversed(order[:k]):  # after the nearest graded cell before it that is present
            idx = next((i for i, c in enumerate(cells) if _nbgrader_id(c) == prev), None)
            if idx is not None:
                at = idx + 1
                break
        cells.insert(at, nbformat.from_dict(json.loads(json.dumps(reference[gid]))))
        seen.add(gid)
    submitted.cells = cells
    return submitted, notes


def _read_submission(path: Path, released: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    try:
        nb = nbformat.read(path, as_version=4)
        nb.cells  # noqa: B018 - a notebook without cells is as good as unreadable
    except Exception as err:  # noqa: BLE001 - any unreadable file scores zero, it must not stop grading
        return nbformat.from_dict(json.loads(json.dumps(released))), [
            f"unreadable notebook ({type(err).__name__}), graded as the unfilled release"]
    return repair(nb, released)


# ------------------------------------------------------------------ grade ---

def _ensure_release(course_root: Path, log) -> None:
    manifest = course_root / MANIFEST
    if not (manifest.is_file() and (course_root / "gradebook.db").is_file()):
        log("no release yet: generating it first")
        release(course_root, log=log)
        return
    released = json.loads(manifest.read_text())
    changed = [name for name in assignments() if released.get(name) != sha256(SOURCE_DIR / name / f"{name}.ipynb")]
    if changed:
        log(f"warning: {', '.join(changed)} changed in notebooks/homework/source since the release; "
            "grading against the released version (run `release` again to hand out the new one)")


def _find_notebook(folder: Path, name: str) -> tuple[Path | None, bool]:
    """``folder/name.ipynb``, else the folder's only notebook (renamed by a download); else None."""
    expected = folder / f"{name}.ipynb"
    if expected.is_file():
        return expected, False
    found = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    return (found[0], True) if len(found) == 1 else (None, False)


def _error_of(cell) -> str:
    """First line of the error a cell raised ("" if none); a time-out is named as such."""
    errors = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    if not errors:
        return ""
    names = [out.get("ename", "") for out in errors]
    if "CellTimeoutError" in names and "KeyboardInterrupt" in names:
        return "CellTimeoutError: the cell ran past the time limit and was interrupted"
    first = next((out for out in errors if out.get("ename") == "CellTimeoutError" and out.get("evalue")), errors[0])
    message = str(first.get("evalue", "")).strip().splitlines()
    return f"{first.get('ename', 'Error')}: {message[0] if message else ''}".strip().rstrip(":")[:300]


def grade(submissions: Path, out: Path | None = None, course_root: Path = BUILD_DIR,
          cell_timeout: int = CELL_TIMEOUT, notebook_timeout: int = NOTEBOOK_TIMEOUT,
          log=print) -> GradeReport:
    """Autograde every ``submissions/<student>/hwNN/hwNN.ipynb``; write the reports into ``out``."""
    prepare_environment()
    submissions, course_root = Path(submissions).resolve(), Path(course_root).resolve()
    if not submissions.is_dir():
        raise FileNotFoundError(f"no folder of submissions at {submissions}")
    out = (Path(out) if out is not None else course_root / "graded").resolve()
    _ensure_release(course_root, log)
    names = sorted(p.name for p in (course_root / "source").iterdir() if p.is_dir())

    # A fresh course copy per run: released source and gradebook, this run's submissions.
    shutil.rmtree(out, ignore_errors=True)
    course = out / "course"
    shutil.copytree(course_root / "source", course / "source")
    shutil.copy2(course_root / "gradebook.db", course / "gradebook.db")
    folders = sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    students = [s for s in folders if _STUDENT.match(s)]
    report = GradeReport(out, students, names, skipped=[s for s in folders if s not in students])
    for folder in report.skipped:
        log(f"warning: skipped folder {folder!r}: a student id is letters, digits, '_', '.', '@' or '-'")
    todo = []
    for student in students:
        for name in names:
            path, renamed = _find_notebook(submissions / student / name, name)
            if path is None:
                continue
            released = nbformat.read(course_root / "release" / name / f"{name}.ipynb", as_version=4)
            nb, notes = _read_submission(path, released)
            if renamed:
                notes.insert(0, f"graded {path.name}, the only notebook in {name}/ (expected {name}.ipynb)")
            target = course / "submitted" / student / name / f"{name}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
            report.notes[(student, name)] = notes
            todo.append((student, name))

    api = make_api(course, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout)
    # nbgrader 0.9.6 triggers harmless SQLAlchemy "not in session" warnings on every autograde.
    warnings.filterwarnings("ignore", message=".*not in session.*")
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        for student in students:
            gb.update_or_create_student(student)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for student, name in todo:
        log(f"autograding {student}/{name} ...")
        result = api.autograde(name, student, force=True, create=True)
        (out / "logs" / f"{student}-{name}.log").write_text(result.get("log", "") + result.get("error", ""))
        if not result.get("success"):
            last = (result.get("error") or "unknown error").strip().splitlines()[-1]
            report.failures[(student, name)] = last
            log(f"  autograde failed for {student}/{name}: {last}")

    _collect(report, course, names, students)
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        CsvExportPlugin(to=str(out / "grades.csv")).export(gb)
    _write_feedback(report)
    return report


def _collect(report: GradeReport, course: Path, names: list[str], students: list[str]) -> None:
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(db_url) as gb:
        for name in names:
            assignment = gb.find_assignment(name)
            for student in students:
                top = float(assignment.max_score)
                try:
                    submission = gb.find_submission(name, student)
                except MissingEntry:
                    report.scores[(student, name)] = (0.0, top)
                    continue
                graded = course / "autograded" / student / name
                score = 0.0
                order = {_nbgrader_id(c): i for i, c in enumerate(
                    nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4).cells)}
                for nb in submission.notebooks:
                    path = graded / f"{nb.name}.ipynb"
                    cells = {}
                    if path.is_file() and (student, name) not in report.failures:
                        cells = {_nbgrader_id(c): c for c in nbformat.read(path, as_version=4).cells}
                    for g in sorted(nb.grades, key=lambda g: order.get(g.name, len(order))):
                        ok = (student, name) not in report.failures
                        points = float(g.score or 0.0) if ok else 0.0
                        score += points
                        error = _error_of(cells[g.name]) if g.name in cells else "not graded"
                        if not ok:
                            error = f"not graded: {report.failures[(student, name)]}"
                        report.tests.append(TestResult(student, name, g.name, points, float(g.max_score), error))
                report.scores[(student, name)] = (score, top)


def _write_feedback(report: GradeReport) -> None:
    fields = ["student", "assignment", "test", "points", "max_points", "passed", "error"]
    with open(report.out / "feedback.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for t in report.tests:
            writer.writerow([t.student, t.assignment, t.test, f"{t.points:g}", f"{t.max_points:g}",
                             int(t.points >= t.max_points), t.error])
    esc = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>Homework feedback</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}.ok{background:#e6f4e6}"
             ".bad{background:#fbe3e3}pre{margin:0;white-space:pre-wrap}</style>",
             "<h1>Homework feedback</h1>", "<h2>Scores</h2>", f"<pre>{esc(report.table())}</pre>"]
    for student in report.students:
        parts.append(f"<h2>{esc(student)}</h2>")
        for name in report.assignments:
            rows = [t for t in report.tests if (t.student, t.assignment) == (student, name)]
            score, top = report.scores.get((student, name), (0.0, 0.0))
            parts.append(f"<h3>{esc(name)}: {score:g} / {top:g}</h3>")
            notes = report.notes.get((student, name))
            if (student, name) not in report.notes:
                parts.append("<p>No submission.</p>")
                continue
            if notes:
                parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
            parts.append("<table><tr><th>test</th><th>points</th><th>error</th></tr>")
            for t in rows:
                cls = "ok" if t.points >= t.max_points else "bad"
                parts.append(f"<tr class='{cls}'><td>{esc(t.test)}</td><td>{t.points:g} / {t.max_points:g}</td>"
                             f"<td><pre>{esc(t.error)}</pre></td></tr>")
            parts.append("</table>")
    (report.out / "feedback.html").write_text("\n".join(parts) + "\n", encoding="utf-8")
