"""Homework feedback that teaches (issue 12, item 6).

- The visible tests catch the mistakes each exercise is about: of the plausible wrong answers
  in ``tests/data/wrong_answers/hwNN.yaml``, at least three quarters per homework fail a visible
  test, and the instructor's own answers pass every one (``homework/feedback.py`` runs them in
  this process, no sandbox: the course's own notebooks and wrong answers only).
- Every visible message says what it checks and points to a real section of the lesson; the
  grader adds that pointer to the message of a failed hidden check (feedback.csv / .html).
- A wrong multiple-choice answer gets an explanation after grading, and the right option is not
  given away by its length.
- ``grade`` refuses a folder with nothing in the expected layout, and says what the layout is.
"""
from __future__ import annotations

import ast
import re

import nbformat
import pytest

from homework import ROOT, SOURCE_DIR, assignments, codec, feedback
from homework import spec as specs
from homework.cli import main as cli
from homework.grade import Judge

NAMES = assignments()
SHARE = 0.75  # of the wrong answers of every homework, at least this share fails a visible test
LENGTH = 1.25  # the right option is at most this many times as long as the longest wrong one


def _spec(name):
    return specs.load(SOURCE_DIR / name / f"{name}.ipynb")


def _lesson_sections() -> dict[tuple[str, int], str]:
    """(lesson "04", section 3) -> its heading, LaTeX written out as in the pointers."""
    heads = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                for m in re.finditer(r"^## (\d+)\. (.+)$", cell.source, re.M):
                    title = m.group(2).strip().replace(r"$\sqrt{d_k}$", "√d_k").replace(r"$T \times T$", "T × T")
                    heads[(path.name[:2], int(m.group(1)))] = title.replace("$", "").replace("*", "")
    return heads


