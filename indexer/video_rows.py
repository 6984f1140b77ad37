"""A video's keyframe rows in the catalog: made, inserted, moved and deleted with the video's own row.

The layout is described on ``catalog.Image``: the file's row holds the first keyframe; each further
keyframe is a row with ``video_id`` = the file row's id. The build (indexer/build.py) treats only
file rows as files (the scan skips keyframe rows) and calls these helpers inside the same
transaction as the file row's change, so a video's keyframes are committed, moved and removed
all together or not at all: a build killed in the middle of a video leaves none of its rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import aliased

from .catalog import STATUS_OK, Image, keyframe_relpath
from .video import keyframe_hash

if TYPE_CHECKING:  # annotations only: store loads the search side (FAISS)
    from .store import ImageRecord

CHUNK = 500  # ids per IN (...) list


def video_values(result) -> dict:
    """The catalog columns a ReadResult gives besides the photo ones (None for photos)."""
    return dict(
        media_type=result.media_type,
        duration_s=result.duration_s,
        rotation=result.rotation,
        timestamp_s=result.timestamp_s,
    )


def keyframe_rows(values: dict, timestamps) -> list[dict]:
    """Rows (without ``video_id``, set on insert) for a video's keyframes after the first (``timestamps``: their
    seconds), from its file row's ``values``; one per distinct millisecond."""
    rows, seen = [], set()
    for seconds in timestamps:
        relpath = keyframe_relpath(values["relpath"], seconds)
        if relpath in seen:
            continue
        seen.add(relpath)
        rows.append(
            dict(
                values,
                relpath=relpath,
                content_hash=keyframe_hash(values["content_hash"], seconds),
                timestamp_s=seconds,
                status=STATUS_OK,
                error=None,
            )
        )
    return rows


def insert_keyframes(connection, keyframes: dict[int, list[dict]], rows: list[dict], inserted) -> list[int]:
    """Insert the keyframe rows of the videos just inserted (``keyframes``: index in ``rows`` -> its keyframe rows,
    without those the model rejected; ``inserted``: (id, status) per ``rows`` entry, in order); a video row that
    ended up an error gets none. Returns the new ids."""
    table = Image.__table__
    batch = []
    for index, keyframe_list in keyframes.items():
        video_id, status = inserted[index]
        if status != STATUS_OK or rows[index]["status"] != STATUS_OK:
            continue
        batch += [dict(row, video_id=video_id, retry=False) for row in keyframe_list]
    if not batch:
        return []
    result = connection.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), batch).all()
    return [row[0] for row in result]


def keyframe_ids(executor, video_ids) -> list[int]:
    """Ids of the keyframe rows of these (file row) ids."""
    video_ids = [int(i) for i in video_ids]
    found: list[int] = []
    for start in range(0, len(video_ids), CHUNK):
        found += executor.scalars(select(Image.id).where(Image.video_id.in_(video_ids[start : start + CHUNK]))).all()
    return found


def whole_video_rows(executor, video_ids) -> list[int]:
    """Every row of these videos, ascending: their file rows and all their keyframe rows (what leaves a video out of
    a search entirely)."""
    videos = {int(i) for i in video_ids}
    return sorted(videos | set(keyframe_ids(executor, sorted(videos)))) if videos else []


def move_keyframes(connection, updates: list[dict]) -> None:
    """Give the keyframe rows of updated video rows their video's (possibly new) folder and file name."""
    videos = {row["id"]: row for row in updates if row.get("media_type") == "video"}
    if not videos:
        return
    changes = []
    for start in range(0, len(videos), CHUNK):
        chunk = list(videos)[start : start + CHUNK]
        for row_id, video_id, root_id, relpath in connection.execute(
            select(Image.id, Image.video_id, Image.root_id, Image.relpath).where(Image.video_id.in_(chunk))
        ):
            video = videos[video_id]
            new = video["relpath"] + b"\0" + relpath.split(b"\0", 1)[-1]
            if (root_id, relpath) != (video["root_id"], new):
                changes.append(dict(row_id=row_id, root_id=video["root_id"], relpath=new))
    if changes:
        table = Image.__table__
        connection.execute(update(table).where(table.c.id == bindparam("row_id")), changes)


def stray_keyframes(session) -> list[int]:
    """Ids of keyframe rows whose video row is not a searchable file row any more (``verify`` reports them,
    ``verify --repair`` deletes them; a build never leaves any)."""
    video = aliased(Image)
    owner = select(video.id).where(video.id == Image.video_id, video.video_id.is_(None), video.status == STATUS_OK)
    return list(session.scalars(select(Image.id).where(Image.video_id.is_not(None), ~owner.exists())))


def fold_videos(
    hits: list[tuple[float, ImageRecord]],
) -> list[tuple[float, ImageRecord, list[tuple[float | None, float]]]]:
    """(score, record, moments) from ranked (score, ImageRecord) hits: a video's later hits fold into its best one as
    moments [(timestamp_s, score)], best first (the command line's search; the app folds in search_app/ranking.py)."""
    folded: list[tuple[float, ImageRecord, list[tuple[float | None, float]]]] = []
    by_video: dict[int, list[tuple[float | None, float]]] = {}
    for score, record in hits:
        video = record.video_key
        if video is not None and video in by_video:
            by_video[video].append((record.timestamp_s, score))
            continue
        moments = [(record.timestamp_s, score)] if video is not None else []
        if video is not None:
            by_video[video] = moments
        folded.append((score, record, moments))
    return folded
