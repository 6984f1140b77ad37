"""Storage guarantees (docs/storage.md): each case reproduced on real storage.

Bytes garbled on disk with fixed seeds, a real tmpfs that fills up, a real read-only bind
mount. Mounting needs root; without it those tests are skipped and say why.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess

import faiss
import numpy as np
import pytest

from indexer import IndexStore, build_index, verify
from indexer.__main__ import main
from indexer.catalog import Catalog
from indexer.errors import DiskFullError, ReadOnlyIndexError
from indexer.sync import save_index
from indexer.vectors import VectorIndex


@pytest.fixture
def built(photos, tmp_path, tiny_mllama):
    for i in range(8):
        photos.jpeg(f"{i}.jpg", seed=100 + i)
    index_dir = tmp_path / "index"
    build_index([photos.folder], index_dir, tiny_mllama, show_progress=False)
    return index_dir


def garble(path, offset: int, length: int, seed: int) -> None:
    """Overwrite ``length`` bytes at ``offset`` with seeded random bytes, as failing media would."""
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes())


def garble_page(index_dir, name: str, seed: int = 7) -> int:
    """4 KB of garbage over the root page of catalog table or index ``name``; returns the page number."""
    path = index_dir / "catalog.sqlite"
    with sqlite3.connect(path) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        page = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    connection.close()
    assert not os.path.exists(f"{path}-wal") or os.path.getsize(f"{path}-wal") == 0  # everything is in the file
    garble(path, (page - 1) * page_size, page_size, seed)
    return page


def snapshot(index_dir) -> list[tuple[int, str, str | None]]:
    with IndexStore.open(index_dir) as store:
        return sorted((r.id, r.relpath, r.content_hash) for r in store.records(store.ids()))


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "sqlalchemy" not in err.lower()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(("error:", "indexer: error:"))]


def mount(*args) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs / bind mount")
    result = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")


@pytest.fixture
def mounts():
    """Mount points to unmount at the end of the test (newest first)."""
    points: list = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


# -- the vector file ------------------------------------------------------------------------------------------
def test_garbled_vector_file_is_detected_and_rebuilt(built, tiny_mllama, capsys):
    query = tiny_mllama.encode_text_queries(["a photo"])
    with IndexStore.open(built) as store:
        expected_scores, expected_ids = store.search(query, 8)
    path = built / "vectors.faiss"
    garble(path, 64, min(2048, path.stat().st_size - 128), seed=2)  # 2 KB inside the vector data

    report = verify(built)
    assert any("does not match the checksum" in problem for problem in report.problems)
    with IndexStore.open(built) as store:  # searching never uses the garbled bytes
        assert "checksum" in store.sync_report.rebuilt
        scores, ids = store.search(query, 8)
    assert "rebuilt in memory from the catalog's stored vectors" in capsys.readouterr().err
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    assert scores.max() <= 1.0 + 1e-3  # not the 1.6e37 of a garbled vector

    repaired = verify(built, repair=True)
    assert any("rebuilt the flat vector index" in line for line in repaired.repaired) and not repaired.unrepaired
    assert verify(built, deep=True).clean

    garble(path, 64, 512, seed=3)  # a build notices it too and writes a sound file, without re-embedding
    summary = build_index([], built, tiny_mllama, show_progress=False)
    assert summary.embedded == 0 and summary.images == 8
    assert verify(built, deep=True).clean


def test_a_crash_between_writing_the_vector_file_and_recording_it_costs_nothing(built):
    catalog = Catalog(built / "catalog.sqlite", writable=True)
    index = VectorIndex.load(built / "vectors.faiss")
    index.remove(index.ids()[:1])
    data, checksum = index.serialize()
    with catalog.session() as session:  # save_index's first step ...
        Catalog.set_meta(session, index_checksum_pending=checksum)
        session.commit()
    index.save(built / "vectors.faiss", data)  # ... and its second; killed before the third
    catalog.close()
    with IndexStore.open(built) as store:  # the file the catalog vouched for is used, not thrown away
        assert store.sync_report.rebuilt is None and store.sync_report.added == 1 and store.count == 8


def test_verify_deep_compares_every_vector_of_a_compressed_index(photos, tmp_path, tiny_mllama):
    for i in range(40):
        photos.jpeg(f"{i}.jpg", seed=200 + i)
    index_dir = tmp_path / "index"
    build_index([photos.folder], index_dir, tiny_mllama, show_progress=False, index_type="ivf-sq8")
    report = verify(index_dir, deep=True)
    assert report.clean and report.checked["vectors_compared"] == 40

    index = VectorIndex.load(index_dir / "vectors.faiss")  # one code byte wrong, in a file whose checksum is right
    invlists = faiss.extract_index_ivf(index.index.index).invlists
    list_no = next(n for n in range(invlists.nlist) if invlists.list_size(n))
    codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), invlists.list_size(list_no) * invlists.code_size)
    codes[5] = (int(codes[5]) + 60) % 256
    catalog = Catalog(index_dir / "catalog.sqlite", writable=True)
    save_index(catalog, index, index_dir / "vectors.faiss")
    catalog.close()

    assert verify(index_dir).clean  # the quick check samples; it cannot see this
    deep = verify(index_dir, deep=True)
    assert len(deep.problems) == 1 and deep.problems[0].startswith("1 vector(s) in the vector index differ")
    assert not verify(index_dir, repair=True, deep=True).unrepaired
    assert verify(index_dir, deep=True).clean


def test_deep_verify_finds_a_damaged_stored_vector_and_repair_has_it_embedded_again(built, tiny_mllama):
    with sqlite3.connect(built / "catalog.sqlite") as connection:
        digest = connection.execute("SELECT content_hash FROM vectors ORDER BY content_hash LIMIT 1").fetchone()[0]
        garbage = (np.random.default_rng(4).standard_normal(64) * 50).astype(np.float16).tobytes()
        connection.execute("UPDATE vectors SET vector = ? WHERE content_hash = ?", (garbage, digest))
    connection.close()
    report = verify(built, deep=True)
    assert any("1 stored vector(s) are damaged" in problem for problem in report.problems)
    repaired = verify(built, repair=True, deep=True)
    assert not repaired.unrepaired and any("deleted 1 damaged stored vector" in line for line in repaired.repaired)
    summary = build_index([], built, tiny_mllama, show_progress=False)
    assert summary.embedded == 1 and summary.images == 8
    assert verify(built, deep=True).clean


@pytest.mark.parametrize("kind", ["ivf", "ivf-sq8"])
def test_ivf_index_names_the_right_photo_after_removals(kind):
    """IndexIDMap2 compacts its id map on removal while IVF lists keep positions: hits named other photos."""
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(2000, dtype=np.int64) * 7 + 1
    index = VectorIndex.trained(kind, 32, vectors, 2000)
    index.add(ids, vectors)
    index.remove(ids[:300])
    index.remove(ids[1000:1010])
    index.add(ids[:50], vectors[:50])  # re-added after the removals
    faiss.extract_index_ivf(index.index.index).nprobe = index.nlist
    keep = np.r_[0:50, 300:1000, 1010:2000]
    _, hits = index.search(vectors[keep], 1)
    assert (hits[:, 0] == ids[keep]).mean() > 0.97  # was 0 before the fix
    position = {int(i): n for n, i in enumerate(ids)}
    for found, held, lists in index.entries():
        assert (found >= 0).all()
        expected, slack = index.expected(vectors[[position[int(i)] for i in found]], lists)
        assert (np.abs(held - expected) <= slack).all()


# -- the catalog ----------------------------------------------------------------------------------------------
def test_a_damaged_catalog_is_reported_plainly_by_every_command(built, tiny_mllama_dir, capsys):
    garble_page(built, "images")
    code, out, err = run(["verify", "--index", built], capsys)
    assert code == 1 and "catalog.sqlite is damaged (SQLite integrity check" in err and "--repair" in out
    code, out, err = run(["info", "--index", built], capsys)
    assert "damaged" in out + err and "catalog:      ok" not in out  # never called healthy
    code, out, err = run(["build", "--index", built, "--model", tiny_mllama_dir, "--quiet"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "the catalog is damaged" in err and "verify" in err
    code, out, err = run(["search", "--index", built, "--text", "a photo"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "the catalog is damaged" in err


def test_repair_rebuilds_a_damaged_catalog_index_without_losing_a_row(built):
    before = snapshot(built)
    garble_page(built, "ix_images_status")
    assert not verify(built).clean
    report = verify(built, repair=True)
    assert report.damaged and not report.unrepaired
    assert any(line.startswith("salvaged the damaged catalog") for line in report.repaired)
    assert not any("lost" in line for line in report.repaired)
    assert verify(built, deep=True).clean and snapshot(built) == before
    assert len(list(built.glob("catalog.sqlite.damaged-*"))) == 1  # the damaged file is kept, never deleted


def test_repair_salvages_a_damaged_table_page_and_the_next_build_restores_it_without_re_embedding(built, tiny_mllama):
    before = snapshot(built)
    garble_page(built, "images")
    report = verify(built, repair=True)
    assert not report.unrepaired
    assert any("of images were on damaged pages and are lost" in line for line in report.repaired)
    assert any("reusing" in note or "reuses" in note for note in report.notes)
    summary = build_index([], built, tiny_mllama, show_progress=False)
    assert summary.added == 8 and summary.embedded == 0  # the stored vectors were kept for them
    after = snapshot(built)
    assert [(path, digest) for _, path, digest in after] == [(path, digest) for _, path, digest in before]
    assert min(i for i, _, _ in after) > max(i for i, _, _ in before)  # ids are never handed out twice
    assert verify(built, deep=True).clean


def saved_albums(index_dir) -> dict:
    """Two albums saved by the app (search_app/albums.py), one with a pin and a removal; returns what they hold."""
    from search_app.albums import Albums

    albums = Albums(index_dir / "catalog.sqlite")
    try:
        ids = sorted(i for i, _, _ in snapshot(index_dir))
        albums.save("Beach", {"text": "am Strand"}, {"folder": "2023"})
        albums.save("Red", {"similar_to": ids[0]}, {})
        albums.pin("Beach", ids[1])
        albums.pin("Beach", ids[2], pinned=False)
        return {name: albums.get(name).to_json() | {"updated_at": None} for name in albums.names()}
    finally:
        albums.close()


def albums_now(index_dir) -> dict:
    from search_app.albums import Albums

    albums = Albums(index_dir / "catalog.sqlite")
    try:
        return {name: albums.get(name).to_json() | {"updated_at": None} for name in albums.names()}
    finally:
        albums.close()


@pytest.mark.parametrize("page", ["images", "ix_images_status"])
def test_repair_keeps_the_apps_albums_and_counts_them(built, page, capsys):
    albums = saved_albums(built)
    garble_page(built, page)
    code, out, err = run(["verify", "--index", built, "--repair"], capsys)
    assert code == 0, err
    assert "repaired: kept the tables the app adds to the catalog (2 albums, 2 album_pins rows copied)" in err
    assert albums_now(built) == albums
    assert verify(built, deep=True).clean


def test_repair_says_which_albums_were_lost_on_damaged_pages(built):
    saved_albums(built)
    garble_page(built, "albums")
    report = verify(built, repair=True)
    assert not report.unrepaired
    assert any(
        "row(s) of albums were on damaged pages and are lost" in line and "save those albums again" in line
        for line in report.repaired
    ), report.repaired
    assert albums_now(built) == {}  # their pins went with them
    with sqlite3.connect(built / "catalog.sqlite") as catalog:
        assert catalog.execute("SELECT count(*) FROM album_pins").fetchone()[0] == 0
    catalog.close()


def test_repair_never_claims_a_repair_that_did_not_happen(built, capsys):
    garble_page(built, "meta")  # the model metadata is gone with it
    code, out, err = run(["verify", "--index", built, "--repair"], capsys)
    assert code == 1 and "not repaired:" in err and "no model metadata" in err
    assert "repaired, and checked again" not in out and "problem(s) remain after the repair" in out
    garble(built / "catalog.sqlite", 0, 100, seed=9)  # the file header: nothing left to salvage
    code, out, err = run(["verify", "--index", built, "--repair"], capsys)
    assert code == 1 and "not repaired:" in err and "repaired, and checked again" not in out


def test_repair_of_a_catalog_without_model_metadata_says_what_to_do(tmp_path, capsys):
    index_dir = tmp_path / "index"  # what a first build killed before it recorded the model leaves
    index_dir.mkdir()
    Catalog(index_dir / "catalog.sqlite", create=True).close()
    code, _, err = run(["verify", "--index", index_dir, "--repair"], capsys)
    assert code == 1 and "no model metadata" in err and "run the build again" in err and "KeyError" not in err


# -- read-only media and full disks ---------------------------------------------------------------------------
def test_a_read_only_index_is_searched_verified_and_served(built, tmp_path, tiny_mllama, mounts, capsys):
    assert not (built / "catalog.sqlite-wal").exists()  # a finished build leaves one file
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    mount("--bind", built, read_only)
    mounts.append(read_only)
    mount("-o", "remount,bind,ro", read_only)
    query = tiny_mllama.encode_text_queries(["a photo"])
    with IndexStore.open(read_only) as store:
        assert store.read_only and store.count == 8
        assert store.info()["read_only"] is True and store.info()["catalog_check"] == "ok"
        _, ids = store.search(query, 3)
        assert all(record is not None for record in store.records(ids[0]))
    assert verify(read_only, deep=True).clean
    code, out, _ = run(["info", "--index", read_only], capsys)
    assert code == 0 and "read-only storage" in out
    code, out, err = run(["verify", "--index", read_only, "--repair"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "read-only storage" in err
    with pytest.raises(ReadOnlyIndexError, match="can still be searched"):
        build_index([], read_only, tiny_mllama, show_progress=False)


def test_a_full_disk_stops_a_build_with_one_sentence_and_the_build_resumes_once_space_is_freed(
    photos, tmp_path, tiny_mllama_dir, tiny_mllama, mounts, capsys
):
    for i in range(30):
        photos.jpeg(f"{i:02d}.jpg", seed=300 + i)
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m", "none", disk)
    mounts.append(disk)
    filler = disk / "filler"
    stat = os.statvfs(disk)
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 200 * 1024))  # 200 KB left
    index_dir = disk / "index"
    code, out, err = run(
        [
            "build",
            "--dir",
            photos.folder,
            "--index",
            index_dir,
            "--model",
            tiny_mllama_dir,
            "--batch-size",
            "1",
            "--workers",
            "1",
            "--quiet",
        ],
        capsys,
    )
    assert code == 1 and len(error_lines(err)) == 1
    assert "the disk is full" in err and "run the same command again" in err
    code, out, _ = run(["info", "--index", index_dir], capsys)  # readers still open it on the full disk
    assert code == 0 and "images:" in out
    filler.unlink()
    summary = build_index([photos.folder], index_dir, tiny_mllama, show_progress=False)
    assert summary.images == 30 and not summary.errors
    assert verify(index_dir, deep=True).clean
    (index_dir / "vectors.faiss").unlink()  # a repair on a full disk says the same
    stat = os.statvfs(disk)
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize))
    with pytest.raises(DiskFullError, match="the disk is full"):
        verify(index_dir, repair=True)


def test_a_read_only_copy_with_an_unfinished_log_is_refused_not_misread(built, tmp_path, mounts):
    copy = tmp_path / "copy"
    copy.mkdir()
    writer = sqlite3.connect(built / "catalog.sqlite")  # a commit still in the write-ahead log when copied
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('note', '\"copied mid-write\"')")
    writer.commit()
    for name in ("catalog.sqlite", "catalog.sqlite-wal", "vectors.faiss"):  # no -shm: as a backup tool copies
        (copy / name).write_bytes((built / name).read_bytes())
    writer.close()
    assert (copy / "catalog.sqlite-wal").stat().st_size > 0
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    mount("--bind", copy, read_only)
    mounts.append(read_only)
    mount("-o", "remount,bind,ro", read_only)
    with pytest.raises(ReadOnlyIndexError, match="unfinished write-ahead log"):
        IndexStore.open(read_only)
