"""Every kind of broken or unusual file: reported with path and reason, never stopping the build."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3  # noqa: F401 - loaded while still root: the stdlib may not be readable by nobody
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import indexer.engines
from indexer import BadRootError, IndexStore, build_index, verify


def build(root, index_dir, embedder, **kwargs):
    return build_index([root], index_dir, embedder, batch_size=4, show_progress=False, **kwargs)


def error_map(summary) -> dict[str, str]:
    """{path: reason} of what the build reported: files recorded unreadable, and what it skipped."""
    return {error.path: error.reason for error in [*summary.errors, *summary.skipped]}


@pytest.fixture
def zoo(photos):
    """A folder with one of everything; returns {label: path}."""
    good = photos.jpeg("good.jpg", 200, 150)
    files = {
        "good": good,
        "empty": photos.raw("empty.jpg", b""),
        "truncated_jpeg": photos.truncated("truncated.jpg", photos.jpeg("full-for-truncation.jpg", 400, 300)),
        "truncated_png": photos.truncated("truncated.png", photos.png("full-for-truncation.png")),
        "text_as_jpg": photos.raw("notes.jpg", b"shopping list: milk, eggs\n" * 20),
        "bomb": photos.bomb_png("bomb.png"),
        "panorama": photos.jpeg("panorama.jpg", 6000, 300),
        "cmyk": photos.jpeg("cmyk.jpg", mode="CMYK"),
        "sixteen_bit": photos.png(
            "16bit.png", Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 17))
        ),
        "palette_alpha": photos.png("palette.png", Image.fromarray(photos.pixels()).convert("P"), transparency=0),
        "one_pixel": photos.png("dot.png", Image.new("RGB", (1, 1), (255, 0, 0))),
        "rotated": photos.jpeg("rotated.jpg", 80, 40, exif=photos.exif(orientation=6)),
        "non_utf8": photos.jpeg(b"caf\xe9-\xff.jpg"),
    }
    frames = [Image.fromarray(photos.pixels(64, 48)) for _ in range(3)]
    files["gif"] = photos.path("animated.gif")
    frames[0].save(files["gif"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    from pillow_heif import from_pillow

    files["heic"] = photos.path("phone.heic")
    from_pillow(Image.fromarray(photos.pixels(128, 96))).save(files["heic"], quality=80)
    files["broken_link"] = photos.path("broken-link.jpg")
    os.symlink(photos.folder / "nowhere.jpg", files["broken_link"])
    files["loop_link"] = photos.path("loop-a.jpg")
    os.symlink(photos.folder / "loop-b.jpg", files["loop_link"])
    os.symlink(photos.folder / "loop-a.jpg", photos.path("loop-b.jpg"))
    os.symlink(photos.folder, photos.path("sub/back-to-top"))  # a folder loop
    files["hidden"] = photos.jpeg(".thumbnails/hidden.jpg")
    files["hidden_file"] = photos.jpeg(".hidden.jpg")
    files["not_an_image"] = photos.raw("readme.txt", b"hello")
    return files


def test_bad_files_are_reported_and_good_ones_indexed(zoo, photos, tmp_path, tiny_mllama):
    index_dir = tmp_path / "index"
    summary = build(photos.folder, index_dir, tiny_mllama)
    errors = error_map(summary)
    reasons = {label: errors.get(str(path)) for label, path in zoo.items()}
    assert reasons["empty"] == "empty file (0 bytes)"
    assert "truncated" in reasons["truncated_jpeg"]
    assert "truncated" in reasons["truncated_png"] or "damaged" in reasons["truncated_png"]
    assert reasons["text_as_jpg"] == "not an image file Pillow can read"
    assert "decompression bomb" in reasons["bomb"]
    assert reasons["broken_link"].startswith("broken symbolic link")
    assert reasons["loop_link"] == "symbolic link loop"
    for label in (
        "good",
        "panorama",
        "cmyk",
        "sixteen_bit",
        "palette_alpha",
        "one_pixel",
        "rotated",
        "non_utf8",
        "gif",
        "heic",
    ):
        assert reasons[label] is None, (label, reasons[label])
    loop_folder = str(photos.folder / "sub" / "back-to-top")
    assert "symbolic link loop" in errors[loop_folder]
    assert errors[str(photos.folder / "loop-b.jpg")] == "symbolic link loop"
    assert len(set(errors) - {loop_folder}) == 8, sorted(errors)  # the 8 bad files above, nothing else
    assert [error.path for error in summary.skipped] == [loop_folder]  # a folder: recorded nowhere, not an error

    with IndexStore.open(index_dir) as store:
        records = {record.path: record for record in store.records(store.catalog.ok_ids())}
        good_paths = {
            str(zoo[label])
            for label in (
                "good",
                "panorama",
                "cmyk",
                "sixteen_bit",
                "palette_alpha",
                "one_pixel",
                "rotated",
                "non_utf8",
                "gif",
                "heic",
            )
        }
        good_paths |= {str(photos.folder / "full-for-truncation.jpg"), str(photos.folder / "full-for-truncation.png")}
        assert set(records) == good_paths  # hidden files/folders and non-images are skipped
        rotated = records[str(zoo["rotated"])]
        assert (rotated.width, rotated.height) == (40, 80)  # EXIF orientation 6 = displayed portrait
        assert rotated.taken_at == datetime(2021, 7, 14, 18, 30, 5) and rotated.camera == "Canon EOS 5D"
        assert (records[str(zoo["panorama"])].width, records[str(zoo["panorama"])].height) == (6000, 300)
        assert records[str(zoo["good"])].taken_at is None and records[str(zoo["good"])].camera is None
        non_utf8 = records[str(zoo["non_utf8"])]
        assert os.fsencode(non_utf8.path).endswith(b"caf\xe9-\xff.jpg") and Path(non_utf8.path).is_file()
        info = store.info()
        assert info["errors"] == 8 == info["last_build"]["error_count"] and info["images"] == len(good_paths)
        listed = {entry["path"]: entry["error"] for entry in info["error_list"]}
        assert listed[str(zoo["bomb"])] == reasons["bomb"]
        assert {entry["path"] for entry in info["last_build"]["errors"]} == set(errors) - {loop_folder}
        assert info["last_build"]["skipped"] == [{"path": loop_folder, "reason": errors[loop_folder]}]
    assert verify(index_dir).clean

    summary = build(photos.folder, index_dir, tiny_mllama)  # bad files are not retried until they change
    assert summary.embedded == 0 and summary.added == 0
    assert summary.errors == [] and len(summary.skipped) == 1  # nothing new is wrong; the loop is skipped again
    zoo["empty"].write_bytes(zoo["good"].read_bytes())
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert summary.updated == 1 and summary.duplicates == 1 and summary.embedded == 0


def test_hidden_folders_are_indexed_when_asked(zoo, photos, tmp_path, tiny_mllama):
    summary = build(photos.folder, tmp_path / "index", tiny_mllama, include_hidden=True)
    with IndexStore.open(tmp_path / "index") as store:
        paths = {record.path for record in store.records(store.catalog.ok_ids())}
    assert str(zoo["hidden"]) in paths and str(zoo["hidden_file"]) in paths
    assert summary.added == len(paths)


@contextlib.contextmanager
def unprivileged():
    """Run as nobody when root, so file permissions are enforced as for a normal user."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_unreadable_file_and_folder_are_reported_and_kept(tiny_mllama):
    base = Path(tempfile.mkdtemp(prefix="indexer-perm-"))
    try:
        os.chmod(base, 0o777)
        folder = base / "photos"
        locked = folder / "locked"
        locked.mkdir(parents=True)
        Image.new("RGB", (32, 32), (0, 128, 0)).save(folder / "ok.jpg")
        Image.new("RGB", (32, 32), (0, 0, 128)).save(folder / "secret.jpg")
        Image.new("RGB", (32, 32), (128, 0, 0)).save(locked / "inside.jpg")
        for path in (base, folder, locked):
            os.chmod(path, 0o777)
        index_dir = base / "index"
        tiny_mllama.fingerprint  # noqa: B018 - the model's identity is read as its loader (root) could; cached
        with unprivileged():
            build(folder, index_dir, tiny_mllama)  # everything readable: 3 images
        os.chmod(folder / "secret.jpg", 0o000)
        os.utime(folder / "secret.jpg", ns=(10**18, 10**18))
        os.chmod(locked, 0o000)
        with unprivileged():
            summary = build(folder, index_dir, tiny_mllama)
        errors = error_map(summary)
        assert errors[str(folder / "secret.jpg")] == "permission denied; check the file's read permissions"
        assert errors[str(locked)].startswith("cannot list folder: permission denied")
        with IndexStore.open(index_dir) as store:
            paths = {record.path for record in store.records(store.catalog.ok_ids())}
        assert paths == {str(folder / "ok.jpg"), str(locked / "inside.jpg")}  # kept: its folder is unreadable, not gone
    finally:
        for path in base.rglob("*"):
            if not path.is_symlink():
                os.chmod(path, 0o777)
        shutil.rmtree(base)


