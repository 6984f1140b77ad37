"""Text in a published index (what a Space serves): `indexer push` carries the OCR text, the words and the full-text
index of the published photos, and only theirs; the app serving it from the Hugging Face cache offline finds a
sign by its word with a text_match; a published catalog whose text tables are not what push writes is refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from benchmarks.text_photos import sign_photo, texture

from .test_hub_index import HUB_MODEL, serve_from_cache

SIDECAR = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>Colosseum'
    "</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
)
PRIVATE = "PASSPORT"  # the text of a photo removed from the library before the push: never published


@pytest.fixture(scope="module")
def published(tmp_path_factory, tiny_mllama):
    """(the local index, its prepared upload): a sign, a photo with a sidecar keyword, plain photos; a private
    sign indexed, then deleted before the push; a broken file."""
    from indexer import build_index
    from indexer.publish import prepare_push

    work = tmp_path_factory.mktemp("published-text")
    folder = work / "photos"
    photos = {
        "street/0042.jpg": sign_photo("BAKERY", "latin", seed=7),
        "private/scan.jpg": sign_photo(PRIVATE, "latin", seed=8),
        "trip/IMG_2041.jpg": texture((320, 240), seed=9),
        **{f"misc/DSC{i:05d}.jpg": texture((320, 240), seed=20 + i) for i in range(4)},
    }
    for relpath, image in photos.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        image.save(folder / relpath, quality=92)
    (folder / "trip" / "IMG_2041.xmp").write_text(SIDECAR, encoding="utf-8")
    (folder / "misc" / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    index = work / "index"
    first = build_index([folder], index, tiny_mllama, show_progress=False)
    assert first.text["ocr_with_text"] == 2, first.text  # the test's premise: both signs read
    shutil.rmtree(folder / "private")
    build_index([folder], index, tiny_mllama, show_progress=False)
    with sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True) as catalog:  # premise: OCR is cached
        assert catalog.execute("SELECT count(*) FROM ocr_text WHERE text LIKE ?", (f"%{PRIVATE}%",)).fetchone()[0]
    return index, prepare_push(index, work / "dataset", model_id=HUB_MODEL, show_progress=False)


def test_a_published_index_carries_its_photos_text_and_only_theirs(published):
    _, prepared = published
    catalog_file = prepared.folder / "catalog.sqlite"
    with sqlite3.connect(f"file:{catalog_file}?mode=ro", uri=True) as catalog:
        hashes = {digest for (digest,) in catalog.execute("SELECT content_hash FROM images")}
        ocr = dict(catalog.execute("SELECT content_hash, text FROM ocr_text"))
        words = dict(catalog.execute("SELECT CAST(relpath AS TEXT), keywords FROM words"))
        indexed = {row[0]: row[1:] for row in catalog.execute("SELECT rowid, keywords, ocr FROM text_fts")}
        errors = catalog.execute("SELECT count(*) FROM ocr_text WHERE error IS NOT NULL").fetchone()[0]
        ids = {image_id for (image_id,) in catalog.execute("SELECT id FROM images")}
        blocks = b"".join(block for (block,) in catalog.execute("SELECT block FROM text_fts_data"))
    assert any("BAKERY" in text for text in ocr.values()) and words["trip/IMG_2041.jpg"] == "Colosseum"
    assert set(indexed) == ids and any("bakery" in row[1] for row in indexed.values())
    assert set(ocr) <= hashes, "OCR text of a photo that is not published"
    assert errors == 0  # an OCR error message can name the publisher's path
    assert (
        PRIVATE.encode() not in catalog_file.read_bytes() and PRIVATE.lower().encode() not in catalog_file.read_bytes()
    )
    for trigram in ("ssp", "spo"):  # the removed photo's words are gone from the full-text index's own b-tree too
        assert trigram.encode() not in blocks, trigram


def test_the_app_serving_a_published_index_finds_a_sign_by_its_word(
    published, tiny_mllama_dir, fill_hub_cache, tmp_path, monkeypatch
):
    _, prepared = published
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = serve_from_cache(cache, prepared.folder, tiny_mllama_dir, fill_hub_cache)
    try:
        assert engine.store.read_only
        for query, relpath, source in [
            ("bakery", "street/0042.jpg", "ocr"),
            ("colosseum", "trip/IMG_2041.jpg", "keywords"),
        ]:
            first = engine.search_text(query, k=5).results[0]
            assert (first.relpath, first.text_match.source) == (relpath, source), query
            assert not Path(first.path).exists()  # served from the previews: no originals were published
        assert engine.search_text(PRIVATE.lower(), k=5).results[0].text_match is None
    finally:
        engine.close()


TAMPERED = {
    "a plain table in place of the full-text index": [
        "DROP TABLE text_fts",
        "CREATE TABLE text_fts (filename, keywords, description, ocr)",
    ],
    "a view that costs every search": [
        "DROP TABLE text_fts",
        "CREATE VIEW text_fts AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 100000000) SELECT i AS rowid, '' AS filename, '' AS keywords, '' AS description, '' AS ocr FROM n",
    ],
    "a view in place of the full-text index's own storage": [
        "ALTER TABLE text_fts_idx RENAME TO kept",
        "CREATE VIEW text_fts_idx AS SELECT * FROM kept",
    ],
    "OCR text far longer than the indexer keeps": ["UPDATE ocr_text SET text = text || printf('%.*c', 300000, 'x')"],
    "a keyword that is not a text": ["UPDATE words SET keywords = x'00ff'"],
    "words about a photo that is not in the catalog": [
        "UPDATE words SET image_id = 4242 WHERE image_id = (SELECT min(image_id) FROM words)"
    ],
    "an OCR error message (it may name the publisher's folders)": ["UPDATE ocr_text SET error = '/home/alice/x.jpg'"],
}


@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_published_index_with_text_tables_push_never_writes_is_refused(
    published, tiny_mllama_dir, fill_hub_cache, tmp_path, monkeypatch, tamper
):
    from indexer.errors import PublishedIndexError

    _, prepared = published
    dataset = tmp_path / "dataset"
    shutil.copytree(prepared.folder, dataset)
    with sqlite3.connect(dataset / "catalog.sqlite") as catalog:
        for statement in tamper:
            catalog.execute(statement)
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        PublishedIndexError,
        match=r"hf://datasets/someone/photos .*this published index .*(text|"
        r"words|OCR).*python -m indexer push",
    ):
        serve_from_cache(cache, dataset, tiny_mllama_dir, fill_hub_cache).close()
