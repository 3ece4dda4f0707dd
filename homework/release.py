"""The student release, checked for leaks; and moving the instructor sources out of the repository.

``release()`` reads every instructor notebook ``hwNN/hwNN.ipynb`` of the source folder and
writes ``build/homework/release/hwNN/hwNN.ipynb``: each ``### BEGIN SOLUTION`` ...
``### END SOLUTION`` block becomes ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` (an
answer cell without markers becomes that stub whole), each hidden block of a test cell is cut
out, outputs are cleared, and test cells are marked read-only (``editable``/``deletable``
false, as nbgrader's ``generate_assignment`` does). The nbgrader metadata stays, so the
notebooks still open in nbgrader's tools. ``check_release`` then fails if a marker, or any line
that only a hidden block or a solution contains, is still there.

The Chinese edition goes to ``build/homework/release/zh/hwNN/hwNN.ipynb`` (the same file name, so
a student submits ``<student>/hwNN/hwNN.ipynb`` in either language): the same instructor
notebook with its markdown cells taken from ``i18n/zh/hwNN.yaml`` (``i18n.translate.translated``),
then the same ``student_version`` and the same leak check, plus a check that its code cells,
all the grader reads, are exactly the English release's. A homework whose translation is
missing, stale or incomplete for this source is released in English only, with a warning.

``export_sources(dest)`` copies (or with ``move=True`` moves) the instructor notebooks to a
folder outside the repository, e.g. a private repository (docs/homework.md); moving the
repository's own sources also deletes their generated Chinese edition
(``notebooks/zh/homework/source/``), which holds the same solutions.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nbformat

from homework import BUILD_DIR, ROOT, SOURCE_DIR, assignments, source_dir
from homework.spec import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION, nbgrader_meta

MARKERS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION")
MANIFEST = "release.json"  # sha256 of each source notebook at release time
ZH = "zh"  # the Chinese student notebooks: release/zh/hwNN/hwNN.ipynb
ZH_SOURCE_DIR = ROOT / "notebooks" / ZH / "homework" / "source"  # the generated Chinese instructor notebooks
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def clear_solutions(source: str) -> str:
    lines, out, inside = source.splitlines(), [], False
    if not any(line.strip() == BEGIN_SOLUTION for line in lines):
        return "\n".join(STUB)
    for line in lines:
        text = line.strip()
        if text == BEGIN_SOLUTION:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in STUB]
        elif text == END_SOLUTION:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def clear_hidden(source: str) -> str:
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        text = line.strip()
        if text == BEGIN_HIDDEN:
            inside = True
        elif text == END_HIDDEN:
            inside = False
        elif not inside:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if meta.get("solution"):
            cell.source = clear_solutions(cell.source)
        elif meta.get("grade"):
            cell.source = clear_hidden(cell.source)
            cell.metadata["editable"] = False
            cell.metadata["deletable"] = False
    return nb


def release(out_root: Path = BUILD_DIR, source: Path | None = None, log=print) -> dict[str, Path]:
    """Write ``out_root/release/hwNN/hwNN.ipynb`` for every homework, and the Chinese edition
    ``out_root/release/zh/hwNN/hwNN.ipynb`` where its translation is current; return the English paths.

    Raises ``RuntimeError`` if there is no homework or the release would leak a solution or a hidden check.
    """
    src = source_dir(source)
    names = assignments(src)
    if not names:
        raise RuntimeError(f"no homework found in {src} (expected hwNN/hwNN.ipynb)")
    out_root = Path(out_root)
    target = out_root / "release"
    shutil.rmtree(target, ignore_errors=True)
    released = {}
    for name in names:
        nb = nbformat.read(src / name / f"{name}.ipynb", as_version=4)
        path = target / name / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(student_version(nb), path)
        released[name] = path
        log(f"released {name} -> {path}")
    problems = check_release(src, target)
    if not problems:
        zh_names = release_chinese(src, names, target, log)
        problems = [f"{ZH}/{p}" for p in check_release(src, target / ZH, zh_names)]
        problems += same_code(target, target / ZH, zh_names)
    if problems:
        shutil.rmtree(target, ignore_errors=True)
        raise RuntimeError("the student release is not safe to hand out:\n  " + "\n  ".join(problems))
    manifest = {name: sha256(src / name / f"{name}.ipynb") for name in names}
    (out_root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return released


def chinese_problems(source_nb: Path) -> list[str] | None:
    """Why ``source_nb`` has no current Chinese edition ([] if it has one; None: no translation file)."""
    from i18n import translate

    if not translate.translation_path(source_nb).exists():
        return None
    return [str(p) for p in translate.cell_problems(source_nb)]


def release_chinese(src: Path, names: list[str], target: Path, log=print) -> list[str]:
    """Write ``target/zh/hwNN/hwNN.ipynb`` for every homework with a current translation; their names."""
    from i18n import translate

    done = []
    for name in names:
        source_nb = src / name / f"{name}.ipynb"
        why = chinese_problems(source_nb)
        if why is None:
            log(f"no Chinese edition of {name}: no {translate.translation_path(source_nb).relative_to(ROOT)}")
            continue
        if why:
            log(f"WARNING: {name} released in English only: its Chinese translation is not current for "
                f"{source_nb} (python -m i18n.translate check):\n  " + "\n  ".join(why))
            continue
        nb = nbformat.read(source_nb, as_version=4)
        zh = translate.translated(nb, translate.load(translate.translation_path(source_nb)),
                                  translated_from=f"../../{name}/{name}.ipynb")
        path = target / ZH / name / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(student_version(zh), path)
        done.append(name)
        log(f"released {name} (Chinese) -> {path}")
    return done


def same_code(release_root: Path, zh_root: Path, names: list[str]) -> list[str]:
    """Problems if a Chinese student notebook's code cells are not exactly the English one's."""
    problems = []
    for name in names:
        en, zh = (nbformat.read(root / name / f"{name}.ipynb", as_version=4) for root in (release_root, zh_root))
        code = [[(c.source, c.metadata) for c in nb.cells if c.cell_type == "code"] for nb in (en, zh)]
        if code[0] != code[1]:
            problems.append(f"{ZH}/{name}: its code cells differ from the English release's")
    return problems


def _blocks(source: str) -> tuple[list[str], list[str]]:
    """(lines inside hidden or solution blocks, all other lines), stripped."""
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
    """Lines that only hidden blocks or solutions of ``source_nb`` contain (long enough to mean something)."""
    secret, public = [], []
    for cell in nbformat.read(source_nb, as_version=4).cells:
        s, p = _blocks(cell.source)
        secret += s
        public += p
    return {line for line in secret if len(line) >= 12 and line not in set(public)}


def check_release(source_root: Path, release_root: Path, names: list[str] | None = None) -> list[str]:
    """Problems that would leak answers to students; an empty list means the release is safe.

    ``names``: only these homework (default: every ``hw*/hw*.ipynb`` of the source)."""
    problems = []
    for source_nb in sorted(Path(source_root).glob("hw*/hw*.ipynb")):
        name = source_nb.parent.name
        if names is not None and name not in names:
            continue
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
        problems += [f"{name}: a hidden-check or solution line is in the release: {line!r}" for line in leaked]
        if any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"):
            problems.append(f"{name}: the release has stored outputs")
    return problems


def export_sources(dest: Path, move: bool = False, source: Path | None = None, log=print) -> list[Path]:
    """Copy (``move``: then delete from the repository) the instructor notebooks to ``dest``."""
    src = source_dir(source)
    dest = Path(dest).expanduser().resolve()
    if dest == ROOT or dest.is_relative_to(ROOT):
        raise RuntimeError(f"{dest} is inside the course repository {ROOT}: the point is to keep the sources "
                           "out of it; give a folder elsewhere (for example a private repository)")
    names = assignments(src)
    if not names:
        raise RuntimeError(f"no homework in {src}")
    written = []
    for name in names:
        target = dest / name
        if target.exists():
            raise RuntimeError(f"{target} exists already; not overwriting it")
    for name in names:
        shutil.copytree(src / name, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        written.append(dest / name / f"{name}.ipynb")
        log(f"copied {name} -> {dest / name}")
    if move:
        for name in names:
            if sha256(src / name / f"{name}.ipynb") != sha256(dest / name / f"{name}.ipynb"):
                raise RuntimeError(f"copy of {name} differs from its source; nothing deleted")
        for name in names:
            shutil.rmtree(src / name)
            log(f"removed {src / name}")
    zh_copies = [ZH_SOURCE_DIR / name for name in names if (ZH_SOURCE_DIR / name).is_dir()]
    if src == SOURCE_DIR and zh_copies:  # the generated Chinese instructor notebooks hold the same solutions
        if move:
            for folder in zh_copies:
                shutil.rmtree(folder)
                log(f"removed {folder} (its Chinese edition, same solutions)")
        else:
            log(f"note: {ZH_SOURCE_DIR} holds the Chinese edition of these notebooks, solutions included; "
                "--move removes it too")
    if src == SOURCE_DIR or move:
        log(f"from now on: export COURSE_HOMEWORK_SOURCE={dest}  (or pass --source {dest})")
    return written
