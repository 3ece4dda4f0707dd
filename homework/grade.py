"""Grade a folder of submissions: each in its own sandbox, judged in the grader's own process.

``grade(DIR)`` expects ``DIR/<student>/hwNN/hwNN.ipynb``. In order:

1. **Intake** (``collect``): only real folders and regular files inside DIR are read (no
   symlinks); student ids are bounded (64 characters of ``A-Za-z0-9_.@-``); a folder whose name
   only looks like a homework (``HW01``), several notebooks none named ``hwNN.ipynb``, a symlink,
   a file too large or a notebook that does not parse are each noted, score 0, and make the
   exit code non-zero; everyone else is graded.
2. **Reference**: the instructor notebook's own cells and probes run once per homework, in the
   same sandbox, on inputs drawn from this run's secret: that gives ``want`` for every test.
3. **Submissions**: the student's code cells (test cells are dropped: the student's copy of a
   test decides nothing) run in a sandbox that sees only a copy of its own folder; each test's
   ``probe`` runs right after the answer cell it belongs to and reports values. If the kernel
   dies or hangs, every exercise that has no values yet is re-run in a fresh sandbox with the
   plain cells and that exercise's own answer cells only, so a kernel killed by one exercise,
   however late it dies, costs only that exercise.
4. **Judgement**: each test's ``check(got, want, inp)`` runs here, in the grader's process, on
   values decoded from JSON (``homework.codec``). A test whose probe did not report, raised,
   or whose values fail the check scores 0.
5. **Reports** in OUT (a folder the grader created, marked by ``.homework-grades``): grades.csv,
   feedback.csv (cells a spreadsheet would evaluate are neutralised), feedback.html, logs/.
"""
from __future__ import annotations

import csv
import hashlib
import html
import inspect
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from homework import BUILD_DIR, CELL_TIMEOUT, NOTEBOOK_TIMEOUT, ROOT, assignments, source_dir
from homework import codec, spec as specs
from homework.execute import RunResult, run_steps
from homework.sandbox import Limits, Sandbox

LAYOUT = "DIR/<student>/hwNN/hwNN.ipynb"
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
HW_NAME = re.compile(r"^hw\d\d$", re.I)
MARKER = ".homework-grades"
MAX_NOTEBOOK = 8 * 1024**2  # bytes of a submitted notebook
MAX_FILES, MAX_FOLDER = 32, 16 * 1024**2  # other regular files copied from its folder, and their bytes
MAX_SOURCE = 1024**2  # characters of one code cell
MAX_CELLS = 1000  # code cells of one notebook
MAX_RUNS = 12  # sandbox runs per submission, the first included


class GradeError(RuntimeError):
    """The grading run cannot start (bad --out, no homework, no sandbox)."""


@dataclass
class TestResult:
    student: str
    assignment: str
    test: str
    points: float
    max_points: float
    error: str = ""


@dataclass
class GradeReport:
    out: Path
    students: list[str]
    assignments: list[str]
    scores: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    tests: list[TestResult] = field(default_factory=list)
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    status: dict[tuple[str, str], str] = field(default_factory=dict)  # graded, missing, unreadable, ...
    attention: list[str] = field(default_factory=list)  # what makes the exit code non-zero
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return self.attention

    def score(self, student: str, assignment: str) -> float:
        return self.scores[(student, assignment)][0]

    def test_points(self, student: str, assignment: str) -> dict[str, float]:
        return {t.test: t.points for t in self.tests if (t.student, t.assignment) == (student, assignment)}

    def table(self) -> str:
        width = max([7, *map(len, self.students)])
        head = f"{'student':<{width}} " + " ".join(f"{a:>9}" for a in self.assignments) + f" {'total':>11}"
        rows = [head, "-" * len(head)]
        for s in self.students:
            got = [self.scores.get((s, a), (0.0, 0.0)) for a in self.assignments]
            cells = " ".join(f"{score:>4g}/{top:<4g}" if self.status.get((s, a)) == "graded" else f"{'-':>4}/{top:<4g}"
                             for a, (score, top) in zip(self.assignments, got))
            total = f"{sum(x for x, _ in got):g}/{sum(y for _, y in got):g}"
            rows.append(f"{s:<{width}} {cells} {total:>11}")
        return "\n".join(rows)


