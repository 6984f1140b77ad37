"""The UI's handlers answer every dead end with a sentence (checked without a browser; the browser test covers the page)."""

from __future__ import annotations

import re

import gradio as gr
import pytest

from search_app.engine import SearchEngine
from search_app.thumbnails import ThumbnailCache
from search_app.ui import SearchUI
from search_app.ui_reply import OUTPUTS


class NoProgress:
    """gr.Progress stand-in for calling handlers outside a Gradio request."""

    def __call__(self, *args, **kwargs):
        pass

    def tqdm(self, iterable, **kwargs):
        return iterable


FILTERS = ("", "", "", "Best match", True)


@pytest.fixture(scope="module")
def ui(engine, tmp_path_factory):
    return SearchUI(engine, ThumbnailCache(tmp_path_factory.mktemp("thumbs")), page_size=4)


def status_of(outputs):
    return outputs[1]


def test_empty_query_asks_for_input(ui):
    assert "Type a description or upload a photo" in status_of(
        ui.on_search("  ", None, *FILTERS, progress=NoProgress())
    )


def test_no_match_suggests_loosening_filters(ui):
    outputs = ui.on_search("x", None, "no/such/folder", "", "", "Best match", True, progress=NoProgress())
    assert outputs[0] == [] and "No photos match" in status_of(outputs) and "filters" in status_of(outputs)


def test_unreadable_upload_is_named(ui, tmp_path):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"%PDF-1.4 not a png")
    assert "scan.png is not an image" in status_of(ui.on_search("", str(bad), *FILTERS, progress=NoProgress()))


def test_results_are_previews_with_path_and_score(ui):
    from PIL import Image

    outputs = ui.on_search("ein Hund", None, *FILTERS, progress=NoProgress())
    session = outputs[2]
    assert len(session.results) == 4 and session.next_offset == 4 and "Load more" in status_of(outputs)
    for result in session.results:
        preview = ui.thumbnails.get(result.path, result.content_hash)
        with Image.open(preview) as image:
            assert image.format == "JPEG" and max(image.size) <= ui.thumbnails.size


def test_empty_index_says_how_to_add_photos(tiny_mllama, tmp_path):
    from indexer import IndexStore, build_index

    (tmp_path / "empty").mkdir()
    build_index([tmp_path / "empty"], tmp_path / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_mllama)
    try:
        ui = SearchUI(engine, ThumbnailCache(tmp_path / "thumbs"))
        # the exact command for this index (only the photo folder is the user's to fill in)
        assert f"python -m indexer build --dir PHOTOS --index {tmp_path / 'index'}" in ui._welcome()
        # nothing to show: the page stays as it is (the status line says how to index a folder)
        assert all(value == gr.update() for value in ui.on_search_if_query("", None, *FILTERS, progress=NoProgress()))
        assert "no photos yet" in status_of(ui.on_search("a cat", None, *FILTERS, progress=NoProgress()))
    finally:
        engine.close()


def test_the_first_screen_shows_the_newest_photos_once_each(ui, engine, library):
    """Before any search the page shows the newest photos: by capture date, else by when they were added (so a
    photo without a date, added today, counts as new); identical copies once; in a gallery marked ``newest``."""
    newest = engine.newest(50)
    names = [result.relpath for result in newest]
    assert len(names) == len(set(result.content_hash for result in newest)) == 11  # red and its copy: once
    dated = [result for result in newest if result.taken_at is not None]
    assert [result.taken_at for result in dated] == sorted((result.taken_at for result in dated), reverse=True)
    assert dated[0].relpath == "20241/cyan.jpg"
    assert len(engine.newest(3)) == 3
    outputs = ui.on_search_if_query("", None, *FILTERS, progress=NoProgress())
    gallery = outputs[0]
    assert len(gallery.value) == 4 and "newest" in gallery.elem_classes  # page size 4
    assert "12 photos indexed" in status_of(outputs) and "newest" in status_of(outputs)
    assert [result.image_id for result in outputs[2].results] == [result.image_id for result in newest[:4]]


