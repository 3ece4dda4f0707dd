"""The Chinese edition, generated from the English notebooks plus one translation file each.

    python -m i18n.translate build            # write notebooks/zh/... from notebooks/... + i18n/zh/*.yaml
    python -m i18n.translate check            # exit 1 naming every missing, stale or untranslated cell
    python -m i18n.translate extract NB...    # add skeleton entries for NB's untranslated cells

One source of truth for code and outputs: a Chinese notebook is the English notebook with
only its markdown cells replaced (code cells, their outputs and execution counts are copied
as they are, so nothing is executed twice and code cannot drift). Image links
``../images/...`` (``../../../images/...`` in homework) are rewritten for the extra folder level.

The Chinese edition of ``notebooks/X`` is ``notebooks/zh/X``, for the lessons
(``notebooks/NN_*.ipynb`` -> ``notebooks/zh/NN_*.ipynb``) and for the homework instructor
notebooks (``notebooks/homework/source/hwNN/hwNN.ipynb`` ->
``notebooks/zh/homework/source/hwNN/hwNN.ipynb``, solutions and hidden checks included, like
the English source). Students never get those: ``./course homework release`` writes the
Chinese student notebooks ``build/homework/release/zh/hwNN/hwNN.ipynb`` from the instructor
source and ``i18n/zh/hwNN.yaml`` (``translated``), with the English release's stripping and
leak check (homework/release.py).

A translation file ``i18n/zh/<stem>.yaml`` holds, per English markdown cell (keyed by the
cell's nbformat ``id``), the translation and ``en``: the first 12 hex digits of the SHA-256 of
the English source it translates. When an English cell changes, its hash no longer matches and
``check`` names the stale translation, with the cell's first line, until a translator updates
``zh`` and ``en``.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
LANG = "zh"
TRANSLATIONS = ROOT / "i18n" / LANG
OUT = ROOT / "notebooks" / LANG
CJK = re.compile(r"[\u4e00-\u9fff]")
IMAGE_LINK = re.compile(r"(\]\(|src=\")((?:\.\./)+)images/")


def lessons(root: Path = ROOT) -> list[Path]:
    """The English lesson notebooks, in order."""
    return sorted((root / "notebooks").glob("[0-9]*.ipynb"))


def homework(root: Path = ROOT) -> list[Path]:
    """The English homework instructor notebooks ``notebooks/homework/source/hwNN/hwNN.ipynb``, in order."""
    found = (root / "notebooks" / "homework" / "source").glob("hw[0-9][0-9]/hw[0-9][0-9].ipynb")
    return sorted(p for p in found if p.stem == p.parent.name)


def sources(root: Path = ROOT) -> list[Path]:
    """English notebooks that have a Chinese edition: the lessons, then the homework."""
    return lessons(root) + homework(root)


def digest(text: str) -> str:
    """The version stamp of an English cell: 12 hex digits of SHA-256 of its source."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def translation_path(notebook: Path, root: Path = ROOT) -> Path:
    return root / "i18n" / LANG / f"{notebook.stem}.yaml"


def output_path(notebook: Path, root: Path = ROOT) -> Path:
    """``notebooks/X`` -> ``notebooks/zh/X``."""
    return root / "notebooks" / LANG / notebook.relative_to(root / "notebooks")


def _shown(notebook: Path, root: Path = ROOT) -> str:
    """The notebook's path for messages and file headers: relative to root when inside it."""
    try:
        return str(notebook.relative_to(root))
    except ValueError:
        return str(notebook)


def load(path: Path) -> dict[str, dict]:
    """{cell id: {"en": hash, "zh": text}} of a translation file ({} if there is none)."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cells = data.get("cells") or []
    if not isinstance(cells, list):
        raise ValueError(f"{path}: 'cells' must be a list of {{id, en, zh}} entries, got {type(cells).__name__}")
    table = {}
    for i, entry in enumerate(cells):
        if not isinstance(entry, dict) or not {"id", "en", "zh"} <= set(entry):
            raise ValueError(f"{path}: entry {i} must have the keys id, en, zh, got {entry!r:.80}")
        table[str(entry["id"])] = {"en": str(entry["en"]), "zh": entry["zh"]}
    return table


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None  # block scalars keep markdown readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def save(path: Path, notebook: Path, table: dict[str, dict], order: list[str], root: Path = ROOT) -> None:
    """Write a translation file, entries in the English notebook's cell order."""
    cells = [{"id": cid, "en": table[cid]["en"], "zh": table[cid]["zh"]} for cid in order if cid in table]
    cells += [{"id": cid, **entry} for cid, entry in table.items() if cid not in order]  # orphans last
    header = (f"# Chinese translation of {_shown(notebook, root)}: one entry per markdown cell.\n"
              f"# en = digest of the English cell it translates (python -m i18n.translate check).\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.dump({"notebook": notebook.name, "cells": cells}, Dumper=_Dumper,
                                       allow_unicode=True, sort_keys=False, width=1000), encoding="utf-8")


