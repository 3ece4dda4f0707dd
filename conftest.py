"""Repository-wide pytest set-up: the lesson notebooks that nbval runs count as `slow`.

`./course test -m "not slow"` is then the inner loop (unit tests only, a minute or two);
`./course test` runs everything. tests/conftest.py holds the set-up of the unit tests.
"""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":  # a cell of a notebook run by nbval
            item.add_marker(pytest.mark.slow)
