"""One writer per index: an flock the kernel releases even on kill -9."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import IndexLockedError, os_problem

LOCK_FILE = ".lock"


class WriteLock:
    def __init__(self, index_dir: Path):
        self.path = Path(index_dir) / LOCK_FILE
        self.handle = None

    def __enter__(self) -> "WriteLock":
        try:
            handle = open(self.path, "a+")
        except OSError as error:  # read-only media, full disk: say so in one sentence
            problem = os_problem(error, self.path.parent)
            if problem is error:
                raise
            raise problem from error
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise IndexLockedError(
                f"{self.path.parent}: another indexer process (pid {owner}) is writing this index; "
                "wait for it to finish"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError as error:
            handle.close()
            problem = os_problem(error, self.path.parent)
            if problem is error:
                raise
            raise problem from error
        self.handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