# ------------------------------------------------------------------ intake ---

@dataclass
class Submission:
    student: str
    assignment: str
    notebook: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # other regular files of the folder
    notes: list[str] = field(default_factory=list)
    status: str = "graded"


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file (never through a symlink), or None if it is not one or too big."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = fh.read(limit + 1)
        return data if len(data) <= limit else None
    finally:
        if fd >= 0:
            os.close(fd)


def _short(name: str) -> str:
    return ascii(name if len(name) <= 40 else name[:40] + "...")


def _deeper(folder: Path, names: list[str]) -> str:
    """A hint when ``folder/<x>/hwNN/`` exists: the layout is one level too deep."""
    try:
        children = sorted(c for c in os.listdir(folder) if not c.startswith(".") and _real_dir(folder / c))
    except OSError:
        return ""
    for child in children[:200]:
        try:
            inner = os.listdir(folder / child)
        except OSError:
            continue
        found = sorted(i for i in inner if i in names)
        if found:
            return (f" (found {_short(folder.name)}/{_short(child)}/{found[0]}/: one level too deep, "
                    f"so give the folder {_short(folder.name)} itself, not the one above it)")
    return ""


def collect(submissions: Path, names: list[str], report: GradeReport) -> list[Submission]:
    """What to grade, with notes; fills ``report.students`` and ``report.attention``."""
    todo: list[Submission] = []
    try:
        entries = sorted(os.listdir(submissions))
    except OSError as err:
        raise GradeError(f"cannot read the submissions folder {submissions}: {err}") from None
    for entry in entries:
        if entry.startswith("."):
            continue
        path = submissions / entry
        if not STUDENT_ID.match(entry):
            report.attention.append(f"skipped folder {_short(entry)}: a student id is 1-64 letters, digits, "
                                    "'_', '.', '@' or '-', starting with a letter or digit")
            continue
        if not _real_dir(path):
            kind = "a symlink" if path.is_symlink() else "not a folder"
            report.attention.append(f"skipped {_short(entry)}: {kind} (only real folders are read)")
            continue
        report.students.append(entry)
        try:
            inside = sorted(os.listdir(path))
        except OSError:
            inside = []
        if not any(HW_NAME.match(item) for item in inside):
            report.attention.append(f"{entry}/: no homework folder in it; expected {LAYOUT}{_deeper(path, names)}")
        for item in inside:
            if HW_NAME.match(item) and item not in names:
                what = (f"looks like {item.lower()} but the name is {item!r}: rename it to {item.lower()}"
                        if item.lower() in names else f"no homework called {item!r}")
                report.attention.append(f"{entry}/{_short(item)}: not graded: {what}")
                if item.lower() in names and item.lower() not in inside:
                    sub = Submission(entry, item.lower(), status="wrong name",
                                     notes=[f"folder {item!r} not graded: homework folders are lower case "
                                            f"({item.lower()}/)"])
                    todo.append(sub)
        for name in names:
            folder = path / name
            if not os.path.lexists(folder):
                continue
            sub = Submission(entry, name)
            todo.append(sub)
            if not _real_dir(folder):
                sub.status = "unreadable"
                sub.notes.append(f"{name} is a symlink or not a folder: not read")
                report.attention.append(f"{entry}/{name}: a symlink or not a folder, scored 0")
                continue
            _intake_folder(sub, folder, report)
    return todo


