"""Text in video frames: the real Tesseract reads each keyframe at index time, and a text query finds the video at
the second its sign is on screen (engine, ``indexer search --json``), cached by the video's content and the second,
kept consistent through copies, repairs and a build killed in the frame-OCR pass."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from benchmarks.text_photos import sign_photo, texture
from indexer import IndexStore, build_index, verify
from indexer.fulltext import text_hits

from .conftest import run_cli
from .test_crash import kill_when, start_build
from .videos import make_video

SIZE = (640, 360)
# (seed, seconds, sign or None): a scene with a sign shows it on a plaque, the others a textured picture
SCENES = (
    (0, 3.0, "MUSEUM"),  # the first keyframe: the file's own row
    (1, 3.0, None),
    (2, 4.0, "CAFÉ CENTRAL"),
    (3, 3.0, None),
    (4, 4.0, "GRAND HOTEL"),
    (5, 3.0, "CAFÉ CENTRAL"),  # the same sign again, on another background: a second moment of one result
)


def starts() -> dict[str, list[float]]:
    """The second each sign's scenes start at."""
    found: dict[str, list[float]] = {}
    at = 0.0
    for _seed, seconds, sign in SCENES:
        if sign:
            found.setdefault(sign, []).append(at)
        at += seconds
    return found


def sign_video(path, background: int = 0):
    pictures = {
        seed: sign_photo(sign, "latin", seed=background + seed, size=SIZE, font_size=56)
        if sign
        else texture(SIZE, seed=background + seed)
        for seed, _seconds, sign in SCENES
    }
    return make_video(path, tuple((seed, seconds) for seed, seconds, _ in SCENES), size=SIZE, pictures=pictures)


