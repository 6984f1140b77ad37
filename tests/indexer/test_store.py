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

from .conftest import process_holding_write_lock


@pytest.fixture
def built(photos, tmp_path, tiny_mllama):
    for i in range(5):
        photos.jpeg(f"{i}.jpg", exif=photos.exif(taken=f"2020:01:0{i + 1} 10:00:00") if i < 2 else None)
    photos.raw("bad.jpg", b"nope")
    index_dir = tmp_path / "index"
    build_index([photos.folder], index_dir, tiny_mllama, show_progress=False)
    return index_dir


def test_current_generation_moves_with_each_build_the_open_store_does_not(built, photos, tiny_mllama):
    with IndexStore.open(built) as store:
        assert store.current_generation() == store.generation > 0
        photos.jpeg("new.jpg")
        build_index([photos.folder], built, tiny_mllama, show_progress=False)
        assert store.current_generation() > store.generation and store.count == 5  # the open store stays as it was
        with IndexStore.open(built) as reopened:
            assert reopened.generation == store.current_generation() and reopened.count == 6


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
    assert info["error_list"] == [
        {"path": str(photos.folder / "bad.jpg"), "error": "not an image file Pillow can read"}
    ]


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
        assert store.sync_report.rebuilt and "checksum" in store.sync_report.rebuilt  # caught before FAISS parses it
        got = store.search(query, 5)
    np.testing.assert_array_equal(got[1], expected[1])
    (built / "vectors.faiss").unlink()
    with IndexStore.open(built) as store:
        np.testing.assert_array_equal(store.search(query, 5)[1], expected[1])


def test_a_second_writer_is_refused_while_a_build_runs(built, photos, tiny_mllama):
    from indexer import IndexLockedError

    with process_holding_write_lock(built) as holder:  # another process holding the lock, as a running build does
        with pytest.raises(IndexLockedError, match=rf"another indexer process \(pid {holder.pid}, build\)"):
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


def test_a_read_only_catalog_from_an_older_version_is_read_through_one_upgraded_copy(built, tmp_path, monkeypatch):
    """Where a catalog cannot be upgraded in place (opened immutable: a published snapshot, read-only media), the
    nullable columns added since come from a copy in the user's cache, made once per version of the file."""
    import os
    import sqlite3

    from sqlalchemy import select

    from indexer.catalog import UPGRADED_CATALOGS, Catalog, Image

    monkeypatch.setenv("MME5_CACHE_DIR", str(tmp_path / "cache"))  # this test is about the copies in the user's cache
    copies = tmp_path / "cache" / UPGRADED_CATALOGS
    path = built / "catalog.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")  # one file, as a published catalog is
        for column in ("motion", "motion_clip", "motion_clip_stat"):  # as the version before them wrote it
            connection.execute(f"ALTER TABLE images DROP COLUMN {column}")
    original, beside = path.read_bytes(), sorted(os.listdir(built))

    catalog = Catalog(path, immutable=True)
    with catalog.session() as session:
        rows = session.scalars(select(Image)).all()
    catalog.close()
    assert len(rows) == 6 and {row.motion for row in rows} == {None}
    [first] = copies.glob("*.sqlite")
    assert copies.stat().st_mode & 0o777 == 0o700  # private: the catalog names the user's folders
    made = first.stat().st_mtime_ns
    Catalog(path, immutable=True).close()  # opened again: the same copy
    assert list(copies.glob("*.sqlite")) == [first] and first.stat().st_mtime_ns == made
    os.utime(path, ns=(made, made + 10**9))  # a new version of the file: a new copy replaces the old
    Catalog(path, immutable=True).close()
    [second] = copies.glob("*.sqlite")
    assert second != first
    assert path.read_bytes() == original and sorted(os.listdir(built)) == beside  # nothing written there

    monkeypatch.setenv("MME5_CACHE_DIR", str(built / "catalog.sqlite"))  # a cache that cannot hold the copy
    os.utime(path, ns=(made, made + 2 * 10**9))
    with pytest.raises(IndexCorruptError, match=r"upgraded copy .* could not be made .*set MME5_CACHE_DIR"):
        Catalog(path, immutable=True)
    monkeypatch.setenv("MME5_CACHE_DIR", str(tmp_path / "cache"))
    with sqlite3.connect(path) as connection:  # a column that cannot be null is no upgrade: refused as before
        connection.execute("ALTER TABLE images DROP COLUMN retry")
    with pytest.raises(
        IndexCorruptError, match=r"lacks columns \['motion', 'motion_clip', 'motion_clip_stat', 'retry'\]"
    ):
        Catalog(path, immutable=True)


