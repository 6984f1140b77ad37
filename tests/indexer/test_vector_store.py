"""The memory-mapped vector store (indexer/rowstore.py): same vectors as the catalog's BLOBs, derived
from them, rebuilt when it does not match, created on open for older indexes, and consistent after a
kill -9 at any moment of a build."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import sqlite3
import time

import numpy as np
import pytest

from indexer import IndexStore, build_index, verify
from indexer.__main__ import main
from indexer.catalog import Catalog
from indexer.rowstore import HEADER_BYTES, META_KEY, STORE_FILE, RowStore
from indexer.vectors import VectorIndex

from .conftest import REPO
from .test_crash import catalog_rows, start_build
from .test_storage_guarantees_integrity import mount, mounts  # noqa: F401 - the fixture is used by name


@pytest.fixture
def built(photos, tmp_path, tiny_mllama):
    for i in range(12):
        photos.jpeg(f"{i}.jpg", seed=500 + i)
    photos.raw("broken.jpg", b"not a jpeg")  # an error row: an id without a row in the store
    index_dir = tmp_path / "index"
    build_index([photos.folder], index_dir, tiny_mllama, show_progress=False)
    return index_dir


def same_as_catalog(store: IndexStore) -> None:
    """Every searchable vector the store serves equals the catalog BLOB, bit for bit, and re-ranking
    with either source gives the same hits and scores."""
    ids = store.ids()
    from_map = store.catalog.exact_vectors(ids)
    from_sqlite = store.catalog.vectors_for_ids(ids)
    assert np.array_equal(from_map[0], from_sqlite[0]) and len(from_map[0]) == len(ids)
    assert np.array_equal(from_map[1].view(np.uint16), from_sqlite[1].view(np.uint16))
    index = VectorIndex.flat(store.dim)
    queries = np.random.default_rng(0).standard_normal((4, store.dim)).astype(np.float32)
    candidates = np.tile(ids, (4, 1))
    index.exact_source = store.catalog.exact_vectors
    by_map = index._rerank(queries, candidates, 5)
    index.exact_source = store.catalog.vectors_for_ids
    by_sqlite = index._rerank(queries, candidates, 5)
    assert np.array_equal(by_map[1], by_sqlite[1]) and np.array_equal(by_map[0], by_sqlite[0])


def test_a_build_writes_the_store_and_search_re_ranks_from_it(built, capsys):
    with IndexStore.open(built) as store:
        assert store.catalog.vector_store is not None and store.vector_store == "ok"
        assert store.catalog.vector_store.rows == int(store.ids().max()) + 1
        same_as_catalog(store)
        info = store.info()
    assert info["vector_store"]["serves"] == "memory map" and info["size_bytes"]["vector_store"] > HEADER_BYTES
    report = verify(built, deep=True)
    assert report.clean and report.checked["vector_store_rows"] == 12
    assert main(["info", "--index", str(built)]) == 0
    assert f"{STORE_FILE}: 13 rows, memory-mapped" in capsys.readouterr().out  # 12 photos + the error row's id


def test_where_the_os_has_no_pwrite_rows_are_written_the_same(photos, tmp_path, tiny_mllama, monkeypatch):
    """Windows has no os.pwrite: the writer seeks, then writes, in the new file and when appending to it."""
    monkeypatch.delattr(os, "pwrite")
    for i in range(6):
        photos.jpeg(f"{i}.jpg", seed=700 + i)
    index_dir = tmp_path / "index"
    build_index([photos.folder], index_dir, tiny_mllama, batch_size=4, show_progress=False)
    photos.jpeg("late.jpg", seed=799)
    build_index([photos.folder], index_dir, tiny_mllama, show_progress=False)  # appended to the existing file
    with IndexStore.open(index_dir) as store:
        assert store.vector_store == "ok" and store.catalog.vector_store.rows == int(store.ids().max()) + 1
        assert store.count == 7
        same_as_catalog(store)


def test_an_index_from_before_the_store_gets_one_on_open(built, capsys):
    (built / STORE_FILE).unlink()
    catalog = Catalog(built / "catalog.sqlite", writable=True)
    with catalog.session() as session:
        Catalog.set_meta(session, **{META_KEY: None})
        session.commit()
    catalog.close()
    assert any(STORE_FILE in note for note in verify(built).notes)
    with IndexStore.open(built) as store:
        assert store.vector_store == "created" and store.catalog.vector_store is not None
        same_as_catalog(store)
    assert (built / STORE_FILE).is_file() and verify(built, deep=True).clean
    assert main(["info", "--index", str(built), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vector_store"]["state"] == "ok"


def test_a_damaged_or_foreign_store_is_found_and_rebuilt(built):
    path = built / STORE_FILE
    with IndexStore.open(built) as store:
        row, dim = int(store.ids()[3]), store.dim
    with open(path, "r+b") as file:  # one value of one row changed: only comparing rows finds it
        file.seek(HEADER_BYTES + row * dim * 2 + 2)
        value = file.read(2)
        file.seek(-2, os.SEEK_CUR)
        file.write(bytes([value[0] ^ 0x40, value[1]]))
    deep = verify(built, deep=True)
    assert len(deep.problems) == 1 and f"row(s) of {STORE_FILE} differ" in deep.problems[0]
    assert str(row) in deep.problems[0]
    repaired = verify(built, repair=True, deep=True)
    assert not repaired.unrepaired and any(STORE_FILE in line for line in repaired.repaired)
    assert verify(built, deep=True).clean

    with open(path, "r+b") as file:  # a header that is not this store's: rebuilt by the next open that can write
        file.write(b"garbage!")
    assert any("not a vector store file" in problem for problem in verify(built).problems)
    with IndexStore.open(built) as store:
        assert store.vector_store == "created"
        same_as_catalog(store)
    assert verify(built, deep=True).clean


def test_rows_committed_after_the_last_record_are_read_from_the_catalog(built, photos, tiny_mllama):
    """What a kill between a batch's commit and the next record leaves: rows the catalog does not vouch for."""
    catalog = Catalog(built / "catalog.sqlite", writable=True)
    meta = catalog.get_meta()
    record = dict(meta[META_KEY], rows=int(catalog.ok_ids()[5]))
    with catalog.session() as session:
        Catalog.set_meta(session, **{META_KEY: record})
        session.commit()
    catalog.close()
    report = verify(built, deep=True)
    assert report.clean and any("newer than" in note for note in report.notes)
    catalog = Catalog(built / "catalog.sqlite")  # a reader that cannot write (a build holds the lock, or read-only)
    catalog.vector_store = RowStore.open_checked(built, catalog.get_meta())
    try:
        ids = catalog.ok_ids()
        assert catalog.vector_store.covered(ids).sum() == 5
        found, vectors = catalog.exact_vectors(ids[::-1])
        expected = catalog.vectors_for_ids(ids)
        assert np.array_equal(found, expected[0]) and np.array_equal(vectors, expected[1])
    finally:
        catalog.close()
    with IndexStore.open(built) as store:  # a reader that can write catches up
        assert store.catalog.vector_store.rows > int(store.ids().max())
        same_as_catalog(store)
    build_index([photos.folder], built, tiny_mllama, show_progress=False)  # the next writer catches up
    with IndexStore.open(built) as store:
        assert store.catalog.vector_store.rows > int(store.ids().max())
    assert not any("newer than" in note for note in verify(built).notes)


