"""Groups of near-identical photos (burst shots, edits, resized copies) and videos (re-encoded, resized or
trimmed copies) by FAISS range search.

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
    media_type: str = "photo"  # "video": a video, grouped with other videos by its keyframes

    def to_json(self) -> dict:
        return {
            "media_type": self.media_type,
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
    """Groups (≥ 2 photos, or ≥ 2 videos, largest first) whose members are chained by similarity ≥ ``threshold``.

    Photos group with photos, by their vectors. Videos group with videos, never with photos, and a video's own
    keyframes are never duplicates of each other: two videos join when their signatures (the normalised mean of
    their keyframe vectors) score ≥ ``threshold`` (a re-encoded or resized copy), or when at least
    ``KEYFRAME_SHARE`` of the keyframes of one of them each match a keyframe of the other (a trimmed copy).

    ``max_pairs``: stop as soon as more similar pairs than that are found (a threshold far too low for the
    library makes the work grow with its square) and raise ``too_many(pairs, threshold)`` (an exception)."""

    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    ids = store.ids()
    video_of = _videos(store)  # keyframe row id -> its video's id (the file row), for video rows only
    parent = {int(i): int(i) for i in ids if int(i) not in video_of}  # photos; videos join by their own id below
    find, join = _union_find(parent)

    index = store.index.index
    pairs = 0
    matches: dict[tuple[int, int], set[int]] = {}  # (video, other video) -> the video's keyframes found in the other
    for start in range(0, len(ids), chunk):
        batch = ids[start : start + chunk]
        vectors = np.ascontiguousarray(store.vectors(batch), dtype=np.float32)
        # stored vectors are float16: a photo's score with itself or a byte-identical copy is ~1 - 1e-3
        limits, scores, found = index.range_search(vectors, float(threshold) - 1e-6)
        pairs += int(limits[-1]) - len(batch)  # each photo finds itself
        if max_pairs is not None and pairs > max_pairs:
            raise (too_many or _too_many)(pairs, threshold)
        for row, query_id in enumerate(batch):
            query_id = int(query_id)
            video = video_of.get(query_id)
            for other in found[limits[row] : limits[row + 1]]:
                other = int(other)
                if video is None:
                    if other != query_id and other in parent:  # photo with photo
                        join(query_id, other)
                elif (other_video := video_of.get(other)) is not None and other_video != video:
                    matches.setdefault((video, other_video), set()).add(query_id)
        if progress is not None:
            progress.update(len(batch))
    keyframes = _keyframes(video_of)
    video_groups = _video_groups(store, keyframes, video_of, matches, threshold)
    clusters: dict[int, list[int]] = {}
    for image_id in parent:
        clusters.setdefault(find(image_id), []).append(image_id)
    groups = []
    for members in [*clusters.values(), *video_groups]:
        if len(members) < 2:
            continue
        # None: an id the catalog no longer holds (records() says so); such an id cannot be shown or deleted
        records = [r for r in store.records(np.asarray(sorted(members), dtype=np.int64)) if r is not None]
        if len(records) < 2:
            continue
        if records[0].media_type == "video":
            vectors = np.stack([_signature(store, keyframes[record.id]) for record in records])
        else:
            vectors = store.vectors(np.asarray([record.id for record in records], dtype=np.int64))
        entries = [
            Member(
                r.id,
                r.path,
                r.relpath,
                r.width,
                r.height,
                int(r.size or 0),
                0.0,
                None if r.media_type == "video" else _sharpness(r.path),
                r.media_type,
            )
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


KEYFRAME_SHARE = 0.8  # of a video's keyframes that must each match one of another video's: a trimmed copy


def _videos(store: IndexStore) -> dict[int, int]:
    """Searchable video rows: keyframe row id (the file row's own id too) -> the video's id (its file row)."""
    from sqlalchemy import select

    from .catalog import STATUS_OK, Image

    with store.catalog.session() as session:
        rows = session.execute(
            select(Image.id, Image.video_id).where(Image.media_type == "video", Image.status == STATUS_OK)
        ).all()
    searchable = set(int(i) for i in store.ids())
    return {int(row_id): int(video_id or row_id) for row_id, video_id in rows if int(row_id) in searchable}


def _keyframes(video_of: dict[int, int]) -> dict[int, list[int]]:
    by_video: dict[int, list[int]] = {}
    for row_id, video in video_of.items():
        by_video.setdefault(video, []).append(row_id)
    return {video: sorted(frames) for video, frames in by_video.items()}


def _signature(store: IndexStore, frames: list[int]) -> np.ndarray:
    """A video's signature: the normalised mean of its keyframe vectors (``frames``: their row ids)."""
    mean = np.asarray(store.vectors(np.asarray(frames, dtype=np.int64)), dtype=np.float32).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _video_groups(
    store: IndexStore, keyframes: dict[int, list[int]], video_of: dict[int, int], matches: dict, threshold: float
) -> list[list[int]]:
    """Videos (by their file row's id) chained into groups: by signature, or by matching keyframes (see above)."""
    videos = sorted(video for video in keyframes if video in video_of)  # a video whose own row is searchable
    if len(videos) < 2:
        return []
    parent = {video: video for video in videos}
    find, join = _union_find(parent)

    for (video, other), found in matches.items():
        if video in parent and other in parent and len(found) >= KEYFRAME_SHARE * len(keyframes[video]):
            join(video, other)
    signatures = np.stack([_signature(store, keyframes[video]) for video in videos])
    for start in range(0, len(videos), 1024):
        scores = signatures[start : start + 1024] @ signatures.T
        for row, column in zip(*np.nonzero(scores >= float(threshold) - 1e-6)):
            if start + row != column:
                join(videos[start + row], videos[column])
    clusters: dict[int, list[int]] = {}
    for video in videos:
        clusters.setdefault(find(video), []).append(video)
    return list(clusters.values())


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


def _union_find(parent: dict[int, int]):
    """(find, join) over ``parent`` (each item its own root at first): a joined group's root is its smallest id."""

    def find(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def join(a: int, b: int) -> None:
        a, b = find(a), find(b)
        if a != b:
            parent[max(a, b)] = min(a, b)

    return find, join
