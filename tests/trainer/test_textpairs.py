"""``trainer adapt``'s free training pairs: text OCR read in a training photo (and its keywords) -> that photo."""

from __future__ import annotations

import json

import pytest

from benchmarks.text_photos import sign_photo, texture

SIDECAR = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>Trevi</rdf:li>'
    "<rdf:li>x1</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
)
SIGNS = ["CAFÉ CENTRAL", "BAKERY", "PHARMACY", "MUSEUM", "STATION", "HARBOUR", "LIBRARY", "THEATER"]
JUNK = "|l1 ;:\n~~ ll\nX3q@7\n.,-"  # what Tesseract returns for strokes, fences and foliage


@pytest.mark.parametrize(
    "text, query",
    [
        ("CAFÉ CENTRAL", "café central"),
        ("  Rue de l'Église, 12 ", "rue de l'église"),  # a house number is dropped, the words kept
        ("東京駅", "東京駅"),
        ("АПТЕКА", "аптека"),
        ("ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN", "one two three four five six seven eight"),
        ("|l1 ;:", None),
        ("~~ ll", None),
        ("X3q@7", None),
        ("lll iii", None),
        ("1998", None),
        ("ok", None),  # too short to mean anything
        ("BAKERY ]|", None),  # a stray symbol: the line is noise more often than not
        ("", None),
    ],
)
def test_only_real_words_become_queries(text, query):
    from trainer.textpairs import query_of

    assert query_of(text) == query


def test_queries_of_one_photo_are_capped_and_ocr_comes_first():
    from trainer.textpairs import PER_PHOTO, queries_of

    found = queries_of("OPEN\nCAFÉ CENTRAL\nopen\nMENU", "Lisbon\ncafe", "A café in Lisbon")
    assert found == [("open", "ocr"), ("café central", "ocr")][:PER_PHOTO]
    assert queries_of(JUNK, "Lisbon", "") == [("lisbon", "keywords")]


def test_a_latin_sign_read_by_the_cyrillic_pass_gives_no_query():
    """As measured on benchmarks/bench_adapt_text.py's signs: Tesseract's rus pass reads BAKERY as ВАКЕКУ."""
    from trainer.textpairs import queries_of

    assert queries_of("BAKERY\nВАКЕКУ", "", "") == [("bakery", "ocr")]
    assert queries_of("THEATER\nТНЕАТЕВ\nМУЗЕЙ", "", "") == [("theater", "ocr"), ("музей", "ocr")]
    assert queries_of("CAFE\nКАФЕ", "", "") == [("cafe", "ocr"), ("кафе", "ocr")]  # Ф: a real Cyrillic word
    assert queries_of("ТАКСИ", "", "") == [("такси", "ocr")] and queries_of("ВАКЕКУ", "", "") == [("вакеку", "ocr")]


@pytest.fixture(scope="module")
def text_index(tmp_path_factory, tiny_mllama):
    from indexer import IndexStore, build_index
    from indexer.catalog import OcrText, utcnow

    folder = tmp_path_factory.mktemp("adapt-text-photos")
    for number, word in enumerate(SIGNS):
        sign_photo(word, "latin", seed=40 + number).save(folder / f"IMG_{number:04d}.jpg", quality=92)
    (folder / "IMG_0000 copy.jpg").write_bytes((folder / "IMG_0000.jpg").read_bytes())
    texture((320, 240), seed=5).save(folder / "rome_trevi.jpg", quality=90)  # a file name alone: no pair
    texture((320, 240), seed=6).save(folder / "DSC_0001.jpg", quality=90)
    (folder / "DSC_0001.xmp").write_text(SIDECAR, encoding="utf-8")
    texture((320, 240), seed=7).save(folder / "DSC_0002.jpg", quality=90)  # its OCR result will be junk
    index = tmp_path_factory.mktemp("adapt-text-index")
    summary = build_index([folder], index, tiny_mllama, show_progress=False)
    assert summary.text["ocr_with_text"] >= 7, summary.text  # real Tesseract read the signs
    with IndexStore.open(index) as store:
        junk = next(r for r in store.records(store.ids()) if r.path.endswith("DSC_0002.jpg"))
        with store.catalog.session() as session:  # what OCR returns for a fence: kept in the catalog as read
            session.merge(OcrText(content_hash=junk.content_hash, text=JUNK, engine="tesseract", done_at=utcnow()))
            session.commit()
    return folder, index


