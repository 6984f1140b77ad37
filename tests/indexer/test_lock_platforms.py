"""The one-writer lock through both OS branches of indexer/lock.py: POSIX ``flock`` as is, and the
Windows ``msvcrt.locking`` byte-range lock on Linux through a stand-in msvcrt (fake_msvcrt.py,
open-file-description locks: per handle, released on death, as on Windows). Real subprocesses."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import sys
import threading
import time

import pytest

from indexer import IndexLockedError, lock
from indexer.errors import ReadOnlyIndexError
from indexer.lock import LOCK_FILE, WriteLock, lock_holder

from .conftest import FAKE_MSVCRT, process_holding_write_lock
from .test_storage_guarantees_integrity import mount, mounts  # noqa: F401 - the fixture is used by name


@pytest.fixture(params=["posix", "nt"])
def os_name(request, monkeypatch):
    """Run the test with indexer.lock's POSIX branch, then with its Windows one."""
    if request.param == "nt":
        if not hasattr(fcntl, "F_OFD_SETLK"):
            pytest.skip("the stand-in msvcrt needs Linux open-file-description locks")
        spec = importlib.util.spec_from_file_location("msvcrt", FAKE_MSVCRT)
        fake = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fake)
        monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.setattr(lock, "_os_lock", lock._platform_lock(request.param))
    monkeypatch.setattr(lock, "CONTENTION_WAIT_S", 0.05)  # refusals come quickly; the tests that need it raise it
    return request.param


def eventually(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_the_platform_is_chosen_from_os_name():
    assert lock._platform_lock("nt") is lock._ByteLock and lock._platform_lock("posix") is lock._Flock
    assert lock._os_lock is lock._platform_lock(os.name)


def test_a_writer_in_another_process_is_reported_and_a_second_writer_refused(os_name, tmp_path):
    with process_holding_write_lock(tmp_path, os_name) as holder:
        assert lock_holder(tmp_path) == (holder.pid, "build")
        with pytest.raises(IndexLockedError, match=rf"another indexer process \(pid {holder.pid}, build\)"):
            with WriteLock(tmp_path, "verify --repair"):
                pass
        assert lock_holder(tmp_path) == (holder.pid, "build")  # the refused writer took nothing away
    assert lock_holder(tmp_path) is None
    with WriteLock(tmp_path, "remove"):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()} remove"


def test_the_lock_is_released_when_its_holder_is_killed(os_name, tmp_path):
    with process_holding_write_lock(tmp_path, os_name) as holder:
        holder.kill()  # SIGKILL: no unlocking code runs
        holder.wait()
        eventually(lambda: lock_holder(tmp_path) is None)  # Windows frees a dead process's locks "soon"
        with WriteLock(tmp_path, "build"):
            assert lock_holder(tmp_path) == (os.getpid(), "build")


def test_the_lock_is_re_entrant_within_a_process(os_name, tmp_path):
    with WriteLock(tmp_path, "build"):
        with WriteLock(tmp_path, "inner"):  # the CLI takes it, then build_index again
            assert lock_holder(tmp_path) == (os.getpid(), "build")
        assert lock_holder(tmp_path) == (os.getpid(), "build")  # leaving the inner one keeps the lock
    assert lock_holder(tmp_path) is None


def test_a_readers_probe_does_not_refuse_a_writer_nor_look_like_one(os_name, tmp_path, monkeypatch):
    """A probe holds the lock for microseconds; on Windows it is exclusive, so it can meet a writer
    or another probe: both retry instead of refusing to write or reporting a phantom build."""
    monkeypatch.setattr(lock, "CONTENTION_WAIT_S", 5.0)
    monkeypatch.setattr(lock, "PROBE_WAIT_S", 5.0)
    with WriteLock(tmp_path, "build"):
        pass  # leaves "PID build" in the file, as every finished build does

    def write():
        with WriteLock(tmp_path, "build"):
            return "written"

    for meet, expected in ((lambda: lock_holder(tmp_path), None), (write, "written")):
        with open(tmp_path / LOCK_FILE, "r+") as other:  # another reader's probe, caught mid-way
            assert lock._os_lock.try_lock(other, shared=True)
            release = threading.Timer(0.05, lock._os_lock.unlock, [other])
            release.start()
            try:
                assert meet() == expected
            finally:
                release.join()


def read_only_view(folder, points: list):
    """The same folder through a read-only bind mount: read-only media (root would write through a chmod)."""
    view = folder.parent / f"{folder.name}-read-only"
    view.mkdir()
    mount("--bind", folder, view)
    points.append(view)
    mount("-o", "remount,bind,ro", view)
    return view


def test_a_probe_works_on_read_only_media_and_writes_nothing(os_name, tmp_path, mounts):  # noqa: F811
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    with process_holding_write_lock(index_dir, os_name) as holder:
        view = read_only_view(index_dir, mounts)
        with pytest.raises(OSError):
            (view / "probe").write_text("x")  # really read-only
        before = os.stat(index_dir / LOCK_FILE)
        assert lock_holder(view) == (holder.pid, "build")
    assert lock_holder(view) is None
    after = os.stat(index_dir / LOCK_FILE)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("statvfs", ["statvfs", "no statvfs (Windows)"])
def test_a_writer_on_read_only_media_is_told_so(statvfs, tmp_path, mounts, monkeypatch):  # noqa: F811
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    view = read_only_view(index_dir, mounts)
    if statvfs != "statvfs":
        monkeypatch.delattr(os, "statvfs")
    with pytest.raises(ReadOnlyIndexError, match="read-only storage"):
        with WriteLock(view, "build"):
            pass
