"""Crash-safe file replacement, the one helper every writer in the repo uses.

Readers see the old file or the new one, never half of one, and once the call returns the new
content survives a power cut: temp file in the same folder, fsync, rename, fsync of the folder.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """A file to write ``path`` through; it replaces ``path`` only if the ``with`` block ends without error."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(handle, mode, encoding=encoding if mode == "w" else None) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike, data) -> None:
    """Replace ``path`` with ``data`` (bytes-like, or str written as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_open(path, "wb") as file:
        file.write(memoryview(data))


def replace_folder(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename a fully written folder into place (``target`` must not exist or be empty) and make it durable."""
    fsync_file(source)  # every file and folder inside: save_pretrained and torch.save do not fsync
    os.replace(source, target)
    fsync_dir(Path(target).parent)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file written by a library that does not fsync (torch.save, save_pretrained) before renaming it."""
    if Path(path).is_dir():
        for item in Path(path).rglob("*"):
            if item.is_file():
                fsync_file(item)
        fsync_dir(path)
        return
    descriptor = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)  # Windows fsyncs writable handles only
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or a new file in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    # Windows refuses to open a folder (PermissionError) and has no folder fsync. Good enough there: NTFS
    # journals its metadata, so after a power cut the name holds the old file or the new one, never a torn one
    # (a rename made just before the cut may be undone, as it may be on Linux without this fsync).
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale_temps(folder: str | os.PathLike) -> None:
    """Temp files left by a process killed mid-write."""
    for temp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)
