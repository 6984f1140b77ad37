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
    stale = [
        str(path.relative_to(REPO))
        for path in _modules()
        if (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").startswith("Placeholder")
    ]
    assert not stale, f"modules still described as placeholders: {stale}"


def test_atomic_writes_have_one_import_path():
    """mme5/atomic.py is the one helper; the indexer's re-export shim for "old callers" is gone."""
    assert not (REPO / "indexer" / "atomic.py").exists()
    users = [
        str(path.relative_to(REPO))
        for path in [*_modules(), *sorted((REPO / "tests").rglob("*.py"))]
        if path != Path(__file__)
        and "indexer.atomic" in path.read_text(encoding="utf-8")
        or (path.parent.name == "indexer" and "from .atomic" in path.read_text(encoding="utf-8"))
    ]
    assert not users, users


def test_the_search_filters_are_the_one_filter_api():
    """IndexStore.ids_where (with search_app/filters.py's conditions) is the filter query; the older
    folder/date-only API, used by tests alone, is gone rather than kept in step by hand."""
    from indexer.catalog import Catalog
    from indexer.store import IndexStore

    for name in ("ids_matching", "count_matching", "_matching"):
        assert not hasattr(IndexStore, name), name
    assert not hasattr(Catalog, "ids_matching")


# -- diagnostics: library code logs, the command lines and the app print ----------------------------
#: Modules that are command lines (they print their own output and errors), and single functions of library
#: modules that are a command's handler or an interactive question.
CLI_MODULES = {"mme5/cli.py", "synth/cli.py"}
CLI_FUNCTIONS = {
    ("search_app/album_views.py", "main"),
    ("search_app/auth.py", "add_user_cli"),
    ("search_app/tokens.py", "add_token_cli"),
    ("search_app/tokens.py", "revoke_token_cli"),
    ("trainer/adapt.py", "_ask"),
}


def _stderr_prints(path: Path) -> list[tuple[int, str]]:
    """(line, enclosing function) of each print(..., file=sys.stderr) or sys.stderr.write(...) in ``path``."""
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                call = ast.unparse(child.func)
                to_stderr = call == "print" and any(
                    keyword.arg == "file" and "stderr" in ast.unparse(keyword.value) for keyword in child.keywords
                )
                if to_stderr or call.endswith("stderr.write"):
                    found.append((child.lineno, function))
            visit(child, name)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


def test_library_modules_log_instead_of_printing_to_stderr():
    offenders = []
    for path in _modules():
        relative = path.relative_to(REPO).as_posix()
        if path.name == "__main__.py" or relative in CLI_MODULES:
            continue
        offenders += [
            f"{relative}:{line} (in {function})"
            for line, function in _stderr_prints(path)
            if (relative, function) not in CLI_FUNCTIONS
        ]
    assert not offenders, (
        "library code logs with logging.getLogger(__name__); the command lines show it "
        "(mme5.cli.show_messages):\n" + "\n".join(offenders)
    )


def test_the_guard_finds_a_stderr_print(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import sys\n\ndef f():\n    print('x', file=sys.stderr)\n    sys.stderr.write('y')\n")
    assert _stderr_prints(sample) == [(4, "f"), (5, "f")]