# -- id listings and filters ------------------------------------------------------------------------------
@pytest.fixture
def two_roots(photos, make_photos, tmp_path, tiny_mllama):
    """Folders whose names share prefixes, capture dates at day edges, an undated file and a second root."""
    taken = {
        "2023/a.jpg": "2023:07:14 10:00:00",
        "2023/deep/b.jpg": "2023:07:15 23:59:59",
        "20231/c.jpg": "2023:07:15 00:00:00",
        "2023-x/d.jpg": "2023:07:16 08:00:00",
        "2023.jpg": None,
    }
    for name, when in taken.items():
        photos.jpeg(name, exif=photos.exif(taken=when) if when else None)
    photos.jpeg(b"caf\xe9/e.jpg")  # a folder name that is not UTF-8
    other = make_photos("other")
    other.jpeg("2023/f.jpg", exif=other.exif(taken="2024:01:01 00:00:00"))
    other.raw("2023/bad.jpg", b"not a photo")
    build_index([photos.folder, other.folder], tmp_path / "index", tiny_mllama, show_progress=False)
    return tmp_path / "index"


def names(store, ids) -> list[str]:
    """Paths below the test's temp folder ("photos/2023/a.jpg", "other/2023/f.jpg"), sorted."""
    base = store.roots[0].rsplit("/", 1)[0]
    return sorted(record.path[len(base) + 1 :] for record in store.records(ids))


def test_ids_lists_every_searchable_image(two_roots, tiny_mllama):
    with IndexStore.open(two_roots) as store:
        ids = store.ids()
        assert ids.dtype == np.int64 and (np.diff(ids) > 0).all() and len(ids) == store.count == 7
        _, hits = store.search(tiny_mllama.encode_text_queries(["x"]), k=20)
        assert ids.tolist() == sorted(hits[0][hits[0] >= 0].tolist())
        assert "other/2023/bad.jpg" not in names(store, ids)  # a file that failed to index is not searchable
        ids[:] = -1
        assert (store.ids() >= 0).all()  # callers get a copy


def test_ids_where_a_folder_matches_whole_names_relative_or_absolute(two_roots, photos, tmp_path):
    with IndexStore.open(two_roots) as store:

        def under(folder):
            found = store.ids_where([], folder=folder)
            assert found.dtype == np.int64 and (np.diff(found) > 0).all()
            return names(store, found)

        assert under(None) == under(".") == names(store, store.ids())
        assert under("2023") == ["other/2023/f.jpg", "photos/2023/a.jpg", "photos/2023/deep/b.jpg"]
        for spelling in ["2023/deep", "./2023/deep/", "2023\\deep", " 2023//deep "]:
            assert under(spelling) == ["photos/2023/deep/b.jpg"], spelling
        assert under("20231") == ["photos/20231/c.jpg"] and under("2023-x") == ["photos/2023-x/d.jpg"]
        assert under("caf\udce9") == ["photos/caf\udce9/e.jpg"]
        assert under(str(photos.folder / "2023")) == ["photos/2023/a.jpg", "photos/2023/deep/b.jpg"]
        assert under(str(photos.folder / "2023/deep/b.jpg")) == ["photos/2023/deep/b.jpg"]
        assert len(under(str(photos.folder))) == 6 and len(under(str(tmp_path))) == 7  # a root, and above both
        assert under(str(tmp_path / "photo")) == under("/elsewhere") == under("no/such/folder") == []
        for outside in ["..", "../other", "2023/../../other"]:
            with pytest.raises(ValueError, match="points outside the indexed folders"):
                store.ids_where([], folder=outside)


def test_ids_where_dates_leave_out_undated_and_combine_with_a_folder(two_roots):
    """The search's date filter brings these conditions (search_app/filters.py parses the dates)."""
    from datetime import datetime

    from indexer.catalog import Image

    with IndexStore.open(two_roots) as store:

        def taken(start=None, end=None, **where):
            conditions = [] if start is None else [Image.taken_at >= start]
            conditions += [] if end is None else [Image.taken_at <= end]
            return names(store, store.ids_where(conditions, **where))

        assert taken(datetime(2023, 7, 15), datetime(2023, 7, 15, 23, 59, 59)) == [
            "photos/2023/deep/b.jpg",
            "photos/20231/c.jpg",
        ]
        assert taken(datetime(2023, 7, 15, 0, 0, 1)) == [
            "other/2023/f.jpg",
            "photos/2023-x/d.jpg",
            "photos/2023/deep/b.jpg",
        ]
        assert len(taken(datetime(1900, 1, 1))) == 5  # 2023.jpg and caf\xe9/e.jpg have no date
        assert taken(end=datetime(2023, 12, 31), folder="2023") == ["photos/2023/a.jpg", "photos/2023/deep/b.jpg"]
        assert len(store.ids_where([], folder="2023")) == 3 and len(store.ids_where([], folder="2023", limit=2)) == 2


