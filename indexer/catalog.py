"""The SQLite catalog (SQLAlchemy 2): one row per image file, stored vectors, index metadata.

The catalog is the source of truth. The FAISS file is derived from it and can always
be rebuilt from the float16 vectors kept here, so a crash can only cost FAISS work,
never data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator, cast

import numpy as np
from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from mme5.atomic import fsync_dir, fsync_file
from mme5.settings import user_cache_dir

from .errors import (
    SQLITE_CANTOPEN,
    SQLITE_FULL,
    SQLITE_IOERR,
    SQLITE_READONLY,
    DiskFullError,
    IndexCorruptError,
    IndexerError,
    ReadOnlyIndexError,
    damaged_message,
    disk_full_message,
    low_space,
    storage_problem,
)

if TYPE_CHECKING:  # rowstore imports this module
    from .rowstore import RowStore

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
SCHEMA_VERSION = 1
STATUS_OK = "ok"
STATUS_ERROR = "error"
CHEAP_CHECK_BYTES = 256 << 20  # catalogs up to this size get SQLite's quick_check on open where it matters (~0.3 s)


class Base(DeclarativeBase):
    __table__: ClassVar[Table]  # every model here is a plain table (DeclarativeBase types it as any FromClause)


class Meta(Base):
    """Index-wide facts (model, dim, index type, last build) as JSON values."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(String)


class Root(Base):
    """A folder the user asked to index (absolute path)."""

    __tablename__ = "roots"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)


class Image(Base):
    """One image file. Ids are never reused and an id's content never changes, so an id
    in the FAISS index always means the same vector (changed content gets a new row)."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("root_id", "relpath"),
        Index("ix_images_content_hash", "content_hash"),
        Index("ix_images_status", "status"),
        Index("ix_images_status_taken_at", "status", "taken_at"),  # date filters; added later, see _ensure_indexes
        Index("ix_images_video_id", "video_id"),  # a video's keyframe rows; added later, see _ensure_indexes
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("roots.id", ondelete="CASCADE"))
    relpath: Mapped[bytes] = mapped_column(LargeBinary)  # raw file-name bytes: non-UTF-8 names survive
    size: Mapped[int]
    mtime_ns: Mapped[int]
    content_hash: Mapped[str | None] = mapped_column(String)
    width: Mapped[int | None]
    height: Mapped[int | None]
    taken_at: Mapped[datetime | None] = mapped_column(DateTime)
    camera: Mapped[str | None] = mapped_column(String)
    # Where (EXIF GPS) and, reverse-geocoded offline at index time (indexer/places.py), which place.
    # Added after schema 1 shipped: older catalogs get them on open (_add_missing_columns).
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    country: Mapped[str | None] = mapped_column(String)  # ISO 3166 code, e.g. "DE"
    region: Mapped[str | None] = mapped_column(String)
    city: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    error: Mapped[str | None] = mapped_column(String)
    retry: Mapped[bool] = mapped_column(default=False)  # error may clear without the file changing (permissions)
    indexed_at: Mapped[datetime] = mapped_column(DateTime)
    # Videos (indexer/video.py), added after schema 1 shipped like the places. A video is one row per keyframe:
    # the file's own row (video_id NULL: the one the scan compares, moves and deletes) holds its first keyframe,
    # each further keyframe is a row with video_id = that row's id, relpath = the file's + b"\0" + milliseconds
    # (a NUL is in no file name, so paths stay unique and decode to the video's), a content hash of its own
    # (indexer.video.keyframe_hash) and the file's metadata. media_type NULL (older rows) means "photo".
    media_type: Mapped[str | None] = mapped_column(String)
    duration_s: Mapped[float | None]
    rotation: Mapped[int | None]
    timestamp_s: Mapped[float | None]
    video_id: Mapped[int | None]
    # A photo that moves (added later, like the videos): motion "live" (an Apple Live Photo: motion_clip is the
    # relpath of its .MOV beside it, motion_clip_stat that clip's "size:mtime_ns", which the scan compares) or
    # "motion_photo" (a Google/Samsung JPEG with its MP4 appended). NULL: a still photo. The clip has no row.
    motion: Mapped[str | None] = mapped_column(String)
    motion_clip: Mapped[bytes | None] = mapped_column(LargeBinary)
    motion_clip_stat: Mapped[str | None] = mapped_column(String)


class Vector(Base):
    """One float16 vector per distinct file content: identical files are embedded once."""

    __tablename__ = "vectors"
    content_hash: Mapped[str] = mapped_column(String, primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Words(Base):
    """Words about one photo (indexer/words.py): its names, captions and keywords, as read when the photo had
    this relpath, mtime and sidecar (a change to any of them reads them again). Added after schema 1 shipped
    (OPTIONAL_TABLES): an older catalog gets it from its next build."""

    __tablename__ = "words"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    relpath: Mapped[bytes] = mapped_column(LargeBinary)
    mtime_ns: Mapped[int]
    sidecar: Mapped[str] = mapped_column(String, default="")  # indexer.words.sidecar_signature
    filename: Mapped[str] = mapped_column(String, default="")
    keywords: Mapped[str] = mapped_column(String, default="")
    description: Mapped[str] = mapped_column(String, default="")


class OcrText(Base):
    """Text found in a photo's pixels (indexer/ocr.py), by content: moves and copies never run OCR again.
    ``error`` says why OCR failed (the photo is searchable without text). Added after schema 1 (OPTIONAL_TABLES)."""

    __tablename__ = "ocr_text"
    content_hash: Mapped[str] = mapped_column(String, primary_key=True)
    text: Mapped[str] = mapped_column(String, default="")
    error: Mapped[str | None] = mapped_column(String)
    engine: Mapped[str] = mapped_column(String, default="")
    done_at: Mapped[datetime] = mapped_column(DateTime)


# Tables newer than schema 1: a catalog without them still opens (readers see no text); a build creates them.
OPTIONAL_TABLES = frozenset({"words", "ocr_text"})
# The full-text index over Words and OcrText (rowid = image id; normalised text, indexer/fulltext.py), and the
# trigger that drops a photo's row in the same transaction as the photo. Trigram: CJK and other unspaced scripts
# match by substring.
FULLTEXT_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(filename, keywords, description, ocr, tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS images_text_gone AFTER DELETE ON images BEGIN "
    "DELETE FROM text_fts WHERE rowid = old.id; END",
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def encode_relpath(relpath: str) -> bytes:
    return os.fsencode(relpath)


def decode_relpath(raw: bytes) -> str:
    """The file's relative path; a video keyframe row's relpath (file + NUL + milliseconds) gives its video's."""
    return os.fsdecode(raw.split(b"\0", 1)[0])


