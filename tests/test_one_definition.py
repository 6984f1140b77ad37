"""Each concept has one definition: no dead copies, re-export shims or placeholder modules left behind."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mme5", "indexer", "search_app", "synth", "trainer")


def _modules():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def test_no_placeholder_docstrings():
    stale = [str(path.relative_to(REPO)) for path in _modules()
             if (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").startswith("Placeholder")]
    assert not stale, f"modules still described as placeholders: {stale}"


def test_atomic_writes_have_one_import_path():
    """mme5/atomic.py is the one helper; the indexer's re-export shim for "old callers" is gone."""
    assert not (REPO / "indexer" / "atomic.py").exists()
    users = [str(path.relative_to(REPO)) for path in [*_modules(), *sorted((REPO / "tests").rglob("*.py"))]
             if path != Path(__file__) and "indexer.atomic" in path.read_text(encoding="utf-8")
             or (path.parent.name == "indexer" and "from .atomic" in path.read_text(encoding="utf-8"))]
    assert not users, users


def test_the_search_filters_are_the_one_filter_api():
    """IndexStore.ids_where (with search_app/filters.py's conditions) is the filter query; the older
    folder/date-only API, used by tests alone, is gone rather than kept in step by hand."""
    from indexer.catalog import Catalog
    from indexer.store import IndexStore

    for name in ("ids_matching", "count_matching", "_matching"):
        assert not hasattr(IndexStore, name), name
    assert not hasattr(Catalog, "ids_matching")