def near(seconds: float, sign: str) -> bool:
    return any(abs(seconds - start) <= 2 for start in starts()[sign])


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from indexer.ocr import find_engine

    assert find_engine() is not None, "Tesseract is needed (apt install tesseract-ocr)"
    root = tmp_path_factory.mktemp("video-text") / "media"
    sign_video(root / "walks" / "city.mp4")
    texture((320, 240), seed=90).save(root / "DSC00001.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def index(library, tiny_siglip, tmp_path_factory):
    index = tmp_path_factory.mktemp("video-text-index") / "idx"
    summary = build_index([library], index, tiny_siglip, show_progress=False)
    assert not summary.errors and summary.added == 2
    text = summary.text
    assert text["ocr_frames"] == len(SCENES) and text["ocr_read"] == len(SCENES) + 1, text
    assert text["ocr_with_text"] == 4 and not text["errors"], text
    return index


def frame_hits(index, query: str) -> list[tuple[float, str]]:
    """(timestamp_s, source) of every text hit, all in the one video."""
    with IndexStore.open(index) as store:
        hits = text_hits(store.catalog, query)
        records = store.records([hit.image_id for hit in hits])
        assert all(record.media_type == "video" and record.path.endswith("city.mp4") for record in records)
        return [(record.timestamp_s, hit.source) for hit, record in zip(hits, records)]


def test_every_keyframe_is_read_and_found_by_its_text(index):
    museum = frame_hits(index, "museum")
    assert museum == [(0.0, "ocr")]  # the file's row: words and OCR text
    cafe = frame_hits(index, "café central")
    assert len(cafe) == 2 and all(near(seconds, "CAFÉ CENTRAL") and source == "ocr" for seconds, source in cafe), cafe
    hotel = frame_hits(index, '"grand hotel"')
    assert len(hotel) == 1 and near(hotel[0][0], "GRAND HOTEL"), hotel
    assert frame_hits(index, "central hotel") == []  # the words of two frames are not one frame's text
    with sqlite3.connect(index / "catalog.sqlite") as connection:  # text-less frames cost no full-text row
        keyframe_rows = connection.execute(
            "SELECT count(*) FROM text_fts WHERE rowid IN (SELECT id FROM images WHERE video_id IS NOT NULL)"
        ).fetchone()[0]
    assert keyframe_rows == 3
    assert verify(index).clean


def test_the_engine_finds_the_video_at_the_second_of_its_sign(index, tiny_siglip):
    from search_app.engine import SearchEngine

    engine = SearchEngine(IndexStore.open(index), tiny_siglip)
    try:
        for sign in ("CAFÉ CENTRAL", "grand hotel"):
            page = engine.search_text(sign, k=5)
            best = page.results[0].to_json()
            assert best["relpath"] == "walks/city.mp4" and best["media_type"] == "video", best
            assert best["text_match"]["source"] == "ocr" and near(best["timestamp_s"], sign.upper()), best
            assert [r.relpath for r in page.results].count("walks/city.mp4") == 1  # one result per video
        moments = engine.search_text("cafe central", k=5).results[0].moments
        assert sorted(round(seconds) for seconds, _score in moments) == [round(s) for s in starts()["CAFÉ CENTRAL"]]
    finally:
        engine.close()


def test_a_frame_is_decoded_within_the_budget_and_a_bad_one_is_its_own_ocr_error(tmp_path):
    from indexer.ocr import prepare_frame
    from indexer.reader import DecodeBudget

    video = sign_video(tmp_path / "city.mp4")
    budget = DecodeBudget(10**9)
    eight_k = 7680 * 4320  # the catalog's frame size is held while the full frame is decoded
    page = prepare_frame(str(video), 6.0, str(tmp_path / "page.png"), budget, pixels=eight_k)
    assert page == str(tmp_path / "page.png") and (tmp_path / "page.png").is_file() and budget.peak == eight_k
    assert budget.in_use == 0
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video " * 100)  # a video replaced by junk since indexed
    outcome = prepare_frame(str(bad), 3.0, str(tmp_path / "bad.png"), budget, pixels=eight_k)
    assert not isinstance(outcome, str) and outcome.error.startswith("OCR could not read the frame at 3.0 s ("), outcome
    assert not (tmp_path / "bad.png").exists() and budget.in_use == 0


@pytest.mark.slow  # runs the CLI in a subprocess (the model loads)
def test_indexer_search_json_finds_the_frame(index, library):
    run = run_cli("search", "--index", index, "--text", "Café Central", "-k", "3", "--json")
    assert run.returncode == 0, run.stderr
    best = json.loads(run.stdout)["results"][0]
    assert best["path"] == str(library.resolve() / "walks" / "city.mp4") and best["media_type"] == "video"
    assert best["text_match"]["source"] == "ocr" and near(best["timestamp_s"], "CAFÉ CENTRAL"), best
    assert len(best["moments"]) >= 2


def test_frame_text_is_cached_by_content_and_second_and_repair_refills_it(tmp_path, tiny_siglip):
    folder = tmp_path / "media"
    sign_video(folder / "city.mp4", background=110)  # a seed whose six scenes are six keyframes
    index = tmp_path / "index"
    assert build_index([folder], index, tiny_siglip, show_progress=False).text["ocr_frames"] == len(SCENES)
    assert build_index([folder], index, tiny_siglip, show_progress=False).text["ocr_read"] == 0  # unchanged

    shutil.copy(folder / "city.mp4", folder / "copy.mp4")  # same content: every frame's text is reused
    again = build_index([folder], index, tiny_siglip, show_progress=False)
    assert again.added == 1 and again.text["ocr_read"] == 0, again.text
    with IndexStore.open(index) as store:
        hits = text_hits(store.catalog, "grand hotel")
        assert sorted(r.path.rsplit("/", 1)[-1] for r in store.records([h.image_id for h in hits])) == [
            "city.mp4",
            "copy.mp4",
        ]
    from search_app.engine import SearchEngine

    engine = SearchEngine(IndexStore.open(index), tiny_siglip)
    try:  # the copies are one result, as the vector ranking shows them; each at the sign's second
        results = engine.search_text("Grand Hotel", k=5).results
        video = [result for result in results if result.media_type == "video"]
        assert len(video) == 1 and len(video[0].also_at) == 1, [(r.relpath, r.also_at) for r in results]
        assert near(video[0].timestamp_s, "GRAND HOTEL") and video[0].text_match.source == "ocr"
    finally:
        engine.close()
    assert verify(index).clean

    with sqlite3.connect(index / "catalog.sqlite") as connection:  # a keyframe's text row lost, another's garbled
        first, second = [
            row[0]
            for row in connection.execute(
                "SELECT t.rowid FROM text_fts t JOIN images i ON i.id = t.rowid WHERE i.video_id IS NOT NULL "
                "ORDER BY t.rowid LIMIT 2"
            )
        ]
        connection.execute("DELETE FROM text_fts WHERE rowid = ?", (first,))
        connection.execute("UPDATE text_fts SET filename = 'planted' WHERE rowid = ?", (second,))
    report = verify(index)
    assert {
        "1 video frame(s) have OCR text but no full-text row",
        "1 full-text row(s) of video frames are not their frame's OCR text alone",
    } <= set(report.problems), report.problems
    assert not verify(index, repair=True).unrepaired and verify(index).clean
    refilled = build_index([folder], index, tiny_siglip, show_progress=False)
    assert refilled.text["ocr_read"] == 0  # refilled from the kept OCR results
    assert verify(index).clean
    with IndexStore.open(index) as store:
        assert len(text_hits(store.catalog, "cafe central")) == 4 and text_hits(store.catalog, "planted") == []


@pytest.mark.slow  # kills a build process and reruns it
@pytest.mark.timeout(600)
def test_kill_9_during_the_frame_ocr_pass_then_rerun_is_clean(tmp_path, tiny_mllama_dir, cli):
    folder = tmp_path / "media"
    for i in range(3):
        sign_video(folder / f"{i}.mp4", background=40 + 10 * i)
    index = tmp_path / "index"
    total = 3 * len(SCENES)

    def ocr_rows() -> int:
        try:
            with sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1) as connection:
                return connection.execute("SELECT count(*) FROM ocr_text").fetchone()[0]
        except sqlite3.Error:
            return -1

    assert kill_when(start_build(folder, index, tiny_mllama_dir), lambda: 1 <= ocr_rows() < total, ocr_rows)
    result = cli("build", "--dir", folder, "--index", index, "--model", tiny_mllama_dir, "--quiet", "--json")
    assert result.returncode == 0, result.stderr
    assert 0 < json.loads(result.stdout)["text"]["ocr_read"] < total  # only the frames the killed run had not read
    assert verify(index).clean
    with sqlite3.connect(index / "catalog.sqlite") as connection:
        rowids = [row[0] for row in connection.execute("SELECT rowid FROM text_fts")]
        assert ocr_rows() == total and len(rowids) == len(set(rowids)) == 3 * (1 + 3)  # file rows + frames with text
    with IndexStore.open(index) as store:
        hits = text_hits(store.catalog, "grand hotel")
        assert sorted(r.path.rsplit("/", 1)[-1] for r in store.records([h.image_id for h in hits])) == [
            "0.mp4",
            "1.mp4",
            "2.mp4",
        ]
