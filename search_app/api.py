"""The HTTP API: named Gradio endpoints returning plain JSON, for gradio_client and curl.

Searches (/search_text, /search_image, /search_composed), albums (/list_albums, /save_album,
/open_album, /album_photo) and similar-photo groups (/similar_groups).

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    client.predict(text="un perro en la playa", k=5, api_name="/search_text")
    client.predict(text="Strand im Juli 2023", without="Menschen", strong_only=True, api_name="/search_text")
    client.predict(image=handle_file("cat.jpg"), camera="Canon EOS R6", api_name="/search_image")
    client.predict(image=handle_file("cat.jpg"), text="but at night", api_name="/search_composed")
    client.predict(name="Beach", text="la plage", folder="2023", api_name="/save_album")
    client.predict(name="Beach", api_name="/open_album")
    client.predict(threshold=0.97, api_name="/similar_groups")

The option parameters are derived from ``filters.FILTERS`` and ``OPTIONS`` below: a new
filter appears in every endpoint without an edit here.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from indexer.files import printable

from .album_views import open_album, saved_options
from .albums import ALBUM_ERRORS, ALBUM_K
from .engine import MAX_QUERY_CHARS, SORTS, SearchEngine, SearchOptions
from .filters import FILTERS
from .limits import HEAVY_CONCURRENCY, HEAVY_SLOT
from .uploads import check_upload


@dataclass(frozen=True)
class Option:
    """One API parameter that is not a filter: its name, default and Gradio component."""

    name: str
    default: Any
    component: Callable[[], gr.components.Component]
    help: str


OPTIONS = (
    Option("k", 20, lambda: gr.Number(label="k", value=20, precision=0), "results per page, 1–200"),
    Option("offset", 0, lambda: gr.Number(label="offset", value=0, precision=0), "where the page starts (next_offset)"),
    Option(
        "sort",
        "score",
        lambda: gr.Dropdown(label="sort", choices=list(SORTS), value="score"),
        "score, date (newest first) or date_asc",
    ),
    Option(
        "collapse_duplicates",
        True,
        lambda: gr.Checkbox(label="collapse_duplicates", value=True),
        "fold byte-identical copies into one result (also_at)",
    ),
    Option(
        "without",
        "",
        lambda: gr.Textbox(label="without", value=""),
        "texts (comma-separated, any language) whose matches are pushed away",
    ),
    Option(
        "strong_only",
        False,
        lambda: gr.Checkbox(label="strong_only", value=False),
        "only hits standing out from the query's scores over the library (strong_matches in the answer)",
    ),
    Option(
        "dates_in_text",
        True,
        lambda: gr.Checkbox(label="dates_in_text", value=True),
        'read a date typed into the text ("Strand im Juli 2023") as the date filter (query_dates in the answer)',
    ),
    Option(
        "places_in_text",
        True,
        lambda: gr.Checkbox(label="places_in_text", value=True),
        'read the name of an indexed place typed into the text ("praia em Lisboa") as the place filter, '
        '"near Lisbon" / "within 5 km of Lisbon" as the near filter (query_place in the answer)',
    ),
)
# Parameter order: the first three filters sit where the first API version had them (positional callers).
_LEGACY_FILTERS = ("folder", "date_from", "date_to")


def parameters() -> list[tuple[str, Any, Callable]]:
    """(name, default, component factory) of every option parameter, in endpoint order."""
    by_name = {option.name: (option.name, option.default, option.component) for option in OPTIONS}
    filters = {
        item.name: (item.name, "", (lambda item=item: gr.Textbox(label=item.name, value=""))) for item in FILTERS
    }
    ordered = [
        by_name["k"],
        by_name["offset"],
        *(filters.pop(name) for name in _LEGACY_FILTERS),
        by_name["sort"],
        by_name["collapse_duplicates"],
        *filters.values(),
    ]
    return ordered + [by_name[name] for name in ("without", "strong_only", "dates_in_text", "places_in_text")]


PIN_ACTIONS = ("pin", "remove", "unpin")


class APIError(ValueError):
    """Bad input to an API call: its sentence is what the caller sees (a gr.Error in Gradio, a 400 over REST)."""


class Answers:
    """The API's answers as plain JSON, one definition for the Gradio endpoints and the REST routes (rest.py).

    Every bad input raises APIError with the sentence the UI shows; anything else is a bug."""

    def __init__(self, engine: SearchEngine):
        self.engine = engine

    def search_text(self, text: str, **options) -> dict:
        """Photos matching a text in any language."""
        return self._run(lambda parsed: self.engine.search_text(text, **parsed), options)

    def search_image(self, image: str, **options) -> dict:
        """Photos that look like the uploaded image."""
        return self._run(lambda parsed: self.engine.search_image(check_upload(image), **parsed), options)

    def search_composed(self, image: str, text: str, **options) -> dict:
        """Photos like the uploaded image, changed as the text says."""
        return self._run(lambda parsed: self.engine.search_composed(check_upload(image), text, **parsed), options)

    # -- albums (search_app/albums.py) and similar-photo groups (indexer/similar.py) --------------
    def list_albums(self) -> dict:
        """The index's albums (saved searches) with their queries, options, pinned and removed photos."""
        try:
            albums = self.engine.albums
            return {"albums": [albums.get(name).to_json() for name in albums.names()]}
        except ALBUM_ERRORS as error:
            raise APIError(str(error)) from None

    def save_album(self, name: str, text: str, **options) -> dict:
        """Save a text query with its options as an album (replacing one of that name, keeping its pins)."""
        try:
            parsed = engine_options(options)
            SearchOptions.parse(**parsed)  # refuse bad options now, not when the album is opened
            return self.engine.albums.save(name, {"text": (text or "").strip()}, saved_options(parsed)).to_json()
        except (*ALBUM_ERRORS, TypeError) as error:
            raise APIError(str(error)) from None

    def open_album(self, name: str, k=ALBUM_K) -> dict:
        """An album's photos now: pinned ones first, then its saved search run again (removed ones left out)."""
        try:
            album = self.engine.albums.get(name)
            results = open_album(self.engine, album, k=_whole(k, ALBUM_K))
        except (*ALBUM_ERRORS, TypeError) as error:
            raise APIError(str(error)) from None
        return {"album": album.to_json(), "results": [result.to_json() for result in results]}

    def album_photo(self, name: str, image_id, action: str = "pin") -> dict:
        """Pin a photo into an album ("pin"), leave it out for good ("remove"), or undo either ("unpin")."""
        if action not in PIN_ACTIONS:
            raise APIError(f"action must be one of {', '.join(PIN_ACTIONS)}, got {action!r}")
        try:
            record = self.engine.record(_whole(image_id, None))
            albums = self.engine.albums
            album = albums.unpin(name, record.id) if action == "unpin" else albums.pin(name, record.id, action == "pin")
        except (*ALBUM_ERRORS, TypeError) as error:
            raise APIError(str(error)) from None
        return album.to_json()

    def similar_groups(self, threshold=None) -> dict:
        """Groups of near-identical photos (best first in each); the threshold defaults to the model's."""
        try:
            used, groups = self.engine.similar_groups(threshold)
        except (ValueError, TypeError) as error:
            raise APIError(str(error)) from None
        return {"threshold": used, "groups": [group_json(group) for group in groups]}

    def _run(self, search, options: dict) -> dict:
        try:
            page = search(engine_options(options))
        except (ValueError, TypeError) as error:  # TypeError: an option name the engine does not know
            raise APIError(str(error)) from None
        payload = page.to_json()
        payload["total_indexed"] = int(self.engine.store.count)  # the store just searched; stats() reads the catalog
        return payload


