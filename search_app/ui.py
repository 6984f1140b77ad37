"""The Gradio Blocks page: search box, "without", image upload, filters, gallery, "more like this", "load more",
date and place chips, albums (saved searches, search_app/albums.py) and similar-photo groups (indexer/similar.py).

Filter boxes are derived from ``filters.FILTERS`` (a new filter appears here without an edit).
The page keeps the query and filters in the URL, announces the status line to screen
readers, keeps old results while a query runs, and lays the gallery out for phones too.
"""
from __future__ import annotations

import abc
import html
import logging
import os
import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import gradio as gr

from indexer.files import printable
from indexer.reader import checked_content_hash

from .album_views import export_zip, open_album as album_results, saved_options, servable
from .albums import ALBUM_ERRORS
from .api import SearchAPI
from .engine import MAX_QUERY_CHARS, SearchEngine, SearchOptions
from .filters import FILTERS
from .private import cache_home, hand_to_gradio, private_dir
from .text_match import snippet_html
from .results import result_of
from .thumbnails import ThumbnailCache
from . import video_view
from .limits import HEAVY_CONCURRENCY, HEAVY_SLOT, MAX_ALBUM_NAME_CHARS
from .uploads import check_upload

log = logging.getLogger(__name__)

PAGE_SIZE = 24
PLACEHOLDER = "a cat on a sofa · кошка на диване · 沙发上的猫 · قطة على الأريكة · un perro en la playa"
SMOKE_NOTICE = ("Smoke mode: this app runs a tiny model with random weights (--tiny), so the results are "
                "meaningless. Start it with --model to search for real.")
SORT_LABELS = {"Best match": "score", "Newest first": "date", "Oldest first": "date_asc"}
# Handler inputs after (text, image): the first five where the first page version had them.
LEGACY = ("folder", "date_from", "date_to", "sort", "collapse")
OPTION_NAMES = (*LEGACY, *(item.name for item in FILTERS if item.name not in LEGACY),
                "without", "strong_only", "dates_in_text", "places_in_text")
DEFAULTS = {"sort": "Best match", "collapse": True, "strong_only": False, "dates_in_text": True, "places_in_text": True,
            "without": ""}
REST_SCHEMA = "api/v1/openapi.json"  # search_app/rest.py's schema, relative: works behind a proxy's prefix too
MAX_GROUPS_SHOWN = 40  # similar-photo groups listed in the gallery at once (largest first)

CSS = """
#footer { font-size: 0.85em; }
#status p { margin: 0.2em 0; }
#intro h1 { font-size: 1.6em; margin: 0 0 0.2em; }
/* Results flow with the page and wrap to the screen: no sideways overflow on a phone, no inner scroll box. */
#results .grid-wrap, #results .fixed-height { max-height: none !important; height: auto !important;
  overflow: visible !important; min-height: 0 !important; }
#results .grid-container { grid-template-columns: repeat(auto-fill, minmax(min(150px, 42vw), 1fr)) !important;
  grid-template-rows: none !important; }
/* Contrast (WCAG AA): white on #1d4ed8 is 6.7:1; the focus ring #1d4ed8 on white is 6.7:1. */
#search, #search:hover { background: #1d4ed8 !important; border-color: #1d4ed8 !important; color: #fff !important; }
#search:disabled { opacity: 1 !important; cursor: progress; }  /* "Searching…" stays readable (6.7:1) */
:focus-visible { outline: 3px solid #1d4ed8 !important; outline-offset: 2px !important; }
#date_chip, #place_chip { max-width: fit-content; }
/* Gradio's faint texts (upload "- or -", footer links) and the status line dimmed while a query runs. */
.or, .show-api, .built-with, .show-api *, .built-with * { color: #3f3f46 !important; opacity: 1 !important; }
#status, #status .pending, #status.pending, .pending #status, #status .prose { opacity: 1 !important; }
"""

# Runs once on page load: status line as a live region, suggestions for filter boxes, Escape returns focus.
JS = """
() => {
  const status = document.querySelector('#status');
  if (status) { status.setAttribute('role', 'status'); status.setAttribute('aria-live', 'polite');
                status.setAttribute('tabindex', '-1'); }
  const attach = () => document.querySelectorAll('datalist[data-for]').forEach((list) => {
    const box = document.querySelector('#' + list.dataset.for + ' input, #' + list.dataset.for + ' textarea');
    if (box) box.setAttribute('list', list.id);
  });
  attach(); new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    setTimeout(() => {
      if (document.activeElement && document.activeElement !== document.body) return;
      const target = document.querySelector('#results .thumbnail-item.selected, #results button.thumbnail-item')
        || document.querySelector('#query input, #query textarea');
      if (target) target.focus();
    }, 50);
  });
  window.addEventListener('popstate', () => location.reload());
}
"""
AFTER_SEARCH_JS = """
(url) => {
  const wanted = url ? '?' + url : location.pathname;
  if (location.search !== (url ? '?' + url : '')) history.pushState(null, '', wanted);
  const status = document.querySelector('#status');
  if (status) status.focus({preventScroll: true});
}
"""
SCROLL_TO_NEW_JS = """
(index) => {
  if (index === null || index === undefined || index < 0) return;
  setTimeout(() => {
    const items = document.querySelectorAll('#results .thumbnail-item');
    const item = items[index];
    if (item) { item.scrollIntoView({block: 'center'}); item.focus({preventScroll: true}); }
  }, 300);
}
"""


def _lenient_preprocess(self, payload):
    """The upload's file path even when it is not a readable image (the handlers then say what is wrong)."""
    try:
        return gr.Image.preprocess(self, payload)
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files
        return getattr(payload, "path", None)


