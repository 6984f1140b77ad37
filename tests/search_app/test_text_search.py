"""One search box, two signals: photos whose words (OCR text, names, XMP keywords) match the query come first,
fused with the vector ranking; a query without a text hit ranks exactly as the vector search alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.text_photos import sign_photo, texture
from indexer import IndexStore, build_index
from search_app.engine import SearchEngine, SearchOptions

from .conftest import REPO

SIDECAR = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>Trevi</rdf:li>'
    "</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
)


@pytest.fixture(scope="module")
def text_library(tmp_path_factory, tiny_mllama):
    folder = tmp_path_factory.mktemp("text-photos")
    for relpath, image in [
        ("city/0007.jpg", sign_photo("CAFÉ CENTRAL", "latin", seed=11)),
        ("rome_trevi.jpg", texture((320, 240), seed=13)),
        ("trip/IMG_2041.jpg", texture((320, 240), seed=14)),
        *[(f"misc/DSC{i:05d}.jpg", texture((320, 240), seed=30 + i)) for i in range(24)],
    ]:
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / relpath, quality=90)
    (folder / "trip" / "IMG_2041.xmp").write_text(SIDECAR, encoding="utf-8")
    (folder / "misc" / "copy-of-sign.jpg").write_bytes((folder / "city" / "0007.jpg").read_bytes())
    index = tmp_path_factory.mktemp("text-index")
    summary = build_index([folder], index, tiny_mllama, show_progress=False)
    assert summary.text["ocr_with_text"] == 1, summary.text  # the sign, once for both copies
    return folder, index


@pytest.fixture(scope="module")
def engine(text_library, tiny_mllama):
    engine = SearchEngine(IndexStore.open(text_library[1]), tiny_mllama)
    yield engine
    engine.close()


def relpaths(page):
    return [result.relpath for result in page.results]


def vector_only(engine, text, **options):
    """The ranking without the text signal (what every search was before)."""
    return engine.rank(engine.encode_query(text=text), SearchOptions.parse(**options))


def test_text_in_the_photo_ranks_it_first_with_its_snippet(engine):
    for query in ["café central", "CAFE CENTRAL", '"café central"', "central"]:
        page = engine.search_text(query, k=3)
        first = page.results[0]
        assert first.relpath == "city/0007.jpg" and first.also_at[0].endswith("misc/copy-of-sign.jpg"), query
        match = first.to_json()["text_match"]
        assert match["source"] == "ocr" and "CENTRAL" in match["snippet"]
        marked = [match["snippet"][a:b] for a, b in match["marks"]]
        assert marked and all(word.casefold() in ("cafe", "café", "central", "cafe central") for word in marked), marked
        assert "text_match" not in page.results[1].to_json()  # the rest is the vector ranking
    assert json.loads(json.dumps(page.to_json()))["results"][0]["text_match"]["source"] == "ocr"


def test_names_and_xmp_keywords_are_found_and_exact_hits_stay_on_page_one(engine):
    page = engine.search_text("trevi", k=2)
    sources = {result.relpath: result.text_match.source for result in page.results}
    assert sources == {"rome_trevi.jpg": "filename", "trip/IMG_2041.jpg": "keywords"}
    ranked = relpaths(vector_only(engine, "trevi", k=50))
    assert ranked.index("rome_trevi.jpg") >= 0  # wherever the vector puts them, the text puts them on page 1
    # pages of the fused ranking: every photo once, text hits first, then the vector order without them
    seen, offset = [], 0
    while offset is not None:
        page = engine.search_text("trevi", k=4, offset=offset)
        seen += relpaths(page)
        offset = page.next_offset
    assert seen[:2] == relpaths(engine.search_text("trevi", k=2)) and len(seen) == len(set(seen)) == len(ranked)
    assert seen[2:] == [path for path in ranked if path not in seen[:2]]


def test_a_query_matching_no_text_ranks_exactly_as_before(engine):
    for query in ["zebra crossing at dusk", "кошка на диване", '"central cafe"', "cafe trevi"]:
        fused, plain = engine.search_text(query, k=50), vector_only(engine, query, k=50)
        assert [(r.image_id, r.score) for r in fused.results] == [(r.image_id, r.score) for r in plain.results]
        assert all(result.text_match is None for result in fused.results)


def test_filters_apply_to_text_hits(engine):
    page = engine.search_text("café central", k=50, folder="misc")
    assert "city/0007.jpg" not in relpaths(page)
    assert page.results[0].relpath == "misc/copy-of-sign.jpg" and page.results[0].text_match.source == "ocr"
    excluded = engine.search_text("trevi", k=50, exclude=[r.image_id for r in engine.search_text("trevi", k=1).results])
    assert len([r for r in excluded.results if r.text_match is not None]) == 1


@pytest.mark.slow  # runs the CLI in subprocesses (model loads each time)
def test_cli_search_finds_the_sign_first_from_its_text(text_library, tiny_mllama_dir):
    _folder, index = text_library
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "indexer",
            "search",
            "--index",
            str(index),
            "--text",
            "café central",
            "--json",
            "-k",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    assert results[0]["path"].endswith(("city/0007.jpg", "misc/copy-of-sign.jpg"))
    assert results[0]["text_match"]["source"] == "ocr" and results[2]["text_match"] is None
    plain = subprocess.run(
        [
            sys.executable,
            "-m",
            "indexer",
            "search",
            "--index",
            str(index),
            "--text",
            "zebra crossing",
            "--json",
            "-k",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert all(hit["text_match"] is None for hit in json.loads(plain.stdout)["results"])


@pytest.mark.parametrize("few_matches", [10_000, 0], ids=["few", "many"])
def test_has_text_filter_keeps_only_photos_with_text_in_them(engine, few_matches, monkeypatch):
    import search_app.ranking as ranking

    monkeypatch.setattr(ranking, "FEW_MATCHES", few_matches)  # however many match, the catalog answers
    page = engine.search_text("zebra crossing", k=50, has_text="yes", collapse_duplicates=False)
    assert sorted(relpaths(page)) == ["city/0007.jpg", "misc/copy-of-sign.jpg"]
    assert (
        len(engine.search_text("zebra crossing", k=50, has_text="").results) == 27
    )  # off: every photo (the copy folded)
    with pytest.raises(ValueError, match="has_text 'maybe' is not yes or no"):
        engine.search_text("zebra crossing", has_text="maybe")


def test_the_ui_snippet_marks_the_matched_words_and_escapes_everything_else():
    from indexer.fulltext import TextHit, _hit, parse_query
    from search_app.text_match import snippet_html

    hit = _hit(
        7,
        {"ocr": "<img src=x onerror=alert(1)> CAFÉ & Central\nbar", "keywords": "", "description": "", "filename": ""},
        parse_query("cafe central"),
    )
    assert isinstance(hit, TextHit) and hit.source == "ocr"
    shown = snippet_html(hit)
    assert shown == (
        "text in the photo: “&lt;img src=x onerror=alert(1)&gt; <mark>CAFÉ</mark> &amp; <mark>Central</mark> bar”"
    )


def test_the_ui_shows_text_hits_first_with_their_marked_snippet_and_pages_on(engine, tmp_path):
    from search_app.thumbnails import ThumbnailCache
    from search_app.ui import SearchUI
    from search_app.ui_reply import OUTPUTS

    from .test_ui_messages import NoProgress

    ui = SearchUI(engine, ThumbnailCache(tmp_path / "thumbs"), page_size=2)
    outputs = dict(zip(OUTPUTS, ui.on_search("trevi", None, progress=NoProgress())))
    session = outputs["session"]
    assert {result.relpath for result in session.results} == {"rome_trevi.jpg", "trip/IMG_2041.jpg"}
    captions = [item["caption"] if isinstance(item, dict) else item[1] for item in outputs["gallery"].value]
    assert any(caption.endswith("· “rome trevi”") for caption in captions), captions
    more = dict(zip(OUTPUTS, ui.on_more(session, [], progress=NoProgress())))
    assert [r.relpath for r in more["session"].results] == relpaths(engine.search_text("trevi", k=4))
    event = type("Select", (), {"index": [r.relpath for r in session.results].index("trip/IMG_2041.jpg")})()
    details = ui.on_select(session, event)[0]
    assert "keywords: “<mark>Trevi</mark>”" in details


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '""',
        '"café',
        "NEAR(a b) OR * -",
        "x' OR 1=1 --",
        "%_%",
        "ab",
        "東京",
        "central*",
        '"central" "cafe',
        "\x00cafe",
    ],
)
def test_queries_with_full_text_syntax_are_plain_words(engine, query):
    page = engine.search_text(query, k=5)  # never an FTS5 syntax error, never SQL
    assert len(page.results) == 5


def test_the_viewer_and_the_api_give_the_text_read_in_the_photo(engine, tmp_path):
    """Opening the sign shows what OCR read in it, as a quote in its own direction that can be copied; a photo
    without text shows no such block; the HTTP API's photo record carries the same text."""
    from starlette.testclient import TestClient

    from search_app.rest import RestAPI
    from search_app.thumbnails import ThumbnailCache
    from search_app.ui import SearchUI
    from search_app.ui_reply import OUTPUTS

    from .test_ui_messages import NoProgress

    ui = SearchUI(engine, ThumbnailCache(tmp_path / "thumbs"), page_size=3)
    session = dict(zip(OUTPUTS, ui.on_search("café central", None, progress=NoProgress())))["session"]
    relpaths_shown = [result.relpath for result in session.results]
    sign = relpaths_shown.index("city/0007.jpg")
    details = ui.on_select(session, type("Select", (), {"index": sign})())[0]
    quote = details.split('<blockquote id="photo_text" dir="auto">', 1)[1].split("</blockquote>", 1)[0]
    assert "CAFÉ CENTRAL" in quote.replace("<br>", " ").upper() or "CAFE CENTRAL" in quote.upper(), details
    plain = next(i for i, relpath in enumerate(relpaths_shown) if relpath != "city/0007.jpg")
    assert "photo_text" not in ui.on_select(session, type("Select", (), {"index": plain})())[0]
    record = engine.record(session.results[sign].image_id)
    assert (
        engine.photo_text(record.content_hash)
        and engine.photo_text(record.content_hash) in quote.replace("<br>", "\n") + "\n"
    )
    from .test_rest_routes import mounted

    with TestClient(mounted(RestAPI(engine)), base_url="http://127.0.0.1/api/v1") as client:
        answer = client.get(f"/photos/{record.id}").json()
    assert answer["text"] == engine.photo_text(record.content_hash)


def test_text_from_a_hostile_index_is_shown_as_text_not_markup(engine, tmp_path, monkeypatch):
    """A published index decides what its OCR text says: the viewer quotes it escaped, line by line, never as HTML."""
    from search_app.thumbnails import ThumbnailCache
    from search_app.ui import SearchUI

    ui = SearchUI(engine, ThumbnailCache(tmp_path / "thumbs"), page_size=3)
    monkeypatch.setattr(engine, "photo_text", lambda content_hash: '<img src=x onerror="alert(1)">\n</blockquote>x')
    result = engine.search_text("café central", k=1).results[0]
    quote = ui._text_in_photo(result)[0]
    assert "<img" not in quote and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;<br>&lt;/blockquote&gt;x" in quote
    assert quote.count("</blockquote>") == 1
