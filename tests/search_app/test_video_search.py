"""Videos found by text, image and image + text, with the second that matched: engine, command line, filters.

The tiny SigLIP tells the scene pictures apart (the tiny Mllama maps them all to nearly one vector)."""

from __future__ import annotations

import json

import pytest

from tests.indexer.conftest import run_cli
from tests.indexer.videos import make_video, scene_picture

from .conftest import make_photo

# (seed, seconds) scenes; a scene's start is the timestamp a search with its picture must find (±2 s)
VIDEOS = {
    "h264/holiday.mp4": ("libx264", ((10, 4.0), (11, 5.0), (12, 3.0), (13, 4.0))),
    "hevc/party.mkv": ("libx265", ((20, 3.0), (21, 4.0), (22, 5.0))),
}


def scene_starts():
    """(relpath, seed, start second) of every scene."""
    for relpath, (_, scenes) in VIDEOS.items():
        start = 0.0
        for seed, seconds in scenes:
            yield relpath, seed, start
            start += seconds


@pytest.fixture(scope="module")
def video_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("video-library") / "media"
    for relpath, (codec, scenes) in VIDEOS.items():
        make_video(root / relpath, scenes, codec=codec)
    for seed, name in enumerate(("a.jpg", "b.jpg", "c.png")):
        make_photo(root / "photos" / name, 50 + seed, None)
    return root


@pytest.fixture(scope="module")
def video_index(video_library, tiny_siglip, tmp_path_factory):
    from indexer import build_index

    index = tmp_path_factory.mktemp("video-index") / "idx"
    summary = build_index([video_library], index, tiny_siglip, show_progress=False)
    assert not summary.errors and summary.added == 5
    return index


@pytest.fixture(scope="module")
def video_engine(video_index, tiny_siglip):
    from indexer import IndexStore

    from search_app.engine import SearchEngine

    engine = SearchEngine(IndexStore.open(video_index), tiny_siglip)
    yield engine
    engine.close()


def check_contract(result: dict) -> None:
    assert result["media_type"] in ("photo", "video")
    if result["media_type"] == "video":
        assert isinstance(result["timestamp_s"], float) and result["duration_s"] > 10
        moments = result["moments"]
        assert moments[0] == {"timestamp_s": result["timestamp_s"], "score": result["score"]}
        assert [m["score"] for m in moments] == sorted((m["score"] for m in moments), reverse=True)
        assert len({m["timestamp_s"] for m in moments}) == len(moments)
    else:
        assert not {"timestamp_s", "duration_s", "moments"} & set(result)


@pytest.mark.parametrize("relpath, seed, start", list(scene_starts()))
def test_a_scene_picture_finds_its_video_at_that_second(video_engine, video_library, relpath, seed, start):
    page = video_engine.search_image(scene_picture(seed), k=10)
    best = page.results[0].to_json()
    assert best["relpath"] == relpath and best["media_type"] == "video"
    assert abs(best["timestamp_s"] - start) <= 2, (best["timestamp_s"], start)
    check_contract(best)
    paths = [result.path for result in page.results]
    assert len(paths) == len(set(paths))  # one result per video: its other moments are folded in
    assert len(best["moments"]) > 1  # every keyframe of a video is among 10 hits of 5 files


def test_text_and_composed_queries_return_videos_with_the_contract_fields(video_engine):
    text = video_engine.search_text("a birthday party with friends", k=10)
    assert {result.media_type for result in text.results} == {"photo", "video"}
    assert len(text.results) == 5  # 2 videos (keyframes folded) + 3 photos
    for result in text.results:
        check_contract(result.to_json())
    composed = video_engine.search_composed(scene_picture(21), "but at night", k=10)
    assert any(result.media_type == "video" for result in composed.results)
    for result in composed.results:
        check_contract(result.to_json())


def test_the_media_filter_keeps_photos_or_videos(video_engine):
    photos = video_engine.search_text("anything", k=20, media="photo")
    assert [r.media_type for r in photos.results] == ["photo"] * 3
    videos = video_engine.search_text("anything", k=20, media="videos")
    assert sorted(r.relpath for r in videos.results) == sorted(VIDEOS)
    with pytest.raises(ValueError, match="media 'films' is not one this app knows: use photo or video"):
        video_engine.search_text("anything", media="films")


