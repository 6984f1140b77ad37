"""The page's outputs, named once, and the one helper every handler replies through.

Handlers that repaint the page return one value per name in ``OUTPUTS`` (Gradio wants a tuple in the order the
event's outputs were listed; ``ui_layout.Page.outputs`` lists the components in this order). ``reply`` builds that
tuple from the names that change; every other output gets ``gr.update()`` (left as it is).
"""

from __future__ import annotations

import html

import gradio as gr

OUTPUTS = (
    "gallery",
    "status",
    "session",
    "more",
    "similar",
    "details",
    "selected",
    "date_chip",
    "show_all",
    "source",
    "search",
    "original",
    "accordion",
    "url",
    "first_new",
    "query",
    "dates",
    "upload",
    "place_chip",
    "places",
    "albums",
    "album_zip",
    "viewer",
    "map",
    "area_chip",
)
_INDEX = {name: index for index, name in enumerate(OUTPUTS)}

SEARCH_READY = {"interactive": True, "value": "Search"}  # the Search button after an answer (usable again)


def counted(number: int, one: str, many: str | None = None) -> str:
    """``number`` with its noun in the right form: 1 photo, 5 photos (``many`` for irregular plurals)."""
    return f"{number:,} {one if number == 1 else many or one + 's'}"


def query_shown(text: str) -> str:
    """A typed query inside an English sentence: HTML-escaped, in quotes, and isolated (<bdi>) so an Arabic or
    Hebrew query keeps its order and does not reorder the quotes, numbers and words around it."""
    return f"“<bdi>{html.escape(text)}</bdi>”"


def _checked(changes: dict) -> None:
    unknown = sorted(set(changes) - set(_INDEX))
    if unknown:  # a programming error, but one that must not pass silently under python -O
        raise KeyError(f"not outputs of the page: {', '.join(unknown)} (the outputs are listed in ui_reply.OUTPUTS)")


def reply(**changes) -> tuple:
    """One value per output (``OUTPUTS``' order): the named ones changed, every other one left as it is."""
    _checked(changes)
    return tuple(changes.get(name, gr.update()) for name in OUTPUTS)


def patch(answer: tuple, **changes) -> tuple:
    """``answer`` (a ``reply``) with some outputs replaced."""
    _checked(changes)
    values = list(answer[: len(OUTPUTS)])
    for name, value in changes.items():
        values[_INDEX[name]] = value
    return tuple(values)


def output(answer: tuple, name: str):
    """One output's value in ``answer`` (a ``reply``)."""
    return answer[_INDEX[name]]


def written(answer: tuple, name: str) -> tuple[bool, object]:
    """Whether ``answer`` sets the output ``name``, and to what. Counted from its end: a handler may put outputs of
    its own in front of the page's (Clear puts the form's boxes there)."""
    value = answer[len(answer) - len(OUTPUTS) + _INDEX[name]]
    if isinstance(value, dict) and value.get("__type__") == "update":
        return "value" in value, value.get("value")
    return True, value


def unchanged() -> tuple:
    """A reply that changes nothing (a stale answer, a page load without a query)."""
    return reply()


def message(text: str, keep: bool = False, accordion: str | None = None) -> tuple:
    """A status line; the results are cleared unless ``keep``; the Search button is usable again."""
    extra = {} if accordion is None else {"accordion": gr.update(label=accordion)}
    if keep:
        return reply(status=text, search=gr.update(**SEARCH_READY), **extra)
    return reply(
        gallery=[],
        status=text,
        session=None,
        more=gr.update(visible=False),
        similar=gr.update(visible=False),
        details="",
        selected=None,
        search=gr.update(**SEARCH_READY),
        viewer=gr.update(visible=False),
        map="",
        **extra,
    )
