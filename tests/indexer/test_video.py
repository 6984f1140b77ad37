"""Videos in the index: keyframes by scene change with timestamps, metadata, incremental builds, bad input."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from indexer import IndexStore, build_index, verify
from indexer.catalog import Image as ImageRow
from indexer.files import scan_root
from indexer.reader import read_file
from indexer.video import KeyframePolicy, read_video

from .videos import make_audio_only, make_video, scene_picture

SCENES = ((0, 4.0), (1, 4.0), (2, 4.0), (3, 4.0))  # (picture seed, seconds): scenes start at 0, 4, 8, 12 s


def build(roots, index_dir, embedder, **kwargs):
    return build_index(
        roots if isinstance(roots, list) else [roots], index_dir, embedder, batch_size=4, show_progress=False, **kwargs
    )


def rows_of(index_dir):
    with IndexStore.open(index_dir) as store, store.catalog.session() as session:
        from sqlalchemy import select

        return [
            dict(
                id=row.id,
                relpath=row.relpath,
                video_id=row.video_id,
                timestamp_s=row.timestamp_s,
                media_type=row.media_type,
                status=row.status,
                content_hash=row.content_hash,
                duration_s=row.duration_s,
                width=row.width,
                height=row.height,
                taken_at=row.taken_at,
                camera=row.camera,
                latitude=row.latitude,
                rotation=row.rotation,
                error=row.error,
            )
            for row in session.scalars(select(ImageRow).order_by(ImageRow.id))
        ]


@pytest.mark.parametrize(
    "codec, name", [("libx264", "a.mp4"), ("libx265", "b.mkv"), ("libvpx-vp9", "c.webm"), ("libsvtav1", "d.mp4")]
)
def test_keyframes_are_the_scene_changes_within_a_fraction_of_a_second(tmp_path, codec, name):
    path = make_video(tmp_path / name, SCENES, codec=codec)
    facts, keyframes = read_video(str(path), 64)
    times = [keyframe.timestamp_s for keyframe in keyframes]
    assert len(times) == 4 and all(abs(t - start) <= 0.5 for t, start in zip(times, (0, 4, 8, 12))), times
    assert (facts.width, facts.height) == (160, 120) and abs(facts.duration_s - 16) < 0.5
    assert all(max(keyframe.image.size) <= 64 for keyframe in keyframes)  # converted small, never full size
    for keyframe, (seed, _) in zip(keyframes, SCENES):  # each keyframe shows its scene's picture
        expected = np.asarray(scene_picture(seed, keyframe.image.size), dtype=np.float32)
        assert np.abs(np.asarray(keyframe.image, dtype=np.float32) - expected).mean() < 12


def test_a_slowly_changing_shot_gets_a_keyframe_at_least_every_max_gap_a_still_one_only_its_first(tmp_path):
    from fractions import Fraction

    import av

    path = tmp_path / "dusk.mp4"  # 35 s getting brighter by 12 levels each 10 s: never a scene change
    base = np.asarray(scene_picture(5), dtype=np.float32) * 0.5
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for index in range(35 * 4):
            frame = av.VideoFrame.from_ndarray(np.clip(base + 0.3 * index, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 4)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    _, keyframes = read_video(str(path), 32, KeyframePolicy(max_gap_s=10))
    assert [round(k.timestamp_s) for k in keyframes] == [0, 10, 20, 30]
    still = make_video(tmp_path / "still.mp4", ((5, 35.0),), fps=4)
    _, keyframes = read_video(str(still), 32, KeyframePolicy(max_gap_s=10))
    assert [k.timestamp_s for k in keyframes] == [0]


def test_keyframes_are_capped_and_a_long_recording_stays_bounded_in_time(tmp_path):
    scenes = tuple((i % 7, 1.0) for i in range(60))  # a scene change every second for a minute
    path = make_video(tmp_path / "busy.mp4", scenes, fps=4)
    _, keyframes = read_video(str(path), 32, KeyframePolicy(max_keyframes=8))
    assert 4 <= len(keyframes) <= 8 and keyframes[0].timestamp_s == 0
    assert keyframes[-1].timestamp_s > 30  # thinned evenly, not cut off after the first 8
    # ten hours at one frame a minute (variable frame rate): sampled by seeking, bounded count and time
    times = [60.0 * i for i in range(601)]
    long = make_video(tmp_path / "ten-hours.mkv", tuple((i % 5, 3600.0) for i in range(10)), frame_times=times)
    started = time.monotonic()
    facts, keyframes = read_video(str(long), 32, KeyframePolicy(max_keyframes=20, sequential_limit_s=3600))
    assert time.monotonic() - started < 20
    assert facts.duration_s > 9.9 * 3600 and 10 <= len(keyframes) <= 20
    assert keyframes[-1].timestamp_s > 9 * 3600


def test_a_variable_frame_rate_screen_recording_keeps_true_timestamps(tmp_path):
    # bursts of frames while something moves, long pauses while nothing does (what screen recorders write)
    times = [0.0, 0.1, 0.2, 3.0, 6.9, 7.0, 7.05, 7.1, 12.5, 13.0]
    path = make_video(tmp_path / "screen.mov", ((0, 7.0), (1, 7.0)), frame_times=times)
    _, keyframes = read_video(str(path), 32)
    assert [k.timestamp_s for k in keyframes] == pytest.approx([0.0, 7.0], abs=0.15)


def test_container_metadata_date_place_camera_and_rotation(tmp_path):
    make_video(
        tmp_path / "phone.mov",
        ((0, 1.0),),
        rotation=90,
        metadata={
            "creation_time": "2021-07-14T18:30:05.000000Z",
            "location": "+48.8584+002.2945/",
            "make": "Apple",
            "model": "iPhone 12",
        },
    )
    result = read_file(next(scan_root(str(tmp_path))), 64, set())
    assert result.error is None and result.media_type == "video"
    assert result.taken_at.isoformat() == "2021-07-14T18:30:05" and result.camera == "Apple iPhone 12"
    assert (round(result.latitude, 4), round(result.longitude, 4)) == (48.8584, 2.2945)
    assert result.rotation == 90 and (result.width, result.height) == (120, 160)  # shown upright: portrait
    assert result.image.size == (48, 64) and result.timestamp_s == 0 and result.duration_s == pytest.approx(1, abs=0.2)


def zoo(folder):
    """Every kind of bad video a folder may hold, with (part of) the reason each must get."""
    good = make_video(folder / "good.mp4", SCENES[:2])
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (folder / "empty.mp4").write_bytes(b"")
    make_audio_only(folder / "voice.m4v")
    mkv = make_video(folder / "weird.mkv", SCENES[:1])
    raw = mkv.read_bytes()
    assert raw.count(b"V_MPEG4/ISO/AVC") == 1
    mkv.write_bytes(raw.replace(b"V_MPEG4/ISO/AVC", b"V_XXXXX/ISO/XYZ"))  # a codec FFmpeg has no decoder for
    make_video(folder / "huge.mkv", ((0, 0.1),), size=(8192, 4608), fps=10)  # 37.7 MP, over 8K
    shutil.copy(folder / "good.mp4", folder / "clip.jpg")  # a video named like a photo
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(folder / "photo.mp4", "JPEG")  # a photo named like a video
    (folder / "noise.avi").write_bytes(os.urandom(5000))
    return {
        "truncated.mp4": "damaged, truncated",
        "empty.mp4": "empty file",
        "voice.m4v": "no video stream",
        "weird.mkv": "unsupported video codec",
        "huge.mkv": "resolution 8192x4608",
        "clip.jpg": "it is a video (MP4/QuickTime): give it a video file extension",
        "photo.mp4": "still image",
        "noise.avi": "cannot open as a video",
    }


def test_bad_videos_are_reported_with_a_reason_and_never_stop_the_build(tmp_path, tiny_siglip):
    folder = tmp_path / "clips"
    folder.mkdir()
    expected = zoo(folder)
    summary = build(folder, tmp_path / "index", tiny_siglip)
    reasons = {os.path.basename(error.path): error.reason for error in summary.errors}
    assert set(reasons) == set(expected), reasons
    for name, part in expected.items():
        assert part in reasons[name], reasons
    rows = rows_of(tmp_path / "index")
    good = [row for row in rows if row["status"] == "ok"]
    assert {row["relpath"].split(b"\0")[0] for row in good} == {b"good.mp4"} and len(good) == 2
    assert verify(tmp_path / "index").clean


def test_videos_and_photos_in_one_index_with_timestamps_and_metadata(tmp_path, tiny_siglip, photos):
    photos.jpeg("beach.jpg")
    make_video(photos.folder / "trip" / "a.mp4", SCENES, metadata={"creation_time": "2022-01-02T03:04:05Z"})
    make_video(photos.folder / "trip" / "b.mkv", SCENES[:2], codec="libx265")
    index_dir = tmp_path / "index"
    summary = build(photos.folder, index_dir, tiny_siglip)
    assert (summary.added, summary.errors) == (3, [])
    rows = rows_of(index_dir)
    video = next(row for row in rows if row["relpath"] == b"trip/a.mp4")
    assert video["media_type"] == "video" and video["video_id"] is None and video["timestamp_s"] == 0
    assert abs(video["duration_s"] - 16) < 0.5 and (video["width"], video["height"]) == (160, 120)
    frames = [row for row in rows if row["video_id"] == video["id"]]
    assert [row["relpath"] for row in frames] == [
        b"trip/a.mp4\0" + str(round(row["timestamp_s"] * 1000)).encode() for row in frames
    ]
    assert [round(row["timestamp_s"]) for row in frames] == [4, 8, 12]
    assert all(row["taken_at"].isoformat() == "2022-01-02T03:04:05" and row["media_type"] == "video" for row in frames)
    assert next(row for row in rows if row["relpath"] == b"beach.jpg")["media_type"] == "photo"
    with IndexStore.open(index_dir) as store:
        assert store.count == 1 + 4 + 2
        # a scene's picture finds that scene's keyframe first, with the video's path
        query = tiny_siglip.encode_image_queries([scene_picture(2)])
        _, ids = store.search(query, 1)
        record = store.records(ids[0])[0]
        assert record.path == str(photos.folder.resolve() / "trip" / "a.mp4")
        assert next(row for row in rows if row["id"] == record.id)["timestamp_s"] == pytest.approx(8, abs=2)
    assert verify(index_dir).clean


def test_incremental_unchanged_videos_are_not_read_edited_ones_are_and_moves_keep_keyframes(tmp_path, tiny_siglip):
    folder = tmp_path / "clips"
    path = make_video(folder / "a.mp4", SCENES)
    index_dir = tmp_path / "index"
    build(folder, index_dir, tiny_siglip)
    first = rows_of(index_dir)
    again = build(folder, index_dir, tiny_siglip)
    assert (again.unchanged, again.embedded, again.added, again.updated) == (1, 0, 0, 0)
    assert rows_of(index_dir) == first
    make_video(path, SCENES[:2])  # trimmed: half as long, re-encoded
    trimmed = build(folder, index_dir, tiny_siglip)
    assert trimmed.updated == 1
    rows = rows_of(index_dir)
    assert len(rows) == 2 and max(row["timestamp_s"] for row in rows) == pytest.approx(4, abs=0.5)
    assert not {row["id"] for row in rows} & {row["id"] for row in first}  # the old keyframes left
    (folder / "sub").mkdir()
    os.rename(path, folder / "sub" / "moved.mp4")
    moved = build(folder, index_dir, tiny_siglip)
    assert (moved.moved, moved.embedded) == (1, 0)
    after = rows_of(index_dir)
    assert [row["id"] for row in after] == [row["id"] for row in rows]  # same rows, same vectors
    assert all(row["relpath"].split(b"\0")[0] == b"sub/moved.mp4" for row in after)
    os.remove(folder / "sub" / "moved.mp4")
    build(folder, index_dir, tiny_siglip, prune=True)
    assert rows_of(index_dir) == []
    assert verify(index_dir).clean


def test_a_keyframe_the_model_rejects_is_left_out_and_the_video_keeps_its_other_keyframes(
    tmp_path, tiny_siglip, monkeypatch
):
    folder = tmp_path / "clips"
    make_video(folder / "a.mp4", SCENES)
    shutil.copy(folder / "a.mp4", folder / "b.mp4")  # a copy in the same build: same keyframes, same outcome
    original = tiny_siglip.encode_images
    bad = np.asarray(scene_picture(2).resize((32, 24)), dtype=np.float32)

    def picky(images, batch_size=8, **kwargs):
        for image in images:
            if np.abs(np.asarray(image.convert("RGB").resize((32, 24)), dtype=np.float32) - bad).mean() < 20:
                raise RuntimeError("shape mismatch in vision tower")
        return original(images, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(tiny_siglip, "encode_images", picky)
    index_dir = tmp_path / "index"
    summary = build(folder, index_dir, tiny_siglip)
    assert (summary.added, summary.errors, summary.embedded) == (2, [], 3)  # 0, 4 and 12 s, each once
    rows = rows_of(index_dir)
    for name in (b"a.mp4", b"b.mp4"):
        video = next(row for row in rows if row["relpath"] == name)
        assert video["status"] == "ok"
        assert [round(row["timestamp_s"]) for row in rows if row["video_id"] == video["id"]] == [4, 12]
    assert verify(index_dir).clean


def test_verify_reports_keyframes_of_no_video_and_repair_removes_them(tmp_path, tiny_siglip):
    import sqlite3

    folder = tmp_path / "clips"
    make_video(folder / "a.mp4", SCENES)
    index_dir = tmp_path / "index"
    build(folder, index_dir, tiny_siglip)
    with sqlite3.connect(index_dir / "catalog.sqlite") as connection:  # damage: the video row alone is lost
        connection.execute("DELETE FROM images WHERE video_id IS NULL")
    report = verify(index_dir)
    assert any("3 video keyframe(s) belong to no indexed video" in problem for problem in report.problems)
    repaired = verify(index_dir, repair=True)
    assert any("deleted 3 video keyframe(s)" in line for line in repaired.repaired) and not repaired.unrepaired
    assert verify(index_dir).clean
    build(folder, index_dir, tiny_siglip)  # the next build indexes the video again, whole
    assert sorted(round(row["timestamp_s"]) for row in rows_of(index_dir)) == [0, 4, 8, 12]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_9_in_the_middle_of_videos_then_rerun_leaves_no_duplicate_or_missing_keyframe(tmp_path, tiny_siglip_dir):
    from .test_crash import catalog_rows, kill_when, start_build

    folder = tmp_path / "clips"
    many = tuple((i % 9, 0.6) for i in range(24))  # 24 scenes: 24 keyframes a video
    for i in range(6):
        make_video(folder / f"{i}.mp4", many[i:] + many[:i])
    index_dir = tmp_path / "index"
    killed = kill_when(
        start_build(folder, index_dir, tiny_siglip_dir),
        lambda: catalog_rows(index_dir) >= 1,
        lambda: catalog_rows(index_dir),
    )
    rows = rows_of(index_dir) if (index_dir / "catalog.sqlite").exists() else []
    videos = {row["id"] for row in rows if row["video_id"] is None}
    assert killed and len(videos) < 6  # stopped with videos still to do
    assert all(row["video_id"] in videos for row in rows if row["video_id"] is not None)  # whole videos or nothing
    rerun = start_build(folder, index_dir, tiny_siglip_dir)
    assert rerun.wait(300) == 0, rerun.stderr.read()
    rows = rows_of(index_dir)
    files = [row for row in rows if row["video_id"] is None]
    assert sorted(row["relpath"] for row in files) == [f"{i}.mp4".encode() for i in range(6)]
    keys = [(row["video_id"] or row["id"], row["timestamp_s"]) for row in rows]
    assert len(keys) == len(set(keys)) == 6 * 24  # every keyframe once
    assert verify(index_dir).clean


@pytest.mark.timeout(600)
def test_watch_indexes_a_video_that_arrives_and_drops_it_when_deleted(photos, tmp_path, tiny_siglip):
    from indexer.watch import Watcher

    from .test_watch import eventually

    photos.jpeg("a.jpg")
    index_dir = tmp_path / "index"
    watching = Watcher(index_dir, [photos.folder], tiny_siglip, quiet=0.5, stable=0.3, log=lambda message: None)
    thread = watching.start()
    try:
        eventually(lambda: watching.state.builds >= 1, "the catch-up build")
        staged = make_video(tmp_path / "staging" / "clip.mp4", SCENES)
        shutil.move(staged, photos.folder / "clip.mp4")
        frames = eventually(
            lambda: (
                sorted(round(row["timestamp_s"]) for row in rows_of(index_dir) if row["media_type"] == "video") or None
            ),
            "the new video's keyframes",
        )
        assert frames == [0, 4, 8, 12]
        (photos.folder / "clip.mp4").unlink()
        eventually(lambda: all(row["media_type"] == "photo" for row in rows_of(index_dir)), "the deleted video gone")
    finally:
        watching.stop()
        thread.join(timeout=30)
    assert verify(index_dir).clean


def test_a_published_index_carries_a_preview_of_each_keyframe(tmp_path, tiny_siglip):
    from PIL import Image

    from indexer.publish import prepare_push

    folder = tmp_path / "clips"
    make_video(folder / "a.mp4", SCENES)
    index_dir = tmp_path / "index"
    build(folder, index_dir, tiny_siglip)
    prepared = prepare_push(
        index_dir, tmp_path / "upload", model_id="google/siglip-base-patch16-256-multilingual", show_progress=False
    )
    assert prepared.skipped == [] and prepared.previews == 4
    for row, (seed, _) in zip(rows_of(index_dir), SCENES):
        with Image.open(next((tmp_path / "upload").rglob(f"{row['content_hash']}.jpg"))) as preview:
            shown = np.asarray(preview.convert("RGB"), dtype=np.float32)
        expected = np.asarray(scene_picture(seed, (shown.shape[1], shown.shape[0])), dtype=np.float32)
        assert np.abs(shown - expected).mean() < 15  # the frame at the keyframe's second


def test_decoding_stops_at_the_time_limit_and_keeps_what_it_found(tmp_path):
    path = make_video(tmp_path / "long.mp4", tuple((i % 5, 2.0) for i in range(30)), fps=10)
    _, everything = read_video(str(path), 32)
    _, cut = read_video(str(path), 32, KeyframePolicy(max_seconds=0.0))
    assert len(everything) >= 20 and len(cut) == 1 and cut[0].timestamp_s == 0