@pytest.mark.slow  # runs the CLI in subprocesses (model loads each time)
def test_indexer_search_json_on_the_command_line(video_index, video_library, tmp_path):
    query = tmp_path / "scene.png"
    scene_picture(12).save(query)
    run = run_cli("search", "--index", video_index, "--image", query, "-k", "3", "--json")
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)["results"]
    best = results[0]
    assert best["path"] == str(video_library.resolve() / "h264/holiday.mp4") and best["media_type"] == "video"
    assert abs(best["timestamp_s"] - 9.0) <= 2 and best["duration_s"] == pytest.approx(16, abs=0.5)
    assert best["moments"][0]["timestamp_s"] == best["timestamp_s"] and len(best["moments"]) > 1
    assert len({r["path"] for r in results}) == len(results) == 3
    assert all(r["media_type"] == "photo" for r in results if r["path"].endswith((".jpg", ".png")))
    text = run_cli("search", "--index", video_index, "--text", "una fiesta", "-k", "10", "--json")
    assert {r["media_type"] for r in json.loads(text.stdout)["results"]} == {"photo", "video"}
    plain = run_cli("search", "--index", video_index, "--image", query, "-k", "1")
    assert "holiday.mp4\tat " in plain.stdout and "more moments" in plain.stdout


def test_more_like_this_on_a_video_hit_uses_its_frame(video_engine):
    hit = video_engine.search_image(scene_picture(21), k=1).results[0]
    assert hit.relpath == "hevc/party.mkv"
    similar = video_engine.search_similar(hit.image_id, k=1).results[0]
    assert (similar.relpath, similar.timestamp_s) == (hit.relpath, hit.timestamp_s)


def test_a_video_hit_preview_is_the_frame_at_its_second(video_engine, video_library, tmp_path):
    import numpy as np
    from PIL import Image

    from search_app.thumbnails import ThumbnailCache

    cache = ThumbnailCache(tmp_path / "previews", size=64)
    for seed in (11, 13):
        hit = video_engine.search_image(scene_picture(seed), k=1).results[0]
        with Image.open(cache.get(hit.path, hit.content_hash, hit.timestamp_s)) as preview:
            shown = np.asarray(preview.convert("RGB"), dtype=np.float32)
        expected = np.asarray(scene_picture(seed, (shown.shape[1], shown.shape[0])), dtype=np.float32)
        assert np.abs(shown - expected).mean() < 15


def test_an_album_keeps_a_pinned_video_moment_with_its_second_and_shows_the_video_once(video_engine):
    from search_app.album_views import open_album
    from search_app.api import Answers

    hit = video_engine.search_image(scene_picture(12), k=1).results[0]  # holiday.mp4 at about 9 s
    assert hit.media_type == "video" and hit.timestamp_s > 5
    albums = video_engine.albums
    albums.save("Moments", {"text": "anything"}, {"k": 20})
    album = albums.pin("Moments", hit.image_id)
    results = open_album(video_engine, album)
    first = results[0]
    assert (first.relpath, first.media_type, first.timestamp_s) == (hit.relpath, "video", hit.timestamp_s)
    assert [r.relpath for r in results].count(hit.relpath) == 1  # its other keyframes do not bring it back
    payload = Answers(video_engine).open_album("Moments")  # what /albums/{name} (REST and Gradio) returns
    assert payload["results"][0]["timestamp_s"] == hit.timestamp_s and payload["results"][0]["media_type"] == "video"
    assert payload["album"]["pinned"] == [hit.image_id]
    assert all("media_type" in result for result in payload["results"])
    other = video_engine.search_image(scene_picture(21), k=1).results[0]  # a moment of party.mkv
    albums.pin("Moments", other.image_id, pinned=False)  # removing a moment leaves the video out
    assert other.relpath not in [r.relpath for r in open_album(video_engine, albums.get("Moments"))]
    albums.delete("Moments")
