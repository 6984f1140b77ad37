"""Albums: saved searches in the index's own SQLite file, re-run on opening, with pinned and removed photos.

An album is a query (text, or "like photo N") plus its options (filters, without, strong
matches, sort). Opening it searches again, so photos indexed since appear; pinned photos are
always in it (first), removed ones never. Each change is one SQLite transaction in the catalog
file (WAL, synchronous=NORMAL, like the catalog itself): a crash or kill leaves the album as it
was before or after the change, never half-written.

CLI:
  python -m search_app.albums list --index INDEX
  python -m search_app.albums save --index INDEX --name "Beach 2023" --text "Strand im Juli 2023"
  python -m search_app.albums export --index INDEX --name "Beach 2023" --to ~/Desktop/beach [--copy]
  python -m search_app.albums zip --index INDEX --name "Beach 2023" --to beach.zip
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, String, Table, create_engine, delete, event, \
    select, text

from .limits import check_album_name, check_length

log = logging.getLogger(__name__)
METADATA = MetaData()
# Kept out of the catalog's declared schema: a catalog without these tables is still a valid
# catalog for every indexer version; they are created on the first album saved.
ALBUMS = Table("albums", METADATA,
               Column("id", Integer, primary_key=True, autoincrement=True),
               Column("name", String, unique=True, nullable=False),
               Column("query", String, nullable=False),  # JSON: {"text": ...} or {"similar_to": id}
               Column("options", String, nullable=False),  # JSON: search options
               Column("created_at", DateTime, nullable=False),
               Column("updated_at", DateTime, nullable=False),
               sqlite_autoincrement=True)
PINS = Table("album_pins", METADATA,
             Column("album_id", Integer, ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True),
             Column("image_id", Integer, primary_key=True),
             Column("pinned", Integer, nullable=False))  # 1: always in the album, 0: removed from it
ALBUM_K = 200  # photos an album shows at most (besides its pinned ones)


@dataclass(frozen=True)
class Album:
    name: str
    query: dict
    options: dict
    pinned: tuple[int, ...]
    removed: tuple[int, ...]
    updated_at: datetime

    def to_json(self) -> dict:
        return {"name": self.name, "query": self.query, "options": self.options, "pinned": list(self.pinned),
                "removed": list(self.removed), "updated_at": self.updated_at.isoformat()}


class Albums:
    """Albums of one index (``catalog_path``: its catalog.sqlite)."""

    def __init__(self, catalog_path: str | os.PathLike):
        self.path = Path(catalog_path)
        self.engine = create_engine(f"sqlite:///{self.path}")
        event.listen(self.engine, "connect", _pragmas)
        self._ready = False

    def close(self) -> None:
        self.engine.dispose()

    def _tables(self) -> None:
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
            values = dict(query=json.dumps(query, ensure_ascii=False), options=json.dumps(options, default=str),
                          updated_at=now)
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
            pins = connection.execute(select(PINS.c.image_id, PINS.c.pinned).where(PINS.c.album_id == album_id)
                                      .order_by(PINS.c.image_id)).all()
        return Album(row.name, json.loads(row.query), json.loads(row.options),
                     tuple(i for i, pinned in pins if pinned), tuple(i for i, pinned in pins if not pinned),
                     row.updated_at)

    def _has_tables(self) -> bool:
        with self.engine.connect() as connection:
            return bool(connection.execute(text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='albums'"))
                        .first())

    def _id(self, connection, name: str) -> int:
        found = connection.execute(select(ALBUMS.c.id).where(ALBUMS.c.name == _name(name))).scalar()
        if found is None:
            known = list(connection.scalars(select(ALBUMS.c.name).order_by(ALBUMS.c.name)))
            raise ValueError(f"no album called “{name}”" + (f" (there are: {', '.join(known)})" if known else ""))
        return int(found)


def open_album(engine, album: Album, k: int = ALBUM_K) -> list:
    """The album's photos now: pinned first, then the saved search run again (removed ones left out)."""
    options = {**album.options, "k": k, "offset": 0, "exclude": [*album.removed, *album.pinned]}
    if album.query.get("similar_to") is not None:
        page = engine.search_similar(int(album.query["similar_to"]), **options)
    else:
        page = engine.search_text(album.query["text"], **options)
    pinned = []
    for image_id in album.pinned:
        try:
            record = engine.record(image_id)
        except ValueError:  # deleted since it was pinned
            continue
        from .results import result_of

        pinned.append(result_of(record, 1.0))
    return pinned + list(page.results)


