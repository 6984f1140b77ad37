"""Keep the app's cache folders within a size and age budget: previews, copies of originals, album zips, Gradio's
copies of served files and uploads all land under the user's cache folder and nothing else ever removes them.

``clean_cache`` removes, oldest first (by the latest of last access, last write and arrival in the cache, its
inode change time), every file older than ``max_age_s``, then as many more as it takes to bring the folders
under ``max_bytes``. It never removes:
- a file younger than ``MIN_AGE_S`` (it may be being served or written right now);
- a file still being written under a temporary name (``*.partial``, mme5/atomic.py's ``*.tmp``) younger than
  ``PARTIAL_GRACE_S`` (older ones are left behind by a killed process and go like any other file);
- anything outside the folders of ``cache_folders()``: symbolic links are neither followed nor removed, and a
  cache folder that is itself a link is skipped with a warning.
``start_cache_cleanup`` runs it at start and every ``CLEANUP_INTERVAL_S`` in a daemon thread (the app's serve).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mme5.atomic import TEMP_SUFFIX

from .private import cache_home

log = logging.getLogger(__name__)

CACHE_SUBFOLDERS = ("previews", "originals", "albums", "gradio")  # under cache_home(); what the app writes
DEFAULT_MAX_GB = 2.0
DEFAULT_MAX_DAYS = 30.0
MIN_AGE_S = 10 * 60
PARTIAL_GRACE_S = 24 * 3600
PARTIAL_SUFFIXES = (".partial", TEMP_SUFFIX)
CLEANUP_INTERVAL_S = 3600.0


@dataclass
class CleanupReport:
    removed: int = 0
    freed: int = 0  # bytes
    kept: int = 0  # bytes left in the folders
    problems: list[str] = field(default_factory=list)


def cache_folders() -> list[Path]:
    """The folders the app writes its cache files into (the tiny model and its index are not among them)."""
    return [cache_home() / name for name in CACHE_SUBFOLDERS]


def clean_cache(
    folders: list[Path] | None = None,
    max_bytes: int = int(DEFAULT_MAX_GB * 1e9),
    max_age_s: float = DEFAULT_MAX_DAYS * 86400,
    now: float | None = None,
) -> CleanupReport:
    """Bring ``folders`` (default ``cache_folders()``) within ``max_bytes`` and ``max_age_s``; see the module."""
    now = time.time() if now is None else now
    report = CleanupReport()
    files: list[tuple[float, int, str]] = []  # (last use, size, path) of the files that may go
    total = 0
    dirs: list[tuple[str, float]] = []
    for folder in folders if folders is not None else cache_folders():
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            continue
        except OSError as error:
            report.problems.append(f"{folder}: cannot read ({error.strerror or error}); not cleaned")
            continue
        if not stat.S_ISDIR(info.st_mode):  # a link (maybe to the user's photos) or a file: never entered
            report.problems.append(
                f"{folder}: not a folder (a link or a file); not cleaned. Remove it if the app "
                "should use this cache folder again"
            )
            continue
        total += _collect(os.fspath(folder), now, files, dirs, report)
    files.sort()
    for last_use, size, path in files:
        if now - last_use <= max_age_s and total <= max_bytes:
            break  # sorted oldest first: everything after is younger and the budget holds
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            report.problems.append(f"{path}: cannot remove ({error.strerror or error})")
            continue
        total -= size
        report.removed += 1
        report.freed += size
    for path, mtime in sorted(dirs, key=lambda item: -len(item[0])):  # deepest first: parents empty out too
        if now - mtime > MIN_AGE_S:
            try:
                os.rmdir(path)  # only succeeds on an empty folder
            except OSError:
                pass
    report.kept = total
    return report


def _collect(top: str, now: float, files: list, dirs: list, report: CleanupReport) -> int:
    """Add the removable files under ``top`` to ``files`` and its subfolders to ``dirs``; return the bytes of all."""
    total = 0
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            report.problems.append(f"{folder}: cannot list ({error.strerror or error})")
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:  # gone meanwhile
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
                dirs.append((entry.path, info.st_mtime))
                continue
            if not stat.S_ISREG(info.st_mode):  # links, sockets...: not ours to follow or remove
                continue
            total += info.st_size
            # ctime too: Gradio copies served files with shutil.copy2, keeping the photo's own (old) times
            last_use = max(info.st_atime, info.st_mtime, info.st_ctime)
            grace = PARTIAL_GRACE_S if entry.name.endswith(PARTIAL_SUFFIXES) else MIN_AGE_S
            if now - last_use > grace:
                files.append((last_use, info.st_size, entry.path))
    return total


def start_cache_cleanup(
    max_gb: float = DEFAULT_MAX_GB,
    max_days: float = DEFAULT_MAX_DAYS,
    interval_s: float = CLEANUP_INTERVAL_S,
    stop: threading.Event | None = None,
) -> threading.Thread:
    """Clean the cache folders (as they are now) at once and every ``interval_s`` seconds until ``stop`` is set,
    in a daemon thread; returns the thread."""
    max_bytes, max_age_s = int(max_gb * 1e9), max_days * 86400
    folders = cache_folders()
    stop = stop or threading.Event()

    def loop():
        while not stop.is_set():
            try:
                report = clean_cache(folders, max_bytes=max_bytes, max_age_s=max_age_s)
            except Exception:  # noqa: BLE001 - a cleanup bug must not stop the app; try again next time
                log.exception("cache cleanup failed; retrying in %.0f s", interval_s)
            else:
                for problem in report.problems:
                    log.warning("cache cleanup: %s", problem)
                if report.removed:
                    log.info(
                        "cache cleanup: removed %d file(s), %.1f MB; %.1f MB kept (budget %g GB, %g days)",
                        report.removed,
                        report.freed / 1e6,
                        report.kept / 1e6,
                        max_gb,
                        max_days,
                    )
            stop.wait(interval_s)

    thread = threading.Thread(target=loop, name="cache-cleanup", daemon=True)
    thread.start()
    return thread
