"""Keep an index current as photos arrive, change, move or go: file events (or polling) trigger incremental builds.

Events only say *that* something changed; the build itself decides *what* (it rescans and compares
sizes, times and content hashes), so a missed, merged or reordered event costs nothing, a kill -9 at
any moment leaves the last committed state, and the first build after a start catches up with
everything that changed while nothing was watching. Bursts are batched: events are collected until
the folders have been quiet for ``quiet`` seconds and files still being written have stopped
growing, then one build handles them all (a 2,000-photo camera import is one or a few builds).

A watched folder that disappears (a drive unplugged, a folder moved away) is not an error: the
watcher says so, keeps watching the others, builds only the folders that are there (so the gone
folder's photos stay in the index, untouched), and checks every ``quiet`` seconds (or
``ROOT_CHECK_S`` when no folder is left) for it to come back; when it does (or another drive is
mounted at the same place), it is watched again and re-scanned.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .build import build_index
from .records import BuildSummary
from .catalog import CATALOG_FILE, Catalog
from .errors import BadRootError, IndexLockedError
from .files import root_key

logger = logging.getLogger(__name__)

QUIET_S = 1.0  # no new event for this long: the burst is over
STABLE_S = 1.0  # a file's size and mtime unchanged for this long: it is no longer being written
MAX_WAIT_S = 60.0  # a file that keeps growing longer than this is indexed anyway (the next event re-indexes it)
LOCKED_RETRY_S = 5.0
ROOT_CHECK_S = 2.0  # how often a watcher with no folder left checks for one to come back


@dataclass
class WatchState:
    """What the watcher did, for tests, the app's footer and the log."""

    builds: int = 0
    last: BuildSummary | None = None
    last_error: str | None = None
    pending: set[str] = field(default_factory=set)


def wait_until_stable(
    paths: Iterable[str], stable: float = STABLE_S, max_wait: float = MAX_WAIT_S, stop: threading.Event | None = None
) -> None:
    """Return once every existing file in ``paths`` kept its size and mtime for ``stable`` seconds."""

    def snapshot():
        found = {}
        for path in paths:
            try:
                info = os.stat(path)
            except OSError:  # gone (moved or deleted): nothing to wait for
                continue
            found[path] = (info.st_size, info.st_mtime_ns)
        return found

    paths = list(paths)
    deadline = time.monotonic() + max_wait
    before = snapshot()
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        time.sleep(stable)
        after = snapshot()
        if after == before:
            return
        before = after


def watch_roots(index_dir: Path, dirs: list[Path]) -> list[Path]:
    """The folders to watch: ``dirs``, or every folder the index already knows."""
    if dirs:
        return [Path(d).expanduser().absolute() for d in dirs]
    from .store import IndexStore

    with IndexStore.open(index_dir) as store:
        roots = [Path(root) for root in store.info()["roots"]]
    if not roots:
        raise BadRootError(f"{index_dir}: the index has no folders yet; give --dir DIR")
    return roots


