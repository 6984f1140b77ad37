"""Incremental builds: add, modify, delete, rename, duplicates, unchanged files never read."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import indexer.engines
from indexer import IndexStore, build_index, verify


def build(roots, index_dir, embedder, **kwargs):
    return build_index(
        roots if isinstance(roots, list) else [roots], index_dir, embedder, batch_size=4, show_progress=False, **kwargs
    )


def paths_of(index_dir):
    with IndexStore.open(index_dir) as store:
        ids = store.catalog.ok_ids()
        return {record.relpath: record for record in store.records(ids)}


def test_first_build_indexes_every_image_and_vectors_match_the_model(photos, tmp_path, tiny_mllama):
    files = [photos.jpeg(f"trip/{i:02d}.jpg") for i in range(9)] + [photos.png("scan.png")]
    index_dir = tmp_path / "index"
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert (summary.added, summary.updated, summary.removed, summary.moved, summary.errors) == (10, 0, 0, 0, [])
    assert summary.images == 10 and summary.embedded == 10 and summary.seconds > 0
    with IndexStore.open(index_dir) as store:
        assert store.count == 10 and store.dim == tiny_mllama.dim and store.roots == [str(photos.folder.resolve())]
        assert store.model_id == tiny_mllama.model_id and store.fingerprint == tiny_mllama.fingerprint
        expected = tiny_mllama.encode_images([str(path) for path in files])
        scores, ids = store.search(expected, k=1)
        records = store.records(ids[:, 0])
        assert [record.path for record in records] == [str(path) for path in files]  # each finds itself first
        stored = store.vectors(ids[:, 0])
        assert stored.dtype == np.float32
        np.testing.assert_allclose(stored, expected, atol=3e-3)  # float16 on disk
        np.testing.assert_allclose(scores[:, 0], (stored * expected).sum(1), atol=1e-3)
    assert verify(index_dir).clean


def test_rerun_skips_unchanged_files_without_reading_them(photos, tmp_path, tiny_mllama, monkeypatch):
    for i in range(6):
        photos.jpeg(f"{i}.jpg")
    index_dir = tmp_path / "index"
    build(photos.folder, index_dir, tiny_mllama)
    reads = []
    original = indexer.engines.read_file
    monkeypatch.setattr(
        indexer.engines, "read_file", lambda entry, *a: reads.append(entry.relpath) or original(entry, *a)
    )
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert reads == [] and summary.unchanged == 6 and summary.embedded == 0
    assert (summary.added, summary.updated, summary.removed, summary.moved) == (0, 0, 0, 0)


def test_add_modify_delete_rename_keep_catalog_and_index_exact(photos, tmp_path, tiny_mllama):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        photos.jpeg(name)
    index_dir = tmp_path / "index"
    build(photos.folder, index_dir, tiny_mllama)
    before = paths_of(index_dir)

    photos.jpeg("new.jpg")  # added
    photos.jpeg("b.jpg", seed=999)  # modified content
    os.utime(photos.folder / "b.jpg", ns=(1, 10**18))
    (photos.folder / "c.jpg").unlink()  # deleted
    os.makedirs(photos.folder / "moved", exist_ok=True)
    os.rename(photos.folder / "d.jpg", photos.folder / "moved" / "d-renamed.jpg")  # renamed
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert (summary.added, summary.updated, summary.removed, summary.moved, summary.unchanged) == (1, 1, 1, 1, 1)
    assert summary.embedded == 2  # the new file and the changed one; the renamed one kept its vector

    after = paths_of(index_dir)
    assert set(after) == {"a.jpg", "b.jpg", "new.jpg", os.path.join("moved", "d-renamed.jpg")}
    assert after["a.jpg"].id == before["a.jpg"].id
    assert after[os.path.join("moved", "d-renamed.jpg")].id == before["d.jpg"].id  # the vector stayed put
    assert after["b.jpg"].id != before["b.jpg"].id and after["b.jpg"].content_hash != before["b.jpg"].content_hash
    with IndexStore.open(index_dir) as store:
        assert store.count == 4
        fresh = tiny_mllama.encode_images([str(photos.folder / "b.jpg")])
        _, ids = store.search(fresh, k=1)
        assert ids[0, 0] == after["b.jpg"].id
        assert set(store.index.ids().tolist()) == {record.id for record in after.values()}
    assert verify(index_dir).clean


def test_identical_files_are_embedded_once(photos, tmp_path, tiny_mllama):
    original = photos.jpeg("original.jpg")
    for copy in ("copy1.jpg", "sub/copy2.jpg"):
        shutil.copy(original, photos.path(copy))
    photos.jpeg("other.jpg")
    index_dir = tmp_path / "index"
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert summary.added == 4 and summary.embedded == 2 and summary.duplicates == 2
    with IndexStore.open(index_dir) as store:
        assert store.count == 4 and store.info()["stored_vectors"] == 2
        shutil.copy(original, photos.path("later-copy.jpg"))
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert summary.added == 1 and summary.embedded == 0 and summary.duplicates == 1


def test_touched_file_with_same_bytes_keeps_its_vector(photos, tmp_path, tiny_mllama):
    path = photos.jpeg("a.jpg")
    index_dir = tmp_path / "index"
    build(photos.folder, index_dir, tiny_mllama)
    before = paths_of(index_dir)["a.jpg"]
    os.utime(path, ns=(10**18, 10**18))
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert summary.embedded == 0 and summary.unchanged == 1 and summary.updated == 0
    after = paths_of(index_dir)["a.jpg"]
    assert after.id == before.id and after.mtime == pytest.approx(1e9)


def test_deleting_every_file_empties_the_index_with_prune_and_collects_vectors(photos, tmp_path, tiny_mllama):
    for i in range(3):
        photos.jpeg(f"{i}.jpg")
    index_dir = tmp_path / "index"
    build(photos.folder, index_dir, tiny_mllama)
    for path in photos.folder.iterdir():
        path.unlink()
    summary = build(photos.folder, index_dir, tiny_mllama)  # an empty folder looks like an unmounted drive
    assert (summary.removed, summary.kept, summary.images) == (0, 3, 3)
    summary = build(photos.folder, index_dir, tiny_mllama, prune=True)
    assert summary.removed == 3 and summary.images == 0
    with IndexStore.open(index_dir) as store:
        assert store.count == 0 and store.info()["stored_vectors"] == 0
        scores, ids = store.search(np.ones((1, store.dim), np.float32), k=2)
        assert ids.tolist() == [[-1, -1]] and np.isneginf(scores).all()
    assert verify(index_dir).clean


def test_several_roots_and_rescan_of_known_roots(make_photos, tmp_path, tiny_mllama):
    first, second = make_photos("phone"), make_photos("camera")
    first.jpeg("p.jpg")
    second.jpeg("c1.jpg")
    second.jpeg("c2.jpg")
    index_dir = tmp_path / "index"
    summary = build([first.folder, second.folder], index_dir, tiny_mllama)
    assert summary.added == 3
    second.jpeg("c3.jpg")
    summary = build_index([], index_dir, tiny_mllama, show_progress=False)  # no --dir: every known folder
    assert summary.added == 1 and summary.unchanged == 3
    with IndexStore.open(index_dir) as store:
        assert sorted(store.roots) == sorted([str(first.folder.resolve()), str(second.folder.resolve())])


def test_a_file_moved_between_roots_keeps_its_vector(make_photos, tmp_path, tiny_mllama):
    first, second = make_photos("phone"), make_photos("camera")
    path = first.jpeg("p.jpg")
    first.jpeg("stays.jpg")  # a folder left empty would look unmounted: its photos would be kept, not moved
    index_dir = tmp_path / "index"
    build([first.folder, second.folder], index_dir, tiny_mllama)
    old = paths_of(index_dir)["p.jpg"]
    os.rename(path, second.folder / "p-archived.jpg")
    summary = build([first.folder, second.folder], index_dir, tiny_mllama)
    assert summary.moved == 1 and summary.embedded == 0 and summary.removed == 0
    new = paths_of(index_dir)["p-archived.jpg"]
    assert new.id == old.id and new.root == str(second.folder.resolve())