def test_files_that_vanish_or_change_after_the_scan(photos, tmp_path, tiny_mllama, monkeypatch):
    keep = photos.jpeg("keep.jpg")
    vanish = photos.jpeg("vanish.jpg")
    change = photos.jpeg("change.jpg")
    index_dir = tmp_path / "index"
    build(photos.folder, index_dir, tiny_mllama)
    for path in (keep, vanish, change):
        os.utime(path, ns=(10**18, 10**18))  # all three look changed to the next scan
    original = indexer.engines.read_file

    def racing_read(entry, *args):
        if entry.relpath == "vanish.jpg":
            vanish.unlink()
        if entry.relpath == "change.jpg":
            result = original(entry, *args)
            photos.jpeg("change.jpg", 50, 50, seed=7)  # rewritten while being read
            result.changed = os.stat(change).st_size != result.size
            return result
        return original(entry, *args)

    monkeypatch.setattr(indexer.engines, "read_file", racing_read)
    summary = build(photos.folder, index_dir, tiny_mllama)
    errors = error_map(summary)
    assert errors[str(vanish)] == "vanished while indexing (deleted?)"
    assert errors[str(change)] == "changed while being read; it will be indexed on the next run"
    assert summary.errors == []  # skipped, not recorded as unreadable: the next build looks again
    assert summary.removed == 1
    monkeypatch.setattr(indexer.engines, "read_file", original)
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert summary.updated == 1 and summary.errors == [] and summary.skipped == []
    with IndexStore.open(index_dir) as store:
        records = {r.relpath: r for r in store.records(store.catalog.ok_ids())}
    assert set(records) == {"keep.jpg", "change.jpg"} and records["change.jpg"].width == 50
    assert verify(index_dir).clean


