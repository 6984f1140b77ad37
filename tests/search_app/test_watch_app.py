"""`python app.py --watch`: a photo added to an indexed folder while the app serves becomes searchable."""

from __future__ import annotations

import shutil
import time

import pytest
from gradio_client import Client

from .conftest import make_photo, running_app

pytestmark = pytest.mark.server  # starts the app in a subprocess


def test_the_app_indexes_new_photos_while_serving(tmp_path, library, tiny_mllama_dir):
    photos = tmp_path / "photos"
    shutil.copytree(library / "2024", photos)  # 3 photos, a folder of our own to change
    args = ["--index", str(tmp_path / "index"), "--model", str(tiny_mllama_dir), "--photos", str(photos), "--watch"]
    with running_app(tmp_path, args) as url:
        client = Client(url, verbose=False)
        assert client.predict(text="x", k=50, api_name="/search_text")["total_indexed"] == 3
        make_photo(photos / "new" / "arrived.jpg", 7, "2025:01:02 10:00:00")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            answer = client.predict(text="x", k=50, api_name="/search_text")
            if answer["total_indexed"] == 4:
                break
            time.sleep(0.5)
        assert answer["total_indexed"] == 4
        assert "new/arrived.jpg" in [result["relpath"] for result in answer["results"]]
    assert "watching the indexed folders" in (tmp_path / "app.log").read_text()