# gr.Image whose unreadable uploads reach the handlers instead of failing the event: failing it would
# leave the bad file in the box and break every later search. A class, not a patched instance, because
# Gradio rebuilds a component from its class when an event updates it. Made with ABCMeta.__new__ so
# Gradio's ComponentMeta does not write a .pyi file next to this module; ``is_template`` makes the page
# use the ordinary image widget.
UploadImage = abc.ABCMeta.__new__(type(gr.Image), "UploadImage", (gr.Image,), {
    "preprocess": _lenient_preprocess, "is_template": True, "__module__": __name__,
    "__doc__": "gr.Image for uploads that are checked by the app (search_app/uploads.py), not by PIL here."})


def upload_image(**kwargs) -> gr.Image:
    return UploadImage(**kwargs)


class LatestOnly:
    """Per browser tab, only the newest query's results reach the page.

    Clear runs at once while re-ranks and searches wait in the queue, so a re-rank fired by a filter box losing
    focus (the click on Clear or Search does that) can finish after a newer action and would paint old results
    over it. Each action that starts something new bumps the tab's counter; a handler whose counter moved while it
    ran returns no changes at all.
    """

    def __init__(self, tabs: int = 10_000):
        self._counters: OrderedDict[str | None, int] = OrderedDict()
        self._tabs = tabs
        self._lock = threading.Lock()

    def start(self, tab: str | None) -> int:
        with self._lock:
            counter = self._counters.pop(tab, 0) + 1
            self._counters[tab] = counter
            while len(self._counters) > self._tabs:  # forget the oldest tabs; they get one stale paint at worst
                self._counters.popitem(last=False)
            return counter

    def current(self, tab: str | None) -> int:
        with self._lock:
            return self._counters.get(tab, 0)


def _tab(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None)