def test_reader_notices_a_file_rewritten_during_decoding(photos, monkeypatch):
    from indexer import reader
    from indexer.files import scan_root

    path = photos.jpeg("a.jpg")
    entry = next(iter(scan_root(str(photos.folder))))
    original = reader.load_image

    def rewrite_then_load(*args, **kwargs):
        image = original(*args, **kwargs)
        photos.jpeg("a.jpg", 30, 30)
        return image

    monkeypatch.setattr(reader, "load_image", rewrite_then_load)
    result = reader.read_file(entry, 56, set())
    assert result.changed and result.error is None and os.path.getsize(path) != result.size


def test_missing_folder_and_folder_inside_the_index_fail_before_any_work(photos, tmp_path, tiny_mllama):
    index_dir = tmp_path / "index"
    with pytest.raises(BadRootError, match="does not exist"):
        build(tmp_path / "no-such-folder", index_dir, tiny_mllama)
    assert not index_dir.exists()
    with pytest.raises(BadRootError, match="not a folder"):
        build(photos.jpeg("x.jpg"), index_dir, tiny_mllama)
    (index_dir / "inner").mkdir(parents=True)
    with pytest.raises(BadRootError, match="inside the index folder"):
        build(index_dir / "inner", index_dir, tiny_mllama)
    assert list(index_dir.iterdir()) == [index_dir / "inner"]
    (photos.folder / "sub").mkdir()
    with pytest.raises(BadRootError, match="overlaps"):
        build_index([photos.folder, photos.folder / "sub"], tmp_path / "i2", tiny_mllama)