def _intake_folder(sub: Submission, folder: Path, report: GradeReport) -> None:
    name, where = sub.assignment, f"{sub.student}/{sub.assignment}"
    try:
        items = sorted(os.listdir(folder))
    except OSError:
        items = []
    notebooks = [i for i in items if i.endswith(".ipynb") and not i.startswith(".")]
    expected = f"{name}.ipynb"
    chosen = None
    if expected in notebooks:
        chosen = expected
        others = [n for n in notebooks if n != expected]
        if others:
            sub.notes.append(f"graded {expected}; also in the folder, ignored: {', '.join(map(_short, others[:5]))}")
    elif len(notebooks) == 1:
        chosen = notebooks[0]
        sub.notes.append(f"graded {_short(chosen)}, the only notebook in {name}/ (expected {expected})")
    elif notebooks:
        sub.status = "ambiguous"
        sub.notes.append(f"not graded: {len(notebooks)} notebooks in {name}/ and none is {expected}: "
                         + ", ".join(map(_short, notebooks[:5])))
        report.attention.append(f"{where}: {len(notebooks)} notebooks, none named {expected}: scored 0")
        return
    else:
        sub.status = "missing"
        sub.notes.append(f"no notebook in {name}/")
        return
    data = _read_regular(folder / chosen, MAX_NOTEBOOK)
    if data is None:
        sub.status = "unreadable"
        what = "a symlink" if (folder / chosen).is_symlink() else "not a regular file, or too large"
        sub.notes.append(f"{_short(chosen)} is {what}: not read, scored 0")
        report.attention.append(f"{where}: {_short(chosen)} is {what}: scored 0")
        return
    sub.notebook = data
    total = 0
    for item in items:
        if item == chosen or item.endswith(".ipynb") or item.startswith(".") or len(item) > 100:
            continue
        if len(sub.files) >= MAX_FILES:
            sub.notes.append(f"more than {MAX_FILES} other files: the rest were not copied")
            break
        path = folder / item
        if not _regular(path):
            if path.is_symlink():
                sub.notes.append(f"{_short(item)} is a symlink: not copied")
            continue
        content = _read_regular(path, MAX_FOLDER - total)
        if content is None:
            sub.notes.append(f"{_short(item)}: not copied (too large)")
            continue
        total += len(content)
        sub.files[item] = content


def parse_cells(data: bytes, spec: specs.Spec) -> tuple[list[dict] | None, list[str]]:
    """A submission's code cells as ``{"kind": "plain"|"answer", "gid", "source"}``; None if unreadable.

    Test cells are dropped (the grader's checks decide); an answer cell is the first code cell
    with that answer's grade_id; anything else with nbgrader metadata counts as a plain cell.
    """
    notes: list[str] = []
    try:
        nb = json.loads(data.decode("utf-8"))
        raw_cells = nb["cells"]
        if not isinstance(raw_cells, list):
            raise TypeError("cells is not a list")
    except Exception as err:  # noqa: BLE001 - any malformed notebook scores zero, with a note
        return None, [f"unreadable notebook ({type(err).__name__}), scored 0"]
    tests = {t.gid for t in spec.tests}
    cells, seen, dropped = [], set(), 0
    for raw in raw_cells:
        if not isinstance(raw, dict) or raw.get("cell_type") != "code":
            continue
        if len(cells) >= MAX_CELLS:
            notes.append(f"more than {MAX_CELLS} code cells: the rest were not run")
            break
        source = raw.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            notes.append("a code cell without readable source was skipped")
            continue
        if len(source) > MAX_SOURCE:
            notes.append(f"a code cell of {len(source)} characters was skipped (limit {MAX_SOURCE})")
            continue
        gid = specs.nbgrader_meta(raw).get("grade_id")
        if gid in tests:
            dropped += 1
            continue
        if gid in spec.answers and gid not in seen:
            seen.add(gid)
            cells.append({"kind": "answer", "gid": gid, "source": source})
        else:
            cells.append({"kind": "plain", "gid": None, "source": source})
    missing = [g for g in spec.answers if g not in seen]
    if missing:
        notes.append("answer cells missing (those parts score 0 unless defined elsewhere): " + ", ".join(missing))
    return cells, notes


