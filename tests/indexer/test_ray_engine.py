"""`build --engine ray` on a real local Ray (2 CPUs, no dashboard, small object store).

Same images, errors and vectors as the local engine; a killed driver resumes with nothing
lost or duplicated; a killed embedding actor is restarted by Ray and the build completes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="ray is in requirements.txt; install it to run the Ray engine tests")

from indexer import IndexStore, build_index, verify  # noqa: E402
from indexer.ray_engine import RayOptions, start_ray  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = start_ray(RayOptions(num_cpus=2, object_store_bytes=120 * 1024**2))
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def library(photos):
    """~100 photos: distinct JPEGs, PNGs, an identical copy, and four broken files."""
    first = None
    for i in range(90):
        path = photos.jpeg(f"{i // 30}/img{i:03d}.jpg", width=64 + i % 5 * 8, height=48)
        first = first or path
    for i in range(6):
        photos.png(f"png/p{i}.png")
    photos.raw("copy/same.jpg", first.read_bytes())
    photos.raw("bad/empty.jpg", b"")
    photos.raw("bad/text.jpg", b"hello, not a photo")
    photos.truncated("bad/half.jpg", first)
    photos.bomb_png("bad/bomb.png")
    return photos.folder


def catalog_rows(index: Path) -> dict:
    with IndexStore.open(index) as store:
        records = store.records(store.ids())
        vectors = store.vectors(store.ids())
        errors = {e.path: e.error for e in store.errors()}
    return {r.path: v for r, v in zip(records, vectors)}, errors


def test_ray_engine_indexes_like_the_local_engine(ray_cluster, library, tiny_siglip, tmp_path):
    local = build_index([library], tmp_path / "local", tiny_siglip, batch_size=8, show_progress=False)
    remote = build_index([library], tmp_path / "ray", tiny_siglip, batch_size=8, show_progress=False, engine="ray")
    assert (remote.added, remote.duplicates, len(remote.errors)) == (local.added, local.duplicates, len(local.errors))
    local_vectors, local_errors = catalog_rows(tmp_path / "local")
    ray_vectors, ray_errors = catalog_rows(tmp_path / "ray")
    assert ray_errors == local_errors and len(local_errors) == 4
    assert set(ray_vectors) == set(local_vectors) and len(ray_vectors) == 97
    worst = max(float(np.abs(ray_vectors[p] - local_vectors[p]).max()) for p in local_vectors)
    assert worst <= 1e-5, worst
    assert verify(tmp_path / "ray").clean
    again = build_index([library], tmp_path / "ray", tiny_siglip, show_progress=False, engine="ray")
    assert (again.added, again.embedded, again.unchanged) == (0, 0, 101)  # unchanged bad files are not retried


IGNORED = {  # columns that legitimately differ between two builds of the same folder, and why
    ("images", "id"): "assigned in commit order, which is the cluster's finishing order",
    ("images", "root_id"): "an id; compared as the root's path instead",
    ("images", "indexed_at"): "a timestamp",
    ("roots", "id"): "an id; rows are keyed by path",
    ("roots", "added_at"): "a timestamp",
    ("ocr_text", "done_at"): "a timestamp",
    ("sqlite_sequence", "seq"): "the next id, which follows the number of commits",
}
ID_KEYED = {"words": "image_id", "text_fts": "rowid"}  # rows about one photo, keyed by its id: compared by its path
FTS_SHADOW = {  # FTS5's own storage of text_fts, whose rows (compared by path above) it indexes by image id
    "text_fts_data": "the trigram b-tree, keyed by image id",
    "text_fts_idx": "the b-tree's segment index",
    "text_fts_docsize": "each row's token counts, keyed by image id",
}
IGNORED_META = {  # meta values that legitimately differ
    "created_at": "a timestamp",
    "last_build_at": "a timestamp",
    "last_build": "the build's summary, with its timings (seconds, rate, started_at); its counts are compared below",
    ("vector_store", "id"): "the random id each vector store file gets",
}


def catalog_tables(index: Path) -> dict:
    """{table: sorted rows as dicts} of every table in the catalog, ``IGNORED`` columns left out; vectors as
    float arrays and meta values decoded."""
    import json

    db = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        roots = dict(db.execute("select id, path from roots"))
        photo = {
            id_: (roots[root_id], relpath)
            for id_, root_id, relpath in db.execute("select id, root_id, relpath from images")
        }
        tables = {}
        for (table,) in db.execute("select name from sqlite_master where type = 'table' order by name"):
            if table in FTS_SHADOW:
                continue
            columns = [row[1] for row in db.execute(f"pragma table_info({table})")]
            select = f"select {'rowid, ' if table == 'text_fts' else ''}* from {table}"
            columns = ["rowid"] * (table == "text_fts") + columns
            rows = []
            for values in db.execute(select):
                row = {c: v for c, v in zip(columns, values) if (table, c) not in IGNORED}
                if table in ID_KEYED:
                    row["photo"] = photo[row.pop(ID_KEYED[table])]
                if table == "images":
                    row["root"] = roots[values[columns.index("root_id")]]
                if table == "vectors":
                    row["vector"] = np.frombuffer(row["vector"], np.float16).astype(np.float32)
                if table == "meta":
                    if row["key"] in IGNORED_META:
                        continue
                    row["value"] = json.loads(row["value"])
                    if isinstance(row["value"], dict):
                        row["value"] = {k: v for k, v in row["value"].items() if (row["key"], k) not in IGNORED_META}
                rows.append(row)
            key = {"images": lambda r: (r["root"], r["relpath"]), "vectors": lambda r: r["content_hash"]}.get(
                table, lambda r: repr(sorted((k, repr(v)) for k, v in r.items()))
            )
            tables[table] = sorted(rows, key=key)
        return tables
    finally:
        db.close()


def test_ray_and_local_builds_give_equal_catalogs(ray_cluster, photos, tiny_siglip, tmp_path):
    """Every column of every table, places and text included (the Ray engine once dropped latitude/longitude);
    the sign's word, searched in the Ray-built index, finds the sign first, through its OCR text."""
    from benchmarks.text_photos import sign_photo, texture
    from search_app.engine import SearchEngine

    from .test_ocr import xmp

    sign_photo("BAKERY", "latin", seed=7).save(photos.path("street/0042.jpg"), quality=92)
    texture((320, 240), seed=8).save(photos.path("rome_trevi.jpg"), quality=92)  # words from its name
    texture((320, 240), seed=9).save(photos.path("trip/IMG_2041.jpg"), quality=92)  # and from its sidecar
    (photos.folder / "trip" / "IMG_2041.xmp").write_text(xmp("Colosseum", description="Night walk"), encoding="utf-8")
    photos.jpeg("berlin.jpg", seed=1, exif=photos.exif(position=(52.52, 13.405)))
    photos.jpeg("sydney.jpg", seed=2, exif=photos.exif(position=(-33.8679, 151.2073), taken="2019:01:02 03:04:05"))
    photos.jpeg("rotated.jpg", 80, 40, seed=3, exif=photos.exif(orientation=6))
    for i in range(5):
        photos.jpeg(f"plain/{i}.jpg", seed=10 + i)
    photos.png("plain/p.png")
    photos.raw("copy/berlin.jpg", (photos.folder / "berlin.jpg").read_bytes())
    photos.raw("bad/text.jpg", b"hello, not a photo")
    summaries = [
        build_index(
            [photos.folder], tmp_path / engine, tiny_siglip, batch_size=4, show_progress=False, engine=engine
        ).to_dict()
        for engine in ("local", "ray")
    ]
    timings = ("seconds", "rate", "started_at", "peak_decode_pixels")  # peak: how much the decoders overlapped
    for summary in summaries:  # the text pass's own timing
        summary.get("text", {}).pop("seconds", None)
    local_summary, ray_summary = ({k: v for k, v in summary.items() if k not in timings} for summary in summaries)
    assert ray_summary == local_summary
    local, remote = catalog_tables(tmp_path / "local"), catalog_tables(tmp_path / "ray")
    assert set(remote) == set(local) and {"images", "vectors", "roots", "meta"} <= set(local)
    berlin = next(row for row in local["images"] if row["relpath"] == b"berlin.jpg")
    assert abs(berlin["latitude"] - 52.52) < 1e-3 and berlin["country"] == "DE"  # the test's premise
    # the text tables hold real content (the test's premise): the sign's OCR, a name's and a sidecar's words
    assert [row["text"] for row in local["ocr_text"] if "BAKERY" in row["text"].upper()], local["ocr_text"]
    words = {row["photo"][1]: row for row in local["words"]}
    assert words[b"rome_trevi.jpg"]["filename"] == "rome trevi"
    assert words[b"trip/IMG_2041.jpg"]["keywords"].startswith("Colosseum")
    assert "Night walk" in words[b"trip/IMG_2041.jpg"]["description"]
    assert {row["photo"][1] for row in local["text_fts"]} >= {
        b"street/0042.jpg",
        b"rome_trevi.jpg",
        b"trip/IMG_2041.jpg",
    }
    for table in local:
        if table == "vectors":
            assert [r["content_hash"] for r in remote[table]] == [r["content_hash"] for r in local[table]]
            for mine, theirs in zip(remote[table], local[table]):
                np.testing.assert_allclose(mine["vector"], theirs["vector"], atol=2e-3)
        else:
            assert remote[table] == local[table], table
    engine = SearchEngine(IndexStore.open(tmp_path / "ray"), tiny_siglip)
    try:
        for query, relpath, source in [
            ("bakery", "street/0042.jpg", "ocr"),
            ("colosseum", "trip/IMG_2041.jpg", "keywords"),
        ]:
            first = engine.search_text(query, k=5).results[0]
            assert (first.relpath, first.text_match.source) == (relpath, source), query
    finally:
        engine.close()


