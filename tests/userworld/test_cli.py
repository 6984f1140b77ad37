"""The command lines in the user's world, as the README writes them (from the clone, the user's photos and index in
HOME): build, info, search, verify, similar, watch and push's prepare step."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.slow  # every command runs as a user runs it, each a subprocess loading the model


def test_build_indexes_the_photo_folder_where_it_was_asked(library, user_world):
    summary = json.loads(library.build.stdout)
    assert summary["added"] == len(library.photos) and not summary["errors"], summary
    assert (library.index / "catalog.sqlite").is_file() and not (user_world.clone / "index").exists()


def test_info_describes_the_index(library, user_world):
    info = json.loads(
        user_world.run(["-m", "indexer", "info", "--index", str(library.index), "--json"], cwd=user_world.clone).stdout
    )
    assert info["images"] == len(library.photos) and info["errors"] == 0
    text = user_world.run(["-m", "indexer", "info", "--index", str(library.index)], cwd=user_world.clone).stdout
    assert f"images:       {info['images']} searchable" in text


def test_search_by_text_and_by_image(library, user_world):
    hits = json.loads(
        user_world.run(
            [
                "-m",
                "indexer",
                "search",
                "--index",
                str(library.index),
                "--text",
                "un perro en la playa",
                "-k",
                "3",
                "--json",
            ],
            cwd=user_world.clone,
        ).stdout
    )
    assert len(hits["results"]) == 3
    query = user_world.photos / library.photos[0]
    hits = json.loads(
        user_world.run(
            ["-m", "indexer", "search", "--index", str(library.index), "--image", str(query), "--json"],
            cwd=user_world.clone,
        ).stdout
    )
    assert hits["results"] and all(hit["path"].startswith(f"{user_world.photos}/") for hit in hits["results"])


def test_verify_finds_the_index_sound(library, user_world):
    done = user_world.run(["-m", "indexer", "verify", "--index", str(library.index)], cwd=user_world.clone)
    assert done.returncode == 0


def test_similar_groups_the_identical_copy(library, user_world):
    groups = json.loads(
        user_world.run(
            ["-m", "indexer", "similar", "--index", str(library.index), "--json"], cwd=user_world.clone
        ).stdout
    )
    members = [{member["path"] for member in group["members"]} for group in groups["groups"]]
    assert any(str(library.copy) in group for group in members), members


def test_push_prepares_the_upload_without_a_network(library, user_world):
    upload = user_world.home / "upload"
    done = user_world.run(
        [
            "-m",
            "indexer",
            "push",
            "--index",
            str(library.index),
            "--repo",
            "alice/photos",
            "--model-id",
            "alice/tiny-mllama",
            "--prepare-only",
            str(upload),
        ],
        cwd=user_world.clone,
    )
    assert "nothing uploaded" in done.stdout
    assert (upload / "catalog.sqlite").is_file() and (upload / "vectors.faiss").is_file()
    assert len(list((upload / "previews").rglob("*.jpg"))) == len(library.photos) - 1  # the copy shares its preview


@pytest.mark.server
def test_watch_indexes_a_photo_added_while_it_runs(library, user_world):
    info = ["-m", "indexer", "info", "--index", str(library.index), "--json"]
    before = json.loads(user_world.run(info, cwd=user_world.clone).stdout)["images"]
    log = user_world.logs / "watch.log"
    with open(log, "wb") as output:
        watcher = subprocess.Popen(
            ["python", "-m", "indexer", "watch", "--index", str(library.index)],
            cwd=user_world.clone,
            env=user_world.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Ctrl-C works as in a terminal even when the tests run in the background (`cmd &` starts them with
            # SIGINT ignored, and an ignored signal stays ignored in every program started from them)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        new = user_world.photos / "new" / "added.jpg"
        new.parent.mkdir()
        _recolour(user_world.clone / "assets" / "photos" / "textures" / "brick.jpg", new)
        deadline = time.monotonic() + 300
        while json.loads(user_world.run(info, cwd=user_world.clone).stdout)["images"] == before:
            assert watcher.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            code = watcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            watcher.kill()
            raise AssertionError(
                "the watcher did not stop within 60 s of Ctrl-C:\n" + log.read_text()[-3000:]
            ) from None
    assert code in (0, 130), log.read_text()[-3000:]


def _recolour(source, target) -> None:
    """A new photo (other content than every indexed one) made from ``source``."""
    from PIL import Image, ImageOps

    with Image.open(source) as image:
        ImageOps.invert(image.convert("RGB")).save(target, "JPEG", quality=90)