# ------------------------------------------------------------------- plans ---

def plan(cells: list[dict], spec: specs.Spec, tests: list[specs.Test], inputs: dict[str, str],
         exercise: int | None = None, skip: set[int] = frozenset()) -> list[dict]:
    """Steps: the cells in order (for one ``exercise``, without the other exercises' answer cells),
    each test's probe right after the answer cell it follows (or at the end if that one is missing)."""
    steps, placed = [], set()
    for i, cell in enumerate(cells):
        if i in skip:
            continue
        if exercise is not None and cell["kind"] == "answer" and spec.answers[cell["gid"]] != exercise:
            continue
        steps.append({"kind": "cell", "source": cell["source"], "cell": i})
        if cell["kind"] == "answer":
            for t in tests:
                if t.anchor == cell["gid"] and t.gid not in placed:
                    placed.add(t.gid)
                    steps.append({"kind": "probe", "source": t.probe, "test": t.gid, "inputs": inputs.get(t.gid, "")})
    for t in tests:
        if t.gid not in placed:
            steps.append({"kind": "probe", "source": t.probe, "test": t.gid, "inputs": inputs.get(t.gid, "")})
    return steps


@dataclass
class Outcome:
    values: dict[str, str] = field(default_factory=dict)  # test -> encoded values
    errors: dict[str, str] = field(default_factory=dict)  # test -> why it has no values
    notes: list[str] = field(default_factory=list)
    log: str = ""
    runs: int = 0


def execute(cells: list[dict], spec: specs.Spec, inputs: dict[str, str], ctx: "Context", slot: int,
            files_dir: Path, files: list[str]) -> Outcome:
    """Run a notebook's cells and probes; re-run exercises in isolation after a dead or stuck kernel."""
    out = Outcome()
    budget_end = time.monotonic() + 2 * ctx.notebook_timeout  # all runs of one submission together

    def record(res: RunResult, steps: list[dict], wanted: list[specs.Test]) -> int | None:
        out.runs += 1
        out.log += res.log[: 16 * 1024]
        for k, step in enumerate(steps):
            if step["kind"] == "probe" and step["test"] in {t.gid for t in wanted}:
                gid = step["test"]
                if gid in res.values and k in res.ended and k not in res.errors:
                    out.values[gid] = res.values[gid]
                    out.errors.pop(gid, None)
                elif k in res.errors:
                    out.errors[gid] = res.errors[k]
        if res.finished:
            return None
        blame = res.died_at if res.died_at is not None else 0
        if res.died_at is not None and res.died_at in res.ended:
            blame = min(res.died_at + 1, len(steps) - 1)
        return blame

    steps = plan(cells, spec, spec.tests, inputs)
    res = run_steps(ctx.sandbox, slot, steps, files_dir, files, ctx.cell_timeout, ctx.notebook_timeout, ctx.work)
    blame = record(res, steps, spec.tests)
    if blame is None:
        return out
    out.notes.append(f"{res.why} during {_step_name(steps[blame], cells)}; the exercises after it were re-run "
                     "one by one in fresh sandboxes")
    pending = [t for t in spec.tests if t.gid not in out.values and t.gid not in out.errors]
    owner = _exercise_of(steps[blame], cells, spec)
    if owner is not None and "did not stop" in res.why:
        # a hang is the running cell's own doing (a death may come from an earlier cell's thread or timer)
        for t in pending:
            if t.exercise == owner:
                out.errors[t.gid] = f"{res.why} ({_step_name(steps[blame], cells)})"
        pending = [t for t in pending if t.exercise != owner]
    for exercise in sorted({t.exercise for t in pending}):
        wanted = [t for t in pending if t.exercise == exercise]
        skip: set[int] = set()
        for _attempt in range(3):
            left = budget_end - time.monotonic()
            if out.runs >= MAX_RUNS or left < 5:
                out.notes.append(f"exercise {exercise}: not re-run (this submission used up its time or runs)")
                break
            steps = plan(cells, spec, wanted, inputs, exercise=exercise, skip=skip)
            res = run_steps(ctx.sandbox, slot, steps, files_dir, files, ctx.cell_timeout,
                            min(ctx.notebook_timeout, left), ctx.work)
            blame = record(res, steps, wanted)
            if blame is None:
                break
            step = steps[blame]
            cell = cells[step["cell"]] if step["kind"] == "cell" else None
            if cell is not None and cell["kind"] == "plain":
                skip.add(step["cell"])  # a plain cell that kills the kernel: try without it
                out.notes.append(f"exercise {exercise}: {res.why} during {_step_name(step, cells)}; "
                                 "re-run without that cell")
                continue
            for t in wanted:
                if t.gid not in out.values:
                    out.errors.setdefault(t.gid, f"{res.why} during {_step_name(step, cells)}")
            break
    for t in spec.tests:
        if t.gid not in out.values:
            out.errors.setdefault(t.gid, "not run: " + (res.why or "the kernel stopped before this test"))
    return out