def keyframe_relpath(video_relpath: bytes, timestamp_s: float) -> bytes:
    """The stored relpath of a video's keyframe row (see ``Image``)."""
    return video_relpath + b"\0" + str(round(timestamp_s * 1000)).encode()


class Catalog:
    """A connection to one catalog file plus the queries the indexer needs.

    A reader (``writable=False``) that cannot open the file for writing (read-only mount,
    full disk: SQLite cannot create its ``-shm`` file) falls back to ``mode=ro`` and then to
    ``immutable=1`` (``immutable=True`` asks for that at once: a published snapshot, whose folder must stay
    untouched); ``mode`` says which one is in use. Low-level SQLite errors become
    IndexerErrors that say what to do (damaged file, full disk, read-only media).
    """

    def __init__(self, path: Path, create: bool = False, writable: bool = False, immutable: bool = False):
        self.path = Path(path)
        self.vector_store: RowStore | None = None  # serving exact_vectors, when attached
        if not create and not self.path.is_file():
            raise IndexCorruptError(f"{self.path}: catalog file missing")
        # immutable: a file that never changes (a downloaded Hub snapshot): opened with nothing written beside it
        self.mode = (
            "immutable"
            if immutable and not (create or writable)
            else _open_mode(self.path, writable=create or writable)
        )
        self.engine = self._connect(_uri(self.path, self.mode))
        try:
            with self.engine.connect() as connection:
                if self.mode == "rw":
                    connection.execute(text("PRAGMA journal_mode=WAL"))
                if create:
                    Base.metadata.create_all(connection)
                    connection.commit()
                    _add_missing_columns(connection)  # before the indexes: a newer index may be on a newer column
                    _ensure_indexes(connection)
                    for statement in FULLTEXT_DDL:
                        connection.exec_driver_sql(statement)
                    connection.commit()
                names = set(self.engine.dialect.get_table_names(connection))
                if "images" in names and self.mode == "rw":
                    _add_missing_columns(connection)
            if "images" in names and self.mode != "rw":
                self._read_upgraded_copy()
        except IndexerError:
            self.engine.dispose()
            raise
        except DatabaseError as error:
            self.engine.dispose()
            raise IndexCorruptError(
                f"{self.path}: not a readable SQLite catalog ({str(error.orig or error).splitlines()[0]}). "
                "Check the file's permissions; if it is not a catalog at all, restore it from a backup or move the "
                "index folder aside and build it again."
            ) from error
        problem = _schema_problem(self.engine, names)
        if problem:
            self.engine.dispose()
            raise IndexCorruptError(f"{self.path}: {problem}; move the index folder aside and build it again")
        if create and self.path.stat().st_size <= CHEAP_CHECK_BYTES:  # a writer checks before it writes, when cheap
            damage = self.integrity_problem()
            if damage:
                self.engine.dispose()
                raise IndexCorruptError(damaged_message(self.path, damage))

    def _connect(self, uri: str):
        """A SQLAlchemy engine on the SQLite file at ``uri``, whose low-level errors become IndexerErrors."""
        engine = create_engine(
            f"sqlite:///{self.path}",
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "handle_error", self._explain)
        return engine

    def _read_upgraded_copy(self) -> None:
        """A catalog an older version wrote that cannot be upgraded where it lies (a published snapshot, read-only
        media) is read through a private copy with the nullable columns added since; the file itself is never
        written. One that lacks more than that is left to the schema check, which names what is missing."""
        from sqlalchemy import inspect

        with self.engine.connect() as connection:
            have = {column["name"] for column in inspect(connection).get_columns("images")}
        missing = [column for column in Image.__table__.columns if column.name not in have]
        if not missing or not all(column.nullable for column in missing):
            return
        try:
            copy = _upgraded_copy(self.path, self.mode)
        except OSError as error:
            raise IndexCorruptError(
                f"{self.path}: written by an older version and not writable here, so it is read through an upgraded "
                f"copy in {user_cache_dir() / UPGRADED_CATALOGS}, which could not be made ({error}); set "
                "MME5_CACHE_DIR to a writable folder"
            ) from error
        self.engine.dispose()
        self.engine = self._connect(_uri(copy, "immutable"))
        log.info("%s: written by an older version and not writable here: reading an upgraded copy, %s", self.path, copy)

    def _explain(self, context) -> None:
        """SQLAlchemy hook: replace a raw damaged/full/read-only SQLite error by one clear IndexerError."""
        problem = storage_problem(context.original_exception, self.path)
        if problem is not None:
            raise problem from context.original_exception

    def integrity_problem(self, full: bool = False) -> str | None:
        """SQLite's own check of every page and index (``quick_check``; ``integrity_check`` if ``full``):
        None when sound, else the first findings (reading a damaged page may itself fail: that is a finding too)."""
        pragma = "integrity_check" if full else "quick_check"
        try:
            with self.engine.connect() as connection:
                rows = [
                    " ".join(line for line in str(row[0]).splitlines() if not line.startswith("*** in database"))
                    for row in connection.exec_driver_sql(f"PRAGMA {pragma}(20)")
                ]
        except IndexCorruptError as error:
            return str(error.__cause__ or error).splitlines()[0]
        return (
            None if rows == ["ok"] else "; ".join(rows[:5]) + (f" (and {len(rows) - 5} more)" if len(rows) > 5 else "")
        )

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        if self.vector_store is not None:
            self.vector_store.close()
            self.vector_store = None
        self.engine.dispose()

    # -- metadata ------------------------------------------------------------------
    def get_meta(self, session: Session | None = None) -> dict[str, Any]:
        with _maybe(session, self) as s:
            rows = [(row.key, row.value) for row in s.scalars(select(Meta))]
        meta = {}
        for key, value in rows:
            try:
                meta[key] = json.loads(value)
            except (TypeError, ValueError):  # a damaged catalog, or a stranger's (a downloaded published index)
                raise IndexCorruptError(
                    f"{self.path}: the catalog's meta value {str(key)[:80]!r} is not JSON "
                    f"({str(value)[:80]!r}); it was not written by the indexer. Restore the index "
                    "from a backup or build it again"
                ) from None
        return meta

    @staticmethod
    def set_meta(executor, **values: Any) -> None:
        """Upsert metadata keys through a Session or a Connection (inside the caller's transaction)."""
        rows = [dict(key=key, value=json.dumps(value, default=str)) for key, value in values.items()]
        statement = sqlite_insert(Meta)
        executor.execute(
            statement.on_conflict_do_update(index_elements=["key"], set_={"value": statement.excluded.value}), rows
        )

    # -- queries -------------------------------------------------------------------
    def roots(self, session: Session | None = None) -> list[Root]:
        with _maybe(session, self) as s:
            return list(s.scalars(select(Root).order_by(Root.id)))

    def ok_ids(self, session: Session | None = None) -> np.ndarray:
        with _maybe(session, self) as s:
            ids = s.scalars(select(Image.id).where(Image.status == STATUS_OK).order_by(Image.id)).all()
        return np.asarray(ids, dtype=np.int64)

    def ok_id_summary(self, session: Session | None = None) -> tuple[int, int, int, int]:
        """(count, sum, min, max) of searchable ids: a cheap fingerprint of the id set."""
        with _maybe(session, self) as s:
            row = s.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(Image.id), 0),
                    func.coalesce(func.min(Image.id), 0),
                    func.coalesce(func.max(Image.id), 0),
                ).where(Image.status == STATUS_OK)
            ).one()
        count, total, low, high = (int(value) for value in row)
        return count, total, low, high

    def count(self, status: str = STATUS_OK, session: Session | None = None) -> int:
        with _maybe(session, self) as s:
            return int(s.scalar(select(func.count()).select_from(Image).where(Image.status == status)) or 0)

    def vectors_for_ids(self, ids: Iterable[int], session: Session | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, float16 vectors) for ok images, in the order of the ids found."""
        ids = [int(i) for i in ids]
        found, rows = [], []
        with _maybe(session, self) as s:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = (
                    select(Image.id, Vector.vector)
                    .join(Vector, Vector.content_hash == Image.content_hash)
                    .where(Image.id.in_(chunk), Image.status == STATUS_OK)
                )
                for image_id, blob in s.execute(query):
                    found.append(image_id)
                    rows.append(blob)
        return np.asarray(found, dtype=np.int64), _blobs_to_array(rows)

    def exact_vectors(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """``vectors_for_ids`` for the re-rank of searchable ids: from the memory-mapped vector store
        when one is attached (indexer/rowstore.py), else from the BLOBs."""
        store = self.vector_store
        return self.vectors_for_ids(ids) if store is None else store.vectors_for_ids(ids, self)

    def iter_ok_vectors(
        self, chunk: int = 4096, session: Session | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All searchable (id, float16 vector) pairs in id order, a chunk at a time."""
        with _maybe(session, self) as s:
            last = -1
            while True:
                rows = s.execute(
                    select(Image.id, Vector.vector)
                    .join(Vector, Vector.content_hash == Image.content_hash)
                    .where(Image.status == STATUS_OK, Image.id > last)
                    .order_by(Image.id)
                    .limit(chunk)
                ).all()
                if not rows:
                    return
                last = rows[-1][0]
                yield np.asarray([r[0] for r in rows], dtype=np.int64), _blobs_to_array([r[1] for r in rows])

    def ids_where(
        self,
        conditions: list,
        places: list[tuple[int, bytes | None]] | None = None,
        limit: int | None = None,
        session: Session | None = None,
    ) -> np.ndarray:
        """Sorted ok ids meeting every SQL condition (on ``Image`` columns), in any of ``places``.

        A place is (root id, relpath prefix, or None for the whole root); each is one range scan
        of the (root_id, relpath) index. ``limit`` stops after that many ids (which ones is
        unspecified): enough to tell a small set. Search filters bring their own conditions
        (search_app/filters.py), so a new filter needs no new query here.
        """
        conditions = [Image.status == STATUS_OK, *conditions]
        queries = (
            [select(Image.id).where(*conditions)]
            if places is None
            else [
                select(Image.id).where(Image.root_id == root_id, *conditions, *_under(prefix))
                for root_id, prefix in places
            ]
        )
        found: list[int] = []
        with _maybe(session, self) as s:
            for query in queries:
                if limit is not None:
                    if len(found) >= limit:
                        break
                    query = query.limit(limit - len(found))
                found.extend(s.scalars(query))
        return np.unique(np.asarray(found, dtype=np.int64))

    def newest_ids(self, limit: int, session: Session | None = None) -> list[int]:
        """Ok ids of files (a video by its own row, not each keyframe), newest first: by capture date, else by when
        they were indexed (added); what the search page shows before the first search."""
        newest = func.coalesce(Image.taken_at, Image.indexed_at)
        query = (
            select(Image.id)
            .where(Image.status == STATUS_OK, Image.video_id.is_(None))
            .order_by(newest.desc(), Image.id.desc())
            .limit(int(limit))
        )
        with _maybe(session, self) as s:
            return [int(i) for i in s.scalars(query)]

    def distinct_values(self, column, session: Session | None = None) -> list:
        """Distinct non-null values of one ``Image`` column among ok images (filter suggestions)."""
        with _maybe(session, self) as s:
            return list(s.scalars(select(column).where(Image.status == STATUS_OK, column.is_not(None)).distinct()))

    def place_centres(self, session: Session | None = None) -> list[tuple]:
        """("city" or "region", name, country code, mean latitude, mean longitude, photos) for each named city and
        region among ok images: where the index's photos of a place were taken (search_app/gazetteer.py tells
        same-named places apart by it)."""
        rows = []
        with _maybe(session, self) as s:
            for kind, column in (("city", Image.city), ("region", Image.region)):
                query = (
                    select(column, Image.country, func.avg(Image.latitude), func.avg(Image.longitude), func.count())
                    .where(
                        Image.status == STATUS_OK,
                        column.is_not(None),
                        Image.latitude.is_not(None),
                        Image.longitude.is_not(None),
                    )
                    .group_by(column, Image.country)
                )
                rows += [(kind, *row) for row in s.execute(query)]
        return rows

    @staticmethod
    def delete_orphan_vectors(session: Session) -> int:
        """Vectors no image refers to any more (their files were all deleted or changed)."""
        used = select(Image.content_hash).where(Image.status == STATUS_OK, Image.content_hash.is_not(None))
        result = cast("CursorResult[Any]", session.execute(delete(Vector).where(Vector.content_hash.not_in(used))))
        return int(result.rowcount or 0)