class Watcher:
    """Watch ``roots`` and run ``build_index`` into ``index_dir`` after each quiet burst (one writer at a time).

    ``poll`` (seconds) rescans instead of relying on kernel events, for network mounts where none arrive.
    """

    def __init__(
        self,
        index_dir: Path,
        roots: list[Path],
        embedder,
        poll: float | None = None,
        quiet: float = QUIET_S,
        stable: float = STABLE_S,
        show_progress: bool = False,
        log: Callable[[str], None] | None = None,
        **build_options,
    ):
        self.index_dir = Path(index_dir)
        self.roots = [Path(root) for root in roots]
        self.embedder = embedder
        self.poll = poll
        self.quiet = quiet
        self.stable = stable
        self.show_progress = show_progress
        self.build_options = build_options
        self.log = log or (lambda message: logger.info(f"indexer watch: {message}"))
        self.stop_event = threading.Event()
        self.state = WatchState()

    def build(self, reason: str, roots: list[Path] | None = None) -> BuildSummary | None:
        """One incremental build of ``roots`` (all by default); None when another writer holds the index
        or a folder vanished as it started (the caller retries)."""
        try:
            summary = build_index(
                self.roots if roots is None else roots,
                self.index_dir,
                self.embedder,
                show_progress=self.show_progress,
                **self.build_options,
            )
        except IndexLockedError as error:
            self.state.last_error = str(error)
            self.log(f"{error}; retrying in {LOCKED_RETRY_S:.0f} s")
            return None
        except BadRootError as error:
            if all(_identity(root) is not None for root in roots or self.roots):
                raise  # a real configuration error (overlapping folders...), not a folder that went
            self.state.last_error = str(error)
            self.log(f"{error}; retrying in {LOCKED_RETRY_S:.0f} s")
            return None
        self.state.builds += 1
        self.state.last = summary
        self.state.last_error = None
        self.log(f"{reason}: {summary}")
        return summary

    def run(self) -> None:
        """Catch up once, then build after every burst of changes until ``stop()``; folders that go and
        come back are followed (see the module's docstring)."""
        self._refuse_unknown_missing_roots()
        seen: dict[Path, tuple | None] = {root: (0, 0) for root in self.roots}  # (0, 0): no folder has it
        built: dict[Path, tuple | None] | None = None  # the folders' identities at the last build
        while not self.stop_event.is_set():
            now = {root: _identity(root) for root in self.roots}
            self._say_what_changed(seen, now)
            seen = now
            present = [root for root in self.roots if now[root] is not None]
            if not present:
                self.stop_event.wait(ROOT_CHECK_S)
                continue
            if now != built:
                reason = "catch-up" if built is None else "folders changed"
                if self.build(reason, present) is None:
                    self.stop_event.wait(LOCKED_RETRY_S)
                    continue
                built = now
                self.state.pending.clear()  # that build rescanned every folder there is
            self._watch(present, now)

    def _watch(self, present: list[Path], identities: dict) -> None:
        """Build after each quiet burst in ``present`` until ``stop()`` or a folder goes, comes or changes."""
        import watchfiles

        self.log(
            "watching " + ", ".join(map(str, present)) + (f" (polling every {self.poll:g} s)" if self.poll else "")
        )
        # An empty yield means no event for ``quiet`` seconds: only then is the burst over and built.
        options: dict[str, Any] = dict(
            debounce=int(self.quiet * 2000),
            step=50,
            stop_event=self.stop_event,
            rust_timeout=int(self.quiet * 1000),
            yield_on_timeout=True,
            raise_interrupt=False,
        )
        if self.poll:
            options.update(
                force_polling=True,
                poll_delay_ms=int(self.poll * 1000),
                rust_timeout=int(max(self.quiet, self.poll) * 1000 + 500),
            )
        try:
            for changes in watchfiles.watch(*present, **options):
                if self.stop_event.is_set() or {root: _identity(root) for root in self.roots} != identities:
                    return  # run() says what changed and builds
                if changes:
                    self.state.pending.update(path for _, path in changes)
                    continue
                if not self.state.pending:
                    continue
                wait_until_stable(self.state.pending, self.stable, stop=self.stop_event)
                if self.build(f"{len(self.state.pending)} change(s)", present) is not None:
                    self.state.pending.clear()
            # watchfiles ends its watch by itself only when stopped or on Ctrl-C (raise_interrupt=False): stop, do
            # not watch again (run() would restart it, and `indexer watch` never ended on Ctrl-C)
            self.stop_event.set()
        except OSError:
            if {root: _identity(root) for root in self.roots} == identities:
                raise
            # a folder vanished as the watch started on it: run() notices and carries on

    def _say_what_changed(self, before: dict, now: dict) -> None:
        for root in self.roots:
            if before[root] == now[root]:
                continue
            if now[root] is None:
                check = f"{self.quiet:g}" if any(now.values()) else f"{ROOT_CHECK_S:g}"
                self.log(
                    f"{root}: folder is gone (drive unplugged or folder moved?); its photos stay in the index. "
                    f"Watching the other folders and checking every {check} s for it to come back"
                )
            elif before[root] is None:
                self.log(f"{root}: folder is back; watching and re-scanning it")
            elif before[root] != (0, 0):
                self.log(f"{root}: another folder or drive is now at this path; watching and re-scanning it")

    def _refuse_unknown_missing_roots(self) -> None:
        """A missing folder the index does not know is a typo in --dir, not an unplugged drive: say so now."""
        missing = [root for root in self.roots if _identity(root) is None]
        if not missing:
            return
        known: set[str] = set()
        if (self.index_dir / CATALOG_FILE).is_file():
            catalog = Catalog(self.index_dir / CATALOG_FILE)
            try:
                known = {root.path for root in catalog.roots()}
            finally:
                catalog.close()
        for root in missing:
            if root_key(root) not in known:
                raise BadRootError(f"{root}: folder does not exist; check the --dir path")

    def start(self) -> threading.Thread:
        """Run in a daemon thread (the app's --watch)."""
        thread = threading.Thread(target=self._run_logged, name="indexer-watch", daemon=True)
        thread.start()
        return thread

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception as error:  # noqa: BLE001 - the app keeps serving; the log says why watching stopped
            self.state.last_error = f"{type(error).__name__}: {error}"
            self.log(f"stopped: {self.state.last_error}")

    def stop(self) -> None:
        self.stop_event.set()


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, or None when there is no folder at that path now."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None