def _exercise_of(step: dict, cells: list[dict], spec: specs.Spec) -> int | None:
    if step["kind"] == "probe":
        return spec.test(step["test"]).exercise
    cell = cells[step["cell"]]
    return spec.answers.get(cell["gid"]) if cell["kind"] == "answer" else None


def _step_name(step: dict, cells: list[dict]) -> str:
    if step["kind"] == "probe":
        return f"the probe of {step['test']}"
    cell = cells[step["cell"]]
    return f"answer cell {cell['gid']}" if cell["kind"] == "answer" else f"code cell {step['cell'] + 1}"


# --------------------------------------------------------------- judgement ---

class Judge:
    """A homework's ``inputs`` and ``check`` functions, compiled in the grader's own process."""

    def __init__(self, spec: specs.Spec, secret: bytes):
        self.spec = spec
        self.checks, self.inputs, self.raw_inputs = {}, {}, {}
        import torch

        for t in spec.tests:
            ns: dict = {"__name__": f"homework_checks_{spec.name}_{t.gid}"}
            exec(compile(t.hidden, f"<{spec.name} {t.gid} hidden block>", "exec"), ns)  # noqa: S102 - instructor code
            self.checks[t.gid] = ns["check"]
            value = {}
            if t.has_inputs:
                seed = int.from_bytes(hashlib.sha256(secret + f"{spec.name}/{t.gid}".encode()).digest()[:8], "little")
                value = ns["inputs"](torch.Generator().manual_seed(seed & (2**63 - 1)))
            self.inputs[t.gid] = codec.encode(value) if t.has_inputs else ""
            self.raw_inputs[t.gid] = value

    def judge(self, gid: str, got_text: str, want_text: str) -> str:
        """"" when the test passes, else why not (the check's message)."""
        try:
            got = codec.decode(got_text)
        except codec.CodecError as err:
            return f"the values could not be read: {err}"
        want = codec.decode(want_text)
        inp = codec.decode(self.inputs[gid]) if self.inputs[gid] else {}
        check = self.checks[gid]
        try:
            n = len(inspect.signature(check).parameters)
            check(*(got, want, inp)[:max(2, min(3, n))])
        except AssertionError as err:
            text = str(err).strip().splitlines()
            return self._see(gid, "AssertionError: " + (text[0] if text else "a check failed"))
        except Exception as err:  # noqa: BLE001 - a value of the wrong kind fails the check
            text = str(err).strip().splitlines()
            return self._see(gid, f"{type(err).__name__}: {text[0] if text else ''}")
        return ""

    def _see(self, gid: str, why: str) -> str:
        """``why`` and the lesson section that the test cell's visible messages point to."""
        see = self.spec.test(gid).see
        return f"{why}; {see}" if see and "see lesson" not in why else why


# ------------------------------------------------------------------- grade ---

