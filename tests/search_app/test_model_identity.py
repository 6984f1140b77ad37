"""`python app.py` as the README shows it, started again: the same model by another name opens the same index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import running_app

pytestmark = pytest.mark.server  # starts the app in a subprocess

HUB_ID = "google/siglip-base-patch16-256-multilingual"


def serve_once(work: Path, model: str, env: dict) -> str:
    """Start the app as the README shows it (from ``work``), wait until it answers, stop it; returns its log."""
    log_name = f"app-{len(list(work.glob('app-*.log')))}.log"
    with running_app(
        work, ["--model", model, "--index", "idx", "--photos", "photos"], env=env, cwd=work, log_name=log_name
    ):
        pass
    return (work / log_name).read_text()


def test_readme_example_starts_twice_and_the_hub_id_opens_the_same_index(
    replica_dirs, library, tmp_path, fill_hub_cache
):
    work = tmp_path / "work"
    shutil.copytree(replica_dirs["siglip-multilingual"], work / "models" / "x")
    shutil.copytree(library / "2023", work / "photos")
    hub = tmp_path / "hub"
    fill_hub_cache(hub, HUB_ID, work / "models" / "x")
    env = {"HF_HUB_CACHE": str(hub)}  # running_app gives the rest (a fresh HOME, offline)

    first = serve_once(work, "./models/x", env)
    assert "no index in idx: indexing photos" in first and "serving 3 photos" in first
    second = serve_once(work, "./models/x", env)  # failed with IndexMismatchError before (path as typed)
    assert "serving 3 photos" in second and "indexing" not in second
    by_hub_id = serve_once(work, HUB_ID, env)
    assert "serving 3 photos" in by_hub_id, by_hub_id[-3000:]
