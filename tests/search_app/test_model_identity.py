"""`python app.py` as the README shows it, started again: the same model by another name opens the same index."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, free_port, wait_for_server

HUB_ID = "google/siglip-base-patch16-256-multilingual"


def serve_once(work: Path, model: str, env: dict) -> str:
    """Start the app, wait until it answers, stop it; returns its log."""
    port = free_port()
    log = work / f"app-{port}.log"
    command = [sys.executable, str(REPO / "app.py"), "--model", model, "--index", "idx", "--photos", "photos",
               "--port", str(port)]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_server(process, f"http://127.0.0.1:{port}/", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    return log.read_text()


def test_readme_example_starts_twice_and_the_hub_id_opens_the_same_index(replica_dirs, library, tmp_path, fill_hub_cache):
    work = tmp_path / "work"
    shutil.copytree(replica_dirs["siglip-multilingual"], work / "models" / "x")
    shutil.copytree(library / "2023", work / "photos")
    hub = tmp_path / "hub"
    fill_hub_cache(hub, HUB_ID, work / "models" / "x")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(tmp_path), "HF_HUB_CACHE": str(hub)}

    first = serve_once(work, "./models/x", env)
    assert "no index in idx: indexing photos" in first and "serving 3 photos" in first
    second = serve_once(work, "./models/x", env)  # failed with IndexMismatchError before (path as typed)
    assert "serving 3 photos" in second and "indexing" not in second
    by_hub_id = serve_once(work, HUB_ID, env)
    assert "serving 3 photos" in by_hub_id, by_hub_id[-3000:]
