"""Errors the indexer raises; each message says what is wrong and what to do."""
from __future__ import annotations


class IndexerError(Exception):
    """Base class: a problem the user can fix (bad path, wrong model, busy index)."""


class IndexNotFoundError(IndexerError, FileNotFoundError):
    """No index at the given folder."""


class IndexCorruptError(IndexerError, ValueError):
    """The catalog cannot be read; the vector index alone is always rebuildable."""


class IndexMismatchError(IndexerError, ValueError):
    """The embedder's vector space differs from the one the index was built with."""


class IndexLockedError(IndexerError):
    """Another process is writing this index."""


class BadRootError(IndexerError, ValueError):
    """A --dir that does not exist, is not a folder, or overlaps the index or another root."""


def mismatch_message(index_dir, meta: dict, embedder) -> str:
    """Why an embedder cannot be used with an index (which part of the identity differs), and what to do instead."""
    built = str(meta.get("model_id")) + (f" + adapter {meta['adapter']}" if meta.get("adapter") else "")
    asked = embedder.model_id + (f" + adapter {embedder.adapter}" if embedder.adapter else "")
    recorded = meta.get("identity") or {}
    differing = [key for key, value in embedder.identity.items() if key in recorded and recorded[key] != value]
    what = f"; they differ in: {', '.join(differing)}" if differing else ""
    return (
        f"{index_dir}: this index was built with {built} (vector space {meta.get('fingerprint')!r}), "
        f"but the model given is {asked} ({embedder.fingerprint!r}){what}; vectors from different models cannot be "
        f"mixed. Use the index's own model (omit --model), or build a new index with --index NEW_DIR."
    )
