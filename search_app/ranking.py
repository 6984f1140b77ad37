"""Ranking an encoded query over one opened index: filters, identical copies, date sort, pages, strong matches."""

from __future__ import annotations

import logging
from dataclasses import replace
from statistics import NormalDist

import numpy as np

from mme5.raw import shot_key

from . import filters
from .filters import naive
from .live import Opened
from .results import SearchPage, SearchResult, result_of, with_copy, with_moment

log = logging.getLogger(__name__)

DATE_SORT_POOL = 200  # date sort orders the best matches, not the whole library
RECORD_CACHE_LIMIT = 250_000  # catalog records kept in memory (~0.5 KB each) across queries
# Filters matched by at most this many photos rank only those photos. Listing them
# costs ~2.5 µs a match, filtering hits after the search costs ~1/(share of photos that match):
# on 100k photos (2-core CPU) both took ~13 ms a page at 5,000 matches; for 3 matches, 11 ms vs 2.4 s cold.
FEW_MATCHES = 5_000
SAMPLE_SIZE = 2_048  # library vectors a strong-match cut-off is measured against
STRONG_FALSE_ALARMS = 0.01  # expected background photos above the cut-off, for the whole library
STRONG_COUNT_LIMIT = 10_000  # strong matches counted at most (beyond: "≥ 10000")


class IndexChangedError(ValueError):
    """A further page was asked of a ranking made before the index changed: its offsets mean nothing now."""


