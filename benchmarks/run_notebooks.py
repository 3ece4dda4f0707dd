"""Run every lesson notebook headless in a fresh kernel; report wall time and peak memory.

    python benchmarks/run_notebooks.py [NOTEBOOK ...] [--threads N] [--write] [--update-readme]
                                       [--compare]
    ./course bench ...                      (the same, from the course's venv)

Each notebook runs in its own subprocess (``--one NOTEBOOK``), which starts one
kernel with nbclient, executes the notebook top to bottom and writes its
measurements to a JSON file. The parent prints a markdown table:

* wall time: from the moment the fresh kernel is ready to the end of the last
  code cell (kernel start-up, about a second, is not counted);
* peak memory: the peak resident set size of the kernel process, read from the
  operating system (see ``_kernel_peak_rss_mb``).

``--write`` stores the executed notebook (outputs, execution counts 1..n) back
in place, for refreshing the committed outputs; ``--update-readme`` rewrites
the syllabus table of README.md between ``<!-- syllabus:start -->`` and
``<!-- syllabus:end -->``. ``--threads N`` sets OMP_NUM_THREADS, MKL_NUM_THREADS
and COURSE_THREADS for the kernels (torch reads OMP_NUM_THREADS at start-up).

``--compare`` checks that the committed outputs reproduce: it compares the text each
code cell prints (streams and text results, not figures) in the fresh run with the
text committed in the notebook, after masking what is a clock reading and nothing
else (elapsed times, rates such as 11.8 step/s, durations such as 17.0 ms; see
``mask_clock``), and lists every line that differs. A cell that prints wall-clock
figures in unlabelled columns is marked ``# NBVAL_IGNORE_OUTPUT`` (nbval's own marker;
``--nbval-lax`` ignores it): its text is compared with every number masked. A
notebook whose text differs counts as failed. Run it with the committed settings (seed 0, ``--threads 1``,
COURSE_FAST unset).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LESSON_GLOB = "[0-9]*.ipynb"
START, END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"
HEADER = ["#", "notebook", "idea", "wall time (s)", "peak memory (MB)"]
TBD = "tbd"


# --------------------------------------------------------------------------- one notebook
def _kernel_peak_rss_mb() -> float | None:
    """Peak resident memory of the kernel that this process started and has reaped.

    nbclient runs the notebook in a separate kernel process (``python -m
    ipykernel_launcher``), a child of this process, so this process's own memory
    says nothing about the notebook. ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is
    the largest peak RSS ("high-water mark", kept by the kernel of the operating
    system, so no short spike is missed as it would be by polling) among the
    children this process has waited for, and among their own waited-for children.
    It is valid here because
      * this process is a fresh subprocess whose only child is that one kernel,
      * it is read after nbclient has shut the kernel down and jupyter_client has
        reaped it (Popen.wait), which is when the kernel's figure is added.
    It is a maximum over processes, not a sum: were a notebook to start worker
    processes, the figure would be that of the largest one (the lessons start none).
    Units: KiB on Linux, bytes on macOS. Returns None where there is no
    ``resource`` module (Windows).
    """
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _current_env_kernel_manager():
    """An nbclient kernel manager that runs this interpreter's ipykernel, like nbval's
    --nbval-current-env: a user-level "python3" kernel spec can point elsewhere."""
    import ipykernel.kernelspec
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from traitlets import default

    class CurrentEnvSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(resource_dir=ipykernel.kernelspec.RESOURCES,
                              **ipykernel.kernelspec.get_kernel_dict())

    class CurrentEnvKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self):
            return CurrentEnvSpecs(data_dir=self.data_dir)

    return CurrentEnvKernelManager


def run_one(path: Path, write: bool, timeout: int, compare: bool = False) -> dict:
    """Execute one notebook in a fresh kernel; return its measurements."""
    import copy

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    committed = copy.deepcopy(nb) if compare else None
    marks: dict[str, float] = {}
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        kernel_manager_class=_current_env_kernel_manager(),
        resources={"metadata": {"path": str(path.parent)}},  # cwd: ../images/ paths work
        record_timing=False,  # no per-cell timestamps in committed notebooks
        on_notebook_start=lambda **_: marks.setdefault("start", time.perf_counter()),
        on_cell_executed=lambda **_: marks.__setitem__("end", time.perf_counter()),
    )
    error = None
    try:
        client.execute()
    except Exception as err:  # a failing cell, a timeout, a dead kernel
        error = f"{type(err).__name__}: {err}"
    result = {
        "notebook": str(path),
        "ok": error is None,
        "error": error,
        "wall_s": marks.get("end", marks.get("start", 0.0)) - marks.get("start", 0.0),
        "peak_mb": _kernel_peak_rss_mb(),
        "title": notebook_title(nb),
    }
    if error is None and (compare or write):
        compact_streams(nb)  # as stored: what --write keeps is what --compare checks
        if compare:
            result["differences"] = compare_outputs(committed, nb)
            result["cells_compared"] = sum(1 for c in committed.cells if c.cell_type == "code")
        if write:
            nbformat.write(nb, path)
    return result


# What varies from run to run on the same machine: clock readings, never a model's numbers.
_CLOCK = [
    (re.compile(r"\b\d+(?::\d\d){1,2}\b"), "<clock>"),                  # tqdm's 00:42, 1:02:03
    (re.compile(r"\?(?=\s*(?:step|it|s)/)"), ""),                           # tqdm's ?it/s before a rate
    # tqdm pads a rate to a fixed width: the padding goes with the number.
    (re.compile(r" *\d+(?:\.\d+)?\s*(?:steps?/s|it/s|s/it|s/step)"), " <rate>"),
    (re.compile(r" *\d+(?:\.\d+)?\s*(?:ms|µs|us|ns|s)\b"), " <time>"),
]


def mask_clock(line: str) -> str:
    """``line`` with its clock readings replaced by placeholders.

    >>> mask_clock("fixed: 100%|##| 500/500 [00:42<00:00, 11.81step/s, loss=0.885]")
    'fixed: 100%|##| 500/500 [<clock><<clock>, <rate>, loss=0.885]'
    >>> mask_clock("took 17.0 ms for the GRU, exact match 0.95 on 30 words")
    'took <time> for the GRU, exact match 0.95 on 30 words'
    """
    for pattern, placeholder in _CLOCK:
        line = pattern.sub(placeholder, line)
    return line


TIMED = "# NBVAL_IGNORE_OUTPUT"  # nbval's marker for "this output changes from run to run"
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def is_timed(cell) -> bool:
    """A cell marked ``# NBVAL_IGNORE_OUTPUT``: it prints wall-clock figures in columns
    that no unit names (a table of ms per step), so its numbers are not compared."""
    return any(line.strip() == TIMED for line in cell.get("source", "").splitlines())


def mask_numbers(line: str) -> str:
    """``line`` with every number replaced: for the text of a timed cell, whose words,
    labels and layout are still compared.

    >>> mask_numbers("decoder-only   50,963   10.0   0.71")
    'decoder-only   <n>   <n>   <n>'
    """
    return _NUMBER.sub("<n>", mask_clock(line))


def cell_text(cell) -> list[str]:
    """The text lines a code cell shows: its streams and the text of its results."""
    lines: list[str] = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            # A figure's text/plain is its repr (an address): the figure is not compared.
            if any(key.startswith("image/") for key in data):
                continue
            text = data.get("text/plain", "")
        elif kind == "error":
            text = f"{out.get('ename')}: {out.get('evalue')}"
        else:
            continue
        text = "".join(text) if isinstance(text, list) else text
        lines.extend(text.splitlines())
    return lines


def compare_outputs(committed, executed) -> list[dict]:
    """The code cells whose text, clock readings masked, differs between two runs of a
    notebook: one dict per such cell, with its index, the first few differing lines of
    each side and the number of lines that differ."""
    import difflib

    differences = []
    for index, (old, new) in enumerate(zip(committed.cells, executed.cells)):
        if old.cell_type != "code":
            continue
        mask = mask_numbers if is_timed(old) else mask_clock
        a = [mask(line) for line in cell_text(old)]
        b = [mask(line) for line in cell_text(new)]
        if a == b:
            continue
        diff = [line for line in difflib.unified_diff(a, b, lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        differences.append({"cell": index, "lines": len(diff), "diff": diff[:12]})
    return differences


def compact_streams(nb):
    """Store each cell's text output as a reader sees it: one stream per run, redraws resolved.

    Consecutive ``stdout`` (or ``stderr``) outputs of a cell become one, and a line that a
    carriage return redrew (a progress bar) keeps only its last frame, as JupyterLab shows
    it. The rendered notebook is unchanged; the file loses hundreds of stale frames.
    """
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                    and merged[-1].get("name") == out.get("name")):
                merged[-1]["text"] += out["text"]
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                out["text"] = re.sub(r"[^\n]*\r+(?=[^\n])", "", out["text"]).replace("\r", "")
        cell["outputs"] = merged
    return nb


def notebook_title(nb) -> str:
    """The first markdown heading of a notebook, without its #s and lesson number
    ("# 02 · Attention as a soft lookup" -> "Attention as a soft lookup")."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return re.sub(r"^\d{1,2}\s*[·.:\-–—]?\s+", "", line.lstrip("#").strip())
    return ""