@pytest.mark.slow  # builds an index with real OCR (about 30 s)
def test_training_photos_give_their_sign_text_and_keywords_as_queries(text_index):
    from indexer import IndexStore
    from indexer.fulltext import photo_texts
    from trainer.textpairs import text_pairs, training_row

    folder, index = text_index
    with IndexStore.open(index) as store:
        ids = store.ids()
        pairs = text_pairs(store, ids, set(), 100, seed=0)
        texts = photo_texts(store.catalog, ids)  # the index's own ids (numpy integers) as well as Python ints
        assert texts == photo_texts(store.catalog, [int(i) for i in ids]) and len(texts) >= 9
        assert texts[next(r.id for r in store.records(ids) if r.path.endswith("DSC_0001.jpg"))][
            "keywords"
        ].splitlines() == ["Trevi", "x1"]
    found = {(p.query, p.path.rsplit("/", 1)[1], p.source) for p in pairs}
    # Tesseract reads the sign with or without its accent; the copy and the original are one photo
    sign = [p for p in pairs if p.query in ("café central", "cafe central")]
    assert len(sign) == 1 and sign[0].source == "ocr" and sign[0].path.rsplit("/", 1)[1].startswith("IMG_0000")
    assert ("trevi", "DSC_0001.jpg", "keywords") in found
    assert not [p for p in pairs if p.path.endswith(("DSC_0002.jpg", "rome_trevi.jpg"))]  # junk OCR, file name
    assert {p.query for p in pairs if p.source == "ocr"} >= {"bakery", "pharmacy", "museum"}
    assert all(p.query == p.query.lower() and not any(c.isdigit() for c in p.query) for p in pairs)
    row = training_row(next(p for p in pairs if p.query == "trevi"))
    assert row["qry"] == "Find me an everyday image that matches the given caption: trevi\n"
    assert row["pos_image_path"] == str(folder / "DSC_0001.jpg") and row["neg_image_path"] == "[]"
    assert row["pos_text"] == "<|image_1|>\nRepresent the given image.\n"


@pytest.mark.slow  # builds an index with real OCR (about 30 s)
def test_held_out_photos_synthetic_duplicates_and_the_cap_give_no_pairs(text_index):
    from indexer import IndexStore
    from trainer.adapt import heldout_side, split_library
    from trainer.textpairs import text_pairs

    folder, index = text_index
    with IndexStore.open(index) as store:
        split = split_library(store, 0.5)
        records = {r.id: r for r in store.records(store.ids())}
        pairs = text_pairs(store, split["train"], set(), 100, seed=0)
        held = {records[i].content_hash for i in split["heldout"]}
        signs_held = [
            w for n, w in enumerate(SIGNS) if heldout_side(records_of(records, f"IMG_{n:04d}.jpg").content_hash, 0.5)
        ]
        assert signs_held and len(signs_held) < len(SIGNS)  # both sides hold signs at this share
        assert pairs and not [p for p in pairs if records[p.photo].content_hash in held]
        assert not {p.query for p in pairs} & {w.lower() for w in signs_held}
        # a pair synthesis already made for the same photo is not made twice; the cap and the seed hold
        first = pairs[0]
        again = text_pairs(store, split["train"], {(first.query, first.path)}, 100, seed=0)
        assert first.query not in {p.query for p in again} and len(again) == len(pairs) - 1
        assert len(text_pairs(store, split["train"], set(), 2, seed=0)) == 2
        assert text_pairs(store, split["train"], set(), 0, seed=0) == []
        assert text_pairs(store, split["train"], set(), 100, seed=0) == pairs  # deterministic


def records_of(records: dict, name: str):
    return next(r for r in records.values() if r.path.endswith("/" + name))