def test_a_video_under_ray_gets_the_same_keyframe_rows_as_a_local_build(ray_cluster, photos, tiny_siglip, tmp_path):
    """Ray's columns carry one image per file: a video must not come back with its first keyframe only."""
    from .videos import make_video

    photos.jpeg("beach.jpg", seed=1)  # a photo beside it goes through the cluster
    make_video(photos.folder / "clips" / "a.mp4", ((0, 4.0), (1, 4.0), (2, 4.0), (3, 4.0)))
    summaries = [
        build_index([photos.folder], tmp_path / engine, tiny_siglip, batch_size=4, show_progress=False, engine=engine)
        for engine in ("local", "ray")
    ]
    assert [(s.added, s.embedded, s.errors) for s in summaries] == [(2, 5, [])] * 2  # photo + 4 keyframes

    def rows(index: Path) -> list:  # each row with its video's path (video_id is an id, given in commit order)
        db = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True)
        try:
            return db.execute(
                "select i.relpath, i.media_type, i.timestamp_s, i.duration_s, i.content_hash, i.status, "
                "i.width, i.height, v.relpath from images i left join images v on v.id = i.video_id "
                "order by i.relpath"
            ).fetchall()
        finally:
            db.close()

    local, remote = rows(tmp_path / "local"), rows(tmp_path / "ray")
    video = [row for row in local if row[1] == "video"]
    assert sorted(round(row[2]) for row in video) == [0, 4, 8, 12]  # the test's premise: four keyframe rows,
    assert sorted(row[8] or b"" for row in video) == [b"", b"clips/a.mp4", b"clips/a.mp4", b"clips/a.mp4"]  # 3 owned
    assert remote == local  # same keyframe rows: timestamps, media_type, content keys, owner
    local_vectors, remote_vectors = (catalog_tables(tmp_path / engine)["vectors"] for engine in ("local", "ray"))
    assert [r["content_hash"] for r in remote_vectors] == [r["content_hash"] for r in local_vectors]
    for mine, theirs in zip(remote_vectors, local_vectors):
        np.testing.assert_allclose(mine["vector"], theirs["vector"], atol=2e-3)
    assert verify(tmp_path / "ray").clean


