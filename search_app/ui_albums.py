"""The page's albums and similar-photo groups panel: its components, its events and its handlers.

Albums are saved searches (storage: search_app/albums.py; opening, zipping and what a search saves:
search_app/album_views.py). Similar-photo groups come from indexer/similar.py. Both show a fixed list of photos in
the results area through ``show_list`` (SearchUI's), which has no pages and is not re-ranked by the filters.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from indexer.files import printable

from .album_views import export_zip, open_album as album_results, saved_search, servable
from .albums import ALBUM_ERRORS
from .limits import HEAVY_CONCURRENCY, HEAVY_SLOT, MAX_ALBUM_NAME_CHARS
from .private import cache_home, hand_to_gradio, private_dir
from .results import result_of
from .ui_reply import counted, message, output, patch

MAX_GROUPS_SHOWN = 40  # similar-photo groups listed in the gallery at once (largest first)
PICK_ALBUM = "Choose an album in “Your albums” first."


@dataclass
class AlbumWidgets:
    album_name: gr.Textbox
    save_album: gr.Button
    album_list: gr.Dropdown
    open_album: gr.Button
    pin: gr.Button
    remove: gr.Button
    unpin: gr.Button
    make_zip: gr.Button
    album_zip: gr.DownloadButton
    threshold: gr.Number
    find_groups: gr.Button


def _shown(text: str) -> str:
    return html.escape(printable(text))


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


class AlbumPanel:
    """Albums (save the search on screen, open, pin, remove, zip) and groups of near-identical photos.

    ``show_list(results, what, marks, progress)`` paints a fixed list of photos; ``search_options(session, values)``
    is the search on screen's options with the page's option ``values`` (what an album saves).
    """

    def __init__(self, engine, show_list: Callable, search_options: Callable):
        self.engine = engine
        self.show_list = show_list
        self.search_options = search_options

    # -- layout and events -----------------------------------------------------------------------
    @staticmethod
    def layout() -> AlbumWidgets:
        with gr.Accordion("Albums (saved searches)", open=False, elem_id="albums"):
            with gr.Row():
                album_name = gr.Textbox(
                    label="Album name",
                    placeholder="e.g. Beach 2023",
                    elem_id="album_name",
                    max_lines=1,
                    scale=2,
                    max_length=MAX_ALBUM_NAME_CHARS,
                )
                save_album = gr.Button("Save this search as an album", elem_id="save_album", scale=1)
            with gr.Row():
                album_list = gr.Dropdown(label="Your albums", choices=[], value=None, elem_id="album_list", scale=2)
                open_album = gr.Button("Open album", elem_id="open_album", scale=1)
            with gr.Row():
                pin = gr.Button("📌 Pin selected photo", elem_id="pin", size="sm")
                remove = gr.Button("Remove selected photo", elem_id="remove_photo", size="sm")
                unpin = gr.Button("Undo pin / remove", elem_id="unpin", size="sm")
                make_zip = gr.Button("Make a zip of the album", elem_id="make_zip", size="sm")
            album_zip = gr.DownloadButton("Download zip", visible=False, elem_id="album_zip")
        with gr.Accordion("Similar photos (bursts, edits, resized copies)", open=False, elem_id="similar_panel"):
            with gr.Row():
                threshold = gr.Number(
                    label="Least similarity (the model's default)",
                    value=None,
                    minimum=0.0,
                    maximum=1.0,
                    step=0.001,
                    elem_id="threshold",
                    scale=2,
                )
                find_groups = gr.Button("Find groups of near-identical photos", elem_id="find_groups", scale=1)
        return AlbumWidgets(
            album_name=album_name,
            save_album=save_album,
            album_list=album_list,
            open_album=open_album,
            pin=pin,
            remove=remove,
            unpin=unpin,
            make_zip=make_zip,
            album_zip=album_zip,
            threshold=threshold,
            find_groups=find_groups,
        )

    def wire(
        self, demo: gr.Blocks, page, values: list, newest: Callable, busy: dict, queued: dict, after_search: dict
    ) -> None:
        """The panel's events (``page``: ui_layout.Page; ``values``: the option components; ``newest``: the
        latest-only wrapper; ``busy``, ``queued``, ``after_search``: SearchUI's event settings)."""
        widgets, outputs = page.panel, page.outputs()
        widgets.save_album.click(
            self.on_save_album,
            [widgets.album_name, page.session, *values],
            [page.status, widgets.album_list],
            **queued,  # it writes the status line: in turn with the searches (SearchUI.build)
        )
        widgets.open_album.click(**busy).then(
            newest(self.on_open_album, True), [widgets.album_list], outputs, **queued
        ).then(**after_search)
        for button, handler in (
            (widgets.pin, self.on_pin),
            (widgets.remove, self.on_remove),
            (widgets.unpin, self.on_unpin),
        ):
            button.click(newest(handler, True), [widgets.album_list, page.selected], outputs, **queued)
        heavy = dict(queued, concurrency_id=HEAVY_SLOT, concurrency_limit=HEAVY_CONCURRENCY)  # searches don't wait
        widgets.make_zip.click(
            self.on_make_zip,
            [widgets.album_list],
            [widgets.album_zip, page.status],
            api_visibility="private",
            concurrency_id=HEAVY_SLOT,
            concurrency_limit=HEAVY_CONCURRENCY,
        )
        widgets.find_groups.click(**busy).then(
            newest(self.on_groups, True), [widgets.threshold], outputs, **heavy
        ).then(**after_search)
        demo.load(
            self.on_page_ready, None, [widgets.album_list, widgets.threshold], queue=False, api_visibility="private"
        )

    # -- handlers --------------------------------------------------------------------------------
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
        if session is None or not (session.text or session.similar_to is not None):
            return "Search first (a text, or “More like this”), then save the search as an album.", gr.update()
        try:
            query, options = saved_search(
                self.search_options(session, values),
                text=session.text,
                similar_to=session.similar_to,
                dates_from_text=bool(session.dates),
                place_from_text=bool(session.place),
            )
            album = self.engine.albums.save(name, query, options)
        except ALBUM_ERRORS as error:
            return f"⚠️ {html.escape(str(error))}", gr.update()
        return (
            f"Saved the album “{html.escape(album.name)}”: open it any time to run the search again "
            "(new photos appear).",
            gr.update(choices=self.engine.albums.names(), value=album.name),
        )

    def on_open_album(self, name, progress=gr.Progress()):
        """An album's photos now: pinned ones first (📌), then its saved search run again; removed ones never."""
        if not name:
            return message(PICK_ALBUM, keep=True)
        try:
            album = self.engine.albums.get(name)
            results = album_results(self.engine, album)
        except ALBUM_ERRORS as error:
            return message(f"⚠️ {html.escape(str(error))}", keep=True)
        marks = {image_id: "📌 " for image_id in album.pinned}
        extra = f" ({len(album.pinned)} pinned, {len(album.removed)} removed)" if album.pinned or album.removed else ""
        return self.show_list(results, f"album “{html.escape(album.name)}”{extra}", marks, progress)

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
            return message(PICK_ALBUM, keep=True)
        if image_id is None:
            return message("Click a photo in the results first, then pin or remove it.", keep=True)
        albums = self.engine.albums
        try:
            record = self.engine.record(image_id)
            if action == "unpin":
                albums.unpin(name, record.id)
            else:
                albums.pin(name, record.id, pinned=action == "pin")
        except ALBUM_ERRORS as error:
            return message(f"⚠️ {html.escape(str(error))}", keep=True)
        done = {"pin": "Pinned", "remove": "Removed", "unpin": "Undid the pin or removal of"}[action]
        answer = self.on_open_album(name, progress)
        return patch(answer, status=f"{done} {_shown(record.relpath or record.path)}. {output(answer, 'status')}")

    def on_make_zip(self, name):
        """The album's original files in a zip, served like originals (private folder, path guard)."""
        if not name:
            return gr.update(visible=False), PICK_ALBUM
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
        size = human_size(target.stat().st_size)
        return (
            gr.update(
                value=served, visible=True, label=f"Download “{name}” ({counted(len(results), 'photo')}, {size})"
            ),
            f"The zip of “{html.escape(name)}” is ready: {counted(len(results), 'photo')}, {size}.",
        )

    def on_groups(self, threshold, progress=gr.Progress()):
        """Groups of near-identical photos in the results area, the best of each marked ★ (indexer/similar.py)."""
        try:
            progress(0.1, desc="Comparing every photo with its neighbours…")
            used, groups = self.engine.similar_groups(threshold)
        except (ValueError, TypeError) as error:
            return message(f"⚠️ {html.escape(str(error))}", keep=True)
        if not groups:
            return message(
                f"No near-identical photos at similarity ≥ {used:g}. Lower the threshold to find looser matches."
            )
        results, marks = [], {}
        for number, group in enumerate(groups[:MAX_GROUPS_SHOWN], start=1):
            for member in group.members:
                try:
                    results.append(result_of(self.engine.record(member.image_id), member.score))
                except ValueError:  # removed since the groups were computed
                    continue
                marks[member.image_id] = f"group {number} · " + ("★ best · " if member is group.best else "")
        more = f" (showing the first {MAX_GROUPS_SHOWN})" if len(groups) > MAX_GROUPS_SHOWN else ""
        what = (
            f"{counted(len(groups), 'group')} of near-identical photos at similarity ≥ {used:g}{more}; ★ marks the best "
            "of each (most pixels, then sharpest)"
        )
        return self.show_list(results, what, marks, progress)
