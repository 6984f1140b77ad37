"""The page's album, similar-group and place-chip handlers (no browser; the browser tests drive the page)."""

from __future__ import annotations

import os
import zipfile

import pytest

from search_app.engine import SearchEngine
from search_app.private import gradio_folder
from search_app.thumbnails import ThumbnailCache
from search_app.ui import OPTION_NAMES, SearchUI
from search_app.ui_reply import output

from .conftest import make_photo
from .test_filters import make
from .test_ui_messages import NoProgress

DEFAULT_VALUES = ("", "", "", "Best match", True)


def out(reply, name):
    return output(reply, name)


def captions(reply):
    return [item["caption"] for item in out(reply, "gallery").value]


@pytest.fixture(scope="module")
def ui(tmp_path_factory, tiny_mllama):
    from indexer import IndexStore, build_index

    work = tmp_path_factory.mktemp("ui-albums")
    root = work / "photos"
    for n, relpath in enumerate(["trip/a.jpg", "trip/b.jpg", "home/c.jpg"]):
        make_photo(root / relpath, n, None)
    make(root / "lisbon/d.jpg", 5, None, (38.7167, -9.1333))
    build_index([root], work / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(work / "index"), tiny_mllama, reload_interval=0)
    yield SearchUI(engine, ThumbnailCache(work / "thumbs"), page_size=10)
    engine.close()


def values(**changes):
    raw = dict(zip(OPTION_NAMES, DEFAULT_VALUES))
    raw.update(changes)
    return [raw.get(name) for name in OPTION_NAMES]


def names(reply):
    return sorted(result.relpath for result in out(reply, "session").results)


def test_save_open_pin_remove_and_zip_an_album(ui, tmp_path, monkeypatch):
    # In-process: keeps the zip (cache_home()/albums) out of the developer's own ~/.cache. The default place, served
    # by a real app, is tested in tests/userworld/test_browser_flows.py.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert "Search first" in ui.albums.on_save_album("Trip", None, *values())[0]
    shown = ui.on_search("a trip", None, *values(folder="trip"), progress=NoProgress())
    status, choices = ui.albums.on_save_album("Trip", out(shown, "session"), *values(folder="trip"))
    assert "Saved the album “Trip”" in status and choices["choices"] == ["Trip"]
    assert ui.engine.albums.get("Trip").options == {"folder": "trip"}
    opened = ui.albums.on_open_album("Trip", progress=NoProgress())
    assert names(opened) == ["trip/a.jpg", "trip/b.jpg"] and "album “Trip”" in out(opened, "status")
    records = {r.relpath: r.id for r in ui.engine.store.records(ui.engine.store.ids())}
    pinned = ui.albums.on_pin("Trip", records["home/c.jpg"], progress=NoProgress())
    assert captions(pinned)[0] == "📌 c.jpg" and out(pinned, "status").startswith("Pinned home/c.jpg")
    removed = ui.albums.on_remove("Trip", records["trip/a.jpg"], progress=NoProgress())
    assert names(removed) == ["home/c.jpg", "trip/b.jpg"] and "1 pinned, 1 removed" in out(removed, "status")
    button, status = ui.albums.on_make_zip("Trip")
    with zipfile.ZipFile(button["value"]) as archive:
        assert sorted(archive.namelist()) == ["b.jpg", "c.jpg"]
    assert (tmp_path / "mme5-search" / "albums" / "Trip.zip").is_file() and "2 photos" in status  # the private zip,
    assert os.path.samefile(button["value"], tmp_path / "mme5-search" / "albums" / "Trip.zip")  # handed to Gradio
    assert button["value"].startswith(f"{gradio_folder()}/")  # inside its own folder (search_app.private)
    assert names(ui.albums.on_unpin("Trip", records["trip/a.jpg"], progress=NoProgress())) == [
        "home/c.jpg",
        "trip/a.jpg",
        "trip/b.jpg",
    ]


def test_album_dead_ends_say_what_to_do(ui):
    assert "Choose an album" in out(ui.albums.on_open_album(None, progress=NoProgress()), "status")
    assert "no album called “Nope”" in out(ui.albums.on_open_album("Nope", progress=NoProgress()), "status")
    assert "Click a photo" in out(ui.albums.on_pin("Trip", None, progress=NoProgress()), "status")
    assert "Choose an album" in ui.albums.on_make_zip("")[1]


def test_similar_groups_mark_the_best_photo(ui):
    reply = ui.albums.on_groups(
        None, progress=NoProgress()
    )  # the model's default (0.95): the tiny model joins everything
    assert "1 group of near-identical photos at similarity ≥ 0.95" in out(reply, "status")
    assert sum("★ best" in caption for caption in captions(reply)) == 1 and len(captions(reply)) == 4
    assert "No near-identical photos" in out(ui.albums.on_groups(1.0, progress=NoProgress()), "status")
    assert "threshold must be from 0.8 to 1, got 2" in out(ui.albums.on_groups(2, progress=NoProgress()), "status")
    assert "threshold must be from 0.8 to 1, got 0.1" in out(ui.albums.on_groups(0.1, progress=NoProgress()), "status")


def test_a_typed_place_shows_a_chip_and_removing_it_embeds_the_words(ui):
    reply = ui.on_search("praia em Lisboa", None, *values(), progress=NoProgress())
    chip = out(reply, "place_chip")
    assert chip["visible"] and "📍 Lisbon (from “em Lisboa”)" in chip["value"] and names(reply) == ["lisbon/d.jpg"]
    # a filter change keeps the typed place (as it keeps typed dates)
    again = ui.on_options_changed(out(reply, "session"), *values(sort="Newest first"), progress=NoProgress())
    assert names(again) == ["lisbon/d.jpg"]
    removed = ui.on_place_chip_removed("praia em Lisboa", None, *values(), progress=NoProgress())
    assert out(removed, "place_chip")["visible"] is False and out(removed, "places") is False
    assert len(captions(removed)) == 4
