"""Errors the indexer raises; each message says what is wrong and what to do."""
from __future__ import annotations


class IndexerError(Exception):
    """Base class: a problem the user can fix (bad path, wrong model, busy index)."""


class IndexNotFoundError(IndexerError, FileNotFoundError):
    """No index at the given folder."""


class IndexCorruptError(IndexerError):
    """The catalog cannot be read; the vector index alone is always rebuildable."""


class IndexMismatchError(IndexerError, ValueError):
    """The embedder's vector space differs from the one the index was built with."""


class IndexLockedError(IndexerError):
    """Another process is writing this index."""


class BadRootError(IndexerError, ValueError):
    """A --dir that does not exist, is not a folder, or overlaps the index or another root."""
