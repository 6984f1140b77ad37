"""Photo folders → SQLite catalog + FAISS index of mmE5 vectors; incremental and crash-safe.

Names are imported on first use (PEP 562), so ``python -m indexer`` starts without loading
numpy, SQLAlchemy or FAISS before it can handle Ctrl-C (no traceback during start-up).
"""

from __future__ import annotations

import importlib

_HOMES = {
    "BuildSummary": "records",
    "FileError": "records",
    "build_index": "build",
    "BadRootError": "errors",
    "IndexCorruptError": "errors",
    "IndexerError": "errors",
    "IndexLockedError": "errors",
    "IndexMismatchError": "errors",
    "IndexNotFoundError": "errors",
    "IndexReplacedError": "errors",
    "PublishedIndexError": "errors",
    "VerifyReport": "maintenance",
    "remove_root": "maintenance",
    "verify": "maintenance",
    "DEFAULT_INDEX_DIR": "files",
    "ImageRecord": "store",
    "IndexStore": "store",
    "index_model": "store",
    "open_index": "store",
}


def __getattr__(name: str):
    if name in _HOMES:
        from mme5.cli import held_interrupts

        with held_interrupts():  # numpy, SQLAlchemy and FAISS load here
            value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "BadRootError",
    "BuildSummary",
    "DEFAULT_INDEX_DIR",
    "FileError",
    "ImageRecord",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IndexReplacedError",
    "IndexStore",
    "IndexerError",
    "PublishedIndexError",
    "VerifyReport",
    "build_index",
    "index_model",
    "open_index",
    "remove_root",
    "verify",
]
