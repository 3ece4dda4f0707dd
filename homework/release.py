"""Build the nbgrader course directory and the student release; prove nothing secret leaks.

``release()`` copies ``notebooks/homework/source`` into ``build/homework/source``,
starts a fresh gradebook and runs nbgrader's ``generate_assignment`` for every
homework: solutions become ``# YOUR CODE HERE`` / ``raise NotImplementedError()``,
hidden tests are cut out (and kept, with every test cell's checksum, in
``gradebook.db``, from which autograding restores them). ``check_release`` then
reads every released notebook and fails if a hidden-test or solution marker, or
any line that only a hidden test or a solution contains, is still there.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from homework import BUILD_DIR, ROOT, SOURCE_DIR, assignments
from homework.config import nbgrader_config, write_config_file

MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION")
MANIFEST = "release.json"  # sha256 of each source notebook at release time


def prepare_environment() -> None:
    """Environment for nbgrader and the kernels it starts, even without an activated venv.

    Kernels import ``course_utils`` from this checkout (``PYTHONPATH``), and nbgrader
    finds the ``alembic`` command it calls for its database next to this Python.
    """
    for var, entry in (("PYTHONPATH", str(ROOT)), ("PATH", str(Path(sys.executable).parent))):
        parts = [p for p in os.environ.get(var, "").split(os.pathsep) if p]
        if entry not in parts:
            os.environ[var] = os.pathsep.join([entry, *parts])


def make_api(course_root: Path, **timeouts) -> NbGraderAPI:
    config = nbgrader_config(course_root, **timeouts)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def release(course_root: Path = BUILD_DIR, source_dir: Path = SOURCE_DIR, log=print) -> dict[str, Path]:
    """Generate ``course_root/release/hwNN/hwNN.ipynb`` for every homework; return their paths.

    Raises ``RuntimeError`` if nbgrader fails or the release leaks a hidden test or a solution.
    """
    prepare_environment()
    course_root = Path(course_root)
    names = assignments(source_dir)
    if not names:
        raise RuntimeError(f"no homework found in {source_dir} (expected hwNN/hwNN.ipynb)")
    for sub in ("source", "release"):
        shutil.rmtree(course_root / sub, ignore_errors=True)
    (course_root / "gradebook.db").unlink(missing_ok=True)
    course_root.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copytree(source_dir / name, course_root / "source" / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    write_config_file(course_root)
    api = make_api(course_root)
    released = {}
    for name in names:
        result = api.generate_assignment(name, force=True, create=True)
        if not result.get("success"):
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{result.get('error', '')}"
                               f"\n{result.get('log', '')}")
        released[name] = course_root / "release" / name / f"{name}.ipynb"
        log(f"released {name} -> {released[name]}")
    problems = check_release(course_root / "source", course_root / "release")
    if problems:
        raise RuntimeError("the student release is not safe to hand out:\n  " + "\n  ".join(problems))
    manifest = {name: sha256(source_dir / name / f"{name}.ipynb") for name in names}
    (course_root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return released


def _blocks(source: str) -> tuple[list[str], list[str]]:
    """(lines inside hidden-test or solution blocks, all other lines), stripped."""
    secret, public, depth = [], [], 0
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("###") and ("BEGIN HIDDEN TESTS" in text or "BEGIN SOLUTION" in text):
            depth += 1
        elif text.startswith("###") and ("END HIDDEN TESTS" in text or "END SOLUTION" in text):
            depth = max(0, depth - 1)
        elif text:
            (secret if depth else public).append(text)
    return secret, public


def secret_lines(source_nb: Path) -> set[str]:
    """Lines that only hidden tests or solutions of ``source_nb`` contain (long enough to mean something)."""
    secret, public = [], []
    for cell in nbformat.read(source_nb, as_version=4).cells:
        s, p = _blocks(cell.source)
        secret += s
        public += p
    return {line for line in secret if len(line) >= 12 and line not in set(public)}


def check_release(source_root: Path, release_root: Path) -> list[str]:
    """Problems that would leak answers to students; an empty list means the release is safe."""
    problems = []
    for source_nb in sorted(Path(source_root).glob("hw*/hw*.ipynb")):
        name = source_nb.parent.name
        released = Path(release_root) / name / source_nb.name
        if not released.is_file():
            problems.append(f"{name}: no released notebook at {released}")
            continue
        nb = nbformat.read(released, as_version=4)
        text_lines = {line.strip() for cell in nb.cells for line in cell.source.splitlines()}
        full_text = "\n".join(cell.source for cell in nb.cells)
        for marker in MARKERS:
            if marker in full_text:
                problems.append(f"{name}: the release still contains the marker '{marker}'")
        leaked = sorted(secret_lines(source_nb) & text_lines)
        problems += [f"{name}: a hidden-test or solution line is in the release: {line!r}" for line in leaked]
        if any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"):
            problems.append(f"{name}: the release has stored outputs")
    return problems