def test_filters_are_answered_by_index_range_scans(two_roots):
    """No full scan of the images table: a rare folder or a narrow date range costs the same on any library."""
    from datetime import datetime

    from sqlalchemy import event

    from indexer.catalog import Image

    statements = []

    def record(_connection, _cursor, statement, parameters, *_):
        statements.append((statement, parameters))

    with IndexStore.open(two_roots) as store:
        event.listen(store.catalog.engine, "before_cursor_execute", record)
        store.ids_where([], folder="2023")
        store.ids_where([], folder=str(store.roots[0]) + "/2023/deep")
        store.ids_where([Image.taken_at >= datetime(2023, 7, 15), Image.taken_at <= datetime(2023, 7, 16)])
        event.remove(store.catalog.engine, "before_cursor_execute", record)
        with store.catalog.engine.connect() as connection:
            plans = [
                row[-1]
                for statement, parameters in statements
                if "FROM images" in statement
                for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            ]
    assert len(plans) == 4, plans  # a relative folder is looked up in each of the two roots
    assert all(plan.startswith("SEARCH images USING") for plan in plans), plans
    assert all("relpath>? AND relpath<?" in plan for plan in plans[:3]), plans  # seeks, not "status=?" alone
    assert "taken_at>? AND taken_at<?" in plans[3], plans


def test_search_among_ids_ranks_only_them_as_the_full_search_does(two_roots, tiny_mllama):
    with IndexStore.open(two_roots) as store:
        query = tiny_mllama.encode_text_queries(["a beach at dusk"])
        scores, ids = store.search(query, k=20)
        among = store.ids_where([], folder="2023")
        wanted = np.isin(ids[0], among)
        got_scores, got_ids = store.search(query, k=5, among=among)
        assert got_ids[0, :3].tolist() == ids[0][wanted].tolist() and (got_ids[0, 3:] == -1).all()
        np.testing.assert_allclose(got_scores[0, :3], scores[0][wanted], rtol=1e-5)
        assert np.isneginf(got_scores[0, 3:]).all()
        assert (store.search(query, k=3, among=np.empty(0, np.int64))[1] == -1).all()


def test_a_catalog_without_the_date_index_is_still_read_and_gets_it_on_the_next_build(two_roots, photos, tiny_mllama):
    """Catalogs written before the capture-date index existed: readable as they are, upgraded by a writer."""
    import sqlite3
    from datetime import datetime

    from indexer.catalog import Image

    since = [Image.taken_at >= datetime(2023, 7, 15)]
    with IndexStore.open(two_roots) as store:
        expected = store.ids_where(since)
    with sqlite3.connect(two_roots / "catalog.sqlite") as connection:
        connection.execute("DROP INDEX ix_images_status_taken_at")
    with IndexStore.open(two_roots) as store:
        assert store.ids_where(since).tolist() == expected.tolist()
        assert store.info()["schema_version"] == 1
    build_index([], two_roots, tiny_mllama, show_progress=False)
    with sqlite3.connect(two_roots / "catalog.sqlite") as connection:
        indexes = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_images_status_taken_at" in indexes


def test_records_match_the_catalog_rows_field_by_field(built, photos, tiny_mllama):
    """The one-statement fetch returns exactly what the ORM model holds (dates, errors, odd names, order)."""
    import os

    from sqlalchemy import select

    from indexer.catalog import Image, Root
    from indexer.store import to_record

    odd = os.path.join(os.fsencode(photos.folder), b"caf\xe9.jpg")  # not UTF-8: survives as surrogates
    with open(odd, "wb") as file:
        file.write((photos.folder / "0.jpg").read_bytes())
    build_index([photos.folder], built, tiny_mllama, show_progress=False)
    with IndexStore.open(built) as store:
        with store.catalog.session() as session:
            expected = {
                image.id: to_record(image, root)
                for image, root in session.execute(select(Image, Root.path).join(Root, Root.id == Image.root_id))
            }
        ids = sorted(expected, reverse=True)
        got = store.records([-1, *ids, 10**9, ids[0]])
        assert got == [None, *(expected[i] for i in ids), None, expected[ids[0]]]
        assert {r.error is not None for r in got[1:-2]} == {True, False} and any(r.taken_at for r in got[1:-2])
        assert any(r.relpath == os.fsdecode(b"caf\xe9.jpg") for r in got[1:-2])
        assert store.records([]) == [] and store.records(np.asarray([-1])) == [None]
