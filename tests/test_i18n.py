"""The Chinese edition: generated from the English notebooks, never stale, code identical."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from i18n import translate as tr

ROOT = Path(__file__).resolve().parent.parent


def _toy(root: Path) -> Path:
    """A two-markdown, one-code-cell notebook with a stored output, under root/notebooks/."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\n![diagram](../images/x.svg)", id="md-title"),
        nbformat.v4.new_code_cell("print(1 + 1)", id="code-1", execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", name="stdout", text="2\n")]),
        nbformat.v4.new_markdown_cell("Some *text*.", id="md-text"),
    ]
    path = root / "notebooks" / "01_toy.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path


def _translate_all(root: Path, nb_path: Path) -> None:
    tr.extract(nb_path, root)
    table = tr.load(tr.translation_path(nb_path, root))
    table["md-title"]["zh"] = "# 标题\n\n![示意图](../images/x.svg)"
    table["md-text"]["zh"] = "一些*文字*。"
    tr.save(tr.translation_path(nb_path, root), nb_path, table, ["md-title", "code-1", "md-text"])


def test_extract_then_translate_then_build_gives_a_current_edition(tmp_path):
    nb_path = _toy(tmp_path)
    assert tr.extract(nb_path, tmp_path) == 2
    assert tr.extract(nb_path, tmp_path) == 0, "a second extract adds nothing"
    kinds = {p.kind for p in tr.problems_of(nb_path, tmp_path)}
    assert kinds == {"untranslated"}, kinds
    _translate_all(tmp_path, nb_path)
    assert [p.kind for p in tr.problems_of(nb_path, tmp_path)] == ["outdated"]  # not built yet
    tr.build([nb_path], tmp_path)
    assert tr.problems_of(nb_path, tmp_path) == []
    en, zh = (nbformat.read(p, 4) for p in (nb_path, tr.output_path(nb_path, tmp_path)))
    assert [c.cell_type for c in zh.cells] == [c.cell_type for c in en.cells]
    assert zh.cells[1] == en.cells[1], "code cells and outputs must be copied exactly"
    assert zh.cells[0].source == "# 标题\n\n![示意图](../../images/x.svg)", "image links one folder up"
    assert zh.metadata["course"]["language"] == "zh"


def test_a_changed_english_cell_makes_its_translation_stale(tmp_path):
    nb_path = _toy(tmp_path)
    _translate_all(tmp_path, nb_path)
    tr.build([nb_path], tmp_path)
    nb = nbformat.read(nb_path, 4)
    nb.cells[2].source = "Some *other* text."
    nbformat.write(nb, nb_path)
    found = tr.problems_of(nb_path, tmp_path)
    assert [(p.cell, p.kind) for p in found] == [("md-text", "stale")]
    assert "Some *other* text." in str(found[0])


def test_missing_and_orphan_cells_are_named(tmp_path):
    nb_path = _toy(tmp_path)
    _translate_all(tmp_path, nb_path)
    nb = nbformat.read(nb_path, 4)
    nb.cells[0].id = "md-renamed"
    nbformat.write(nb, nb_path)
    found = {(p.cell, p.kind) for p in tr.problems_of(nb_path, tmp_path)}
    assert found == {("md-renamed", "missing"), ("md-title", "orphan")}


def test_a_translation_file_without_the_expected_keys_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cells:\n- id: x\n  zh: 你好\n", encoding="utf-8")
    with pytest.raises(ValueError, match="id, en, zh"):
        tr.load(path)


@pytest.mark.parametrize("notebook", [p for p in tr.sources(ROOT) if tr.translation_path(p, ROOT).exists()],
                         ids=lambda p: p.stem)
def test_every_committed_translation_is_complete_current_and_built(notebook):
    problems = tr.problems_of(notebook, ROOT)
    assert not problems, "\n".join(map(str, problems))
