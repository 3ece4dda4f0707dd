"""Runs inside the sandbox: execute a submission's cells, then report what its probes return.

``python runner.py plan.json FD``, with file descriptor FD (default 3) open for writing: one JSON line per
event (``start`` and ``end`` of each step, ``values`` of each probe, ``done``). The plan (written
by ``homework.grade``) lists the steps in order: ``cell`` (a code cell of the submission, run
like a notebook cell through IPython, so magics work) and ``probe`` (a test's ``probe``
function, compiled in a copy of the notebook's namespace and called with the test's inputs).

Nothing here judges anything: the grader compares the values in its own process. Whatever
the submission does to this process (patching libraries, writing to fd 3, exiting) can only
change or lose its own values. A step that runs past ``cell_timeout`` seconds gets an
interrupt (SIGALRM); one that ignores it is killed from outside by the grader.
"""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import codec  # noqa: E402  (next to this file in the sandbox)

_CHANNEL = os.fdopen(int(sys.argv[2]) if len(sys.argv) > 2 else 3, "w", buffering=1, encoding="utf-8")
_dumps, _write, _flush = json.dumps, _CHANNEL.write, _CHANNEL.flush
MAX_ERROR = 300


def send(**message) -> None:
    try:
        _write(_dumps(message) + "\n")
        _flush()
    except Exception:  # noqa: BLE001 - the submission broke the channel: it loses its values
        os._exit(3)


class CellTimeout(BaseException):
    """Raised in a step that runs past its time."""


def _describe(err: BaseException) -> str:
    try:
        name = type(err).__name__
        text = str(err).strip().splitlines()
        return f"{name}: {text[0] if text else ''}".strip().rstrip(":")[:MAX_ERROR]
    except Exception:  # noqa: BLE001
        return "an error that could not be described"


def main(plan_path: str) -> None:
    with open(plan_path, encoding="utf-8") as fh:
        plan = json.load(fh)
    timeout = float(plan["cell_timeout"])

    def on_alarm(signum, frame):
        raise CellTimeout(f"the cell ran past the {timeout:g} s time limit and was interrupted")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails instead of killing the process

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    shell = InteractiveShell.instance(config=config)
    shell.user_ns["__name__"] = "__main__"
    send(event="ready")
    for index, step in enumerate(plan["steps"]):
        send(event="start", step=index)
        error = ""
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            if step["kind"] == "cell":
                result = shell.run_cell(step["source"], store_history=False, silent=False)
                err = result.error_before_exec or result.error_in_exec
                if err is not None:
                    error = _describe(err)
            else:
                env = dict(shell.user_ns)
                exec(compile(step["source"], f"<probe {step['test']}>", "exec"), env)  # noqa: S102
                inputs = codec.decode(step["inputs"]) if step.get("inputs") else {}
                value = env["probe"](inputs)
                signal.setitimer(signal.ITIMER_REAL, 0)
                send(event="values", step=index, test=step["test"], values=codec.encode(value))
        except BaseException as err:  # noqa: BLE001 - a probe's failure is that test's zero, nothing more
            error = _describe(err)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        send(event="end", step=index, error=error)
    send(event="done")
    _CHANNEL.close()
    os._exit(0)  # do not wait for threads the submission left running


if __name__ == "__main__":
    main(sys.argv[1])
