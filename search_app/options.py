"""SearchOptions: every option a query takes, validated once (filter fields come from filters.FILTERS)."""

from __future__ import annotations

from dataclasses import field, make_dataclass

import numpy as np

from .filters import BY_NAME, FILTERS, check_together
from .limits import MAX_K, MAX_QUERY_CHARS, MAX_WITHOUT, check_filter, check_length

SORTS = ("score", "date", "date_asc")


def _whole(value, name: str, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or int(value) < low
        or (high is not None and int(value) > high)
    ):
        span = f"from {low} to {high}" if high is not None else f"≥ {low}"
        raise ValueError(f"{name} must be a whole number {span}, got {value!r}")
    return int(value)


def _texts(value, name: str) -> tuple[str, ...]:
    """One text, or several (a list, or one string with lines/commas), blanks dropped."""
    if value is None:
        return ()
    if isinstance(value, str):
        check_length(value, f"{name} text", MAX_WITHOUT * (MAX_QUERY_CHARS + 1), "name a few things to leave out.")
        value = value.replace("\n", ",").split(",")
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a text or a list of texts, got {value!r}")
    if len(value) > MAX_WITHOUT * 4:  # blanks and repeats are dropped below; a million items are not
        raise ValueError(f"{name} takes at most {MAX_WITHOUT} texts, got {len(value)}")
    for item in value:
        check_length(item, f"{name} text", MAX_QUERY_CHARS, "name a few things to leave out.")
    texts = tuple(dict.fromkeys(" ".join(str(item).split()) for item in value if str(item).strip()))
    if len(texts) > MAX_WITHOUT:
        raise ValueError(f"{name} takes at most {MAX_WITHOUT} texts, got {len(texts)}")
    return texts


def _ids(value) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    try:
        return tuple(sorted({int(item) for item in value}))
    except (TypeError, ValueError):
        raise ValueError(f"exclude must be image ids (whole numbers), got {value!r}") from None


def _parse(
    cls,
    k=20,
    offset=0,
    sort="score",
    collapse_duplicates=True,
    without=None,
    strong_only=False,
    exclude=None,
    dates_in_text=True,
    places_in_text=True,
    **filters,
):
    """Validated options; ValueError names the option and what to send instead."""
    unknown = set(filters) - set(BY_NAME)
    if unknown:
        raise TypeError(
            f"unknown search option(s) {sorted(unknown)}; known: "
            f"k, offset, sort, collapse_duplicates, without, strong_only, exclude, dates_in_text, "
            f"places_in_text, {', '.join(BY_NAME)}"
        )
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    for name in BY_NAME:
        check_filter(name, filters.get(name))
    values = {name: item.parse(filters.get(name)) for name, item in BY_NAME.items()}
    check_together(values)
    return cls(
        k=_whole(k, "k", 1, MAX_K),
        offset=_whole(offset, "offset", 0),
        sort=sort,
        collapse_duplicates=bool(collapse_duplicates),
        without=_texts(without, "without"),
        strong_only=bool(strong_only),
        exclude=_ids(exclude),
        dates_in_text=bool(dates_in_text),
        places_in_text=bool(places_in_text),
        **values,
    )


def _filters_on(self) -> bool:
    """Whether any catalog filter (folder, dates, camera, …) is set."""
    return any(getattr(self, item.name) is not None for item in FILTERS)


SearchOptions = make_dataclass(
    "SearchOptions",
    [
        ("k", int, field(default=20)),
        ("offset", int, field(default=0)),
        *[(item.name, object, field(default=None)) for item in FILTERS],
        ("sort", str, field(default="score")),
        ("collapse_duplicates", bool, field(default=True)),
        ("without", tuple, field(default=())),
        ("strong_only", bool, field(default=False)),
        ("exclude", tuple, field(default=())),
        ("dates_in_text", bool, field(default=True)),
        ("places_in_text", bool, field(default=True)),
    ],
    frozen=True,
    namespace={
        "parse": classmethod(_parse),
        "filters_on": property(_filters_on),
        "__doc__": "Validated options shared by every query type (filter fields: see filters.FILTERS).",
    },
)
SearchOptions.__module__ = __name__

__all__ = ["MAX_K", "SORTS", "SearchOptions"]
