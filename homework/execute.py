"""nbgrader's ``Execute`` with a time limit per notebook and recovery from a stuck kernel.

nbgrader already runs every cell with ``allow_errors`` and interrupts a cell after
``Execute.timeout`` seconds. Two cases still lose a whole notebook in nbgrader
0.9.6: a kernel that does not stop when interrupted (a loop that catches
``KeyboardInterrupt``, a long C call) raises ``CellTimeoutError`` once the
interrupt goes unanswered, and a kernel that dies (``os._exit``, out of memory)
raises ``DeadKernelError``; either aborts the notebook, and nbgrader's own advice
is to edit the student's code by hand. ``GuardedExecute`` instead:

* records an error output in the offending cell (so its test scores zero),
* restarts the kernel and quietly re-runs the earlier cells that had run without
  an error (their outputs are kept as they were), then goes on with the next cell;
* stops starting cells once ``notebook_timeout`` seconds have passed: every cell
  left gets an error output, so no test cell can pass by not running.

An unexecuted test cell with no output would otherwise count as passed, which is
why every skipped cell gets an explicit error.
"""
from __future__ import annotations

import copy
import math
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Integer


def _error(name: str, message: str):
    return new_output("error", ename=name, evalue=message, traceback=[f"{name}: {message}"])


def _failed(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


class GuardedExecute(Execute):
    """``Execute`` that survives stuck or dead kernels and caps a notebook's total time."""

    notebook_timeout = Integer(
        240, help="Seconds for the whole notebook; cells not started by then get an error output."
    ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = time.monotonic() + self.notebook_timeout
        self._given_up = ""  # why later cells are not run, once that is decided
        return super().preprocess(nb, resources, km)

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        remaining = max(1, math.ceil(self._deadline - time.monotonic()))  # up to the deadline
        return remaining if timeout is None else min(timeout, remaining)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if not self._given_up and time.monotonic() >= self._deadline:
            self._given_up = f"the notebook used up its {self.notebook_timeout} s"
        if self._given_up:
            cell.outputs = [_error("NotRun", f"not run: {self._given_up}")]
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError) as err:
            what = "died" if isinstance(err, DeadKernelError) else "did not stop when interrupted"
            self.log.warning("Cell %d: the kernel %s; restarting it", index, what)
            cell.outputs = list(cell.get("outputs", [])) + [
                _error(type(err).__name__, f"the kernel {what} in this cell, and was restarted")]
            self._restart_and_replay(index)
            return cell, resources

    def _restart_and_replay(self, upto: int) -> None:
        """Start a fresh kernel and re-run cells[:upto] that had run without an error."""
        try:
            if self.kc is not None:
                self.kc.stop_channels()
            run_sync(self.km.restart_kernel)(now=True)
            self.start_new_kernel_client()
            for i, cell in enumerate(self.nb.cells[:upto]):
                if cell.cell_type == "code" and cell.source.strip() and not _failed(cell):
                    if time.monotonic() >= self._deadline:
                        raise TimeoutError("no time left to re-run the earlier cells")
                    self.execute_cell(copy.deepcopy(cell), i, store_history=False)  # outputs discarded
        except Exception as err:  # noqa: BLE001 - any failure here means: run nothing more
            self.log.warning("Could not restart the kernel and re-run earlier cells: %s", err)
            self._given_up = f"the kernel could not be restarted after a stuck cell ({err})"
