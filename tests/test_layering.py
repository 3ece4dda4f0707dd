"""The import tree of course_utils: imports go downward only, no cycle, no module __getattr__."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "course_utils"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")

# The attention layers, bottom to top: a module may import only from layers below it.
LAYERS = [{"checks"}, {"functional"}, {"scoring", "positions"}, {"multihead"}, {"attention", "transformer", "models"}]


def course_imports(module: str) -> set[str]:
    """The course_utils modules that ``module`` imports, at any place in its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_utils"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from course_utils import data as D
                found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("course_utils."))
    return found - {module}


def test_no_import_cycle():
    graph = {m: course_imports(m) & set(MODULES) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            pytest.fail("import cycle: " + " -> ".join(path + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = 2

    for m in MODULES:
        visit(m, [])


def test_attention_layers_import_only_downward():
    level = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    for m, i in level.items():
        for n in course_imports(m):
            if n in level:
                assert level[n] < i, f"course_utils.{m} (layer {i}) imports course_utils.{n} (layer {level[n]})"


@pytest.mark.parametrize("module", MODULES)
def test_no_module_getattr(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "__getattr__" not in names, f"course_utils.{module} hides an import behind a module __getattr__"


def test_attention_facade_reexports_every_layer():
    facade = importlib.import_module("course_utils.attention")
    for layer in ("functional", "scoring", "positions", "multihead"):
        mod = importlib.import_module(f"course_utils.{layer}")
        for name in mod.__all__:
            assert getattr(facade, name) is getattr(mod, name), name
            assert name in facade.__all__, name


def test_every_name_the_lessons_import_stays_importable():
    facade = importlib.import_module("course_utils.attention")
    before = ["AdditiveAttention", "Attention", "ConcatLinearAttention", "DotProductAttention", "GeneralAttention",
              "MultiHeadAttention", "PositionalEncoding", "attention", "causal_mask", "masked_softmax"]
    new = ["KVCache", "padding_mask", "sliding_window_mask"]
    assert all(hasattr(facade, name) for name in before + new)
    transformer = importlib.import_module("course_utils.transformer")
    assert all(hasattr(transformer, n) for n in ("DecoderLayer", "EncoderLayer", "Transformer", "TransformerConfig"))
