"""The search page's handlers: search box, "without", image upload, filters, gallery, "more like this", "load more",
date and place chips; the albums and similar-groups panel is search_app/ui_albums.py.

Layout, CSS and scripts: search_app/ui_layout.py. Handlers reply through ``ui_reply.reply`` (outputs named once);
the search on screen is a ``ui_session.Session`` held per tab in a gr.State.
Filter boxes are derived from ``filters.FILTERS`` (a new filter appears here without an edit).
The page keeps the query and filters in the URL, announces the status line to screen
readers, keeps old results while a query runs, and lays the gallery out for phones too.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import gradio as gr

from indexer.files import printable
from indexer.reader import checked_content_hash, motion_photo_video
from mme5.atomic import atomic_open

from .api import SearchAPI
from .engine import SearchEngine, SearchOptions
from .filters import FILTERS
from .private import cache_home, hand_to_gradio, private_dir
from .text_match import snippet_html
from . import map_view
from .thumbnails import ThumbnailCache
from . import video_view
from .ui_albums import AlbumPanel, human_size
from .limits import SCREEN_SIZE
from .ui_layout import (
    AFTER_SEARCH_JS,
    CSS,
    EXAMPLES_JS,
    JS,
    LOCAL_TIMES_JS,
    MAP_JS,
    NAMES_JS,
    SCROLL_TO_NEW_JS,
    SMOKE_NOTICE,
    SORT_LABELS,
    THEME,
    VIEWER_JS,
    build_page,
    logout_link,
)
from .ui_latest import LatestOnly
from .ui_reply import SEARCH_READY, counted, message, output, patch, query_shown, reply, unchanged
from .ui_session import Session
from .uploads import check_upload

__all__ = ["CSS", "JS", "THEME", "SMOKE_NOTICE", "OPTION_NAMES", "SearchUI", "LatestOnly"]

log = logging.getLogger(__name__)

PAGE_SIZE = 24
# Handler inputs after (text, image): the first five where the first page version had them.
LEGACY = ("folder", "date_from", "date_to", "sort", "collapse")
OPTION_NAMES = (
    *LEGACY,
    *(item.name for item in FILTERS if item.name not in LEGACY),
    "without",
    "strong_only",
    "dates_in_text",
    "places_in_text",
    "show_scores",
)
DEFAULTS = {
    "sort": "Best match",
    "collapse": True,
    "strong_only": False,
    "dates_in_text": True,
    "places_in_text": True,
    "without": "",
    "show_scores": False,
}
# EXIF settings the viewer names (camera make and model are already in the record's "camera").
EXIF_SHOWN = {
    "ExposureTime": "exposure",
    "FNumber": "f/",
    "ISOSpeedRatings": "ISO",
    "FocalLength": "focal length",
    "LensModel": "lens",
}
# What the viewer's "100 %" shows as it is (other formats, HEIC or RAW, only as the screen rendition and download).
BROWSER_IMAGES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp")
REST_SCHEMA = "api/v1/openapi.json"  # search_app/rest.py's schema, relative: works behind a proxy's prefix too


def _tab(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None)


class SearchUI:
    """Builds the page; holds no per-user data (that lives in gr.State)."""

    def __init__(
        self,
        engine: SearchEngine,
        thumbnails: ThumbnailCache | None = None,
        concurrency_limit: int = 1,
        page_size: int = PAGE_SIZE,
        map_tiles: str | None = None,
        logout: bool = False,
    ):
        self.engine = engine
        self.map_tiles = map_tiles  # the map's tile URL template, "none", or None for OpenStreetMap's (map_view)
        self.logout = logout  # login is on: the page has a "Log out" link
        self.page_size = page_size
        self.thumbnails = thumbnails or ThumbnailCache(published=self._published_preview)
        # the viewer's screen-sized renditions, beside the previews (the REST API's /screen makes the same ones)
        self.screens = ThumbnailCache(self.thumbnails.dir, size=SCREEN_SIZE, published=self._published_preview)
        self.concurrency_limit = concurrency_limit
        self.originals: Path | None = None  # private (0700) folder of served originals, made on first use
        self.latest = LatestOnly()
        self.albums = AlbumPanel(engine, self.show_list, self._search_options)

    def _published_preview(self, content_hash: str):
        """The preview an index served from the Hub carries for a photo whose original was not published."""
        return self.engine.store.preview_file(content_hash)

    def _newest(self, handler, starts_new: bool):
        """``handler`` with the tab's request in front, as an action (``starts_new``) or a step on the results on
        screen, whose first input is the session: a reply made from a page that is gone is dropped (ui_latest)."""

        def ordered(request: gr.Request, *args):
            tab = _tab(request)
            if starts_new:
                action = self.latest.start(tab)
                made = None
                try:
                    made = handler(*args)
                finally:
                    sent = self.latest.finish(tab, action, made)
            else:
                begun = self.latest.current(tab)
                read = args[0] if args and isinstance(args[0], Session) else None
                made = handler(*args)
                sent = self.latest.follow(tab, begun, read, made)
            if sent is not made:
                log.info(
                    "a reply was not shown: the page changed while it was made (%s, tab %s)", handler.__name__, tab
                )
            return sent

        ordered.__name__ = ordered.__qualname__ = handler.__name__
        ordered.__doc__ = handler.__doc__
        return ordered

    def build(self) -> gr.Blocks:
        """The page (search_app/ui_layout.py) with its events wired to the handlers."""
        with gr.Blocks(title="Photo search · mmE5", analytics_enabled=False) as demo:
            if self.logout:
                logout_link()
            page = build_page(
                self.engine.random_weights,
                self._datalists,
                self._welcome,
                self._footer,
                self.albums.layout,
                self.map_tiles,
            )
            controls = page.controls()
            values = [controls[name] for name in OPTION_NAMES]
            outputs = page.outputs()
            queued = dict(
                concurrency_id="model",
                concurrency_limit=self.concurrency_limit,
                # Gradio's default ("once") drops a repeat of an event while the one before is still pending: a second
                # query sent then was never searched, and the busy step left the Search button at "Searching…"
                trigger_mode="always_last",
                show_progress="minimal",
                show_progress_on=[page.status],
                api_visibility="private",
            )
            busy = dict(
                fn=lambda: gr.update(interactive=False, value="Searching…"),
                inputs=None,
                outputs=[page.search],
                queue=False,
                api_visibility="private",
            )
            after_search = dict(fn=None, inputs=[page.url, page.map_data], outputs=None, js=AFTER_SEARCH_JS)
            to_map = dict(fn=None, inputs=[page.map_data], outputs=None, js=MAP_JS)
            searched = [page.query, page.upload, *values]
            for trigger in (page.search.click, page.query.submit, page.without.submit):
                trigger(**busy).then(self._newest(self.on_search, True), searched, outputs, **queued).then(
                    **after_search
                )
            for chip, handler in (
                (page.date_chip, self.on_chip_removed),
                (page.place_chip, self.on_place_chip_removed),
            ):
                chip.click(**busy).then(self._newest(handler, True), searched, outputs, **queued).then(**after_search)
            # the map's drawn or visible area (its script hands it over in place of the box's value) becomes the bbox
            # filter; the area chip's ✕ clears it; either re-ranks the query on screen like a changed filter box
            bbox = page.boxes["bbox"]
            page.map_apply.click(
                lambda area: area,
                [bbox],
                [bbox],
                js="(box) => window.photoSearchArea ?? box",
                queue=False,
                api_visibility="private",
            ).then(self._newest(self.on_options_changed, False), [page.session, *values], outputs, **queued).then(
                **after_search
            )
            page.area_chip.click(lambda: "", None, [bbox], queue=False, api_visibility="private").then(
                self._newest(self.on_options_changed, False), [page.session, *values], outputs, **queued
            ).then(**after_search)
            page.query.input(
                lambda: (True, True), None, [page.dates, page.places], queue=False, api_visibility="private"
            )
            self.albums.wire(demo, page, values, self._newest, busy, queued, after_search)
            page.more.click(
                self._newest(self.on_more, False), [page.session, page.gallery, *values], outputs, **queued
            ).then(None, [page.first_new], None, js=SCROLL_TO_NEW_JS).then(**to_map)
            page.similar.click(**busy).then(
                self._newest(self.on_similar, True), [page.selected, *values], outputs, **queued
            ).then(**after_search)
            video = [page.player, page.frame, page.player_info]  # a video hit plays from its second (video_view)
            opened = [
                page.details,
                page.similar,
                page.selected,
                page.original,
                page.viewer,
                page.screen,
                *video,
                page.full,
                page.zoom,
                page.fit,
                page.previous,
                page.following,
            ]
            page.gallery.select(self.on_select, [page.session], opened, api_visibility="private", queue=False).then(
                None, js=LOCAL_TIMES_JS
            ).then(None, [page.player_info], None, js=video_view.PLAY_FROM_JS)
            for button, delta in ((page.previous, -1), (page.following, 1)):  # also ←/→ and a swipe (VIEWER_JS)
                button.click(
                    self.on_step(delta), [page.session, page.selected], opened, api_visibility="private", queue=False
                ).then(None, js=LOCAL_TIMES_JS).then(None, [page.player_info], None, js=video_view.PLAY_FROM_JS)
            page.zoom.click(
                self.on_zoom,
                [page.session, page.selected],
                [page.full, page.screen, page.zoom, page.fit, page.details],
                api_visibility="private",
                queue=False,
            ).then(None, js=LOCAL_TIMES_JS)
            page.fit.click(
                lambda: (
                    gr.update(value=None, visible=False),
                    gr.update(visible=True),
                    gr.update(visible=True),
                    gr.update(visible=False),
                ),
                None,
                [page.full, page.screen, page.zoom, page.fit],
                queue=False,
                api_visibility="private",
            )
            demo.load(None, js=VIEWER_JS)  # ←/→, swipe, double click to zoom
            demo.load(None, js=NAMES_JS)  # names for Gradio's own controls (thumbnails, upload, shown images)
            page.close.click(
                lambda: (gr.update(visible=False), *video_view.HIDDEN),
                None,
                [page.viewer, *video],
                queue=False,
                api_visibility="private",
            )  # the page's script puts the focus back (ui_layout.JS)
            # every reply that writes the status line or the results takes its turn in one queue, whose messages reach
            # the page in the order they were made: one sent outside it could be painted over by an older one
            page.upload.upload(self.on_upload, [page.upload], [page.upload, page.status], **queued)
            for name, control in controls.items():
                if name in ("without", "dates_in_text", "places_in_text"):
                    continue
                events = [control.submit, control.blur] if isinstance(control, gr.Textbox) else [control.change]
                for event in events:
                    event(
                        self._newest(self.on_options_changed, False), [page.session, *values], outputs, **queued
                    ).then(**after_search)
            page.show_all.click(lambda: False, None, [page.strong], queue=False, api_visibility="private").then(
                self._newest(self.on_options_changed, False), [page.session, *values], outputs, **queued
            ).then(**to_map)
            resettable = [page.without, *page.boxes.values(), page.sort, page.collapse, page.strong]
            # Clear waits its turn in the queue like the re-rank its click queued (the filter box it blurs): a reply
            # sent outside the queue could reach the page before that re-rank's, which would then paint over it
            page.clear.click(self._newest(self.on_clear, True), None, resettable + outputs, **queued).then(
                **after_search
            )
            demo.load(
                self.on_load,
                None,
                [page.query, page.without, *page.boxes.values(), page.sort, page.collapse, page.strong],
                api_visibility="private",
            ).then(self._newest(self.on_search_if_query, True), searched, outputs, **queued).then(**to_map)
            demo.load(None, js=EXAMPLES_JS)  # the first screen's example queries, in the browser's language
            SearchAPI(self.engine).register(self.concurrency_limit)
        return demo

    # -- handlers ----------------------------------------------------------------------------
    def on_search(self, text, image, *values, progress=gr.Progress()):
        """New query from the box and/or the upload (``values``: see OPTION_NAMES; missing ones take defaults)."""
        text = (text or "").strip()
        raw = self._raw(values)
        if not text and not image:
            return message("Type a description or upload a photo, then press **Search**.", keep=True)
        try:
            if image:
                check_upload(image)
        except ValueError as error:
            return reply(
                status=f"⚠️ {html.escape(str(error))} The upload was removed; search again.",
                query=gr.update(),
                upload=None,
            )
        try:
            options = self._options(raw)
            options, dates, embedded = self.engine.read_query_dates(text, options) if text else (options, None, text)
            options, place, embedded = (
                self.engine.read_query_places(embedded, options) if text else (options, None, text)
            )
            progress(0.1, desc="Understanding the query…")
            vector = self.engine.encode_query(text=embedded or None, image=image or None, without=options.without)
        except ValueError as error:
            return message(f"⚠️ {html.escape(str(error))}", keep=True)
        what = query_shown(text) if text else "your photo"
        if text and image:
            what = f"your photo + {query_shown(text)}"
        return self._first_page(
            vector,
            options,
            what,
            progress,
            raw=raw,
            text=text,
            dates=dates,
            place=place,
            text_query=embedded if text and not image else None,
        )

    def on_search_if_query(self, text, image, *values, progress=gr.Progress()):
        """After a page load: search if the URL held a query (a shared link), else show the newest photos."""
        if not (text or "").strip():
            return self.first_screen(progress)
        return self.on_search(text, image, *values, progress=progress)

    def first_screen(self, progress):
        """Before any search: the newest photos (by capture date, else when added) in the results, marked
        ``newest`` (the page then shows the example queries beside them and keeps the whole form on a phone)."""
        try:
            results = self.engine.newest(self.page_size)
        except ValueError as error:  # the status line already says why the index cannot be read
            log.warning("cannot list the newest photos: %s", error)
            return unchanged()
        if not results:  # an empty library: the status line says how to index a folder
            return unchanged()
        answer = self.show_list(results, "the newest photos", {}, progress, classes=("newest",))
        return patch(answer, status=self._welcome() + " The newest are below.")

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
        answer = self.on_search(text, image, *[raw[name] for name in OPTION_NAMES], progress=progress)
        return patch(answer, **{state: False})

    def on_similar(self, image_id, *values, progress=gr.Progress()):
        """ "More like this" for the clicked result (by id: the client never names a path); the photo itself is left out."""
        raw = self._raw(values)
        try:
            options = self._options(raw)
            record = self.engine.record(image_id)
            path = self.engine.image_file(record)  # the original, or the published preview when absent
            progress(0.1, desc="Looking at the photo…")
            vector = self.engine.encode_query(image=self.engine.query_image(record))  # a video: the hit's frame
            thumbnail = hand_to_gradio(
                self.thumbnails.get(
                    path, record.content_hash, record.timestamp_s if record.media_type == "video" else None
                )
            )
        except (ValueError, PermissionError, OSError) as error:
            return message(f"⚠️ {_shown(str(error))}", keep=True)
        options = replace(options, exclude=(*options.exclude, int(record.id)))
        name = _shown(record.relpath or record.path)
        answer = self._first_page(
            vector, options, f"photos like {name}", progress, raw=raw, text="", similar_to=int(record.id)
        )
        return patch(
            answer,
            query="",
            source=gr.update(value=thumbnail, visible=True, label=f"Photos like {record.relpath or record.path}"),
        )

    def on_more(self, session, gallery_items, *values, progress=gr.Progress()):
        """Next page of the same query with the filters now on screen (changed filters restart the ranking)."""
        if session is None or session.next_offset is None or not session.rankable:
            return message("No more results.", keep=True)
        raw = self._raw(values)
        try:
            wanted = self._search_options(session, values)
        except ValueError as error:
            return message(f"⚠️ {html.escape(str(error))}", keep=True)
        if _comparable(wanted) != _comparable(session.options):
            return self._rerank(session, wanted, raw, progress, "The filters changed: results start over with them.")
        options = replace(session.options, offset=session.next_offset)
        try:
            page = self.engine.rank(session.vector, options, generation=session.generation, text=session.text_query)
        except ValueError as error:  # IndexChangedError: a build ran since the first page
            return message(f"⚠️ {html.escape(str(error))}", keep=True)
        items, missing = self._gallery_items(page.results, progress, scores=session.scores)
        session = replace(session, next_offset=page.next_offset, results=session.results + [r for r, _ in items])
        existing = [(item[0], item[1]) for item in (gallery_items or [])]
        note = f"Showing {counted(len(session.results), 'photo')} for {session.what}." + self._missing_note(missing)
        return reply(
            gallery=existing + [entry for _, entry in items],
            status=note,
            session=session,
            more=gr.update(visible=page.next_offset is not None),
            map=self._map(session),
            first_new=len(existing) if items else -1,
        )

    def on_options_changed(self, session, *values, progress=gr.Progress()):
        """A filter, the sort or the strong-matches switch changed: re-rank the current query at once (no model work)."""
        raw = self._raw(values)
        scores = bool(raw.get("show_scores"))
        if session is not None and session.results and scores != session.scores:  # a display switch: no ranking
            return self._recaptioned(replace(session, scores=scores), progress)
        if session is None or not session.rankable:  # nothing shown, or an album / similar groups
            return reply(accordion=gr.update(label=_filters_label(raw)))
        try:
            options = self._search_options(session, values)
        except ValueError as error:
            return message(f"⚠️ {html.escape(str(error))}", keep=True, accordion=_filters_label(raw))
        if _comparable(options) == _comparable(session.options):
            return reply(accordion=gr.update(label=_filters_label(raw)))
        return self._rerank(session, options, raw, progress, "")

    def on_select(self, session, event: gr.SelectData):
        """Open the clicked result in the viewer (see ``open_result``)."""
        return self.open_result(session, event.index)

    def on_step(self, delta: int):
        """The viewer's Previous (-1) / Next (+1) handler: the result beside the open one (none past either end)."""

        def step(session, selected):
            ids = [result.image_id for result in session.results] if session is not None else []
            if selected not in ids or not 0 <= ids.index(selected) + delta < len(ids):
                return tuple(gr.update() for _ in range(14))
            return self.open_result(session, ids.index(selected) + delta)

        step.__name__ = "on_previous" if delta < 0 else "on_next"
        return step

    def on_zoom(self, session, selected):
        """ "100 %": the open photo's original at full resolution (through the guard, the copy the download serves),
        panned by scrolling; a format the browser cannot draw (HEIC, RAW) stays fitted, with the reason.

        Returns (full, screen, zoom, fit, details)."""
        result = next((r for r in (session.results if session else []) if r.image_id == selected), None)
        if result is None or result.media_type == "video":
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        try:
            path = self.engine.servable_path(result.path)
            if path.suffix.lower() not in BROWSER_IMAGES:
                raise ValueError(
                    f"{path.name}: a {path.suffix or 'format'} file, which browsers cannot show; "
                    "use Download original to see it at full size"
                )
            served = hand_to_gradio(self._original_copy(path, result.content_hash))
        except (OSError, ValueError) as error:  # PathNotAllowedError is an OSError: never served
            log.info("no full-size view of %s: %s", result.path, error)
            return (
                gr.update(),
                gr.update(),
                gr.update(),
                gr.update(),
                self.open_result(session, session.results.index(result))[0] + f"\n\n⚠️ {_shown(str(error))}",
            )
        return (
            gr.update(value=served, visible=True),
            gr.update(visible=False),
            gr.update(visible=False),
            gr.update(visible=True),
            gr.update(),
        )

    def open_result(self, session, index):
        """Open result ``index`` in the viewer: a screen-sized rendition (a video: the player, from the second that
        matched), its facts in plain words, "More like this" and the original file as its own download; fitted to
        the screen (not zoomed), with Previous / Next usable where there is a result that way.

        Returns (details, similar, selected, original, viewer, screen, player, frame, player_info, full, zoom, fit,
        previous, next)."""
        if session is None or index is None or not 0 <= index < len(session.results):
            return (
                "",
                gr.update(visible=False),
                None,
                gr.update(visible=False),
                gr.update(visible=False),
                gr.update(value=None),
                *video_view.HIDDEN,
                gr.update(value=None, visible=False),
                gr.update(visible=False),
                gr.update(visible=False),
                gr.update(),
                gr.update(),
            )
        result = session.results[index]
        moves = (
            gr.update(value=None, visible=False),
            gr.update(visible=result.media_type != "video"),
            gr.update(visible=False),
            gr.update(interactive=index > 0),
            gr.update(interactive=index + 1 < len(session.results)),
        )
        return (*self._opened(result), *moves)

    def _opened(self, result):
        """The viewer's first nine outputs for ``result`` (see ``open_result``)."""
        if result.media_type == "video":
            return self._select_video(result)
        lines = [f"**<bdi>{_shown(os.path.basename(result.path))}</bdi>**", self._facts(result)]
        lines.extend(self._text_in_photo(result))
        if result.also_at:
            lines.append("Identical copies: " + ", ".join(f"<bdi>{_shown(path)}</bdi>" for path in result.also_at))
        if result.text_match is not None:
            lines.append(snippet_html(result.text_match))
        try:
            screen = hand_to_gradio(self.screens.get(self.engine.servable_path(result.path), result.content_hash))
        except (ValueError, OSError) as error:  # PathNotAllowedError is an OSError; a published preview stands in
            log.warning("cannot show %s at screen size: %s", result.path, error)
            screen = None
        viewer, screen = gr.update(visible=True), gr.update(value=screen, visible=True)
        preview = None if os.path.isfile(result.path) else self.engine.store.preview_file(result.content_hash)
        if preview is not None:  # an index served from the Hub without its originals: nothing to download
            lines.append(
                "The original was not published with this index (only a preview is; the publisher can add "
                "originals with `python -m indexer push --originals`)."
            )
            return (
                "\n\n".join(lines),
                gr.update(visible=True),
                result.image_id,
                gr.update(visible=False),
                viewer,
                screen,
                *video_view.HIDDEN,
            )
        try:
            path = self.engine.servable_path(result.path)
            settings = exif_facts(path)
            shown = {key: value for key, value in settings.items() if key in EXIF_SHOWN}
            if shown:
                lines.append(
                    "Settings: "
                    + " · ".join(
                        EXIF_SHOWN[key] + ("" if EXIF_SHOWN[key].endswith("/") else " ") + html.escape(str(value))
                        for key, value in shown.items()
                    )
                )
            served = hand_to_gradio(self._original_copy(path, result.content_hash))
            download = gr.update(value=served, visible=True, label=f"Download original ({path.name})")
        except (OSError, ValueError) as error:  # PathNotAllowedError is an OSError: never served
            lines.append(f"⚠️ the original cannot be opened: {html.escape(str(error))}")
            download = gr.update(visible=False)
        return (
            "\n\n".join(lines),
            gr.update(visible=True),
            result.image_id,
            download,
            viewer,
            screen,
            *self._moving_clip(result),
        )

    def _moving_clip(self, result) -> tuple:
        """(player, frame, info) for a photo that moves: a Live Photo's clip (a file beside it) or a motion photo's
        video (an MP4 inside the JPEG), behind the same path guard as the photo, copied where Gradio serves it;
        hidden for any other photo, or when the video cannot be read (logged)."""
        if result.motion == "live" and result.motion_clip:
            source, kind = result.motion_clip, "Live Photo"
        elif result.motion == "motion_photo":
            source, kind = result.path, "Motion photo"
        else:
            return video_view.HIDDEN
        try:
            path = self.engine.servable_path(source)
            stat = path.stat()  # a file replaced under an unchanged content hash gets a new copy
            span = motion_photo_video(str(path)) if kind == "Motion photo" else None
            signature = f"{result.motion}:{result.content_hash}:{stat.st_size}:{stat.st_mtime_ns}".encode()
            key = hashlib.blake2b(signature, digest_size=16).hexdigest()  # named like a content hash (32 hex digits)
            served = hand_to_gradio(self._original_copy(path, key, span=span))
        except (OSError, ValueError) as error:  # PathNotAllowedError is an OSError: never served
            log.warning("cannot play the video of %s (%s): %s", result.path, kind, error)
            return video_view.HIDDEN
        return video_view.live_clip(served, kind)

    def _select_video(self, result):
        """on_select for a video hit: its facts and moments, and the player starting at the hit's second (where the
        browser cannot play it, video_view.PLAY_FROM_JS shows the hit's frame instead and says why)."""
        lines = [
            f"**<bdi>{_shown(os.path.basename(result.path))}</bdi>**",
            self._facts(result),
            *video_view.details(result),
        ]
        if result.text_match is not None:
            lines.append(snippet_html(result.text_match))
        viewer, screen = gr.update(visible=True), gr.update(value=None, visible=False)  # the player stands in
        try:
            path = self.engine.servable_path(result.path)
            record = self.engine.record(result.image_id)
            whole = self.engine.record(record.video_key)  # the file's own row: its content hash names the copy
            served = hand_to_gradio(self._original_copy(path, whole.content_hash))
            frame = hand_to_gradio(self.screens.get(path, result.content_hash, result.timestamp_s))
        except (OSError, ValueError) as error:  # PathNotAllowedError is an OSError; ImageError a ValueError
            lines.append(f"⚠️ the video cannot be opened: {html.escape(str(error))}")
            return (
                "\n\n".join(lines),
                gr.update(visible=True),
                result.image_id,
                gr.update(visible=False),
                viewer,
                screen,
                *video_view.HIDDEN,
            )
        download = gr.update(value=served, visible=True, label=f"Download original ({path.name})")
        return (
            "\n\n".join(lines),
            gr.update(visible=True),
            result.image_id,
            download,
            viewer,
            screen,
            *video_view.shown(served, frame, result),
        )

    def _text_in_photo(self, result) -> list[str]:
        """The text OCR read in the photo, as a quote in its own direction (Arabic, Hebrew) that can be selected and
        copied: a sign's words, a receipt's total. Nothing when OCR found none."""
        try:
            text = self.engine.photo_text(result.content_hash)
        except (ValueError, OSError) as error:
            log.warning("cannot read the text of %s: %s", result.path, error)
            return []
        if not text.strip():
            return []
        lines = "<br>".join(html.escape(line) for line in text.strip().splitlines() if line.strip())
        return [
            f'<p class="photo-text-label">Text in the photo</p>\n<blockquote id="photo_text" dir="auto">{lines}</blockquote>'
        ]

    def _facts(self, result) -> str:
        """When, where, with what, how big, in which folder, and the match score: one line of plain words."""
        facts = []
        if result.taken_at:  # the page rewrites it in the browser's language (ui_layout.LOCAL_TIMES_JS)
            facts.append(
                f'Taken <time datetime="{result.taken_at:%Y-%m-%dT%H:%M:%S}">{result.taken_at:%d %b %Y, %H:%M}</time>'
            )
        else:
            facts.append("Date unknown")
        if result.place:
            facts.append(f"in <bdi>{html.escape(result.place)}</bdi>")
        if result.camera:
            facts.append(f"with <bdi>{html.escape(result.camera)}</bdi>")
        if result.motion == "live" and result.motion_clip:  # its clip has no result of its own: named here
            facts.append(f"Live Photo (clip <bdi>{_shown(os.path.basename(result.motion_clip))}</bdi>)")
        elif result.motion:
            facts.append("Motion photo (its video is inside the JPEG)")
        facts.append(f"{result.width or '?'} × {result.height or '?'} px, {human_size(result.size)}")
        folder = os.path.dirname(result.relpath) if result.relpath else os.path.dirname(result.path)
        facts.append(f"folder <bdi>{_shown(folder)}</bdi>" if folder else "top folder")
        facts.append(f"match score {result.score:.3f}")
        return " · ".join(facts)

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
        """Everything back to a fresh page: query, upload, filters, paging, and the first screen's newest photos (on
        the map too), in one step, so no later step can paint them over a search typed meanwhile."""
        resets = ["", *[""] * len(FILTERS), "Best match", True, False]
        answer = reply(
            gallery=[],
            status=self._welcome(),
            session=None,
            more=gr.update(visible=False),
            similar=gr.update(visible=False),
            details="",
            selected=None,
            date_chip=gr.update(visible=False),
            show_all=gr.update(visible=False),
            place_chip=gr.update(visible=False),
            places=True,
            album_zip=gr.update(visible=False),
            source=gr.update(value=None, visible=False),
            original=gr.update(visible=False),
            accordion=gr.update(label="Filters and sorting"),
            url="",
            first_new=-1,
            query="",
            dates=True,
            upload=None,
            search=gr.update(**SEARCH_READY),
            viewer=gr.update(visible=False),
            map="",
            area_chip=gr.update(visible=False),
        )
        first = self.first_screen(gr.Progress())  # previews made at the page's load: cached, quick
        if output(first, "gallery") != gr.update():  # else an empty library or an unreadable index: stay empty
            answer = patch(answer, **{name: output(first, name) for name in ("gallery", "status", "session", "map")})
        return (*resets, *answer)

    def on_load(self, request: gr.Request):
        """Query and filters from the URL (shared links, back and reload keep the search)."""
        params = dict(request.query_params) if request is not None else {}
        if not params:  # a plain visit: leave whatever the user already typed alone
            return tuple(gr.update() for _ in range(5 + len(FILTERS)))
        boxes = [params.get(item.name, "") for item in FILTERS]
        sort = next((label for label, value in SORT_LABELS.items() if value == params.get("sort")), "Best match")
        return (
            params.get("q", ""),
            params.get("without", ""),
            *boxes,
            sort,
            params.get("collapse", "1") != "0",
            params.get("strong", "0") == "1",
        )

    # -- helpers ------------------------------------------------------------------------------
    def _first_page(
        self, vector, options, what, progress, raw, text, dates=None, similar_to=None, place=None, text_query=None
    ):
        try:
            if self.engine.stats()["images"] == 0:
                return message(
                    "The index has no photos yet. Add some with "
                    "`python -m indexer build --dir PHOTOS --index INDEX`, then search again."
                )
            page = self.engine.rank(vector, options, text=text_query)
        except ValueError as error:  # IndexMismatchError: the index was rebuilt with another model meanwhile
            return message(f"⚠️ {html.escape(str(error))}", keep=True)
        session = Session(
            what=what,
            vector=vector,
            options=options,
            text=text,
            dates=dates,
            place=place,
            similar_to=similar_to,
            raw=raw,
            scores=bool(raw.get("show_scores")),
            text_query=text_query,
        )
        return self._show(page, session, raw, progress, prefix="")

    def _rerank(self, session, options, raw, progress, prefix: str):
        try:
            page = self.engine.rank(session.vector, replace(options, offset=0), text=session.text_query)
        except ValueError as error:
            return message(f"⚠️ {html.escape(str(error))}", keep=True)
        return self._show(page, replace(session, options=replace(options, offset=0)), raw, progress, prefix)

    def _show(self, page, session, raw, progress, prefix: str):
        what = session.what
        notes = " ".join(html.escape(note) for note in page.notes)
        common = dict(
            date_chip=_chip(session.dates),
            place_chip=_place_chip(session.place),
            area_chip=_area_chip(session.options),
            album_zip=gr.update(visible=False),
            accordion=gr.update(label=_filters_label(raw)),
            url=self._url(session, raw),
            search=gr.update(**SEARCH_READY),
            source=gr.update() if session.similar_to is not None else gr.update(value=None, visible=False),
            original=gr.update(visible=False),
            similar=gr.update(visible=False),
            details="",
            selected=None,
            viewer=gr.update(visible=False),
        )
        strong_line = ""
        if page.strong is not None:
            strong_line = f"{counted(page.strong, 'strong match', 'strong matches')} · {page.hidden} weaker hidden · "
        show_all = gr.update(visible=page.strong is not None and bool(page.hidden))
        if not page.results:
            if page.strong is not None and page.hidden:  # the switch hides them, not the filters
                status = (
                    f"{prefix} {notes} No strong matches for {what}: “Strong matches only” hides "
                    f"{counted(page.hidden, 'weaker match', 'weaker matches')}. Press **Show all** to see "
                    "them."
                ).strip()
            else:
                status = (
                    f"{prefix} {notes} {strong_line}No photos match {what} with these filters. Try a wider "
                    "date range or another folder, or clear the filters."
                ).strip()
            # the query stays, so a changed filter or "Show all" can re-rank it without the model
            kept = replace(session, next_offset=None, results=[], generation=page.generation)
            return reply(
                gallery=[],
                status=status,
                session=kept,
                more=gr.update(visible=False),
                show_all=show_all,
                map=self._map(kept),
                **common,
            )
        session = replace(session, scores=bool(raw.get("show_scores")))
        items, missing = self._gallery_items(page.results, progress, scores=session.scores)
        session = replace(
            session, next_offset=page.next_offset, results=[result for result, _ in items], generation=page.generation
        )
        more = "" if page.next_offset is None else " **Load more** for further results."
        status = (
            f"{prefix} {notes} {strong_line}Showing {counted(len(session.results), 'photo')} for {what}.{more}"
            + self._missing_note(missing)
        ).strip()
        return reply(
            gallery=_gallery([entry for _, entry in items], session),
            status=status,
            session=session,
            more=gr.update(visible=page.next_offset is not None),
            show_all=show_all,
            first_new=-1,
            map=self._map(session),
            **common,
        )

    @staticmethod
    def _map(session: Session) -> str:
        """The map's data for the results on screen (map_view.map_data), their captions as the gallery shows them."""
        captions = [
            session.marks.get(result.image_id, "") + caption_of(result, session.scores) for result in session.results
        ]
        return map_view.map_data(session.results, session.options, captions)

    def _search_options(self, session: Session, values) -> SearchOptions:
        """The options of the search on screen with the page's option ``values`` now (and what its text named)."""
        return _from_text(self._options(self._raw(values), base=session.options), session)

    def show_list(self, results, what: str, marks: dict, progress, classes: tuple = ()):
        """A fixed list of photos (an album, similar groups) in the gallery; no paging, no re-ranking.

        ``marks``: image_id -> text in front of that photo's caption (📌, “group 2 · ★ best · ”); ``classes``: the
        gallery's CSS classes (``newest``: the first screen)."""
        items, missing = self._gallery_items(results, progress, marks=marks)
        session = Session(what=what, results=[result for result, _ in items], marks=marks)
        status = f"Showing {counted(len(items), 'photo')}: {what}." + self._missing_note(missing)
        return reply(
            gallery=_gallery([entry for _, entry in items], session, classes),
            status=status,
            session=session,
            more=gr.update(visible=False),
            similar=gr.update(visible=False),
            details="",
            selected=None,
            date_chip=gr.update(visible=False),
            place_chip=gr.update(visible=False),
            show_all=gr.update(visible=False),
            source=gr.update(value=None, visible=False),
            original=gr.update(visible=False),
            first_new=-1,
            search=gr.update(**SEARCH_READY),
            viewer=gr.update(visible=False),
            map=self._map(session),
            area_chip=gr.update(visible=False),
        )

    def _recaptioned(self, session: Session, progress):
        """The photos on screen again with their captions redone (the relevance switch); nothing is re-ranked."""
        items, _ = self._gallery_items(session.results, progress, scores=session.scores, marks=session.marks)
        session = replace(session, results=[result for result, _ in items])
        return reply(
            gallery=_gallery([entry for _, entry in items], session),
            map=self._map(session),
            session=session,
            details="",
            selected=None,
            similar=gr.update(visible=False),
            original=gr.update(visible=False),
            viewer=gr.update(visible=False),
        )

    def _gallery_items(self, results, progress, scores: bool = False, marks: dict | None = None):
        """(result, (thumbnail, caption)) pairs; photos deleted since indexing are counted, not shown."""
        items, missing = [], 0
        for result in progress.tqdm(results, desc="Preparing previews…"):
            try:
                thumbnail = hand_to_gradio(
                    self.thumbnails.get(
                        self.engine.servable_path(result.path),
                        result.content_hash,
                        result.timestamp_s if result.media_type == "video" else None,
                    )
                )
            except (ValueError, OSError) as error:
                log.warning("cannot show %s: %s", result.path, error)
                missing += 1
                continue
            mark = (marks or {}).get(result.image_id, "")
            items.append((result, (thumbnail, mark + caption_of(result, scores))))
        return items, missing

    def _original_copy(self, path: Path, content_hash: str, span: tuple[int, int] | None = None) -> Path:
        """A copy of a guarded original in a private cache folder, which Gradio serves (the photo folders it never does).

        Private (0700, per user) like the previews: never a fixed shared path in the temp directory. ``span``
        ((start, length) in bytes) copies only that part, as an .mp4: a motion photo's video."""
        if self.originals is None:
            self.originals = private_dir(cache_home() / "originals")
        folder = self.originals / (checked_content_hash(content_hash) if content_hash else "nohash")
        name = path.name if span is None else path.stem + ".mp4"  # path: resolved by the guard: a plain file name
        target = folder / name
        if target.parent != folder or folder.parent != self.originals:  # defence in depth: never outside the cache
            raise ValueError(f"{content_hash!r}, {path.name!r}: not a name for a copy of an original")
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as source, atomic_open(target) as copy:
                if span is None:
                    shutil.copyfileobj(source, copy)
                else:
                    source.seek(span[0])
                    video = source.read(span[1])
                    if len(video) != span[1]:  # the file shrank since its XMP was read
                        raise ValueError(f"{path.name}: its video ends before the {span[1]:,} bytes its XMP says")
                    copy.write(video)
        return target

    @staticmethod
    def _missing_note(missing: int) -> str:
        if not missing:
            return ""
        return (
            f" ({counted(missing, 'matching photo')} could not be shown: moved or deleted since indexing; "
            "run the indexer again to refresh.)"
        )

    @staticmethod
    def _raw(values) -> dict:
        raw = {name: DEFAULTS.get(name, "") for name in OPTION_NAMES}
        raw.update(zip(OPTION_NAMES, values))
        return raw

    def _options(self, raw: dict, base: SearchOptions | None = None) -> SearchOptions:
        filters = {item.name: raw.get(item.name) or None for item in FILTERS}
        return SearchOptions.parse(
            k=self.page_size,
            offset=0,
            sort=SORT_LABELS.get(raw.get("sort"), "score"),
            collapse_duplicates=bool(raw.get("collapse", True)),
            without=raw.get("without") or None,
            strong_only=bool(raw.get("strong_only")),
            dates_in_text=raw.get("dates_in_text") is not False,
            places_in_text=raw.get("places_in_text") is not False,
            exclude=base.exclude if base is not None else None,
            **filters,
        )

    def _url(self, session, raw) -> str:
        params = {"q": session.text}
        params.update({item.name: raw.get(item.name) or "" for item in FILTERS})
        params.update(
            without=raw.get("without") or "",
            sort=SORT_LABELS.get(raw.get("sort"), "score"),
            collapse="1" if raw.get("collapse", True) else "0",
            strong="1" if raw.get("strong_only") else "0",
        )
        defaults = {"sort": "score", "collapse": "1", "strong": "0"}
        return urlencode({key: value for key, value in params.items() if value and defaults.get(key) != value})

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
            return (
                "The index has no photos yet. Index a folder of photos with "
                f"`python -m indexer build --dir PHOTOS --index {html.escape(str(self.engine.store.index_dir))}` "
                "(PHOTOS: your photo folder), then reload this page."
            )
        return f"{counted(count, 'photo')} indexed. Type a description (any language) or upload a photo."

    def _footer(self) -> str:
        try:
            stats = self.engine.stats()
        except ValueError:  # the status line above says why
            return "[mmE5](https://arxiv.org/abs/2502.08468)"
        adapter = f" + adapter `{stats['adapter']}`" if stats["adapter"] else ""
        roots = ", ".join(f"`{root}`" for root in stats["roots"]) or "none"
        return (
            f"{counted(stats['images'], 'photo')} indexed from {roots} · model `{stats['model']}`{adapter} "
            f"({stats['dim']}-d) · [mmE5](https://arxiv.org/abs/2502.08468) · "
            f"[REST API (OpenAPI)]({REST_SCHEMA})"
        )