class SearchUI:
    """Builds the page; holds no per-user data (that lives in gr.State)."""

    def __init__(self, engine: SearchEngine, thumbnails: ThumbnailCache | None = None, concurrency_limit: int = 1,
                 page_size: int = PAGE_SIZE):
        self.engine = engine
        self.page_size = page_size
        self.thumbnails = thumbnails or ThumbnailCache(published=self._published_preview)
        self.concurrency_limit = concurrency_limit
        self.originals: Path | None = None  # private (0700) folder of served originals, made on first use
        self.latest = LatestOnly()

    def _published_preview(self, content_hash: str):
        """The preview an index served from the Hub carries for a photo whose original was not published."""
        return self.engine.store.preview_file(content_hash)

    def _newest(self, handler, starts_new: bool):
        """``handler`` with the tab's request in front: its reply is dropped if a newer action started meanwhile."""
        def ordered(request: gr.Request, *args):
            tab = _tab(request)
            mine = self.latest.start(tab) if starts_new else self.latest.current(tab)
            reply = handler(*args)
            return reply if self.latest.current(tab) == mine else tuple(gr.update() for _ in reply)
        ordered.__name__ = ordered.__qualname__ = handler.__name__
        ordered.__doc__ = handler.__doc__
        return ordered

    def build(self) -> gr.Blocks:
        with gr.Blocks(title="Photo search · mmE5", analytics_enabled=False) as demo:
            gr.HTML("<h1>Photo search</h1><p>Describe a photo in any language, upload a photo to find similar "
                    "ones, or do both to change it (“this, but at night”). Dates like “beach July 2023” become a "
                    "filter.</p>", elem_id="intro")
            if self.engine.random_weights:
                gr.HTML(f"<p><strong>{SMOKE_NOTICE}</strong></p>", elem_id="smoke-mode")
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    query = gr.Textbox(label="Describe the photo", placeholder=PLACEHOLDER, elem_id="query",
                                       max_lines=1, max_length=MAX_QUERY_CHARS)
                    without = gr.Textbox(label="Without… (texts to push away, comma-separated)",
                                         placeholder="e.g. people, text", elem_id="without", max_lines=1,
                                         max_length=MAX_QUERY_CHARS)
                    with gr.Row():
                        search = gr.Button("Search", variant="primary", elem_id="search")
                        clear = gr.Button("Clear", elem_id="clear")
                    with gr.Row():
                        date_chip = gr.Button(visible=False, elem_id="date_chip", size="sm")
                        place_chip = gr.Button(visible=False, elem_id="place_chip", size="sm")
                    with gr.Accordion("Filters and sorting", open=False, elem_id="filters") as accordion:
                        boxes = {item.name: gr.Textbox(label=item.label, placeholder=item.placeholder,
                                                       elem_id=item.name, max_lines=1) for item in FILTERS}
                        with gr.Row():
                            sort = gr.Radio(list(SORT_LABELS), value="Best match", label="Sort", elem_id="sort")
                            collapse = gr.Checkbox(value=True, label="Hide identical copies", elem_id="collapse")
                            strong = gr.Checkbox(value=False, label="Strong matches only", elem_id="strong_only")
                        gr.HTML(self._datalists, elem_id="suggestions")
                with gr.Column(scale=1):
                    upload = upload_image(label="…or search with a photo", type="filepath", image_mode=None,
                                          sources=["upload", "clipboard"], height=190, elem_id="upload")
            status = gr.Markdown(self._welcome, elem_id="status")
            show_all = gr.Button("Show all", visible=False, elem_id="show_all", size="sm")
            source = gr.Image(label="Photos like this one", visible=False, interactive=False, height=120,
                              elem_id="source", buttons=[])
            gallery = gr.Gallery(label="Results", columns=6, height="auto", object_fit="cover", elem_id="results",
                                 allow_preview=True, preview=False, buttons=["fullscreen"], interactive=False)
            with gr.Row():
                similar = gr.Button("More like this", visible=False, elem_id="more_like_this")
                original = gr.DownloadButton("Open / download original", visible=False, elem_id="original")
                more = gr.Button("Load more", visible=False, elem_id="load_more")
            details = gr.Markdown(elem_id="details")
            player, frame, player_info, player_note = video_view.components()  # a video hit plays from its second
            with gr.Accordion("Albums (saved searches)", open=False, elem_id="albums"):
                with gr.Row():
                    album_name = gr.Textbox(label="Album name", placeholder="e.g. Beach 2023", elem_id="album_name",
                                            max_lines=1, scale=2, max_length=MAX_ALBUM_NAME_CHARS)
                    save_album = gr.Button("Save this search as an album", elem_id="save_album", scale=1)
                with gr.Row():
                    album_list = gr.Dropdown(label="Your albums", choices=[], value=None, elem_id="album_list",
                                             scale=2)
                    open_album = gr.Button("Open album", elem_id="open_album", scale=1)
                with gr.Row():
                    pin = gr.Button("📌 Pin selected photo", elem_id="pin", size="sm")
                    remove = gr.Button("Remove selected photo", elem_id="remove_photo", size="sm")
                    unpin = gr.Button("Undo pin / remove", elem_id="unpin", size="sm")
                    make_zip = gr.Button("Make a zip of the album", elem_id="make_zip", size="sm")
                album_zip = gr.DownloadButton("Download zip", visible=False, elem_id="album_zip")
            with gr.Accordion("Similar photos (bursts, edits, resized copies)", open=False, elem_id="similar_panel"):
                with gr.Row():
                    threshold = gr.Number(label="Least similarity (the model's default)", value=None,
                                          minimum=0.0, maximum=1.0, step=0.001, elem_id="threshold", scale=2)
                    find_groups = gr.Button("Find groups of near-identical photos", elem_id="find_groups", scale=1)
            gr.Markdown(self._footer, elem_id="footer")  # a callable: recounted on each page load, after a build
            session = gr.State(None)  # {"vector", "options", "next_offset", "results", "what", "generation", ...}
            selected = gr.State(None)  # image_id of the clicked result
            dates_state = gr.State(True)  # False once the user removed the date chip of this query
            places_state = gr.State(True)  # False once the user removed the place chip of this query
            url_state = gr.Textbox(visible=False, elem_id="url_state")
            first_new = gr.Number(visible=False, value=-1, elem_id="first_new")

            controls = {**boxes, "sort": sort, "collapse": collapse, "without": without, "strong_only": strong,
                        "dates_in_text": dates_state, "places_in_text": places_state}
            values = [controls[name] for name in OPTION_NAMES]
            self._outputs = dict(gallery=gallery, status=status, session=session, more=more, similar=similar,
                                 details=details, selected=selected, date_chip=date_chip, show_all=show_all,
                                 source=source, search=search, original=original, accordion=accordion,
                                 url=url_state, first_new=first_new, query=query, dates=dates_state, upload=upload,
                                 place_chip=place_chip, places=places_state, albums=album_list, album_zip=album_zip)
            outputs = list(self._outputs.values())
            queued = dict(concurrency_id="model", concurrency_limit=self.concurrency_limit, show_progress="minimal",
                          show_progress_on=[status], api_visibility="private")
            busy = dict(fn=lambda: gr.update(interactive=False, value="Searching…"), inputs=None, outputs=[search],
                        queue=False, api_visibility="private")
            for trigger in (search.click, query.submit, without.submit):
                trigger(**busy).then(self._newest(self.on_search, True), [query, upload, *values], outputs,
                                     **queued).then(
                    None, [url_state], None, js=AFTER_SEARCH_JS)
            date_chip.click(**busy).then(self._newest(self.on_chip_removed, True), [query, upload, *values],
                                         outputs, **queued).then(None, [url_state], None, js=AFTER_SEARCH_JS)
            place_chip.click(**busy).then(self._newest(self.on_place_chip_removed, True),
                                          [query, upload, *values], outputs, **queued).then(
                None, [url_state], None, js=AFTER_SEARCH_JS)
            query.input(lambda: (True, True), None, [dates_state, places_state], queue=False, api_visibility="private")
            save_album.click(self.on_save_album, [album_name, session, *values], [status, album_list],
                             queue=False, api_visibility="private")
            open_album.click(**busy).then(self._newest(self.on_open_album, True), [album_list], outputs,
                                          **queued).then(None, [url_state], None, js=AFTER_SEARCH_JS)
            for button, handler in ((pin, self.on_pin), (remove, self.on_remove), (unpin, self.on_unpin)):
                button.click(self._newest(handler, True), [album_list, selected], outputs, **queued)
            heavy = dict(queued, concurrency_id=HEAVY_SLOT, concurrency_limit=HEAVY_CONCURRENCY)  # searches don't wait
            make_zip.click(self.on_make_zip, [album_list], [album_zip, status], api_visibility="private",
                           concurrency_id=HEAVY_SLOT, concurrency_limit=HEAVY_CONCURRENCY)
            find_groups.click(**busy).then(self._newest(self.on_groups, True), [threshold], outputs, **heavy).then(
                None, [url_state], None, js=AFTER_SEARCH_JS)
            more.click(self._newest(self.on_more, False), [session, gallery, *values], outputs, **queued).then(
                None, [first_new], None, js=SCROLL_TO_NEW_JS)
            similar.click(**busy).then(self._newest(self.on_similar, True), [selected, *values], outputs,
                                       **queued).then(
                None, [url_state], None, js=AFTER_SEARCH_JS)
            gallery.select(self.on_select, [session], [details, similar, selected, original, player, frame, player_info],
                           api_visibility="private", queue=False).then(None, [player_info], None,
                                                                       js=video_view.PLAY_FROM_JS)
            upload.upload(self.on_upload, [upload], [upload, status], queue=False, api_visibility="private")
            for name, control in controls.items():
                if name in ("without", "dates_in_text", "places_in_text"):
                    continue
                events = [control.submit, control.blur] if isinstance(control, gr.Textbox) else [control.change]
                for event in events:
                    event(self._newest(self.on_options_changed, False), [session, *values], outputs, **queued).then(
                        None, [url_state], None, js=AFTER_SEARCH_JS)
            show_all.click(lambda: False, None, [strong], queue=False, api_visibility="private").then(
                self._newest(self.on_options_changed, False), [session, *values], outputs, **queued)
            resettable = [without, *boxes.values(), sort, collapse, strong]
            clear.click(self._newest(self.on_clear, True), None, resettable + outputs, queue=False,
                        api_visibility="private").then(
                None, [url_state], None, js=AFTER_SEARCH_JS)
            demo.load(self.on_page_ready, None, [album_list, threshold], queue=False, api_visibility="private")
            demo.load(self.on_load, None, [query, without, *boxes.values(), sort, collapse, strong],
                      api_visibility="private").then(self._newest(self.on_search_if_query, True),
                                                      [query, upload, *values], outputs, **queued)
            SearchAPI(self.engine).register(self.concurrency_limit)
        return demo

    # -- handlers ----------------------------------------------------------------------------
    def on_search(self, text, image, *values, progress=gr.Progress()):
        """New query from the box and/or the upload (``values``: see OPTION_NAMES; missing ones take defaults)."""
        text = (text or "").strip()
        raw = self._raw(values)
        if not text and not image:
            return self._message("Type a description or upload a photo, then press **Search**.", keep=True)
        try:
            if image:
                check_upload(image)
        except ValueError as error:
            return self._reply(status=f"⚠️ {html.escape(str(error))} The upload was removed; search again.",
                               query=gr.update(), upload=None)
        try:
            options = self._options(raw)
            options, dates, embedded = self.engine.read_query_dates(text, options) if text else (options, None, text)
            options, place, embedded = self.engine.read_query_places(embedded, options) if text else (options, None,
                                                                                                         text)
            progress(0.1, desc="Understanding the query…")
            vector = self.engine.encode_query(text=embedded or None, image=image or None, without=options.without)
        except ValueError as error:
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        what = f"“{html.escape(text)}”" if text else "your photo"
        if text and image:
            what = f"your photo + “{html.escape(text)}”"
        return self._first_page(vector, options, what, progress, raw=raw, text=text, dates=dates, place=place,
                                text_query=embedded if text and not image else None)

    def on_search_if_query(self, text, image, *values, progress=gr.Progress()):
        """After a page load from a shared URL: search if the URL held a query."""
        if not (text or "").strip():
            return self._reply()
        return self.on_search(text, image, *values, progress=progress)

    def on_chip_removed(self, text, image, *values, progress=gr.Progress()):
        """The date chip's ✕: the same query with its date words embedded as text, no date filter."""
        return self._search_without_reading("dates_in_text", "dates", text, image, values, progress)

    def on_place_chip_removed(self, text, image, *values, progress=gr.Progress()):
        """The place chip's ✕: the same query with the place name embedded as text, no place filter."""
        return self._search_without_reading("places_in_text", "places", text, image, values, progress)

    def _search_without_reading(self, option: str, state: str, text, image, values, progress):
        """Search again with one query reader (``option``) off, and keep it off for this text (``state``)."""
        raw = self._raw(values)
        raw[option] = False
        reply = self.on_search(text, image, *[raw[name] for name in OPTION_NAMES], progress=progress)
        return self._patch(reply, **{state: False})

    def on_similar(self, image_id, *values, progress=gr.Progress()):
        """"More like this" for the clicked result (by id: the client never names a path); the photo itself is left out."""
        raw = self._raw(values)
        try:
            options = self._options(raw)
            record = self.engine.record(image_id)
            path = self.engine.image_file(record)  # the original, or the published preview when absent
            progress(0.1, desc="Looking at the photo…")
            vector = self.engine.encode_query(image=self.engine.query_image(record))  # a video: the hit's frame
            thumbnail = hand_to_gradio(self.thumbnails.get(path, record.content_hash,
                                                            record.timestamp_s if record.media_type == "video" else None))
        except (ValueError, PermissionError, OSError) as error:
            return self._message(f"⚠️ {_shown(str(error))}", keep=True)
        options = replace(options, exclude=(*options.exclude, int(record.id)))
        name = _shown(record.relpath or record.path)
        reply = self._first_page(vector, options, f"photos like {name}", progress, raw=raw, text="",
                                 similar_to=int(record.id))
        return self._patch(reply, query="", source=gr.update(value=thumbnail, visible=True,
                                                              label=f"Photos like {record.relpath or record.path}"))

    def on_more(self, session, gallery_items, *values, progress=gr.Progress()):
        """Next page of the same query with the filters now on screen (changed filters restart the ranking)."""
        if not session or session.get("next_offset") is None:
            return self._message("No more results.", keep=True)
        raw = self._raw(values)
        try:
            wanted = _from_text(self._options(raw, base=session["options"]), session)
        except ValueError as error:
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        if _comparable(wanted) != _comparable(session["options"]):
            return self._rerank(session, wanted, raw, progress, "The filters changed: results start over with them.")
        options = replace(session["options"], offset=session["next_offset"])
        try:
            page = self.engine.rank(session["vector"], options, generation=session.get("generation"),
                                    text=session.get("text_query"))
        except ValueError as error:  # IndexChangedError: a build ran since the first page
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        items, missing = self._gallery_items(page.results, progress)
        results = session["results"] + [result for result, _ in items]
        session = {**session, "next_offset": page.next_offset, "results": results}
        existing = [(item[0], item[1]) for item in (gallery_items or [])]
        note = f"Showing {len(results)} photos for {session['what']}." + self._missing_note(missing)
        return self._reply(gallery=existing + [entry for _, entry in items], status=note, session=session,
                           more=gr.update(visible=page.next_offset is not None),
                           first_new=len(existing) if items else -1)

    def on_options_changed(self, session, *values, progress=gr.Progress()):
        """A filter, the sort or the strong-matches switch changed: re-rank the current query at once (no model work)."""
        raw = self._raw(values)
        if not session or session.get("vector") is None:  # nothing shown, or an album / similar groups
            return self._reply(accordion=gr.update(label=_filters_label(raw)))
        try:
            options = _from_text(self._options(raw, base=session["options"]), session)
        except ValueError as error:
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True, accordion=_filters_label(raw))
        if _comparable(options) == _comparable(session["options"]):
            return self._reply(accordion=gr.update(label=_filters_label(raw)))
        return self._rerank(session, options, raw, progress, "")

    # -- albums and similar-photo groups --------------------------------------------------------------
    def on_page_ready(self):
        """Album names and the model's similar-photo threshold, read on each page load."""
        try:
            from indexer.similar import default_threshold

            threshold = default_threshold(self.engine.store)
            names = self.engine.albums.names()
        except ALBUM_ERRORS:  # the status line says what is wrong with the index
            return gr.update(), gr.update()
        return gr.update(choices=names), threshold

    def on_save_album(self, name, session, *values):
        """Save the query on screen with the filters now set as an album (replacing one of that name)."""
        if not session or not (session.get("text") or session.get("similar_to")):
            return "Search first (a text, or “More like this”), then save the search as an album.", gr.update()
        raw = self._raw(values)
        try:
            options = _from_text(self._options(raw, base=session["options"]), session)
            query = {"text": session["text"]} if session.get("text") else {"similar_to": int(session["similar_to"])}
            from_text = (("date_from", "date_to") if session.get("dates") else ()) + (
                ("place",) if session.get("place") else ())  # read from the text again when the album opens
            options = {key: value for key, value in options.__dict__.items() if key not in from_text}
            album = self.engine.albums.save(name, query, _album_values(saved_options(options)))
        except ALBUM_ERRORS as error:
            return f"⚠️ {html.escape(str(error))}", gr.update()
        return (f"Saved the album “{html.escape(album.name)}”: open it any time to run the search again "
                "(new photos appear).", gr.update(choices=self.engine.albums.names(), value=album.name))

    def on_open_album(self, name, progress=gr.Progress()):
        """An album's photos now: pinned ones first (📌), then its saved search run again; removed ones never."""
        if not name:
            return self._message("Choose an album in “Your albums” first.", keep=True)
        try:
            album = self.engine.albums.get(name)
            results = album_results(self.engine, album)
        except ALBUM_ERRORS as error:
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        marks = {image_id: "📌 " for image_id in album.pinned}
        extra = f" ({len(album.pinned)} pinned, {len(album.removed)} removed)" if album.pinned or album.removed else ""
        return self._show_list(results, f"album “{html.escape(album.name)}”{extra}", marks, progress)

    def on_pin(self, name, image_id, progress=gr.Progress()):
        """Pin the selected photo into the album chosen in “Your albums” (always in it, first)."""
        return self.on_album_photo(name, image_id, "pin", progress)

    def on_remove(self, name, image_id, progress=gr.Progress()):
        """Leave the selected photo out of the album for good, whatever its search finds."""
        return self.on_album_photo(name, image_id, "remove", progress)

    def on_unpin(self, name, image_id, progress=gr.Progress()):
        """Undo a pin or a removal: the photo is in the album again only if its search finds it."""
        return self.on_album_photo(name, image_id, "unpin", progress)

    def on_album_photo(self, name, image_id, action: str, progress=gr.Progress()):
        if not name:
            return self._message("Choose an album in “Your albums” first.", keep=True)
        if image_id is None:
            return self._message("Click a photo in the results first, then pin or remove it.", keep=True)
        albums = self.engine.albums
        try:
            record = self.engine.record(image_id)
            if action == "unpin":
                albums.unpin(name, record.id)
            else:
                albums.pin(name, record.id, pinned=action == "pin")
        except ALBUM_ERRORS as error:
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        done = {"pin": "Pinned", "remove": "Removed", "unpin": "Undid the pin or removal of"}[action]
        reply = self.on_open_album(name, progress)
        status = reply[list(self._names()).index("status")]
        return self._patch(reply, status=f"{done} {_shown(record.relpath or record.path)}. {status}")

    def on_make_zip(self, name):
        """The album's original files in a zip, served like originals (private folder, path guard)."""
        if not name:
            return gr.update(visible=False), "Choose an album in “Your albums” first."
        try:
            results = servable(self.engine, album_results(self.engine, self.engine.albums.get(name)))
            if not results:
                return gr.update(visible=False), f"The album “{html.escape(name)}” has no photos to put in a zip."
            folder = private_dir(cache_home() / "albums")
            stem = re.sub(r"[^\w.-]+", "-", name).strip("-.") or "album"
            target = export_zip(results, folder / (stem + ".zip"))
            served = hand_to_gradio(target)
        except ALBUM_ERRORS as error:
            return gr.update(visible=False), f"⚠️ {_shown(str(error))}"
        size = _human_size(target.stat().st_size)
        return (gr.update(value=served, visible=True, label=f"Download “{name}” ({len(results)} photos, {size})"),
                f"The zip of “{html.escape(name)}” is ready: {len(results)} photos, {size}.")

    def on_groups(self, threshold, progress=gr.Progress()):
        """Groups of near-identical photos in the results area, the best of each marked ★ (indexer/similar.py)."""
        try:
            progress(0.1, desc="Comparing every photo with its neighbours…")
            used, groups = self.engine.similar_groups(threshold)
        except (ValueError, TypeError) as error:
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        if not groups:
            return self._message(f"No near-identical photos at similarity ≥ {used:g}. Lower the threshold to find "
                                 "looser matches.")
        results, marks = [], {}
        for number, group in enumerate(groups[:MAX_GROUPS_SHOWN], start=1):
            for member in group.members:
                try:
                    results.append(result_of(self.engine.record(member.image_id), member.score))
                except ValueError:  # removed since the groups were computed
                    continue
                marks[member.image_id] = f"group {number} · " + ("★ best · " if member is group.best else "")
        more = f" (showing the first {MAX_GROUPS_SHOWN})" if len(groups) > MAX_GROUPS_SHOWN else ""
        what = (f"{len(groups)} group(s) of near-identical photos at similarity ≥ {used:g}{more}; ★ marks the best "
                "of each (most pixels, then sharpest)")
        return self._show_list(results, what, marks, progress)

    def _show_list(self, results, what: str, marks: dict, progress):
        """A fixed list of photos (an album, similar groups) in the gallery; no paging, no re-ranking."""
        items, missing = self._gallery_items(results, progress)
        entries = [(thumbnail, marks.get(result.image_id, "") + caption) for result, (thumbnail, caption) in items]
        session = {"vector": None, "options": None, "what": what, "text": "", "results": [r for r, _ in items],
                   "next_offset": None}
        status = f"Showing {len(entries)} photos: {what}." + self._missing_note(missing)
        return self._reply(gallery=gr.Gallery(value=entries, selected_index=None), status=status, session=session,
                           more=gr.update(visible=False), similar=gr.update(visible=False), details="", selected=None,
                           date_chip=gr.update(visible=False), place_chip=gr.update(visible=False),
                           show_all=gr.update(visible=False), source=gr.update(value=None, visible=False),
                           original=gr.update(visible=False), first_new=-1,
                           search=gr.update(interactive=True, value="Search"))

    def _names(self):
        return list(self._outputs) if hasattr(self, "_outputs") else list(_OUTPUT_ORDER)

    def on_select(self, session, event: gr.SelectData):
        """Show the clicked photo's facts (with its EXIF), offer "more like this" and the original file."""
        hidden = ("", gr.update(visible=False), None, gr.update(visible=False), *video_view.HIDDEN)
        if not session or event.index is None or event.index >= len(session["results"]):
            return hidden
        result = session["results"][event.index]
        if result.media_type == "video":
            return self._select_video(result)
        taken = result.taken_at.strftime("%Y-%m-%d %H:%M") if result.taken_at else "unknown"
        lines = [f"**{_shown(result.path)}**", f"score {result.score:.4f} · {_human_size(result.size)} · "
                 f"{result.width or '?'}×{result.height or '?'} px · taken {taken}"]
        if result.also_at:
            lines.append("identical copies: " + ", ".join(_shown(path) for path in result.also_at))
        if result.text_match is not None:
            lines.append(snippet_html(result.text_match))
        preview = None if os.path.isfile(result.path) else self.engine.store.preview_file(result.content_hash)
        if preview is not None:  # an index served from the Hub without its originals: nothing to download
            lines.append("the original was not published with this index (only a preview is; the publisher can add "
                         "originals with `python -m indexer push --originals`)")
            return ("\n\n".join(lines), gr.update(visible=True), result.image_id, gr.update(visible=False),
                    *video_view.HIDDEN)
        try:
            path = self.engine.servable_path(result.path)
            lines.append(" · ".join(f"{key}: {html.escape(str(value))}" for key, value in exif_facts(path).items())
                         or "no EXIF facts")
            served = hand_to_gradio(self._original_copy(path, result.content_hash))
            download = gr.update(value=served, visible=True, label=f"Open / download original ({path.name})")
        except (OSError, ValueError) as error:  # PathNotAllowedError is an OSError: never served
            lines.append(f"⚠️ the original cannot be opened: {html.escape(str(error))}")
            download = gr.update(visible=False)
        return "\n\n".join(lines), gr.update(visible=True), result.image_id, download, *video_view.HIDDEN

    def _select_video(self, result):
        """on_select for a video hit: its facts and moments, and the player starting at the hit's second."""
        lines = [f"**{_shown(result.path)}**", f"score {result.score:.4f} · {_human_size(result.size)} · "
                 f"{result.width or '?'}×{result.height or '?'} px", *video_view.details(result)]
        try:
            path = self.engine.servable_path(result.path)
            record = self.engine.record(result.image_id)
            whole = self.engine.record(record.video_key)  # the file's own row: its content hash names the copy
            served = hand_to_gradio(self._original_copy(path, whole.content_hash))
            frame = hand_to_gradio(self.thumbnails.get(path, result.content_hash, result.timestamp_s))
        except (OSError, ValueError) as error:  # PathNotAllowedError is an OSError; ImageError a ValueError
            lines.append(f"⚠️ the video cannot be opened: {html.escape(str(error))}")
            return "\n\n".join(lines), gr.update(visible=True), result.image_id, gr.update(visible=False), \
                *video_view.HIDDEN
        download = gr.update(value=served, visible=True, label=f"Open / download original ({path.name})")
        return ("\n\n".join(lines), gr.update(visible=True), result.image_id, download,
                *video_view.shown(served, frame, result))

    def on_upload(self, image):
        """Check an upload when it arrives: a bad one is removed at once with the reason, so later searches work."""
        if not image:
            return gr.update(), gr.update()
        try:
            check_upload(image)
        except ValueError as error:
            return None, f"⚠️ {html.escape(str(error))} The upload was removed."
        return gr.update(), "Photo ready: press **Search** to find similar ones (add text to change it)."

    def on_clear(self):
        """Everything back to a fresh page: query, upload, filters, results, status, paging."""
        resets = ["", *[""] * len(FILTERS), "Best match", True, False]
        reply = self._reply(gallery=[], status=self._welcome(), session=None, more=gr.update(visible=False),
                            similar=gr.update(visible=False), details="", selected=None,
                            date_chip=gr.update(visible=False), show_all=gr.update(visible=False),
                            place_chip=gr.update(visible=False), places=True, album_zip=gr.update(visible=False),
                            source=gr.update(value=None, visible=False), original=gr.update(visible=False),
                            accordion=gr.update(label="Filters and sorting"), url="", first_new=-1, query="",
                            dates=True, upload=None, search=gr.update(interactive=True, value="Search"))
        return (*resets, *reply)

    def on_load(self, request: gr.Request):
        """Query and filters from the URL (shared links, back and reload keep the search)."""
        params = dict(request.query_params) if request is not None else {}
        if not params:  # a plain visit: leave whatever the user already typed alone
            return tuple(gr.update() for _ in range(5 + len(FILTERS)))
        boxes = [params.get(item.name, "") for item in FILTERS]
        sort = next((label for label, value in SORT_LABELS.items() if value == params.get("sort")), "Best match")
        return (params.get("q", ""), params.get("without", ""), *boxes, sort, params.get("collapse", "1") != "0",
                params.get("strong", "0") == "1")

    # -- helpers ------------------------------------------------------------------------------
    def _first_page(self, vector, options, what, progress, raw, text, dates=None, similar_to=None, place=None,
                    text_query=None):
        try:
            if self.engine.stats()["images"] == 0:
                return self._message("The index has no photos yet. Add some with "
                                     "`python -m indexer build --dir PHOTOS --index INDEX`, then search again.")
            page = self.engine.rank(vector, options, text=text_query)
        except ValueError as error:  # IndexMismatchError: the index was rebuilt with another model meanwhile
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        session = {"vector": vector, "options": options, "what": what, "text": text, "dates": dates,
                   "similar_to": similar_to, "place": place, "raw": raw, "text_query": text_query}
        return self._show(page, session, raw, progress, prefix="")

    def _rerank(self, session, options, raw, progress, prefix: str):
        try:
            page = self.engine.rank(session["vector"], replace(options, offset=0), text=session.get("text_query"))
        except ValueError as error:
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        return self._show(page, {**session, "options": replace(options, offset=0)}, raw, progress, prefix)

    def _show(self, page, session, raw, progress, prefix: str):
        what, dates = session["what"], session.get("dates")
        notes = " ".join(html.escape(note) for note in page.notes)
        chip = _chip(dates)
        common = dict(date_chip=chip, place_chip=_place_chip(session.get("place")), album_zip=gr.update(visible=False),
                      accordion=gr.update(label=_filters_label(raw)), url=self._url(session, raw),
                      search=gr.update(interactive=True, value="Search"),
                      source=gr.update() if session.get("similar_to") else gr.update(value=None, visible=False),
                      original=gr.update(visible=False), similar=gr.update(visible=False), details="", selected=None)
        strong_line = ""
        if page.strong is not None:
            strong_line = f"{page.strong} strong matches · {page.hidden} weaker hidden · "
        if not page.results:
            status = (f"{prefix} {notes} {strong_line}No photos match {what} with these filters. Try a wider date "
                      "range or another folder, or clear the filters.").strip()
            # the query stays, so a changed filter or "Show all" can re-rank it without the model
            kept = {**session, "next_offset": None, "results": [], "generation": page.generation}
            return self._reply(gallery=[], status=status, session=kept, more=gr.update(visible=False),
                               show_all=gr.update(visible=page.strong is not None and bool(page.hidden)), **common)
        items, missing = self._gallery_items(page.results, progress)
        results = [result for result, _ in items]
        session = {**session, "next_offset": page.next_offset, "results": results, "generation": page.generation}
        more = "" if page.next_offset is None else " **Load more** for further results."
        status = (f"{prefix} {notes} {strong_line}Showing {len(results)} photos for {what}.{more}"
                  + self._missing_note(missing)).strip()
        return self._reply(gallery=gr.Gallery(value=[entry for _, entry in items], selected_index=None),
                           status=status, session=session, more=gr.update(visible=page.next_offset is not None),
                           show_all=gr.update(visible=page.strong is not None and bool(page.hidden)), first_new=-1,
                           **common)

    def _gallery_items(self, results, progress):
        """(result, (thumbnail, caption)) pairs; photos deleted since indexing are counted, not shown."""
        items, missing = [], 0
        for result in progress.tqdm(results, desc="Preparing previews…"):
            try:
                thumbnail = hand_to_gradio(self.thumbnails.get(self.engine.servable_path(result.path),
                                                                result.content_hash,
                                                                result.timestamp_s if result.media_type == "video" else None))
            except (ValueError, OSError) as error:
                log.warning("cannot show %s: %s", result.path, error)
                missing += 1
                continue
            moment = f" · {video_view.caption(result)}" if result.media_type == "video" else ""
            found = f" · “{result.text_match.snippet}”" if result.text_match is not None else ""
            items.append((result, (str(thumbnail), f"{printable(result.relpath or result.path)}{moment} · "
                                                   f"{result.score:.3f}{found}")))
        return items, missing

    def _original_copy(self, path: Path, content_hash: str) -> Path:
        """A copy of a guarded original in a private cache folder, which Gradio serves (the photo folders it never does).

        Private (0700, per user) like the previews: never a fixed shared path in the temp directory."""
        if self.originals is None:
            self.originals = private_dir(cache_home() / "originals")
        folder = self.originals / (checked_content_hash(content_hash) if content_hash else "nohash")
        target = folder / path.name  # path: resolved by the guard, so its name is one plain file name
        if target.parent != folder or folder.parent != self.originals:  # defence in depth: never outside the cache
            raise ValueError(f"{content_hash!r}, {path.name!r}: not a name for a copy of an original")
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(path, partial)
            partial.replace(target)
        return target

    @staticmethod
    def _missing_note(missing: int) -> str:
        if not missing:
            return ""
        return (f" ({missing} matching photo(s) could not be shown: moved or deleted since indexing; "
                "run the indexer again to refresh.)")

    @staticmethod
    def _raw(values) -> dict:
        raw = {name: DEFAULTS.get(name, "") for name in OPTION_NAMES}
        raw.update(zip(OPTION_NAMES, values))
        return raw

    def _options(self, raw: dict, base: SearchOptions | None = None) -> SearchOptions:
        filters = {item.name: raw.get(item.name) or None for item in FILTERS}
        return SearchOptions.parse(
            k=self.page_size, offset=0, sort=SORT_LABELS.get(raw.get("sort"), "score"),
            collapse_duplicates=bool(raw.get("collapse", True)), without=raw.get("without") or None,
            strong_only=bool(raw.get("strong_only")), dates_in_text=raw.get("dates_in_text") is not False,
            places_in_text=raw.get("places_in_text") is not False,
            exclude=base.exclude if base is not None else None, **filters)

    def _url(self, session, raw) -> str:
        params = {"q": session.get("text") or ""}
        params.update({item.name: raw.get(item.name) or "" for item in FILTERS})
        params.update(without=raw.get("without") or "", sort=SORT_LABELS.get(raw.get("sort"), "score"),
                      collapse="1" if raw.get("collapse", True) else "0", strong="1" if raw.get("strong_only") else "0")
        defaults = {"sort": "score", "collapse": "1", "strong": "0"}
        return urlencode({key: value for key, value in params.items() if value and defaults.get(key) != value})

    def _reply(self, **changes):
        """The outputs tuple (order of ``self._outputs``): unchanged components get gr.update()."""
        names = list(self._outputs) if hasattr(self, "_outputs") else list(_OUTPUT_ORDER)
        unknown = set(changes) - set(names)
        assert not unknown, unknown
        return tuple(changes.get(name, gr.update()) for name in names)

    def _patch(self, reply, **changes):
        names = list(self._outputs) if hasattr(self, "_outputs") else list(_OUTPUT_ORDER)
        reply = list(reply[: len(names)])
        for name, value in changes.items():
            reply[names.index(name)] = value
        return tuple(reply)

    def _message(self, text: str, keep: bool = False, accordion: str | None = None):
        """A status line; the results are cleared unless ``keep``; the Search button is usable again."""
        extra = {} if accordion is None else {"accordion": gr.update(label=accordion)}
        if keep:
            return self._reply(status=text, search=gr.update(interactive=True, value="Search"), **extra)
        return self._reply(gallery=[], status=text, session=None, more=gr.update(visible=False),
                           similar=gr.update(visible=False), details="", selected=None,
                           search=gr.update(interactive=True, value="Search"), **extra)

    def _datalists(self) -> str:
        """<datalist>s of indexed values for filter boxes with suggestions (recomputed on each page load)."""
        parts = []
        for item in FILTERS:
            if item.suggest is None:
                continue
            try:
                values = self.engine.suggestions(item.name)[:500]
            except ValueError:
                values = []
            options = "".join(f'<option value="{html.escape(value)}"></option>' for value in values)
            parts.append(f'<datalist id="suggest-{item.name}" data-for="{item.name}">{options}</datalist>')
        return "".join(parts)

    def _welcome(self) -> str:
        try:
            count = self.engine.stats()["images"]
        except ValueError as error:  # the page must still load to say why searching stopped
            return f"⚠️ {html.escape(str(error))}"
        if count == 0:
            return ("The index has no photos yet. Add some with `python -m indexer build --dir PHOTOS --index INDEX`, "
                    "then reload this page.")
        return f"{count} photos indexed. Type a description (any language) or upload a photo."

    def _footer(self) -> str:
        try:
            stats = self.engine.stats()
        except ValueError:  # the status line above says why
            return "[mmE5](https://arxiv.org/abs/2502.08468)"
        adapter = f" + adapter `{stats['adapter']}`" if stats["adapter"] else ""
        roots = ", ".join(f"`{root}`" for root in stats["roots"]) or "none"
        return (f"{stats['images']} photos indexed from {roots} · model `{stats['model']}`{adapter} "
                f"({stats['dim']}-d) · [mmE5](https://arxiv.org/abs/2502.08468) · "
                f"[REST API (OpenAPI)]({REST_SCHEMA})")