@dataclass
class Context:
    sandbox: Sandbox
    cell_timeout: float
    notebook_timeout: float
    work: Path


def prepare_out(out: Path, submissions: Path, protected: list[Path]) -> None:
    """Create OUT (or clear one the grader made before); refuse anything else."""
    out = Path(os.path.abspath(out))
    real = Path(os.path.realpath(out))
    for p in [submissions, *protected]:
        p = Path(os.path.realpath(p))
        if real == p or p.is_relative_to(real):
            raise GradeError(f"--out {out} contains {p}: refusing to write there (it would be wiped)")
        if real.is_relative_to(p) and p == Path(os.path.realpath(submissions)):
            raise GradeError(f"--out {out} is inside the submissions folder {p}: choose a folder outside it")
    if out.is_symlink():
        raise GradeError(f"--out {out} is a symlink: refusing it")
    if out.exists():
        if not out.is_dir():
            raise GradeError(f"--out {out} exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise GradeError(f"--out {out} exists and was not made by the grader (no {MARKER} in it): "
                             "refusing to delete it; give a new or empty folder")
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `python -m homework.cli grade`; the grader may empty this folder\n")


def load_specs(names: list[str] | None = None, source: Path | None = None) -> dict[str, specs.Spec]:
    src = source_dir(source)
    found = {}
    for name in assignments(src):
        if names is None or name in names:
            found[name] = specs.load(src / name / f"{name}.ipynb")
    return found


def grade(submissions: Path, out: Path | None = None, *, source: Path | None = None,
          cell_timeout: float = CELL_TIMEOUT, notebook_timeout: float = NOTEBOOK_TIMEOUT, jobs: int = 2,
          unsafe_no_sandbox: bool = False, limits: Limits | None = None, only: list[str] | None = None,
          log=print) -> GradeReport:
    submissions = Path(os.path.realpath(submissions))
    if not submissions.is_dir():
        raise GradeError(f"no folder of submissions at {submissions}")
    src = source_dir(source)
    out = Path(out) if out is not None else BUILD_DIR / "graded"
    sandbox = Sandbox(ROOT / "course_utils", limits or Limits(), unsafe=unsafe_no_sandbox)  # before touching OUT
    all_specs = load_specs(only, source)
    if not all_specs:
        raise GradeError(f"no homework found in {src} (expected hwNN/hwNN.ipynb)")
    report = GradeReport(Path(os.path.abspath(out)), [], sorted(all_specs))
    todo = collect(submissions, sorted(all_specs), report)
    if not todo:
        raise GradeError(no_submissions(submissions, sorted(all_specs)))
    prepare_out(out, submissions, [ROOT, src, ROOT / "course_utils"])
    out = Path(os.path.abspath(out))
    if unsafe_no_sandbox:
        log("WARNING: --unsafe-no-sandbox: student code runs with your rights, unconfined; trusted notebooks only")
    usable = {}
    for name, spec in all_specs.items():
        if spec.problems:
            report.attention += [f"{name} cannot be graded: {p}" for p in spec.problems]
        else:
            usable[name] = spec
    secret = secrets.token_bytes(32)
    judges = {name: Judge(spec, secret) for name, spec in usable.items()}
    work = Path(tempfile.mkdtemp(prefix="homework-grade-"))
    os.chmod(work, 0o700)
    ctx = Context(sandbox, cell_timeout, notebook_timeout, work)
    slots = _Slots(jobs)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            references = dict(zip(usable, pool.map(lambda n: _reference(usable[n], judges[n], ctx, slots),
                                                   usable)))
            for name, (ref, seconds) in references.items():
                bad = [t.gid for t in usable[name].tests if t.gid not in ref.values]
                if bad:
                    report.attention.append(f"{name}: the instructor notebook gave no values for "
                                            + ", ".join(f"{g} ({ref.errors.get(g, '?')})" for g in bad))
                log(f"reference {name}: {seconds:.1f} s")
            results = list(pool.map(lambda s: _grade_one(s, usable, judges, references, ctx, slots, log), todo))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for sub, tests, seconds in results:
        key = (sub.student, sub.assignment)
        spec = all_specs[sub.assignment]
        report.status[key] = sub.status
        report.notes[key] = sub.notes
        report.seconds[key] = seconds
        report.tests += tests
        report.scores[key] = (sum(t.points for t in tests), spec.max_score)
    for student in report.students:
        for name in report.assignments:
            key = (student, name)
            if key not in report.scores:
                report.status[key] = "missing"
                report.scores[key] = (0.0, all_specs[name].max_score)
    (out / "logs").mkdir(exist_ok=True)
    for sub, _, _ in results:
        if getattr(sub, "log", ""):
            (out / "logs" / f"{sub.student}-{sub.assignment}.log").write_text(sub.log, encoding="utf-8")
    write_reports(report)
    return report