def _shown(text: str) -> str:
    """A path (or a message naming one) for the page: undecodable file-name bytes escaped, HTML escaped."""
    return html.escape(printable(text))


def _gallery(entries: list, session: Session, classes: tuple = ()) -> gr.Gallery:
    """The gallery's new photos; sorted by date, it is marked ``by-date`` and the page heads each month (ui_layout)."""
    by_date = session.options is not None and session.options.sort in ("date", "date_asc")
    return gr.Gallery(value=entries, selected_index=None, elem_classes=(["by-date"] if by_date else []) + list(classes))


def caption_of(result, score: bool = False) -> str:
    """A result's caption: when and where it was taken (the city; region and country are in the details), then the
    file's name (its folder is in the details), a video hit's moment (▶ 0:09 · +2 more moments), the match score only
    when asked for (it is a ranking aid, not something a person reads photos by), and a text hit's snippet last."""
    parts = [f"{result.taken_at.day} {result.taken_at:%b %Y}"] if result.taken_at else []
    if result.city or result.region:
        parts.append(printable(result.city or result.region))
    parts.append(printable(os.path.basename(result.relpath or result.path)))
    if result.media_type == "video":
        parts.append(video_view.caption(result))
    if score:
        parts.append(f"{result.score:.3f}")
    if result.text_match is not None:
        parts.append(f"“{result.text_match.snippet}”")
    return " · ".join(parts)


