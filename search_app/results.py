"""What a search returns: SearchResult (one photo) and SearchPage (one page of a ranking), as plain JSON too."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from indexer.files import printable


@dataclass(frozen=True)
class SearchResult:
    """One photo or video in a result page; ``also_at`` lists identical copies folded into it.

    A video hit is its best-matching keyframe (``timestamp_s``); ``moments`` lists every matching keyframe of the
    video on this ranking, best first, as (timestamp_s, score): the other hits of the video are folded into it."""

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
    camera: str | None = None
    latitude: float | None = None  # EXIF GPS position in degrees (north/east positive), when the photo has one
    longitude: float | None = None
    city: str | None = None  # reverse-geocoded at index time (indexer/places.py), when the photo has a position
    region: str | None = None
    country: str | None = None  # ISO 3166 code
    media_type: str = "photo"
    timestamp_s: float | None = None
    duration_s: float | None = None
    moments: tuple[tuple[float, float], ...] = ()
    motion: str | None = None  # a photo that moves: "live" (Apple Live Photo, clip ``motion_clip``) or "motion_photo"
    motion_clip: str | None = None
    text_match: object | None = None  # indexer.fulltext.TextHit when the photo was found through its words

    @property
    def place(self) -> str:
        """Where it was taken in words ("Lisbon, Lisbon, PT"), or "" when unknown: the details and the API say this."""
        return ", ".join(part for part in (self.city, self.region, self.country) if part)

    def to_json(self) -> dict:
        """Plain types only, for the HTTP API.

        The key is ``image_path``, not ``path``: gradio_client treats any dict with a
        ``path`` string as a file to download, which these (server-side) paths are not.
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
            "camera": self.camera,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "place": self.place or None,
            "also_at": [printable(path) for path in self.also_at],
            "media_type": self.media_type,
            **(
                {
                    "timestamp_s": self.timestamp_s,
                    "duration_s": self.duration_s,
                    "moments": [
                        {"timestamp_s": seconds, "score": round(float(score), 6)} for seconds, score in self.moments
                    ],
                }
                if self.media_type == "video"
                else {}
            ),
            **(
                {
                    "motion": self.motion,
                    "live": True,
                    "motion_clip": printable(self.motion_clip) if self.motion_clip else None,
                }
                if self.motion
                else {}
            ),
            **({"text_match": self.text_match.to_json()} if self.text_match is not None else {}),
        }


@dataclass(frozen=True)
class SearchPage:
    """``results[offset:offset+k]`` of one ranking; ``next_offset`` is None on the last page.

    With ``strong_only``, ``strong`` counts the photos above the query's cut-off (``cutoff``)
    and ``hidden`` the (filtered) photos below it. ``query_dates`` is the date range read
    from the query text (already applied as date_from/date_to), ``embedded_text`` what was
    left of the text for the model; ``query_place`` the indexed place named in the text (applied as
    the place filter); ``notes`` are plain-language remarks (e.g. an unknown folder).
    """

    results: list[SearchResult]
    offset: int
    next_offset: int | None
    query_seconds: float = 0.0  # model time (encoding the query)
    search_seconds: float = 0.0  # index + catalog time
    options: dict = field(default_factory=dict)
    generation: int | None = None  # the index state ranked; pass it to ``rank`` for further pages
    strong: int | None = None
    hidden: int | None = None
    cutoff: float | None = None
    query_dates: dict | None = None
    embedded_text: str | None = None
    query_place: dict | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict:
        payload = {
            "results": [result.to_json() for result in self.results],
            "offset": self.offset,
            "next_offset": self.next_offset,
            "timing": {"query_seconds": round(self.query_seconds, 4), "search_seconds": round(self.search_seconds, 4)},
            "notes": list(self.notes),
        }
        if self.strong is not None:
            payload["strong_matches"] = {
                "strong": self.strong,
                "hidden": self.hidden,
                "cutoff": None if self.cutoff is None else round(float(self.cutoff), 6),
            }
        if self.query_dates is not None:
            payload["query_dates"] = self.query_dates
        if self.query_place is not None:
            payload["query_place"] = self.query_place
        if self.query_dates is not None or self.query_place is not None:
            payload["embedded_text"] = self.embedded_text
        return payload


def result_of(record, score: float) -> SearchResult:
    return SearchResult(
        path=record.path,
        score=score,
        size=int(record.size or 0),
        taken_at=record.taken_at,
        image_id=int(record.id),
        content_hash=record.content_hash or "",
        width=record.width,
        height=record.height,
        relpath=record.relpath or "",
        camera=record.camera,
        latitude=_degrees(getattr(record, "latitude", None)),
        longitude=_degrees(getattr(record, "longitude", None)),
        city=getattr(record, "city", None),
        region=getattr(record, "region", None),
        country=getattr(record, "country", None),
        media_type=record.media_type,
        timestamp_s=record.timestamp_s,
        duration_s=record.duration_s,
        moments=((record.timestamp_s, score),) if record.media_type == "video" else (),
        motion=record.motion,
        motion_clip=record.motion_clip,
    )


def _degrees(value) -> float | None:
    return None if value is None else float(value)


def with_moment(result: SearchResult, timestamp_s: float, score: float) -> SearchResult:
    """``result`` (a video) with one more matching moment; moments stay best first."""
    if any(seconds == timestamp_s for seconds, _ in result.moments):
        return result
    return replace(result, moments=(*result.moments, (timestamp_s, score)))


def with_copy(result: SearchResult, path: str) -> SearchResult:
    if path == result.path or path in result.also_at:  # a copy of a video matches once per keyframe
        return result
    return replace(result, also_at=(*result.also_at, path))