def _shown(text: str) -> str:
    """A path (or a message naming one) for the page: undecodable file-name bytes escaped, HTML escaped."""
    return html.escape(printable(text))


_OUTPUT_ORDER = ("gallery", "status", "session", "more", "similar", "details", "selected", "date_chip", "show_all",
                 "source", "search", "original", "accordion", "url", "first_new", "query", "dates", "upload",
                 "place_chip", "places", "albums", "album_zip")


def _comparable(options: SearchOptions) -> SearchOptions:
    return replace(options, offset=0, k=1)


def _filters_label(raw: dict) -> str:
    """The accordion's title says which filters are on, so a closed panel does not hide them."""
    on = [item.label.lower() for item in FILTERS if raw.get(item.name)]
    if raw.get("strong_only"):
        on.append("strong matches only")
    return "Filters and sorting" + (f" · {len(on)} on: {', '.join(on)}" if on else "")


def _from_text(options: SearchOptions, session) -> SearchOptions:
    """``options`` with the date and place the query's text named (a filter change keeps them, like the chips)."""
    dates, place = session.get("dates"), session.get("place")
    if dates is not None and options.dates_in_text and options.date_from is None and options.date_to is None:
        options = replace(options, date_from=dates.start, date_to=dates.end)
    if place is not None and options.places_in_text and all(getattr(options, name) is None for name in place.filters):
        options = replace(options, **place.filters)  # the place, or "within 5 km of" it (near)
    return options


