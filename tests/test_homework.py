"""Homework: the format, the release, and grading as a security boundary (issue 11).

One release and ONE grading run per session (module fixtures), into temporary folders. The
run grades the instructor's answers and the unfilled release of every homework, and a handful
of hostile or broken submissions of hw01 and hw04 next to them. Each attack must score what it
deserves, leave every file outside its sandbox as it was, leave no process behind, and not
stop anyone else from being graded.

``COURSE_HOMEWORK_JOBS`` sets the sandboxes run at a time (default 2; 1 under /work-style
CPU locks). The grading tests need bubblewrap (``apt-get install bubblewrap``); without it
they fail with the grader's own message, never run student code unsandboxed.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from homework import ROOT, SOURCE_DIR, assignments
from homework import codec, sandbox, spec as specs
from homework.grade import GradeError, grade, prepare_out
from homework.release import check_release, release, secret_lines
from homework.validate import solved

pytestmark = pytest.mark.slow

NAMES = assignments()
JOBS = int(os.environ.get("COURSE_HOMEWORK_JOBS", "2"))
CELL_TIMEOUT = 10
MARK = "grader-attack-marker-7f3a"  # in the command line of every process an attack starts


def _gid(cell):
    return specs.nbgrader_meta(cell).get("grade_id")


def _cell(nb, gid):
    return next(c for c in nb.cells if _gid(c) == gid)


def _put(root: Path, student: str, name: str, nb) -> Path:
    path = root / student / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (not following links) and its sha256, links as their target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, folder)
            out[rel] = "link:" + os.readlink(p) if os.path.islink(p) else hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def _marked_processes() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if MARK in cmd and "pytest" not in cmd:
                found.append(f"{pid}: {cmd[:120]}")
    return found


# ------------------------------------------------------------- submissions ---

TRANSFORMER = '''\
def _blank(lines):
    return []
get_ipython().input_transformers_cleanup.append(_blank)
'''

PATCHES = '''\
import numpy.testing, torch, torch.testing
torch.allclose = torch.equal = lambda *a, **k: True
torch.testing.assert_close = numpy.testing.assert_allclose = lambda *a, **k: None
torch.Tensor.__bool__ = lambda self: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
'''

READER = f'''\
import os, sys, glob
found = []
for pattern in ("/work/**/hw04.ipynb", "/root/**/hw04.ipynb", "../../../source/hw04/hw04.ipynb", "/work/**/gradebook.db",
                "/course/**/*.ipynb", "/tmp/**/*.ipynb", "/submission/**/*.ipynb",
                {str(SOURCE_DIR)!r} + "/hw04/hw04.ipynb", {str(ROOT)!r} + "/**/*.ipynb"):
    for path in glob.glob(pattern, recursive=True)[:50]:
        try:
            text = open(path, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        if "BEGIN SOLUTION" in text or "SQLite" in text[:20]:
            found.append(path)
print("READER FOUND", len(found), "ROOT VISIBLE", os.path.exists({str(ROOT)!r}), "PATH", sys.path, os.listdir("/"))
for path in found:  # run the instructor's notebook if it was readable
    import json
    for cell in json.load(open(path))["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]))
'''


def _harmer(subs: Path, out_hint: Path) -> str:
    return f'''\
import os, subprocess, sys
hits = []
for target in ({str(ROOT / "torch.py")!r}, {str(ROOT / "course_utils" / "__init__.py")!r},
               {str(subs / "solution" / "hw01" / "hw01.ipynb")!r}, {str(out_hint / "grades.csv")!r},
               {str(SOURCE_DIR / "hw01" / "hw01.ipynb")!r}, "/course/course_utils/torch.py", "/grader/plan.json"):
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a") as fh:
            fh.write("import sys; sys.exit('planted')\\n")
        hits.append(target)
    except OSError:
        pass
print("HARMER WROTE", hits)
for i in range(100):  # children in new sessions that try to outlive the grading
    try:
        subprocess.Popen(["/bin/sh", "-c", "sleep 120; : {MARK}"], start_new_session=True)
    except OSError as err:
        print("HARMER could not start child", i, err)
        break
'''


MEMORY = '''\
import torch
block = torch.ones(2 * 1024**3, dtype=torch.float32)  # 8 GB, touched
'''


def _malformed(release_nb: nbformat.NotebookNode) -> dict:
    nb = json.loads(json.dumps(release_nb))
    nb["cells"][1]["metadata"]["nbgrader"] = ["not", "a", "dict"]
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if isinstance(meta, dict) and meta.get("grade_id") == "test_ex2":
            meta["grade_id"] = ["a", "list"]
        if isinstance(meta, dict) and meta.get("grade_id") == "test_ex4":
            del cell["source"]
    return nb


def make_submissions(course: Path, subs: Path, out: Path) -> dict:
    """The run's class folder; returns what the tests need to know about it."""
    rel = {n: course / "release" / n / f"{n}.ipynb" for n in NAMES}
    src = {n: SOURCE_DIR / n / f"{n}.ipynb" for n in NAMES}
    for name in NAMES:
        _put(subs, "solution", name, solved(rel[name], src[name]))
        _put(subs, "unfilled", name, nbformat.read(rel[name], as_version=4))

    nb = nbformat.read(rel["hw01"], as_version=4)  # full marks with no answer (issue: 13/13)
    _cell(nb, "ex1_greedy_decode").source = TRANSFORMER
    _put(subs, "transformer", "hw01", nb)

    wrong = solved(rel["hw04"], src["hw04"])  # wrong answers; deserves the prediction's 1 point
    _cell(wrong, "ex1_masked_softmax").source = "def masked_softmax(scores, mask=None, dim=-1):\n    return scores"
    _cell(wrong, "ex2_decoder_mask").source = (
        "def decoder_mask(lengths, T):\n    return torch.ones(len(lengths), 1, T, T, dtype=torch.bool)")
    _cell(wrong, "ex3_measure").source = "by_dk = {16: 0.0, 64: 0.0, 256: 0.0}\nby_sqrt = dict(by_dk)\nby_fourth_root = dict(by_dk)"
    _cell(wrong, "ex4_scaled_attention").source = "scaled_attention = buggy_attention"
    _cell(wrong, "ex5_answer").source = 'answer = "a"'
    _put(subs, "wrong", "hw04", wrong)
    patched = nbformat.from_dict(json.loads(json.dumps(wrong)))
    _cell(patched, "ex1_masked_softmax").source = PATCHES + _cell(wrong, "ex1_masked_softmax").source
    _put(subs, "patcher", "hw04", patched)

    nb = nbformat.read(rel["hw04"], as_version=4)  # reads the solutions if it can, and runs them
    _cell(nb, "ex1_masked_softmax").source = READER
    _put(subs, "reader", "hw04", nb)

    link = subs / "symlink" / "hw04" / "hw04.ipynb"  # a symlink to the instructor's notebook
    link.parent.mkdir(parents=True)
    link.symlink_to(src["hw04"])

    nb = solved(rel["hw01"], src["hw01"])  # honest answers + writes outside + processes that try to outlive it
    nb.cells.insert(1, nbformat.v4.new_code_cell(_harmer(subs, out)))
    _put(subs, "harmer", "hw01", nb)

    nb = solved(rel["hw04"], src["hw04"])  # exercise 1 allocates 8 GB first: loses exercise 1 only
    _cell(nb, "ex1_masked_softmax").source = MEMORY + _cell(nb, "ex1_masked_softmax").source
    _put(subs, "memory", "hw04", nb)

    nb = solved(rel["hw01"], src["hw01"])  # exit() at the end of a correct exercise 1, and a kernel
    cell = _cell(nb, "ex1_greedy_decode")  # killed from a timer that exercise 1 starts, during later cells
    cell.source += "\n\nimport os, threading\nthreading.Timer(1.0, os._exit, (1,)).start()\nexit()"
    cell = _cell(nb, "ex2_exact_match")  # (a slow but right exercise 2, so that the timer fires during it)
    cell.source = "import time\ntime.sleep(3)\n" + cell.source
    _put(subs, "killer", "hw01", nb)

    nb = solved(rel["hw04"], src["hw04"])  # exercise 4 never returns and ignores interrupts
    _cell(nb, "ex4_scaled_attention").source += (
        "\n\nimport time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except BaseException:\n        pass")
    _put(subs, "loops", "hw04", nb)

    nb = solved(rel["hw04"], src["hw04"])  # 30 MB of output in a cell of its own
    nb.cells.insert(1, nbformat.v4.new_code_cell("print('x' * 30_000_000)"))
    _put(subs, "flood", "hw04", nb)

    nb = solved(rel["hw01"], src["hw01"])  # an exception whose name is a spreadsheet formula
    _cell(nb, "ex2_exact_match").source = (
        'def exact_match_by_length(hyps, pairs, edges=(4, 10, 20, 30, 40, 51)):\n'
        '    raise type("=HYPERLINK(\\"http://evil\\",\\"x\\")", (Exception,), {})("-2+3")')
    _put(subs, "csvinject", "hw01", nb)

    path = subs / "malformed" / "hw04" / "hw04.ipynb"  # nbgrader metadata of the wrong types
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_malformed(nbformat.read(rel["hw04"], as_version=4))))
    path = subs / "garbage" / "hw01" / "hw01.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text('{"cells": [}')

    amb = subs / "ambiguous" / "hw01"  # two notebooks, neither named hw01.ipynb
    amb.mkdir(parents=True)
    for name in ("hw01 (1).ipynb", "hw01 (2).ipynb"):
        nbformat.write(solved(rel["hw01"], src["hw01"]), amb / name)
    _put(subs, "wrongcase", "HW01", solved(rel["hw01"], src["hw01"]))
    _put(subs, "a" * 250, "hw01", solved(rel["hw01"], src["hw01"]))  # a student id too long for a file name
    return {"wrong_patched_deserves": 1}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("homework")
    release(root, log=lambda *a: None)
    return root


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    base = tmp_path_factory.mktemp("class")
    subs, out = base / "submissions", base / "graded"
    make_submissions(course, subs, out)
    before_subs, before_root = _digest(subs), _digest(ROOT / "course_utils")
    root_files = set(os.listdir(ROOT))
    report = grade(subs, out, cell_timeout=CELL_TIMEOUT, jobs=JOBS, log=lambda *a: None)
    report.integrity = {  # type: ignore[attr-defined]
        "subs": before_subs == _digest(subs), "course_utils": before_root == _digest(ROOT / "course_utils"),
        "root_files": set(os.listdir(ROOT)) - root_files, "processes": _marked_processes()}
    for (student, name), seconds in sorted(report.seconds.items()):
        print(f"{student[:20]}/{name}: {seconds:.1f} s")  # shown with -s; never asserted
    return report


