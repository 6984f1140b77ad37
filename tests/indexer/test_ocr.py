"""Text in photos and words about photos, at index time: real Tesseract OCR on planted words (Latin, Cyrillic,
CJK), file-name/EXIF/XMP words, the content-hash cache, incremental sidecars, bad input, and kill -9."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest
from PIL import Image

from benchmarks.text_photos import sign_photo, texture
from indexer import build_index, verify
from indexer.fulltext import normalize, text_hits
from indexer.ocr import MAX_SIDE, _upright, find_engine, recognize
from indexer.store import IndexStore
from indexer.words import filename_words, photo_words

from .test_crash import kill_when, start_build

XMP = """<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/">
<dc:subject><rdf:Bag>{subjects}</rdf:Bag></dc:subject>
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li></rdf:Alt></dc:description>
<lr:hierarchicalSubject><rdf:Bag><rdf:li>Places|Italy|Lazio</rdf:li></rdf:Bag></lr:hierarchicalSubject>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def xmp(*subjects: str, description: str = "") -> str:
    return XMP.format(subjects="".join(f"<rdf:li>{s}</rdf:li>" for s in subjects), description=description)


@pytest.fixture(scope="module")
def engine():
    found = find_engine()
    assert found is not None, "Tesseract with language data is needed (apt install tesseract-ocr tesseract-ocr-rus ...)"
    return found


def save(image: Image.Image, path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=92)
    return str(path)


def test_real_ocr_reads_latin_cyrillic_and_cjk_and_skips_photos_without_text(tmp_path, engine):
    assert {"Latin", "Cyrillic", "CJK (Japanese)"} <= set(engine.scripts), engine.describe()
    planted = {"latin": ("CAFÉ CENTRAL", "cafe central"), "cyrillic": ("КАФЕ", "кафе"), "cjk": ("東京駅", "東京駅")}
    for script, (text, expected) in planted.items():
        outcome = recognize(engine, save(sign_photo(text, script, seed=3), tmp_path / f"{script}.jpg"))
        assert outcome.error is None and outcome.detected
        assert expected in normalize(outcome.text), (script, outcome.text)
    plain = recognize(engine, save(texture((640, 420), seed=5), tmp_path / "plain.jpg"))
    assert (plain.detected, plain.text, plain.error) == (False, "", None)  # the detection pass skipped it


def test_a_huge_screenshot_is_shrunk_before_recognition(tmp_path):
    path = tmp_path / "screenshot.png"
    Image.new("RGB", (9000, 6000), (250, 250, 250)).save(path)  # 54 megapixels, a small file
    image = _upright(str(path))
    assert max(image.size) == MAX_SIDE and image.size[0] / image.size[1] == pytest.approx(1.5, rel=0.01)


def test_words_from_names_exif_xmp_and_sidecars(tmp_path):
    assert filename_words("Rome 2019/rome_trevi-2.jpg") == "Rome 2019 rome trevi"
    assert filename_words("DCIM/100APPLE/IMG_1234.JPG") == ""
    assert filename_words("PXL_20230101_120000123.jpg") == ""
    exif = Image.Exif()
    exif[0x010E] = "Fountain at night"
    photo = tmp_path / "IMG_0001.jpg"
    texture((64, 48), seed=1).save(photo, exif=exif)
    (tmp_path / "IMG_0001.xmp").write_text(xmp("Trevi", "Roma", description="Coins in the water"), encoding="utf-8")
    words = photo_words(str(photo), "IMG_0001.jpg")
    assert words.filename == ""
    assert words.keywords.split("\n") == ["Trevi", "Roma", "Places", "Italy", "Lazio"]
    assert "Fountain at night" in words.description and "Coins in the water" in words.description


