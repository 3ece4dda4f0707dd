"""The seed-spread table that lesson 03 shows is current: written by this version of
benchmarks/seed_spread.py, with the lesson's settings, for at least a dozen seeds. (Rerunning it
takes about 90 s per seed; this test only checks that nothing it depends on changed since.)"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "seed_spread_03.json"
SCRIPT = ROOT / "benchmarks" / "seed_spread.py"
LESSON = ROOT / "notebooks" / "03_additive_attention.ipynb"


def lesson_source() -> str:
    return "\n".join(c.source for c in nbformat.read(LESSON, 4).cells if c.cell_type == "code")


def test_table_was_written_by_this_script():
    table = json.loads(TABLE.read_text())
    assert table["script_sha256"] == hashlib.sha256(SCRIPT.read_bytes()).hexdigest(), (
        "benchmarks/seed_spread.py changed since seed_spread_03.json was written: rerun "
        "`COURSE_THREADS=1 python -m benchmarks.seed_spread --seeds 0-15`")


def test_table_uses_the_lessons_settings():
    settings = json.loads(TABLE.read_text())["settings"]
    src = lesson_source()
    steps, lr, cooldown = re.search(r"^STEPS, LR, COOLDOWN = (\d+), ([0-9.e-]+), (\d+)$", src, re.M).groups()
    test_pairs = re.search(r"^TEST = corpus\.test\[:(\d+)\]", src, re.M).group(1)
    assert settings == {"steps": int(steps), "lr": float(lr), "cooldown": int(cooldown), "test_pairs": int(test_pairs),
                        "attention": "additive"}
    assert src.count("cooldown=COOLDOWN") == 2, "both models of section 3 cool down"
    assert re.search(r'^attn = Seq2Seq\.build\(cfg, "additive"\)', src, re.M), "lesson 03 trains the additive model"


def test_table_covers_a_dozen_seeds():
    rows = json.loads(TABLE.read_text())["rows"]
    seeds = [r["seed"] for r in rows]
    assert len(seeds) == len(set(seeds)) >= 12, seeds
    assert {0, 1, 2, 3} <= set(seeds), "the table should include the seeds CI checks"
    for r in rows:
        for kind in ("time words", "place nouns", "postpositions", "zai"):
            assert abs(sum(r[kind].values()) - 1) < 1e-9, (r["seed"], kind)


def test_table_shows_one_seed_with_and_without_the_cooldown():
    table = json.loads(TABLE.read_text())
    with_cd, without_cd = table["contrast"]["with"], table["contrast"]["without"]
    assert with_cd["seed"] == without_cd["seed"]
    assert with_cd["cooldown"] == table["settings"]["cooldown"] > 0 and without_cd["cooldown"] == 0
    assert all(r["cooldown"] == table["settings"]["cooldown"] for r in table["rows"])