def points(report, student, name):
    return report.test_points(student, name)


# ------------------------------------------------------------- the format ---

@pytest.mark.parametrize("name", NAMES)
def test_source_notebook_structure(name):
    """New format, and the course's shape: >= 4 exercises, one "Debug this", a prediction, a hidden answer."""
    from nbgrader.nbgraderformat import MetadataValidator

    path = SOURCE_DIR / name / f"{name}.ipynb"
    s = specs.load(path)
    assert not s.problems, "\n".join(s.problems)
    nb = nbformat.read(path, as_version=4)
    MetadataValidator().validate_nb(nb)
    assert len({t.exercise for t in s.tests}) >= 4, f"{name}: fewer than 4 exercises"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert len([line for line in markdown.splitlines() if line.startswith("## ") and "Debug this" in line]) == 1
    assert any(c.source.lstrip().startswith("# prediction") or "\nprediction = " in c.source for c in nb.cells
               if specs.nbgrader_meta(c).get("solution")), f"{name}: no predict-then-measure question"
    assert any('want["answer"]' in t.hidden for t in s.tests), f"{name}: no multiple choice judged against the reference"
    assert all(t.points > 0 for t in s.tests)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name}: stored outputs"


def test_old_format_is_named_clearly(tmp_path):
    nb = nbformat.read(SOURCE_DIR / "hw04" / "hw04.ipynb", as_version=4)
    cell = _cell(nb, "test_ex5")
    cell.source = cell.source.split("### BEGIN HIDDEN TESTS")[0] + \
        '### BEGIN HIDDEN TESTS\nassert answer == "b"\n### END HIDDEN TESTS'
    path = tmp_path / "hw99" / "hw99.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    problems = specs.load(path).problems
    assert len(problems) == 1 and "test_ex5" in problems[0] and "old nbgrader format" in problems[0], problems


