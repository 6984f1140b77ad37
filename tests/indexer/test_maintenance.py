"""Index types (auto IVF with reported recall, overrides), verify/repair and remove."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete

import indexer.vectors
from indexer import BadRootError, IndexStore, build_index, remove_root, verify
from indexer.catalog import Catalog, Image, Vector


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """120 small distinct photos shared by the tests of this module (copied when modified)."""
    from .conftest import Photos

    photos = Photos(tmp_path_factory.mktemp("corpus") / "photos")
    for i in range(120):
        photos.jpeg(f"{i // 40}/{i:03d}.jpg", 48, 36)
    return photos


def test_auto_switches_to_ivf_above_the_threshold_and_reports_recall(corpus, tmp_path, tiny_mllama, monkeypatch):
    index_dir = tmp_path / "index"
    monkeypatch.setattr(indexer.vectors, "AUTO_IVF_THRESHOLD", 100)
    summary = build_index([corpus.folder / "0"], index_dir, tiny_mllama, show_progress=False)
    assert summary.index_type == "flat"
    summary = build_index([corpus.folder / "1", corpus.folder / "2"], index_dir, tiny_mllama, show_progress=False)
    assert summary.index_type == "ivf-sq8" and summary.images == 120
    with IndexStore.open(index_dir) as store:
        info = store.info()
        assert info["index_type"] == "ivf-sq8" and info["ivf_lists"] >= 1
        recall = info["recall"]
        assert recall["exact"] is False and recall["k"] == 10 and recall["queries"] == 120
        assert 0.5 <= recall["recall_at_k"] <= 1.0
        vectors = store.vectors(store.catalog.ok_ids()[:20])
        _, ids = store.search(vectors, 1)
        assert (ids[:, 0] == store.catalog.ok_ids()[:20]).mean() >= 0.8  # an image finds itself
    assert verify(index_dir).clean


def test_index_type_override_is_remembered(corpus, tmp_path, tiny_mllama):
    index_dir = tmp_path / "index"
    summary = build_index([corpus.folder / "0"], index_dir, tiny_mllama, show_progress=False, index_type="ivf")
    assert summary.index_type == "ivf"
    summary = build_index([], index_dir, tiny_mllama, show_progress=False)
    assert summary.index_type == "ivf"
    with IndexStore.open(index_dir) as store:
        assert store.info()["index_type_request"] == "ivf" and store.info()["recall"]["exact"] is False
    summary = build_index([], index_dir, tiny_mllama, show_progress=False, index_type="flat")
    assert summary.index_type == "flat"
    with pytest.raises(ValueError, match="unknown index type"):
        build_index([], index_dir, tiny_mllama, show_progress=False, index_type="hnsw-pq-magic")


def test_verify_finds_each_inconsistency_and_repair_fixes_it(corpus, tmp_path, tiny_mllama):
    index_dir = tmp_path / "index"
    build_index([corpus.folder / "0"], index_dir, tiny_mllama, show_progress=False)
    assert verify(index_dir).clean
    catalog = Catalog(index_dir / "catalog.sqlite")
    with catalog.session() as session:  # damage: an orphan vector, an image whose vector is gone
        session.add(Vector(content_hash="f" * 32, vector=np.zeros(64, np.float16).tobytes()))
        victim = session.query(Image).filter(Image.status == "ok").first()
        session.execute(delete(Vector).where(Vector.content_hash == victim.content_hash))
        session.commit()
    catalog.close()
    (index_dir / ".vectors.faiss.abc.tmp").write_bytes(b"half-written")
    report = verify(index_dir)
    text = " | ".join(report.problems)
    assert not report.clean
    assert "1 searchable image(s) have no stored vector" in text and "1 stored vector(s) belong to no image" in text
    assert "leftover temporary file" in text
    repaired = verify(index_dir, repair=True)
    assert repaired.repaired and verify(index_dir).clean
    with IndexStore.open(index_dir) as store:
        assert store.count == 39
    summary = build_index([], index_dir, tiny_mllama, show_progress=False)
    assert summary.added == 1 and summary.embedded == 1  # the forgotten file comes back
    assert verify(index_dir).clean


def test_verify_detects_a_stale_or_missing_vector_index(corpus, tmp_path, tiny_mllama):
    index_dir = tmp_path / "index"
    build_index([corpus.folder / "0"], index_dir, tiny_mllama, show_progress=False)
    from indexer.sync import save_index
    from indexer.vectors import VectorIndex

    index = VectorIndex.load(index_dir / "vectors.faiss")
    index.remove(index.ids()[:3])
    catalog = Catalog(index_dir / "catalog.sqlite", writable=True)
    save_index(catalog, index, index_dir / "vectors.faiss")  # a stale file the catalog vouches for (not damage)
    catalog.close()
    assert "3 searchable image(s) missing from the vector index" in verify(index_dir).problems
    (index_dir / "vectors.faiss").unlink()
    assert any("vector index file missing" in p for p in verify(index_dir).problems)
    verify(index_dir, repair=True)
    assert verify(index_dir).clean


def test_remove_forgets_a_root(corpus, tmp_path, tiny_mllama):
    index_dir = tmp_path / "index"
    build_index([corpus.folder / "0", corpus.folder / "1"], index_dir, tiny_mllama, show_progress=False)
    assert remove_root(index_dir, corpus.folder / "1") == 40
    with IndexStore.open(index_dir) as store:
        assert store.count == 40 and store.roots == [str((corpus.folder / "0").resolve())]
        assert store.info()["stored_vectors"] == 40
        assert all(r.relpath.startswith("0") for r in store.records(store.index.ids()))
    assert verify(index_dir).clean
    with pytest.raises(BadRootError, match="not a folder of this index"):
        remove_root(index_dir, corpus.folder / "1")


def test_remove_finishes_the_index_like_a_build(corpus, tmp_path, tiny_mllama, monkeypatch):
    """Removing a folder records what a build would: the index type the smaller index now gets, its IVF
    lists and a recall measured on what is left (it kept ivf-sq8 in the meta and the recall of 120 photos)."""
    index_dir = tmp_path / "index"
    monkeypatch.setattr(indexer.vectors, "AUTO_IVF_THRESHOLD", 100)
    build_index([corpus.folder / str(i) for i in range(3)], index_dir, tiny_mllama, show_progress=False)
    with IndexStore.open(index_dir) as store:
        meta = store.catalog.get_meta()
        assert (meta["index_type"], meta["recall"]["images"]) == ("ivf-sq8", 120) and meta["nlist"]
    assert remove_root(index_dir, corpus.folder / "2") == 40  # 80 left: auto says flat
    with IndexStore.open(index_dir) as store:
        meta = store.catalog.get_meta()
        assert store.index_type == "flat" and store.count == 80
        assert (meta["index_type"], meta["nlist"]) == ("flat", None)
        assert meta["recall"] == {"recall_at_k": 1.0, "k": 10, "queries": 0, "exact": True, "images": 80}
        assert meta["index_generation"] == meta["generation"]
    assert verify(index_dir).clean


def test_a_stale_ivf_file_is_reconciled_without_retraining(corpus, tmp_path, tiny_mllama):
    """What a crash between the last commit and the FAISS write leaves: an older index file."""
    import shutil

    index_dir = tmp_path / "index"
    build_index(
        [corpus.folder / "0", corpus.folder / "1"], index_dir, tiny_mllama, show_progress=False, index_type="ivf"
    )
    shutil.copy(index_dir / "vectors.faiss", tmp_path / "old.faiss")
    build_index([corpus.folder / "2"], index_dir, tiny_mllama, show_progress=False)
    remove_root(index_dir, corpus.folder / "0")
    shutil.copy(tmp_path / "old.faiss", index_dir / "vectors.faiss")  # 80 entries, 40 of them gone, 40 missing
    from indexer.vectors import checksum_of

    catalog = Catalog(index_dir / "catalog.sqlite", writable=True)  # a crash leaves the last file the catalog saw
    with catalog.session() as session:  # written, so its checksum is the one recorded (else it counts as damage)
        Catalog.set_meta(session, index_checksum=checksum_of((tmp_path / "old.faiss").read_bytes()))
        session.commit()
    catalog.close()
    assert "40 searchable image(s) missing from the vector index" in verify(index_dir).problems
    with IndexStore.open(index_dir) as store:
        assert (store.sync_report.added, store.sync_report.removed, store.sync_report.rebuilt) == (40, 40, None)
        assert store.index_type == "ivf" and store.count == 80
        assert sorted(store.index.ids().tolist()) == store.catalog.ok_ids().tolist()
        assert store.info()["in_sync"] is False
    summary = build_index([], index_dir, tiny_mllama, show_progress=False)  # resumes: writes the reconciled file
    assert summary.embedded == 0 and summary.images == 80
    assert verify(index_dir).clean
