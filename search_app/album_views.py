"""Albums, used: opening one (its search run again through the engine), exporting its photos, and the CLI.

Above the engine (storage is ``albums``, below it). Opening an album searches again, so photos indexed since
appear; pinned photos are always in it (first), removed ones never.

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
import re
import shutil
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

from indexer.files import printable

from .albums import ALBUM_ERRORS, ALBUM_K, Album, albums_for
from .results import result_of

log = logging.getLogger(__name__)


def open_album(engine, album: Album, k: int = ALBUM_K) -> list:
    """The album's photos now: pinned first, then the saved search run again (removed ones left out). A pinned video
    moment is the video at that second; the search then leaves that video out, as it does a removed moment's."""
    chosen = [*album.removed, *album.pinned]  # a video moment pinned or removed: the search leaves the whole video out
    exclude = sorted({*chosen, *engine.whole_videos(chosen)})
    options = {**album.options, "k": k, "offset": 0, "exclude": exclude}
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
        pinned.append(result_of(record, 1.0))
    return pinned + list(page.results)


def servable(engine, results) -> list:
    """The results whose files the engine may serve (its path guard), with their checked paths: what a web
    download of an album may contain (never a file outside the indexed folders)."""
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
                log.warning(
                    "%s: cannot make symbolic links there (%s); copying the photos instead",
                    target,
                    error.strerror or error,
                )
                copy = True  # the next link would fail the same way
        if copy:
            shutil.copy2(result.path, destination)
        written.append(destination)
    return written


def export_zip(results, target: Path) -> Path:
    """A zip of the album's original files, written through a temporary file (never a half zip, nothing left
    behind when it fails). Entry names are made safe: any file name (not UTF-8, a backslash, a control
    character) unpacks as one file with a readable name on every system."""
    from mme5.atomic import atomic_open

    target = Path(target)
    names: set[str] = set()
    with atomic_open(target, "wb") as file, zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        for result in results:  # photos are compressed already: stored as they are
            name = _zip_name(Path(result.path).name)
            stem, suffix, n = Path(name).stem, Path(name).suffix, 1
            while name.lower() in names:  # case-insensitive file systems would merge "A.jpg" and "a.jpg"
                n += 1
                name = f"{stem}-{n}{suffix}"
            names.add(name.lower())
            archive.write(result.path, name)
    return target


def _zip_name(name: str) -> str:
    """A file name as a zip entry: undecodable bytes, path separators and characters Windows refuses become "_"."""
    readable = os.fsencode(name).decode("utf-8", "replace")
    return re.sub(r'[\x00-\x1f\x7f\\/:*?"<>|\ufffd]', "_", readable).strip(" .") or "photo"


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


def saved_search(
    options, text: str = "", similar_to: int | None = None, dates_from_text: bool = False, place_from_text: bool = False
) -> tuple[dict, dict]:
    """What an album keeps of a search on screen: its query, and the options set (``saved_options``, dates as ISO
    text, as the API and the CLI write them). A date range or place read from the text is left out: opening the
    album reads the text again, so "beach July 2023" keeps its dates and a place filter typed in a box stays."""
    if not text and similar_to is None:
        raise ValueError("an album needs a query: a text, or a photo to find more like (similar_to)")
    query = {"text": text} if text else {"similar_to": int(similar_to)}
    from_text = (("date_from", "date_to") if dates_from_text else ()) + (("place",) if place_from_text else ())
    kept = saved_options({key: value for key, value in vars(options).items() if key not in from_text})
    return query, {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in kept.items()}


def _unique(folder: Path, name: str) -> Path:
    candidate, stem, suffix, n = folder / name, Path(name).stem, Path(name).suffix, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search_app.albums",
        description="Saved searches (albums).",
        epilog=__doc__.split("CLI:\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["list", "save", "show", "export", "zip"])
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--name", help="album name")
    parser.add_argument("--text", help="save: the query text")
    parser.add_argument("--options", default="{}", help='save: search options as JSON, e.g. \'{"folder": "2023"}\'')
    parser.add_argument("--to", type=Path, help="export: target folder; zip: target file")
    parser.add_argument("--copy", action="store_true", help="export: copy the files instead of linking them")
    args = parser.parse_args(argv)
    from indexer import IndexerError, IndexStore

    try:
        store = IndexStore.open(args.index)  # read-only where it must be; a published copy is never written
        try:
            albums = albums_for(store)
        finally:
            store.close()
    except (*ALBUM_ERRORS, IndexerError) as error:
        print(printable(f"error: {error}"), file=sys.stderr)
        return 1
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
            done = (
                "linked"
                if linked == len(written)
                else "copied"
                if not linked
                else f"{linked} linked, {len(written) - linked} copied"
            )
            print(f"{len(written)} photos {done} into {args.to}", file=sys.stderr)
        else:
            if args.to is None:
                raise ValueError("zip needs --to FILE.zip")
            print(export_zip(results, args.to))
        return 0
    except (*ALBUM_ERRORS, IndexerError) as error:
        print(printable(f"error: {error}"), file=sys.stderr)
        return 1
    finally:
        albums.close()


if __name__ == "__main__":
    sys.exit(main())