def test_text_in_a_video_frame_is_read_and_found_after_a_ray_build(ray_cluster, tmp_path, tiny_siglip):
    """The OCR pass runs on the driver after the cluster's keyframes are committed: every frame is read."""
    from indexer.fulltext import text_hits

    from .test_video_text import SCENES, near, sign_video

    sign_video(tmp_path / "media" / "city.mp4")
    index = tmp_path / "ray"
    summary = build_index([tmp_path / "media"], index, tiny_siglip, show_progress=False, engine="ray")
    assert summary.text["ocr_frames"] == len(SCENES) and summary.text["ocr_with_text"] == 4, summary.text
    with IndexStore.open(index) as store:
        hits = text_hits(store.catalog, "grand hotel")
        records = store.records([hit.image_id for hit in hits])
        found = [(r.media_type, near(r.timestamp_s, "GRAND HOTEL"), h.source) for h, r in zip(hits, records)]
        assert found == [("video", True, "ocr")]
    assert verify(index).clean


def _count(index: Path) -> int:
    try:
        with sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("select count(*) from images").fetchone()[0]
    except sqlite3.Error:
        return 0


def _cli(*args, **kwargs):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen(
        [sys.executable, "-m", "indexer", *map(str, args)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_killed_driver_loses_nothing_and_resumes(ray_cluster, library, tiny_siglip_dir, tmp_path):
    index = tmp_path / "index"
    args = [
        "build",
        "--dir",
        library,
        "--index",
        index,
        "--model",
        tiny_siglip_dir,
        "--engine",
        "ray",
        "--ray-address",
        ray_cluster,
        "--batch-size",
        "2",
        "--quiet",
    ]
    driver = _cli(*args)
    deadline = time.monotonic() + 300
    while _count(index) < 10 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver.poll() is None, f"build ended before it could be killed: {driver.communicate()}"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    kept = _count(index)
    assert 10 <= kept < 101
    rerun = _cli(*args)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    with IndexStore.open(index) as store:
        paths = [r.path for r in store.records(store.ids())]
        errors = store.errors()
    assert len(paths) == len(set(paths)) == 97 and len(errors) == 4
    assert verify(index).clean


def test_killed_embedding_actor_is_restarted_and_every_photo_indexed_once(ray_cluster, library, tiny_siglip, tmp_path):
    import psutil

    index = tmp_path / "index"
    killed: list[int] = []

    def kill_an_actor():
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            if _count(index) >= 4:
                for process in psutil.process_iter(["pid", "cmdline"]):
                    if "EmbedWorker" in " ".join(process.info["cmdline"] or []):
                        os.kill(process.info["pid"], signal.SIGKILL)
                        killed.append(process.info["pid"])
                        return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_an_actor, daemon=True)
    killer.start()
    summary = build_index([library], index, tiny_siglip, batch_size=2, show_progress=False, engine="ray")
    killer.join(timeout=5)
    assert killed, "no embedding actor was found to kill"
    assert summary.added == 97 - summary.duplicates + summary.duplicates  # every new path counted once
    with IndexStore.open(index) as store:
        paths = [r.path for r in store.records(store.ids())]
    assert len(paths) == len(set(paths)) == 97
    assert verify(index).clean


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs in a private mount namespace")
def test_worker_that_cannot_see_the_photos_stops_the_build_with_advice(ray_cluster, tiny_siglip_dir, tmp_path):
    """The driver sees photos on a mount the Ray workers do not have (no shared mount): fail fast, say why."""
    folder = tmp_path / "nfs-photos"
    folder.mkdir()
    script = (
        f"mount -t tmpfs -o size=8m none {folder} && "
        f'{sys.executable} -c "from PIL import Image; '
        f"[Image.new('RGB', (40, 30), (i * 40, 0, 0)).save(f'{folder}/a{{i}}.jpg') for i in range(6)]\" && "
        f"{sys.executable} -m indexer build --dir {folder} --index {tmp_path / 'index'} --model {tiny_siglip_dir} "
        f"--engine ray --ray-address {ray_cluster} --quiet"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot read the photo folder" in done.stderr and "same path on every node" in done.stderr
    assert "Traceback" not in done.stderr


def test_ray_decode_tasks_share_the_build_decode_budget(ray_cluster, photos, tiny_siglip, tmp_path):
    """--decode-budget-mp bounds the pixels decoded at once across Ray's decode tasks too: with a budget
    of one pixel each image decodes alone, even with two decode tasks running side by side."""
    from PIL import Image

    from indexer.ray_engine import RayOptions as Options

    sides = [(40 + 8 * i, 30 + 6 * i) for i in range(10)]
    for i, (width, height) in enumerate(sides):
        photos.png(f"p{i}.png", Image.fromarray(photos.pixels(width, height, seed=i)))
    summary = build_index(
        [photos.folder],
        tmp_path / "index",
        tiny_siglip,
        batch_size=2,
        show_progress=False,
        engine="ray",
        ray_options=Options(cpus_per_decoder=0.5),
        decode_budget=1,
    )
    assert summary.images == 10 and not summary.errors
    assert 0 < summary.peak_decode_pixels <= max(width * height for width, height in sides)


def test_workers_load_the_drivers_runtime_and_fit_the_node(tiny_siglip, tiny_siglip_torch):
    """An actor loads the model as the driver runs it (ONNX or torch: same vectors within 1e-4 only), a CPU
    actor's model uses its node's CPUs (Ray would pin it to the one CPU it reserves), and Ray reserves the
    host memory its model needs."""
    from indexer.ray_engine import actor_memory, model_spec, model_threads

    assert model_spec(tiny_siglip)["runtime"] == tiny_siglip.runtime == "onnx"
    assert model_spec(tiny_siglip_torch)["runtime"] == "torch"
    default = RayOptions()
    assert model_threads(default, 1, {"CPU": 2.0}, nodes=1) == 2  # this machine: one actor, both cores
    assert model_threads(default, 4, {"CPU": 32.0}, nodes=2) == 8  # two actors on each 16-CPU node
    assert model_threads(default, 3, {"CPU": 2.0}, nodes=1) == 1
    assert model_threads(RayOptions(threads_per_worker=3), 1, {"CPU": 64.0}, nodes=1) == 3
    weights = sum(p.numel() * p.element_size() for p in tiny_siglip_torch.backbone.model.parameters())
    assert 2 * weights <= actor_memory(tiny_siglip_torch, on_gpu=False) < 3 * weights  # Ray reserves it per actor
    assert weights <= actor_memory(tiny_siglip_torch, on_gpu=True) < 1.5 * weights
    exported = sum(f.stat().st_size for f in tiny_siglip.backbone.folder.iterdir())
    assert actor_memory(tiny_siglip, on_gpu=False) == int(2.5 * exported) and exported > weights / 2
    assert actor_memory(tiny_siglip, on_gpu=False, node_memory=exported) == int(exported * 0.8)  # never unschedulable