@dataclass
class Problem:
    notebook: str
    cell: str
    kind: str  # missing | stale | untranslated | orphan | outdated
    detail: str

    def __str__(self) -> str:
        return f"{self.notebook}: cell {self.cell}: {self.kind}: {self.detail}"


def _first_line(text: str) -> str:
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    return line[:70]


def cell_problems(notebook: Path, root: Path = ROOT, nb: nbformat.NotebookNode | None = None) -> list[Problem]:
    """Markdown cells of ``notebook`` (any path: a private homework source too) whose translation
    in ``i18n/zh/<stem>.yaml`` is missing, untranslated, stale or orphaned."""
    nb = nb if nb is not None else nbformat.read(notebook, as_version=4)
    table = load(translation_path(notebook, root))
    found, ids = [], set()
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        ids.add(cell.id)
        entry = table.get(cell.id)
        if entry is None:
            found.append(Problem(notebook.name, cell.id, "missing", _first_line(cell.source)))
        elif not isinstance(entry["zh"], str) or not CJK.search(entry["zh"]):
            found.append(Problem(notebook.name, cell.id, "untranslated", _first_line(cell.source)))
        elif entry["en"] != digest(cell.source):
            found.append(Problem(notebook.name, cell.id, "stale",
                                 f"the English cell changed since it was translated: {_first_line(cell.source)}"))
    for cid in sorted(table.keys() - ids):
        found.append(Problem(notebook.name, cid, "orphan", "no markdown cell with this id in the English notebook"))
    return found


def problems_of(notebook: Path, root: Path = ROOT) -> list[Problem]:
    """Everything that keeps ``notebook``'s Chinese edition from being complete and current."""
    found = cell_problems(notebook, root)
    out = output_path(notebook, root)
    if not found and (not out.exists() or out.read_text(encoding="utf-8") != render(notebook, root)):
        found.append(Problem(notebook.name, "-", "outdated", f"{out.relative_to(root)} differs from a fresh build: "
                                                             f"run python -m i18n.translate build"))
    return found


def localise(source: str) -> str:
    """Markdown of the Chinese notebook: links into images/ one folder further up."""
    return IMAGE_LINK.sub(lambda m: m.group(1) + "../" + m.group(2) + "images/", source)


def translated(nb: nbformat.NotebookNode, table: dict[str, dict], translated_from: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with its markdown cells in Chinese (English where ``table`` has no text)."""
    zh = copy.deepcopy(nb)
    for cell in zh.cells:
        if cell.cell_type == "markdown":
            entry = table.get(cell.get("id"))
            text = entry["zh"] if entry and isinstance(entry["zh"], str) and entry["zh"].strip() else cell.source
            cell.source = localise(text)
    zh.metadata["course"] = {**zh.metadata.get("course", {}), "language": LANG,
                             "translated_from": translated_from}
    return zh


def render(notebook: Path, root: Path = ROOT) -> str:
    """The Chinese notebook's file contents (English cells where no translation exists yet)."""
    nb = nbformat.read(notebook, as_version=4)
    table = load(translation_path(notebook, root))
    back = Path(os.path.relpath(notebook, output_path(notebook, root).parent)).as_posix()
    return nbformat.writes(translated(nb, table, back)) + "\n"


def build(notebooks: list[Path], root: Path = ROOT) -> list[Path]:
    """Write the Chinese edition of each notebook that has a translation file."""
    written = []
    for notebook in notebooks:
        if not translation_path(notebook, root).exists():
            continue
        out = output_path(notebook, root)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = render(notebook, root)
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            out.write_text(text, encoding="utf-8")
        written.append(out)
    return written


def extract(notebook: Path, root: Path = ROOT) -> int:
    """Add an entry (``zh`` empty) for every markdown cell without one; returns how many."""
    nb = nbformat.read(notebook, as_version=4)
    path = translation_path(notebook, root)
    table = load(path)
    added = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.id not in table:
            table[cell.id] = {"en": digest(cell.source), "zh": ""}
            added += 1
    save(path, notebook, table, [c.id for c in nb.cells], root)
    return added


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m i18n.translate", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="write notebooks/zh/ (lessons and homework) from the English notebooks and i18n/zh/")
    chk = sub.add_parser("check", help="name every missing, stale or untranslated cell")
    chk.add_argument("--all", action="store_true", help="also notebooks without a translation file")
    ext = sub.add_parser("extract", help="add skeleton entries for untranslated cells")
    ext.add_argument("notebooks", nargs="+", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        for out in build(sources()):
            print(out.relative_to(ROOT))
        return 0
    if args.cmd == "extract":
        for nb in args.notebooks:
            print(f"{nb}: {extract(nb.resolve())} new entries in {translation_path(nb).relative_to(ROOT)}")
        return 0
    todo = [nb for nb in sources() if args.all or translation_path(nb).exists()]
    found = [p for nb in todo for p in problems_of(nb)]
    for problem in found:
        print(problem)
    print(f"{len(todo)} notebook(s) checked, {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
