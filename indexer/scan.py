"""The build's first stage: which folders to index, and which of their files need reading.

``check_roots`` / ``plan_roots`` refuse bad ``--dir`` folders before any work; ``scan`` compares
the folders with the catalog by stat alone (size and mtime) and hands the build its work list
(files to read), the catalog rows whose files were not found, and what it could not look at.
It decides nothing about content and writes nothing: indexer/build.py does that.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from sqlalchemy import select
from tqdm.auto import tqdm

from .catalog import CATALOG_FILE, Image, decode_relpath, encode_relpath
from .errors import BadRootError
from .files import FileEntry, FolderProblem, is_within, pair_live_photos, printable, root_key, scan_root
from .records import FileError


def check_roots(roots: Iterable[Path | str], index_dir: Path) -> list[str]:
    """Absolute root folders, or BadRootError before any work is done."""
    index_key = root_key(index_dir)
    checked: list[str] = []
    for root in roots:
        path = Path(root).expanduser()
        if not path.exists():
            raise BadRootError(f"{root}: folder does not exist; check the --dir path")
        if not path.is_dir():
            raise BadRootError(f"{root}: not a folder; --dir takes a folder of photos")
        key = root_key(path)
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRootError(
                f"{printable(key)}: folder path is not valid UTF-8; index a parent folder "
                "(file and folder names below a root may use any bytes)"
            ) from None
        if is_within(key, index_key):
            raise BadRootError(f"{root}: is inside the index folder {index_dir}; point --dir at your photos")
        for other in checked:
            if is_within(key, other) or is_within(other, key):
                raise BadRootError(f"{root}: overlaps another --dir ({other}); give each folder once")
        checked.append(key)
    return checked


def plan_roots(roots: Iterable[Path | str], index_dir: Path) -> list[str]:
    """The checked root folders of a build, or BadRootError (also when there is nothing to index)."""
    index_dir = Path(index_dir).expanduser().absolute()
    root_paths = check_roots(roots, index_dir)
    if not root_paths and not (index_dir / CATALOG_FILE).is_file():
        raise BadRootError("no folder to index: give at least one --dir")
    return root_paths


def folder_identity(index_dir: Path) -> tuple:
    """Which index folder and catalog file these are (device, inode): a folder deleted and re-created
    at the same path by another build is a different one."""
    folder, catalog = os.stat(index_dir), os.stat(Path(index_dir) / CATALOG_FILE)
    return (folder.st_dev, folder.st_ino, catalog.st_dev, catalog.st_ino)


@dataclass
class Row:
    """The catalog facts about a file that the scan compares against."""

    id: int
    root: str
    relpath: str
    size: int
    mtime_ns: int
    status: str
    content_hash: str | None
    retry: bool = False
    motion_clip: bytes | None = None  # a Live Photo's clip as last indexed (relpath, "size:mtime_ns")
    motion_clip_stat: str | None = None

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.relpath)


class WorkItem(NamedTuple):
    """A file the build must read: new (``old`` None), changed, or to retry."""

    entry: FileEntry
    root_id: int
    old: Row | None


@dataclass
class ScanResult:
    work: list[WorkItem] = field(default_factory=list)
    missing: list[Row] = field(default_factory=list)  # rows whose file is gone (not under a folder it could not see)
    root_rows: dict[str, int] = field(default_factory=dict)  # root -> its catalog rows before this build
    root_devices: dict[str, int] = field(default_factory=dict)  # root -> device id to record at the end
    unchanged: int = 0
    skipped: list[FileError] = field(default_factory=list)  # folders it could not list (nothing recorded)
    kept: int = 0  # rows kept because their root looks unmounted
    folded: list[Row] = field(default_factory=list)  # rows of clips now part of a Live Photo (indexed as videos before)


def scan(
    catalog,
    roots: dict[str, int],
    index_dir: Path,
    *,
    include_hidden: bool,
    prune: bool,
    recorded_devices: dict,
    warn: Callable[[str], None],
    show_progress: bool,
) -> ScanResult:
    """Compare the folders (root path -> root id) with the catalog using stat only."""
    out = ScanResult()
    unlisted: list[str] = []
    missing: list[Row] = []
    progress = tqdm(desc="scanning", unit=" files", disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
    with catalog.session() as session:
        for path, root_id in roots.items():
            found_files, root_unlisted = 0, False
            rows = {
                row.relpath: Row(
                    row.id,
                    path,
                    decode_relpath(row.relpath),
                    row.size,
                    row.mtime_ns,
                    row.status,
                    row.content_hash,
                    row.retry,
                    row.motion_clip,
                    row.motion_clip_stat,
                )
                for row in session.execute(
                    select(
                        Image.id,
                        Image.relpath,
                        Image.size,
                        Image.mtime_ns,
                        Image.status,
                        Image.content_hash,
                        Image.retry,
                        Image.motion_clip,
                        Image.motion_clip_stat,
                    ).where(Image.root_id == root_id, Image.video_id.is_(None))
                )
            }
            out.root_rows[path] = len(rows)
            device = _device(path)
            entries: list[FileEntry] = []
            for found in scan_root(path, include_hidden, exclude=(str(index_dir),)):
                if isinstance(found, FolderProblem):
                    unlisted.append(found.path)
                    root_unlisted |= found.relpath == ""
                    out.skipped.append(FileError(found.path, found.reason))
                    continue
                found_files += 1
                progress.update(1)
                entries.append(found)
            entries, clips = pair_live_photos(entries)
            for clip in clips:  # part of its still's item: a row of its own (a video, before) goes
                row = rows.pop(encode_relpath(clip.relpath), None)
                if row is not None:
                    out.folded.append(row)
            for found in entries:
                row = rows.pop(encode_relpath(found.relpath), None)
                if row is not None and not row.retry and _same(row, found):
                    out.unchanged += 1
                else:
                    out.work.append(WorkItem(found, root_id, row))
            matched = out.root_rows[path] - len(rows)
            suspect = (
                None
                if root_unlisted or prune
                else _looks_missing(out.root_rows[path], found_files, matched, recorded_devices.get(path), device)
            )
            if suspect:
                unlisted.append(path)  # its rows stay, like those of a folder that cannot be listed
                out.kept += len(rows)
                warn(
                    f"{path}: {suspect}; kept its {len(rows)} photo(s) in the index. Check that the "
                    "drive is mounted; if the photos are really gone, run build --prune"
                )
            elif device is not None and not root_unlisted:
                out.root_devices[path] = device
            missing.extend(rows.values())
    progress.close()
    out.missing = [row for row in missing if not any(is_within(row.path, folder) for folder in unlisted)]
    return out


def _same(row: Row, found: FileEntry) -> bool:
    """Whether a file and its Live Photo clip (if any) are as the catalog recorded them (stat alone)."""
    if (row.size, row.mtime_ns) != (found.size, found.mtime_ns):
        return False
    clip = (encode_relpath(found.clip.relpath), found.clip_signature) if found.clip is not None else (None, None)
    return (row.motion_clip, row.motion_clip_stat) == clip


def _looks_missing(rows: int, found_files: int, matched: int, recorded: int | None, device: int | None) -> str | None:
    """Why a root's files look absent rather than deleted (an unmounted drive), or None."""
    if rows == 0:
        return None
    if found_files == 0:
        return "lists no photos at all (an unmounted drive leaves an empty mount point)"
    if recorded is not None and device is not None and device != recorded and matched == 0:
        return (
            f"is on another device than at the last build (device id {recorded}, now {device}) "
            "and none of the photos indexed there is present"
        )
    return None


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None
