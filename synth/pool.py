"""The image pool: query images from an ``indexer`` index, positives and hard negatives
among their nearest neighbours under the index's own retrieval model (paper Fig. 2)."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np

from .configure import ImageRef
from .errors import SynthError


class PoolError(SynthError, ValueError):
    """The index cannot supply the images a run needs."""


class ImagePool:
    """``among`` (image ids) restricts every draw, neighbours included, to those images (e.g. a held-out split)."""

    def __init__(self, store, among=None):
        self.store = store
        self.among = None if among is None else np.unique(np.asarray(among, dtype=np.int64))
        self.ids = store.ids() if self.among is None else self.among  # ascending: the fingerprint below is stable
        if len(self.ids) < 3:
            raise PoolError(
                f"the index holds {len(self.ids)} searchable image(s); synth needs at least 3 (query, "
                "positive, hard negative; more than 30 for the default hard-negative window); "
                "index more photos first"
            )
        self.root = os.path.commonpath([os.path.abspath(root) for root in store.roots]) if store.roots else "/"
        self._records: dict[int, object] = {}
        self._cache: dict[int, _Neighbours] = {}
        self.depth = 32  # neighbours fetched per anchor; enough for both default windows

    @property
    def fingerprint(self) -> str:
        """Changes when the indexed images or the vector space change (resuming would then draw other images)."""
        digest = hashlib.sha1(self.ids.tobytes()).hexdigest()[:16]
        return f"{self.store.fingerprint}|n={len(self.ids)}|ids={digest}"

    def _record(self, image_id: int):
        if image_id not in self._records:
            self._records[image_id] = self.store.records([image_id])[0]
        return self._records[image_id]

    def ref(self, image_id: int) -> ImageRef:
        path = self._record(image_id).path
        return ImageRef(path=path, relpath=os.path.relpath(path, self.root))

    def random_image(self, rng: random.Random) -> int:
        return int(self.ids[rng.randrange(len(self.ids))])

    def neighbour(
        self, image_id: int, ranks: tuple[int, int], rng: random.Random, exclude: tuple[int, ...] = ()
    ) -> int:
        """A neighbour whose rank (1 = nearest, self and byte-identical copies skipped) lies in ``ranks``.

        On a pool too small for the window the farthest available neighbour is used; ``exclude``
        keeps a positive from also being drawn as the hard negative.
        """
        low, high = ranks
        candidates = self._neighbours(image_id, high)
        low, high = min(low, len(candidates)), min(high, len(candidates))
        window = [other for other in candidates[low - 1 : high] if other not in exclude]
        if not window:  # a pool too small for the window: the farthest image still allowed
            window = [other for other in candidates if other not in exclude][-1:]
        if not window:
            raise PoolError(f"{self._record(image_id).path}: no other distinct image in the index to pair it with")
        return window[rng.randrange(len(window))]

    def _neighbours(self, image_id: int, depth: int) -> list[int]:
        """Nearest distinct images, nearest first; one search per anchor, cached."""
        cached = self._cache.get(image_id)
        if cached is not None and (len(cached) >= depth or cached.complete):
            return cached
        anchor_hash = self._record(image_id).content_hash
        k = min(len(self.ids), max(depth, self.depth) + 1 + 8)
        _, found = self.store.search(self.store.vectors([image_id]).astype(np.float32), k, among=self.among)
        candidates = _Neighbours(
            other
            for other in (int(i) for i in found[0])
            if other >= 0 and other != image_id and self._record(other).content_hash != anchor_hash
        )
        candidates.complete = k >= len(self.ids)
        if len(self._cache) >= 100_000:
            self._cache.pop(next(iter(self._cache)))
        self._cache[image_id] = candidates
        return candidates


class _Neighbours(list):
    complete = False  # True when the search covered the whole pool
