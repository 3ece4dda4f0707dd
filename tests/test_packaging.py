"""The course's plumbing agrees with itself: pyproject.toml, environment.yml, binder/,
README commands, .ci/run, the `course` script, the syllabus table, and the notebook
benchmark's measurements."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

from benchmarks import run_notebooks

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LESSONS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))

CONDA_TO_PIP = {"pytorch": "torch"}
NOT_PYTHON_PACKAGES = {"python", "pip"}


def norm(name: str) -> str:
    """PEP 503 form, with conda-forge's names mapped to PyPI's."""
    name = re.sub(r"[-_.]+", "-", name).lower()
    return CONDA_TO_PIP.get(name, name)


def conda_specs(path: Path) -> dict[str, str]:
    """{normalised name: version constraint} of a conda environment file's conda packages."""
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert env["channels"] == ["conda-forge"], f"{path.name}: conda-forge only"
    specs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the `pip:` section
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep.strip())
        assert match, f"{path.name}: cannot read {dep!r}"
        name, spec = match.groups()
        specs[norm(name)] = spec.replace(" ", "")
    return specs


def pip_specs(requirements: list[str]) -> dict[str, str]:
    specs = {}
    for line in requirements:
        req = Requirement(line)
        specs[norm(req.name)] = ",".join(sorted(str(s) for s in req.specifier))
    return specs


def canonical(spec: str) -> str:
    return ",".join(sorted(s for s in spec.split(",") if s))


def fenced_command(marker: str) -> str:
    """The single line of the fenced code block right after ``marker`` in the README."""
    match = re.search(re.escape(marker) + r"\s*\n```[a-z]*\n(.*?)\n```", README, re.S)
    assert match, f"README.md: no fenced block after {marker}"
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"README.md: the block after {marker} should hold one command, got {lines}"
    return lines[0].strip()


# --------------------------------------------------------------------------- dependencies
def test_environment_yml_names_the_same_packages_as_pyproject():
    project = PYPROJECT["project"]
    pip = pip_specs(project["dependencies"] + project["optional-dependencies"]["dev"])
    conda = conda_specs(ROOT / "environment.yml")
    python = conda.pop("python")
    for name in NOT_PYTHON_PACKAGES - {"python"}:
        conda.pop(name, None)
    assert sorted(conda) == sorted(pip), (
        f"only in environment.yml: {sorted(set(conda) - set(pip))}; "
        f"only in pyproject.toml: {sorted(set(pip) - set(conda))}")
    differ = {n: (conda[n], pip[n]) for n in pip if canonical(conda[n]) != canonical(pip[n])}
    assert not differ, f"version constraints differ (environment.yml, pyproject.toml): {differ}"
    assert python == project["requires-python"].replace(" ", "")


def test_environment_yml_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert env["name"] == "attention-course"
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_sections and any(line.startswith("-e .") for line in pip_sections[0]), pip_sections


def test_binder_environment_is_a_subset_with_every_runtime_dependency():
    binder = conda_specs(ROOT / "binder" / "environment.yml")
    full = conda_specs(ROOT / "environment.yml")
    runtime = pip_specs(PYPROJECT["project"]["dependencies"])
    assert set(runtime) <= set(binder), f"binder lacks {sorted(set(runtime) - set(binder))}"
    assert set(binder) <= set(full), f"binder has extra {sorted(set(binder) - set(full))}"
    differ = {n: (binder[n], full[n]) for n in binder
              if n != "python" and canonical(binder[n]) != canonical(full[n])}
    assert not differ, f"binder/environment.yml and environment.yml disagree: {differ}"
    assert re.fullmatch(r"=3\.1\d", binder["python"]), "repo2docker wants an exact Python version"
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK) and "pip install" in post_build.read_text()


def test_pyproject_packages_only_course_utils_with_ranges_not_pins():
    project = PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["packages"] == ["course_utils"]
    assert project["requires-python"] == ">=3.10"
    for line in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(line)
        assert req.specifier, f"{line}: give a lower bound"
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{line}: a range, not a pin"
    torch = next(Requirement(r) for r in project["dependencies"] if r.startswith("torch"))
    assert "2.2" in torch.specifier and "2.13.0" in torch.specifier, torch


# --------------------------------------------------------------------------- commands
def test_ci_runs_exactly_the_readme_test_and_seed_commands():
    test, seeds = fenced_command("<!-- test-command -->"), fenced_command("<!-- seeds-command -->")
    assert (test, seeds) == ("./course test", "./course seeds")
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands[-2:] == [test, seeds], f".ci/run ends with {commands[-2:]!r}, README says {[test, seeds]!r}"
    assert sum("./course" in line for line in commands) == 2, ".ci/run should call ./course twice"
    assert any("torch==2.13.0" in line for line in commands), ".ci/run installs the CPU build first"


