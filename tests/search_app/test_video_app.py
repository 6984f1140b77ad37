"""Videos through the served app: the HTTP API's fields, and the browser's player starting at the matching second."""

from __future__ import annotations

import pytest

from tests.indexer.videos import make_video, scene_picture

from .conftest import make_photo, running_app

HOLIDAY = ((10, 4.0), (11, 5.0), (12, 3.0), (13, 4.0))  # scenes start at 0, 4, 9, 12 s
PARTY = ((20, 3.0), (21, 4.0), (22, 5.0))  # 0, 3, 7 s


@pytest.fixture(scope="module")
def video_app(tmp_path_factory, tiny_siglip_dir):
    work = tmp_path_factory.mktemp("video-app")
    media = work / "media"
    make_video(media / "h264" / "holiday.mp4", HOLIDAY)
    make_video(media / "hevc" / "party.mkv", PARTY, codec="libx265")
    make_photo(media / "photos" / "a.jpg", 3, None)
    args = [
        "--index",
        str(work / "index"),
        "--model",
        str(tiny_siglip_dir),
        "--photos",
        str(media),
        "--concurrency",
        "1",
        "--page-size",
        "5",
    ]
    with running_app(work, args) as url:
        yield url, work


@pytest.fixture(scope="module")
def client(video_app):
    from gradio_client import Client

    return Client(video_app[0], verbose=False)


@pytest.mark.server
def test_http_api_finds_the_scene_with_its_second_and_folds_moments(client, video_app):
    from gradio_client import handle_file

    query = video_app[1] / "scene.png"
    scene_picture(12).save(query)
    payload = client.predict(image=handle_file(str(query)), k=5, api_name="/search_image")
    best = payload["results"][0]
    assert best["relpath"] == "h264/holiday.mp4" and best["media_type"] == "video"
    assert abs(best["timestamp_s"] - 9) <= 2 and best["duration_s"] == pytest.approx(16, abs=0.5)
    assert best["moments"][0]["timestamp_s"] == best["timestamp_s"] and len(best["moments"]) > 1
    assert len({r["relpath"] for r in payload["results"]}) == len(payload["results"]) == 3
    composed = client.predict(image=handle_file(str(query)), text="at night", k=5, api_name="/search_composed")
    assert {r["media_type"] for r in composed["results"]} == {"photo", "video"}
    photos = client.predict(text="anything", k=5, media="photo", api_name="/search_text")
    assert [r["media_type"] for r in photos["results"]] == ["photo"]
    videos = client.predict(text="anything", k=5, media="video", api_name="/search_text")
    assert sorted(r["relpath"] for r in videos["results"]) == ["h264/holiday.mp4", "hevc/party.mkv"]
    assert all(isinstance(r["timestamp_s"], float) for r in videos["results"])


@pytest.fixture(scope="module")
def page(desktop_page):
    return desktop_page


def open_first_hit(page, url: str, folder: str, query: str = "a video") -> None:
    from urllib.parse import urlencode

    page.goto(f"{url}?{urlencode({'q': query, 'media': 'video', 'folder': folder})}")
    page.wait_for_selector("#results img")
    page.locator("#results .thumbnail-item").first.click()


@pytest.mark.server
@pytest.mark.browser
def test_the_player_starts_at_the_matching_second(page, video_app, client):
    url = video_app[0]
    for query in ("a video", "una fiesta", "the beach at night", "夜の街", "ein Hund im Schnee", "a red car", "cats"):
        expected = client.predict(text=query, k=1, media="video", folder="h264", api_name="/search_text")
        second = expected["results"][0]["timestamp_s"]
        if second >= 2:  # a hit past the start: the player must seek there, not just begin
            break
    assert second >= 2, "no query whose best moment is past the first keyframe"
    open_first_hit(page, url, "h264", query)
    assert "▶" in page.inner_text("#results")
    page.wait_for_function(
        "document.querySelector('#player video') && "
        "document.querySelector('#player video').dataset.startedAt !== undefined"
    )
    started = page.evaluate("document.querySelector('#player video').currentTime")
    assert started == pytest.approx(second, abs=0.3)
    assert "plays from" in page.inner_text("#details")
    assert page.inner_text("#player_note").strip() == ""


@pytest.mark.server
@pytest.mark.browser
def test_hevc_the_browser_cannot_play_falls_back_to_the_frame_and_says_so(page, video_app):
    if page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"hvc1.1.6.L93.B0\"')"):
        pytest.fail("this Chromium plays HEVC: the fallback cannot be observed here")
    open_first_hit(page, video_app[0], "hevc")
    page.wait_for_selector(
        "#viewer #player_note", state="attached"
    )  # the player and its note live in the viewer, shown on a click
    page.wait_for_function("document.querySelector('#player_note').innerText.includes('cannot play')")
    note = page.inner_text("#player_note")
    assert "HEVC" in note and "showing the frame at" in note
    page.wait_for_selector("#frame img", state="visible", timeout=30_000)  # the frame's image loads after the note
    assert not page.locator("#player").is_visible()


@pytest.mark.server
def test_rest_album_keeps_a_pinned_video_moment_with_its_second(video_app):
    import httpx

    from gradio_client import Client, handle_file

    query = video_app[1] / "scene-9s.png"
    scene_picture(12).save(query)
    hit = Client(video_app[0], verbose=False).predict(image=handle_file(str(query)), k=1, api_name="/search_image")
    moment = hit["results"][0]
    assert moment["media_type"] == "video" and moment["timestamp_s"] > 5
    with httpx.Client(base_url=f"{video_app[0]}api/v1", timeout=120) as api:
        assert api.put("/albums/Moments", params={"text": "anything", "k": 10}).status_code == 200
        pinned = api.post(f"/albums/Moments/photos/{moment['image_id']}", params={"action": "pin"})
        assert pinned.status_code == 200 and pinned.json()["pinned"] == [moment["image_id"]]
        opened = api.get("/albums/Moments").json()["results"]
    assert (opened[0]["relpath"], opened[0]["media_type"], opened[0]["timestamp_s"]) == (
        "h264/holiday.mp4",
        "video",
        moment["timestamp_s"],
    )
    assert [result["relpath"] for result in opened].count("h264/holiday.mp4") == 1