def _schema_problem(engine, names: set[str]) -> str | None:
    """Tables or columns this version needs but the file lacks (an older or foreign catalog)."""
    from sqlalchemy import inspect

    missing = {table.name for table in Base.metadata.sorted_tables} - names - OPTIONAL_TABLES
    if missing:
        return f"catalog lacks tables {sorted(missing)}"
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        if table.name not in names:
            continue
        have = {column["name"] for column in inspector.get_columns(table.name)}
        lacking = {column.name for column in table.columns} - have
        if lacking:
            return f"catalog table {table.name} lacks columns {sorted(lacking)} (written by another version)"
    with engine.connect() as connection:
        row = connection.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
    if row is None:
        return None
    try:
        version = json.loads(row)
    except (TypeError, ValueError):
        version = None
    if not isinstance(version, int) or isinstance(version, bool):
        return f"catalog schema version {str(row)[:80]!r} is not a version number (not written by the indexer)"
    if version > SCHEMA_VERSION:
        return f"catalog schema version {row} is newer than this indexer understands ({SCHEMA_VERSION}); upgrade"
    return None


def _under(prefix: bytes | None) -> list:
    """SQL conditions for "relpath is ``prefix`` or lies below it" (whole names: "a" is not "ab/x").

    The byte range [prefix, prefix + "0") ("0" follows "/") lets SQLite seek the index; the
    second condition then drops siblings like "a-b" and "a.jpg" that sort inside that range.
    """
    if prefix is None:
        return []
    return [
        Image.relpath >= prefix,
        Image.relpath < prefix + b"0",
        or_(Image.relpath == prefix, func.substr(Image.relpath, len(prefix) + 1, 1) == b"/"),
    ]


