"""Photo folders → SQLite catalog + FAISS index of mmE5 vectors; incremental and crash-safe."""
from .build import BuildSummary, FileError, build_index
from .errors import (
    BadRootError,
    IndexCorruptError,
    IndexerError,
    IndexLockedError,
    IndexMismatchError,
    IndexNotFoundError,
)
from .maintenance import VerifyReport, remove_root, verify
from .store import DEFAULT_INDEX_DIR, ImageRecord, IndexStore, open_index

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
