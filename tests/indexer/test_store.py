"""IndexStore and open_index: the read API other packages build on, and its errors."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from indexer import (
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexStore,
    build_index,
    open_index,
)


@pytest.fixture
def built(photos, tmp_path, tiny_mllama):
    for i in range(5):
        photos.jpeg(f"{i}.jpg", exif=photos.exif(taken=f"2020:01:0{i + 1} 10:00:00") if i < 2 else None)
    photos.raw("bad.jpg", b"nope")
    index_dir = tmp_path / "index"
    build_index([photos.folder], index_dir, tiny_mllama, show_progress=False)
    return index_dir


def test_search_records_and_vectors(built, photos, tiny_mllama):
    with IndexStore.open(built) as store:
        query = tiny_mllama.encode_text_queries(["a red circle"])
        scores, ids = store.search(query, k=10)
        assert scores.shape == ids.shape == (1, 10) and scores.dtype == np.float32 and ids.dtype == np.int64
        assert (ids[0, :5] >= 0).all() and (ids[0, 5:] == -1).all() and np.isneginf(scores[0, 5:]).all()
        assert (np.diff(scores[0, :5]) <= 1e-6).all()  # best first
        records = store.records(ids[0])
        assert records[5:] == [None] * 5
        assert sorted(r.relpath for r in records[:5]) == [f"{i}.jpg" for i in range(5)]
        first = next(r for r in records[:5] if r.relpath == "0.jpg")
        assert first.taken_at.year == 2020 and first.camera == "Canon EOS 5D" and first.status == "ok"
        assert first.size == (photos.folder / "0.jpg").stat().st_size and first.width == 96
        vectors = store.vectors(ids[0, :5])
        np.testing.assert_allclose((vectors @ query[0]), scores[0, :5], atol=1e-3)
        with pytest.raises(KeyError, match="no stored vector"):
            store.vectors([10**9])
        with pytest.raises(ValueError, match="shape"):
            store.search(np.ones((1, 3), np.float32), k=1)


def test_info_payload(built, photos, tiny_mllama):
    with IndexStore.open(built) as store:
        info = store.info()
    assert info["images"] == 5 and info["errors"] == 1 and info["stored_vectors"] == 5
    assert info["model_id"] == tiny_mllama.model_id and info["dim"] == 64 and info["index_type"] == "flat"
    assert info["recall"]["exact"] is True and info["recall"]["recall_at_k"] == 1.0
    assert info["roots"] == [str(photos.folder.resolve())] and info["in_sync"] is True
    assert info["size_bytes"]["total"] >= info["size_bytes"]["catalog"] > 0 and info["size_bytes"]["vector_index"] > 0
    assert info["last_build"]["added"] == 5 and info["last_build"]["error_count"] == 1
    assert info["error_list"] == [{"path": str(photos.folder / "bad.jpg"), "error": "not an image file Pillow can read"}]


def test_open_index_loads_the_same_model_and_refuses_another(built, tiny_mllama, tiny_siglip, tiny_siglip_dir):
    embedder, store = open_index(built, device="cpu")
    with store:
        assert embedder.fingerprint == store.fingerprint == tiny_mllama.fingerprint
        store.check_embedder(tiny_mllama)
        with pytest.raises(IndexMismatchError, match="cannot be mixed"):
            store.check_embedder(tiny_siglip)
    with pytest.raises(IndexMismatchError, match="was built with"):
        open_index(built, model=str(tiny_siglip_dir), device="cpu")


def test_building_with_another_model_is_refused_and_changes_nothing(built, photos, tiny_siglip):
    before = (built / "catalog.sqlite").read_bytes()
    photos.jpeg("new.jpg")
    with pytest.raises(IndexMismatchError):
        build_index([photos.folder], built, tiny_siglip, show_progress=False)
    with IndexStore.open(built) as store:
        assert store.count == 5
    assert len((built / "catalog.sqlite").read_bytes()) == len(before)


def test_missing_and_corrupt_indexes_give_clear_errors(built, tmp_path):
    with pytest.raises(IndexNotFoundError, match="no index here.*python -m indexer build"):
        IndexStore.open(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "catalog.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IndexCorruptError, match="not a readable SQLite catalog"):
        IndexStore.open(broken)


def test_lost_or_damaged_faiss_file_is_rebuilt_from_stored_vectors(built, tiny_mllama):
    with IndexStore.open(built) as store:
        query = tiny_mllama.encode_text_queries(["x"])
        expected = store.search(query, 5)
    (built / "vectors.faiss").write_bytes(b"garbage")
    with IndexStore.open(built) as store:
        assert store.sync_report.rebuilt and "unreadable" in store.sync_report.rebuilt
        got = store.search(query, 5)
    np.testing.assert_array_equal(got[1], expected[1])
    (built / "vectors.faiss").unlink()
    with IndexStore.open(built) as store:
        np.testing.assert_array_equal(store.search(query, 5)[1], expected[1])


def test_a_second_writer_is_refused_while_a_build_runs(built, photos, tiny_mllama):
    from indexer import IndexLockedError
    from indexer.lock import WriteLock

    with WriteLock(built):
        with pytest.raises(IndexLockedError, match="another indexer process"):
            build_index([photos.folder], built, tiny_mllama, show_progress=False)
    build_index([photos.folder], built, tiny_mllama, show_progress=False)  # lock released


def test_store_copy_opens_elsewhere(built, tmp_path):
    """Paths inside the index are not tied to the index folder's location."""
    moved = tmp_path / "moved-index"
    shutil.copytree(built, moved)
    with IndexStore.open(moved) as store:
        assert store.count == 5 and store.info()["index_dir"] == str(moved)


def test_a_catalog_from_another_version_is_refused_not_misread(built):
    import sqlite3

    with sqlite3.connect(built / "catalog.sqlite") as connection:
        connection.execute("ALTER TABLE images DROP COLUMN retry")
    with pytest.raises(IndexCorruptError, match=r"lacks columns \['retry'\]"):
        IndexStore.open(built)
