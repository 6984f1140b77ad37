"""`python -m indexer similar`: near-identical photos grouped by FAISS range search, the best one first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

pytestmark = pytest.mark.slow  # the module's library is built and embedded once, ~15 s

REPO = Path(__file__).resolve().parents[2]
# The tiny random model puts every photo within ~0.998 of every other; near-identical ones score ≥ 0.9999.
# Real models need lower thresholds (docs/app.md: "Similar-photo groups").
TINY_THRESHOLD = "0.9995"


@pytest.fixture(scope="module")
def bursts(tmp_path_factory, tiny_mllama):
    """A photo, its half-size copy, a brighter edit and a blurred copy; plus unrelated photos."""
    from indexer import build_index

    root = tmp_path_factory.mktemp("similar") / "photos"
    root.mkdir()
    rng = np.random.default_rng(3)
    base = np.kron(rng.integers(0, 256, size=(12, 16, 3)), np.ones((20, 20, 1))).astype(np.uint8)  # 240×320
    original = Image.fromarray(base, "RGB")
    original.save(root / "burst-1.jpg", quality=95)
    original.resize((160, 120)).save(root / "burst-1-small.jpg", quality=90)
    ImageEnhance.Brightness(original).enhance(1.1).save(root / "burst-1-edit.jpg", quality=95)
    for n in range(5):
        noise = rng.integers(0, 256, size=(200, 260, 3), dtype=np.uint8)
        Image.fromarray(noise, "RGB").save(root / f"other-{n}.jpg")
    index = root.parent / "index"
    build_index([root], index, tiny_mllama, show_progress=False)
    return index


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "indexer", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )


def test_groups_near_identical_photos_and_marks_the_largest(bursts):
    from indexer import IndexStore
    from indexer.similar import similar_groups

    with IndexStore.open(bursts) as store:
        groups = similar_groups(store, float(TINY_THRESHOLD))
        scores = store.vectors(store.ids()) @ store.vectors(store.ids()).T
    names = [[Path(m.path).name for m in g.members] for g in groups]
    assert len(groups) == 1 and set(names[0]) == {"burst-1.jpg", "burst-1-small.jpg", "burst-1-edit.jpg"}, (
        names,
        np.round(scores, 3),
    )
    assert names[0][0] in ("burst-1.jpg", "burst-1-edit.jpg")  # full size beats the half-size copy
    assert groups[0].best.score == pytest.approx(1.0, abs=2e-3) and all(m.sharpness for m in groups[0].members)


def test_a_pair_budget_stops_a_threshold_that_joins_everything(bursts):
    """8 photos the tiny model puts within 0.99 of each other: 56 ordered pairs at 0.9, over a budget of 20."""
    from indexer import IndexStore
    from indexer.similar import similar_groups

    with IndexStore.open(bursts) as store:
        with pytest.raises(ValueError, match="56 pairs of photos are similar at ≥ 0.9: raise the threshold"):
            similar_groups(store, 0.9, max_pairs=20)
        assert len(similar_groups(store, float(TINY_THRESHOLD), max_pairs=20)) == 1  # within the budget


@pytest.mark.slow  # builds and groups through the CLI
def test_the_cli_prints_groups_and_json(bursts):
    text = run("similar", "--index", str(bursts), "--threshold", TINY_THRESHOLD, "--quiet")
    assert text.returncode == 0, text.stderr
    assert "group 1: 3 photos" in text.stdout and "* " in text.stdout
    payload = json.loads(
        run("similar", "--index", str(bursts), "--threshold", TINY_THRESHOLD, "--json", "--quiet").stdout
    )
    assert payload["threshold"] == float(TINY_THRESHOLD) and len(payload["groups"]) == 1
    assert payload["groups"][0]["best"] == payload["groups"][0]["members"][0]["path"]
    strict = json.loads(run("similar", "--index", str(bursts), "--threshold", "1.0", "--json", "--quiet").stdout)
    assert strict["groups"] == []
    bad = run("similar", "--index", str(bursts), "--threshold", "1.5")
    assert bad.returncode == 1 and "threshold must be in (0, 1]" in bad.stderr


def test_calibration_script_separates_edited_copies_from_distinct_photos(bursts, tiny_mllama_dir, capsys):
    from benchmarks import calibrate_similar

    photos = bursts.parent / "photos"
    assert (
        calibrate_similar.main(
            ["--photos", str(photos), "--model", str(tiny_mllama_dir), "--device", "cpu", "--json", "--quiet"]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["photos"] == 8 and result["distinct"]["pairs"] == 28 and result["near_duplicate"]["pairs"] == 32
    assert set(result["by_edit"]) == {"resize", "jpeg", "crop", "brightness"}
    assert result["near_duplicate"]["min"] - 1e-5 <= result["threshold"] <= result["near_duplicate"]["median"]
    assert result["near_duplicates_grouped"] >= 0.96  # the 1st percentile: at most one of 32 copies left out
    assert 0 <= result["distinct_pairs_wrongly_grouped"] <= 1
    assert (
        calibrate_similar.main(
            [
                "--photos",
                str(photos),
                "--model",
                str(tiny_mllama_dir),
                "--device",
                "cpu",
                "--quiet",
                "--max-photos",
                "4",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "near-duplicate (all)" in text and "distinct photos" in text and "threshold (p1 of near-duplicate" in text
    assert calibrate_similar.main(["--photos", str(photos / "nope"), "--model", str(tiny_mllama_dir)]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_the_threshold_defaults_to_the_index_models_family(bursts):
    from indexer import IndexStore
    from indexer.similar import default_threshold
    from mme5.registry import BACKBONES, similar_threshold

    with IndexStore.open(bursts) as store:
        assert store.meta["family"] == "mllama" and default_threshold(store) == BACKBONES["mllama"].similar_threshold
    assert similar_threshold("no-such-family") == similar_threshold(None) == 0.95  # the documented placeholder
    payload = json.loads(run("similar", "--index", str(bursts), "--json", "--quiet").stdout)
    assert payload["threshold"] == BACKBONES["mllama"].similar_threshold
    assert len(payload["groups"]) == 1 and len(payload["groups"][0]["members"]) == 8  # the tiny model: all ≥ 0.95


def test_a_photo_the_catalog_lost_after_the_store_opened_is_left_out_of_its_group(bursts, tmp_path):
    """The app keeps its store open while a build (or verify --repair) deletes rows: a group member that has
    no catalog row any more is left out, not an AttributeError on None (before: records() gave None)."""
    import shutil
    import sqlite3

    from indexer import IndexStore
    from indexer.similar import similar_groups

    index = tmp_path / "index"
    shutil.copytree(bursts, index)
    with IndexStore.open(index) as store:
        with sqlite3.connect(index / "catalog.sqlite") as db:
            gone = [
                row_id
                for row_id, relpath in db.execute("SELECT id, relpath FROM images")
                if bytes(relpath).endswith(b"burst-1-edit.jpg")
            ]
            assert len(gone) == 1
            db.execute("DELETE FROM images WHERE id = ?", (gone[0],))
        groups = similar_groups(store, float(TINY_THRESHOLD))
    names = [sorted(Path(m.path).name for m in g.members) for g in groups]
    assert names == [["burst-1-small.jpg", "burst-1.jpg"]]