def test_a_videos_words_come_from_its_names_and_sidecar_without_a_complaint(tmp_path, caplog):
    """Pillow cannot open a video: before, every video's text pass logged "metadata not readable"."""
    from .videos import make_video

    video = make_video(tmp_path / "Lisbon 2024" / "tram_ride.mp4", scenes=((0, 1.0),))
    video.with_suffix(".xmp").write_text(xmp("Alfama"), encoding="utf-8")
    with caplog.at_level("INFO", logger="indexer.words"):
        words = photo_words(str(video), "Lisbon 2024/tram_ride.mp4")
    assert words.filename == "Lisbon 2024 tram ride" and words.keywords.split("\n")[0] == "Alfama"
    assert not caplog.records, [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize(
    "sidecar",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b"<rdf:li>&b;</rdf:li></rdf:RDF></x:xmpmeta>",  # entity expansion
        b"<x:xmpmeta><rdf:RDF><unclosed></x:xmpmeta>",  # not XML
        b"<x:xmpmeta>" + b" " * (1 << 20) + b"</x:xmpmeta>",  # larger than the sidecar limit
        b"\xff\xfe\x00garbage",
    ],
)
def test_hostile_sidecars_are_ignored_and_the_photo_keeps_its_other_words(tmp_path, sidecar):
    photo = tmp_path / "venice_gondola.jpg"
    texture((64, 48), seed=2).save(photo)
    (tmp_path / "venice_gondola.jpg.xmp").write_bytes(sidecar)
    words = photo_words(str(photo), "venice_gondola.jpg")
    assert (words.filename, words.keywords) == ("venice gondola", "")


def library(make_photos):
    photos = make_photos("photos")
    folder = photos.folder
    save(sign_photo("CAFÉ CENTRAL", "latin", seed=11), folder / "city" / "0007.jpg")
    save(sign_photo("КАФЕ", "cyrillic", seed=12), folder / "city" / "0008.jpg")
    save(texture((320, 240), seed=13), folder / "rome_trevi.jpg")
    save(texture((320, 240), seed=14), folder / "trip" / "IMG_2041.jpg")
    (folder / "trip" / "IMG_2041.xmp").write_text(xmp("Trevi", "Fountain"), encoding="utf-8")
    for i in range(6):
        save(texture((320, 240), seed=20 + i), folder / "misc" / f"DSC{i:05d}.jpg")
    return folder


def test_build_reads_text_and_words_caches_ocr_by_content_and_follows_sidecars(make_photos, tmp_path, tiny_siglip):
    folder = library(make_photos)
    index = tmp_path / "index"
    summary = build_index([folder], index, tiny_siglip, show_progress=False)
    assert summary.text["words_read"] == 10 and summary.text["ocr_read"] == 10
    assert summary.text["ocr_detected"] == 2 and summary.text["ocr_with_text"] == 2, summary.text
    assert "Cyrillic" in summary.text["ocr"]
    with IndexStore.open(index) as store:
        path_of = {record.id: os.path.relpath(record.path, folder) for record in store.records(store.catalog.ok_ids())}
        hits = text_hits(store.catalog, "café central")
        assert [(path_of[h.image_id], h.source) for h in hits] == [("city/0007.jpg", "ocr")]
        assert "CENTRAL" in hits[0].snippet and all(
            hits[0].snippet[a:b].casefold() in ("cafe", "café", "central") for a, b in hits[0].marks
        )
        assert [(path_of[h.image_id], h.source) for h in text_hits(store.catalog, "кафе")] == [("city/0008.jpg", "ocr")]
        found = {path_of[h.image_id]: h.source for h in text_hits(store.catalog, "trevi")}
        assert found == {"rome_trevi.jpg": "filename", "trip/IMG_2041.jpg": "keywords"}
        assert text_hits(store.catalog, "cat") == [] and text_hits(store.catalog, '"central cafe"') == []

    # a copy and a move reuse the OCR result (by content); a changed sidecar re-reads that photo's words
    (folder / "elsewhere").mkdir()
    (folder / "elsewhere" / "copy.jpg").write_bytes((folder / "city" / "0007.jpg").read_bytes())
    os.rename(folder / "city" / "0008.jpg", folder / "city" / "moved.jpg")
    sidecar = folder / "trip" / "IMG_2041.xmp"
    sidecar.write_text(xmp("Colosseum"), encoding="utf-8")
    os.utime(sidecar, ns=(sidecar.stat().st_mtime_ns + 10**9,) * 2)
    again = build_index([folder], index, tiny_siglip, show_progress=False)
    assert again.text["ocr_read"] == 0  # nothing new to read: copies and moves share the content's text
    assert again.text["words_read"] == 3  # the copy, the moved photo, the photo whose sidecar changed
    with IndexStore.open(index) as store:
        path_of = {record.id: os.path.relpath(record.path, folder) for record in store.records(store.catalog.ok_ids())}
        assert sorted(path_of[h.image_id] for h in text_hits(store.catalog, "cafe central")) == [
            "city/0007.jpg",
            "elsewhere/copy.jpg",
        ]
        assert [path_of[h.image_id] for h in text_hits(store.catalog, "кафе")] == ["city/moved.jpg"]
        assert [path_of[h.image_id] for h in text_hits(store.catalog, "trevi")] == ["rome_trevi.jpg"]
        assert [path_of[h.image_id] for h in text_hits(store.catalog, "colosseum")] == ["trip/IMG_2041.jpg"]
    (folder / "elsewhere" / "copy.jpg").unlink()
    build_index([folder], index, tiny_siglip, show_progress=False)
    assert verify(index).clean
    with sqlite3.connect(index / "catalog.sqlite") as connection:  # the deleted photo's text row went with it
        assert connection.execute("SELECT count(*) FROM text_fts").fetchone()[0] == 10