def test_codec_round_trip_and_refusals():
    import torch

    value = {"a": [1, 2.5, float("nan"), None, True, "x"], "t": (torch.arange(6).view(2, 3), torch.ones(2) > 0)}
    back = codec.decode(codec.encode(value))
    assert back["a"][:2] == [1, 2.5] and back["a"][2] != back["a"][2] and back["a"][3:] == [None, True, "x"]
    assert isinstance(back["t"], tuple) and torch.equal(back["t"][0], value["t"][0]) and back["t"][1].dtype == torch.bool
    for bad in (object(), {1: 2}, lambda: 0, torch.nn.Linear(2, 2)):
        with pytest.raises(codec.CodecError):
            codec.encode(bad)
    for text in ('{"__tensor__": {"dtype": "float32", "shape": [3], "data": [1]}}', '{"__pickle__": 1}', "[" * 100000):
        with pytest.raises(codec.CodecError):
            codec.decode(text)


# ------------------------------------------------------------------ release ---

def test_release_hides_hidden_checks_and_solutions(course):
    assert check_release(SOURCE_DIR, course / "release") == []
    for name in NAMES:
        text = (course / "release" / name / f"{name}.ipynb").read_text()
        assert "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text and "def check(" not in text
        assert len(secret_lines(SOURCE_DIR / name / f"{name}.ipynb")) >= 10, f"{name}: the leak check would be vacuous"
        assert "raise NotImplementedError()" in text


def test_check_release_catches_a_leak(tmp_path):
    leaky = tmp_path / "release"
    for name in NAMES:
        (leaky / name).mkdir(parents=True)
        shutil.copy(SOURCE_DIR / name / f"{name}.ipynb", leaky / name / f"{name}.ipynb")
    problems = check_release(SOURCE_DIR, leaky)
    assert any("BEGIN HIDDEN TESTS" in p for p in problems) and any("solution line" in p for p in problems)


def test_export_sources_copies_outside_the_repository(tmp_path):
    from homework.release import export_sources

    written = export_sources(tmp_path / "private", log=lambda *a: None)
    assert [p.parent.name for p in written] == NAMES and all(p.is_file() for p in written)
    with pytest.raises(RuntimeError, match="inside the course repository"):
        export_sources(ROOT / "build" / "private-here", log=lambda *a: None)


# ------------------------------------------------------- intake and --out ---

def test_out_refuses_folders_it_did_not_make(tmp_path):
    subs = tmp_path / "class" / "submissions"
    (subs / "alice").mkdir(parents=True)
    for bad in (tmp_path / "class", subs, ROOT, SOURCE_DIR.parent):
        with pytest.raises(GradeError):
            prepare_out(bad, subs, [ROOT, SOURCE_DIR])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(GradeError, match="not made by the grader"):
        prepare_out(foreign, subs, [ROOT])
    assert (foreign / "thesis.tex").read_text() == "precious"
    fresh = tmp_path / "out"
    prepare_out(fresh, subs, [ROOT])
    (fresh / "grades.csv").write_text("old")
    prepare_out(fresh, subs, [ROOT])  # its own folder: emptied and reused
    assert not (fresh / "grades.csv").exists() and (subs / "alice").is_dir()


def test_missing_bubblewrap_stops_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(sandbox, "_CHECKED", [])
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        sandbox.check_bwrap()


# ------------------------------------------------------------------ grading ---

def test_instructor_solutions_score_full_marks(graded):
    for name in NAMES:
        score, top = graded.scores[("solution", name)]
        assert top >= 10 and score == top, (name, [t for t in graded.tests if (t.student, t.assignment) == ("solution", name) and t.error])


def test_unfilled_release_scores_zero(graded):
    for name in NAMES:
        got = points(graded, "unfilled", name)
        assert got and all(p == 0 for p in got.values()), (name, got)


def test_input_transformer_cannot_blank_the_checks(graded):
    assert graded.score("transformer", "hw01") == 0  # was 13/13


def test_patched_libraries_do_not_change_the_judgement(graded):
    assert graded.score("wrong", "hw04") == 1  # the prediction
    assert points(graded, "patcher", "hw04") == points(graded, "wrong", "hw04")  # was 3/14 and 6/14


def test_solutions_are_not_readable_from_the_sandbox(graded):
    assert graded.score("reader", "hw04") == 0
    log = (graded.out / "logs" / "reader-hw04.log").read_text()
    assert "READER FOUND 0 ROOT VISIBLE False" in log, log[-2000:]


def test_a_symlinked_submission_is_not_followed(graded):
    assert graded.score("symlink", "hw04") == 0 and graded.status[("symlink", "hw04")] == "unreadable"
    assert any("symlink" in a for a in graded.attention)


def test_a_submission_cannot_harm_others_or_outlive_its_grading(graded):
    assert graded.score("harmer", "hw01") == 13  # its answers are right; every write it tried failed
    log = (graded.out / "logs" / "harmer-hw01.log").read_text()
    wrote = ast.literal_eval(log.split("HARMER WROTE ", 1)[1].splitlines()[0])
    assert all(p.startswith("/tmp/") for p in wrote), wrote  # only its own private /tmp (a tmpfs that dies with it)
    assert graded.integrity["subs"] and graded.integrity["course_utils"], graded.integrity
    assert not graded.integrity["root_files"], graded.integrity  # no torch.py planted at the root
    assert graded.integrity["processes"] == [], graded.integrity
    assert graded.score("solution", "hw01") == 13


def test_memory_and_processes_are_limited(graded):
    got, full = points(graded, "memory", "hw04"), points(graded, "solution", "hw04")
    assert got["test_ex1_basic"] == got["test_ex1_edge_cases"] == 0
    assert {t: p for t, p in got.items() if not t.startswith("test_ex1")} == \
        {t: p for t, p in full.items() if not t.startswith("test_ex1")}
    log = (graded.out / "logs" / "harmer-hw01.log").read_text()
    assert "could not start child" in log  # the process limit (as root; see docs/homework.md)


def test_a_dying_kernel_costs_only_its_own_exercise(graded):
    got, full = points(graded, "killer", "hw01"), points(graded, "solution", "hw01")
    assert {t: p for t, p in got.items() if t != "test_ex1"} == {t: p for t, p in full.items() if t != "test_ex1"}, got
    assert any("re-run" in n for n in graded.notes[("killer", "hw01")]), graded.notes[("killer", "hw01")]


def test_a_cell_that_ignores_interrupts_costs_only_its_exercise(graded):
    got, full = points(graded, "loops", "hw04"), points(graded, "solution", "hw04")
    assert got["test_ex4"] == 0 and {t: p for t, p in got.items() if t != "test_ex4"} == \
        {t: p for t, p in full.items() if t != "test_ex4"}, got


def test_output_is_bounded_in_bytes(graded):
    assert graded.score("flood", "hw04") == 14
    assert (graded.out / "logs" / "flood-hw04.log").stat().st_size <= 64 * 1024
    total = sum(p.stat().st_size for p in graded.out.rglob("*") if p.is_file())
    assert total < 5_000_000, total


def test_bad_intake_is_noted_and_everyone_else_is_graded(graded):
    assert graded.status[("malformed", "hw04")] == "graded" and graded.score("malformed", "hw04") == 0
    assert graded.status[("garbage", "hw01")] == "unreadable" and graded.score("garbage", "hw01") == 0
    assert graded.status[("ambiguous", "hw01")] == "ambiguous" and graded.score("ambiguous", "hw01") == 0
    assert graded.status[("wrongcase", "hw01")] == "wrong name"
    attention = "\n".join(graded.attention)
    assert "none named hw01.ipynb" in attention and "'HW01'" in attention and "skipped folder" in attention
    assert "a" * 250 not in "\n".join(graded.students)
    with open(graded.out / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["student_id"] for r in rows} == set(graded.students)
    assert {(r["student_id"], r["assignment"]) for r in rows} == {(s, n) for s in graded.students for n in NAMES}


def test_csv_fields_are_not_formulas(graded):
    assert points(graded, "csvinject", "hw01")["test_ex2"] == 0
    for name in ("grades.csv", "feedback.csv", "notes.csv"):
        with open(graded.out / name, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for field in row:
                    assert not field.startswith(("=", "+", "-", "@", "\t", "\r")), (name, field)
    text = (graded.out / "feedback.csv").read_text()
    assert "'=HYPERLINK" in text


def test_reports_are_written(graded):
    page = (graded.out / "feedback.html").read_text()
    assert "total" in graded.table() and "<script" not in page and "solution / hw06" in page
    assert (graded.out / ".homework-grades").is_file()