def test_a_rerank_that_finishes_after_clear_paints_nothing(ui):
    """Clicking Clear blurs a filter box; the re-rank that blur queued must not paint old results over the cleared
    page (it did, in CI: the status said "Showing …" right after Clear)."""
    from types import SimpleNamespace

    import gradio as gr

    tab, other = SimpleNamespace(session_hash="tab"), SimpleNamespace(session_hash="other")
    session = ui._newest(ui.on_search, True)(tab, "ein Hund", None, *FILTERS)[2]
    assert session.results

    def rerank_while_user_clears(*args):
        reply = ui.on_options_changed(*args, progress=NoProgress())
        ui._newest(ui.on_clear, True)(tab)  # Clear lands while the re-rank is still running
        ui._newest(ui.on_search, True)(other, "x", None, *FILTERS)  # another tab's actions change nothing here
        return reply

    stale = ui._newest(rerank_while_user_clears, False)(tab, session, "2023", "", "", "Newest first", True)
    assert all(item == gr.update() for item in stale)
    # the tab shows the newest photos now: a re-rank of the query Clear removed paints nothing
    assert all(item == gr.update() for item in ui._newest(ui.on_options_changed, False)(tab, session, *CHANGED))
    session = ui._newest(ui.on_search, True)(tab, "ein Hund", None, *FILTERS)[2]
    fresh = ui._newest(ui.on_options_changed, False)(tab, session, *CHANGED)
    assert fresh[0] != gr.update() and "Showing" in status_of(fresh)  # with nothing newer, a re-rank paints
    # an action that keeps the results (an empty query gets a sentence) leaves them open to re-ranking
    kept = ui._newest(ui.on_search, True)(tab, "  ", None, *FILTERS)
    assert "Type a description" in status_of(kept)
    again = ui._newest(ui.on_options_changed, False)(tab, fresh[2], "", "", "", "Best match", True)
    assert again[0] != gr.update() and "Showing" in status_of(again)


CHANGED = ("2023", "", "", "Newest first", True)  # the filter boxes' values after the user changed them


@pytest.mark.parametrize("clear_ends", ["before the re-rank ends", "after the re-rank ends"])
def test_a_rerank_that_read_the_page_before_clear_stored_its_reply_paints_nothing(ui, clear_ends):
    """The race CI met: Clear starts first (it skips the queue), the re-rank its click queued begins before Clear's
    reply is stored, so it reads the old query; whichever ends last, the page keeps Clear's newest photos."""
    import threading
    from types import SimpleNamespace

    tab = SimpleNamespace(session_hash="race " + clear_ends)
    session = ui._newest(ui.on_search, True)(tab, "ein Hund", None, *FILTERS)[2]
    clear_started, rerank_begun, rerank_done = threading.Event(), threading.Event(), threading.Event()
    cleared = []

    def clear():
        clear_started.set()
        assert rerank_begun.wait(30)
        if clear_ends == "after the re-rank ends":
            assert rerank_done.wait(30)
        return ui.on_clear()

    worker = threading.Thread(target=lambda: cleared.append(ui._newest(clear, True)(tab)))
    worker.start()
    assert clear_started.wait(30)

    def rerank(*args):
        rerank_begun.set()
        if clear_ends == "before the re-rank ends":
            worker.join(30)  # Clear's reply is out before the re-rank's
        return ui.on_options_changed(*args, progress=NoProgress())

    stale = ui._newest(rerank, False)(tab, session, *CHANGED)
    rerank_done.set()
    worker.join(30)
    assert all(item == gr.update() for item in stale)
    answer = cleared[0]
    assert "newest" in answer[-len(OUTPUTS) + OUTPUTS.index("gallery")].elem_classes  # Clear's reply is painted


def test_clear_brings_the_first_screen_back_in_one_step(ui):
    """Clear empties the form and shows the newest photos again (not an empty box) in the same reply, so no later
    step can paint them over a search typed meanwhile; the upload is emptied with the rest of the form."""
    from search_app.ui_reply import OUTPUTS, output

    answer = ui.on_clear()[-len(OUTPUTS) :]
    gallery = output(answer, "gallery")
    assert "newest" in gallery.elem_classes and len(gallery.value) == 4 and output(answer, "session").results
    assert "The newest are below" in output(answer, "status") and output(answer, "upload") is None
    assert output(answer, "query") == "" and output(answer, "selected") is None


def test_only_the_random_weight_model_is_announced_as_meaningless(engine, monkeypatch):
    from search_app.ui import SMOKE_NOTICE

    def shown(ui) -> str:
        return " ".join(str(getattr(block, "value", "")) for block in ui.build().blocks.values())

    assert SMOKE_NOTICE not in shown(SearchUI(engine))
    monkeypatch.setattr(engine, "random_weights", True)  # what `python app.py --tiny` sets
    assert SMOKE_NOTICE in shown(SearchUI(engine))
    assert "This demo model has random weights: results are random" in SMOKE_NOTICE  # said plainly, first


def test_replies_name_outputs_once_and_refuse_unknown_names(ui):
    """One list of outputs (ui_reply.OUTPUTS) for the page and the handlers; a wrong name is an error even under -O."""
    from search_app.ui_reply import OUTPUTS, output, patch, reply

    answer = reply(status="hello")
    assert len(answer) == len(OUTPUTS) and output(answer, "status") == "hello"
    assert output(patch(answer, details="x"), "details") == "x" and output(answer, "details") != "x"
    with pytest.raises(KeyError, match="not outputs of the page: stauts"):
        reply(stauts="typo")
    with pytest.raises(KeyError, match="stauts"):
        patch(answer, stauts="typo")