def _comparable(options: SearchOptions) -> SearchOptions:
    return replace(options, offset=0, k=1)


def _filters_label(raw: dict) -> str:
    """The accordion's title says which filters are on, so a closed panel does not hide them."""
    on = [item.label.lower() for item in FILTERS if raw.get(item.name)]
    if raw.get("strong_only"):
        on.append("strong matches only")
    return "Filters and sorting" + (f" · {len(on)} on: {', '.join(on)}" if on else "")


def _from_text(options: SearchOptions, session: Session) -> SearchOptions:
    """``options`` with the date and place the query's text named (a filter change keeps them, like the chips)."""
    dates, place = session.dates, session.place
    if dates is not None and options.dates_in_text and options.date_from is None and options.date_to is None:
        options = replace(options, date_from=dates.start, date_to=dates.end)
    if place is not None and options.places_in_text and all(getattr(options, name) is None for name in place.filters):
        options = replace(options, **place.filters)  # the place, or "within 5 km of" it (near)
    return options


def _place_chip(place) -> dict:
    if not place:
        return gr.update(visible=False)
    return gr.update(visible=True, value=f"📍 {place.label} (from “{place.matched}”) ✕", elem_classes=["chip"])


def _area_chip(options) -> dict:
    """The map-area filter (bbox) as a chip; its ✕ removes the filter."""
    box = getattr(options, "bbox", None) if options is not None else None
    if box is None:
        return gr.update(visible=False)
    return gr.update(
        visible=True,
        value=f"🗺 Map area {box.west:.4g}, {box.south:.4g} to {box.east:.4g}, {box.north:.4g} ✕",
        elem_classes=["chip"],
    )


def _chip(dates) -> dict:
    if not dates:
        return gr.update(visible=False)
    return gr.update(
        visible=True,
        value=f"📅 {dates.start:%Y-%m-%d} – {dates.end:%Y-%m-%d} (from “{dates.matched}”) ✕",
        elem_classes=["chip"],
    )


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
    names = {
        "Make": 0x010F,
        "Model": 0x0110,
        "DateTimeOriginal": 0x9003,
        "ExposureTime": 0x829A,
        "FNumber": 0x829D,
        "ISOSpeedRatings": 0x8827,
        "FocalLength": 0x920A,
        "LensModel": 0xA434,
    }
    for name, tag in names.items():
        value = details.get(tag, exif.get(tag))
        if value not in (None, ""):
            facts[name] = str(value).strip("\x00 ")
    return facts