def _options(name: str) -> dict[str, tuple[dict[str, str], str]]:
    """answer grade_id -> ({letter: option text}, the instructor's letter), for multiple choice."""
    nb = nbformat.read(SOURCE_DIR / name / f"{name}.ipynb", as_version=4)
    found, current = {}, {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            opts = dict(re.findall(r"^- \(([a-d])\) (.+)$", cell.source, re.M))
            current = opts or current
            continue
        gid = specs.nbgrader_meta(cell).get("grade_id", "")
        m = re.search(r'^answer = "([a-d])"', cell.source, re.M)
        if specs.ANSWER_ID.match(gid) and m:
            found[gid] = (current, m.group(1))
    return found


@pytest.mark.slow
def test_visible_tests_catch_most_plausible_wrong_answers():
    rates = [feedback.catch_rate(name) for name in NAMES]
    table = feedback.table(rates)
    print("\n" + table)  # shown with pytest -s
    missed = [f"{r.homework} {c.gid}: {c.name}" for r in rates for c in r.results if not c.caught]
    for r in rates:
        assert r.total >= 4, f"{r.homework}: write at least 4 plausible wrong answers"
        assert r.share >= SHARE, f"{r.homework}: only {r.caught}/{r.total} caught\n{table}\nnot caught: {missed}"


@pytest.mark.parametrize("name", NAMES)
def test_instructor_answers_pass_every_visible_test(name):
    spec = _spec(name)
    for gid in spec.answers:
        assert feedback.run_visible(spec, gid) == "", f"{name} {gid}: the instructor's answer fails a visible test"


@pytest.mark.parametrize("name", NAMES)
def test_wrong_answers_name_real_answer_cells(name):
    spec, wrong = _spec(name), feedback.load_wrong(name)
    for entry in wrong["answers"]:
        assert entry["gid"] in spec.answers and entry["name"] and entry["code"].strip(), entry
        ast.parse(entry["code"])
    for gid, letters in wrong["multiple_choice"].items():
        opts, right = _options(name)[gid]
        assert sorted(letters) == sorted(set(opts) - {right}), f"{name} {gid}: list every wrong option"


@pytest.mark.parametrize("name", NAMES)
def test_every_visible_message_points_to_a_lesson_section(name):
    heads = _lesson_sections()
    for t in _spec(name).tests:
        for node in ast.walk(ast.parse(t.visible)):
            if isinstance(node, ast.Assert):
                assert node.msg is not None, f"{name} {t.gid}: an assert without a message (line {node.lineno})"
                text = ast.get_source_segment(t.visible, node.msg)
                m = re.search(r"see lesson (\d\d), section (\d+) \(([^)]*)\)", text)
                assert m, f"{name} {t.gid}: the message {text!r} does not point to a lesson section"
                where = (m.group(1), int(m.group(2)))
                assert heads.get(where) == m.group(3), \
                    f"{name} {t.gid}: lesson {where[0]} has no section {where[1]} called {m.group(3)!r}"
        assert t.see, f"{name} {t.gid}: no pointer for the grader's feedback"


def _mc_tests(spec):
    return [t for t in spec.tests if 'return {"answer": answer}' in t.probe]


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_choice_is_explained_after_grading(name):
    spec = _spec(name)
    judge = Judge(spec, b"secret")
    options = _options(name)
    tests = _mc_tests(spec)
    assert tests, f"{name}: no multiple-choice question"
    for t in tests:
        opts, right = options[t.anchor]
        want = codec.encode({"answer": right})
        assert judge.judge(t.gid, codec.encode({"answer": right}), want) == ""
        messages = set()
        for letter in sorted(set(opts) - {right}):
            why = judge.judge(t.gid, codec.encode({"answer": letter}), want)
            assert why.startswith(f"AssertionError: you chose ({letter}): "), why
            assert "not the right answer" not in why and len(why) > 60, why
            assert why.endswith(t.see), f"the feedback must point to the lesson: {why}"
            messages.add(why)
        assert len(messages) == len(opts) - 1, f"{name}: one explanation per wrong option"


def test_the_right_option_is_not_the_longest_give_away():
    """Per question the right option is at most LENGTH x the longest wrong one, and it is the
    unique longest option in at most a third of the questions (it used to be in most)."""
    longest, total = [], 0
    for name in NAMES:
        for gid, (opts, right) in _options(name).items():
            total += 1
            wrong = [len(v) for k, v in opts.items() if k != right]
            assert len(opts[right]) <= LENGTH * max(wrong), \
                f"{name} {gid}: the right option is {len(opts[right])} characters, the longest wrong one {max(wrong)}"
            if len(opts[right]) > max(wrong):
                longest.append(f"{name} {gid}")
    assert total >= len(NAMES) and len(longest) <= total / 3, f"the right option is the longest in {longest}"


def test_the_grader_adds_the_lesson_pointer_to_a_failed_check():
    spec = _spec("hw04")
    judge = Judge(spec, b"secret")
    import torch

    why = judge.judge("test_ex2", codec.encode({"mask": torch.zeros(2), "nan": False}),
                      codec.encode({"mask": torch.zeros(2, dtype=torch.bool), "nan": False}))
    assert why == ("AssertionError: the mask must be a bool tensor; "
                   "see lesson 04, section 3 (Masks: who may look at whom)"), why


@pytest.mark.parametrize("layout", ["too deep", "too shallow", "empty", "no homework"])
def test_grade_refuses_a_folder_without_the_expected_layout(layout, tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    nb = nbformat.v4.new_notebook()
    where = {"too deep": subs / "class" / "alice" / "hw01", "too shallow": subs / "hw01",
             "empty": None, "no homework": subs / "alice" / "notes"}[layout]
    subs.mkdir()
    if where is not None:
        where.mkdir(parents=True)
        nbformat.write(nb, where / "hw01.ipynb")
    code = cli(["grade", str(subs), "--out", str(out), "--unsafe-no-sandbox"])
    err = capsys.readouterr().err
    assert code != 0 and "DIR/<student>/hwNN/hwNN.ipynb" in err and "nothing was graded" in err, err
    assert not out.exists(), "nothing is written when nothing can be graded"
    if layout == "too deep":
        assert "one level too deep" in err and "class" in err, err
    if layout == "too shallow":
        assert "one level too shallow" in err, err
