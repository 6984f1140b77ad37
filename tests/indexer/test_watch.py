"""A real watcher (watchfiles, inotify or polling) keeps the index current; kill -9 mid-burst, restart, verify clean."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer import IndexStore, verify
from indexer.watch import Watcher

from .test_crash import catalog_rows

REPO = Path(__file__).resolve().parents[2]


def indexed(index_dir: Path) -> dict[str, str]:
    """{path: content hash} of the searchable photos, as a reader opening the index now sees them."""
    with IndexStore.open(index_dir) as store:
        return {record.path: record.content_hash for record in store.records(store.ids()) if record is not None}


def eventually(condition, what: str, timeout: float = 240, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f} s: {what}" + (f"; the watcher's log:\n{tail(log)}" if log else ""))


@pytest.fixture
def watcher(photos, tmp_path, tiny_mllama):
    for i in range(4):
        photos.jpeg(f"start/{i}.jpg", 64, 48, seed=i)
    index_dir = tmp_path / "index"
    watching = Watcher(index_dir, [photos.folder], tiny_mllama, quiet=0.5, stable=0.3, log=lambda message: None)
    thread = watching.start()
    eventually(lambda: watching.state.builds >= 1, "the catch-up build")
    yield watching, index_dir
    watching.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.mark.slow  # watches a 500-file burst
@pytest.mark.timeout(900)
def test_new_changed_moved_deleted_and_a_500_file_burst_reach_the_index(watcher, photos):
    watching, index_dir = watcher
    folder = photos.folder
    assert len(indexed(index_dir)) == 4
    new = photos.jpeg("new/arrived.jpg", 64, 48, seed=100)
    eventually(lambda: str(new) in indexed(index_dir), "a new photo")
    before = indexed(index_dir)[str(folder / "start/1.jpg")]
    photos.jpeg("start/1.jpg", 64, 48, seed=101)  # edited in place
    eventually(lambda: indexed(index_dir).get(str(folder / "start/1.jpg")) not in (None, before), "a changed photo")
    (folder / "moved").mkdir()
    os.replace(folder / "start/2.jpg", folder / "moved/2.jpg")
    eventually(
        lambda: (
            str(folder / "moved/2.jpg") in indexed(index_dir) and str(folder / "start/2.jpg") not in indexed(index_dir)
        ),
        "a moved photo",
    )
    (folder / "start/3.jpg").unlink()
    eventually(lambda: str(folder / "start/3.jpg") not in indexed(index_dir), "a deleted photo")

    builds = watching.state.builds
    for i in range(500):  # a camera import
        photos.jpeg(f"import/{i:04d}.jpg", 32, 24, seed=1000 + i)
    eventually(lambda: len(indexed(index_dir)) == 4 + 500, "the 500-photo burst", timeout=600)
    assert watching.state.builds - builds <= 3, "a burst is batched into a few builds, not one per file"
    assert watching.state.last_error is None


def test_files_still_being_written_are_waited_for(photos, tmp_path):
    from indexer.watch import wait_until_stable

    growing = photos.folder / "copying.jpg"
    growing.write_bytes(b"\xff\xd8")
    started = time.monotonic()
    import threading

    def keep_writing():
        for _ in range(6):
            time.sleep(0.1)
            with open(growing, "ab") as file:
                file.write(b"\0" * 1000)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    wait_until_stable([str(growing), str(tmp_path / "gone.jpg")], stable=0.25)
    writer.join()
    assert growing.stat().st_size == 2 + 6000  # it returned only after the last write
    assert time.monotonic() - started >= 0.6


def start_watch(index_dir: Path, log: Path, *arguments) -> subprocess.Popen:
    """`indexer watch` in its own process; its log goes to a file, never to a pipe nobody reads while it runs (a
    full pipe blocks the watcher's next write and it stops making progress)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    with open(log, "ab") as file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "indexer",
                "watch",
                "--index",
                str(index_dir),
                *arguments,
                "--batch-size",
                "2",
                "--quiet",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=file,
        )


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


