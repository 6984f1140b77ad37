"""The memory-mapped copy of the stored vectors (``vectors.f16``): fast random access for re-ranking.

Re-ranking an ivf-pq index reads the exact vectors of ~200 random candidates per query. From
SQLite BLOBs that takes ~9 ms at 1M photos (benchmarks/NOTES.md); from this file it is a
handful of page reads (``python -m benchmarks.bench_rerank`` prints both side by side).

The catalog stays the source of truth: its float16 BLOBs are the durable copy and this file
is a cache derived from them, like vectors.faiss. Layout: a 4 KiB header (magic, version,
dim, a random store id, a digest of the model fingerprint), then one row of ``dim`` float16
values per catalog image id at ``HEADER + id * dim * 2`` (ids are never reused and an id's
content never changes, so a row once written stays right; ids that are not searchable leave
sparse holes). The catalog's ``vector_store`` meta records the store id and ``rows``: every
searchable id below ``rows`` has its row written. A build writes a batch's rows with
``pwrite`` after committing the batch and records them (once fsync'ed, at most every second)
in a later batch's transaction, so a kill -9 or a power cut at any moment leaves rows the
catalog does not vouch for yet (ignored, written again) but never the reverse. A file whose
header does not match the catalog's record (missing, damaged, from another model, replaced
by hand) is rebuilt from the catalog by the next writer;
until then, and on read-only media where it cannot be written, readers fetch from SQLite.
The file is only ever extended or replaced by rename, never truncated, so a reader's mapping
stays valid while a build appends.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import select
from tqdm.auto import tqdm

from mme5.atomic import atomic_open, fsync_dir
from .catalog import STATUS_OK, Catalog, Image, Vector, _blobs_to_array
from .errors import IndexerError, IndexLockedError, os_problem

logger = logging.getLogger(__name__)

STORE_FILE = "vectors.f16"
META_KEY = "vector_store"
HEADER_BYTES = 4096
MAGIC = b"MME5ROWS"
VERSION = 1
_HEADER = struct.Struct("<8sII16s16s")  # magic, version, dim, store id, model digest
SYNC_INTERVAL_S = 1.0  # a build fsyncs appended rows at most this often before recording them
MIGRATE_PROGRESS_MIN = 20_000  # rows from which building the file shows a progress bar


def model_digest(fingerprint: str) -> bytes:
    return hashlib.sha256(str(fingerprint).encode("utf-8")).digest()[:16]


class RowStore:
    """An open ``vectors.f16``: a read-only memmap plus (for a writer) a descriptor to append rows."""

    def __init__(self, path: Path, dim: int, store_id: str, rows: int, writable: bool):
        self.path, self.dim, self.store_id, self.rows = Path(path), int(dim), store_id, int(rows)
        self.durable_rows = self.rows  # rows fsync'ed: what the catalog may be told
        self._synced_at = time.monotonic()
        self.row_bytes = self.dim * 2
        # O_BINARY: Windows opens descriptors in text mode otherwise (newline bytes rewritten)
        self._fd: int | None = os.open(self.path, (os.O_RDWR if writable else os.O_RDONLY) | getattr(os, "O_BINARY", 0))
        self._map: np.ndarray | None = None  # a memmap, or an empty array for an empty file
        self._mapped_rows = 0
        self._remap()  # ValueError when shorter than the catalog says

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open_checked(cls, index_dir: Path, meta: dict, writable: bool = False) -> "RowStore":
        """The file the catalog's record names; ValueError saying why not (missing, other store, damaged)."""
        record = meta.get(META_KEY) or {}
        path = Path(index_dir) / STORE_FILE
        if not record.get("id"):
            raise ValueError(f"{path}: no vector store recorded in the catalog (made by an older version)")
        problem = header_problem(path, int(meta["dim"]), record["id"], meta.get("fingerprint", ""))
        if problem:
            raise ValueError(problem)
        try:
            return cls(path, int(meta["dim"]), record["id"], int(record.get("rows", 0)), writable)
        except OSError as error:
            raise ValueError(f"{path}: cannot open ({error.strerror or error})") from error

    @classmethod
    def create(cls, catalog: Catalog, index_dir: Path, meta: dict, show_progress: bool = True) -> "RowStore":
        """Write the file from the catalog's stored vectors (atomically: a kill leaves only a temp file), record it."""
        dim = int(meta["dim"])
        path = Path(index_dir) / STORE_FILE
        store_id = uuid.uuid4().hex
        total = catalog.count()
        rows = 0
        progress = tqdm(
            total=total,
            desc=f"writing {STORE_FILE}",
            unit=" vec",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=not show_progress or total < MIGRATE_PROGRESS_MIN,
        )
        try:
            with atomic_open(path, "wb") as file:
                file.write(_header(dim, store_id, meta.get("fingerprint", "")))
                file.flush()  # rows go in with pwrite at their offsets
                for ids, vectors in catalog.iter_ok_vectors(chunk=8192):
                    _write_rows(file.fileno(), ids, vectors, dim)
                    rows = int(ids[-1]) + 1
                    progress.update(len(ids))
            fsync_dir(path.parent)
        except OSError as error:
            raise os_problem(error, path.parent) from error
        finally:
            progress.close()
        # ids committed after our scan (none: writers hold the lock) would be above ``rows``: caught up later
        store = cls(path, dim, store_id, rows, writable=True)
        with catalog.session() as session:
            Catalog.set_meta(session, **{META_KEY: store.record()})
            session.commit()
        return store

    # -- facts --------------------------------------------------------------------------
    def record(self) -> dict:
        """What the catalog keeps about this file (``rows``: every searchable id below it has its row, on disk)."""
        return {"id": self.store_id, "rows": self.durable_rows, "dim": self.dim, "file": STORE_FILE}

    def close(self) -> None:
        self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _descriptor(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path}: the vector store is closed")
        return self._fd

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- reading ------------------------------------------------------------------------
    def covered(self, ids: np.ndarray) -> np.ndarray:
        return (ids >= 0) & (ids < self.rows)

    def rows_for(self, ids: np.ndarray) -> np.ndarray:
        """float16 rows of ids below ``rows`` (the caller knows they are searchable)."""
        if self._mapped_rows < self.rows:
            self._remap()
        if self._map is None:
            raise ValueError(f"{self.path}: the vector store is closed")
        return self._map[np.asarray(ids, dtype=np.int64)].view(np.ndarray)  # a copy, not tied to the file

    def vectors_for_ids(self, ids, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
        """``Catalog.vectors_for_ids`` for searchable ids: rows the store covers from the map, the rest
        (committed after the store's last record) from SQLite. Ids must be searchable ones (a
        FAISS hit); the memmap cannot tell an id deleted since from a live one, but its vector is
        the one that id always had."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        inside = self.covered(ids)
        if inside.all():
            return ids, self.rows_for(ids)
        late_ids, late = catalog.vectors_for_ids(ids[~inside])
        if not inside.any():
            return late_ids, late
        found = np.concatenate([ids[inside], late_ids])
        vectors = np.concatenate([self.rows_for(ids[inside]), late.reshape(len(late_ids), self.dim)])
        order = np.argsort(found, kind="stable")
        return found[order], vectors[order]

    def _remap(self) -> None:
        size = os.fstat(self._descriptor()).st_size
        count = max(0, (size - HEADER_BYTES) // self.row_bytes)
        if count == 0:
            self._map = np.empty((0, self.dim), np.float16)
        else:
            self._map = np.memmap(self.path, dtype=np.float16, mode="r", offset=HEADER_BYTES, shape=(count, self.dim))
        self._mapped_rows = count
        if count < self.rows:  # the catalog vouches for rows the file does not have: treat it as damaged
            self.close()
            raise ValueError(f"{self.path}: shorter than the {self.rows} rows the catalog records (damaged on disk)")

    # -- writing (under the index's write lock) -------------------------------------------
    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Write rows for newly committed searchable ids (all above every id written before); ``rows``
        advances past them. DiskFullError / ReadOnlyIndexError as the rest of the build raises them."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        try:
            _write_rows(self._descriptor(), ids, vectors, self.dim)
        except OSError as error:
            raise os_problem(error, self.path.parent) from error
        self.rows = max(self.rows, int(ids.max()) + 1)

    def sync(self) -> None:
        """Make the written rows durable, so that the catalog may vouch for them (a kill -9 needs no
        fsync, a power cut does)."""
        try:
            os.fsync(self._descriptor())
        except OSError as error:
            raise os_problem(error, self.path.parent) from error
        self.durable_rows, self._synced_at = self.rows, time.monotonic()

    def sync_if_due(self) -> None:
        """``sync`` at most every SYNC_INTERVAL_S while a build appends (its records lag by that much)."""
        if self.rows > self.durable_rows and time.monotonic() - self._synced_at >= SYNC_INTERVAL_S:
            self.sync()

    def catch_up(self, catalog: Catalog) -> int:
        """Write rows for searchable ids the catalog committed after ``rows`` was recorded; how many."""
        written = 0
        with catalog.session() as session:
            last = self.rows - 1
            while True:
                batch = session.execute(
                    select(Image.id, Vector.vector)
                    .join(Vector, Vector.content_hash == Image.content_hash)
                    .where(Image.status == STATUS_OK, Image.id > last)
                    .order_by(Image.id)
                    .limit(8192)
                ).all()
                if not batch:
                    break
                ids = np.asarray([row[0] for row in batch], dtype=np.int64)
                self.append(ids, _blobs_to_array([row[1] for row in batch]))
                last, written = int(ids[-1]), written + len(ids)
        if written:
            self.sync()
        return written


def _header(dim: int, store_id: str, fingerprint: str) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, dim, bytes.fromhex(store_id), model_digest(fingerprint)).ljust(
        HEADER_BYTES, b"\0"
    )


def header_problem(path: Path, dim: int, store_id: str, fingerprint: str) -> str | None:
    """Why ``path`` is not the store the catalog recorded (None: it is)."""
    try:
        with open(path, "rb") as file:
            head = file.read(_HEADER.size)
    except FileNotFoundError:
        return f"{path}: vector store file missing"
    except OSError as error:
        return f"{path}: vector store file unreadable ({error.strerror or error})"
    if len(head) < _HEADER.size or head[:8] != MAGIC:
        return f"{path}: not a vector store file (damaged header)"
    _, version, file_dim, file_id, digest = _HEADER.unpack(head)
    if version != VERSION:
        return f"{path}: vector store format {version}, this version reads {VERSION}"
    if file_dim != dim:
        return f"{path}: vector store has dim {file_dim}, catalog says {dim}"
    if file_id.hex() != store_id:
        return f"{path}: not the vector store the catalog recorded (replaced, or a write was interrupted)"
    if digest != model_digest(fingerprint):
        return f"{path}: vector store was written for another model"
    return None


def _write_rows(fd: int, ids: np.ndarray, vectors: np.ndarray, dim: int) -> None:
    """pwrite rows at their ids' offsets; consecutive ids go in one call."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float16).reshape(len(ids), dim)
    row_bytes = dim * 2
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    for run in np.split(np.arange(len(ids)), breaks):
        data = vectors[run[0] : run[-1] + 1].data.cast("B")  # contiguous rows: their buffer, no copy
        offset = HEADER_BYTES + int(ids[run[0]]) * row_bytes
        while len(data):
            done = _pwrite(fd, data, offset)
            data, offset = data[done:], offset + done


def _pwrite(fd: int, data, offset: int) -> int:
    """``os.pwrite``; Windows has none: seek, then write (the descriptor is the writer's own, used by one thread)."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.write(fd, data)


def attach(catalog: Catalog, index_dir: Path, meta: dict, writer: bool, show_progress: bool = True) -> str:
    """Give ``catalog`` the vector store to re-rank from; returns what was done, for messages.

    ``writer``: the caller holds the write lock (a build): a missing or mismatching file is
    rebuilt and rows committed since the last record are written. A reader does the same
    when the catalog is writable and no build runs (that is the migration of an index from
    before the store); otherwise it serves from the file as far as it goes and from SQLite
    beyond, or from SQLite alone.
    """
    detach(catalog)
    try:
        catalog.vector_store = RowStore.open_checked(index_dir, meta, writable=writer)
        problem = None
    except ValueError as error:
        problem = str(error)
    if not writer:
        store = catalog.vector_store
        lagging = store is None or _lags(catalog, store)
        if not lagging or catalog.mode != "rw":
            return "sqlite (read-only storage)" if store is None else "ok"
        from .lock import WriteLock, lock_holder

        if lock_holder(index_dir) is not None:  # a build runs: it writes the store; read what is there
            return "sqlite (a build is running)" if store is None else "ok"
        try:
            with WriteLock(index_dir, "vector store"):
                return attach(catalog, index_dir, catalog.get_meta(), writer=True, show_progress=show_progress)
        except IndexLockedError:
            return "sqlite (a build is running)" if store is None else "ok"
        except (IndexerError, OSError) as error:
            logger.warning(f"indexer: {index_dir}: vector store not written ({error}); re-ranking reads SQLite")
            return "sqlite"
    if problem is not None:
        if (meta.get(META_KEY) or {}).get("id") and "missing" not in problem:
            logger.warning(f"indexer: {problem}; rebuilding it from the catalog")
        catalog.vector_store = RowStore.create(catalog, index_dir, meta, show_progress)
        return "created"
    store = catalog.vector_store
    if store is None:  # attached above, or ValueError (handled above)
        raise ValueError(f"{index_dir}: no vector store attached")
    if store.catch_up(catalog):
        with catalog.session() as session:
            Catalog.set_meta(session, **{META_KEY: store.record()})
            session.commit()
    return "ok"


def _lags(catalog: Catalog, store: RowStore) -> bool:
    with catalog.session() as session:
        top = session.scalar(select(Image.id).where(Image.status == STATUS_OK).order_by(Image.id.desc()).limit(1))
    return top is not None and top >= store.rows


def detach(catalog: Catalog) -> None:
    store = getattr(catalog, "vector_store", None)
    if store is not None:
        store.close()
    catalog.vector_store = None
