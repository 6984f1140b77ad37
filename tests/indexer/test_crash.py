"""kill -9 of a real `python -m indexer build` at several points, then resume: nothing lost,
duplicated or orphaned, `verify` clean, and the result equals an uninterrupted build."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from indexer import IndexStore, build_index, verify

from .conftest import REPO


def catalog_rows(index_dir) -> int:
    """Committed image rows, read the way a second process would (WAL readers never block)."""
    path = index_dir / "catalog.sqlite"
    if not path.exists():
        return -1
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as connection:
            return connection.execute("SELECT count(*) FROM images").fetchone()[0]
    except sqlite3.Error:
        return -1


def start_build(photos_dir, index_dir, model_dir) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "indexer",
            "build",
            "--dir",
            str(photos_dir),
            "--index",
            str(index_dir),
            "--model",
            str(model_dir),
            "--batch-size",
            "1",
            "--workers",
            "1",
            "--quiet",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(process: subprocess.Popen, ready, rows, timeout=240) -> bool:
    """SIGKILL the build as soon as ``ready()`` holds; False if it finished first.

    Rows committed before the kill must all still be there after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            committed = rows()
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            assert process.returncode == -signal.SIGKILL
            assert rows() >= committed
            return True
        time.sleep(0.005)
    process.kill()
    raise AssertionError("build neither reached the kill point nor finished")


@pytest.mark.slow  # kills builds at several points: 174 s at load average ~10 on 2 cores
@pytest.mark.timeout(600)
def test_kill_9_at_several_points_then_resume(make_photos, tmp_path, tiny_mllama_dir, tiny_mllama):
    photos = make_photos("photos")
    for i in range(60):
        photos.jpeg(f"{i // 20}/{i:03d}.jpg", 320, 240)
    photos.raw("broken.jpg", b"not a jpeg")
    (photos.folder / "0" / "dup.jpg").write_bytes((photos.folder / "1" / "025.jpg").read_bytes())
    expected_ok = 61
    index_dir = tmp_path / "index"

    kill_points = [
        ("a few batches in", lambda: catalog_rows(index_dir) >= 5),
        ("mid-build", lambda: catalog_rows(index_dir) >= 30),
        ("while finishing (orphan cleanup, FAISS write)", lambda: catalog_rows(index_dir) >= expected_ok + 1),
    ]
    killed = []
    for label, ready in kill_points:
        if kill_when(start_build(photos.folder, index_dir, tiny_mllama_dir), ready, lambda: catalog_rows(index_dir)):
            killed.append(label)
            with IndexStore.open(index_dir) as store:  # loadable and consistent right after the kill
                assert store.count == len(store.catalog.ok_ids()) > 0
                assert sorted(store.index.ids().tolist()) == store.catalog.ok_ids().tolist()
            if label == "mid-build":
                # a file deleted and one renamed while the index is half-built: the resume must cope
                (photos.folder / "2" / "059.jpg").unlink()
                os.rename(photos.folder / "0" / "001.jpg", photos.folder / "0" / "001-renamed.jpg")
                expected_ok -= 1
    assert killed[:2] == [label for label, _ in kill_points[:2]], killed

    final = start_build(photos.folder, index_dir, tiny_mllama_dir)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert verify(index_dir).clean

    reference_dir = tmp_path / "reference"
    build_index([photos.folder], reference_dir, tiny_mllama, show_progress=False)
    with IndexStore.open(index_dir) as store, IndexStore.open(reference_dir) as reference:
        assert store.sync_report.changed is False
        got = {r.path: r for r in store.records(store.catalog.ok_ids())}
        want = {r.path: r for r in reference.records(reference.catalog.ok_ids())}
        assert len(got) == expected_ok and set(got) == set(want)  # nothing lost, nothing duplicated
        assert sorted(store.index.ids().tolist()) == sorted(r.id for r in got.values())  # nothing orphaned
        assert store.info()["stored_vectors"] == reference.info()["stored_vectors"] == expected_ok - 1  # dup once
        assert store.info()["errors"] == 1
        ids = np.array([got[path].id for path in sorted(got)])
        reference_ids = np.array([want[path].id for path in sorted(want)])
        np.testing.assert_allclose(store.vectors(ids), reference.vectors(reference_ids), atol=2e-3)
        scores, hits = store.search(reference.vectors(reference_ids[:5]), k=1)
        assert [r.path for r in store.records(hits[:, 0])] == sorted(got)[:5]


def test_atomic_write_survives_kill_9(tmp_path):
    """A writer killed at random moments leaves either the old or the new file, never a torn one."""
    target = tmp_path / "vectors.faiss"
    script = (
        "import sys, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('atomic', {str(REPO / 'mme5' / 'atomic.py')!r})\n"
        "atomic = importlib.util.module_from_spec(spec); spec.loader.exec_module(atomic)\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        f"    atomic.write_atomic(__import__('pathlib').Path({str(target)!r}), bytes([i % 256]) * (4 << 20))\n"
    )
    for delay in (0.05, 0.13, 0.21, 0.37):
        process = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(delay + 0.2)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        if target.exists():
            data = target.read_bytes()
            assert len(data) == 4 << 20 and data == data[:1] * len(data)
    assert target.exists()
    from mme5.atomic import remove_stale_temps

    remove_stale_temps(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["vectors.faiss"]
