"""Fixtures for synth: real photos on disk, a real index over them, a scripted OpenAI server."""

from __future__ import annotations

from pathlib import Path

import pytest

from .synth_testing import draw_photo

N_PHOTOS = 40


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for number in range(N_PHOTOS):
        sub = folder / ("trips" if number % 3 == 0 else "home")
        sub.mkdir(exist_ok=True)
        draw_photo(sub / f"photo_{number:02d}.jpg", seed=number)
    return folder


@pytest.fixture(scope="session")
def index_dir(photos, tiny_siglip, tmp_path_factory) -> Path:
    from indexer import build_index

    folder = tmp_path_factory.mktemp("index") / "index"
    build_index([photos], folder, tiny_siglip, show_progress=False)
    return folder