def test_counts_read_as_words(ui):
    outputs = ui.on_search("x", None, "2023/city", "", "", "Best match", True, progress=NoProgress())
    assert "Showing 1 photo for “<bdi>x</bdi>”." in status_of(outputs)
    assert ui._missing_note(1).startswith(" (1 matching photo could not") and "2 matching photos" in ui._missing_note(2)


def test_a_query_is_isolated_and_escaped_in_the_status_line(ui):
    """A hostile query is text, and an Arabic one keeps its own direction inside the English sentence (<bdi>)."""
    outputs = ui.on_search("<img src=x onerror=alert(1)> قطة", None, *FILTERS, progress=NoProgress())
    assert "“<bdi>&lt;img src=x onerror=alert(1)&gt; قطة</bdi>”" in status_of(outputs)


def test_when_strong_matches_only_hides_everything_the_advice_says_so(ui, monkeypatch):
    from search_app.results import SearchPage

    def ranked(vector, options, generation=None, text=None):
        if options.strong_only:
            return SearchPage(results=[], offset=0, next_offset=None, strong=0, hidden=7)
        return SearchPage(results=[], offset=0, next_offset=None)

    monkeypatch.setattr(ui.engine, "rank", ranked)
    from search_app.ui import OPTION_NAMES

    values = dict(zip(OPTION_NAMES, FILTERS), strong_only=True)
    strong = status_of(ui.on_search("x", None, *[values.get(name) for name in OPTION_NAMES], progress=NoProgress()))
    assert "No strong matches for “<bdi>x</bdi>”: “Strong matches only” hides 7 weaker matches" in strong
    assert "Show all" in strong and "filters" not in strong
    plain = status_of(ui.on_search("x", None, *FILTERS, progress=NoProgress()))
    assert "No photos match" in plain and "clear the filters" in plain


def test_a_video_caption_names_its_moment_and_a_text_hit_ends_with_its_snippet():
    """The merge of the photo-app captions with main's videos and text hits: one caption_of for all three."""
    from datetime import datetime
    from types import SimpleNamespace

    from search_app.results import SearchResult
    from search_app.ui import caption_of

    video = SearchResult(
        path="/p/trip/beach.mp4",
        relpath="trip/beach.mp4",
        score=0.61,
        size=1,
        taken_at=datetime(2024, 3, 2, 9, 0),
        image_id=5,
        content_hash="",
        media_type="video",
        timestamp_s=9.2,
        duration_s=30.0,
        moments=((9.2, 0.61), (21.0, 0.5), (3.0, 0.4)),
        text_match=SimpleNamespace(snippet="beach bar", marks=((0, 5),), source="ocr"),
    )
    assert caption_of(video) == "2 Mar 2024 · beach.mp4 · ▶ 0:09 · +2 more moments · “beach bar”"
    assert caption_of(video, score=True) == "2 Mar 2024 · beach.mp4 · ▶ 0:09 · +2 more moments · 0.610 · “beach bar”"


def test_captions_are_dates_and_names_and_the_score_is_on_demand(ui):
    from datetime import datetime

    from search_app.results import SearchResult
    from search_app.ui import OPTION_NAMES, caption_of

    dated = SearchResult(
        path="/p/2023/beach/red.jpg",
        relpath="2023/beach/red.jpg",
        score=0.8123,
        size=1,
        taken_at=datetime(2023, 7, 14, 10, 0),
        image_id=1,
        content_hash="",
    )
    assert (
        caption_of(dated) == "14 Jul 2023 · red.jpg"
        and caption_of(dated, score=True) == "14 Jul 2023 · red.jpg · 0.812"
    )
    undated = SearchResult(
        path="/p/misc/gray.jpg", relpath="misc/gray.jpg", score=0.5, size=1, taken_at=None, image_id=2, content_hash=""
    )
    assert caption_of(undated) == "gray.jpg"
    shown = ui.on_search("ein Hund", None, *FILTERS, progress=NoProgress())
    session = shown[2]
    values = dict(zip(OPTION_NAMES, FILTERS))
    values["show_scores"] = True
    again = ui.on_options_changed(session, *[values.get(name) for name in OPTION_NAMES], progress=NoProgress())
    captions = [item["caption"] for item in again[0].value]
    assert len(captions) == len(session.results) and all(re.search(r" · -?\d\.\d{3}$", c) for c in captions)
    assert again[2].scores and [r.image_id for r in again[2].results] == [r.image_id for r in session.results]
