"""Engines: how the build's files are read, decoded and embedded.

An engine turns the build's work list into a stream of ``Embedded(position, result, vector, failure,
keyframes)``, one per file, in any order: ``position`` is the file's place in the list, ``result`` what
``indexer.reader.read_file`` found (hash, metadata, or why it is unreadable), ``vector`` the
embedding of its pixels when they were new content, ``failure`` why the model rejected them, and
for a video ``keyframes``: its further keyframes (the first is the file's own image), each a
``KeyframeVector`` with its own content key, vector or failure. A video stays one record so
that the build decides and commits it, keyframes included, as one unit in one transaction.
The engine decides nothing about the catalog; the build (indexer/build.py) consumes the stream
and owns every decision and commit. Two engines:

- ``LocalEngine`` (here): reader threads decode within the decode budget while this process's
  embedder embeds, one batch in flight;
- ``indexer.ray_engine.RayEngine`` (``--engine ray``): the same on a Ray cluster (its videos go
  through a ``LocalEngine`` on the driver: Ray's columns carry one image per file).

Per file the flow is: read and decode (``read_file``) -> embed (the engine) -> decide and commit
(``_Build._decide`` and ``_Build._commit``). Where a new per-file stage belongs:

- facts read from the file itself (OCR text, GPS, a video's timestamps): a new ``ReadResult``
  field filled in ``read_file`` (Ray's columns follow ``ReadResult``'s fields on their own),
  stored by ``_Build._decide`` in the file's catalog row;
- work for the model (as embedding a video's keyframes): here, beside ``embed_isolating``,
  handing the outcome to the build through ``Embedded``.

A content hash is embedded at most once per engine batch and never when ``known`` (the content
hashes whose vectors the catalog stores) holds it, so unchanged bytes that moved or were only
touched are never decoded again.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generator, Iterator, NamedTuple, Sequence

import numpy as np

from .files import FileEntry
from .reader import DecodeBudget, ReadResult, read_file
from .records import model_rejected_reason
from .video import keyframe_hash

COMMIT_ROWS = 256  # files per batch when few of them need the model (touched or unreadable files)


class KeyframeVector(NamedTuple):
    """One of a video's further keyframes (after the first, which is the file's own image), embedded."""

    timestamp_s: float
    content_hash: str  # video.keyframe_hash(the video's content hash, timestamp_s): its vector's key
    vector: np.ndarray | None  # its embedding, if its pixels were embedded here (new content)
    failure: str | None  # why the model could not embed it (the keyframe is left out), else None


class Embedded(NamedTuple):
    """One file of the work list, read and (if its content is new) embedded."""

    position: int  # its place in the work list the engine was given (not "index": that is tuple.index)
    result: ReadResult  # without pixels: ``image`` and ``keyframes`` are emptied once handed to the model
    vector: np.ndarray | None  # the embedding of its content, if this file's pixels were embedded
    failure: str | None  # why the model could not embed its pixels (an error row), else None
    keyframes: tuple[KeyframeVector, ...] = ()  # a video's further keyframes, in time order; () for a photo


Outcome = tuple[np.ndarray | None, str | None]  # (vector, None) or (None, why the model rejected it)


def embed_isolating(embedder, images: Sequence, embed_batch: Callable[[], Sequence]) -> list[Outcome]:
    """``(vector, None)`` per image from ``embed_batch()``; if the batch fails, each image again on its
    own, so one the model rejects becomes ``(None, reason)`` instead of stopping the build (both engines)."""
    try:
        return [(vector, None) for vector in embed_batch()]
    except Exception:  # noqa: BLE001 - isolate the bad image(s) one by one below
        outcomes: list[Outcome] = []
        for image in images:
            try:
                outcomes.append((embedder.encode_images([image], batch_size=1)[0], None))
            except Exception as error:  # noqa: BLE001
                outcomes.append((None, model_rejected_reason(error)))
        return outcomes


class _Batch:
    """Files read since the last batch went to the model, in order, and the new content among them."""

    def __init__(self):
        self.items: list[tuple[int, ReadResult, list]] = []  # (index, result, [(seconds, key)] of further keyframes)
        self.images: dict = {}  # content hash -> decoded image (its first copy's), in order
        self.first: dict[str, int] = {}  # content hash -> the index of the file whose pixels are embedded
        self.future: Future | None = None

    def add(self, index: int, result: ReadResult, known: set) -> None:
        # the build needs the vectors, not the pixels: the file's image and a video's further keyframes
        image, result.image = result.image, None
        further, result.keyframes = result.keyframes[1:], []
        content = result.content_hash  # set for every file read without an error
        usable = content is not None and not (result.error or result.vanished or result.changed)
        keyframes = (
            [(seconds, keyframe_hash(content, seconds)) for seconds, _ in further]
            if content is not None and usable
            else []
        )
        self.items.append((index, result, keyframes))
        if content is not None and usable:
            self._want(content, image, index, known)
            for (_, digest), (_, picture) in zip(keyframes, further):
                self._want(digest, picture, index, known)

    def _want(self, digest: str, image, index: int, known: set) -> None:
        if image is not None and digest not in known and digest not in self.images:
            self.images[digest] = image
            self.first[digest] = index

    def full(self, batch_size: int) -> bool:
        return len(self.images) >= batch_size or len(self.items) >= COMMIT_ROWS

    def send(self, embedder, batch_size: int, known: set) -> None:
        """Start embedding in the background; later copies of this content are then not decoded again."""
        if self.images:
            self.future = embedder.submit("encode_images", list(self.images.values()), batch_size=batch_size)
            known.update(self.images)

    def results(self, embedder) -> Iterator[Embedded]:
        outcomes: dict[str, Outcome] = {}
        if self.future is not None:
            outcomes = dict(zip(self.images, embed_isolating(embedder, list(self.images.values()), self.future.result)))
        self.images.clear()

        def outcome(digest: str | None, index: int) -> Outcome:
            return outcomes[digest] if digest is not None and self.first.get(digest) == index else (None, None)

        for index, result, keyframes in self.items:
            yield Embedded(
                index,
                result,
                *outcome(result.content_hash, index),
                tuple(KeyframeVector(seconds, digest, *outcome(digest, index)) for seconds, digest in keyframes),
            )


class LocalEngine:
    """Reader threads decode (overlapping the model) within the decode budget; this process's embedder
    embeds. One batch is always in flight: while the model embeds it, the threads decode the next one
    (on a GPU, mme5 also preprocesses it meanwhile). Files come back in work-list order."""

    label = "indexing"

    def __init__(self, workers: int | None = None):
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.peak_decode_pixels = 0  # most pixels decoded at once, after a run

    def results(
        self, entries: Sequence[FileEntry], embedder, known: frozenset, batch_size: int, budget: DecodeBudget
    ) -> Generator[Embedded, None, None]:
        seen = set(known)  # grows as batches go to the model
        draft = embedder.backbone.image_draft_size
        window = max(2 * batch_size, 2 * self.workers)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="indexer-read")
        batch, in_flight = _Batch(), None
        try:
            reads: deque = deque()
            following = enumerate(entries)
            for index, entry in following:
                reads.append((index, pool.submit(read_file, entry, draft, seen, budget)))
                if len(reads) >= window:
                    break
            while reads:
                index, future = reads.popleft()
                nxt = next(following, None)
                if nxt is not None:
                    reads.append((nxt[0], pool.submit(read_file, nxt[1], draft, seen, budget)))
                batch.add(index, future.result(), seen)
                if batch.full(batch_size):
                    batch.send(embedder, batch_size, seen)
                    if in_flight is not None:
                        yield from in_flight.results(embedder)  # the build commits it while `batch` embeds
                    batch, in_flight = _Batch(), batch
        finally:  # on Ctrl-C/SIGTERM, or when the build stops reading, reads not yet started are dropped
            pool.shutdown(wait=True, cancel_futures=True)
        self.peak_decode_pixels = budget.peak
        batch.send(embedder, batch_size, seen)
        for last in (in_flight, batch):
            if last is not None:
                yield from last.results(embedder)
