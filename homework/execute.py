"""Run a list of steps (a submission's cells and probes) in the sandbox; collect what it reports.

``run_steps`` writes ``runner.py``, ``codec.py`` and ``plan.json`` into a fresh folder, starts
the runner in the sandbox (``homework.sandbox``) with a pipe as its channel, and reads the
channel with deadlines: a step gets ``cell_timeout`` seconds (the runner interrupts it
itself) plus a grace period, after which the whole sandbox is killed; the run as a whole gets
``notebook_timeout`` seconds. The channel is read up to a byte limit; the submission's own
output goes to a log file that the file-size limit bounds. The process group is killed at the
end whatever happened, so nothing the submission started survives (its PID namespace dies too).
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from homework.sandbox import HERE, Sandbox

GRACE = 5  # seconds after a step's time limit before the sandbox is killed
START_TIMEOUT = 120  # seconds for the runner to start (IPython import) on a loaded machine
MAX_CHANNEL = 48 * 1024**2  # bytes the grader reads from one run's channel
LOG_KEEP = 64 * 1024  # bytes of a run's output kept for the instructor


@dataclass
class RunResult:
    values: dict[str, str] = field(default_factory=dict)  # test -> encoded values
    errors: dict[int, str] = field(default_factory=dict)  # step -> error text
    ended: set[int] = field(default_factory=set)  # steps that finished (with or without an error)
    died_at: int | None = None  # step during which the run stopped, if it did not finish
    why: str = ""  # how it stopped
    log: str = ""
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return self.died_at is None and not self.why


def run_steps(sandbox: Sandbox, slot: int, steps: list[dict], files_dir: Path, files: list[str],
              cell_timeout: float, notebook_timeout: float, work: Path) -> RunResult:
    start = time.monotonic()
    grader_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    os.chmod(grader_dir, 0o755)
    for name in ("runner.py", "codec.py"):
        shutil.copyfile(HERE / name, grader_dir / name)
        os.chmod(grader_dir / name, 0o644)
    plan = {"cell_timeout": cell_timeout,
            "steps": [{k: v for k, v in s.items() if k in ("kind", "source", "test", "inputs")} for s in steps]}
    (grader_dir / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    os.chmod(grader_dir / "plan.json", 0o644)
    argv, env = sandbox.command(slot, grader_dir, files_dir, files)
    read_fd, write_fd = os.pipe()
    argv = [*argv, str(write_fd)]
    log_path = grader_dir.parent / (grader_dir.name + ".log")
    result = RunResult()
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    pass_fds=(write_fd,), start_new_session=True, env=env or None,
                                    cwd=str(files_dir), preexec_fn=sandbox.preexec())
        finally:
            os.close(write_fd)
        try:
            _read(proc, read_fd, result, steps, cell_timeout, start + notebook_timeout)
        finally:
            os.close(read_fd)
            _kill(proc)
    with open(log_path, "rb") as fh:
        result.log = fh.read(LOG_KEEP).decode("utf-8", "replace")
    shutil.rmtree(grader_dir, ignore_errors=True)
    log_path.unlink(missing_ok=True)
    result.seconds = time.monotonic() - start
    return result


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read(proc, fd, result: RunResult, steps, cell_timeout, notebook_deadline) -> None:
    buffer, total, current, ready, done = b"", 0, None, False, False
    step_deadline = time.monotonic() + START_TIMEOUT
    while not done:
        now = time.monotonic()
        deadline = min(step_deadline, notebook_deadline)
        if now >= deadline:
            result.died_at = current
            result.why = ("the notebook ran past its time limit" if now >= notebook_deadline else
                          "a cell ran past its time limit and did not stop when interrupted" if ready else
                          "the sandbox did not start in time")
            return
        readable, _, _ = select.select([fd], [], [], min(1.0, deadline - now))
        if not readable:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:  # the runner is gone
            result.died_at = current
            code = proc.wait(timeout=30)
            result.why = f"the kernel died (exit status {code})" if code else "the kernel exited"
            return
        total += len(chunk)
        if total > MAX_CHANNEL:
            result.died_at, result.why = current, "the notebook sent more data than the grader reads"
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            try:
                msg = json.loads(line)
                event = msg["event"]
            except (ValueError, KeyError, TypeError):
                continue  # not the runner's (a submission may write here too: it only hurts itself)
            if not isinstance(msg, dict):
                continue
            step = msg.get("step")
            if event == "ready":
                ready = True
                step_deadline = time.monotonic() + START_TIMEOUT
            elif event == "start" and isinstance(step, int) and 0 <= step < len(steps):
                current = step
                step_deadline = time.monotonic() + cell_timeout + GRACE
            elif event == "end" and isinstance(step, int):
                result.ended.add(step)
                if msg.get("error"):
                    result.errors[step] = str(msg["error"])[:300]
                step_deadline = time.monotonic() + cell_timeout + GRACE
            elif event == "values" and isinstance(step, int) and 0 <= step < len(steps):
                test = steps[step].get("test")
                if test and test == msg.get("test") and isinstance(msg.get("values"), str):
                    result.values.setdefault(test, msg["values"])
            elif event == "done":
                done = True
