"""Errors the indexer raises; each message says what is wrong and what to do."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class IndexerError(Exception):
    """Base class: a problem the user can fix (bad path, wrong model, busy index)."""


class IndexNotFoundError(IndexerError, FileNotFoundError):
    """No index at the given folder."""


class IndexCorruptError(IndexerError, ValueError):
    """The catalog cannot be read; the vector index alone is always rebuildable.

    A ValueError too, so the app's handlers show its sentence instead of a generic error."""


class PublishedIndexError(IndexCorruptError):
    """A published (downloaded) index that is not in the shape `push` writes: refused before anything of it is
    served (indexer/published.py ``validate_published``); the message names the dataset and the field."""


class VectorFileError(IndexerError, ValueError):
    """``vectors.faiss`` is missing, unreadable or fails its checksum: rebuilt from the catalog, never fatal.

    Not an IndexCorruptError: that one means the catalog, the source of truth, is damaged."""


class IndexMismatchError(IndexerError, ValueError):
    """The embedder's vector space differs from the one the index was built with."""


class IndexLockedError(IndexerError):
    """Another process is writing this index."""


class BadRootError(IndexerError, ValueError):
    """A --dir that does not exist, is not a folder, or overlaps the index or another root."""


class IndexReplacedError(IndexerError):
    """The index folder (or its catalog) was deleted or replaced while a build was writing it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, docker stop): unwinds like Ctrl-C, so committed work stays and locks are released."""


def mismatch_message(index_dir, meta: dict, embedder) -> str:
    """Why an embedder cannot be used with an index, and what to do instead: the plain sentence first, then what
    the index was built with, what was given, which part of the identity differs and both vector spaces, one a line."""
    built = str(meta.get("model_id")) + (f" + adapter {meta['adapter']}" if meta.get("adapter") else "")
    built += f" ({meta['quantization']}-quantised)" if meta.get("quantization") else ""
    asked = embedder.model_id + (f" + adapter {embedder.adapter}" if embedder.adapter else "")
    asked += f" ({embedder.quantization}-quantised)" if getattr(embedder, "quantization", None) else ""
    recorded = meta.get("identity") or {}
    differing = [key for key, value in embedder.identity.items() if key in recorded and recorded[key] != value]
    lines = [
        f"{index_dir}: this index was built with a different model than the one given; vectors from different models "
        "cannot be mixed. Use the index's own model (omit --model and --runtime), or build a new index with "
        "--index NEW_DIR.",
        f"  index built with: {built}",
        f"  model given:      {asked}",
    ]
    if differing:
        lines.append(f"  they differ in: {', '.join(differing)}")
    lines += [f"  index's vector space: {meta.get('fingerprint')}", f"  given vector space:   {embedder.fingerprint}"]
    return "\n".join(lines)


class DiskFullError(IndexerError, OSError):
    """The disk holding the index is full; what was committed before is intact."""


class ReadOnlyIndexError(IndexerError, PermissionError):
    """The index is on read-only storage: it can be searched, not written."""


# SQLite primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF)
SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 8, 10, 11, 13, 14, 26
LOW_SPACE_BYTES = 2 << 20  # an I/O error with less free space than this is a full disk


def read_only_storage(folder) -> bool:
    """True when ``folder`` is on a read-only mount or not writable by this user."""
    try:
        if hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY:  # no statvfs on Windows
            return True
        return not os.access(folder, os.W_OK)
    except OSError:
        return False


def low_space(folder) -> bool:
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


def disk_full_message(folder, what: str) -> str:
    return (
        f"{folder}: the disk is full ({what}). Everything committed before is kept and undamaged; "
        "free some space and run the same command again: it resumes where it stopped."
    )


def read_only_message(folder) -> str:
    return (
        f"{folder}: the index is on read-only storage (or not writable by this user). It can still be "
        "searched (info, search, verify and the app open it read-only); to build or repair it, copy the "
        "index folder to writable storage."
    )


def damaged_message(catalog_path, detail: str) -> str:
    folder = Path(catalog_path).parent
    return (
        f"{catalog_path}: the catalog is damaged (SQLite: {detail}). Run `python -m indexer verify --index "
        f"{folder} --repair` to salvage every readable row into a fresh catalog (the damaged file is kept beside "
        f"it), or restore {Path(catalog_path).name} from a backup."
    )


def storage_problem(error: BaseException, catalog_path) -> IndexerError | None:
    """The IndexerError a low-level SQLite error stands for (damage, full disk, read-only media), or None."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return None
    primary, folder = code & 0xFF, Path(catalog_path).parent
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    if primary == SQLITE_NOTADB:
        return IndexCorruptError(
            f"{catalog_path}: not a readable SQLite catalog (SQLite: {detail}); restore it from a "
            "backup, or move the index folder aside and build it again."
        )
    if primary == SQLITE_CORRUPT:
        return IndexCorruptError(damaged_message(catalog_path, detail))
    if primary == SQLITE_FULL or (primary == SQLITE_IOERR and low_space(folder)):
        return DiskFullError(disk_full_message(folder, f"SQLite: {detail}"))
    if primary == SQLITE_READONLY or (primary in (SQLITE_IOERR, SQLITE_CANTOPEN) and read_only_storage(folder)):
        return ReadOnlyIndexError(read_only_message(folder))
    return None


def os_problem(error: OSError, folder) -> OSError:
    """A full disk or read-only media behind an OSError, as the IndexerError that says what to do; else ``error``."""
    if error.errno == errno.ENOSPC:
        return DiskFullError(disk_full_message(folder, error.strerror or "no space left on device"))
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and read_only_storage(folder):
        return ReadOnlyIndexError(read_only_message(folder))
    return error


def first_line(error: BaseException) -> str:
    """The first line of an error's text (a library's multi-line message shortened for one sentence)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else ""
