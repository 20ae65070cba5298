"""The fuzz campaign runs once, on SQLite: it tests the HTTP layer's answers, which do not
depend on the backend, and every other test already runs on PostgreSQL too. The PostgreSQL
variants are deselected (pytest reports them as deselected, not as passed)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgres"
        is_fuzz = item.nodeid.startswith("tests/fuzz/")
        (drop if on_postgres and is_fuzz else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
