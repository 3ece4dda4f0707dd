"""Do the visible tests catch the mistakes an exercise is about? (issue 12, "feedback that teaches")

For every homework, ``tests/data/wrong_answers/hwNN.yaml`` holds plausible wrong answers a
student might write (an off-by-one, the softmax over the wrong axis, the scale forgotten, the
mask inverted, ...), each one the full source of an answer cell. ``catch_rates`` runs, for each
wrong answer, the notebook's provided cells and the instructor's answers up to that exercise
in a plain namespace, the wrong answer in place of the instructor's, then the **visible** part
of the exercise's test cells: the answer is *caught* when one of those raises. The instructor's
own answers must pass every visible test (so a visible test cannot simply always fail).

This is for instructors and the course's tests, never for grading: it runs the trusted
instructor notebooks and the course's own wrong answers in the current process, no sandbox.

    python -m homework.feedback            # the table: homework, wrong answers, caught
"""
from __future__ import annotations

import contextlib
import io
import re
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from homework import ROOT, assignments, source_dir
from homework import spec as specs

WRONG_DIR = ROOT / "tests" / "data" / "wrong_answers"
# "see lesson 04, section 3 'Masks: who may look at whom'" (the section's real heading)
POINTER = re.compile(r"see lesson (\d\d), section (\d+) '([^']+)'")


@dataclass
class Caught:
    gid: str
    name: str
    caught: bool
    message: str  # the first line of the visible test's error, "" when not caught


@dataclass
class Rate:
    homework: str
    results: list[Caught] = field(default_factory=list)

    @property
    def caught(self) -> int:
        return sum(r.caught for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def share(self) -> float:
        return self.caught / self.total if self.total else 1.0


def load_wrong(name: str, folder: Path = WRONG_DIR) -> dict:
    import yaml

    path = folder / f"{name}.yaml"
    if not path.is_file():
        return {"answers": [], "multiple_choice": {}}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data.setdefault("answers", [])
    data.setdefault("multiple_choice", {})
    return data


def _run(source: str, ns: dict, label: str) -> None:
    code = compile(source, label, "exec")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(code, ns)  # noqa: S102 - the course's own notebooks and wrong answers


class _TimedOut(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise _TimedOut after ``seconds`` (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def _raise(signum, frame):
        raise _TimedOut(f"did not finish within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_visible(spec: specs.Spec, gid: str, replacement: str | None = None, timeout: float = 30.0) -> str:
    """The notebook up to answer ``gid``, then its visible tests; see ``_run_visible``.

    A run that takes longer than ``timeout`` seconds counts as failed (a student would see it hang)."""
    try:
        with _time_limit(timeout):
            return _run_visible(spec, gid, replacement)
    except _TimedOut as err:
        return f"timed out: {err}"


def _run_visible(spec: specs.Spec, gid: str, replacement: str | None = None) -> str:
    """Run the notebook up to answer ``gid`` (``replacement`` in its place), then its visible tests.

    Returns "" when every visible test passed, else the first line of the first error.
    Answer cells of other exercises keep the instructor's solution; test cells of other
    exercises are not run (nothing may depend on names a test cell defines)."""
    ns: dict = {"__name__": "__main__"}
    tests = [t for t in spec.tests if t.anchor == gid]
    for i, cell in enumerate(spec.cells):
        if cell["kind"] == "test":
            continue
        source = cell["source"]
        if cell["kind"] == "answer" and cell["gid"] == gid:
            source = replacement if replacement is not None else source
            try:
                _run(source, ns, f"<{spec.name} {gid}>")
            except _TimedOut:
                raise
            except Exception as err:  # noqa: BLE001 - a wrong answer may fail on its own
                return f"the answer cell raised {type(err).__name__}: {_first(err)}"
            break
        _run(source, ns, f"<{spec.name} cell {i}>")
    else:
        raise KeyError(f"{spec.name}: no answer cell {gid!r}")
    for t in tests:
        try:
            _run(t.visible, ns, f"<{spec.name} {t.gid} visible>")
        except _TimedOut:
            raise
        except Exception as err:  # noqa: BLE001 - a failed visible test is what we count
            return f"{t.gid}: {type(err).__name__}: {_first(err)}"
    return ""


def _first(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""


def catch_rate(name: str, source: Path | None = None, folder: Path = WRONG_DIR) -> Rate:
    spec = specs.load(source_dir(source) / name / f"{name}.ipynb")
    rate = Rate(name)
    for entry in load_wrong(name, folder)["answers"]:
        why = run_visible(spec, entry["gid"], entry["code"])
        rate.results.append(Caught(entry["gid"], entry["name"], bool(why), why))
    return rate


def table(rates: list[Rate]) -> str:
    rows = [f"{'homework':<9} {'wrong answers':>13} {'caught':>7} {'share':>6}"]
    for r in rates:
        rows.append(f"{r.homework:<9} {r.total:>13} {r.caught:>7} {r.share:>6.0%}")
    total, caught = sum(r.total for r in rates), sum(r.caught for r in rates)
    rows.append(f"{'all':<9} {total:>13} {caught:>7} {caught / max(total, 1):>6.0%}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv else None) or assignments()
    rates = [catch_rate(n) for n in names]
    print(table(rates))
    for r in rates:
        for c in r.results:
            if not c.caught:
                print(f"not caught: {r.homework} {c.gid}: {c.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