def fake_tesseract(folder, body: str) -> str:
    """A `tesseract` that lists languages like the real one and runs ``body`` when asked to recognise."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "tesseract"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in --version) echo "tesseract 5.3.0"; exit 0;; '
        '--list-langs) printf "List of available languages (2):\\neng\\nrus\\n"; exit 0;; esac\n' + body
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(folder)


@pytest.mark.parametrize(
    "body, reason",
    [
        ("sleep 30\n", "OCR timed out after 0.5 s"),
        ("echo 'Segmentation fault' >&2; exit 139\n", "OCR failed (Latin pass"),
    ],
)
def test_a_photo_whose_ocr_fails_is_indexed_without_text_and_reported(
    make_photos, tmp_path, tiny_siglip, monkeypatch, body, reason
):
    folder = library(make_photos)
    monkeypatch.setenv("PATH", fake_tesseract(tmp_path / "bin", body) + os.pathsep + os.environ["PATH"])
    monkeypatch.setattr("indexer.ocr.PASS_TIMEOUT", 0.5)
    summary = build_index([folder], tmp_path / "index", tiny_siglip, show_progress=False, ocr="on")
    assert summary.images == 10 and not summary.errors  # every photo searchable
    # a timed-out pass ends at its timeout, with what it started (the script's `sleep`): not 30 s later
    assert summary.text["seconds"] < 20, summary.text
    failed = {os.path.relpath(error["path"], folder): error["reason"] for error in summary.text["errors"]}
    assert set(failed) == {"city/0007.jpg", "city/0008.jpg"} and all(r.startswith(reason) for r in failed.values())
    with IndexStore.open(tmp_path / "index") as store:
        assert len(text_hits(store.catalog, "trevi")) == 2 and text_hits(store.catalog, "cafe") == []


def test_ocr_on_without_tesseract_is_one_clear_error(make_photos, tmp_path, tiny_siglip, monkeypatch, cli):
    from indexer.ocr import OcrUnavailableError

    folder = library(make_photos)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(OcrUnavailableError, match="apt install tesseract-ocr"):
        build_index([folder], tmp_path / "index", tiny_siglip, show_progress=False, ocr="on")
    summary = build_index([folder], tmp_path / "index", tiny_siglip, show_progress=False)  # auto: words only
    assert summary.text["ocr"] == "off" and summary.images == 10


@pytest.mark.slow  # kills a build process and reruns it
@pytest.mark.timeout(600)
def test_kill_9_during_the_ocr_pass_then_rerun_completes_text_and_vectors(make_photos, tmp_path, tiny_mllama_dir, cli):
    photos = make_photos("photos")
    for i, word in enumerate(["CAFÉ CENTRAL", "BAKERY", "PHARMACY", "MUSEUM", "STATION", "HARBOUR"]):
        save(sign_photo(word, "latin", seed=40 + i), photos.folder / f"{i:04d}.jpg")
    index = tmp_path / "index"

    def ocr_rows() -> int:
        try:
            with sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1) as connection:
                return connection.execute("SELECT count(*) FROM ocr_text").fetchone()[0]
        except sqlite3.Error:
            return -1

    assert kill_when(start_build(photos.folder, index, tiny_mllama_dir), lambda: 1 <= ocr_rows() < 6, ocr_rows)
    assert 1 <= ocr_rows() < 6  # killed in the middle of the OCR pass
    result = cli("build", "--dir", photos.folder, "--index", index, "--model", tiny_mllama_dir, "--quiet", "--json")
    assert result.returncode == 0, result.stderr
    assert 0 < json.loads(result.stdout)["text"]["ocr_read"] < 6  # only what the killed run had not done
    assert verify(index).clean
    with IndexStore.open(index) as store:
        assert store.count == 6 and sorted(store.index.ids().tolist()) == store.catalog.ok_ids().tolist()
        names = {record.id: os.path.basename(record.path) for record in store.records(store.catalog.ok_ids())}
        for i, word in enumerate(["cafe central", "bakery", "pharmacy", "museum", "station", "harbour"]):
            assert [names[h.image_id] for h in text_hits(store.catalog, word)] == [f"{i:04d}.jpg"], word


@pytest.mark.slow  # runs a benchmark script end to end
def test_the_ocr_benchmark_runs_at_toy_scale(tiny_mllama_dir, capsys):
    from benchmarks import bench_ocr

    assert (
        bench_ocr.main(
            ["--scripts", "latin", "--per-script", "2", "--distractors", "2", "--model", str(tiny_mllama_dir), "--json"]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["photos"] == 4 and figures["scripts"]["latin"]["recall@1_fused"] == 1.0
    assert figures["text_pass_img_s"] > 0 and figures["detect_img_s"] > 0 and figures["ocr_errors"] == 0
    assert figures["false_matches_per_query"] == 0 and figures["no_text_photos_with_text"] == 0


@pytest.mark.slow  # a benchmark's toy run
def test_the_ocr_benchmark_measures_the_cost_per_1000_photos_at_a_text_share(tiny_mllama_dir, capsys):
    from benchmarks import bench_ocr

    assert (
        bench_ocr.main(
            [
                "--scripts",
                "latin",
                "--cost-photos",
                "4",
                "--text-share",
                "0,0.5",
                "--model",
                str(tiny_mllama_dir),
                "--json",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["photos"] == 4 and set(figures["shares"]) == {"0", "0.5"}
    assert [figures["shares"][share]["ocr_with_text"] for share in ("0", "0.5")] == [0, 2]  # two signs read
    assert all(
        row["text_pass_s_per_1000"] > 0 and row["build_s_per_1000_ocr_on"] > 0 and row["ocr_errors"] == 0
        for row in figures["shares"].values()
    )
    with pytest.raises(SystemExit):
        bench_ocr.main(["--cost-photos", "4", "--text-share", "1.5"])


def test_a_photo_over_its_time_budget_is_reported_not_waited_for(tmp_path, engine, monkeypatch):
    monkeypatch.setattr("indexer.ocr.PHOTO_TIMEOUT", 0.0)
    outcome = recognize(engine, save(sign_photo("BAKERY", "latin", seed=4), tmp_path / "sign.jpg"))
    assert outcome.text == "" and outcome.error.startswith("OCR took more than 0 s for this photo")


def test_non_utf8_file_names_keep_their_readable_words(photos, tmp_path, tiny_siglip):
    raw_name = b"caf\xe9_sign-IMG_0042.jpg"  # Latin-1 bytes: not UTF-8
    Image.fromarray(photos.pixels(96, 72)).save(photos.path(raw_name), "JPEG")
    photos.jpeg("other.jpg")
    summary = build_index([photos.folder], tmp_path / "index", tiny_siglip, show_progress=False, ocr="off")
    assert summary.images == 2 and summary.text["words_read"] == 2
    with IndexStore.open(tmp_path / "index") as store:
        hits = text_hits(store.catalog, "sign")
        assert len(hits) == 1 and hits[0].source == "filename" and hits[0].snippet == "caf sign"
    assert verify(tmp_path / "index").clean


def test_verify_reports_a_full_text_index_out_of_step_and_repair_lets_the_next_build_refill_it(
    photos, tmp_path, tiny_siglip
):
    photos.jpeg("rome_trevi.jpg")
    photos.jpeg("paris_louvre.jpg")
    index = tmp_path / "index"
    build_index([photos.folder], index, tiny_siglip, show_progress=False, ocr="off")
    with sqlite3.connect(index / "catalog.sqlite") as connection:
        connection.execute("DELETE FROM text_fts WHERE rowid = (SELECT min(id) FROM images)")
        connection.execute(
            "INSERT INTO text_fts(rowid, filename, keywords, description, ocr) VALUES (999, 'x', '', '', '')"
        )
    report = verify(index)
    assert not report.clean and {
        "1 full-text row(s) belong to no searchable photo",
        "1 photo(s) have words but no full-text row",
    } <= set(report.problems)
    repaired = verify(index, repair=True)
    assert any(line.startswith("emptied the full-text index") for line in repaired.repaired), repaired.repaired
    assert not repaired.unrepaired and verify(index).clean
    assert build_index([photos.folder], index, tiny_siglip, show_progress=False, ocr="off").text["words_read"] == 2
    with IndexStore.open(index) as store:
        assert [h.source for h in text_hits(store.catalog, "louvre")] == ["filename"]


def test_ocr_reads_the_photo_upright(tmp_path, engine):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter left: shown turned back
    path = tmp_path / "turned.jpg"
    sign_photo("MUSEUM", "latin", seed=6).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=92)
    assert _upright(str(path)).size == (640, 420)
    assert "museum" in normalize(recognize(engine, str(path)).text)


def test_a_stopping_build_ends_a_running_tesseract_pass_at_once(tmp_path):
    """Ctrl-C or SIGTERM during the OCR pass: a running pass is killed and the page given up within a poll, not
    waited for (up to 30 s a pass, 90 s a photo, per worker: a watcher told to stop hung that long)."""
    import threading
    import time

    from indexer.ocr import Interrupted, OcrEngine, read_page

    slow = tmp_path / "tesseract"  # a Tesseract that would take a minute
    slow.write_text("#!/bin/sh\nexec sleep 60\n")
    slow.chmod(0o755)
    engine = OcrEngine(binary=str(slow), version="5", passes=(("latin", "eng"), ("cyrillic", "rus")))
    page = tmp_path / "page.png"
    Image.new("RGB", (10, 10)).save(page)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match="eng pass was stopped"):
        read_page(engine, str(page), stop=stop)
    assert time.monotonic() - started < 5
    with pytest.raises(Interrupted, match="before the latin pass"):  # a page that had not started: not started
        read_page(engine, str(page), stop=stop)
    timed_out = read_page(engine, str(page), timeout=0.5)  # without a stop, the pass timeout still applies
    assert timed_out.error and "timed out after 0.5 s (latin pass)" in timed_out.error
