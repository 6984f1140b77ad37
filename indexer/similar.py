"""Groups of near-identical photos (burst shots, edits, resized copies) by FAISS range search.

Every stored vector is a range query against the index: pairs scoring at least ``threshold``
are joined (union-find), so a chain of close shots forms one group. In each group the best
photo is marked: most pixels, then sharpest (variance of the Laplacian on a 256 px grey copy),
then largest file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .store import IndexStore

SHARPNESS_SIZE = 256


@dataclass
class Member:
    image_id: int
    path: str
    relpath: str
    width: int | None
    height: int | None
    size: int
    score: float  # similarity to the group's best photo
    sharpness: float | None = None

    def to_json(self) -> dict:
        return {
            "image_id": self.image_id,
            "path": self.path,
            "relpath": self.relpath,
            "width": self.width,
            "height": self.height,
            "size": self.size,
            "score": round(float(self.score), 4),
            "sharpness": None if self.sharpness is None else round(float(self.sharpness), 1),
        }


@dataclass
class Group:
    members: list[Member] = field(default_factory=list)  # best first

    @property
    def best(self) -> Member:
        return self.members[0]

    def to_json(self) -> dict:
        return {"best": self.best.path, "members": [member.to_json() for member in self.members]}


def default_threshold(store: IndexStore) -> float:
    """The threshold for this index's model: its backbone family's ``similar_threshold`` (mme5/registry.py)."""
    from mme5.registry import similar_threshold

    return similar_threshold(store.meta.get("family"))


def similar_groups(
    store: IndexStore, threshold: float, chunk: int = 1024, progress=None, max_pairs: int | None = None, too_many=None
) -> list[Group]:
    """Groups (≥ 2 photos, largest first) whose members are chained by similarity ≥ ``threshold``.

    ``max_pairs``: stop as soon as more similar pairs than that are found (a threshold far too low for the
    library makes the work grow with its square) and raise ``too_many(pairs, threshold)`` (an exception)."""

    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    ids = store.ids()
    parent = {int(i): int(i) for i in ids}

    def find(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    index = store.index.index
    pairs = 0
    for start in range(0, len(ids), chunk):
        batch = ids[start : start + chunk]
        vectors = np.ascontiguousarray(store.vectors(batch), dtype=np.float32)
        # stored vectors are float16: a photo's score with itself or a byte-identical copy is ~1 - 1e-3
        limits, scores, found = index.range_search(vectors, float(threshold) - 1e-6)
        pairs += int(limits[-1]) - len(batch)  # each photo finds itself
        if max_pairs is not None and pairs > max_pairs:
            raise (too_many or _too_many)(pairs, threshold)
        for row, query_id in enumerate(batch):
            for other in found[limits[row] : limits[row + 1]]:
                other = int(other)
                if other != query_id and other in parent:
                    a, b = find(int(query_id)), find(other)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
        if progress is not None:
            progress.update(len(batch))
    clusters: dict[int, list[int]] = {}
    for image_id in parent:
        clusters.setdefault(find(image_id), []).append(image_id)
    groups = []
    for members in clusters.values():
        if len(members) < 2:
            continue
        # None: an id the catalog no longer holds (records() says so); such an id cannot be shown or deleted
        records = [r for r in store.records(np.asarray(sorted(members), dtype=np.int64)) if r is not None]
        if len(records) < 2:
            continue
        vectors = store.vectors(np.asarray([record.id for record in records], dtype=np.int64))
        entries = [
            Member(r.id, r.path, r.relpath, r.width, r.height, int(r.size or 0), 0.0, _sharpness(r.path))
            for r in records
        ]
        order = sorted(
            range(len(entries)),
            key=lambda n: (
                -(entries[n].width or 0) * (entries[n].height or 0),
                -(entries[n].sharpness or 0),
                -entries[n].size,
                entries[n].image_id,
            ),
        )
        best = vectors[order[0]]
        for n in order:
            entries[n].score = float(vectors[n] @ best)
        groups.append(Group([entries[n] for n in order]))
    groups.sort(key=lambda group: (-len(group.members), group.best.path))
    return groups


def _too_many(pairs: int, threshold: float) -> ValueError:
    return ValueError(f"{pairs:,} pairs of photos are similar at ≥ {threshold:g}: raise the threshold")


def _sharpness(path: str) -> float | None:
    """Variance of the Laplacian of a small grey copy: higher is sharper (None if unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("L", (SHARPNESS_SIZE, SHARPNESS_SIZE))
            grey = image.convert("L")
            grey.thumbnail((SHARPNESS_SIZE, SHARPNESS_SIZE))
            pixels = np.asarray(grey, dtype=np.float32)
    except Exception:  # noqa: BLE001 - a file gone or broken since indexing: no sharpness, still grouped
        return None
    if min(pixels.shape) < 3:
        return 0.0
    laplacian = pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1] - 4 * pixels[1:-1, 1:-1]
    return float(laplacian.var())