def rank(
    opened: Opened,
    vector: np.ndarray,
    opts,
    min_window: int,
    generation: int | None = None,
    notes: tuple[str, ...] = (),
    text: str | None = None,
) -> SearchPage:
    """One page of the ranking for an already-encoded query vector (1, dim).

    Hits are fetched in a window that grows until it yields enough results. When few
    photos pass the filters the search is restricted to them up front, so the window
    never wades through the rest of the library; otherwise filters drop hits as they come.
    ``generation`` (from the first page) makes a further page an IndexChangedError once a
    build changed the index, instead of offsets into a ranking that no longer exists.
    ``text`` (the typed query) adds the photos whose words match it ahead of the rest (search_app/text_match.py);
    without a text hit the ranking is the vector ranking alone.
    """
    if generation is not None and generation != opened.generation:
        raise IndexChangedError(
            "The photo index changed since this search (photos were added or removed): "
            "search again to see the current results."
        )
    if text and opts.sort == "score":
        from .text_match import text_first

        fused = text_first(
            opened,
            vector,
            opts,
            text,
            lambda ids: _fetch_records(opened, ids),
            lambda record: (
                record is not None
                and record.id not in set(opts.exclude)
                and _passes(record, opts, opened.guard.batch())
            ),
            lambda page_opts: rank(opened, vector, page_opts, min_window, generation, notes),
        )
        if fused is not None:
            return fused
    if sort_by_score := opts.sort == "score":
        page_needed = opts.offset + opts.k + 1  # one extra tells whether a next page exists
    else:
        page_needed = DATE_SORT_POOL
    cutoff = strong_cutoff(opened, vector) if opts.strong_only else None
    # with a cut-off, count every strong match (the window grows until a hit falls below it)
    needed = page_needed if cutoff is None else STRONG_COUNT_LIMIT + 1
    among = _few_matching_ids(opened.store, opts)
    total = int(opened.store.count) if among is None else len(among)
    filtered_as_they_come = among is None and bool(opts.filters_on or opts.exclude)
    window = min(total, max(min_window, 4 * page_needed if filtered_as_they_come else page_needed + page_needed // 4))
    passing: dict[int, object] = {}  # id -> record, or None if filtered out; kept across rounds
    guard = opened.guard.batch()
    while True:
        kept, exhausted = _candidates(opened, vector, window, total, opts, passing, guard, among, cutoff)
        if len(kept) >= needed or exhausted:
            break
        window = min(total, _next_window(window, len(kept), needed))
    strong = hidden = None
    if cutoff is not None:
        strong = len(kept)
        matching = total if not opts.filters_on or among is not None else _count_matching(opened.store, opts)
        hidden = max(0, matching - len(opts.exclude) - strong)
    if not sort_by_score:
        kept = _date_sorted(kept[:DATE_SORT_POOL], newest_first=opts.sort == "date")
    results = kept[opts.offset : opts.offset + opts.k]
    has_more = len(kept) > opts.offset + opts.k
    return SearchPage(
        results,
        opts.offset,
        opts.offset + len(results) if has_more else None,
        generation=opened.generation,
        strong=strong,
        hidden=hidden,
        cutoff=cutoff,
        notes=notes,
    )


def strong_cutoff(opened: Opened, vector: np.ndarray) -> float:
    """The score a hit must beat to stand out from this query's scores over the library.

    A fixed score fails (each query and model has its own scale), so the cut-off is measured
    per query on a sample of the library: median + z · robust spread (MAD), with z such that a
    library of N photos drawn like the sample has on average ``STRONG_FALSE_ALARMS`` photos
    above it (z = Φ⁻¹(1 − 0.01 / N), ≈ 5.3 for 100k). Median and MAD barely move when a
    cluster of relevant photos (up to a good share of the sample) is in the sample itself.
    """
    sample = library_sample(opened)
    if len(sample) < 2:
        return -np.inf
    scores = sample @ np.asarray(vector, dtype=np.float32).reshape(-1)
    median = float(np.median(scores))
    spread = 1.4826 * float(np.median(np.abs(scores - median)))
    count = max(int(opened.store.count), 2)
    z = NormalDist().inv_cdf(1 - STRONG_FALSE_ALARMS / count)
    return median + z * max(spread, 1e-6)


def library_sample(opened: Opened) -> np.ndarray:
    """Up to SAMPLE_SIZE stored vectors (float32), drawn once per opened index with a fixed seed."""
    sample = opened.facts.get("sample")
    if sample is None:
        ids = opened.store.ids()
        if len(ids) > SAMPLE_SIZE:
            ids = np.sort(np.random.default_rng(0).choice(ids, SAMPLE_SIZE, replace=False))
        sample = opened.store.vectors(ids) if len(ids) else np.empty((0, opened.store.dim), np.float32)
        opened.facts["sample"] = sample
    return sample


def _few_matching_ids(store, opts) -> np.ndarray | None:
    """Ids of the photos passing the filters if there are at most FEW_MATCHES; else None."""
    if not opts.filters_on:
        return None
    everything = filters.catalog_only(opts)  # no record test to filter hits as they come: list them all
    found = store.ids_where(filters.sql_conditions(opts, store), limit=None if everything else FEW_MATCHES + 1)
    if len(found) > FEW_MATCHES and not everything:
        return None
    if opts.exclude:
        found = np.setdiff1d(found, np.asarray(opts.exclude, dtype=np.int64))
    return found


def _count_matching(store, opts) -> int:
    return len(store.ids_where(filters.sql_conditions(opts, store)))


def _candidates(
    opened: Opened,
    vector,
    window: int,
    total: int,
    opts,
    passing: dict[int, object],
    guard,
    among: np.ndarray | None,
    cutoff: float | None,
) -> tuple[list[SearchResult], bool]:
    """Filtered, collapsed results from the best ``window`` hits, in a prefix-stable order.

    ``among`` (ids, or None for the whole index) limits the hits; ``total`` is its size.
    Hits are ordered by (score desc, id asc). Unless the window covers every candidate,
    the lowest-scoring tie group is dropped: its members beyond the window are unknown,
    and keeping part of it would let a later, larger window reorder an earlier page.
    With a ``cutoff``, hits below it are dropped and reaching one ends the search.
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
    if cutoff is not None and len(scores) and scores[-1] < cutoff:
        exhausted = True
    if not exhausted and len(scores):
        boundary = scores[-1]
        keep = scores > boundary
        scores, ids = scores[keep], ids[keep]
    if cutoff is not None:
        keep = scores >= cutoff
        scores, ids = scores[keep], ids[keep]
    new = [int(i) for i in ids if int(i) not in passing]
    excluded = set(opts.exclude)
    for image_id, record in zip(new, _fetch_records(opened, new)):
        passing[image_id] = (
            record if (record is not None and image_id not in excluded and _passes(record, opts, guard)) else None
        )
    results: list[SearchResult] = []
    by_hash: dict[str, int] = {}
    by_shot: dict[tuple[str, str], tuple[int, bool]] = {}  # RAW+JPEG pairs of one shot: shown once
    by_video: dict[int, int] = {}  # a video's keyframes: one result, its best moment first, the others folded in
    for score, image_id in zip(scores, ids):
        record = passing[int(image_id)]
        if record is None:
            continue
        video = record.video_key
        if video is not None and video in by_video:
            results[by_video[video]] = with_moment(results[by_video[video]], record.timestamp_s, float(score))
            continue
        if video is not None:
            by_video[video] = len(results)
        if opts.collapse_duplicates:
            first = by_hash.get(record.content_hash) if record.content_hash else None
            shot = shot_key(record.path)
            if first is None and shot is not None:
                paired = by_shot.get(shot[:2])
                if paired is not None and paired[1] != shot[2]:
                    first = paired[0]
            if first is not None:
                results[first] = with_copy(results[first], record.path)
                if video is not None:
                    by_video[video] = first  # a copy of a video: its further keyframes fold into the first copy
                continue
            if record.content_hash:
                by_hash[record.content_hash] = len(results)
            if shot is not None:
                by_shot.setdefault(shot[:2], (len(results), shot[2]))
        results.append(result_of(record, float(score)))
    return results, exhausted


def _fetch_records(opened: Opened, ids: list[int]) -> list:
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


def _passes(record, opts, guard) -> bool:
    """The user's filters first (cheap), then the path guard (a file-system call)."""
    if not filters.passes(record, opts):
        return False
    if not guard.allows(record.path):
        log.warning("skipping %s: outside the indexed folders (symlink?)", record.path)
        return False
    return True


def _next_window(window: int, kept: int, needed: int) -> int:
    """Grow by the pass rate seen so far (with a margin), at least ×4: few rounds even for rare folders."""
    if kept == 0:
        return window * 16
    return max(window * 4, int(window * needed / kept * 1.5))


def _date_sorted(results: list[SearchResult], newest_first: bool) -> list[SearchResult]:
    """By capture date (ties by score); photos without a date go last either way."""
    dated = [result for result in results if result.taken_at is not None]
    undated = [result for result in results if result.taken_at is None]
    dated.sort(
        key=lambda result: (naive(result.taken_at), -result.score if newest_first else result.score),
        reverse=newest_first,
    )
    return dated + undated


def resolve_filters(opened: Opened, opts) -> tuple[object, tuple[str, ...]]:
    """Options with typed filter values mapped onto indexed ones (e.g. a folder's case), plus notes
    for values the index does not have ("no folder called X"; the search then finds nothing)."""
    notes, changes = [], {}
    for item, value in filters.active(opts):
        if item.suggest is None or (isinstance(value, str) and value.startswith("/")):
            continue
        known = suggestions(opened, item)
        resolved = item.resolve(value, known) if item.resolve else value
        if resolved != value:
            changes[item.name] = resolved
        if resolved not in known:
            offer = ", ".join(known[:8]) + (" …" if len(known) > 8 else "")
            notes.append(
                f"No {item.label.lower()} called “{value}” is indexed"
                + (f" (there are: {offer})" if known else "")
                + "."
            )
    return (replace(opts, **changes) if changes else opts), tuple(notes)


def suggestions(opened: Opened, item) -> list[str]:
    """A filter's indexed values, listed once per opened index."""
    key = "suggest:" + item.name
    if key not in opened.facts:
        opened.facts[key] = [str(value) for value in item.suggest(opened.store)]
    return opened.facts[key]