def dry_run(*args: str, **env: str) -> list[list[str]]:
    """The pytest commands that `./course ARGS` would run (COURSE_DRY_RUN=1), split into words."""
    out = subprocess.run([str(ROOT / "course"), *args], capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, "COURSE_DRY_RUN": "1", **env}, stdin=subprocess.DEVNULL)
    return [shlex.split(line) for line in out.stdout.splitlines() if line.strip()]


def lesson_args(words: list[str]) -> list[str]:
    return sorted(w for w in words if w.endswith(".ipynb"))


def test_course_test_runs_the_tests_and_every_lesson_notebook_and_no_homework():
    (command,) = dry_run("test")
    assert "tests" in command and "--nbval-lax" in command and "--nbval-current-env" in command
    assert lesson_args(command) == [p.relative_to(ROOT).as_posix() for p in LESSONS]
    assert len(LESSONS) >= 7 and all(p.parent == ROOT / "notebooks" for p in LESSONS)
    (only,) = dry_run("test", "tests/test_data.py", "-k", "vocab")
    assert "tests" not in only and lesson_args(only) == [] and only[-3:] == ["tests/test_data.py", "-k", "vocab"]


def test_course_seeds_runs_every_lesson_fast_with_seeds_one_to_three():
    commands = dry_run("seeds")
    assert [c[1] for c in commands] == ["COURSE_SEED=1", "COURSE_SEED=2", "COURSE_SEED=3"]
    for command in commands:
        assert command[0] == "env" and "COURSE_FAST=1" in command and "--nbval-lax" in command
        assert lesson_args(command) == [p.relative_to(ROOT).as_posix() for p in LESSONS]
    assert [c[1] for c in dry_run("seeds", COURSE_SEEDS="5 7")] == ["COURSE_SEED=5", "COURSE_SEED=7"]
    bad = subprocess.run([str(ROOT / "course"), "seeds"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COURSE_DRY_RUN": "1", "COURSE_SEEDS": "one"})
    assert bad.returncode != 0 and "COURSE_SEEDS: expected seeds" in bad.stderr


def test_readme_setup_command_exists():
    command = fenced_command("<!-- setup-command -->")
    assert command == "./course open"
    script = ROOT / "course"
    assert os.access(script, os.X_OK), "course must be executable"
    out = subprocess.run([str(script), "help"], capture_output=True, text=True, timeout=30, check=True)
    assert "./course open" in out.stdout and "./course test" in out.stdout
    bad = subprocess.run([str(script), "no-such-command"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "unknown command" in bad.stderr


@pytest.mark.parametrize("script", ["course", ".ci/run", "binder/postBuild"])
def test_shell_scripts_parse(script):
    bash = shutil.which("bash")
    assert bash, "bash is needed"
    result = subprocess.run([bash, "-n", str(ROOT / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_lesson_glob_agrees():
    from slides import build

    assert run_notebooks.LESSON_GLOB == "[0-9]*.ipynb" and build.NOTEBOOK_GLOB == "notebooks/[0-9]*.ipynb"
    assert build.lesson_notebooks(ROOT) == LESSONS


# --------------------------------------------------------------------------- syllabus table
def syllabus_rows(text: str) -> list[list[str]]:
    block = text.split(run_notebooks.START, 1)[1].split(run_notebooks.END, 1)[0]
    rows = [run_notebooks._split_row(line) for line in block.splitlines() if line.startswith("|")]
    assert rows and rows[0] == run_notebooks.HEADER, rows[:1]
    return rows[2:]


def test_syllabus_table_links_every_lesson_notebook():
    rows = syllabus_rows(README)
    links = {}
    for row in rows:
        assert len(row) == len(run_notebooks.HEADER), row
        match = re.fullmatch(r"\[[^\]]+\]\(([^)]+)\)", row[1])
        if match:
            links[row[0]] = match.group(1)
    for number, link in links.items():
        assert (ROOT / link).is_file(), f"syllabus row {number} links to missing {link}"
    for path in LESSONS:
        rel = path.relative_to(ROOT).as_posix()
        assert rel in links.values(), (
            f"{rel} is not in the README syllabus table: run "
            f"`./course bench --update-readme {rel}` (or add its row by hand)")


def test_update_syllabus_keeps_ideas_and_fills_measurements():
    text = ("intro\n" + run_notebooks.START + "\n"
            + run_notebooks.markdown_table([["01", "tbd", "The bottleneck", "tbd", "tbd"],
                                            ["02", "tbd", "tbd", "tbd", "tbd"]])
            + "\n\nold footnote\n" + run_notebooks.END + "\noutro\n")
    results = [
        {"notebook": str(ROOT / "notebooks/01_bottleneck.ipynb"), "ok": True, "wall_s": 61.4,
         "peak_mb": 812.6, "title": "01 · A title", "error": None},
        {"notebook": str(ROOT / "notebooks/02_additive.ipynb"), "ok": False, "wall_s": 3.0,
         "peak_mb": 300.0, "title": "02 · Additive", "error": "boom"},
        {"notebook": str(ROOT / "notebooks/03_dot_product.ipynb"), "ok": True, "wall_s": 9.0,
         "peak_mb": None, "title": "Dot | product", "error": None},
    ]
    new = run_notebooks.update_syllabus(text, results, "new footnote")
    assert new.startswith("intro\n") and new.endswith("outro\n")
    assert "old footnote" not in new and "new footnote" in new
    rows = syllabus_rows(new)
    assert rows == [
        ["01", "[01_bottleneck](notebooks/01_bottleneck.ipynb)", "The bottleneck", "61", "813"],
        ["02", "tbd", "tbd", "tbd", "tbd"],  # failed: left as it was
        ["03", "[03_dot_product](notebooks/03_dot_product.ipynb)", r"Dot \| product", "9.0", "tbd"],  # one decimal under 10 s
    ]
    assert run_notebooks.update_syllabus(new, results, "new footnote") == new  # idempotent


def _code_cell(*texts: str, figure: bool = False):
    cell = nbformat.v4.new_code_cell("pass")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in texts]
    if figure:
        cell.outputs.append(nbformat.v4.new_output(
            "display_data", data={"image/png": "iVBOR", "text/plain": "<Figure size 640x480 with 1 Axes>"}))
    return cell


def test_compare_masks_clock_readings_and_nothing_else():
    mask = run_notebooks.mask_clock
    bar = "fixed: 100%|##| 500/500 [00:42<00:00, 11.81step/s, loss=0.885]"
    assert mask(bar) == mask("fixed: 100%|##| 500/500 [01:13<00:00,  6.80step/s, loss=0.885]")
    assert mask(bar) != mask("fixed: 100%|##| 500/500 [00:42<00:00, 11.81step/s, loss=0.886]")
    assert mask(bar) != mask("fixed:  38%|##| 575/1500 [00:42<00:00, 11.81step/s, loss=0.885]")
    assert mask("GRU 17.0 ms, attention 16.4 ms") == mask("GRU 9.5 ms, attention 30.1 ms")
    assert mask("0.56 s for 180 sentences") == mask("1.20 s for 180 sentences")
    for model_number in ("exact match 0.95 on 30-39 words", "BLEU 0.781", "12 steps", "64 heads"):
        assert mask(model_number) == model_number


def test_compare_reports_the_cells_whose_text_moved():
    old = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 01 · A lesson"),
        _code_cell("exact match 0.95\n", "took 3.1 s\n"),
        _code_cell("loss 0.41\n", figure=True),
        _code_cell("BLEU 0.78\n"),
    ])
    new = nbformat.from_dict(json.loads(json.dumps(old)))
    new.cells[1].outputs[1]["text"] = "took 9.8 s\n"              # a clock: not a difference
    new.cells[2].outputs[1]["data"]["image/png"] = "other"       # figures are not compared
    assert run_notebooks.compare_outputs(old, new) == []
    new.cells[3].outputs[0]["text"] = "BLEU 0.74\n"
    assert run_notebooks.compare_outputs(old, new) == [
        {"cell": 3, "lines": 2, "diff": ["-BLEU 0.78", "+BLEU 0.74"]}]
    report = run_notebooks.reproduction_report([
        {"notebook": "notebooks/01_a.ipynb", "cells_compared": 3,
         "differences": run_notebooks.compare_outputs(old, new)}])
    assert "01_a.ipynb: 2 of 3 code cells print the committed text; 1 differ" in report
    assert "-BLEU 0.78" in report and "+BLEU 0.74" in report


def test_notebook_title_drops_the_lesson_number():
    def title(heading: str) -> str:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell(heading + "\ntext")]
        return run_notebooks.notebook_title(nb)

    assert title("# 02 · Attention as a soft lookup") == "Attention as a soft lookup"
    assert title("## 3. Self-attention") == "Self-attention"
    assert title("# 2026 plans") == "2026 plans"
    assert title("# Multi-head attention") == "Multi-head attention"


# --------------------------------------------------------------------------- peak memory
def _notebook(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Probe"), nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def _run_one(path: Path, tmp_path: Path) -> dict:
    out = tmp_path / (path.stem + ".json")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_notebooks.py"), "--one", str(path),
                    "--result", str(out), "--timeout", "60"],
                   check=False, env=env, timeout=180, stdin=subprocess.DEVNULL, capture_output=True)
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="getrusage is POSIX")
def test_bench_measures_the_kernels_peak_memory_and_fails_on_errors(tmp_path):
    """A notebook that touches 256 MiB more than another must show about 256 MB more:
    the figure is the kernel's, not the driver's (which allocates nothing)."""
    base = _run_one(_notebook(tmp_path / "base.ipynb", "import numpy as np\nx = 1"), tmp_path)
    big = _run_one(_notebook(tmp_path / "big.ipynb",
                             "import numpy as np\nx = np.ones(256 * 2**20 // 8)\nx.sum()"), tmp_path)
    bad = _run_one(_notebook(tmp_path / "bad.ipynb", "assert 1 == 2, 'claim fails'"), tmp_path)
    assert base["ok"] and big["ok"], (base, big)
    assert 20 < base["peak_mb"] < 400, base
    assert 230 < big["peak_mb"] - base["peak_mb"] < 300, (base["peak_mb"], big["peak_mb"])
    assert 0 <= base["wall_s"] < 60 and big["title"] == "Probe"
    assert not bad["ok"] and "claim fails" in bad["error"]


@pytest.mark.slow
def test_bench_threads_override_the_course_default_in_the_kernel(tmp_path):
    """`./course bench --threads N` reaches the kernel: after cu.pick_device() torch runs N threads
    (COURSE_THREADS), while a plain run gets the course default of 1."""
    probe = "import course_utils as cu, torch\ncu.pick_device()\nprint('threads', torch.get_num_threads())"
    for args, expected in (([], "threads 1"), (["--threads", "3"], "threads 3")):
        path = _notebook(tmp_path / f"probe{len(args)}.ipynb", probe)
        env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "COURSE_THREADS")}
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_notebooks.py"), str(path), "--write",
                        *args], check=True, env=env, timeout=180, stdin=subprocess.DEVNULL, capture_output=True)
        out = nbformat.read(path, as_version=4).cells[1].outputs
        assert "".join(o.get("text", "") for o in out).strip() == expected, (args, out)


