"""Albums where they cannot be written: read-only storage and a full disk (real mounts, as root), each answered
with one sentence on the page and through the API, the albums saved before still there."""

from __future__ import annotations

import hashlib
import os
import shutil

import gradio as gr
import pytest

from search_app.albums import Albums
from search_app.api import SearchAPI
from search_app.engine import SearchEngine
from search_app.thumbnails import ThumbnailCache
from search_app.ui import SearchUI
from search_app.ui_reply import output

from ..indexer.test_storage_guarantees_integrity import mount, mounts  # noqa: F401 - real mounts, needs root
from .test_ui_albums import values
from .test_ui_messages import NoProgress


def status(reply) -> str:
    return output(reply, "status")


@pytest.fixture
def copy(index_dir, tmp_path):
    """A copy of the library's index holding the album "Trip" (one photo pinned), its log folded into the file."""

    def make(folder):
        shutil.copytree(index_dir, folder)
        albums = Albums(folder / "catalog.sqlite")
        albums.save("Trip", {"text": "a beach"}, {"folder": "2023"})
        from indexer import IndexStore

        with IndexStore.open(folder) as store:
            albums.pin("Trip", int(store.ids()[0]))
        albums.close()
        assert not os.path.exists(folder / "catalog.sqlite-wal")
        return folder

    return make


def open_ui(folder, tiny_mllama, tmp_path):
    from indexer import IndexStore

    engine = SearchEngine(IndexStore.open(folder), tiny_mllama, reload_interval=0)
    return SearchUI(engine, ThumbnailCache(tmp_path / "thumbs"), page_size=10)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_albums_on_a_read_only_index_are_shown_and_a_change_is_one_sentence(copy, tiny_mllama, tmp_path, mounts):  # noqa: F811
    folder = copy(tmp_path / "index")
    view = tmp_path / "read-only"
    view.mkdir()
    mount("--bind", folder, view)
    mounts.append(view)
    mount("-o", "remount,bind,ro", view)
    before = digest(folder / "catalog.sqlite")
    ui = open_ui(view, tiny_mllama, tmp_path)
    try:
        choices, _threshold = ui.albums.on_page_ready()
        assert choices["choices"] == ["Trip"]  # read as they are
        opened = ui.albums.on_open_album("Trip", progress=NoProgress())
        assert "album “Trip” (1 pinned" in status(opened)
        shown = ui.on_search("a beach", None, *values(), progress=NoProgress())
        message, _ = ui.albums.on_save_album("Beach", output(shown, "session"), *values())
        assert message.startswith("⚠️") and "read-only storage" in message and "copy the index folder" in message
        for reply in (
            ui.albums.on_pin("Trip", ui.engine.store.ids()[1], progress=NoProgress()),
            ui.albums.on_remove("Trip", ui.engine.store.ids()[1], progress=NoProgress()),
        ):
            assert "read-only storage" in status(reply) and "Traceback" not in status(reply)
        api = SearchAPI(ui.engine)  # the HTTP API: the same albums, the same sentence
        assert [album["name"] for album in api.list_albums()["albums"]] == ["Trip"]
        with pytest.raises(gr.Error, match="read-only storage"):
            api.save_album("Beach", "a beach")
    finally:
        ui.engine.close()
    assert digest(folder / "catalog.sqlite") == before


def test_albums_on_a_full_disk_are_one_sentence_and_the_saved_ones_stay(copy, tiny_mllama, tmp_path, mounts):  # noqa: F811
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=2m", "none", disk)
    mounts.append(disk)
    folder = copy(disk / "index")
    ui = open_ui(folder, tiny_mllama, tmp_path)
    try:
        shown = ui.on_search("a beach", None, *values(), progress=NoProgress())
        session = output(shown, "session")
        filler = disk / "filler"
        stat = os.statvfs(disk)
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize))  # not one block left
        for n in range(500):  # the write-ahead log grows until a commit finds no room
            message, _ = ui.albums.on_save_album(f"Beach {n}", session, *values())
            if message.startswith("⚠️"):
                break
        assert "the disk is full" in message and "Free some space" in message, message
        assert "Trip" in ui.engine.albums.names() and ui.engine.albums.get("Trip").pinned  # intact
        reply = ui.albums.on_pin("Trip", ui.engine.store.ids()[1], progress=NoProgress())
        assert "the disk is full" in status(reply) or status(reply).startswith("Pinned")
        filler.unlink()
        message, _ = ui.albums.on_save_album("After", session, *values())
        assert message.startswith("Saved the album “After”")
    finally:
        ui.engine.close()


def test_an_index_opened_on_a_full_disk_shows_its_albums_and_refuses_changes(copy, tiny_mllama, tmp_path, mounts):  # noqa: F811
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=2m", "none", disk)
    mounts.append(disk)
    folder = copy(disk / "index")
    stat = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize))
    ui = open_ui(folder, tiny_mllama, tmp_path)  # SQLite cannot make its shared-memory file: opened read-only
    try:
        assert ui.albums.on_page_ready()[0]["choices"] == ["Trip"]
        shown = ui.on_search("a beach", None, *values(), progress=NoProgress())
        message, _ = ui.albums.on_save_album("Beach", output(shown, "session"), *values())
        assert message.startswith("⚠️") and "the disk is full" in message, message
    finally:
        ui.engine.close()
