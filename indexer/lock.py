"""One writer per index: an flock the kernel releases even on kill -9.

The lock file holds the writer's pid and what it is doing ("1234 build"), so readers
(`info`, `verify`) can tell a build in progress from an interrupted one.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .errors import IndexLockedError, os_problem

LOCK_FILE = ".lock"
CONTENTION_WAIT_S = 0.5  # a reader's probe holds the lock for microseconds; do not refuse a writer for that

_held: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of lock files this process holds -> nesting depth


class WriteLock:
    """Exclusive write lock on an index folder; re-entrant within one process.

    Re-entrant so the CLI can take it before loading the model (a second build is refused
    at once, not after minutes of loading) and ``build_index`` can take it again. Keyed by
    the lock file's inode, so an index folder deleted and re-created at the same path is
    a different lock.
    """

    def __init__(self, index_dir: Path, purpose: str = "write"):
        self.path = Path(index_dir) / LOCK_FILE
        self.purpose = purpose
        self.handle = None
        self.key: tuple[int, int] | None = None

    def __enter__(self) -> "WriteLock":
        try:
            handle = open(self.path, "a+")
        except OSError as error:  # read-only media, full disk: say so in one sentence
            _raise_os_problem(error, self.path.parent)
        info = os.fstat(handle.fileno())
        key = (info.st_dev, info.st_ino)
        if _held.get(key):
            handle.close()
            _held[key] += 1
            self.key = key
            return self
        deadline = time.monotonic() + CONTENTION_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.01)  # perhaps only a reader's momentary probe (lock_holder): try again
                    continue
                owner = holder_of(handle)
                handle.close()
                pid, purpose = owner if owner else ("unknown", "write")
                raise IndexLockedError(
                    f"{self.path.parent}: another indexer process (pid {pid}, {purpose}) is writing this index; "
                    "wait for it to finish"
                ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {self.purpose}")
            handle.flush()
        except OSError as error:
            handle.close()
            _raise_os_problem(error, self.path.parent)
        self.handle, self.key = handle, key
        _held[key] = 1
        return self

    def __exit__(self, *exc) -> None:
        if self.key is None:
            return
        _held[self.key] -= 1
        if _held[self.key] == 0:
            del _held[self.key]
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
        self.key = None


def _raise_os_problem(error: OSError, folder: Path):
    """Raise the one-sentence error for a full disk or read-only media; other OS errors as they are."""
    problem = os_problem(error, folder)
    if problem is error:
        raise error
    raise problem from error


def holder_of(handle) -> tuple[int | None, str] | None:
    """(pid, purpose) written by the lock's holder; None while nobody has written one yet."""
    handle.seek(0)
    text = handle.read().split()
    if not text:
        return None
    pid = int(text[0]) if text[0].isdigit() else None
    return pid, " ".join(text[1:]) or "write"


def lock_holder(index_dir: Path | str) -> tuple[int | None, str] | None:
    """(pid, purpose) of the process writing this index now (e.g. a build), or None.

    Probes with a shared, non-blocking flock released at once, so it never waits and never
    writes (works on read-only media); a writer that collides with the probe retries.
    """
    try:
        handle = open(Path(index_dir) / LOCK_FILE)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return holder_of(handle) or (None, "write")
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