# --------------------------------------------------------------------------- package
def test_compact_streams_keeps_what_a_reader_sees():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("train()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="\rfit:   0%|  | 0/9"),
                    nbformat.v4.new_output("stream", name="stderr", text="\rfit: 100%|##| 9/9\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="loss 0.1\n")]
    nb.cells = [cell]
    outs = run_notebooks.compact_streams(nb).cells[0].outputs
    assert [(o.name, o.text) for o in outs] == [("stderr", "fit: 100%|##| 9/9\n"), ("stdout", "loss 0.1\n")]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_committed_outputs_are_compact(path):
    # `./course bench --write` stores outputs through compact_streams: no stale progress-bar frames.
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        runs = [(a.name, b.name) for a, b in zip(cell.outputs, cell.outputs[1:])
                if a.output_type == b.output_type == "stream" and a.name == b.name]
        assert not runs, f"code cell {i}: consecutive {runs[0][0]} outputs, expected them merged into one"
        assert not any("\r" in o.text for o in streams), f"code cell {i}: carriage returns (redrawn frames) stored"


def test_every_course_utils_module_stays_under_400_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (ROOT / "course_utils").glob("*.py")}
    assert len(sizes) >= 10 and "instruments.py" in sizes
    too_long = {name: n for name, n in sizes.items() if n > 400}
    assert not too_long, f"split these modules (one concern each, under 400 lines): {too_long}"


# --------------------------------------------------------------------------- lint, license
def test_ruff_passes_on_code_and_notebooks():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    result = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise", str(ROOT)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_license_states_code_mit_and_prose_cc_by():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in text and "CC BY 4.0" in text
    assert PYPROJECT["project"]["license"] == "MIT"


def test_compare_masks_every_number_of_a_cell_marked_as_timed_and_only_there():
    old = nbformat.v4.new_notebook(cells=[_code_cell("decoder-only   50,963   10.0   0.71\n"),
                                          _code_cell("decoder-only   50,963   10.0   0.71\n")])
    old.cells[0].source = run_notebooks.TIMED + "\ntable()"
    new = nbformat.from_dict(json.loads(json.dumps(old)))
    for cell in new.cells:
        cell.outputs[0]["text"] = "decoder-only   50,963   43.4   0.71\n"
    assert [d["cell"] for d in run_notebooks.compare_outputs(old, new)] == [1]  # the unmarked cell only
    new.cells[0].outputs[0]["text"] = "encoder-only   50,963   43.4   0.71\n"
    assert [d["cell"] for d in run_notebooks.compare_outputs(old, new)] == [0, 1]  # words still count