def servable(engine, results) -> list:
    """The results whose files the engine may serve (its path guard), with their checked paths: what a web
    download of an album may contain (never a file outside the indexed folders)."""
    from dataclasses import replace

    allowed = []
    for result in results:
        try:
            allowed.append(replace(result, path=str(engine.servable_path(result.path))))
        except (OSError, ValueError):  # PathNotAllowedError, or gone since indexing
            continue
    return allowed


def export(results, target: Path, copy: bool = False) -> list[Path]:
    """A folder with the album's photos as symlinks (default) or copies; names made unique.

    Where links cannot be made (Windows without Developer Mode or admin rights, FAT/exFAT drives)
    it copies instead, with a warning: the user asked for the photos in that folder."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for result in results:
        destination = _unique(target, Path(result.path).name)
        if not copy:
            try:
                os.symlink(result.path, destination)
            except FileExistsError:
                raise
            except OSError as error:
                log.warning("%s: cannot make symbolic links there (%s); copying the photos instead", target,
                            error.strerror or error)
                copy = True  # the next link would fail the same way
        if copy:
            shutil.copy2(result.path, destination)
        written.append(destination)
    return written


def export_zip(results, target: Path) -> Path:
    """A zip of the album's original files, written to a temporary name first (never a half zip)."""
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    names: set[str] = set()
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:  # photos are compressed already
        for result in results:
            name = Path(result.path).name
            stem, suffix, n = Path(name).stem, Path(name).suffix, 1
            while name in names:
                n += 1
                name = f"{stem}-{n}{suffix}"
            names.add(name)
            archive.write(result.path, name)
    partial.replace(target)
    return target


def saved_options(options: dict) -> dict:
    """The options worth keeping in an album: set ones only (no paging, no defaults), as JSON-able values."""
    from .options import SearchOptions

    defaults = SearchOptions()
    kept = {}
    for name, value in options.items():
        if name in ("k", "offset", "exclude") or value is None or value == "" or value == ():
            continue
        if hasattr(defaults, name) and getattr(defaults, name) == value:
            continue
        kept[name] = list(value) if isinstance(value, tuple) else value
    return kept


def _unique(folder: Path, name: str) -> Path:
    candidate, stem, suffix, n = folder / name, Path(name).stem, Path(name).suffix, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


def _name(name) -> str:
    check_album_name(name)
    text_name = " ".join(str(name or "").split())
    if not text_name:
        raise ValueError("An album needs a name.")
    return text_name


def _pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search_app.albums", description="Saved searches (albums).",
                                     epilog=__doc__.split("CLI:\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "save", "show", "export", "zip"])
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--name", help="album name")
    parser.add_argument("--text", help="save: the query text")
    parser.add_argument("--options", default="{}", help='save: search options as JSON, e.g. \'{"folder": "2023"}\'')
    parser.add_argument("--to", type=Path, help="export: target folder; zip: target file")
    parser.add_argument("--copy", action="store_true", help="export: copy the files instead of linking them")
    args = parser.parse_args(argv)
    albums = Albums(args.index / "catalog.sqlite")
    try:
        if args.command == "list":
            print("\n".join(albums.names()))
            return 0
        if args.command == "save":
            album = albums.save(args.name, {"text": args.text or ""}, json.loads(args.options))
            print(json.dumps(album.to_json(), ensure_ascii=False))
            return 0
        album = albums.get(args.name)
        from .engine import SearchEngine

        engine = SearchEngine.open(args.index)
        try:
            results = open_album(engine, album)
        finally:
            engine.close()
        if args.command == "show":
            print("\n".join(result.path for result in results))
        elif args.command == "export":
            if args.to is None:
                raise ValueError("export needs --to FOLDER")
            written = export(results, args.to, copy=args.copy)
            linked = sum(path.is_symlink() for path in written)
            done = ("linked" if linked == len(written) else "copied" if not linked
                    else f"{linked} linked, {len(written) - linked} copied")
            print(f"{len(written)} photos {done} into {args.to}", file=sys.stderr)
        else:
            if args.to is None:
                raise ValueError("zip needs --to FILE.zip")
            print(export_zip(results, args.to))
        return 0
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        albums.close()


if __name__ == "__main__":
    sys.exit(main())
