"""A stand-in for Windows' ``msvcrt.locking`` on Linux, so the Windows branch of indexer/lock.py runs here.

Windows semantics kept: ``locking(fd, mode, nbytes)`` acts on ``nbytes`` from the file position
(which it does not move); locks belong to the open handle (a second handle in the same process
is refused too), are released when the handle closes or the process dies; a busy range raises
``OSError(EACCES)`` at once for LK_NBLCK / LK_NBRLCK (the same mode on Windows: there is no
shared lock); locking a range this handle already holds, or unlocking one it does not, raises
EACCES too. Built on Linux open-file-description locks (F_OFD_SETLK), which belong to the handle
like Windows' locks; ``fcntl.lockf`` would not do: its locks belong to the process, so a probe
from the same process would pass and closing any handle would drop the lock.

Deviations: a read-only handle takes a read lock (Linux refuses write locks on read-only
descriptors), so two read-only probes do not meet each other as they would on Windows; and the
lock is advisory, not mandatory (reads of the locked byte are not refused).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time

LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4  # msvcrt's values

_held: set[tuple[int, int, int, int, int]] = set()  # (fd, st_dev, st_ino, start, nbytes) locked through this module


def _ofd_lock(fd: int, kind: int, start: int, nbytes: int) -> None:
    flock = struct.pack("hhqqi4x", kind, os.SEEK_SET, start, nbytes, 0)  # struct flock; l_pid must be 0 for OFD
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)


def locking(fd: int, mode: int, nbytes: int) -> None:
    start = os.lseek(fd, 0, os.SEEK_CUR)
    info = os.fstat(fd)
    key = (fd, info.st_dev, info.st_ino, start, nbytes)
    if mode == LK_UNLCK:
        if key not in _held:
            raise OSError(errno.EACCES, "Permission denied (range not locked by this handle)")
        _ofd_lock(fd, fcntl.F_UNLCK, start, nbytes)
        _held.discard(key)
        return
    if mode not in (LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK):
        raise ValueError(f"locking: unknown mode {mode}")
    writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
    attempts = 10 if mode in (LK_LOCK, LK_RLCK) else 1  # the blocking modes try 10 times, 1 s apart
    for attempt in range(attempts):
        if key not in _held:
            try:
                _ofd_lock(fd, fcntl.F_WRLCK if writable else fcntl.F_RDLCK, start, nbytes)
            except (BlockingIOError, PermissionError):
                pass
            else:
                _held.add(key)
                return
        if attempt + 1 < attempts:
            time.sleep(1)
    if attempts > 1:
        raise OSError(errno.EDEADLOCK, "Resource deadlock avoided")
    raise OSError(errno.EACCES, "Permission denied")