def test_the_report_counts_text_pairs_and_says_when_they_are_off(tmp_path):
    from trainer.adapt_report import write_report

    result = {
        "overall": {"recall@1": 1.0, "recall@5": 2.0, "recall@10": 3.0, "mrr": 0.1, "queries": 4},
        "by_language": {},
        "by_task": {},
        "library": 10,
    }
    report = {
        "model": "m",
        "index": "i",
        "before": result,
        "after": result,
        "split": {"heldout": 2, "train": 8},
        "synth": {"heldout": {"accepted": 4}, "train": {"accepted": 8}, "cost_usd": None},
        "text_pairs": {"pairs": 5, "by_source": {"ocr": 4, "keywords": 1, "description": 0}, "photos": 5},
        "training": {"steps": 1, "first_loss": 1.0, "last_loss": 0.5},
        "applied": {"applied": False, "reason": "no gain"},
    }
    write_report(tmp_path, report)
    assert (
        "Text pairs (OCR, keywords, descriptions → photo): 5 (4 from ocr, 1 from keywords)."
        in (tmp_path / "report.md").read_text()
    )
    assert json.loads((tmp_path / "report.json").read_text())["text_pairs"]["pairs"] == 5
    report["text_pairs"] = {"pairs": 0, "by_source": {}, "photos": 0, "off": True}
    write_report(tmp_path, report)
    assert "Text pairs: off (--text-pairs turns them on)." in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_adapt_trains_on_the_text_pairs_of_training_photos_only_and_reports_them(text_index, cli_env, tmp_path):
    """End to end (2 steps at lr 0: what is trained on, not how well): with --text-pairs the pairs reach train.jsonl
    and the report; without it (the default) there are none."""
    from indexer import IndexStore

    from .shapes_server import shapes_server
    from .test_adapt import adapt

    _folder, index = text_index
    flags = ["--n", "12", "--n-eval", "6", "--heldout", "0.5", "--steps", "2", "--batch-size", "4", "--lr", "0"]
    flags += ["--no-apply", "--save-every", "0", "--no-gradient-checkpointing"]
    with shapes_server() as server:
        on = adapt(index, tmp_path / "on", server, cli_env, *flags, "--text-pairs")
        off = adapt(index, tmp_path / "off", server, cli_env, *flags)  # the default
    assert on.returncode == 0, on.stderr[-3000:]
    assert off.returncode == 0, off.stderr[-3000:]
    report = json.loads((tmp_path / "on" / "report.json").read_text())
    found = report["text_pairs"]
    assert found["pairs"] >= 3 and found["by_source"]["ocr"] >= 3 and found["photos"] <= found["pairs"]
    assert (
        f"Text pairs (OCR, keywords, descriptions → photo): {found['pairs']}"
        in (tmp_path / "on" / "report.md").read_text()
    )
    assert f"text pairs: {found['pairs']} (query → photo)" in on.stderr
    rows = [json.loads(line) for line in (tmp_path / "on" / "train.jsonl").read_text().splitlines()]
    text_rows = [row for row in rows if row["neg_image_path"] == "[]"]
    assert len(text_rows) == found["pairs"] and len(rows) == found["pairs"] + report["synth"]["train"]["accepted"]
    split = json.loads((tmp_path / "on" / "split.json").read_text())
    with IndexStore.open(index) as store:
        records = {r.id: r for r in store.records(store.ids())}
    held = {records[i].content_hash for i in split["heldout"]}
    by_path = {r.path: r for r in records.values()}
    assert not [row for row in text_rows if by_path[row["pos_image_path"]].content_hash in held]
    assert {SIGN.lower() for SIGN in SIGNS} & {row["qry"].rsplit(": ", 1)[1].strip() for row in text_rows}
    off_report = json.loads((tmp_path / "off" / "report.json").read_text())
    assert off_report["text_pairs"] == {"pairs": 0, "by_source": {}, "photos": 0, "off": True}
    assert "Text pairs: off (--text-pairs turns them on)." in (tmp_path / "off" / "report.md").read_text()
    off_rows = (tmp_path / "off" / "train.jsonl").read_text().splitlines()
    assert len(off_rows) == off_report["synth"]["train"]["accepted"] and '"neg_image_path": "[]"' not in "".join(
        off_rows
    )


def test_a_run_folder_from_before_text_pairs_continues_and_switching_them_is_refused(tmp_path):
    from trainer.adapt import _check_plan
    from trainer.errors import AdaptError

    old = {"index": "i", "n": 10}  # plan.json as adapt wrote it before --text-pairs existed
    (tmp_path / "plan.json").write_text(json.dumps(old))
    _check_plan(tmp_path, dict(old))  # the default (off) continues it
    with pytest.raises(AdaptError, match="text_pairs: was None, now True"):
        _check_plan(tmp_path, {**old, "text_pairs": True})
    (tmp_path / "plan.json").write_text(json.dumps({**old, "text_pairs": True}))
    with pytest.raises(AdaptError, match="text_pairs: was True, now None"):
        _check_plan(tmp_path, dict(old))
