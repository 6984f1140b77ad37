"""What the page remembers per browser tab between events (held in a gr.State): the query on screen."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .options import SearchOptions
from .query_dates import QueryDates
from .query_places import QueryPlace
from .results import SearchResult


@dataclass(frozen=True)
class Session:
    """The search on screen: its query vector and options (to re-rank and page without the model) and its results.

    A fixed list (an album, similar-photo groups) has no ``vector``: filters do not re-rank it and it has no pages.
    """

    what: str  # how the status line names the query (HTML-escaped): “a cat”, your photo, album “Trip”
    vector: object | None = None  # the query's embedding (numpy array); None for a fixed list
    options: SearchOptions | None = None  # the options the ranking on screen used (offset 0)
    text: str = ""  # the query text as typed (for the URL and for saving an album)
    text_query: str | None = None  # the words matched against photos' text (OCR, names; text_match), on every page
    dates: QueryDates | None = None  # the date range read from the text, if any
    place: QueryPlace | None = None  # the place read from the text, if any
    similar_to: int | None = None  # "More like this": the photo's image_id
    raw: dict | None = None  # the page's option values when the query ran
    results: list[SearchResult] = field(default_factory=list)  # shown so far, in gallery order
    next_offset: int | None = None  # where "Load more" continues; None on the last page
    generation: int | None = None  # the index state ranked (further pages refuse a rebuilt index)
    scores: bool = False  # captions show the match score ("Show match scores")
    marks: dict = field(default_factory=dict)  # image_id -> caption prefix of a fixed list (📌, group 2 · ★ best)
    # this session among all made (a changed copy, dataclasses.replace, gets its own): ui_latest tells by it
    # which session a tab shows
    serial: int = field(default_factory=itertools.count(1).__next__, init=False, compare=False, repr=False)

    @property
    def rankable(self) -> bool:
        """Whether changed filters can re-rank it (a query with a vector, not an album or a group list)."""
        return self.vector is not None and self.options is not None
