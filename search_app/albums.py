"""Albums, stored: saved searches with their pinned and removed photos (below the engine; opening an
album, exporting it and the CLI are in ``album_views``).

An album is a query (text, or "like photo N") plus its options (filters, without, strong
matches, sort). A local index keeps its albums in its own SQLite file (the catalog), opened as the
catalog is: where the index is read-only they can be read, not changed. A published index
(downloaded from the Hub) is never written: its albums live in the user's own album store for that
dataset (``albums_for``). Each change is one SQLite transaction (WAL, synchronous=NORMAL, like the
catalog itself): a crash or kill leaves the album as it was before or after the change, never
half-written; a full disk or read-only storage is one sentence.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sqlite3
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    select,
    text,
)

from indexer.catalog import _open_mode, _sqlite_pragmas, _uri
from indexer.published import HUB_CACHE_DATASET
from indexer.errors import DiskFullError, ReadOnlyIndexError, low_space, storage_problem

from .errors import SearchAppError
from .limits import check_album_name, check_length
from .private import data_home, private_dir

METADATA = MetaData()
# Kept out of the catalog's declared schema: a catalog without these tables is still a valid
# catalog for every indexer version; they are created on the first album saved.
ALBUMS = Table(
    "albums",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, unique=True, nullable=False),
    Column("query", String, nullable=False),  # JSON: {"text": ...} or {"similar_to": id}
    Column("options", String, nullable=False),  # JSON: search options
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    sqlite_autoincrement=True,
)
PINS = Table(
    "album_pins",
    METADATA,
    Column("album_id", Integer, ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True),
    Column("image_id", Integer, primary_key=True),
    Column("pinned", Integer, nullable=False),
)  # 1: always in the album, 0: removed from it
ALBUM_K = 200  # photos an album shows at most (besides its pinned ones)
# What an album action can meet that its user can act on, each a sentence: a bad name or query, a read-only index,
# a full disk (OSError subclasses), an album folder that is not private (SearchAppError)
ALBUM_ERRORS = (ValueError, OSError, SearchAppError)


@dataclass(frozen=True)
class Album:
    name: str
    query: dict
    options: dict
    pinned: tuple[int, ...]
    removed: tuple[int, ...]
    updated_at: datetime

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "query": self.query,
            "options": self.options,
            "pinned": list(self.pinned),
            "removed": list(self.removed),
            "updated_at": self.updated_at.isoformat(),
        }


class Albums:
    """The albums kept in one SQLite file: an index's catalog, or a published index's store in the user's folder.

    ``mode`` as ``indexer.catalog.Catalog`` opened the file ("rw"; "ro" or "immutable" on read-only storage or a
    full disk: albums are read, and a change is refused with a sentence). None: found out the same way. ``store``:
    the file is the user's own album store, created (in a private folder) on the first album saved."""

    def __init__(self, path: str | os.PathLike, mode: str | None = None, store: bool = False):
        self.path = Path(path)
        self.store = store
        if mode is None:
            if not self.path.is_file():
                raise ValueError(f"{self.path}: no catalog here, so no albums; give the folder of an index")
            mode = _open_mode(self.path, writable=False)
        self.mode = mode
        uri = _uri(self.path, mode)
        self.engine = create_engine(
            f"sqlite:///{self.path}",
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10),
        )
        event.listen(self.engine, "connect", self._pragmas)
        event.listen(self.engine, "handle_error", self._explain)
        self._ready = False

    def close(self) -> None:
        self.engine.dispose()

    def _tables(self) -> None:
        """Before each change: refused where the file cannot be written; the tables made on the first one."""
        if self.mode != "rw":
            raise self._refusal(full=low_space(self.path.parent))
        if self.store and not self.path.is_file():
            try:
                private_dir(self.path.parent)  # album names and queries are the user's own
            except OSError as error:
                raise self._refusal(full=error.errno == errno.ENOSPC) from error
        if not self._ready:
            with self.engine.begin() as connection:
                METADATA.create_all(connection, checkfirst=True)
            self._ready = True

    # -- changes: one transaction each --------------------------------------------------------
    def save(self, name: str, query: dict, options: dict) -> Album:
        """Create or replace the album ``name`` (its pins are kept when replacing)."""
        name = _name(name)
        if isinstance(query, dict):
            check_length(query.get("text"), "album's query text")
        has_text = isinstance(query, dict) and bool(str(query.get("text") or "").strip())
        has_photo = isinstance(query, dict) and isinstance(query.get("similar_to"), int)
        if not (has_text or has_photo):
            raise ValueError("An album needs a query: a text, or a photo (similar_to: image id).")
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        self._tables()
        with self.engine.begin() as connection:
            row = connection.execute(select(ALBUMS.c.id).where(ALBUMS.c.name == name)).first()
            values = dict(
                query=json.dumps(query, ensure_ascii=False), options=json.dumps(options, default=str), updated_at=now
            )
            if row is None:
                connection.execute(ALBUMS.insert().values(name=name, created_at=now, **values))
            else:
                connection.execute(ALBUMS.update().where(ALBUMS.c.id == row.id).values(**values))
        return self.get(name)

    def pin(self, name: str, image_id: int, pinned: bool = True) -> Album:
        """Pin a photo into the album (``pinned=False``: remove it from the album for good)."""
        self._tables()
        with self.engine.begin() as connection:
            album_id = self._id(connection, name)
            connection.execute(delete(PINS).where(PINS.c.album_id == album_id, PINS.c.image_id == int(image_id)))
            connection.execute(PINS.insert().values(album_id=album_id, image_id=int(image_id), pinned=int(pinned)))
        return self.get(name)

    def unpin(self, name: str, image_id: int) -> Album:
        """Forget a pin or a removal: the photo is in the album again only if the query finds it."""
        self._tables()
        with self.engine.begin() as connection:
            album_id = self._id(connection, name)
            connection.execute(delete(PINS).where(PINS.c.album_id == album_id, PINS.c.image_id == int(image_id)))
        return self.get(name)

    def delete(self, name: str) -> None:
        self._tables()
        with self.engine.begin() as connection:
            album_id = self._id(connection, name)
            connection.execute(delete(PINS).where(PINS.c.album_id == album_id))
            connection.execute(delete(ALBUMS).where(ALBUMS.c.id == album_id))

    # -- reading ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self._has_tables():
            return []
        with self.engine.connect() as connection:
            return list(connection.scalars(select(ALBUMS.c.name).order_by(ALBUMS.c.name)))

    def get(self, name: str) -> Album:
        if not self._has_tables():
            raise ValueError(f"no album called “{name}” (this index has no albums yet)")
        with self.engine.connect() as connection:
            album_id = self._id(connection, name)
            row = connection.execute(select(ALBUMS).where(ALBUMS.c.id == album_id)).one()
            pins = connection.execute(
                select(PINS.c.image_id, PINS.c.pinned).where(PINS.c.album_id == album_id).order_by(PINS.c.image_id)
            ).all()
        return Album(
            row.name,
            json.loads(row.query),
            json.loads(row.options),
            tuple(i for i, pinned in pins if pinned),
            tuple(i for i, pinned in pins if not pinned),
            row.updated_at,
        )

    def _has_tables(self) -> bool:
        if self.store and not self.path.is_file():  # no album saved yet: nothing to create just to read
            return False
        with self.engine.connect() as connection:
            return bool(
                connection.execute(text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='albums'")).first()
            )

    def _id(self, connection, name: str) -> int:
        found = connection.execute(select(ALBUMS.c.id).where(ALBUMS.c.name == _name(name))).scalar()
        if found is None:
            known = list(connection.scalars(select(ALBUMS.c.name).order_by(ALBUMS.c.name)))
            raise ValueError(f"no album called “{name}”" + (f" (there are: {', '.join(known)})" if known else ""))
        return int(found)

    def _pragmas(self, dbapi_connection, record) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        if self.mode == "rw":
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    def _explain(self, context) -> None:
        """SQLAlchemy hook: a full disk or read-only storage met while changing an album is one sentence."""
        problem = storage_problem(context.original_exception, self.path)
        if isinstance(problem, (DiskFullError, ReadOnlyIndexError)):
            raise self._refusal(full=isinstance(problem, DiskFullError)) from context.original_exception
        if problem is not None:
            raise problem from context.original_exception

    def _refusal(self, full: bool) -> OSError:
        folder = self.path.parent
        if full:
            return DiskFullError(
                f"{folder}: the disk is full, so the album was not changed (the albums saved before "
                "are kept, undamaged). Free some space there and try again."
            )
        if self.store:
            return ReadOnlyIndexError(
                f"{folder}: your album folder is on read-only storage (or not writable by this "
                "user), so albums cannot be saved or changed; set XDG_DATA_HOME to a writable "
                "folder of your own."
            )
        return ReadOnlyIndexError(
            f"{folder}: the index is on read-only storage (or not writable by this user), so "
            "albums cannot be saved or changed here; the albums saved before can still be "
            "opened. To change them, copy the index folder to writable storage and serve "
            "that copy."
        )


def albums_for(store) -> Albums:
    """Where the albums of an opened index (``indexer.IndexStore``) live.

    A local index: its catalog file, opened as the catalog is. A published index (downloaded from the Hub: its
    folder must stay exactly as downloaded, each file named by its content): the user's own album store for that
    dataset, ``<data folder>/albums/<dataset>.sqlite``, never a file in or beside the download."""
    if (
        not store.published
        and not store.immutable
        and not HUB_CACHE_DATASET.search(os.fspath(store.index_dir).replace(os.sep, "/"))
    ):
        return Albums(store.catalog.path, mode=store.catalog.mode)
    return Albums(data_home() / "albums" / f"{published_key(store.index_dir)}.sqlite", mode="rw", store=True)


def published_key(index_dir) -> str:
    """The album store's name for a published index: its dataset id when it is a Hugging Face cache snapshot
    (``datasets--USER--NAME``: the same albums for every revision), else one for that folder."""
    match = HUB_CACHE_DATASET.search(os.fspath(index_dir).replace(os.sep, "/"))
    if match:
        return "datasets--" + "--".join(re.sub(r"[^\w.-]", "_", part) for part in match.group(1, 2))
    folder = os.fsencode(os.path.abspath(index_dir))
    return "folder--" + hashlib.sha256(folder).hexdigest()[:16]


def _name(name) -> str:
    check_album_name(name)
    text_name = " ".join(str(name or "").split())
    if not text_name:
        raise ValueError("An album needs a name.")
    return text_name


if __name__ == "__main__":  # the documented command; the CLI lives above the engine, in album_views
    from search_app.album_views import main

    sys.exit(main())