def _album_values(options: dict) -> dict:
    """Saved options as the API and the CLI write them: sort's value, dates as ISO text."""
    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in options.items()}


def _place_chip(place) -> dict:
    if not place:
        return gr.update(visible=False)
    return gr.update(visible=True, value=f"📍 {place.label} (from “{place.matched}”) ✕", elem_classes=["chip"])


def _chip(dates) -> dict:
    if not dates:
        return gr.update(visible=False)
    return gr.update(visible=True, value=f"📅 {dates.start:%Y-%m-%d} – {dates.end:%Y-%m-%d} (from “{dates.matched}”) ✕",
                     elem_classes=["chip"])


def exif_facts(path: Path) -> dict:
    """Camera settings worth showing next to an original (empty for files without EXIF)."""
    from PIL import ExifTags, Image

    facts = {}
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            facts["format"] = image.format
            facts["pixels"] = f"{image.width}×{image.height}"
            details = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # noqa: BLE001 - facts are a courtesy; the download still works
        return facts
    names = {"Make": 0x010F, "Model": 0x0110, "DateTimeOriginal": 0x9003, "ExposureTime": 0x829A,
             "FNumber": 0x829D, "ISOSpeedRatings": 0x8827, "FocalLength": 0x920A, "LensModel": 0xA434}
    for name, tag in names.items():
        value = details.get(tag, exif.get(tag))
        if value not in (None, ""):
            facts[name] = str(value).strip("\x00 ")
    return facts


def _human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