def _add_missing_columns(connection) -> None:
    """Give a catalog from an older version the nullable columns added since (places), in one transaction.

    Additive only: rows keep their data and older indexers ignore the new columns. A catalog that cannot be
    written is left as it is and read through an upgraded copy (``_upgraded_copy``).
    """
    from sqlalchemy import inspect

    have = {column["name"] for column in inspect(connection).get_columns("images")}
    missing = [column for column in Image.__table__.columns if column.name not in have and column.nullable]
    if not missing:
        return
    try:
        for column in missing:
            kind = column.type.compile(dialect=connection.dialect)
            connection.execute(text(f'ALTER TABLE images ADD COLUMN "{column.name}" {kind}'))
        connection.commit()
    except DatabaseError:
        connection.rollback()


UPGRADED_CATALOGS = "upgraded-catalogs"  # the folder in the user's cache of read-only catalogs' upgraded copies


def _upgraded_copy(path: Path, mode: str) -> Path:
    """A copy of the catalog at ``path`` (opened in ``mode``, never written) with the nullable columns this
    version adds, in the user's cache; made once per version of the file (its size and mtime), and the copy of an
    earlier version of the same file removed."""
    stat = path.stat()
    folder = user_cache_dir() / UPGRADED_CATALOGS
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # private: a catalog of the user's own names the user's folders
    name = hashlib.blake2b(os.fsencode(os.path.realpath(path)), digest_size=8).hexdigest()
    copy = folder / f"{name}-{stat.st_size}-{stat.st_mtime_ns}.sqlite"
    if copy.is_file():
        return copy
    handle, partial = tempfile.mkstemp(prefix=f".{copy.name}.", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        source = sqlite3.connect(_uri(path, mode), uri=True, timeout=10)
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one file: the copy is then read with immutable=1
        finally:
            source.close()
            target.close()
        engine = create_engine(f"sqlite:///{partial}")
        try:
            with engine.connect() as connection:
                _add_missing_columns(connection)
        finally:
            engine.dispose()
        fsync_file(partial)
        os.replace(partial, copy)
        fsync_dir(folder)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    for earlier in folder.glob(f"{name}-*.sqlite"):
        if earlier != copy:
            earlier.unlink(missing_ok=True)
    return copy


def _ensure_indexes(connection) -> None:
    """Create indexes a newer version declares on a catalog made by an older one.

    An index changes no data: older indexers keep reading and writing such a catalog, and
    this version reads one without it (only slower), so the schema version stays the same.
    """
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            index.create(connection, checkfirst=True)


def _blobs_to_array(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.empty((0, 0), dtype=np.float16)
    return np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(blobs), -1)


def _uri(path: Path, mode: str) -> str:
    quoted = urllib.parse.quote(os.fsencode(os.path.abspath(path)))
    return {"rw": f"file:{quoted}", "ro": f"file:{quoted}?mode=ro", "immutable": f"file:{quoted}?mode=ro&immutable=1"}[
        mode
    ]


def _open_mode(path: Path, writable: bool) -> str:
    """ "rw" when the file opens normally; for a reader that cannot write there, "ro" or "immutable".

    ``immutable=1`` (no locks, no -shm) is the last resort: on read-only media nobody can be
    writing, and on a full disk no build can commit. A write-ahead log it cannot read is reported.
    """
    modes = ("rw",) if writable else ("rw", "ro", "immutable")
    for mode in modes:
        try:
            connection = sqlite3.connect(_uri(path, mode), uri=True, timeout=10)
            try:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as error:
            problem = storage_problem(error, path)
            retry = getattr(error, "sqlite_errorcode", 0) & 0xFF in (
                SQLITE_READONLY,
                SQLITE_IOERR,
                SQLITE_CANTOPEN,
                SQLITE_FULL,
            )
            if mode != modes[-1] and retry:
                continue
            if problem is not None:
                raise problem from error
            return mode  # the engine's first connection reports it with the catalog's usual message
        if mode == "immutable" and _size(Path(f"{path}-wal")) > 0:  # immutable would ignore the log's commits
            folder = path.parent
            why = (
                disk_full_message(
                    folder, "SQLite cannot create the shared-memory file it needs to read the catalog's write-ahead log"
                )
                if low_space(folder)
                else None
            )
            raise (
                DiskFullError(why)
                if why
                else ReadOnlyIndexError(
                    f"{folder}: the index is on read-only storage and its catalog has an unfinished write-ahead log "
                    f"({path.name}-wal) that SQLite can only read with write access; open the index once on writable "
                    "storage (any command does) to fold the log in, then it can be served read-only."
                )
            )
        return mode
    return modes[-1]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: each commit survives a process kill
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class _maybe:
    """Use the caller's session, or open (and close) a short one."""

    def __init__(self, session: Session | None, catalog: Catalog):
        self.given, self.catalog = session, catalog
        self.owned: Session | None = None  # the short session this opened, closed on exit

    def __enter__(self) -> Session:
        if self.given is not None:
            return self.given
        self.owned = self.catalog.session()
        return self.owned

    def __exit__(self, *exc) -> None:
        if self.owned is not None:
            self.owned.close()
            self.owned = None
