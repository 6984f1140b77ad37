"""Every command opens an index with the model (and runtime) it was built with: indexer.index_model, one place."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer import index_model

from .conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def images_in(index: Path) -> int:
    try:
        with sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("select count(*) from images where status = 'ok'").fetchone()[0]
    except sqlite3.Error:
        return -1


@pytest.mark.server
def test_watch_opens_an_int8_index_with_its_own_runtime(photos, tmp_path, tiny_siglip_dir, user_env):
    for i in range(3):
        photos.jpeg(f"{i}.jpg", seed=i)
    index = tmp_path / "int8"
    built = run_cli(
        "build",
        "--dir",
        photos.folder,
        "--index",
        index,
        "--model",
        tiny_siglip_dir,
        "--runtime",
        "onnx-int8",
        "--quiet",
    )
    assert built.returncode == 0, built.stderr
    assert index_model(index)[2] == "onnx-int8"  # what every command now opens it with
    log = tmp_path / "watch.log"
    with open(log, "wb") as output:
        watch = subprocess.Popen(
            [sys.executable, "-m", "indexer", "watch", "--index", str(index), "--poll", "1", "--quiet"],
            cwd=REPO,
            env=user_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        photos.jpeg("new.jpg", seed=9)
        deadline = time.monotonic() + 240
        while images_in(index) < 4:
            assert watch.poll() is None, f"watch exited {watch.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the new photo was not indexed in time:\n{log.read_text()}"
            time.sleep(0.3)
    finally:
        watch.send_signal(signal.SIGINT)
        try:
            watch.wait(timeout=60)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait()
    assert "IndexMismatchError" not in log.read_text() and "cannot be mixed" not in log.read_text()
