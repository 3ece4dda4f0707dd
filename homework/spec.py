"""Read an instructor notebook into what the grader needs: cells, answers, tests, checks.

The format is described in docs/homework.md ("Writing a homework"). In short: answer cells
carry nbgrader metadata ``{"solution": true, "grade_id": "exN_..."}``, test cells
``{"grade": true, "points": P, "grade_id": "test_exN..."}``; a test cell holds visible
asserts (for the student) and one hidden block (``### BEGIN HIDDEN TESTS`` ...
``### END HIDDEN TESTS``) with imports and three functions: ``inputs(g)`` (optional, runs in
the grader), ``probe(inp)`` (runs in the graded kernel), ``check(got, want, inp)`` (runs in the
grader). ``problems`` lists every way a notebook breaks these rules (the old nbgrader format
included), so the tests and ``grade`` can say exactly what is wrong.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ANSWER_ID = re.compile(r"^ex(\d+)_[A-Za-z0-9_]+$")
TEST_ID = re.compile(r"^test_ex(\d+)(?:_[A-Za-z0-9_]+)?$")
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
SEE = re.compile(r"see lesson \d\d, section \d+ \([^)]*\)")  # the pointer of every visible message
OLD_FORMAT = ("old nbgrader format: its hidden tests are asserts that would run in the student's kernel; "
              "write `def probe(inp)` and `def check(got, want, inp)` (and optionally `def inputs(g)`) "
              "in the hidden block instead (docs/homework.md, 'Writing a homework')")


@dataclass
class Test:
    gid: str
    exercise: int
    points: float
    visible: str  # the student's part of the cell
    hidden: str  # the hidden block, run in the grader (inputs, check)
    probe: str  # the imports of the hidden block and `def probe`, sent into the sandbox
    anchor: str | None  # grade_id of the answer cell it follows (where its probe runs)
    has_inputs: bool = False
    see: str = ""  # "see lesson NN, section N (Title)" from the visible messages: added to the check's message


@dataclass
class Spec:
    name: str
    path: Path
    cells: list[dict] = field(default_factory=list)  # code cells: {"kind": "plain"|"answer"|"test", "gid", "source"}
    answers: dict[str, int] = field(default_factory=dict)  # answer grade_id -> exercise
    tests: list[Test] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)

    def test(self, gid: str) -> Test:
        return next(t for t in self.tests if t.gid == gid)


def nbgrader_meta(cell) -> dict:
    """A cell's nbgrader metadata if it is a well-formed dict with a str grade_id, else {}."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nb = meta.get("nbgrader") if isinstance(meta, dict) else None
    if isinstance(nb, dict) and isinstance(nb.get("grade_id"), str) and len(nb["grade_id"]) <= 100:
        return nb
    return {}


def split_hidden(source: str) -> tuple[str, str | None]:
    """(visible part, hidden block or None)."""
    if BEGIN_HIDDEN not in source:
        return source, None
    before, _, rest = source.partition(BEGIN_HIDDEN)
    hidden, _, after = rest.partition(END_HIDDEN)
    return (before.rstrip() + ("\n" + after.strip() if after.strip() else "")).strip(), hidden.strip("\n")


def _probe_source(hidden: str) -> tuple[str | None, bool, list[str]]:
    """(imports + `def probe`, has `def inputs`, problems) of a hidden block."""
    try:
        tree = ast.parse(hidden)
    except SyntaxError as err:
        return None, False, [f"hidden block does not parse: {err}"]
    problems, keep, names = [], [], set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            keep.append(ast.get_source_segment(hidden, node))
        elif isinstance(node, ast.FunctionDef) and node.name in ("inputs", "probe", "check"):
            names.add(node.name)
            if node.name == "probe":
                keep.append(ast.get_source_segment(hidden, node))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        else:
            problems.append(f"hidden block: line {node.lineno} is not an import or def inputs/probe/check")
    if not {"probe", "check"} <= names:
        return None, "inputs" in names, [OLD_FORMAT]
    return "\n\n".join(keep) + "\n", "inputs" in names, problems


def strip_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


def load(path: Path) -> Spec:
    path = Path(path)
    spec = Spec(path.parent.name, path)
    nb = nbformat.read(path, as_version=4)
    last_answer = None
    seen: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if gid in seen:
            spec.problems.append(f"{spec.name}: duplicate grade_id {gid!r}")
        if gid:
            seen.add(gid)
        if gid and meta.get("solution"):
            m = ANSWER_ID.match(gid)
            if not m:
                spec.problems.append(f"{spec.name}: answer cell {gid!r}: grade_id must look like ex<N>_<name>")
                continue
            spec.answers[gid] = int(m.group(1))
            spec.cells.append({"kind": "answer", "gid": gid, "source": strip_solution_markers(cell.source)})
            last_answer = gid
        elif gid and meta.get("grade"):
            m = TEST_ID.match(gid)
            where = f"{spec.name}: test cell {gid!r}"
            if not m:
                spec.problems.append(f"{where}: grade_id must look like test_ex<N> or test_ex<N>_<part>")
                continue
            visible, hidden = split_hidden(cell.source)
            points = meta.get("points")
            if not isinstance(points, (int, float)) or points <= 0:
                spec.problems.append(f"{where}: points must be a positive number")
                points = 0
            if hidden is None:
                spec.problems.append(f"{where}: no hidden block; " + OLD_FORMAT)
                continue
            probe, has_inputs, problems = _probe_source(hidden)
            spec.problems += [f"{where}: {p}" for p in problems]
            if probe is None:
                continue
            exercise = int(m.group(1))
            if last_answer is None or spec.answers.get(last_answer) != exercise:
                spec.problems.append(f"{where}: must follow an answer cell of exercise {exercise}")
            see = SEE.search(visible)
            spec.tests.append(Test(gid, exercise, float(points), visible, hidden, probe, last_answer, has_inputs,
                                   see.group(0) if see else ""))
            spec.cells.append({"kind": "test", "gid": gid, "source": cell.source})
        else:
            spec.cells.append({"kind": "plain", "gid": None, "source": cell.source})
    if not spec.tests:
        spec.problems.append(f"{spec.name}: no test cell in the new format")
    return spec
