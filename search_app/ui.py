"""The Gradio Blocks page: search box, image upload, filters, gallery, "more like this", "load more"."""
from __future__ import annotations

import html
import logging
from dataclasses import replace

import gradio as gr

from indexer.files import printable

from .api import SearchAPI
from .engine import MAX_QUERY_CHARS, SearchEngine, SearchOptions
from .thumbnails import ThumbnailCache
from .uploads import check_upload

log = logging.getLogger(__name__)

PAGE_SIZE = 24
PLACEHOLDER = "a cat on a sofa · кошка на диване · 沙发上的猫 · قطة على الأريكة · un perro en la playa"
SORT_LABELS = {"Best match": "score", "Newest first": "date", "Oldest first": "date_asc"}
CSS = """
#footer { font-size: 0.85em; opacity: 0.8; }
#status p { margin: 0.2em 0; }
"""


def upload_image(**kwargs) -> gr.Image:
    """gr.Image whose unreadable uploads become a human message instead of a PIL traceback.

    Wraps the instance's preprocess (a subclass would make Gradio write a .pyi file
    next to this module at import time).
    """
    component = gr.Image(**kwargs)
    original = component.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except Exception:  # noqa: BLE001 - PIL raises many types for bad files
            name = getattr(payload, "orig_name", None) or "the file"
            raise gr.Error(f"{name} is not an image this app can read (JPEG, PNG, WebP, HEIC, ...).",
                           print_exception=False) from None

    component.preprocess = preprocess
    return component


