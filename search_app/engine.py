"""SearchEngine: queries in, ranked and filtered pages of photos out (no UI code here).

The model turns a query into a vector; FAISS (through the indexer's IndexStore) ranks
the catalog; this module adds what a photo search needs on top: filters by folder and
capture date, collapsing byte-identical copies, sorting by date, and stable pagination.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time as dtime
from pathlib import Path
from typing import Sequence

import numpy as np

from indexer.errors import IndexMismatchError
from indexer.files import printable
from indexer.store import normalise_folder
from mme5.raw import shot_key
from mme5.registry import QueryKind

from .paths import PathGuard, PathNotAllowedError

log = logging.getLogger(__name__)

SORTS = ("score", "date", "date_asc")
MAX_K = 200
MAX_QUERY_CHARS = 2_000  # a query is a description, not a document: longer text is refused before the model sees it
DATE_SORT_POOL = 200  # date sort orders the best matches, not the whole library
RECORD_CACHE_LIMIT = 250_000  # catalog records kept in memory (~0.5 KB each) across queries
# Folder/date filters matched by at most this many photos rank only those photos. Listing them
# costs ~2.5 µs a match, filtering hits after the search costs ~1/(share of photos that match):
# on 100k photos (2-core CPU) both took ~13 ms a page at 5,000 matches; for 3 matches, 11 ms vs 2.4 s cold.
FEW_MATCHES = 5_000
# How often (seconds) a query looks whether a build changed the index: one tiny SQLite read, and
# a build commits every batch, so this also caps how often a running build makes the app reopen it.
RELOAD_INTERVAL = 2.0


class IndexChangedError(ValueError):
    """A further page was asked of a ranking made before the index changed: its offsets mean nothing now."""


@dataclass(frozen=True)
class SearchResult:
    """One photo in a result page; ``also_at`` lists identical copies folded into it."""

    path: str
    score: float
    size: int
    taken_at: datetime | None
    image_id: int
    content_hash: str
    width: int | None = None
    height: int | None = None
    relpath: str = ""
    also_at: tuple[str, ...] = ()

    def to_json(self) -> dict:
        """Plain types only, for the HTTP API.

        The key is ``image_path``, not ``path``: gradio_client treats any dict with a
        ``path`` string as a file to download, which these (server-side) paths are not.
        Paths are shown with undecodable bytes escaped (``caf\\xe9.jpg``): JSON has no way to
        carry them, and the file itself is only ever opened through the real ``path``.
        """
        return {
            "image_path": printable(self.path),
            "relpath": printable(self.relpath),
            "score": round(float(self.score), 6),
            "size": int(self.size),
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "image_id": int(self.image_id),
            "content_hash": self.content_hash,
            "width": self.width,
            "height": self.height,
            "also_at": [printable(path) for path in self.also_at],
        }


@dataclass(frozen=True)
class SearchPage:
    """``results[offset:offset+k]`` of one ranking; ``next_offset`` is None on the last page."""

    results: list[SearchResult]
    offset: int
    next_offset: int | None
    query_seconds: float = 0.0  # model time (encoding the query)
    search_seconds: float = 0.0  # index + catalog time
    options: dict = field(default_factory=dict)
    generation: int | None = None  # the index state ranked; pass it to ``rank`` for further pages

    def to_json(self) -> dict:
        return {
            "results": [result.to_json() for result in self.results],
            "offset": self.offset,
            "next_offset": self.next_offset,
            "timing": {"query_seconds": round(self.query_seconds, 4), "search_seconds": round(self.search_seconds, 4)},
        }


@dataclass(frozen=True)
class SearchOptions:
    """Validated options shared by every query type."""

    k: int = 20
    offset: int = 0
    folder: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    sort: str = "score"
    collapse_duplicates: bool = True

    @classmethod
    def parse(cls, k=20, offset=0, folder=None, date_from=None, date_to=None, sort="score", collapse_duplicates=True):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
            raise ValueError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or int(offset) < 0:
            raise ValueError(f"offset must be a whole number ≥ 0, got {offset!r}")
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
        start = _parse_date(date_from, "date_from", end_of_day=False)
        end = _parse_date(date_to, "date_to", end_of_day=True)
        if start and end and start > end:
            raise ValueError(f"date_from ({start.date()}) is after date_to ({end.date()}): swap them")
        return cls(int(k), int(offset), normalise_folder(folder), start, end, sort, bool(collapse_duplicates))


@dataclass(frozen=True)
class _Opened:
    """One opened store and what is derived from it, swapped as a whole so a query never mixes two states."""

    store: object
    guard: PathGuard
    generation: int
    catalog_file: tuple[int, int] | None  # (device, inode): a deleted and rebuilt index is a new file
    embedder: object = None  # the model whose vector space the store holds: queries use this pair
    records: dict = field(default_factory=dict)  # id -> catalog record; a moved file keeps its id, so per store


class SearchEngine:
    """Answers text, image and composed (image + text) queries over one index.

    ``store`` is an ``indexer.IndexStore``; ``embedder`` must produce vectors in the
    same space the index was built in (checked here, so a wrong model fails at start,
    not with silently meaningless results). A build run while the engine serves is
    picked up within ``reload_interval`` seconds: the store is reopened, the model kept.
    An index re-embedded with another adapter of the same base model (``trainer adapt
    --apply``) is picked up too: the adapter is loaded first, then model and store are
    swapped together, so no query mixes two vector spaces.
    """

    min_window = 64  # FAISS hits fetched at first; grows ×4 while filters or copies leave too few

    def __init__(self, store, embedder, extra_roots: Sequence[str | os.PathLike] = (),
                 reload_interval: float = RELOAD_INTERVAL):
        store.check_embedder(embedder)
        self.reload_interval = reload_interval
        self._slow_reload_gap = 0.0  # extra wait when reopening the index is slow (see _slow_reload_gap)
        self._extra_roots = tuple(extra_roots)
        self._opened = self._wrap(store, embedder)
        self._model_lock = threading.Lock()  # one forward pass at a time: torch is not re-entrant-safe here
        self._reload_lock = threading.Lock()  # one reopen at a time
        self._checked_at = time.monotonic()
        self._failure: Exception | None = None  # set once the index moved to another model: no more answers

    def _wrap(self, store, embedder) -> _Opened:
        return _Opened(store, PathGuard([*store.roots, *self._extra_roots]), store.generation,
                       _file_identity(store.catalog.path), embedder)

    @property
    def embedder(self):
        """The model queries are encoded with now (replaced with the index's adapter, see the class)."""
        return self._opened.embedder

    @property
    def store(self):
        """The store queries use now (replaced when a build changes the index)."""
        return self._opened.store

    @property
    def guard(self) -> PathGuard:
        return self._opened.guard

    @property
    def generation(self) -> int:
        """The catalog generation the current store was opened at."""
        return self._current().generation

    def _current(self) -> _Opened:
        """The opened store, reopened first if a build changed the index (looked at once per ``reload_interval``)."""
        if self._failure is not None:
            raise self._failure
        gap = max(self.reload_interval, self._slow_reload_gap)
        swapped = _file_identity(self._opened.store.catalog.path) != self._opened.catalog_file
        if time.monotonic() - self._checked_at < gap and not swapped:  # a swapped-in index (one stat) cannot wait:
            return self._opened  # its catalog's ids are not the open FAISS index's ids
        with self._reload_lock:
            if time.monotonic() - self._checked_at >= gap or swapped:  # not just done by another thread
                self._reload_if_changed()
                self._checked_at = time.monotonic()
        if self._failure is not None:
            raise self._failure
        return self._opened

    def _reload_if_changed(self) -> None:
        """Reopen catalog + FAISS index if the generation moved; queries already running keep the old one."""
        from indexer import IndexStore

        old = self._opened
        try:
            same_file = _file_identity(old.store.catalog.path) == old.catalog_file
            if same_file and old.store.current_generation() == old.generation:
                return
            started = time.monotonic()
            fresh = IndexStore.open(old.store.index_dir)
            self._slow_reload_gap = _slow_reload_gap(time.monotonic() - started)
        except Exception as error:  # noqa: BLE001 - a half-written index must not take the app down
            log.warning("index %s changed but could not be reopened (%s); still serving the previous state",
                        old.store.index_dir, error)
            return
        embedder = old.embedder
        try:
            fresh.check_embedder(embedder)
        except IndexMismatchError:
            embedder = self._adapted_embedder(fresh, embedder)
        if embedder is None:
            fresh.close()
            self._failure = IndexMismatchError(
                f"{old.store.index_dir}: the index was rebuilt with another model ({fresh.model_id}) while the app "
                f"was running on {self.embedder.model_id}; vectors from different models cannot be mixed. "
                "Restart the app to search the rebuilt index.")
            log.error("%s", self._failure)
            return
        self._opened = self._wrap(fresh, embedder)
        log.info("index %s changed (generation %d -> %d): reopened, %d photos",
                 old.store.index_dir, old.generation, fresh.generation, fresh.count)
        # Safe while other threads still rank on it: the FAISS index is in memory and closing only
        # empties the catalog's connection pool (connections in use finish and are then dropped).
        old.store.close()

    @staticmethod
    def _adapted_embedder(fresh, current):
        """The base model of ``current`` with the adapter ``fresh`` names, or None if that is not the change."""
        from indexer.store import resolve_local
        from mme5 import load_embedder

        if resolve_local(fresh.model_id) != resolve_local(current.model_id) or fresh.adapter == current.adapter:
            return None

        try:
            embedder = load_embedder(resolve_local(fresh.model_id), device=current.device,
                                     adapter=resolve_local(fresh.adapter), runtime=current.runtime)
            fresh.check_embedder(embedder)
        except Exception as error:  # noqa: BLE001 - a bad adapter leaves the app serving the previous state
            log.error("index %s now uses adapter %s, which could not be loaded (%s)", fresh.index_dir, fresh.adapter,
                      error)
            return None
        log.info("index %s re-embedded with adapter %s: loaded it, switching model and index together",
                 fresh.index_dir, fresh.adapter)
        return embedder

    @classmethod
    def open(cls, index_dir, model=None, adapter=None, device=None, extra_roots=(), runtime=None) -> "SearchEngine":
        """Open an index with the model+adapter it was built with (or the given one, checked)."""
        from indexer import open_index

        embedder, store = open_index(Path(index_dir), model=model, adapter=adapter, device=device, runtime=runtime)
        return cls(store, embedder, extra_roots=extra_roots)

    def close(self) -> None:
        self._opened.store.close()

    # -- queries ---------------------------------------------------------------------------
    def search_text(self, text: str, **options) -> SearchPage:
        """Photos matching a description, in any language the model knows."""
        return self.search(text=text, **options)

    def search_image(self, image, **options) -> SearchPage:
        """"More like this" for an uploaded image (PIL image or file path)."""
        if image is None or (isinstance(image, str) and not image.strip()):
            raise ValueError("No image given: upload a photo to search with it.")
        return self.search(image=image, **options)

    def search_composed(self, image, text: str, **options) -> SearchPage:
        """Photos like ``image`` changed as ``text`` says ("but at night")."""
        if image is None or (isinstance(image, str) and not image.strip()):
            raise ValueError("A composed query needs an image: upload a photo, then describe the change.")
        return self.search(image=image, text=_check_text(text, "modifying text"), **options)

    def search_similar(self, image_id: int, **options) -> SearchPage:
        """"More like this" for a photo already in the index, named by its id (never by path)."""
        record = self.record(image_id)
        return self.search(image=str(self.servable_path(record.path)), **options)

    def search(self, text: str | None = None, image=None, **options) -> SearchPage:
        """Text, image or composed query, by which of ``text`` / ``image`` are given."""
        opts = SearchOptions.parse(**options)
        started = time.perf_counter()
        opened = self._current()  # one model+index pair for encoding and ranking
        vector = self._encode(opened.embedder, text=text, image=image)
        encoded = time.perf_counter()
        page = self._rank(opened, vector, opts)
        return SearchPage(page.results, page.offset, page.next_offset, encoded - started,
                          time.perf_counter() - encoded, options=opts.__dict__, generation=page.generation)

    def encode_query(self, text: str | None = None, image=None) -> np.ndarray:
        """The (1, dim) query vector; keep it to fetch further pages with ``rank`` without the model."""
        return self._encode(self._current().embedder, text=text, image=image)

    def _encode(self, embedder, text: str | None = None, image=None) -> np.ndarray:
        """``embedder``'s query vector: the one paired with the index a query ranks against."""
        if image is None or (isinstance(image, str) and not image.strip()):
            text = _check_text(text, "query text")
        kind = QueryKind.of(text=text, image=image)
        if kind is QueryKind.COMPOSED:
            text = _check_text(text, "modifying text")
        texts = [text.strip()] if kind is QueryKind.COMPOSED else [text] if kind.needs_text else None
        with self._model_lock:
            vector = embedder.encode_query(kind, texts=texts, images=[image] if kind.needs_image else None)
            return np.ascontiguousarray(vector, dtype=np.float32)

    # -- catalog facts -------------------------------------------------------------------------
    def record(self, image_id: int):
        """The catalog record of an indexed photo; ValueError if there is none."""
        try:
            image_id = int(image_id)
        except (TypeError, ValueError):
            raise ValueError(f"image_id must be an integer, got {image_id!r}") from None
        records = self._current().store.records(np.asarray([image_id], dtype=np.int64))
        if not records or records[0] is None:
            raise ValueError(f"no indexed photo has id {image_id}")
        return records[0]

    def servable_path(self, path: str | os.PathLike) -> Path:
        """Resolved path if it may be served (inside an indexed root or the assets), else PathNotAllowedError."""
        return self._current().guard.check(path)

    def stats(self) -> dict:
        """Index size and model facts for the UI footer and the API (current after a build)."""
        opened = self._current()
        store = opened.store
        return {
            "images": int(store.count),
            "model": opened.embedder.model_id,
            "adapter": getattr(store, "adapter", None),
            "dim": int(opened.embedder.dim),
            "roots": [str(root) for root in store.roots],
        }

    # -- ranking ---------------------------------------------------------------------------------
    def rank(self, vector: np.ndarray, opts: SearchOptions, generation: int | None = None) -> SearchPage:
        """One page of the ranking for an already-encoded query vector (1, dim).

        Hits are fetched in a window that grows until it yields enough results. When few
        photos pass the filters the search is restricted to them up front, so the window
        never wades through the rest of the library; otherwise filters drop hits as they come.
        ``generation`` (from the first page) makes a further page an IndexChangedError once a
        build changed the index, instead of offsets into a ranking that no longer exists.
        """
        return self._rank(self._current(), vector, opts, generation)

    def _rank(self, opened: _Opened, vector: np.ndarray, opts: SearchOptions, generation: int | None = None) -> SearchPage:
        if generation is not None and generation != opened.generation:
            raise IndexChangedError("The photo index changed since this search (photos were added or removed): "
                                    "search again to see the current results.")
        if sort_by_score := opts.sort == "score":
            needed = opts.offset + opts.k + 1  # one extra tells whether a next page exists
        else:
            needed = DATE_SORT_POOL
        among = self._few_matching_ids(opened.store, opts)
        total = int(opened.store.count) if among is None else len(among)
        filtered_as_they_come = among is None and bool(opts.folder or opts.date_from or opts.date_to)
        window = min(total, max(self.min_window, 4 * needed if filtered_as_they_come else needed + needed // 4))
        passing: dict[int, object] = {}  # id -> record, or None if filtered out; kept across rounds
        guard = opened.guard.batch()
        while True:
            kept, exhausted = self._candidates(opened, vector, window, total, opts, passing, guard, among)
            if len(kept) >= needed or exhausted:
                break
            window = min(total, _next_window(window, len(kept), needed))
        if not sort_by_score:
            kept = _date_sorted(kept[:DATE_SORT_POOL], newest_first=opts.sort == "date")
        results = kept[opts.offset : opts.offset + opts.k]
        has_more = len(kept) > opts.offset + opts.k
        return SearchPage(results, opts.offset, opts.offset + len(results) if has_more else None,
                          generation=opened.generation)

    def _few_matching_ids(self, store, opts: SearchOptions) -> np.ndarray | None:
        """Ids of the photos passing the folder/date filters if there are at most FEW_MATCHES; else None."""
        if not (opts.folder or opts.date_from or opts.date_to):
            return None
        where = {"folder": opts.folder, "date_from": opts.date_from, "date_to": opts.date_to}
        if store.count_matching(**where, up_to=FEW_MATCHES + 1) > FEW_MATCHES:
            return None
        return store.ids_matching(**where)

    def _candidates(self, opened: _Opened, vector, window: int, total: int, opts: SearchOptions, passing: dict[int, object],
                    guard, among: np.ndarray | None) -> tuple[list[SearchResult], bool]:
        """Filtered, collapsed results from the best ``window`` hits, in a prefix-stable order.

        ``among`` (ids, or None for the whole index) limits the hits; ``total`` is its size.
        Hits are ordered by (score desc, id asc). Unless the window covers every candidate,
        the lowest-scoring tie group is dropped: its members beyond the window are unknown,
        and keeping part of it would let a later, larger window reorder an earlier page.
        """
        if window <= 0:
            return [], True
        scores, ids = opened.store.search(vector, window, among=among)
        scores, ids = scores[0], ids[0]
        valid = ids >= 0
        scores, ids = scores[valid], ids[valid]
        exhausted = window >= total or len(ids) < window
        order = np.lexsort((ids, -scores))
        scores, ids = scores[order], ids[order]
        if not exhausted and len(scores):
            boundary = scores[-1]
            keep = scores > boundary
            scores, ids = scores[keep], ids[keep]
        new = [int(i) for i in ids if int(i) not in passing]
        for image_id, record in zip(new, self._fetch_records(opened, new)):
            passing[image_id] = record if record is not None and self._passes(record, opts, guard) else None
        results: list[SearchResult] = []
        by_hash: dict[str, int] = {}
        by_shot: dict[tuple[str, str], tuple[int, bool]] = {}  # RAW+JPEG pairs of one shot: shown once
        for score, image_id in zip(scores, ids):
            record = passing[int(image_id)]
            if record is None:
                continue
            if opts.collapse_duplicates:
                first = by_hash.get(record.content_hash) if record.content_hash else None
                shot = shot_key(record.path)
                if first is None and shot is not None:
                    paired = by_shot.get(shot[:2])
                    if paired is not None and paired[1] != shot[2]:
                        first = paired[0]
                if first is not None:
                    results[first] = _with_copy(results[first], record.path)
                    continue
                if record.content_hash:
                    by_hash[record.content_hash] = len(results)
                if shot is not None:
                    by_shot.setdefault(shot[:2], (len(results), shot[2]))
            results.append(_result(record, float(score)))
        return results, exhausted

    @staticmethod
    def _fetch_records(opened: _Opened, ids: list[int]) -> list:
        """Catalog records, from memory where possible: further pages and repeated queries reuse them."""
        cache = opened.records
        found = {i: cache.get(i) for i in ids}  # a local view: other threads may clear the cache
        unknown = [i for i, record in found.items() if record is None]
        if unknown:
            fetched = dict(zip(unknown, opened.store.records(np.asarray(unknown, dtype=np.int64))))
            found.update(fetched)
            if len(cache) + len(fetched) > RECORD_CACHE_LIMIT:
                cache.clear()
            cache.update((i, record) for i, record in fetched.items() if record is not None)
        return [found[i] for i in ids]

    @staticmethod
    def _passes(record, opts: SearchOptions, guard) -> bool:
        """The user's filters first (cheap), then the path guard (a file-system call)."""
        if opts.folder and not _in_folder(record, opts.folder):
            return False
        if opts.date_from or opts.date_to:
            taken = _naive(record.taken_at)
            if taken is None:
                return False
            if opts.date_from and taken < opts.date_from:
                return False
            if opts.date_to and taken > opts.date_to:
                return False
        if not guard.allows(record.path):
            log.warning("skipping %s: outside the indexed folders (symlink?)", record.path)
            return False
        return True


def _slow_reload_gap(reload_seconds: float) -> float:
    """Least wait before the next look, given how long the last reopen took.

    A build commits every batch, and reopening a large index (loading FAISS, syncing it
    with the catalog) must not eat the app: a reopen that took noticeable time is followed
    by ten times as long without one (at most 10 % of the time spent reopening)."""
    return 0.0 if reload_seconds < 0.5 else 10 * reload_seconds


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file, None while it is missing (e.g. an index being deleted and rebuilt)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _next_window(window: int, kept: int, needed: int) -> int:
    """Grow by the pass rate seen so far (with a margin), at least ×4: few rounds even for rare folders."""
    if kept == 0:
        return window * 16
    return max(window * 4, int(window * needed / kept * 1.5))


def _result(record, score: float) -> SearchResult:
    return SearchResult(
        path=record.path, score=score, size=int(record.size or 0), taken_at=record.taken_at,
        image_id=int(record.id), content_hash=record.content_hash or "",
        width=record.width, height=record.height, relpath=record.relpath or "",
    )


def _with_copy(result: SearchResult, path: str) -> SearchResult:
    return replace(result, also_at=(*result.also_at, path))


def _date_sorted(results: list[SearchResult], newest_first: bool) -> list[SearchResult]:
    """By capture date (ties by score); photos without a date go last either way."""
    dated = [result for result in results if result.taken_at is not None]
    undated = [result for result in results if result.taken_at is None]
    dated.sort(key=lambda result: (_naive(result.taken_at), -result.score if newest_first else result.score),
               reverse=newest_first)
    return dated + undated


def _in_folder(record, folder: str) -> bool:
    """Whole-name prefix match: "2023" matches "2023/x.jpg", not "20231/x.jpg".

    ``folder`` is normalised by SearchOptions.parse. An absolute folder is compared with
    the absolute path, a relative one with the path relative to its indexed root.
    """
    target = record.path if folder.startswith("/") else record.relpath
    return target == folder or target.startswith(folder + "/")


def _naive(value: datetime | None) -> datetime | None:
    """Capture dates are wall-clock times; compare them without time zones."""
    if value is None:
        return None
    return value.replace(tzinfo=None) if value.tzinfo else value


def _parse_date(value, name: str, end_of_day: bool) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return _naive(value)
    if isinstance(value, date):
        return datetime.combine(value, dtime.max if end_of_day else dtime.min)
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # Gradio DateTime sends epoch seconds
        return datetime.fromtimestamp(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:  # a bare day: the whole day is inside the range
                return datetime.combine(date.fromisoformat(text), dtime.max if end_of_day else dtime.min)
            return _naive(datetime.fromisoformat(text))
        except ValueError:
            pass
    raise ValueError(f"{name} {value!r} is not a date: use YYYY-MM-DD (or an ISO date-time like 2024-05-01T18:30)")


def _check_text(text, what: str) -> str:
    if isinstance(text, str) and len(text) > MAX_QUERY_CHARS:  # checked first: stripping 30 MB takes time too
        raise ValueError(f"The {what} is too long ({len(text):,} characters; at most {MAX_QUERY_CHARS:,}): "
                         "describe the photo in a sentence or two.")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"The {what} is empty: type what you are looking for, e.g. “a dog on a beach”.")
    return text.strip()




__all__ = ["IndexChangedError", "PathNotAllowedError", "SearchEngine", "SearchOptions", "SearchPage", "SearchResult", "SORTS"]
