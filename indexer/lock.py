"""One writer per index: an OS lock the kernel releases even on kill -9 (TerminateProcess on Windows).

The lock file holds the writer's pid and what it is doing ("1234 build"), so readers
(`info`, `verify`) can tell a build in progress from an interrupted one.

The OS primitive lives in one place, ``_os_lock``: ``flock`` on POSIX; on Windows a
``msvcrt.locking`` byte-range lock on one byte far beyond the text. Windows byte-range locks
are mandatory, so locking byte 0 would make the pid text unreadable by others; locking past
the end of a file is allowed. Both are tied to the open handle and dropped by the OS when the
process dies.
"""

from __future__ import annotations

import errno
import importlib
import os
import time
from pathlib import Path
from typing import IO, Any

from .errors import IndexLockedError, os_problem

LOCK_FILE = ".lock"
CONTENTION_WAIT_S = 0.5  # a reader's probe holds the lock for microseconds; do not refuse a writer for that
PROBE_WAIT_S = 0.1  # Windows only: probes are exclusive there, so one reader's probe may meet another's

_held: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of lock files this process holds -> nesting depth


class _Flock:
    """POSIX: ``flock`` on the whole file; probes take it shared, so they never meet each other."""

    probes_collide = False

    @staticmethod
    def try_lock(handle, shared: bool = False) -> bool:
        """Take the lock without waiting; False when another handle holds it."""
        import fcntl

        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    @staticmethod
    def unlock(handle) -> None:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_UN)


class _ByteLock:
    """Windows: ``msvcrt.locking`` of byte OFFSET (beyond the text); exclusive even for a probe (msvcrt has
    no shared mode), which is why writers retry for CONTENTION_WAIT_S and probes for PROBE_WAIT_S."""

    OFFSET = 1 << 30
    probes_collide = True
    BUSY = (errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK))  # what msvcrt raises (OSError, not Blocking)

    @classmethod
    def try_lock(cls, handle, shared: bool = False) -> bool:
        msvcrt = _msvcrt()
        try:
            cls._at_offset(handle, msvcrt.LK_NBLCK)
        except OSError as error:
            if error.errno in cls.BUSY:
                return False
            raise
        return True

    @classmethod
    def unlock(cls, handle) -> None:
        msvcrt = _msvcrt()
        cls._at_offset(handle, msvcrt.LK_UNLCK)

    @classmethod
    def _at_offset(cls, handle, mode: int) -> None:
        """``locking()`` acts from the file position: move it to OFFSET, then back, so that the position the
        handle's buffer believes in stays true."""
        msvcrt = _msvcrt()
        fd = handle.fileno()
        where = os.lseek(fd, 0, os.SEEK_CUR)
        os.lseek(fd, cls.OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, mode, 1)
        finally:
            os.lseek(fd, where, os.SEEK_SET)


def _msvcrt() -> Any:
    """The Windows-only ``msvcrt`` module (Any: its stubs hide LK_* and locking() on other platforms, where the
    tests plant a stand-in)."""
    return importlib.import_module("msvcrt")


def _platform_lock(os_name: str = os.name):
    """The lock primitive for ``os_name`` (tests select the Windows one on Linux with a stand-in msvcrt)."""
    return _ByteLock if os_name == "nt" else _Flock


_os_lock = _platform_lock()


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
        self.handle: IO[str] | None = None  # only the outermost holder in this process has the file open
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
        while not _os_lock.try_lock(handle):
            if time.monotonic() < deadline:
                time.sleep(0.01)  # perhaps only a reader's momentary probe (lock_holder): try again
                continue
            owner = holder_of(handle)
            handle.close()
            pid, purpose = owner if owner else ("unknown", "write")
            raise IndexLockedError(
                f"{self.path.parent}: another indexer process (pid {pid}, {purpose}) is writing this index; "
                "wait for it to finish"
            )
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
            handle = self.handle
            if handle is None:
                raise RuntimeError(f"{self.path}: the write lock was released out of order (an inner holder last)")
            _os_lock.unlock(handle)
            handle.close()
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

    Probes with a non-blocking lock released at once (shared where the OS has that), so it
    never waits for a writer and never writes (works on read-only media); a writer that
    collides with the probe retries.
    """
    try:
        handle = open(Path(index_dir) / LOCK_FILE)
    except OSError:
        return None
    with handle:
        deadline = time.monotonic() + (PROBE_WAIT_S if _os_lock.probes_collide else 0)
        while not _os_lock.try_lock(handle, shared=True):
            if time.monotonic() < deadline:
                time.sleep(0.005)  # perhaps another reader's probe (Windows): try again
                continue
            return holder_of(handle) or (None, "write")
        _os_lock.unlock(handle)
    return None