@pytest.mark.slow  # kills a watcher mid-burst and restarts it
@pytest.mark.timeout(900)
def test_kill_9_during_a_burst_then_restart_catches_up_and_verifies_clean(make_photos, tmp_path, tiny_mllama_dir):
    photos = make_photos("photos")
    photos.jpeg("first.jpg", 64, 48, seed=1)
    index_dir, log = tmp_path / "index", tmp_path / "watch.log"
    model = ["--dir", str(photos.folder), "--model", str(tiny_mllama_dir)]
    process = start_watch(index_dir, log, *model, "--poll", "0.5")  # polling, as on a NAS
    try:
        eventually(lambda: catalog_rows(index_dir) >= 1 or process.poll() is not None, "the first build")
        assert process.poll() is None, tail(log)
        for i in range(120):
            photos.jpeg(f"burst/{i:03d}.jpg", 64, 48, seed=10 + i)
        eventually(
            lambda: catalog_rows(index_dir) >= 10 or process.poll() is not None,
            "the burst's build to start committing",
            log=log,
        )
        assert process.poll() is None, tail(log)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert catalog_rows(index_dir) < 121, "killed mid-build (the build was not already done)"
    for i in range(5):  # changes while nothing watches
        photos.jpeg(f"meanwhile/{i}.jpg", 64, 48, seed=500 + i)
    (photos.folder / "first.jpg").unlink()
    restarted = start_watch(index_dir, log, *model)
    try:
        eventually(
            lambda: len(indexed(index_dir)) == 125 and str(photos.folder / "first.jpg") not in indexed(index_dir),
            "the restarted watcher to catch up",
            timeout=600,
            log=log,
        )
    finally:
        restarted.send_signal(signal.SIGINT)
        try:
            restarted.wait(timeout=60)
        except subprocess.TimeoutExpired:
            restarted.kill()
    report = verify(index_dir)
    assert report.clean, report.problems


# -- a watched folder that goes and comes back (a drive unplugged, a folder moved away) -------------------------


@pytest.mark.slow  # polls a folder through its going and coming back
def test_the_apps_watcher_follows_a_folder_that_goes_and_comes_back(make_photos, tmp_path, tiny_mllama):
    """The app's --watch (Watcher(...).start() on the index's folders, polling as on a NAS): the gone folder's
    photos stay in the index, the other folder is still watched, and the folder is re-scanned when it is back."""
    from indexer import build_index
    from indexer.watch import watch_roots

    camera, home = make_photos("camera"), make_photos("home")
    camera.jpeg("old.jpg", 64, 48, seed=1)
    home.jpeg("home.jpg", 64, 48, seed=2)
    index_dir = tmp_path / "index"
    build_index([camera.folder, home.folder], index_dir, tiny_mllama, show_progress=False)
    lines: list[str] = []
    watching = Watcher(
        index_dir, watch_roots(index_dir, []), tiny_mllama, poll=0.3, quiet=0.5, stable=0.3, log=lines.append
    )
    thread = watching.start()
    try:
        eventually(lambda: watching.state.builds >= 1, "the catch-up build")
        away = tmp_path / "unplugged"
        os.rename(camera.folder, away)  # the drive is gone
        eventually(lambda: any("camera: folder is gone" in line for line in lines), "the watcher to notice")
        new_home = home.jpeg("while-away.jpg", 64, 48, seed=3)
        eventually(lambda: str(new_home) in indexed(index_dir), "a photo in the folder still there")
        assert str(camera.folder / "old.jpg") in indexed(index_dir), "the gone folder's photos stay"
        os.rename(away, camera.folder)  # plugged in again, with a photo taken meanwhile
        new_camera = camera.jpeg("taken-meanwhile.jpg", 64, 48, seed=4)
        eventually(lambda: str(new_camera) in indexed(index_dir), "a photo of the folder that came back")
        assert str(camera.folder / "old.jpg") in indexed(index_dir)
        assert thread.is_alive() and watching.state.last_error is None, lines
        assert any("camera: folder is back" in line for line in lines), lines
    finally:
        watching.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()