class SearchUI:
    """Builds the page; holds no per-user data (that lives in gr.State)."""

    def __init__(self, engine: SearchEngine, thumbnails: ThumbnailCache | None = None, concurrency_limit: int = 1,
                 gpu=lambda fn: fn, page_size: int = PAGE_SIZE):
        self.engine = engine
        self.page_size = page_size
        self.thumbnails = thumbnails or ThumbnailCache()
        self.concurrency_limit = concurrency_limit
        self.gpu = gpu

    def build(self) -> gr.Blocks:
        with gr.Blocks(title="Photo search · mmE5", analytics_enabled=False) as demo:
            gr.Markdown("## Photo search\nDescribe a photo in any language, upload a photo to find similar ones, "
                        "or do both to change it (“this, but at night”).")
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    query = gr.Textbox(label="Describe the photo", placeholder=PLACEHOLDER, elem_id="query",
                                       max_lines=1, max_length=MAX_QUERY_CHARS)
                    with gr.Row():
                        search = gr.Button("Search", variant="primary", elem_id="search")
                        clear = gr.ClearButton([query], value="Clear")
                    with gr.Accordion("Filters and sorting", open=False):
                        with gr.Row():
                            folder = gr.Textbox(label="Folder", placeholder="e.g. space  or  /home/me/Photos/2024",
                                                elem_id="folder")
                            date_from = gr.Textbox(label="Taken from", placeholder="YYYY-MM-DD", elem_id="date_from")
                            date_to = gr.Textbox(label="Taken until", placeholder="YYYY-MM-DD", elem_id="date_to")
                        with gr.Row():
                            sort = gr.Radio(list(SORT_LABELS), value="Best match", label="Sort", elem_id="sort")
                            collapse = gr.Checkbox(value=True, label="Hide identical copies", elem_id="collapse")
                with gr.Column(scale=1):
                    upload = upload_image(label="…or search with a photo", type="filepath", image_mode=None,
                                         sources=["upload", "clipboard"], height=190, elem_id="upload")
            clear.add([upload])
            status = gr.Markdown(self._welcome, elem_id="status")
            gallery = gr.Gallery(label="Results", columns=6, height="auto", object_fit="cover", elem_id="results",
                                 allow_preview=True, preview=False, buttons=["download", "fullscreen"], interactive=False)
            with gr.Row():
                similar = gr.Button("More like this", visible=False, elem_id="more_like_this")
                more = gr.Button("Load more", visible=False, elem_id="load_more")
            details = gr.Markdown(elem_id="details")
            gr.Markdown(self._footer, elem_id="footer")  # a callable: recounted on each page load, after a build
            session = gr.State(None)  # {"vector", "options", "next_offset", "results", "generation"}
            selected = gr.State(None)  # image_id of the clicked result

            filters = [folder, date_from, date_to, sort, collapse]
            outputs = [gallery, status, session, more, similar, details, selected]
            queued = dict(concurrency_id="model", concurrency_limit=self.concurrency_limit)
            for trigger in (search.click, query.submit):
                trigger(self.gpu(self.on_search), [query, upload, *filters], outputs, api_visibility="private",
                        **queued)
            more.click(self.on_more, [session, gallery], outputs, api_visibility="private", **queued)
            similar.click(self.gpu(self.on_similar), [selected, *filters], outputs, api_visibility="private", **queued)
            gallery.select(self.on_select, [session], [details, similar, selected], api_visibility="private",
                           queue=False)
            SearchAPI(self.engine, gpu=self.gpu).register(self.concurrency_limit)
        return demo

    # -- handlers ----------------------------------------------------------------------------
    def on_search(self, text, image, folder, date_from, date_to, sort, collapse, progress=gr.Progress()):
        """New query from the box and/or the upload."""
        text = (text or "").strip()
        if not text and not image:
            return self._message("Type a description or upload a photo, then press **Search**.")
        try:
            options = self._options(folder, date_from, date_to, sort, collapse)
            if image:
                check_upload(image)
            progress(0.1, desc="Understanding the query…")
            vector = self.engine.encode_query(text=text or None, image=image or None)
        except ValueError as error:
            return self._message(f"⚠️ {html.escape(str(error))}")
        what = f"“{html.escape(text)}”" if text else "your photo"
        if text and image:
            what = f"your photo + “{html.escape(text)}”"
        return self._first_page(vector, options, what, progress)

    def on_similar(self, image_id, folder, date_from, date_to, sort, collapse, progress=gr.Progress()):
        """"More like this" for the clicked result (by id: the client never names a path)."""
        try:
            options = self._options(folder, date_from, date_to, sort, collapse)
            record = self.engine.record(image_id)
            path = self.engine.servable_path(record.path)
            progress(0.1, desc="Looking at the photo…")
            vector = self.engine.encode_query(image=str(path))
        except (ValueError, PermissionError) as error:
            return self._message(f"⚠️ {_shown(str(error))}")
        return self._first_page(vector, options, f"photos like {_shown(record.relpath or record.path)}", progress)

    def on_more(self, session, gallery_items, progress=gr.Progress()):
        """Next page of the same query; the stored query vector means no model work."""
        if not session or session.get("next_offset") is None:
            return self._message("No more results.", keep=True)
        options = replace(session["options"], offset=session["next_offset"])
        try:
            page = self.engine.rank(session["vector"], options, generation=session.get("generation"))
        except ValueError as error:  # IndexChangedError: a build ran since the first page
            return self._message(f"⚠️ {html.escape(str(error))}", keep=True)
        items, missing = self._gallery_items(page.results, progress)
        results = session["results"] + [result for result, _ in items]
        session = {**session, "next_offset": page.next_offset, "results": results}
        existing = [(item[0], item[1]) for item in (gallery_items or [])]
        note = f"Showing {len(results)} photos for {session['what']}." + self._missing_note(missing)
        return (existing + [entry for _, entry in items], note, session,
                gr.update(visible=page.next_offset is not None), gr.update(), gr.update(), gr.update())

    def on_select(self, session, event: gr.SelectData):
        """Show the clicked photo's facts and offer "more like this"."""
        if not session or event.index is None or event.index >= len(session["results"]):
            return "", gr.update(visible=False), None
        result = session["results"][event.index]
        taken = result.taken_at.strftime("%Y-%m-%d %H:%M") if result.taken_at else "unknown"
        lines = [f"**{_shown(result.path)}**", f"score {result.score:.4f} · {_human_size(result.size)} · "
                 f"{result.width or '?'}×{result.height or '?'} px · taken {taken}"]
        if result.also_at:
            lines.append("identical copies: " + ", ".join(_shown(path) for path in result.also_at))
        return "\n\n".join(lines), gr.update(visible=True), result.image_id

    # -- helpers ------------------------------------------------------------------------------
    def _first_page(self, vector, options, what, progress):
        try:
            if self.engine.stats()["images"] == 0:
                return self._message("The index has no photos yet. Add some with "
                                     "`python -m indexer build --dir PHOTOS --index INDEX`, then search again.")
            page = self.engine.rank(vector, options)
        except ValueError as error:  # IndexMismatchError: the index was rebuilt with another model meanwhile
            return self._message(f"⚠️ {html.escape(str(error))}")
        if not page.results:
            return self._message(f"No photos match {what} with these filters. Try a wider date range or another "
                                 "folder, or clear the filters.")
        items, missing = self._gallery_items(page.results, progress)
        results = [result for result, _ in items]
        session = {"vector": vector, "options": options, "next_offset": page.next_offset, "results": results,
                   "what": what, "generation": page.generation}
        more = "" if page.next_offset is None else " **Load more** for further results."
        status = f"Showing {len(results)} photos for {what}.{more}" + self._missing_note(missing)
        return (gr.Gallery(value=[entry for _, entry in items], selected_index=None), status, session, gr.update(visible=page.next_offset is not None),
                gr.update(visible=False), "", None)

    def _gallery_items(self, results, progress):
        """(result, (thumbnail, caption)) pairs; photos deleted since indexing are counted, not shown."""
        items, missing = [], 0
        for result in progress.tqdm(results, desc="Preparing previews…"):
            try:
                thumbnail = self.thumbnails.get(self.engine.servable_path(result.path), result.content_hash)
            except (ValueError, OSError) as error:
                log.warning("cannot show %s: %s", result.path, error)
                missing += 1
                continue
            items.append((result, (str(thumbnail), f"{printable(result.relpath or result.path)} · {result.score:.3f}")))
        return items, missing

    @staticmethod
    def _missing_note(missing: int) -> str:
        if not missing:
            return ""
        return (f" ({missing} matching photo(s) could not be shown: moved or deleted since indexing; "
                "run the indexer again to refresh.)")

    def _options(self, folder, date_from, date_to, sort, collapse) -> SearchOptions:
        return SearchOptions.parse(k=self.page_size, offset=0, folder=folder or None, date_from=date_from or None,
                                   date_to=date_to or None, sort=SORT_LABELS.get(sort, "score"),
                                   collapse_duplicates=bool(collapse))

    @staticmethod
    def _message(text: str, keep: bool = False):
        """A status line; the gallery is cleared unless ``keep``."""
        if keep:
            return gr.update(), text, gr.update(), gr.update(visible=False), gr.update(), gr.update(), gr.update()
        return [], text, None, gr.update(visible=False), gr.update(visible=False), "", None

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
                f"({stats['dim']}-d) · [mmE5](https://arxiv.org/abs/2502.08468)")


def _shown(text: str) -> str:
    """A path (or a message naming one) for the page: undecodable file-name bytes escaped, HTML escaped."""
    return html.escape(printable(text))


def _human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
