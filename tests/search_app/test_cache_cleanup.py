"""The app's cache folders (previews, copies of originals, album zips, Gradio's copies and uploads) stay within a
size and age budget; nothing outside them is ever touched, symbolic links included. A fresh HOME outside the
system temp dir and the repo, with no XDG_CACHE_HOME: the cache is where a user's would be (~/.cache)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

import search_app.cache_cleanup as cache_cleanup
from search_app.cache_cleanup import cache_folders, clean_cache, start_cache_cleanup
from search_app.private import cache_home

DAY = 86400.0


@pytest.fixture
def home(monkeypatch):
    folder = Path(tempfile.mkdtemp(prefix="mme5-test-home-", dir=os.path.expanduser("~")))
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    yield folder
    shutil.rmtree(folder)


def put(path: Path, size: int, last_used: float) -> Path:
    """A file of ``size`` bytes last read and written at ``last_used`` (its inode change time is now)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (last_used, last_used))
    return path


def test_the_budget_holds_oldest_go_first_and_nothing_outside_is_touched(home):
    # Every file here arrived (inode change time) now; "now" for the cleanup is 100 days later, so each file's
    # last use is what the test set (up to 100 days back) and all are past the few minutes a new file is kept.
    now = time.time() + 100 * DAY
    cache = cache_home()
    assert cache == home / ".cache" / "mme5-search" and cache_folders()[0].parent == cache
    folders = ["previews", "originals/abc123", "albums", "gradio/f00d"]
    recent = [put(cache / folders[i % 4] / f"recent-{i}.jpg", 100_000, now - (i + 1) * DAY) for i in range(20)]
    expired = [put(cache / folders[i % 4] / f"expired-{i}.jpg", 10, now - (40 + i) * DAY) for i in range(4)]
    copying = put(cache / "originals" / "def456" / "big.jpg.partial", 1000, now - 3600)  # still being copied
    model = put(cache / "tiny-mllama" / "model.safetensors", 10_000, now - 99 * DAY)  # not a cache folder
    photo = put(home / "Pictures" / "holiday.jpg", 10_000, now - 99 * DAY)
    (cache / "previews" / "link-to-photo.jpg").symlink_to(photo)
    (cache / "gradio" / "linked-folder").symlink_to(home / "Pictures", target_is_directory=True)

    budget = 10 * 100_000 + 1000  # the ten most recent files and the copy in progress
    report = clean_cache(max_bytes=budget, max_age_s=30 * DAY, now=now)

    assert all(path.exists() for path in recent[:10]), "the ten most recently used stay"
    assert not any(path.exists() for path in recent[10:] + expired)
    assert report.removed == 14 and report.freed == 10 * 100_000 + 4 * 10 and report.kept == budget
    assert copying.exists() and model.exists() and photo.exists() and photo.read_bytes() == b"x" * 10_000
    assert (cache / "previews" / "link-to-photo.jpg").is_symlink() and (cache / "gradio" / "linked-folder").is_symlink()
    assert report.problems == []


def test_an_old_copy_that_just_arrived_and_a_young_file_stay(home):
    """Gradio copies a served photo with shutil.copy2, keeping its (years old) times: it just arrived, so it stays."""
    photo = put(home / "Pictures" / "2019.jpg", 5000, time.time() - 2000 * DAY)
    copy = cache_home() / "gradio" / "9a8b" / "2019.jpg"
    copy.parent.mkdir(parents=True)
    shutil.copy2(photo, copy)
    fresh = put(cache_home() / "previews" / "fresh.jpg", 5000, time.time())
    report = clean_cache(max_bytes=1, max_age_s=DAY)
    assert copy.exists() and fresh.exists() and report.removed == 0 and report.kept == 10_000
    later = clean_cache(max_bytes=1, max_age_s=DAY, now=time.time() + 2 * DAY)
    assert later.removed == 2 and not copy.exists() and not fresh.exists()
    assert not (cache_home() / "gradio" / "9a8b").exists(), "its emptied folder goes too"
    assert photo.exists()


def test_a_cache_folder_that_is_a_link_is_never_entered(home):
    photos = home / "Pictures"
    photo = put(photos / "a.jpg", 5000, time.time() - 400 * DAY)
    cache_home().mkdir(parents=True)
    (cache_home() / "albums").symlink_to(photos, target_is_directory=True)
    report = clean_cache(max_bytes=1, max_age_s=DAY, now=time.time() + 400 * DAY)
    assert photo.exists() and report.removed == 0
    assert report.problems == [
        f"{cache_home() / 'albums'}: not a folder (a link or a file); not cleaned. Remove it "
        "if the app should use this cache folder again"
    ]


def test_the_background_cleanup_runs_at_start_and_again_until_stopped(home, monkeypatch):
    monkeypatch.setattr(cache_cleanup, "MIN_AGE_S", 0)  # the files below arrived now; a real run keeps them minutes
    first = put(cache_home() / "previews" / "first.jpg", 100, time.time())
    stop = threading.Event()
    thread = start_cache_cleanup(max_gb=50e-9, max_days=30, interval_s=0.2, stop=stop)  # a 50-byte budget
    try:
        deadline = time.monotonic() + 30
        while first.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not first.exists(), "cleaned at start"
        second = put(cache_home() / "albums" / "second.zip", 100, time.time())
        while second.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not second.exists(), "and again later"
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_the_app_starts_the_cleanup_with_its_options(home, monkeypatch):
    import search_app.__main__ as app

    class Started(Exception):
        pass

    def engine_start(args):
        raise Started

    calls = []
    monkeypatch.setattr(app, "start_cache_cleanup", lambda *args: calls.append(args))
    monkeypatch.setattr(app, "start_engine", engine_start)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(home / "gradio-temp"))  # serve sets it for the app process: not ours
    with pytest.raises(Started):
        app.serve(["--cache-max-gb", "0.5", "--cache-max-days", "7"])
    assert calls == [(0.5, 7.0)]
    with pytest.raises(SystemExit) as exit_info:
        app.build_parser().parse_args(["--cache-max-days", "0"])
    assert exit_info.value.code == 2