def test_index_folder_inside_the_photo_folder_is_not_indexed(photos, tiny_mllama):
    photos.jpeg("a.jpg")
    index_dir = photos.folder / "index"
    build(photos.folder, index_dir, tiny_mllama)
    summary = build(photos.folder, index_dir, tiny_mllama)
    assert summary.unchanged == 1 and summary.added == 0


def test_nested_root_is_refused(photos, tmp_path, tiny_mllama):
    photos.jpeg("sub/a.jpg")
    index_dir = tmp_path / "index"
    build(photos.folder, index_dir, tiny_mllama)
    with pytest.raises(BadRootError, match="overlaps the indexed folder"):
        build(photos.folder / "sub", index_dir, tiny_mllama)


def test_an_image_the_model_rejects_becomes_an_error_row(photos, tmp_path, tiny_mllama, monkeypatch):
    for i in range(4):
        photos.jpeg(f"{i}.jpg", 64 + 16 * i, 48)
    original = tiny_mllama.encode_images

    def picky(images, batch_size=8, **kwargs):
        if any(image.width == 96 for image in images):  # the model chokes on 2.jpg
            raise RuntimeError("shape mismatch in vision tower")
        return original(images, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(tiny_mllama, "encode_images", picky)
    summary = build(photos.folder, tmp_path / "index", tiny_mllama)
    assert error_map(summary) == {
        str(
            photos.folder / "2.jpg"
        ): "the model could not embed this image (RuntimeError: shape mismatch in vision tower)"
    }
    assert summary.added == 3 and summary.images == 3
    with IndexStore.open(tmp_path / "index") as store:
        assert store.info()["errors"] == 1
    assert verify(tmp_path / "index").clean


def test_permission_errors_are_retried_even_if_the_file_is_unchanged(photos, tmp_path, tiny_mllama, monkeypatch):
    from indexer import reader

    photos.jpeg("a.jpg")
    original = reader.hash_file
    monkeypatch.setattr(reader, "hash_file", lambda path: (_ for _ in ()).throw(PermissionError(13, "denied")))
    summary = build(photos.folder, tmp_path / "index", tiny_mllama)
    assert error_map(summary) == {str(photos.folder / "a.jpg"): "permission denied; check the file's read permissions"}
    monkeypatch.setattr(reader, "hash_file", original)  # e.g. `chmod +r`: mtime and size stay the same
    summary = build(photos.folder, tmp_path / "index", tiny_mllama)
    assert summary.updated == 1 and summary.errors == [] and summary.images == 1


def test_a_copy_of_a_rejected_image_in_a_later_batch_is_an_error_too(photos, tmp_path, tiny_mllama, monkeypatch):
    """The model embeds one batch while the next is read; a copy of content it then rejects,
    already counted as "embedded elsewhere", must not become a row without a vector."""
    import shutil

    photos.jpeg("a.jpg", 96, 48)
    photos.jpeg("b.jpg", 64, 48)
    shutil.copy(photos.folder / "a.jpg", photos.folder / "z-copy-of-a.jpg")  # scanned after a.jpg
    original = tiny_mllama.encode_images

    def picky(images, batch_size=8, **kwargs):
        if any(image.width == 96 for image in images):
            raise RuntimeError("shape mismatch in vision tower")
        return original(images, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(tiny_mllama, "encode_images", picky)
    summary = build_index([photos.folder], tmp_path / "index", tiny_mllama, batch_size=1, show_progress=False)
    assert set(error_map(summary)) == {str(photos.folder / "a.jpg"), str(photos.folder / "z-copy-of-a.jpg")}
    assert summary.added == 1 and summary.images == 1
    assert verify(tmp_path / "index").clean
