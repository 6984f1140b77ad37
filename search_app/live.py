"""The index a running app searches, reopened when a build changes it (the model is kept)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import IndexMismatchError

from .paths import PathGuard

log = logging.getLogger(__name__)

# How often (seconds) a query looks whether a build changed the index: one tiny SQLite read, and
# a build commits every batch, so this also caps how often a running build makes the app reopen it.
RELOAD_INTERVAL = 2.0


@dataclass(frozen=True)
class Opened:
    """One opened store and what is derived from it, swapped as a whole so a query never mixes two states."""

    store: object
    guard: PathGuard
    generation: int
    catalog_file: tuple[int, int] | None  # (device, inode): a deleted and rebuilt index is a new file
    embedder: object = None  # the model whose vector space the store holds: queries use this pair
    records: dict = field(default_factory=dict)  # id -> catalog record; a moved file keeps its id, so per store
    facts: dict = field(default_factory=dict)  # derived once per store: filter suggestions, library sample


class LiveIndex:
    """Holds the current ``Opened`` (store + the model of its vector space) and swaps it when the
    catalog's generation moves.

    Looked at once per ``reload_interval`` (longer after a slow reopen). An index re-embedded
    with another adapter of the same base model (``trainer adapt --apply``) is picked up: the
    adapter is loaded first, then model and store are swapped together. An index rebuilt with
    another model stops answers with an IndexMismatchError instead of mixing vector spaces.
    """

    def __init__(self, store, embedder, extra_roots=(), reload_interval: float = RELOAD_INTERVAL):
        self.reload_interval = reload_interval
        self.slow_reload_gap = 0.0
        self.extra_roots = tuple(extra_roots)
        self.opened = self.wrap(store, embedder)
        self._lock = threading.Lock()  # one reopen at a time
        self._checked_at = time.monotonic()
        self.failure: Exception | None = None  # set once the index moved to another model: no more answers

    def wrap(self, store, embedder) -> Opened:
        return Opened(
            store,
            PathGuard([*store.roots, *self.extra_roots]),
            store.generation,
            file_identity(store.catalog.path),
            embedder,
        )

    def current(self) -> Opened:
        """The opened store, reopened first if a build changed the index (looked at once per interval)."""
        if self.failure is not None:
            raise self.failure
        gap = max(self.reload_interval, self.slow_reload_gap)
        swapped = file_identity(self.opened.store.catalog.path) != self.opened.catalog_file
        if time.monotonic() - self._checked_at < gap and not swapped:  # a swapped-in index (one stat) cannot wait:
            return self.opened  # its catalog's ids are not the open FAISS index's ids
        with self._lock:
            if time.monotonic() - self._checked_at >= gap or swapped:  # not just done by another thread
                self.reload_if_changed()
                self._checked_at = time.monotonic()
        if self.failure is not None:
            raise self.failure
        return self.opened

    def reload_if_changed(self) -> None:
        """Reopen catalog + FAISS index if the generation moved; queries already running keep the old one."""
        from indexer import IndexStore

        old = self.opened
        try:
            same_file = file_identity(old.store.catalog.path) == old.catalog_file
            if same_file and old.store.current_generation() == old.generation:
                return
            started = time.monotonic()
            # a published index is validated again on each reopen (IndexStore.open), never opened writable
            fresh = IndexStore.open(old.store.index_dir, immutable=old.store.immutable)
            self.slow_reload_gap = slow_reload_gap(time.monotonic() - started)
        except Exception as error:  # noqa: BLE001 - a half-written index must not take the app down
            log.warning(
                "index %s changed but could not be reopened (%s); still serving the previous state",
                old.store.index_dir,
                error,
            )
            return
        embedder = old.embedder
        try:
            fresh.check_embedder(embedder)
        except IndexMismatchError:
            embedder = adapted_embedder(fresh, embedder)
        if embedder is None:
            fresh.close()
            self.failure = IndexMismatchError(
                f"{old.store.index_dir}: the index was rebuilt with another model ({fresh.model_id}) while the app "
                f"was running on {old.embedder.model_id}; vectors from different models cannot be mixed. "
                "Restart the app to search the rebuilt index."
            )
            log.error("%s", self.failure)
            return
        self.opened = self.wrap(fresh, embedder)
        log.info(
            "index %s changed (generation %d -> %d): reopened, %d photos",
            old.store.index_dir,
            old.generation,
            fresh.generation,
            fresh.count,
        )
        # Safe while other threads still rank on it: the FAISS index is in memory and closing only
        # empties the catalog's connection pool (connections in use finish and are then dropped).
        old.store.close()


def adapted_embedder(fresh, current):
    """The base model of ``current`` with the adapter ``fresh`` names, or None if that is not the change."""
    from mme5.model_ref import ModelRef
    from mme5 import load_embedder

    if (
        ModelRef.canonical_of(fresh.model_id) != ModelRef.canonical_of(current.model_id)
        or fresh.adapter == current.adapter
    ):
        return None
    try:
        embedder = load_embedder(
            ModelRef.canonical_of(fresh.model_id),
            device=current.device,
            adapter=ModelRef.canonical_of(fresh.adapter),
            runtime=current.runtime,
        )
        fresh.check_embedder(embedder)
    except Exception as error:  # noqa: BLE001 - a bad adapter leaves the app serving the previous state
        log.error("index %s now uses adapter %s, which could not be loaded (%s)", fresh.index_dir, fresh.adapter, error)
        return None
    log.info(
        "index %s re-embedded with adapter %s: loaded it, switching model and index together",
        fresh.index_dir,
        fresh.adapter,
    )
    return embedder


def slow_reload_gap(reload_seconds: float) -> float:
    """Least wait before the next look, given how long the last reopen took.

    A build commits every batch, and reopening a large index (loading FAISS, syncing it
    with the catalog) must not eat the app: a reopen that took noticeable time is followed
    by ten times as long without one (at most 10 % of the time spent reopening)."""
    return 0.0 if reload_seconds < 0.5 else 10 * reload_seconds


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file, None while it is missing (e.g. an index being deleted and rebuilt)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
