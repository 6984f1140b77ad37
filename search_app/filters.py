"""Every search filter, defined once: option name, parsing, SQL condition, record test, UI label.

``SearchOptions`` (fields and parsing), the catalog query that restricts a search up front,
the engine's test of each hit, the HTTP API's parameters and the UI's filter boxes are all
derived from ``FILTERS``; adding a filter means adding one ``Filter`` here (see docs/contributing.md's
developer notes for the diff that added the camera filter).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time as dtime
from typing import Any, Callable

from indexer.catalog import Image
from indexer.store import normalise_folder

from . import geo


@dataclass(frozen=True)
class Filter:
    """One filter. ``parse`` turns what a caller sends (str from the API/UI, or Python values) into the
    value stored in SearchOptions (None: filter off) or raises ValueError saying what is wrong.
    ``where(value, store)`` gives SQL conditions on ``indexer.catalog.Image`` (the restricted search);
    ``keep(record, value)`` answers the same question for one catalog record (hits filtered as they come).
    ``suggest(store)`` lists values worth offering (UI suggestions, "no folder called X");
    ``resolve(value, suggestions)`` maps a typed value onto an indexed one (e.g. case-insensitively).
    ``keep`` None: a question only the catalog answers (has_text); a search with such a filter lists the
    photos passing the filters up front however many they are (``catalog_only``)."""

    name: str
    label: str
    help: str
    parse: Callable[[Any], Any]
    where: Callable[[Any, Any], list]
    keep: Callable[[Any, Any], bool] | None
    placeholder: str = ""
    suggest: Callable[[Any], list[str]] | None = None
    resolve: Callable[[Any, list[str]], Any] | None = None


# -- helpers shared by the definitions -------------------------------------------------------------
def naive(value: datetime | None) -> datetime | None:
    """Capture dates are wall-clock times; compare them without time zones."""
    if value is None:
        return None
    return value.replace(tzinfo=None) if value.tzinfo else value


def parse_date(value, name: str, end_of_day: bool) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return naive(value)
    if isinstance(value, date):
        return datetime.combine(value, dtime.max if end_of_day else dtime.min)
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # Gradio DateTime sends epoch seconds
        return datetime.fromtimestamp(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:  # a bare day: the whole day is inside the range
                return datetime.combine(date.fromisoformat(text), dtime.max if end_of_day else dtime.min)
            return naive(datetime.fromisoformat(text))
        except ValueError:
            pass
    raise ValueError(f"{name} {value!r} is not a date: use YYYY-MM-DD (or an ISO date-time like 2024-05-01T18:30)")


def _text(value) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def in_folder(record, folder: str) -> bool:
    """Whole-name prefix match: "2023" matches "2023/x.jpg", not "20231/x.jpg".

    An absolute folder is compared with the absolute path, a relative one with the path
    relative to its indexed root.
    """
    target = record.path if folder.startswith("/") else record.relpath
    return target == folder or target.startswith(folder + "/")


def _resolve_folder(folder: str, folders: list[str]) -> str:
    """The indexed folder ``folder`` names, matched case-insensitively when no exact match exists."""
    if folder.startswith("/") or folder in folders:
        return folder
    lowered = folder.casefold()
    matches = [known for known in folders if known.casefold() == lowered]
    return matches[0] if matches else folder


# File types as people name them -> file-name extensions (lower case).
FILE_TYPES = {
    "jpeg": (".jpg", ".jpeg", ".jpe"),
    "png": (".png",),
    "heic": (".heic", ".heif"),
    "webp": (".webp",),
    "gif": (".gif",),
    "tiff": (".tif", ".tiff"),
    "bmp": (".bmp",),
    "avif": (".avif",),
}


def file_type_of(path: str) -> str | None:
    extension = os.path.splitext(path)[1].lower()
    return next((kind for kind, extensions in FILE_TYPES.items() if extension in extensions), None)


def _parse_file_type(value) -> str | None:
    text = _text(value)
    if text is None:
        return None
    text = text.lower().lstrip(".")
    kind = text if text in FILE_TYPES else file_type_of("x." + text)
    if kind is None:
        raise ValueError(f"file_type {value!r} is not one this app knows: use one of {', '.join(FILE_TYPES)}")
    return kind


def _file_type_sql(kind: str, _store) -> list:
    from sqlalchemy import String, cast, or_

    # relpath is stored as bytes: compared as text, where SQLite's LIKE ignores ASCII case.
    name = cast(Image.relpath, String)
    return [or_(*(name.like("%" + extension) for extension in FILE_TYPES[kind]))]


def _file_types_present(store) -> list[str]:
    return sorted(
        {kind for folder_or_name in store.distinct("relpath") if (kind := file_type_of(os.fsdecode(folder_or_name)))}
    )


def _camera_sql(camera: str, _store) -> list:
    return [Image.camera.collate("NOCASE") == camera]


def _resolve_exact(value: str, known: list[str]) -> str:
    lowered = value.casefold()
    return next((item for item in known if item.casefold() == lowered), value)


def _place_sql(place: str, _store) -> list:
    from sqlalchemy import or_

    return [or_(*(column.collate("NOCASE") == place for column in (Image.country, Image.region, Image.city)))]


def _place_keep(record, place: str) -> bool:
    wanted = place.casefold()
    return any((value or "").casefold() == wanted for value in (record.country, record.region, record.city))


def _parse_flag(value) -> bool | None:
    """A yes/no filter: on (True) or off (None)."""
    if (
        value is None
        or value is False
        or (isinstance(value, str) and value.strip().lower() in ("", "0", "no", "false", "off"))
    ):
        return None
    if value is True or (isinstance(value, str) and value.strip().lower() in ("1", "yes", "true", "on")):
        return True
    raise ValueError(f"has_text {value!r} is not yes or no: use yes (only photos with text in them) or leave it empty")


def _has_text_sql(_value, store) -> list:
    from indexer.fulltext import has_text_condition

    return [has_text_condition(store.catalog)]


def _places_present(store) -> list[str]:
    return sorted({value for column in ("city", "region", "country") for value in store.distinct(column)})


MEDIA_TYPES = ("photo", "video")


def _parse_media(value) -> str | None:
    text = _text(value)
    if text is None:
        return None
    kind = {"photos": "photo", "image": "photo", "images": "photo", "videos": "video"}.get(text.lower(), text.lower())
    if kind not in MEDIA_TYPES:
        raise ValueError(f"media {value!r} is not one this app knows: use photo or video")
    return kind


def _media_sql(kind: str, _store) -> list:
    from sqlalchemy import or_

    if kind == "video":
        return [Image.media_type == "video"]
    return [or_(Image.media_type.is_(None), Image.media_type == "photo")]  # rows from before videos: photos


FILTERS: tuple[Filter, ...] = (
    Filter(
        name="folder",
        label="Folder",
        placeholder="e.g. 2023/beach  or  /home/me/Photos/2024",
        help="a folder (relative to an indexed root, or absolute) and everything below it; matched case-insensitively",
        parse=normalise_folder,
        where=lambda folder, store: [condition] if (condition := store.folder_condition(folder)) is not None else [],
        keep=in_folder,
        suggest=lambda store: store.folders(),
        resolve=_resolve_folder,
    ),
    Filter(
        name="date_from",
        label="Taken from",
        placeholder="YYYY-MM-DD",
        help="capture date on or after (YYYY-MM-DD or ISO date-time); undated photos are left out",
        parse=lambda value: parse_date(value, "date_from", end_of_day=False),
        where=lambda start, _store: [Image.taken_at >= start],
        keep=lambda record, start: record.taken_at is not None and naive(record.taken_at) >= start,
    ),
    Filter(
        name="date_to",
        label="Taken until",
        placeholder="YYYY-MM-DD",
        help="capture date on or before (a bare date includes the whole day)",
        parse=lambda value: parse_date(value, "date_to", end_of_day=True),
        where=lambda end, _store: [Image.taken_at <= end],
        keep=lambda record, end: record.taken_at is not None and naive(record.taken_at) <= end,
    ),
    Filter(
        name="camera",
        label="Camera",
        placeholder="e.g. Canon EOS R6",
        help="camera make and model as in EXIF (case-insensitive, whole name)",
        parse=_text,
        where=_camera_sql,
        keep=lambda record, camera: (record.camera or "").casefold() == camera.casefold(),
        suggest=lambda store: store.distinct("camera"),
        resolve=_resolve_exact,
    ),
    Filter(
        name="file_type",
        label="File type",
        placeholder="jpeg, png, heic, …",
        help=f"file type by extension: {', '.join(FILE_TYPES)}",
        parse=_parse_file_type,
        where=_file_type_sql,
        keep=lambda record, kind: file_type_of(record.relpath or record.path) == kind,
        suggest=_file_types_present,
    ),
    Filter(
        name="place",
        label="Place",
        placeholder="city, region or country code (e.g. Berlin, Bavaria, DE)",
        help="where the photo was taken (EXIF GPS, named offline from GeoNames at index time): city, region or "
        "ISO country code, case-insensitive",
        parse=_text,
        where=_place_sql,
        keep=_place_keep,
        suggest=_places_present,
        resolve=_resolve_exact,
    ),
    Filter(
        name="near",
        label="Near (lat, lon, km)",
        placeholder="e.g. 38.72,-9.14,5",
        help="within a distance of a point: latitude,longitude,km (great-circle distance, edge included); photos "
        'without GPS are left out. "within 5 km of Lisbon" typed in the query sets it',
        parse=geo.parse_near,
        where=lambda near, _store: geo.bbox_sql(geo.bbox_around(near), Image.latitude, Image.longitude),
        keep=lambda record, near: geo.within(record.latitude, record.longitude, near),
    ),
    Filter(
        name="bbox",
        label="Map area (W, S, E, N)",
        placeholder="e.g. -9.25,38.69,-9.09,38.80",
        help="inside a map rectangle: west,south,east,north in degrees (edges included; west > east crosses the "
        "antimeridian); photos without GPS are left out",
        parse=geo.parse_bbox,
        where=lambda box, _store: geo.bbox_sql(box, Image.latitude, Image.longitude),
        keep=lambda record, box: geo.in_bbox(record.latitude, record.longitude, box),
    ),
    Filter(
        name="media",
        label="Media",
        placeholder="photo or video",
        help="photos only (photo) or videos only (video); a video is found by its keyframes",
        parse=_parse_media,
        where=_media_sql,
        keep=lambda record, kind: record.media_type == kind,
    ),
    Filter(
        name="has_text",
        label="Has text",
        placeholder="yes",
        help="yes: only photos with text in them (signs, screenshots, documents; read by OCR at index time)",
        parse=_parse_flag,
        where=_has_text_sql,
        keep=None,
    ),
)

BY_NAME = {item.name: item for item in FILTERS}


def check_together(values: dict) -> None:
    """Conditions between filters (one message each)."""
    start, end = values.get("date_from"), values.get("date_to")
    if start and end and start > end:
        raise ValueError(f"date_from ({start.date()}) is after date_to ({end.date()}): swap them")


def active(options) -> list[tuple[Filter, Any]]:
    """(filter, value) for each filter set in ``options``."""
    return [(item, value) for item in FILTERS if (value := getattr(options, item.name)) is not None]


def sql_conditions(options, store) -> list:
    """The SQL conditions of every active filter: what ``IndexStore.ids_where`` needs."""
    return [condition for item, value in active(options) for condition in item.where(value, store)]


def passes(record, options) -> bool:
    """The record test of every active filter (the same question ``sql_conditions`` asks the catalog); a
    catalog-only filter was applied up front."""
    return all(item.keep(record, value) for item, value in active(options) if item.keep is not None)


def catalog_only(options) -> bool:
    """Whether an active filter has no record test (the search must list its photos up front)."""
    return any(item.keep is None for item, _value in active(options))
