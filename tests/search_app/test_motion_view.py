"""The viewer's video for a photo that moves, without a browser: exactly the MP4 inside a motion photo, and none
(the photo still opens, the reason logged) once the file no longer holds the video its XMP names, or once a Live
Photo's clip has become a link to a file outside the photo folders."""

from __future__ import annotations

import logging

from indexer import IndexStore
from search_app.engine import SearchEngine
from search_app.private import cache_home
from search_app.thumbnails import ThumbnailCache
from search_app.ui import SearchUI

from tests.indexer.test_live_photos import motion_photo, still
from tests.indexer.test_video import SCENES, build
from tests.indexer.videos import make_video

from .test_ui_messages import FILTERS, NoProgress


def test_the_player_gets_the_mp4_inside_a_motion_photo_and_nothing_once_it_is_gone(tmp_path, tiny_siglip, caplog):
    folder = tmp_path / "pixel"
    mp4 = make_video(tmp_path / "clip.mp4", SCENES[:1]).read_bytes()
    motion_photo(folder / "PXL.MP.jpg", mp4, container=True)
    build(folder, tmp_path / "index", tiny_siglip)
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_siglip)
    try:
        ui = SearchUI(engine, ThumbnailCache(tmp_path / "thumbs"))
        session = ui.on_search("a photo", None, *FILTERS, progress=NoProgress())[2]
        details, *_, player, frame, info = ui.open_result(session, 0)[:9]
        assert "Motion photo (its video is inside the JPEG)" in details
        assert player["visible"] and player["label"] == "Motion photo" and not frame["visible"]
        assert open(player["value"], "rb").read() == mp4  # the appended bytes, not the JPEG before them
        assert '"live": "this motion photo\'s video"' in info

        motion_photo(folder / "PXL.MP.jpg", mp4, offset=len(mp4) - 100)  # rewritten: its XMP now lies
        with caplog.at_level(logging.WARNING, logger="search_app.ui"):
            details, *_, player, frame, info = ui.open_result(session, 0)[:9]
        assert "Motion photo" in details and not player["visible"] and info == ""  # the photo opens, no player
        assert "cannot play the video of" in caplog.text and "no MP4 video where its XMP says" in caplog.text
    finally:
        engine.close()


def test_a_live_photo_clip_replaced_by_a_link_out_of_the_photo_folders_is_never_served(
    tmp_path, tiny_siglip, caplog, monkeypatch
):
    # this test is about what lands in the user's cache: a cache of its own, which no other run has written into
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    folder, outside = tmp_path / "phone", tmp_path / "elsewhere"
    still(folder / "IMG_0001.JPG")
    make_video(folder / "IMG_0001.MOV", SCENES[:1])
    build(folder, tmp_path / "index", tiny_siglip)
    outside.mkdir()
    secret = outside / "secret.mov"
    secret.write_bytes(b"not for the page")
    (folder / "IMG_0001.MOV").unlink()
    (folder / "IMG_0001.MOV").symlink_to(secret)  # swapped after indexing: the catalog still names IMG_0001.MOV
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_siglip)
    try:
        ui = SearchUI(engine, ThumbnailCache(tmp_path / "thumbs"))
        session = ui.on_search("a photo", None, *FILTERS, progress=NoProgress())[2]
        with caplog.at_level(logging.WARNING, logger="search_app.ui"):
            details, *_, player, frame, info = ui.open_result(session, 0)[:9]
        assert "Live Photo (clip <bdi>IMG_0001.MOV</bdi>)" in details and not player["visible"] and info == ""
        assert "cannot play the video of" in caplog.text and "outside the indexed folders" in caplog.text
        made = [path for folder in (tmp_path / "thumbs", cache_home()) for path in folder.rglob("*") if path.is_file()]
        assert not [path for path in made if path.read_bytes() == b"not for the page"]  # never copied to be served
    finally:
        engine.close()