def no_submissions(submissions: Path, names: list[str]) -> str:
    """Why DIR holds nothing to grade, with the expected layout and what was found instead."""
    why = f"no submission in {submissions} in the expected layout {LAYOUT} (DIR = {submissions}); nothing was graded"
    try:
        entries = sorted(e for e in os.listdir(submissions) if not e.startswith("."))
    except OSError:
        entries = []
    if not entries:
        return why + ": the folder is empty"
    flat = [e for e in entries if e in names]
    if flat:
        return why + (f": {flat[0]}/ lies directly in DIR, one level too shallow; "
                      f"put each student's homework folders in a folder of their own, DIR/<student>/{flat[0]}/")
    for entry in entries[:200]:
        if _real_dir(submissions / entry):
            hint = _deeper(submissions / entry, names)
            if hint:
                return why + ": " + hint.strip(" ()").replace("so give", "give")
    return why + f": found {', '.join(map(_short, entries[:5]))}{' ...' if len(entries) > 5 else ''}"


class _Slots:
    """Worker slots (one sandbox uid each)."""

    def __init__(self, n: int):
        self._free = list(range(max(1, n)))
        self._lock = threading.Condition()

    def __enter__(self) -> int:
        with self._lock:
            while not self._free:
                self._lock.wait()
            return self._free.pop(0)

    def release(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)
            self._lock.notify()


def _with_slot(slots: _Slots, fn):
    slot = slots.__enter__()
    try:
        return fn(slot)
    finally:
        slots.release(slot)


def _reference(spec: specs.Spec, judge: Judge, ctx: Context, slots: _Slots) -> tuple[Outcome, float]:
    start = time.monotonic()
    cells = [c for c in spec.cells if c["kind"] != "test"]
    empty = Path(tempfile.mkdtemp(prefix="ref-", dir=ctx.work))
    os.chmod(empty, 0o755)
    outcome = _with_slot(slots, lambda slot: execute(cells, spec, judge.inputs, ctx, slot, empty, []))
    return outcome, time.monotonic() - start


