"""Photo folders → SQLite catalog + FAISS index of mmE5 vectors; incremental and crash-safe.

Names are imported on first use (PEP 562), so ``python -m indexer --help`` loads neither torch nor faiss.
"""
from importlib import import_module

_EXPORTS = {
    "BadRootError": "errors",
    "BuildSummary": "build",
    "DEFAULT_INDEX_DIR": "files",
    "FileError": "build",
    "ImageRecord": "store",
    "IndexCorruptError": "errors",
    "IndexLockedError": "errors",
    "IndexMismatchError": "errors",
    "IndexNotFoundError": "errors",
    "IndexStore": "store",
    "IndexerError": "errors",
    "VerifyReport": "maintenance",
    "build_index": "build",
    "open_index": "store",
    "remove_root": "maintenance",
    "verify": "maintenance",
}
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
    "IndexStore",
    "IndexerError",
    "VerifyReport",
    "build_index",
    "open_index",
    "remove_root",
    "verify",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
