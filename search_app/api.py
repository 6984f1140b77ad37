"""The HTTP API: three named Gradio endpoints returning plain JSON, for gradio_client and curl.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    client.predict(text="un perro en la playa", k=5, api_name="/search_text")
    client.predict(image=handle_file("cat.jpg"), api_name="/search_image")
    client.predict(image=handle_file("cat.jpg"), text="but at night", api_name="/search_composed")
"""
from __future__ import annotations

import gradio as gr

from .engine import MAX_QUERY_CHARS, SORTS, SearchEngine
from .uploads import check_upload


class SearchAPI:
    """JSON-in, JSON-out wrappers; every bad input becomes a gr.Error the client sees as a message."""

    def __init__(self, engine: SearchEngine, gpu=lambda fn: fn):
        self.engine = engine
        self.gpu = gpu

    def register(self, concurrency_limit: int | None) -> None:
        """Add the endpoints to the Blocks being built (hidden components: API only)."""
        with gr.Column(visible=False):
            text = gr.Textbox(label="text", max_length=MAX_QUERY_CHARS)  # the engine enforces it
            image = gr.File(label="image", type="filepath")
            k = gr.Number(label="k", value=20, precision=0)
            offset = gr.Number(label="offset", value=0, precision=0)
            folder = gr.Textbox(label="folder", value="")
            date_from = gr.Textbox(label="date_from", value="")
            date_to = gr.Textbox(label="date_to", value="")
            sort = gr.Dropdown(label="sort", choices=list(SORTS), value="score")
            collapse = gr.Checkbox(label="collapse_duplicates", value=True)
            output = gr.JSON(label="results")
            trigger = gr.Button()
        options = [k, offset, folder, date_from, date_to, sort, collapse]
        common = dict(outputs=output, concurrency_id="model", concurrency_limit=concurrency_limit, show_progress="hidden")
        trigger.click(self.gpu(self.search_text), [text, *options], api_name="search_text", **common)
        trigger.click(self.gpu(self.search_image), [image, *options], api_name="search_image", **common)
        trigger.click(self.gpu(self.search_composed), [image, text, *options], api_name="search_composed", **common)

    def search_text(self, text: str, k: int = 20, offset: int = 0, folder: str = "", date_from: str = "",
                    date_to: str = "", sort: str = "score", collapse_duplicates: bool = True) -> dict:
        """Photos matching a text in any language."""
        return self._run(lambda options: self.engine.search_text(text, **options),
                         k, offset, folder, date_from, date_to, sort, collapse_duplicates)

    def search_image(self, image: str, k: int = 20, offset: int = 0, folder: str = "", date_from: str = "",
                     date_to: str = "", sort: str = "score", collapse_duplicates: bool = True) -> dict:
        """Photos that look like the uploaded image."""
        return self._run(lambda options: self.engine.search_image(check_upload(image), **options),
                         k, offset, folder, date_from, date_to, sort, collapse_duplicates)

    def search_composed(self, image: str, text: str, k: int = 20, offset: int = 0, folder: str = "",
                        date_from: str = "", date_to: str = "", sort: str = "score",
                        collapse_duplicates: bool = True) -> dict:
        """Photos like the uploaded image, changed as the text says."""
        return self._run(lambda options: self.engine.search_composed(check_upload(image), text, **options),
                         k, offset, folder, date_from, date_to, sort, collapse_duplicates)

    def _run(self, search, k, offset, folder, date_from, date_to, sort, collapse_duplicates) -> dict:
        options = {
            "k": _whole(k, 20), "offset": _whole(offset, 0), "folder": folder or None,
            "date_from": date_from or None, "date_to": date_to or None, "sort": sort or "score",
            "collapse_duplicates": collapse_duplicates is not False,
        }
        try:
            page = search(options)
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from None
        payload = page.to_json()
        payload["total_indexed"] = self.engine.stats()["images"]
        return payload


def _whole(value, default: int):
    """Gradio Numbers arrive as floats or None; the engine validates the range."""
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