def _grade_one(sub: Submission, usable, judges, references, ctx: Context, slots: _Slots, log):
    start = time.monotonic()
    spec = usable.get(sub.assignment)
    all_tests = []
    if spec is None:
        sub.notes.append("this homework cannot be graded (see the warnings): scored 0")
        return sub, [], 0.0
    tests = [TestResult(sub.student, sub.assignment, t.gid, 0.0, t.points, "not graded") for t in spec.tests]
    if sub.status != "graded" or sub.notebook is None:
        for t in tests:
            t.error = f"not graded: {sub.status}"
        return sub, tests, 0.0
    cells, notes = parse_cells(sub.notebook, spec)
    sub.notes += notes
    if cells is None:
        sub.status = "unreadable"
        for t in tests:
            t.error = "not graded: unreadable notebook"
        return sub, tests, 0.0
    files_dir = Path(tempfile.mkdtemp(prefix="sub-", dir=ctx.work))
    os.chmod(files_dir, 0o755)
    for name, content in sub.files.items():
        (files_dir / name).write_bytes(content)
        os.chmod(files_dir / name, 0o644)
    judge = judges[sub.assignment]
    log(f"grading {sub.student}/{sub.assignment} ...")
    outcome = _with_slot(slots, lambda slot: execute(cells, spec, judge.inputs, ctx, slot, files_dir,
                                                     sorted(sub.files)))
    shutil.rmtree(files_dir, ignore_errors=True)
    sub.notes += outcome.notes
    sub.log = outcome.log  # type: ignore[attr-defined]
    ref = references[sub.assignment][0]
    for t, result in zip(spec.tests, tests):
        if t.gid not in ref.values:
            result.error = "not graded: the instructor's notebook gave no reference values"
            continue
        if t.gid not in outcome.values:
            result.error = outcome.errors.get(t.gid, "no values")
            continue
        why = judge.judge(t.gid, outcome.values[t.gid], ref.values[t.gid])
        result.error = why
        result.points = 0.0 if why else t.points
    all_tests = tests
    return sub, all_tests, time.monotonic() - start


# ----------------------------------------------------------------- reports ---

_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def cell_text(value) -> str:
    """A CSV field that no spreadsheet evaluates: one line, and a leading ' before = + - @ etc."""
    text = " ".join(str(value).split()) if not isinstance(value, (int, float)) else f"{value:g}"
    if isinstance(value, str) and text.startswith(_FORMULA):
        text = "'" + text
    return text


def write_reports(report: GradeReport) -> None:
    out = report.out
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student_id", "assignment", "score", "max_score", "status"])
        for s in report.students:
            for a in report.assignments:
                score, top = report.scores[(s, a)]
                w.writerow([cell_text(s), a, f"{score:g}", f"{top:g}", cell_text(report.status[(s, a)])])
    with open(out / "feedback.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "assignment", "test", "points", "max_points", "passed", "error"])
        for t in report.tests:
            w.writerow([cell_text(t.student), t.assignment, cell_text(t.test), f"{t.points:g}", f"{t.max_points:g}",
                        int(t.points >= t.max_points), cell_text(t.error[:600])])
    with open(out / "notes.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "assignment", "note"])
        for (s, a), notes in sorted(report.notes.items()):
            for n in notes:
                w.writerow([cell_text(s), a, cell_text(n[:500])])
        for n in report.attention:
            w.writerow(["", "", cell_text(n[:500])])
    esc = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>Homework feedback</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}.ok{background:#e6f4e6}"
             ".bad{background:#fbe3e3}pre{margin:0;white-space:pre-wrap}</style>",
             "<h1>Homework feedback</h1>", f"<pre>{esc(report.table())}</pre>"]
    if report.attention:
        parts.append("<h2>Needs attention</h2><ul>" + "".join(f"<li>{esc(a)}</li>" for a in report.attention) + "</ul>")
    for s in report.students:
        for a in report.assignments:
            rows = [t for t in report.tests if (t.student, t.assignment) == (s, a)]
            score, top = report.scores[(s, a)]
            parts.append(f"<h2>{esc(s)} / {esc(a)}: {score:g} of {top:g} ({esc(report.status[(s, a)])})</h2>")
            for n in report.notes.get((s, a), []):
                parts.append(f"<p>note: {esc(n)}</p>")
            if rows:
                parts.append("<table><tr><th>test</th><th>points</th><th>error</th></tr>")
                for t in rows:
                    cls = "ok" if t.points >= t.max_points else "bad"
                    parts.append(f"<tr class='{cls}'><td>{esc(t.test)}</td><td>{t.points:g}/{t.max_points:g}</td>"
                                 f"<td><pre>{esc(t.error)}</pre></td></tr>")
                parts.append("</table>")
    (out / "feedback.html").write_text("\n".join(parts) + "\n", encoding="utf-8")


def nb_from_release(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)