@pytest.mark.server
@pytest.mark.timeout(900)
def test_indexer_watch_keeps_running_when_a_folder_is_removed_and_restored(make_photos, tmp_path, tiny_mllama_dir):
    """`python -m indexer watch` (kernel events): the folder deleted outright, then created again with a new
    photo; before, watch exited 1 on the first build after the removal."""
    camera, home = make_photos("camera"), make_photos("home")
    camera.jpeg("old.jpg", 64, 48, seed=1)
    home.jpeg("home.jpg", 64, 48, seed=2)
    index_dir = tmp_path / "index"
    log = tmp_path / "watch.log"
    process = start_watch(
        index_dir, log, "--dir", str(camera.folder), "--dir", str(home.folder), "--model", str(tiny_mllama_dir)
    )
    try:
        eventually(lambda: catalog_rows(index_dir) >= 2 or process.poll() is not None, "the catch-up build")
        assert process.poll() is None, tail(log)
        saved = tmp_path / "saved.jpg"
        shutil.copy(camera.folder / "old.jpg", saved)
        shutil.rmtree(camera.folder)
        new_home = home.jpeg("while-away.jpg", 64, 48, seed=3)
        eventually(
            lambda: str(new_home) in indexed(index_dir) or process.poll() is not None,
            "a photo in the folder still there",
        )
        assert process.poll() is None, tail(log)
        assert str(camera.folder / "old.jpg") in indexed(index_dir), "the gone folder's photos stay"
        camera.folder.mkdir()
        shutil.copy(saved, camera.folder / "old.jpg")
        new_camera = camera.jpeg("taken-meanwhile.jpg", 64, 48, seed=4)
        eventually(
            lambda: str(new_camera) in indexed(index_dir) or process.poll() is not None,
            "a photo of the folder that came back",
        )
        assert process.poll() is None, tail(log)
        assert len(indexed(index_dir)) == 4
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    log = log.read_text()
    assert "camera: folder is gone (drive unplugged or folder moved?)" in log, log
    assert "camera: folder is back" in log, log
    assert verify(index_dir).clean


def test_a_missing_folder_the_index_never_had_is_a_typo(photos, tmp_path, tiny_mllama):
    from indexer.errors import BadRootError

    watching = Watcher(tmp_path / "index", [tmp_path / "Pictrues"], tiny_mllama, log=lambda message: None)
    with pytest.raises(BadRootError, match="Pictrues: folder does not exist; check the --dir path"):
        watching.run()


# -- text: a sign photo's OCR and a sidecar's keywords follow the folder ------------------------------------------


def text_found(index_dir: Path, query: str) -> dict[str, str]:
    """{path: source} of the photos whose words or OCR text match ``query``, as a reader opening the index sees them."""
    from indexer.fulltext import text_hits

    with IndexStore.open(index_dir) as store:
        paths = {record.id: record.path for record in store.records(store.catalog.ok_ids())}
        return {paths[hit.image_id]: hit.source for hit in text_hits(store.catalog, query)}


def test_a_sign_photo_added_while_watching_is_found_by_its_text_and_an_edited_sidecar_updates_keywords(watcher, photos):
    from benchmarks.text_photos import sign_photo, texture

    from .test_ocr import xmp

    watching, index_dir = watcher
    sign = photos.path("street/0042.jpg")
    sign_photo("BAKERY", "latin", seed=7).save(sign, quality=92)
    eventually(lambda: text_found(index_dir, "bakery"), "the new sign photo's text")
    assert text_found(index_dir, "bakery") == {str(sign): "ocr"}

    tagged = photos.path("trip/IMG_2041.jpg")
    texture((160, 120), seed=9).save(tagged, quality=92)
    sidecar = photos.folder / "trip" / "IMG_2041.xmp"
    sidecar.write_text(xmp("Trevi"), encoding="utf-8")
    eventually(lambda: text_found(index_dir, "trevi"), "the new photo's sidecar keywords")
    assert text_found(index_dir, "trevi") == {str(tagged): "keywords"}
    builds = watching.state.builds
    sidecar.write_text(xmp("Colosseum"), encoding="utf-8")  # retagged in Lightroom: only the sidecar changes
    eventually(lambda: text_found(index_dir, "colosseum"), "the edited sidecar's keywords")
    assert text_found(index_dir, "colosseum") == {str(tagged): "keywords"} and text_found(index_dir, "trevi") == {}
    assert watching.state.builds > builds and watching.state.last_error is None
    assert verify(index_dir).clean