# --------------------------------------------------------------------------- the table
def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in cells[1:-1]]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def lesson_number(path: str | Path) -> str:
    return Path(path).stem.split("_", 1)[0]


def format_cells(result: dict, idea: str) -> list[str]:
    path = Path(result["notebook"])
    try:
        rel = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        rel = path.as_posix()
    if result["ok"]:
        wall = f"{result['wall_s']:.{1 if result['wall_s'] < 10 else 0}f}"
        peak = TBD if result["peak_mb"] is None else f"{result['peak_mb']:.0f}"
    else:
        wall = peak = "failed"
    idea = re.sub(r"(?<!\\)\|", r"\\|", idea)  # a | inside a cell, escaped once
    return [lesson_number(path), f"[{path.stem}]({rel})", idea, wall, peak]


def markdown_table(rows: list[list[str]]) -> str:
    return "\n".join([_row(HEADER), _row(["---"] * len(HEADER)), *map(_row, rows)])


def update_syllabus(text: str, results: list[dict], footnote: str) -> str:
    """Return README ``text`` with the syllabus table updated from ``results``.

    Rows are keyed by lesson number (the ``#`` column). A row's idea is kept
    when written by hand, else filled with the notebook's title; rows of
    notebooks that were not run, or failed, are left as they are.
    """
    if START not in text or END not in text:
        raise ValueError(f"README.md has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    block, tail = rest.split(END, 1)
    rows: dict[str, list[str]] = {}
    for line in block.splitlines():
        if line.lstrip().startswith("|"):
            cells = _split_row(line)
            if cells and cells[0] not in ("#", "") and not set(cells[0]) <= set("-: "):
                rows[cells[0]] = (cells + [TBD] * len(HEADER))[: len(HEADER)]
    for result in results:
        if not result["ok"]:
            continue
        number = lesson_number(result["notebook"])
        old_idea = rows.get(number, [""] * len(HEADER))[2]
        idea = old_idea if old_idea not in ("", TBD) else (result["title"] or TBD)
        rows[number] = format_cells(result, idea)
    table = markdown_table([rows[k] for k in sorted(rows)])
    return f"{head}{START}\n{table}\n\n{footnote}\n{END}{tail}"


def machine_line(threads: int | None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "?"
    threads_text = (f"{threads} thread{'s' * (threads != 1)}" if threads
                    else f"default threads, {os.cpu_count()} CPUs")
    return (f"{cpu}, {threads_text}, torch {torch}, Python {platform.python_version()}, "
            f"{dt.date.today().isoformat()}")


def reproduction_report(results: list[dict]) -> str:
    """What ``--compare`` found, a line per notebook, then the differing lines."""
    lines = ["Committed outputs against this run (text of every code cell, clock readings masked):"]
    for r in results:
        name = Path(r["notebook"]).name
        if "differences" not in r:
            lines.append(f"- {name}: not compared ({r.get('error') or 'no run'})"[:300])
            continue
        diffs = r["differences"]
        same = r["cells_compared"] - len(diffs)
        lines.append(f"- {name}: {same} of {r['cells_compared']} code cells print the committed text"
                     + ("" if not diffs else f"; {len(diffs)} differ"))
        for d in diffs:
            lines.append(f"    cell {d['cell']} ({d['lines']} lines differ):")
            lines.extend(f"      {line[:160]}" for line in d["diff"])
    return "\n".join(lines)


# --------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help=f"notebooks to run (default: notebooks/{LESSON_GLOB})")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true",
                        help="store the executed notebooks (outputs) in place")
    parser.add_argument("--threads", type=int, help="torch threads for the kernels")
    parser.add_argument("--update-readme", action="store_true",
                        help="update the README syllabus table with the measurements")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--compare", action="store_true",
                        help="check that each notebook prints its committed text (clock readings masked)")
    args = parser.parse_args(argv)

    if args.one is not None:
        result = run_one(args.one, args.write, args.timeout, args.compare)
        if args.result:
            args.result.write_text(json.dumps(result))
        else:
            print(json.dumps(result))
        return 0 if result["ok"] else 1

    if (args.write or args.compare) and os.environ.get("COURSE_FAST") == "1":
        parser.error(f"--{'write' if args.write else 'compare'} is about the committed outputs, "
                     "which come from the normal run: unset COURSE_FAST")
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob(LESSON_GLOB))
    if not notebooks:
        parser.error(f"no notebooks to run: none given and none matches notebooks/{LESSON_GLOB}")

    env = dict(os.environ)
    # ipykernel's inline backend draws the figures stored by --write; an inherited
    # MPLBACKEND=Agg would replace it and leave the notebooks without figures.
    env.pop("MPLBACKEND", None)
    # Text progress bars: a stored tqdm widget would show its first frame (0 %) forever.
    env.setdefault("COURSE_PROGRESS", "text")
    if args.threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "COURSE_THREADS"):
            env[name] = str(args.threads)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, nb in enumerate(notebooks):
            out = Path(tmp) / f"{i}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(nb),
                   "--result", str(out), "--timeout", str(args.timeout)]
            if args.write:
                cmd.append("--write")
            if args.compare:
                cmd.append("--compare")
            print(f"running {nb} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
            if out.exists():
                result = json.loads(out.read_text())
            else:
                result = {"notebook": str(nb), "ok": False, "wall_s": 0.0, "peak_mb": None,
                          "title": "", "error": f"runner exited with {proc.returncode}"}
            if result["error"]:
                print(f"  FAILED: {result['error'][:2000]}", file=sys.stderr)
            if result.get("differences"):
                result["ok"] = False
            results.append(result)

    print(markdown_table([format_cells(r, r["title"]) for r in results]))
    footnote = (f"Measured with `./course bench{f' --threads {args.threads}' if args.threads else ''}`"
                f" on {machine_line(args.threads)}. Wall time: first to last cell in a fresh kernel; "
                "peak memory: the kernel process's peak resident set size (MB = 2^20 bytes).")
    print(f"\n{footnote}")
    if args.update_readme:
        README.write_text(update_syllabus(README.read_text(encoding="utf-8"), results, footnote),
                          encoding="utf-8")
        print(f"updated the syllabus table in {README.relative_to(ROOT)}", file=sys.stderr)
    if args.compare:
        print("\n" + reproduction_report(results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
