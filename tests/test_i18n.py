"""The Chinese edition: generated from the English notebooks, never stale, code identical.

Covers every lesson ``notebooks/NN_*.ipynb`` and every homework instructor notebook
``notebooks/homework/source/hwNN/hwNN.ipynb`` (their Chinese editions ``notebooks/zh/...``), and the
Chinese student release ``build/homework/release/zh/hwNN/hwNN.ipynb``: stripped and leak-checked
like the English one, and graded the same (one real grading run of one homework, marked slow).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from homework import SOURCE_DIR, assignments
from homework import spec as specs
from homework.grade import grade, parse_cells
from homework.release import ZH, check_release, release
from homework.validate import solved
from i18n import translate as tr

ROOT = Path(__file__).resolve().parent.parent
JOBS = int(os.environ.get("COURSE_HOMEWORK_JOBS", "2"))


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


def test_a_homework_notebook_gets_its_edition_under_notebooks_zh_homework(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# HW\n\n![d](../../../images/x.svg)", id="md-1"),
                nbformat.v4.new_code_cell("answer = 1", id="code-1")]
    nb_path = tmp_path / "notebooks" / "homework" / "source" / "hw01" / "hw01.ipynb"
    nb_path.parent.mkdir(parents=True)
    nbformat.write(nb, nb_path)
    assert tr.homework(tmp_path) == [nb_path] and tr.sources(tmp_path) == [nb_path]
    tr.extract(nb_path, tmp_path)
    table = tr.load(tr.translation_path(nb_path, tmp_path))
    assert tr.translation_path(nb_path, tmp_path) == tmp_path / "i18n" / "zh" / "hw01.yaml"
    table["md-1"]["zh"] = "# 作业\n\n![图](../../../images/x.svg)"
    tr.save(tr.translation_path(nb_path, tmp_path), nb_path, table, ["md-1", "code-1"], tmp_path)
    tr.build([nb_path], tmp_path)
    out = tr.output_path(nb_path, tmp_path)
    assert out == tmp_path / "notebooks" / "zh" / "homework" / "source" / "hw01" / "hw01.ipynb"
    assert tr.problems_of(nb_path, tmp_path) == []
    zh = nbformat.read(out, 4)
    assert zh.cells[0].source == "# 作业\n\n![图](../../../../images/x.svg)", "image links one folder up"
    back = zh.metadata["course"]["translated_from"]
    assert (out.parent / back).resolve() == nb_path.resolve(), back


# ------------------------------------------------- the committed Chinese edition ---

def test_the_edition_covers_every_lesson_and_every_homework():
    lessons, homework = tr.lessons(ROOT), tr.homework(ROOT)
    assert len(lessons) >= 10 and [p.stem for p in homework] == assignments() and len(homework) >= 9
    assert tr.sources(ROOT) == lessons + homework


def _is_chinese(text: str) -> bool:
    return bool(tr.CJK.search(text))


@pytest.mark.parametrize("notebook", tr.sources(ROOT), ids=lambda p: p.stem)
def test_every_lesson_and_homework_has_a_complete_current_chinese_edition(notebook):
    assert tr.translation_path(notebook, ROOT).exists(), f"no {tr.translation_path(notebook, ROOT).relative_to(ROOT)}"
    problems = tr.problems_of(notebook, ROOT)  # missing, untranslated, stale, orphan; built file outdated
    assert not problems, "\n".join(map(str, problems))
    en, zh = (nbformat.read(p, 4) for p in (notebook, tr.output_path(notebook, ROOT)))
    assert [(c.cell_type, c.id) for c in zh.cells] == [(c.cell_type, c.id) for c in en.cells]
    for en_cell, zh_cell in zip(en.cells, zh.cells):
        if en_cell.cell_type == "markdown":
            assert _is_chinese(zh_cell.source), f"{zh_cell.id}: no Chinese text"
        else:
            assert zh_cell == en_cell, f"{en_cell.id}: code cells, outputs and metadata must be copied exactly"


OPTION = re.compile(r"^- \(([a-d])\) (.+)$", re.M)


@pytest.mark.parametrize("notebook", tr.homework(ROOT), ids=lambda p: p.stem)
def test_chinese_choices_keep_their_letters_and_do_not_give_the_answer_away(notebook):
    """The letters (a)-(d) the answer cells expect are the English ones, cell by cell; and, as
    in English (tests/test_homework_feedback.py), the right option of a multiple-choice question
    is at most 1.25 x as long as the longest wrong one, so its length does not give it away."""
    en, zh = (nbformat.read(p, 4) for p in (notebook, tr.output_path(notebook, ROOT)))
    options = {}
    for en_cell, zh_cell in zip(en.cells, zh.cells):
        if en_cell.cell_type == "markdown":
            letters = [m[0] for m in OPTION.findall(en_cell.source)]
            assert [m[0] for m in OPTION.findall(zh_cell.source)] == letters, f"{zh_cell.id}: option letters"
            options = dict(OPTION.findall(zh_cell.source)) or options
            continue
        right = re.search(r'^answer = "([a-d])"', en_cell.source, re.M)
        if specs.ANSWER_ID.match(specs.nbgrader_meta(en_cell).get("grade_id", "")) and right:
            wrong = max(len(text) for letter, text in options.items() if letter != right[1])
            assert len(options[right[1]]) <= 1.25 * wrong, (options, right[1])


# ------------------------------------------------- the Chinese student release ---

@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("homework")
    release(root, log=lambda *a: None)
    return root / "release"


def test_the_chinese_release_is_stripped_and_leak_checked_like_the_english_one(released):
    assert check_release(SOURCE_DIR, released / ZH) == []
    for name in assignments():
        en_path, zh_path = (root / name / f"{name}.ipynb" for root in (released, released / ZH))
        text = zh_path.read_text(encoding="utf-8")
        assert "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text and "def check(" not in text
        assert "raise NotImplementedError()" in text
        en, zh = (nbformat.read(p, 4) for p in (en_path, zh_path))
        assert [c for c in zh.cells if c.cell_type == "code"] == [c for c in en.cells if c.cell_type == "code"]
        assert all(_is_chinese(c.source) for c in zh.cells if c.cell_type == "markdown")
        spec = specs.load(SOURCE_DIR / name / f"{name}.ipynb")
        assert parse_cells(zh_path.read_bytes(), spec) == parse_cells(en_path.read_bytes(), spec), \
            f"{name}: the grader must read the same cells from both languages"


def test_a_stale_translation_releases_that_homework_in_english_only(tmp_path):
    src = tmp_path / "source"
    shutil.copytree(SOURCE_DIR / "hw02", src / "hw02")
    nb = nbformat.read(src / "hw02" / "hw02.ipynb", 4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## 2."))
    cell.source += "\n\nA sentence the translation has not seen."
    nbformat.write(nb, src / "hw02" / "hw02.ipynb")
    logged = []
    release(tmp_path / "build", source=src, log=logged.append)
    assert (tmp_path / "build" / "release" / "hw02" / "hw02.ipynb").is_file()
    assert not (tmp_path / "build" / "release" / ZH / "hw02").exists()
    warning = next(line for line in logged if "English only" in line)
    assert f"cell {cell.id}: stale" in warning, warning


@pytest.mark.slow
def test_a_chinese_submission_gets_the_same_grades_as_the_english_one(released, tmp_path):
    """One grading run (the real grader, sandboxed) of hw01 in both languages, exercise 2 left unanswered."""
    name = "hw01"
    subs = tmp_path / "submissions"
    for student, root in (("english", released), ("chinese", released / ZH)):
        path = root / name / f"{name}.ipynb"
        nb = solved(path, SOURCE_DIR / name / f"{name}.ipynb")
        stub = next(c for c in nbformat.read(path, 4).cells if specs.nbgrader_meta(c).get("grade_id") == "ex2_exact_match")
        next(c for c in nb.cells if specs.nbgrader_meta(c).get("grade_id") == "ex2_exact_match").source = stub.source
        (subs / student / name).mkdir(parents=True)
        nbformat.write(nb, subs / student / name / f"{name}.ipynb")
    report = grade(subs, tmp_path / "graded", only=[name], cell_timeout=10, jobs=JOBS, log=lambda *a: None)
    assert report.attention == []
    english, chinese = report.test_points("english", name), report.test_points("chinese", name)
    print(f"\n{name}: english {english}, chinese {chinese}; {report.seconds}")
    assert english == chinese
    score, top = report.scores[("chinese", name)]
    assert score == top - 3 and english["test_ex2"] == 0, (score, top, english)


def test_moving_the_sources_out_also_removes_their_chinese_edition(tmp_path, monkeypatch):
    """export-sources --move: the generated Chinese instructor notebooks hold the same solutions."""
    from homework import release as rel

    src, zh_src = tmp_path / "repo" / "source", tmp_path / "repo" / "zh" / "source"
    shutil.copytree(SOURCE_DIR / "hw02", src / "hw02")
    shutil.copytree(tr.output_path(SOURCE_DIR / "hw02" / "hw02.ipynb").parent, zh_src / "hw02")
    monkeypatch.setattr(rel, "SOURCE_DIR", src)
    monkeypatch.setattr(rel, "ZH_SOURCE_DIR", zh_src)
    logged = []
    rel.export_sources(tmp_path / "private", source=src, log=logged.append)
    assert (zh_src / "hw02").is_dir() and any("--move removes it too" in line for line in logged)
    rel.export_sources(tmp_path / "private2", move=True, source=src, log=logged.append)
    assert not (src / "hw02").exists() and not (zh_src / "hw02").exists()
    assert (tmp_path / "private2" / "hw02" / "hw02.ipynb").is_file()