def test_read_only_media_without_a_store_serve_from_the_catalog(built, tmp_path, mounts, capsys):  # noqa: F811
    (built / STORE_FILE).unlink()
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    mount("--bind", built, read_only)
    mounts.append(read_only)
    mount("-o", "remount,bind,ro", read_only)
    with IndexStore.open(read_only) as store:
        assert store.read_only and store.catalog.vector_store is None
        same_as_catalog(store)
        assert store.info()["vector_store"]["serves"] == "sqlite"
    assert not (built / STORE_FILE).exists()
    assert main(["info", "--index", str(read_only)]) == 0
    assert "re-rank:      from the catalog" in capsys.readouterr().out


def recorded_store_rows(index_dir) -> int:
    """The rows the catalog vouches for, read as a second process would."""
    try:
        with sqlite3.connect(f"file:{index_dir / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1) as connection:
            row = connection.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    except sqlite3.Error:
        return 0
    return int((json.loads(row[0]) or {}).get("rows", 0)) if row else 0


@pytest.mark.slow  # kills a build process and reruns it
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_a_random_moment_leaves_store_and_catalog_consistent(
    make_photos, tmp_path, tiny_mllama_dir, tiny_mllama, seed
):
    photos = make_photos(f"photos{seed}")
    for i in range(40):
        photos.jpeg(f"{i // 8}/{i:02d}.jpg", 160, 120, seed=seed * 100 + i)
    photos.raw("broken.jpg", b"not a jpeg")
    index_dir = tmp_path / "index"
    chooser = random.Random(seed)
    process = start_build(photos.folder, index_dir, tiny_mllama_dir)
    threshold, extra = chooser.randint(1, 30), chooser.uniform(0, 0.3)
    if seed % 2:  # after some committed rows
        ready = lambda: catalog_rows(index_dir) >= threshold  # noqa: E731
    else:  # after the catalog first vouched for rows of the store
        ready = lambda: recorded_store_rows(index_dir) > 0  # noqa: E731
    deadline = time.monotonic() + 240
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(extra)  # anywhere between commits, row writes and records
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    if catalog_rows(index_dir) > 0:
        catalog = Catalog(index_dir / "catalog.sqlite")
        meta = catalog.get_meta()
        has_model = "fingerprint" in meta
        if (meta.get(META_KEY) or {}).get("id"):  # as the kill left it, before any open catches up
            catalog.vector_store = RowStore.open_checked(index_dir, meta)
            ids = catalog.ok_ids()
            vouched = ids[catalog.vector_store.covered(ids)]
            found, blobs = catalog.vectors_for_ids(vouched)
            assert not len(found) or np.array_equal(
                catalog.vector_store.rows_for(found).view(np.uint16), blobs.view(np.uint16)
            )
            assert np.array_equal(catalog.exact_vectors(ids)[1], catalog.vectors_for_ids(ids)[1])
        catalog.close()
        if has_model:
            with IndexStore.open(index_dir) as store:  # loadable, and re-ranks as the catalog would
                same_as_catalog(store)
            # the FAISS file may lag (the next build catches up); nothing about the store may be wrong
            assert not [problem for problem in verify(index_dir, deep=True).problems if STORE_FILE in problem]
    build_index([photos.folder], index_dir, tiny_mllama, show_progress=False)
    with IndexStore.open(index_dir) as store:
        assert store.count == 40
        same_as_catalog(store)
    assert verify(index_dir, deep=True).clean


def test_the_rerank_benchmark_prints_both_sources_side_by_side(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_rerank", REPO / "benchmarks" / "bench_rerank.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--rows", "3000", "--dim", "16", "--queries", "3", "--passes", "2", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sqlite BLOBs" in out and "memory map" in out and "rows 3,000" in out
    assert (tmp_path / STORE_FILE).is_file()
