"""SearchEngine: queries in, ranked and filtered pages of photos out (no UI code here).

The model turns a query into a vector; FAISS (through the indexer's IndexStore) ranks
the catalog; the jobs on top live in their own modules and meet here:
``options`` (what a query may ask, validated), ``filters`` (every filter, defined once),
``query_dates`` (dates typed into the text), ``encoding`` (query -> vector, "without"),
``live`` (reopening the index after a build) and ``ranking`` (filters, copies, pages,
strong matches).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .albums import albums_for
from .encoding import MAX_QUERY_CHARS, QueryEncoder, check_length, check_text as _check_text
from .live import RELOAD_INTERVAL, LiveIndex, slow_reload_gap as _slow_reload_gap
from .options import MAX_K, SORTS, SearchOptions
from .paths import PathGuard, PathNotAllowedError
from .query_dates import find_dates
from .query_near import find_near
from .query_places import PlaceNames
from .ranking import IndexChangedError, rank, resolve_filters, strong_cutoff, suggestions
from .results import SearchPage, SearchResult, result_of
from .filters import BY_NAME


class SearchEngine:
    """Answers text, image and composed (image + text) queries over one index.

    ``store`` is an ``indexer.IndexStore``; ``embedder`` must produce vectors in the
    same space the index was built in (checked here, so a wrong model fails at start,
    not with silently meaningless results). A build run while the engine serves is
    picked up within ``reload_interval`` seconds: the store is reopened, the model kept
    (or, for an index re-embedded with another adapter, swapped together with it; see ``live``).
    """

    min_window = 64  # FAISS hits fetched at first; grows ×4 while filters or copies leave too few
    random_weights = False  # the model is the tiny random-weight one (--tiny): the page says results are meaningless

    def __init__(
        self,
        store,
        embedder,
        extra_roots: Sequence[str | os.PathLike] = (),
        reload_interval: float = RELOAD_INTERVAL,
        gpu=None,
    ):
        """``gpu``: a decorator for the model's forward pass alone (``spaces.GPU`` on ZeroGPU; see QueryEncoder)."""
        store.check_embedder(embedder)
        self._encoder = QueryEncoder(gpu)
        self._live = LiveIndex(store, embedder, extra_roots, reload_interval)

    @property
    def embedder(self):
        """The model queries are encoded with now (the one paired with the current store)."""
        return self._live.opened.embedder

    @property
    def reload_interval(self) -> float:
        return self._live.reload_interval

    @reload_interval.setter
    def reload_interval(self, seconds: float) -> None:
        self._live.reload_interval = seconds

    @property
    def store(self):
        """The store queries use now (replaced when a build changes the index)."""
        return self._live.opened.store

    @property
    def guard(self) -> PathGuard:
        return self._live.opened.guard

    @property
    def generation(self) -> int:
        """The catalog generation the current store was opened at."""
        return self._live.current().generation

    @classmethod
    def open(
        cls,
        index_dir,
        model=None,
        adapter=None,
        device=None,
        extra_roots=(),
        runtime=None,
        immutable: bool = False,
        gpu=None,
    ) -> "SearchEngine":
        """Open an index with the model+adapter it was built with (or the given one, checked).

        ``immutable``: a downloaded Hub snapshot, read without writing anything beside it."""
        from indexer import open_index

        embedder, store = open_index(
            Path(index_dir), model=model, adapter=adapter, device=device, runtime=runtime, immutable=immutable
        )
        return cls(store, embedder, extra_roots=extra_roots, gpu=gpu)

    def close(self) -> None:
        if getattr(self, "_albums", None) is not None:
            self._albums.close()
        self._live.opened.store.close()

    @property
    def albums(self):
        """Saved searches of this index (search_app/albums.py): in its catalog file, or for a published index in
        the user's own album store (``albums_for``)."""
        if getattr(self, "_albums", None) is None:
            self._albums = albums_for(self._live.opened.store)
        return self._albums

    def similar_groups(self, threshold: float | None = None):
        """(threshold, groups of near-identical photos) in the current index (indexer/similar.py); the threshold
        defaults to the index's model family's (mme5/registry.py). LimitError (search_app/limits.py) for a threshold
        below the floor or one that joins too many pairs."""
        from indexer.similar import default_threshold, similar_groups

        from .limits import MAX_SIMILAR_PAIRS, check_similar_threshold, too_many_pairs

        store = self._live.current().store
        threshold = default_threshold(store) if threshold in (None, "") else float(threshold)
        check_similar_threshold(threshold)
        return threshold, similar_groups(store, threshold, max_pairs=MAX_SIMILAR_PAIRS, too_many=too_many_pairs)

    # -- queries ---------------------------------------------------------------------------
    def search_text(self, text: str, **options) -> SearchPage:
        """Photos matching a description, in any language the model knows."""
        return self.search(text=text, **options)

    def search_image(self, image, **options) -> SearchPage:
        """ "More like this" for an uploaded image (PIL image or file path)."""
        if image is None or (isinstance(image, str) and not image.strip()):
            raise ValueError("No image given: upload a photo to search with it.")
        return self.search(image=image, **options)

    def search_composed(self, image, text: str, **options) -> SearchPage:
        """Photos like ``image`` changed as ``text`` says ("but at night")."""
        if image is None or (isinstance(image, str) and not image.strip()):
            raise ValueError("A composed query needs an image: upload a photo, then describe the change.")
        return self.search(image=image, text=_check_text(text, "modifying text"), **options)

    def search_similar(self, image_id: int, exclude_self: bool = False, **options) -> SearchPage:
        """ "More like this" for a photo already in the index, named by its id (never by path).

        ``exclude_self`` leaves the photo itself (and its identical copies) out of the results."""
        record = self.record(image_id)
        if exclude_self:
            options["exclude"] = (*SearchOptions.parse(exclude=options.get("exclude")).exclude, record.id)
        return self.search(image=self.query_image(record), **options)

    def search(self, text: str | None = None, image=None, **options) -> SearchPage:
        """Text, image or composed query, by which of ``text`` / ``image`` are given."""
        opts = SearchOptions.parse(**options)
        opts, dates, embedded = self.read_query_dates(text, opts)
        opts, place, embedded = self.read_query_places(embedded, opts)
        started = time.perf_counter()
        opened = self._live.current()  # one model+index pair for encoding and ranking
        vector = self._encoder.encode(opened.embedder, text=embedded, image=image, without=tuple(opts.without))
        encoded = time.perf_counter()
        page = self._rank(opened, vector, opts, text=embedded if image is None else None)
        return dataclasses.replace(
            page,
            query_seconds=encoded - started,
            search_seconds=time.perf_counter() - encoded,
            options=opts.__dict__,
            query_dates=dates.to_json() if dates else None,
            query_place=place.to_json() if place else None,
            embedded_text=embedded if dates or place else None,
        )

    def read_query_dates(self, text: str | None, opts: SearchOptions):
        """(options, dates found or None, text to embed): a date typed in the text becomes the date filter.

        Only when no date filter is set already and ``opts.dates_in_text``; if the text held
        nothing but the date, the whole text is embedded (the filter still applies)."""
        check_length(text)
        if not (
            opts.dates_in_text
            and isinstance(text, str)
            and text.strip()
            and opts.date_from is None
            and opts.date_to is None
        ):
            return opts, None, text
        dates = find_dates(text)
        if dates is None:
            return opts, None, text
        opts = dataclasses.replace(opts, date_from=dates.start, date_to=dates.end)
        return opts, dates, dates.rest or text

    def read_query_places(self, text: str | None, opts: SearchOptions):
        """(options, place found or None, text to embed): the name of an indexed place typed in the text becomes
        the place filter (see query_places), "near Lisbon" / "within 5 km of Lisbon" the ``near`` filter (see
        query_near). Only when ``opts.places_in_text`` and that filter is not set already; an index without
        places costs one dictionary look-up."""
        check_length(text)
        if not (
            opts.places_in_text and (opts.place is None or opts.near is None) and isinstance(text, str) and text.strip()
        ):
            return opts, None, text
        opened = self._live.current()
        names = opened.facts.get("place_names")
        if names is None:
            names = opened.facts["place_names"] = PlaceNames.for_store(
                opened.store, suggestions(opened, BY_NAME["place"])
            )
        place = find_near(text, names) if opts.near is None else None
        if place is None and opts.place is None:
            place = names.find(text)
        if place is None:
            return opts, None, text
        return dataclasses.replace(opts, **place.filters), place, place.rest or text

    def encode_query(self, text: str | None = None, image=None, without: Sequence[str] = ()) -> np.ndarray:
        """The (1, dim) query vector; keep it to fetch further pages with ``rank`` without the model."""
        return self._encoder.encode(self._live.current().embedder, text=text, image=image, without=tuple(without))

    # -- catalog facts -------------------------------------------------------------------------
    def record(self, image_id: int):
        """The catalog record of an indexed photo; ValueError if there is none."""
        try:
            image_id = int(image_id)
        except (TypeError, ValueError):
            raise ValueError(f"image_id must be an integer, got {image_id!r}") from None
        records = self._live.current().store.records(np.asarray([image_id], dtype=np.int64))
        if not records or records[0] is None:
            raise ValueError(f"no indexed photo has id {image_id}")
        return records[0]

    def whole_videos(self, image_ids) -> list[int]:
        """Every row id of the videos among ``image_ids`` (a video's own row and all its keyframes), ascending:
        what leaves a video out of a search entirely (an album's pinned or removed moment)."""
        from indexer.video_rows import whole_video_rows

        store = self._live.current().store
        records = store.records(np.asarray([int(i) for i in image_ids], dtype=np.int64))
        videos = {record.video_key for record in records if record is not None and record.video_key is not None}
        if not videos:
            return []
        with store.catalog.session() as session:
            return whole_video_rows(session, videos)

    def photo_text(self, content_hash: str | None) -> str:
        """The text OCR read in the photo with this content, "" when none."""
        from indexer.fulltext import photo_text

        return photo_text(self._live.current().store.catalog, content_hash)

    def image_file(self, record) -> Path:
        """The file to look at for a photo: its original when present, else the preview a published index carries
        (served from the Hub without originals); PathNotAllowedError for an original outside the indexed folders."""
        path = self.servable_path(record.path)
        if not path.is_file():
            preview = self._live.current().store.preview_file(record.content_hash)
            if preview is not None:
                return preview
        return path

    def query_image(self, record):
        """What "more like this" encodes for an indexed record: its file (``image_file``); for a video hit the
        frame at its second (a PIL image). ImageError when the video cannot be read any more."""
        if record.media_type != "video":
            return str(self.image_file(record))
        from indexer.video import VideoError, frame_at
        from mme5.errors import ImageError

        path = self.servable_path(record.path)
        try:
            return frame_at(str(path), record.timestamp_s or 0.0, 1024)
        except VideoError as error:
            raise ImageError(str(path), error.reason) from None

    def servable_path(self, path: str | os.PathLike) -> Path:
        """Resolved path if it may be served (inside an indexed root or the assets), else PathNotAllowedError."""
        return self._live.current().guard.check(path)

    def suggestions(self, name: str) -> list[str]:
        """Indexed values of a filter (folders, cameras, file types) to offer in the UI."""
        item = BY_NAME[name]
        return suggestions(self._live.current(), item) if item.suggest else []

    def stats(self) -> dict:
        """Index size and model facts for the UI footer and the API (current after a build)."""
        opened = self._live.current()
        store = opened.store
        return {
            "images": int(store.count),
            "model": opened.embedder.model_id,
            "adapter": getattr(store, "adapter", None),
            "dim": int(opened.embedder.dim),
            "roots": [str(root) for root in store.roots],
        }

    def newest(self, k: int) -> list[SearchResult]:
        """Up to ``k`` of the newest photos (capture date, else when added), identical copies once, files outside
        the indexed folders (a symlink swapped since indexing) left out: the page before the first search."""
        opened = self._live.current()
        store = opened.store
        results, seen = [], set()
        for record in store.records(store.catalog.newest_ids(k * 2 + 8)):
            if (
                record is None
                or (record.content_hash and record.content_hash in seen)
                or not opened.guard.allows(record.path)
            ):
                continue
            seen.add(record.content_hash)
            results.append(result_of(record, 0.0))
            if len(results) == k:
                break
        return results

    # -- ranking ---------------------------------------------------------------------------------
    def rank(
        self, vector: np.ndarray, opts: SearchOptions, generation: int | None = None, text: str | None = None
    ) -> SearchPage:
        """One page of the ranking for an already-encoded query vector (1, dim); see ``ranking.rank``.

        ``generation`` (from the first page) makes a further page an IndexChangedError once a
        build changed the index; ``text`` (the typed words) puts photos whose words match them first."""
        return self._rank(self._live.current(), vector, opts, generation, text)

    def _rank(
        self, opened, vector: np.ndarray, opts: SearchOptions, generation: int | None = None, text: str | None = None
    ) -> SearchPage:
        opts, notes = resolve_filters(opened, opts)
        return rank(opened, vector, opts, self.min_window, generation=generation, notes=notes, text=text)

    def strong_cutoff(self, vector: np.ndarray) -> float:
        """The score a hit must beat to count as a strong match for this query (see ranking.strong_cutoff)."""
        return strong_cutoff(self._live.current(), vector)


__all__ = [
    "IndexChangedError",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "PathNotAllowedError",
    "SearchEngine",
    "SearchOptions",
    "SearchPage",
    "SearchResult",
    "SORTS",
    "_slow_reload_gap",
]
