"""Photos that move in the served app's viewer: a Live Photo's clip or a motion photo's video plays under the photo;
a plain photo opened next shows no player."""

from __future__ import annotations

import json

import pytest

from search_app.video_view import HEVC_TYPE

from tests.indexer.test_live_photos import motion_photo, still
from tests.indexer.videos import make_video

from .conftest import make_photo, running_app

pytestmark = [pytest.mark.server, pytest.mark.browser]


@pytest.fixture(scope="module")
def live_app(tmp_path_factory, tiny_siglip_dir):
    work = tmp_path_factory.mktemp("live-app")
    media = work / "media"
    still(media / "phone" / "IMG_0001.JPG", seed=5)
    make_video(media / "phone" / "IMG_0001.MOV", ((5, 1.5), (6, 1.5)))  # H.264 in QuickTime, as older iPhones wrote
    still(media / "phone" / "IMG_0002.JPG", seed=7)
    make_video(media / "phone" / "IMG_0002.MOV", ((7, 1.5), (8, 1.5)), codec="libx265")  # HEVC, as iPhones write now
    make_photo(media / "phone" / "plain.jpg", 3, None)
    pixel = make_video(work / "clip.mp4", ((9, 2.0), (10, 2.0)))  # H.264 MP4, as a Pixel appends to its JPEG
    motion_photo(media / "pixel" / "PXL_0001.MP.jpg", pixel.read_bytes(), container=True)
    hevc = make_video(work / "hevc.mp4", ((11, 1.5),), codec="libx265")  # as Samsung phones write it
    motion_photo(media / "pixel" / "PXL_0002.MP.jpg", hevc.read_bytes())
    args = ["--index", str(work / "index"), "--model", str(tiny_siglip_dir), "--photos", str(media)]
    with running_app(work, args) as url:
        yield url


@pytest.fixture(scope="module")
def page(desktop_page):
    return desktop_page


def open_result(page, name: str) -> None:
    page.locator("#results .thumbnail-item", has_text=name).first.click()
    page.wait_for_function(
        f"document.querySelector('#details') && document.querySelector('#details').innerText.includes({name!r})"
    )


def test_a_live_photo_shows_the_photo_and_plays_its_clip_and_a_plain_photo_has_no_player(page, live_app):
    page.goto(f"{live_app}?q=a+photo")
    page.wait_for_selector("#results img")
    assert page.locator("#results .thumbnail-item").count() == 5  # a clip is part of its photo, no result of its own
    open_result(page, "IMG_0001.JPG")
    assert "Live Photo (clip IMG_0001.MOV)" in page.inner_text("#details")
    page.wait_for_selector("#viewer_image img", state="visible")  # the photo itself, not a frame of the clip
    page.wait_for_function(
        "document.querySelector('#player video') && document.querySelector('#player video').readyState >= 1"
    )
    duration = page.evaluate("document.querySelector('#player video').duration")
    assert duration == pytest.approx(3.0, abs=0.5)
    page.evaluate("document.querySelector('#player video').muted = true")
    page.evaluate("document.querySelector('#player video').play()")
    page.wait_for_function("document.querySelector('#player video').currentTime > 0.5")  # it really plays
    assert page.inner_text("#player_note").strip() == ""
    assert not page.locator("#frame").is_visible()

    page.keyboard.press("Escape")
    open_result(page, "plain.jpg")
    page.wait_for_selector("#viewer_image img", state="visible")
    page.wait_for_selector("#player", state="hidden")
    assert "Live Photo" not in page.inner_text("#details")


def test_a_live_photo_whose_clip_this_browser_cannot_play_keeps_the_photo_and_says_why(page, live_app):
    if page.evaluate(f"document.createElement('video').canPlayType({json.dumps(HEVC_TYPE)})"):
        pytest.fail("this Chromium plays HEVC: the fallback cannot be observed here")
    page.goto(f"{live_app}?q=a+photo")
    page.wait_for_selector("#results img")
    open_result(page, "IMG_0002.JPG")
    page.wait_for_function("document.querySelector('#player_note').innerText.includes('cannot play')")
    assert "cannot play this Live Photo's clip (HEVC); the photo is shown" in page.inner_text("#player_note")
    page.wait_for_selector("#viewer_image img", state="visible")
    assert not page.locator("#player").is_visible() and not page.locator("#frame").is_visible()
    page.keyboard.press("Escape")
    open_result(page, "plain.jpg")  # the note goes with the item it was about
    page.wait_for_function("document.querySelector('#player_note').innerText.trim() === ''")


def test_a_motion_photo_plays_the_video_inside_it_and_says_why_where_it_cannot(page, live_app):
    page.goto(f"{live_app}?q=a+photo")
    page.wait_for_selector("#results img")
    open_result(page, "PXL_0001.MP.jpg")
    assert "Motion photo (its video is inside the JPEG)" in page.inner_text("#details")
    page.wait_for_selector("#viewer_image img", state="visible")  # the photo itself
    page.wait_for_function(
        "document.querySelector('#player video') && document.querySelector('#player video').readyState >= 1"
    )
    assert "Motion photo" in page.inner_text("#player")  # the player's label
    assert page.evaluate("document.querySelector('#player video').duration") == pytest.approx(4.0, abs=0.5)
    page.evaluate("document.querySelector('#player video').muted = true")
    page.evaluate("document.querySelector('#player video').play()")
    page.wait_for_function("document.querySelector('#player video').currentTime > 0.5")  # it really plays
    page.keyboard.press("Escape")
    if page.evaluate(f"document.createElement('video').canPlayType({json.dumps(HEVC_TYPE)})"):
        pytest.fail("this Chromium plays HEVC: the fallback cannot be observed here")
    open_result(page, "PXL_0002.MP.jpg")
    page.wait_for_function("document.querySelector('#player_note').innerText.includes('cannot play')")
    assert "cannot play this motion photo's video (HEVC); the photo is shown" in page.inner_text("#player_note")
    page.wait_for_selector("#viewer_image img", state="visible")
