"""Walking photo folders: which files are images or videos, with the stat facts used to skip unchanged ones.

Only ``stat`` is called here, never ``open``: a re-run over unchanged photos reads no pixels.
"""

from __future__ import annotations

import errno
import os
import re
import stat as stat_module
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from mme5.raw import RAW_EXTENSIONS

DEFAULT_INDEX_DIR = Path("index")  # where an index goes when no --index is given

IMAGE_EXTENSIONS = (
    frozenset(
        {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
    )
    | RAW_EXTENSIONS
)  # camera RAW: mme5/raw.py (.xmp sidecars are not images: ignored)
# Videos: indexed as keyframes with timestamps (indexer/video.py decodes them with PyAV's bundled FFmpeg).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
# Apple Live Photos: a still (HEIC or JPEG) and a QuickTime clip with the same name in one folder are one item.
LIVE_STILL_EXTENSIONS = frozenset({".heic", ".heif", ".jpg", ".jpeg"})
LIVE_CLIP_EXTENSION = ".mov"


@dataclass(frozen=True)
class FileEntry:
    """An image file found by the scan; ``problem`` is set when it cannot even be stat'ed."""

    root: str
    relpath: str
    size: int
    mtime_ns: int
    problem: str | None = None
    clip: FileEntry | None = None  # a Live Photo's still: its clip (``pair_live_photos``), part of this item

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.relpath)

    @property
    def clip_signature(self) -> str | None:
        """What the catalog records of the paired clip (``Image.motion_clip_stat``): its size and mtime."""
        return None if self.clip is None else f"{self.clip.size}:{self.clip.mtime_ns}"


def pair_live_photos(entries: list[FileEntry]) -> tuple[list[FileEntry], list[FileEntry]]:
    """(items, clips): ``entries`` with each Live Photo still carrying its clip, and the clips so folded.

    A Live Photo is paired by name, as Apple writes it: ``IMG_0001.HEIC`` (or ``.JPG``) and ``IMG_0001.MOV`` in one
    folder, the names compared without case. (Apple also links the two by a content identifier, but the still's
    copy is in Apple's maker note, which Pillow does not parse.) A clip with no still, or one that cannot be
    stat'ed, stays a video of its own; a still that cannot be stat'ed takes no clip."""
    stills: dict[tuple[str, str], list[int]] = {}
    clips: dict[tuple[str, str], FileEntry] = {}
    for position, entry in enumerate(entries):
        if entry.problem:
            continue
        folder, name = os.path.split(entry.relpath)
        stem, extension = os.path.splitext(name)
        key = (os.path.join(entry.root, folder), stem.casefold())
        if extension.lower() in LIVE_STILL_EXTENSIONS:
            stills.setdefault(key, []).append(position)
        elif extension.lower() == LIVE_CLIP_EXTENSION:
            clips[key] = entry
    items = list(entries)
    folded: list[FileEntry] = []
    for key, clip in clips.items():
        if key not in stills:
            continue
        folded.append(clip)
        for position in stills[key]:
            items[position] = replace(items[position], clip=clip)
    dropped = {id(clip) for clip in folded}
    return [entry for entry in items if id(entry) not in dropped], folded


@dataclass(frozen=True)
class FolderProblem:
    """A folder the scan could not enter; files already indexed under it are kept."""

    root: str
    relpath: str
    reason: str

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.relpath)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_video_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def scan_root(
    root: str, include_hidden: bool = False, exclude: tuple[str, ...] = ()
) -> Iterator[FileEntry | FolderProblem]:
    """Image files under ``root`` (following folder symlinks, loops detected), hidden ones skipped."""
    excluded = {os.path.realpath(path) for path in exclude}
    visited = set()
    stack = [""]
    while stack:
        relfolder = stack.pop()
        folder = os.path.join(root, relfolder)
        try:
            info = os.stat(folder)
            key = (info.st_dev, info.st_ino)
            if key in visited:
                yield FolderProblem(
                    root, relfolder, f"symbolic link loop (already scanned as {os.path.realpath(folder)}); skipped"
                )
                continue
            visited.add(key)
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            yield FolderProblem(root, relfolder, f"cannot list folder: {_reason(error)}")
            continue
        subfolders = []
        for entry in entries:
            if not include_hidden and entry.name.startswith("."):
                continue
            relpath = os.path.join(relfolder, entry.name) if relfolder else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if os.path.realpath(entry.path) not in excluded:
                    subfolders.append(relpath)
                continue
            if is_image_name(entry.name) or is_video_name(entry.name):
                yield _file_entry(root, relpath, entry)
        stack.extend(reversed(subfolders))


def _file_entry(root: str, relpath: str, entry: os.DirEntry) -> FileEntry:
    try:
        info = entry.stat(follow_symlinks=True)
    except OSError as error:
        link = entry.stat(follow_symlinks=False) if entry.is_symlink() else None
        if error.errno == errno.ENOENT and link is not None:
            reason = f"broken symbolic link (points to {os.readlink(entry.path)!r})"
        elif error.errno == errno.ELOOP:
            reason = "symbolic link loop"
        else:
            reason = _reason(error)
        link = link or _safe_lstat(entry)
        return FileEntry(root, relpath, link.st_size if link else 0, link.st_mtime_ns if link else 0, reason)
    if not stat_module.S_ISREG(info.st_mode):
        return FileEntry(root, relpath, 0, info.st_mtime_ns, "not a regular file")
    return FileEntry(root, relpath, info.st_size, info.st_mtime_ns)


def _safe_lstat(entry: os.DirEntry):
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


def _reason(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied; check the read permissions"
    return error.strerror or str(error)


def root_key(path: Path | str) -> str:
    """The form a root is stored in: absolute, symlinks resolved."""
    return os.path.realpath(os.fspath(path))


# C0 controls, DEL, C1 controls, line/paragraph separators and bidi overrides/isolates: in a file name
# they could split an output line, recolour the terminal or make a name read differently.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def decodable(text: str) -> str:
    """File names need not be UTF-8: undecodable bytes become ``\\xNN`` text (for JSON and HTML)."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(text: str) -> str:
    """Any text shown on a terminal (paths, messages with paths in them): undecodable bytes
    and control characters escaped (``\\xe9``, ``\\n``, ``\\x1b``), so a file name can neither
    split a line nor send escape sequences. JSON output uses :func:`decodable` instead (json
    escapes control characters itself)."""
    return _CONTROL.sub(_escape_control, decodable(text))


def _escape_control(match: re.Match) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