def _gradio_errors(answer: Callable) -> Callable:
    """``answer`` with its APIError shown to the Gradio client as a message (name, doc and signature kept)."""

    @functools.wraps(answer)
    def endpoint(*args, **kwargs):
        try:
            return answer(*args, **kwargs)
        except APIError as error:
            raise gr.Error(str(error), print_exception=False) from None

    return endpoint


class SearchAPI(Answers):
    """The answers as named Gradio endpoints; every bad input becomes a gr.Error the client sees as a message."""

    search_text = _gradio_errors(Answers.search_text)
    search_image = _gradio_errors(Answers.search_image)
    search_composed = _gradio_errors(Answers.search_composed)
    list_albums = _gradio_errors(Answers.list_albums)
    save_album = _gradio_errors(Answers.save_album)
    open_album = _gradio_errors(Answers.open_album)
    album_photo = _gradio_errors(Answers.album_photo)
    similar_groups = _gradio_errors(Answers.similar_groups)

    def register(self, concurrency_limit: int | None) -> None:
        """Add the endpoints to the Blocks being built (hidden components: API only)."""
        params = parameters()
        with gr.Column(visible=False):
            text = gr.Textbox(label="text", max_length=MAX_QUERY_CHARS)  # the engine enforces it
            image = gr.File(label="image", type="filepath")
            options = [factory() for _, _, factory in params]
            output = gr.JSON(label="results")
            trigger = gr.Button()
        common = dict(
            outputs=output, concurrency_id="model", concurrency_limit=concurrency_limit, show_progress="hidden"
        )
        trigger.click(self._endpoint(["text"], self.search_text), [text, *options], api_name="search_text", **common)
        trigger.click(
            self._endpoint(["image"], self.search_image), [image, *options], api_name="search_image", **common
        )
        trigger.click(
            self._endpoint(["image", "text"], self.search_composed),
            [image, text, *options],
            api_name="search_composed",
            **common,
        )
        with gr.Column(visible=False):
            name = gr.Textbox(label="name")
            image_id = gr.Number(label="image_id", precision=0)
            action = gr.Dropdown(label="action", choices=list(PIN_ACTIONS), value="pin")
            k = gr.Number(label="k", value=ALBUM_K, precision=0)
            threshold = gr.Number(label="threshold", value=None)
        trigger.click(self.list_albums, [], api_name="list_albums", **common)
        trigger.click(
            self._endpoint(["name", "text"], self.save_album), [name, text, *options], api_name="save_album", **common
        )
        trigger.click(self.open_album, [name, k], api_name="open_album", **common)
        trigger.click(self.album_photo, [name, image_id, action], api_name="album_photo", **common)
        heavy = dict(common, concurrency_id=HEAVY_SLOT, concurrency_limit=HEAVY_CONCURRENCY)  # searches don't wait
        trigger.click(self.similar_groups, [threshold], api_name="similar_groups", **heavy)

    def _endpoint(self, query_names: list[str], search: Callable) -> Callable:
        """A function whose signature names the query inputs and every option (Gradio publishes those names)."""
        params = parameters()

        def endpoint(*args):
            query = dict(zip(query_names, args[: len(query_names)]))
            raw = {name: value for (name, _, _), value in zip(params, args[len(query_names) :])}
            return search(**query, **raw)

        endpoint.__name__ = search.__name__
        endpoint.__doc__ = search.__doc__
        endpoint.__signature__ = inspect.Signature(
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in query_names]
            + [
                inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
                for name, default, _ in params
            ]
        )
        return endpoint


def group_json(group) -> dict:
    """A similar-photo group as JSON for the API: ``image_path``, never ``path`` (gradio_client would fetch it)."""
    members = []
    for member in group.members:
        payload = member.to_json()
        payload["image_path"] = printable(payload.pop("path"))
        payload["relpath"] = printable(payload["relpath"] or "")
        members.append(payload)
    return {"best": members[0]["image_path"], "members": members}


def engine_options(raw: dict) -> dict:
    """What Gradio sends (floats, "" for unset, None) as SearchEngine keyword options."""
    defaults = {name: default for name, default, _ in parameters()}
    options = {}
    for name, value in raw.items():
        default = defaults.get(name)
        if isinstance(default, bool):
            options[name] = default if value is None else value is not False
        elif isinstance(default, int):
            options[name] = _whole(value, default)
        elif name == "sort":
            options[name] = value or default
        else:
            options[name] = value or None
    return options


def _whole(value, default: int):
    """Gradio Numbers arrive as floats or None; the engine validates the range."""
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
