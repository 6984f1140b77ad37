"""Camera RAW: DNGs with and without an embedded preview, a truncated one, RAW+JPEG pairs and .xmp sidecars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer import IndexStore, build_index
from mme5 import ImageError
from mme5.images import image_size, load_image

from .dng import dng_bytes

RED_PREVIEW = Image.new("RGB", (400, 300), (210, 20, 20))


@pytest.fixture
def raw_folder(photos):
    folder = photos.folder
    (folder / "plain.dng").write_bytes(dng_bytes(64, 48, seed=1))  # no preview: demosaiced
    (folder / "preview.DNG").write_bytes(dng_bytes(64, 48, preview=RED_PREVIEW, seed=2))
    whole = dng_bytes(64, 48, seed=3)
    (folder / "broken.dng").write_bytes(whole[: len(whole) // 3])  # cut short by a failed copy
    (folder / "IMG_0042.dng").write_bytes(dng_bytes(64, 48, seed=4))  # shot as RAW+JPEG
    photos.jpeg("IMG_0042.JPG", 64, 48, seed=4)
    (folder / "IMG_0042.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')  # a sidecar, not a photo
    photos.jpeg("other.jpg", 64, 48, seed=5)
    return folder


def test_preview_is_used_when_present_and_the_mosaic_is_demosaiced_otherwise(raw_folder):
    preview = load_image(raw_folder / "preview.DNG")
    assert preview.size == (400, 300) and np.asarray(preview).mean(axis=(0, 1))[0] > 150  # the red preview
    developed = load_image(raw_folder / "plain.dng")
    assert developed.mode == "RGB" and developed.size == (64, 48)
    assert image_size(raw_folder / "plain.dng") == (64, 48)


def test_a_truncated_raw_file_is_an_image_error_naming_it(raw_folder):
    with pytest.raises(ImageError) as caught:
        load_image(raw_folder / "broken.dng")
    assert caught.value.path.endswith("broken.dng") and "RAW" in caught.value.reason


def test_raw_folder_indexes_pairs_once_and_info_counts_them(raw_folder, tmp_path, tiny_mllama):
    from search_app.engine import SearchEngine

    index_dir = tmp_path / "index"
    summary = build_index([raw_folder], index_dir, tiny_mllama, show_progress=False)
    assert summary.added == 5  # plain, preview, IMG_0042.dng, IMG_0042.JPG, other.jpg; not the .xmp
    assert [Path(str(error.path)).name for error in summary.errors] == ["broken.dng"]
    with IndexStore.open(index_dir) as store:
        info = store.info()
    assert info["images"] == 5 and info["errors"] == 1
    assert info["raw"] == {"files": 3, "pairs": 1}
    engine = SearchEngine(IndexStore.open(index_dir), tiny_mllama)
    try:
        page = engine.search_text("a photo", k=50)
        shown = [result.relpath for result in page.results]
        assert len(shown) == 4 and len([p for p in shown if p.startswith("IMG_0042")]) == 1  # the pair, once
        pair = next(result for result in page.results if result.relpath.startswith("IMG_0042"))
        both = {pair.path, *pair.also_at}
        assert both == {str(raw_folder / "IMG_0042.dng"), str(raw_folder / "IMG_0042.JPG")}
        separate = engine.search_text("a photo", k=50, collapse_duplicates=False)
        assert len(separate.results) == 5
    finally:
        engine.close()


@pytest.mark.slow  # runs the CLI in a subprocess
def test_info_cli_prints_the_raw_counts(raw_folder, tmp_path, tiny_mllama, capsys):
    from indexer.__main__ import main

    build_index([raw_folder], tmp_path / "index", tiny_mllama, show_progress=False)
    assert main(["info", "--index", str(tmp_path / "index")]) == 0
    assert "camera RAW:   3 files, 1 RAW+JPEG pairs (each shown once)" in capsys.readouterr().out
