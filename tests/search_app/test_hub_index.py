"""An index published with `indexer push`, served from a pre-filled Hugging Face cache with the real huggingface_hub
code and HF_HUB_OFFLINE=1: what push uploads, previews without originals, nothing written into the cache, ZeroGPU."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import COPY_OF_RED, LIBRARY, running_app

HUB_MODEL = "someone/tiny-mllama"
DATASET = "someone/photos"
URI = f"hf://datasets/{DATASET}"
PHOTOS = len(LIBRARY) + 1  # the library plus an identical copy of red.jpg


@pytest.fixture(scope="module")
def prepared(index_dir, tmp_path_factory):
    from indexer.publish import prepare_push

    return prepare_push(index_dir, tmp_path_factory.mktemp("push") / "dataset", model_id=HUB_MODEL, show_progress=False)


@pytest.fixture
def hub(prepared, tiny_mllama_dir, fill_hub_cache, tmp_path, monkeypatch):
    """A Hugging Face cache holding the published index (as snapshot_download leaves it) and the model by Hub id."""
    cache = tmp_path / "hub"
    fill_hub_cache(cache, DATASET, prepared.folder, commit="a" * 40, repo_type="dataset")
    fill_hub_cache(cache, HUB_MODEL, tiny_mllama_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # subprocesses; this process read it at import:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return cache


def cache_state(cache: Path) -> dict:
    """Every entry of a cache folder: a link's target, a file's sha256, or 'dir': any write shows up."""
    state = {}
    for path in sorted(cache.rglob("*")):
        key = str(path.relative_to(cache))
        if path.is_symlink():
            state[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            state[key] = "dir"
        else:
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def test_the_upload_is_a_servable_index_that_names_no_folder_of_the_publisher(
    prepared, index_dir, library, tiny_mllama_dir
):
    folder = prepared.folder
    files = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
    previews = {name for name in files if name.startswith("previews/")}
    assert files - previews == {"catalog.sqlite", "vectors.faiss", "README.md"}  # no -wal/-shm, no originals
    assert prepared.photos == PHOTOS and len(previews) == PHOTOS - 1 == prepared.previews  # the copy shares one
    for name in previews:
        with Image.open(folder / name) as preview:
            assert preview.format == "JPEG" and max(preview.size) <= 384

    from huggingface_hub import DatasetCard

    card = DatasetCard((folder / "README.md").read_text())  # the Hub's own parser of the YAML front matter
    assert card.data.viewer is False and "mme5-photo-search" in card.data.tags
    assert f"| photos | {PHOTOS} |" in card.text and HUB_MODEL in card.text

    publisher = [str(library), str(index_dir), str(tiny_mllama_dir), str(library.parent.parent.parent)]
    for name in files:
        data = (folder / name).read_bytes()
        for path in publisher:
            assert path.encode() not in data, f"{name} names {path}"

    with sqlite3.connect(f"file:{folder / 'catalog.sqlite'}?mode=ro", uri=True) as catalog:
        roots = [path for (path,) in catalog.execute("SELECT path FROM roots")]
        meta = {key: json.loads(value) for key, value in catalog.execute("SELECT key, value FROM meta")}
        hashes = {value for (value,) in catalog.execute("SELECT content_hash FROM images WHERE status = 'ok'")}
        assert catalog.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert roots == ["originals/1"] and meta["model_id"] == HUB_MODEL
    assert meta["published"] == {
        "format": 1,
        "previews": "previews",
        "preview_size": 384,
        "originals": False,
        "photos": PHOTOS,
    }
    assert "root_devices" not in meta and "last_build" not in meta  # they name the publisher's folders
    assert {f"previews/{value[:2]}/{value}.jpg" for value in hashes} == previews  # the mapping the app reads


def test_originals_are_uploaded_only_when_asked(index_dir, library, tmp_path):
    from indexer.publish import PublishError, prepare_push

    with pytest.raises(PublishError, match="--model-id ORG/NAME"):  # a local model folder: a Space cannot load it
        prepare_push(index_dir, tmp_path / "no-id", show_progress=False)
    prepared = prepare_push(index_dir, tmp_path / "with", originals=True, model_id=HUB_MODEL, show_progress=False)
    assert prepared.originals == PHOTOS and not prepared.skipped
    for relpath in [*LIBRARY, COPY_OF_RED]:
        assert (tmp_path / "with" / "originals" / "1" / relpath).read_bytes() == (library / relpath).read_bytes()
    with pytest.raises(PublishError, match="not empty"):
        prepare_push(index_dir, tmp_path / "with", model_id=HUB_MODEL, show_progress=False)


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard links", "copies"])
def test_originals_are_prepared_where_symbolic_links_are_refused(hard_links, index_dir, library, tmp_path, monkeypatch):
    """Windows without Developer Mode refuses symbolic links: hard links (same drive), else copies."""
    from indexer.publish import prepare_push

    def refused(*args):
        raise OSError(22, "A required privilege is not held by the client")

    monkeypatch.setattr(Path, "symlink_to", refused)
    if not hard_links:
        monkeypatch.setattr(os, "link", refused)
    prepared = prepare_push(index_dir, tmp_path / "with", originals=True, model_id=HUB_MODEL, show_progress=False)
    assert prepared.originals == PHOTOS and not prepared.skipped
    for relpath in [*LIBRARY, COPY_OF_RED]:
        original, uploaded = library / relpath, tmp_path / "with" / "originals" / "1" / relpath
        assert not uploaded.is_symlink() and uploaded.read_bytes() == original.read_bytes()
        assert os.path.samefile(uploaded, original) == hard_links


def test_a_published_copy_is_never_built_into_and_names_only_its_own_folders(prepared, tiny_mllama, library, tmp_path):
    import shutil

    from indexer import build_index
    from indexer.publish import PublishError

    copy = tmp_path / "copy"
    shutil.copytree(prepared.folder, copy)
    with pytest.raises(PublishError, match="published copy of an index"):
        build_index([library], copy, tiny_mllama, show_progress=False)
    catalog = sqlite3.connect(copy / "catalog.sqlite")
    with catalog:  # refused before a row was written
        assert [path for (path,) in catalog.execute("SELECT path FROM roots")] == ["originals/1"]
        assert catalog.execute("SELECT count(*) FROM images").fetchone()[0] == PHOTOS
        catalog.execute("UPDATE roots SET path = '/'")  # a downloaded catalog that would let the app serve any file
    catalog.close()  # the last connection folds the write-ahead log in (immutable readers ignore the log)
    from indexer import IndexCorruptError, IndexStore

    with pytest.raises(IndexCorruptError, match="names the folder '/'"):
        IndexStore.open(copy, immutable=True)


def test_served_in_process_previews_stand_in_for_absent_originals(hub):
    from indexer.hub import download_index
    from search_app.__main__ import SAMPLE_PHOTOS, open_or_build
    from search_app.ui import SearchUI
    from search_app.ui_session import Session

    before = cache_state(hub)
    folder = download_index(URI)
    assert folder == hub / f"datasets--{DATASET.replace('/', '--')}" / "snapshots" / ("a" * 40)
    engine = open_or_build(folder, None, None, "cpu", SAMPLE_PHOTOS, published=True)
    try:
        assert engine.store.read_only and engine.embedder.model_id == HUB_MODEL  # the model taken from the index
        page = engine.search_text("a red photo", k=PHOTOS)
        assert len(page.results) + sum(len(r.also_at) for r in page.results) == PHOTOS
        assert all(not os.path.exists(r.path) and r.path.startswith(str(folder)) for r in page.results)

        class Progress:
            def tqdm(self, items, desc=None):
                return items

        ui = SearchUI(engine)
        items, missing = ui._gallery_items(page.results, Progress())
        assert missing == 0 and len(items) == len(page.results)  # every result shown, from the published previews
        for _, (thumbnail, _caption) in items:
            with Image.open(thumbnail) as preview:
                assert preview.format == "JPEG"

        class Selected:
            index = 0

        details, _, image_id, download, *_ = ui.on_select(Session(what="a red photo", results=page.results), Selected())
        assert image_id == page.results[0].image_id and download["visible"] is False
        assert "was not published" in details and "--originals" in details
        similar = engine.search_similar(page.results[0].image_id, k=3)  # embeds the preview
        assert similar.results[0].content_hash == page.results[0].content_hash
    finally:
        engine.close()
    assert cache_state(hub) == before


@pytest.mark.server
def test_app_serves_an_hf_index_offline_and_leaves_the_cache_untouched(hub, tmp_path):
    from gradio_client import Client

    before = cache_state(hub)
    with running_app(tmp_path, ["--index", URI, "--device", "cpu"]) as url:  # HF_HUB_CACHE/OFFLINE from `hub`
        answer = Client(url, verbose=False).predict(text="a red photo", k=PHOTOS, api_name="/search_text")
    log = (tmp_path / "app.log").read_text()
    assert answer["total_indexed"] == PHOTOS, log
    assert {r["relpath"] for r in answer["results"]} | {COPY_OF_RED} >= set(LIBRARY)
    assert f"serving {PHOTOS} photos with {HUB_MODEL}" in log
    assert cache_state(hub) == before  # no -wal, -shm, .lock or rewritten meta in the snapshot


def test_zero_gpu_start_on_an_hf_index_embeds_nothing(hub, monkeypatch):
    from indexer.vectors import _torch_gpu_for
    from mme5.embedder import Embedder
    from search_app.__main__ import build_parser, start_engine

    monkeypatch.setenv("SPACE_ID", "someone/photo-search")
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    calls = []
    original = Embedder._encode_task
    monkeypatch.setattr(Embedder, "_encode_task", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    engine = start_engine(build_parser().parse_args(["--index", URI, "--device", "cpu"]))
    try:
        assert calls == []  # opening, compiling and preparing search embedded nothing
        asked = []
        monkeypatch.setattr("torch.cuda.is_available", lambda: asked.append(1) or True)
        assert _torch_gpu_for("flat", 10**7, 64) is None and asked == []  # CUDA not even asked about
        monkeypatch.delenv("SPACES_ZERO_GPU")
        _torch_gpu_for("flat", 10**7, 64)
        assert asked == [1]  # elsewhere a big flat index would be searched on the GPU
        engine.search_text("a red photo", k=3)
        assert len(calls) == 1  # a query is encoded
    finally:
        engine.close()


def test_on_zero_gpu_only_the_forward_pass_holds_the_gpu(hub, monkeypatch):
    """`spaces.GPU` wraps a query's forward pass alone: its arguments survive pickling (ZeroGPU sends them to a
    forked worker), every model call happens inside it, and parsing, FAISS and the catalog stay outside."""
    import pickle
    import sys
    import types

    from indexer.vectors import VectorIndex
    from mme5.embedder import Embedder
    from search_app.__main__ import build_parser, start_engine

    on_gpu, log = [], []

    def gpu(function):  # what spaces.GPU does that matters here: a separate call with pickled arguments
        def call(*args, **kwargs):
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            on_gpu.append(True)
            try:
                return function(*args, **kwargs)
            finally:
                on_gpu.pop()

        return call

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    monkeypatch.setenv("SPACE_ID", "someone/photo-search")
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    encode, search = Embedder._encode_task, VectorIndex.search
    monkeypatch.setattr(
        Embedder, "_encode_task", lambda self, *a, **k: log.append(("model", bool(on_gpu))) or encode(self, *a, **k)
    )
    monkeypatch.setattr(
        VectorIndex, "search", lambda self, *a, **k: log.append(("faiss", bool(on_gpu))) or search(self, *a, **k)
    )
    engine = start_engine(build_parser().parse_args(["--index", URI, "--device", "cpu"]))
    try:
        photo = engine.search_text("a red photo", k=1).results[0]
        engine.search_composed(engine.image_file(engine.record(photo.image_id)), "at night", k=3)
        engine.search_text("a red photo in 2021", k=3, without=["blue"])
        engine.search_similar(photo.image_id, k=3)
    finally:
        engine.close()
    assert ("model", True) in log and ("faiss", False) in log
    assert ("model", False) not in log, log  # no model call outside the GPU function
    assert ("faiss", True) not in log, log  # ranking never holds the GPU


def test_an_index_published_by_an_older_version_is_served_through_an_upgraded_copy(
    prepared, tiny_mllama_dir, fill_hub_cache, tmp_path, monkeypatch, capsys
):
    """A catalog published before the latest nullable columns (here the motion ones) cannot be upgraded in the
    Hub's cache, and must not be: it is read through an upgraded copy in the user's cache, the snapshot untouched."""
    import shutil

    from indexer.__main__ import main as indexer_main
    from indexer.catalog import UPGRADED_CATALOGS

    older = tmp_path / "older"
    shutil.copytree(prepared.folder, older)
    with sqlite3.connect(older / "catalog.sqlite") as connection:
        for column in ("motion", "motion_clip", "motion_clip_stat"):
            connection.execute(f"ALTER TABLE images DROP COLUMN {column}")
    cache = tmp_path / "hub"
    fill_hub_cache(cache, DATASET, older, commit="b" * 40, repo_type="dataset")
    fill_hub_cache(cache, HUB_MODEL, tiny_mllama_dir)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))  # this test is about the Hub's cache
    monkeypatch.setenv("MME5_CACHE_DIR", str(tmp_path / "user-cache"))  # and about what goes into the user's
    before = cache_state(cache)
    assert indexer_main(["search", "--index", URI, "--text", "a red photo", "-k", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["results"]) == 3 and all("motion" not in result for result in answer["results"])
    assert cache_state(cache) == before  # nothing written into the snapshot
    from mme5.settings import user_cache_dir

    copies = list((user_cache_dir() / UPGRADED_CATALOGS).glob("*.sqlite"))
    assert len(copies) == 1
    with sqlite3.connect(copies[0]) as connection:
        assert "motion_clip_stat" in {row[1] for row in connection.execute("PRAGMA table_info(images)")}


def test_writers_refuse_an_hf_index_and_readers_use_the_cache(hub, capsys):
    """The CLIs' own runners, in this process (the app and indexer exit codes and one-line messages)."""
    from indexer.__main__ import main as indexer_main
    from search_app.__main__ import main as app_main

    before = cache_state(hub)
    for main, argv in (
        (indexer_main, ["build", "--index", URI]),
        (indexer_main, ["watch", "--index", URI]),
        (indexer_main, ["remove", "--index", URI, "--dir", "x"]),
        (app_main, ["--index", URI, "--watch"]),
    ):
        code, stderr = main(argv), capsys.readouterr().err
        assert code == 2 and "an index on the Hub is read-only" in stderr, stderr
        assert "python -m indexer push" in stderr and URI in stderr and "Traceback" not in stderr
    assert indexer_main(["info", "--index", URI, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (
        info["images"] == PHOTOS
        and info["read_only"] is True
        and info["roots"]
        == [str(hub / f"datasets--{DATASET.replace('/', '--')}" / "snapshots" / ("a" * 40) / "originals" / "1")]
    )
    code, stderr = app_main(["--index", "hf://datasets/someone/not-downloaded"]), capsys.readouterr().err
    assert code == 1 and stderr.startswith("app: error: hf://datasets/someone/not-downloaded")
    assert "not in the Hugging Face cache" in stderr and "Traceback" not in stderr
    assert cache_state(hub) == before


# -- an index built with a peft adapter (LoRA) ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def adapted(library, tiny_mllama_dir, tmp_path_factory):
    """(local index built with model + LoRA adapter, the adapter folder, the embedder, its upload prepared)."""
    from transformers import MllamaForConditionalGeneration

    from indexer import build_index
    from indexer.publish import prepare_push
    from mme5 import load_embedder

    from ..mme5.test_loading import lora_adapter

    work = tmp_path_factory.mktemp("adapted")
    adapter = lora_adapter(MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir), work / "runs" / "lora1")
    embedder = load_embedder(str(tiny_mllama_dir), device="cpu", adapter=str(adapter))
    summary = build_index([library], work / "idx", embedder, show_progress=False)
    assert summary.added == PHOTOS
    prepared = prepare_push(work / "idx", work / "dataset", model_id=HUB_MODEL, show_progress=False)
    return work / "idx", adapter, embedder, prepared


def serve_from_cache(cache: Path, dataset_folder: Path, tiny_mllama_dir: Path, fill_hub_cache, repo=DATASET):
    """The published folder and the model by Hub id in a Hugging Face cache; the engine over the downloaded index."""
    from indexer.hub import download_index
    from search_app.__main__ import SAMPLE_PHOTOS, open_or_build

    fill_hub_cache(cache, repo, dataset_folder, commit="b" * 40, repo_type="dataset")
    fill_hub_cache(cache, HUB_MODEL, tiny_mllama_dir)
    return open_or_build(download_index(f"hf://datasets/{repo}"), None, None, "cpu", SAMPLE_PHOTOS, published=True)


def test_an_adapted_index_is_published_with_its_adapter(adapted, library, tiny_mllama_dir):
    from safetensors.torch import load_file

    from indexer import IndexStore

    index, adapter, _, prepared = adapted
    folder = prepared.folder
    assert sorted(path.name for path in (folder / "adapter").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert (folder / "adapter" / "adapter_model.safetensors").read_bytes() == (
        adapter / "adapter_model.safetensors"
    ).read_bytes()
    original = json.loads((adapter / "adapter_config.json").read_text())
    published = json.loads((folder / "adapter" / "adapter_config.json").read_text())
    assert original["base_model_name_or_path"] == str(tiny_mllama_dir)  # the publisher's folder ...
    assert published == {**original, "base_model_name_or_path": HUB_MODEL}  # ... becomes the Hub id, nothing else
    assert set(load_file(folder / "adapter" / "adapter_model.safetensors")) == set(
        load_file(adapter / "adapter_model.safetensors")
    )
    with IndexStore.open(index) as local, IndexStore.open(folder, immutable=True) as copy:
        assert local.adapter == str(adapter) and copy.meta["adapter"] == "adapter"  # recorded relative ...
        assert copy.adapter == str(folder / "adapter")  # ... and found inside the published index
        assert copy.meta["identity"] == local.meta["identity"] and copy.fingerprint == local.fingerprint
        assert copy.meta["identity"]["adapter"].startswith("sha256:")
    card = (folder / "README.md").read_text()
    assert "| adapter | LoRA, rank 4 (peft) in `adapter/`" in card and "`adapter/` (the peft adapter" in card
    for path in folder.rglob("*"):
        if path.is_file():
            for publisher in (str(library), str(index), str(adapter), str(tiny_mllama_dir)):
                assert publisher.encode() not in path.read_bytes(), f"{path} names {publisher}"


def test_an_adapted_index_is_served_from_the_hub_cache_with_its_adapter(
    adapted, tiny_mllama, tiny_mllama_dir, fill_hub_cache, tmp_path, monkeypatch
):
    from mme5.registry import QueryKind
    from search_app.engine import SearchEngine

    index, _, adapted_embedder, prepared = adapted
    cache = tmp_path / "hub"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    served = serve_from_cache(cache, prepared.folder, tiny_mllama_dir, fill_hub_cache)
    before = cache_state(cache)
    local = SearchEngine.open(index, device="cpu")
    try:
        snapshot = cache / f"datasets--{DATASET.replace('/', '--')}" / "snapshots" / ("b" * 40)
        assert served.embedder.model_id == HUB_MODEL and served.embedder.adapter == str(snapshot / "adapter")
        assert served.embedder.identity == local.embedder.identity == adapted_embedder.identity
        text = "a red photo"
        query = served.encode_query(text)
        np.testing.assert_allclose(query, local.encode_query(text), atol=1e-5)
        plain = tiny_mllama.encode_query(QueryKind.of(text=text), texts=[text])  # the adapter changes the vectors
        assert np.abs(np.asarray(query).reshape(-1) - plain.reshape(-1)).max() > 1e-3
        ranked = [(r.content_hash, r.relpath) for r in served.search_text(text, k=PHOTOS).results]
        assert ranked == [(r.content_hash, r.relpath) for r in local.search_text(text, k=PHOTOS).results]
        assert len(ranked) >= 3
    finally:
        served.close()
        local.close()
    assert cache_state(cache) == before  # nothing written beside the snapshot, the adapter read where it lies


def test_a_published_adapter_that_is_not_the_indexed_one_is_refused(
    adapted, tiny_mllama_dir, fill_hub_cache, tmp_path, monkeypatch
):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from indexer import IndexCorruptError, IndexMismatchError, IndexStore

    _, _, _, prepared = adapted
    cache = tmp_path / "hub"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    tampered = tmp_path / "tampered"
    shutil.copytree(prepared.folder, tampered)
    weights = load_file(tampered / "adapter" / "adapter_model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + torch.ones_like(weights[name])  # other bytes, same names and shapes
    save_file(weights, tampered / "adapter" / "adapter_model.safetensors", metadata={"format": "pt"})
    with pytest.raises(IndexMismatchError, match="they differ in: adapter"):
        serve_from_cache(cache, tampered, tiny_mllama_dir, fill_hub_cache, repo="someone/tampered")

    missing = tmp_path / "missing"  # the catalog without its adapter
    shutil.copytree(prepared.folder, missing, ignore=shutil.ignore_patterns("adapter"))
    with pytest.raises(IndexCorruptError, match="adapter/adapter_config.json is missing"):
        IndexStore.open(missing, immutable=True)
    elsewhere = tmp_path / "elsewhere"  # a downloaded catalog pointing the app at another folder
    shutil.copytree(prepared.folder, elsewhere)
    with sqlite3.connect(elsewhere / "catalog.sqlite") as catalog:
        catalog.execute("UPDATE meta SET value = ? WHERE key = 'adapter'", (json.dumps(str(tmp_path / "tampered")),))
    catalog.close()
    with pytest.raises(IndexCorruptError, match="names the adapter folder"):
        IndexStore.open(elsewhere, immutable=True)


def test_an_adapter_folder_gone_or_changed_since_the_build_is_not_published(adapted, tmp_path):
    from indexer.publish import PublishError, prepare_push

    index, adapter, _, _ = adapted
    weights = adapter / "adapter_model.safetensors"
    kept = weights.read_bytes()
    try:
        weights.write_bytes(kept[:-4] + b"\0\0\0\0")  # edited after the build
        with pytest.raises(PublishError, match="no longer holds the adapter the index was built with") as changed:
            prepare_push(index, tmp_path / "changed", model_id=HUB_MODEL, show_progress=False)
        assert str(adapter) in str(changed.value) and "--adapter FOLDER" in str(changed.value)
        weights.unlink()
        with pytest.raises(PublishError, match="cannot be read") as gone:
            prepare_push(index, tmp_path / "gone", model_id=HUB_MODEL, show_progress=False)
        assert str(adapter) in str(gone.value) and "restore that folder" in str(gone.value)
        assert not (tmp_path / "gone" / "adapter").exists()
    finally:
        weights.write_bytes(kept)


def test_push_never_publishes_a_file_the_app_refuses_to_serve(library, outside_dir, tiny_mllama, tmp_path):
    """A photo reached through a symbolic link out of the photo folder: the app's path guard refuses to serve it,
    so push publishes neither the file nor a preview of it, and says so."""
    from indexer import build_index
    from indexer.publish import prepare_push
    from search_app.paths import PathGuard

    photos = tmp_path / "photos"
    photos.mkdir()
    for relpath in ("2024/green.jpg", "misc/gray.jpg"):
        (photos / Path(relpath).name).write_bytes((library / relpath).read_bytes())
    (photos / "escape.jpg").symlink_to(outside_dir / "secret.jpg")  # out of the folder
    build_index([photos], tmp_path / "index", tiny_mllama, show_progress=False)
    assert not PathGuard([photos]).allows(photos / "escape.jpg")  # what the app refuses to serve
    prepared = prepare_push(
        tmp_path / "index", tmp_path / "dataset", originals=True, model_id=HUB_MODEL, show_progress=False
    )
    secret = (outside_dir / "secret.jpg").read_bytes()
    published = [path for path in (tmp_path / "dataset").rglob("*") if path.is_file()]
    assert not [path for path in published if path.read_bytes() == secret]
    assert {path.name for path in (tmp_path / "dataset" / "originals" / "1").iterdir()} == {"green.jpg", "gray.jpg"}
    assert prepared.originals == 2 and prepared.previews == 2
    assert [line for line in prepared.skipped if "escape.jpg" in line and "never serves" in line]


def test_albums_of_a_published_index_live_in_the_users_store_never_in_the_hub_cache(
    hub, fresh_home, prepared, fill_hub_cache
):
    from indexer.hub import download_index
    from search_app.__main__ import SAMPLE_PHOTOS, open_or_build
    from search_app.ui import SearchUI
    from search_app.ui_reply import output

    from .test_ui_albums import values
    from .test_ui_messages import NoProgress

    before = cache_state(hub)
    engine = open_or_build(download_index(URI), None, None, "cpu", SAMPLE_PHOTOS, published=True)
    ui = SearchUI(engine)
    try:
        assert ui.albums.on_page_ready()[0]["choices"] == []  # a page load reads, and writes nothing anywhere
        assert cache_state(hub) == before
        shown = ui.on_search("a red photo", None, *values(), progress=NoProgress())
        message, _ = ui.albums.on_save_album("Red", output(shown, "session"), *values())
        assert message.startswith("Saved the album “Red”"), message
        photo = output(shown, "session").results[1].image_id
        pinned = ui.albums.on_pin("Red", photo, progress=NoProgress())
        assert "1 pinned" in output(pinned, "status")
    finally:
        engine.close()
    assert cache_state(hub) == before  # the catalog blob still matches its SHA-256 name; no -wal, -shm
    store = fresh_home / ".local" / "share" / "mme5-search" / "albums"
    assert [path.name for path in store.iterdir() if path.suffix == ".sqlite"] == ["datasets--someone--photos.sqlite"]
    assert store.stat().st_mode & 0o777 == 0o700  # album names and queries are the user's own

    newer = fill_hub_cache(hub, DATASET, prepared.folder, commit="b" * 40, repo_type="dataset")  # a later push
    engine = open_or_build(newer, None, None, "cpu", SAMPLE_PHOTOS, published=True)
    try:
        assert engine.albums.names() == ["Red"] and engine.albums.get("Red").pinned == (photo,)
    finally:
        engine.close()


def test_the_album_cli_keeps_a_published_copys_albums_in_the_users_store(prepared, fresh_home, tmp_path, capsys):
    import shutil

    from search_app.album_views import main

    copy = tmp_path / "copy"
    shutil.copytree(prepared.folder, copy)
    assert main(["save", "--index", str(copy), "--name", "Red", "--text", "a red photo"]) == 0
    assert main(["list", "--index", str(copy)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "Red"
    with sqlite3.connect(f"file:{copy / 'catalog.sqlite'}?mode=ro", uri=True) as catalog:
        assert not catalog.execute("SELECT name FROM sqlite_master WHERE name LIKE 'album%'").fetchall()
    catalog.close()
    assert len(list((fresh_home / ".local" / "share" / "mme5-search" / "albums").glob("folder--*.sqlite"))) == 1
