"""A published index is data from a stranger: hostile versions of a real `push` upload, each field of its catalog,
vector file and adapter mutated, are refused with a sentence naming the dataset and the field before anything of
them is served or any file is named after them; a valid one is served without a byte of the Hugging Face cache
changing (no -wal/-shm, albums never opened in it); file names made from content hashes accept only their shape."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO, free_port
from .test_hub_index import HUB_MODEL, PHOTOS, cache_state

GOOD, HOSTILE = "someone/photos", "stranger/photos"


@pytest.fixture(scope="module")
def upload(index_dir, tmp_path_factory):
    """What `push` uploads for the test library (previews only), prepared once."""
    from indexer.publish import prepare_push

    return prepare_push(
        index_dir, tmp_path_factory.mktemp("push") / "dataset", model_id=HUB_MODEL, show_progress=False
    ).folder


@pytest.fixture
def cache(tiny_mllama_dir, fill_hub_cache, tmp_path, monkeypatch):
    """An empty Hugging Face cache holding the model by its Hub id; offline, a fresh XDG cache."""
    cache = tmp_path / "hub"
    fill_hub_cache(cache, HUB_MODEL, tiny_mllama_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # subprocesses; this process read it at import:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return cache


def mutated(folder: Path, target: Path, sql=(), edit=None) -> Path:
    """A copy of a published folder with ``sql`` (statement, parameters) run on its catalog, then ``edit(copy)``."""
    shutil.copytree(folder, target)
    connection = sqlite3.connect(target / "catalog.sqlite")
    try:
        for statement, parameters in sql:
            connection.execute(statement, parameters)
        connection.commit()
    finally:
        connection.close()  # rollback journal: nothing left beside the file
    if edit is not None:
        edit(target)
    return target


def meta(key, value):
    return ("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def no_meta(key):
    return ("DELETE FROM meta WHERE key = ?", (key,))


def published(**changes):
    return meta(
        "published",
        {"format": 1, "previews": "previews", "preview_size": 384, "originals": False, "photos": PHOTOS, **changes},
    )


def serve(cache: Path, folder: Path, repo=HOSTILE, commit="c" * 40):
    """What `--index hf://datasets/REPO` does before serving: download (from the cache), then open_or_build."""
    from ..conftest import _fill_hub_cache
    from indexer.hub import download_index
    from search_app.__main__ import SAMPLE_PHOTOS, open_or_build

    _fill_hub_cache(cache, repo, folder, commit=commit, repo_type="dataset")
    return open_or_build(download_index(f"hf://datasets/{repo}"), None, None, "cpu", SAMPLE_PHOTOS, published=True)


def wrong_dim_vectors(folder: Path) -> None:
    """A well-formed FAISS file of 8 dimensions (the catalog says more), its checksum recorded in the catalog."""
    from indexer.vectors import INDEX_FILE, VectorIndex

    connection = sqlite3.connect(folder / "catalog.sqlite")
    try:
        ids = np.array([i for (i,) in connection.execute("SELECT id FROM images")], np.int64)
        index = VectorIndex.flat(8)
        index.add(ids, np.eye(len(ids), 8, dtype=np.float32))
        data, checksum = index.serialize()
        (folder / INDEX_FILE).write_bytes(bytes(data))
        connection.execute(*meta("index_checksum", checksum))
        connection.commit()
    finally:
        connection.close()


HASH = "(SELECT content_hash FROM images ORDER BY id LIMIT 1)"
FIRST = "(SELECT min(id) FROM images)"
CASES = {  # name: (catalog statements, edit of the folder, the sentence's field)
    "no published record, root /": (
        [no_meta("published"), ("UPDATE roots SET path = '/'", ())],
        None,
        "lacks the meta key(s) 'published'",
    ),
    "root /": ([("UPDATE roots SET path = '/'", ())], None, "names the folder '/'"),
    "root ..": (
        [("UPDATE roots SET path = 'originals/1/../../../..'", ())],
        None,
        "names the folder 'originals/1/../../../..'",
    ),
    "root of another id": ([("UPDATE roots SET path = 'originals/7'", ())], None, "names the folder 'originals/7'"),
    "content hash ../": (
        [
            (f"UPDATE vectors SET content_hash = '../../../../x/pwned' WHERE content_hash = {HASH}", ()),
            (
                "UPDATE images SET content_hash = '../../../../x/pwned' WHERE content_hash = "
                "(SELECT content_hash FROM images WHERE content_hash != '../../../../x/pwned' "
                "ORDER BY id LIMIT 1)",
                (),
            ),
        ],
        None,
        "the content hash '../../../../x/pwned' in its",
    ),
    "content hash uppercase": (
        [(f"UPDATE images SET content_hash = upper({HASH}) WHERE id = {FIRST}", ())],
        None,
        "in its images table, not 32 hex digits",
    ),
    "negative id": ([(f"UPDATE images SET id = -1 WHERE id = {FIRST}", ())], None, "has a photo row (id -1"),
    "error row": ([(f"UPDATE images SET status = 'error' WHERE id = {FIRST}", ())], None, "status 'error'"),
    "relpath ..": (
        [(f"UPDATE images SET relpath = CAST('../../../etc/passwd' AS BLOB) WHERE id = {FIRST}", ())],
        None,
        "at '../../../etc/passwd', not a path inside its own folders",
    ),
    "relpath absolute": (
        [(f"UPDATE images SET relpath = CAST('/etc/passwd' AS BLOB) WHERE id = {FIRST}", ())],
        None,
        "at '/etc/passwd', not a path inside its own folders",
    ),
    "relpath not bytes": (
        [(f"UPDATE images SET relpath = 'a.jpg' WHERE id = {FIRST}", ())],
        None,
        "at 'a.jpg', not a path inside its own folders",
    ),
    "capture date": (
        [(f"UPDATE images SET taken_at = 'yesterday' WHERE id = {FIRST}", ())],
        None,
        "with a size, date, camera or place not of the type",
    ),
    "camera a blob": (
        [(f"UPDATE images SET camera = X'00ff' WHERE id = {FIRST}", ())],
        None,
        "with a size, date, camera or place not of the type",
    ),
    "photo count": ([published(photos=PHOTOS + 5)], None, f"but its published record says {PHOTOS + 5}"),
    "previews folder": ([published(previews="../../..")], None, "has published['previews'] = '../../..'"),
    "model a local folder": ([meta("model_id", "/etc")], None, "names the model '/etc', not a Hub model id"),
    "model climbing": ([meta("model_id", "../x")], None, "names the model '../x'"),
    "unknown meta key": (
        [meta("vector_store", {"id": "x", "rows": 3})],
        None,
        "meta keys push never writes ('vector_store')",
    ),
    "dim": ([meta("dim", 8)], None, "stores a vector of"),
    "dim not a number": ([meta("dim", "64; DROP")], None, "has meta 'dim' = '64; DROP'"),
    "quantization": ([meta("quantization", "rot13")], None, "has meta 'quantization' = 'rot13'"),
    "family not a text": ([meta("family", ["mllama"])], None, "has a meta 'family' that is not a short text"),
    "adapter elsewhere": ([meta("adapter", "/tmp/elsewhere")], None, "names the adapter folder '/tmp/elsewhere'"),
    "short stored vector": (
        [(f"UPDATE vectors SET vector = substr(vector, 1, 10) WHERE content_hash = {HASH}", ())],
        None,
        "stores a vector of 10 bytes",
    ),
    "vector file truncated": (
        [],
        lambda folder: (folder / "vectors.faiss").write_bytes((folder / "vectors.faiss").read_bytes()[:-100]),
        "has a vectors.faiss that does not match its catalog",
    ),
    "vector file of another dim": ([], wrong_dim_vectors, "has a vectors.faiss that does not match its catalog"),
    "vector file oversized": (
        [],
        lambda folder: (folder / "vectors.faiss").open("ab").write(b"\0" * (3 << 20)),
        "has a vectors.faiss of",
    ),
    "vector file missing": ([], lambda folder: (folder / "vectors.faiss").unlink(), "has no vectors.faiss"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_field_of_a_hostile_catalog_is_refused_before_anything_is_served(case, upload, cache, tmp_path):
    from indexer import PublishedIndexError

    statements, edit, field = CASES[case]
    folder = mutated(upload, tmp_path / "hostile", statements, edit)
    before = cache_state(cache)
    with pytest.raises(PublishedIndexError) as refused:
        serve(cache, folder).close()
    message = str(refused.value)
    assert field in message, message
    assert (
        message.startswith(f"hf://datasets/{HOSTILE} (revision cccccccccccc, ") and "python -m indexer push" in message
    )
    after = cache_state(cache)
    assert {key: value for key, value in after.items() if key in before} == before  # only the download was added
    assert not any(key.endswith(("-wal", "-shm", ".lock")) for key in after)
    assert not (tmp_path / "xdg").exists() or not any((tmp_path / "xdg").rglob("*.jpg"))  # no preview made


@pytest.mark.parametrize(
    "statement, field",
    [
        ("INSERT OR REPLACE INTO meta (key, value) VALUES ('dim', 'sixty-four')", "meta value 'dim' is not JSON"),
        (
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '\"9\"')",
            "catalog schema version '\"9\"' is not a version number",
        ),
    ],
    ids=["not JSON", "schema version a text"],
)
def test_a_catalog_the_indexer_never_wrote_is_a_sentence_not_a_crash(statement, field, upload, cache, tmp_path):
    from indexer import IndexCorruptError

    folder = mutated(upload, tmp_path / "hostile", [(statement, ())])
    with pytest.raises(IndexCorruptError) as refused:
        serve(cache, folder).close()
    assert field in str(refused.value) and "catalog.sqlite" in str(refused.value), str(refused.value)


def test_a_valid_published_index_leaves_every_blob_byte_identical(upload, cache, fresh_home):
    """A page load (album names, threshold), a search, the previews and a click: the cache is read, never written
    (today's catalog opened for albums turned it into WAL mode: -wal/-shm beside it and the blob rewritten)."""
    from search_app.ui import SearchUI
    from search_app.ui_session import Session

    engine = serve(cache, upload, repo=GOOD)
    before = cache_state(cache)
    try:
        ui = SearchUI(engine)
        names, threshold = ui.albums.on_page_ready()
        assert names["choices"] == [] and isinstance(threshold, float)  # no albums; the model's threshold
        page = engine.search_text("a red photo", k=PHOTOS)

        class Progress:
            def tqdm(self, items, desc=None):
                return items

        items, missing = ui._gallery_items(page.results, Progress())
        assert missing == 0 and len(items) == len(page.results)

        class Selected:
            index = 0

        ui.on_select(Session(what="a red photo", results=page.results), Selected())
        after = cache_state(cache)
        assert after == before, {
            key: (before.get(key), after.get(key))
            for key in set(before) | set(after)
            if before.get(key) != after.get(key)
        }
        engine.albums.save("mine", {"text": "a red photo"}, {})  # into the user's own album store, not the download
        assert list(fresh_home.rglob("datasets--*.sqlite")) and engine.albums.names() == ["mine"]
    finally:
        engine.close()
    assert cache_state(cache) == before
    blobs = [path for path in cache.rglob("*") if path.is_file() and not path.is_symlink() and "blobs" in path.parts]
    import hashlib

    for blob in blobs:  # LFS blobs are named by their sha256: still what they are named
        if len(blob.name) == 64:
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob


def test_a_revision_published_later_is_validated_again(upload, cache, tmp_path):
    """A dataset that was fine when first served and replaced later: the next start checks the new revision."""
    from indexer import PublishedIndexError

    serve(cache, upload, repo=HOSTILE, commit="a" * 40).close()  # fine at first
    statements, _, field = CASES["no published record, root /"]
    replaced = mutated(upload, tmp_path / "replaced", statements)
    with pytest.raises(PublishedIndexError, match=field.replace("(", r"\(").replace(")", r"\)")):
        serve(cache, replaced, repo=HOSTILE, commit="d" * 40)  # refs/main now names the new revision


def test_file_names_from_content_hashes_accept_only_the_shape_build_writes(tmp_path, library):
    from indexer.reader import checked_content_hash, hash_file
    from search_app.thumbnails import ThumbnailCache
    from search_app.ui import SearchUI

    photo = library / "2023/beach/red.jpg"
    assert checked_content_hash(hash_file(str(photo))) == hash_file(str(photo))
    thumbnails = ThumbnailCache(tmp_path / "cache" / "previews")
    state = type("UI", (), {"originals": tmp_path / "cache" / "originals"})()
    for hostile in ("../../../../x/pwned", "/tmp/pwned", "ABCDEF" * 6, "a" * 31, "a" * 64, "a" * 31 + "/"):
        with pytest.raises(ValueError, match="not a content hash"):
            thumbnails.get(photo, hostile)
        with pytest.raises(ValueError, match="not a content hash"):
            SearchUI._original_copy(state, photo, hostile)
    written = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert written == [], written  # nothing written, inside the cache or outside it
    good = hash_file(str(photo))
    assert thumbnails.get(photo, good).parent == thumbnails.dir
    assert SearchUI._original_copy(state, photo, good).read_bytes() == photo.read_bytes()


# -- a published adapter --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adapted_upload(library, tiny_mllama_dir, tmp_path_factory):
    """What `push` uploads for an index built with a LoRA adapter (adapter/ beside the catalog)."""
    from transformers import MllamaForConditionalGeneration

    from indexer import build_index
    from indexer.publish import prepare_push
    from mme5 import load_embedder

    from ..mme5.test_loading import lora_adapter

    work = tmp_path_factory.mktemp("adapted")
    adapter = lora_adapter(MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir), work / "lora")
    embedder = load_embedder(str(tiny_mllama_dir), device="cpu", adapter=str(adapter))
    build_index([library], work / "idx", embedder, show_progress=False)
    return prepare_push(work / "idx", work / "dataset", model_id=HUB_MODEL, show_progress=False).folder


def pickled_weights(folder: Path, raw: bool = False) -> None:
    """adapter_model.bin instead of safetensors (as torch.save writes it, or a bare pickle): loading would run code."""
    import pickle

    import torch

    (folder / "adapter" / "adapter_model.safetensors").unlink()
    if raw:
        (folder / "adapter" / "adapter_model.bin").write_bytes(pickle.dumps(Exploit()))
    else:
        torch.save({"base_model.model.lora_A.weight": Exploit()}, folder / "adapter" / "adapter_model.bin")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/mme5-pickle-ran",))


def edit_config(**changes):
    def edit(folder: Path) -> None:
        path = folder / "adapter" / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return edit


ADAPTER_CASES = {
    "pickled weights": (pickled_weights, "adapter/adapter_model.bin that is a pickle holding more than tensors"),
    "bare pickle": (
        lambda folder: pickled_weights(folder, raw=True),
        "adapter/adapter_model.bin that is a pickle holding more than tensors",
    ),
    "pickle of no tensors": (
        lambda folder: (folder / "adapter" / "adapter_model.safetensors").rename(
            folder / "adapter" / "adapter_model.bin"
        ),
        "adapter/adapter_model.bin that is a pickle",
    ),
    "pickle beside": (
        lambda folder: (folder / "adapter" / "adapter_model.bin").write_bytes(b"\x80\x04N."),
        "holding adapter_config.json, adapter_model.bin, adapter_model.safetensors, not",
    ),
    "another file": (
        lambda folder: (folder / "adapter" / "loader.py").write_text("import os"),
        "holding adapter_config.json, adapter_model.safetensors, loader.py, not",
    ),
    "other base model": (
        edit_config(base_model_name_or_path="/home/someone/model"),
        "has an adapter for the model '/home/someone/model'",
    ),
    "other peft type": (edit_config(peft_type="PROMPT_TUNING"), "peft_type 'PROMPT_TUNING'"),
    "auto mapping": (
        edit_config(auto_mapping={"base_model_class": "system", "parent_library": "os"}),
        "setting 'auto_mapping'",
    ),
    "config not an object": (
        lambda folder: (folder / "adapter" / "adapter_config.json").write_text("[1]"),
        "adapter_config.json that cannot be read (not a JSON object)",
    ),
    "weights not safetensors": (
        lambda folder: (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"\xff" * 64),
        "adapter_model.safetensors that is not a readable safetensors file",
    ),
}


@pytest.mark.parametrize("case", list(ADAPTER_CASES))
def test_a_hostile_published_adapter_is_refused_before_it_is_loaded(case, adapted_upload, cache, tmp_path):
    from indexer import PublishedIndexError

    edit, field = ADAPTER_CASES[case]
    folder = mutated(adapted_upload, tmp_path / "hostile", edit=edit)
    with pytest.raises(PublishedIndexError) as refused:
        serve(cache, folder).close()
    assert field in str(refused.value), str(refused.value)
    assert not Path("/tmp/mme5-pickle-ran").exists()


def test_a_pickled_published_adapter_is_one_sentence_not_a_bug(adapted_upload, cache, tmp_path, capsys):
    """The app's own runner: exit 1 and a sentence, where it said "this is a bug" with a traceback."""
    from ..conftest import _fill_hub_cache
    from search_app.__main__ import main

    _fill_hub_cache(
        cache,
        HOSTILE,
        mutated(adapted_upload, tmp_path / "hostile", edit=pickled_weights),
        commit="c" * 40,
        repo_type="dataset",
    )
    code, stderr = main(["--index", f"hf://datasets/{HOSTILE}", "--device", "cpu"]), capsys.readouterr().err
    assert code == 1 and "Traceback" not in stderr and "bug" not in stderr, stderr
    assert "adapter_model.bin" in stderr and f"hf://datasets/{HOSTILE}" in stderr
    assert not Path("/tmp/mme5-pickle-ran").exists()


def test_a_local_adapter_with_pickled_weights_is_a_model_load_error(tiny_mllama_dir, tmp_path):
    """Defence in depth where adapters are loaded: torch refuses the pickle; that is said, not shown as a bug."""
    import torch
    from transformers import MllamaForConditionalGeneration

    from mme5 import ModelLoadError
    from mme5.loading import merge_adapter

    from ..mme5.test_loading import lora_adapter

    model = MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir)
    adapter = lora_adapter(model, tmp_path / "lora")
    (adapter / "adapter_model.safetensors").unlink()
    torch.save({"weights": Exploit()}, adapter / "adapter_model.bin")
    with pytest.raises(ModelLoadError, match="a pickle holding more than tensors"):
        merge_adapter(MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir), adapter)
    assert not Path("/tmp/mme5-pickle-ran").exists()


# -- the app ----------------------------------------------------------------------------------------------------------
@pytest.mark.server
def test_the_app_refuses_to_serve_a_catalog_naming_the_servers_files(upload, cache, tmp_path):
    """The leak of the issue: a catalog without its published record, root '/', photos at etc/passwd-like paths.
    The app must stop at start-up with one sentence (it served them, in a pinned album's zip)."""
    from ..conftest import _fill_hub_cache

    secret = tmp_path / "server" / "secrets.txt"
    secret.parent.mkdir()
    secret.write_text("HF_TOKEN=hf_secret\n")
    relpath = str(secret).lstrip("/")
    folder = mutated(
        upload,
        tmp_path / "hostile",
        [
            no_meta("published"),
            ("UPDATE roots SET path = '/'", ()),
            (f"UPDATE images SET relpath = CAST(? AS BLOB) WHERE id = {FIRST}", (relpath,)),
        ],
    )
    _fill_hub_cache(cache, HOSTILE, folder, commit="c" * 40, repo_type="dataset")
    home = Path(tempfile.mkdtemp(prefix="mme5-test-home-", dir=Path.home()))  # the user's world: not in /tmp
    log = tmp_path / "app.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("XDG_")}
    environment.update(HOME=str(home), GRADIO_ANALYTICS_ENABLED="False")  # HF_HUB_CACHE/OFFLINE from `cache`
    try:
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(REPO / "app.py"),
                    "--index",
                    f"hf://datasets/{HOSTILE}",
                    "--device",
                    "cpu",
                    "--port",
                    str(free_port()),
                ],
                cwd=home,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        check_refused(process, log, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def check_refused(process, log: Path, home: Path) -> None:
    try:
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline and b"serving" not in log.read_bytes():
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    text = log.read_text()
    assert process.returncode == 1, text  # it stopped by itself: never served
    assert "lacks the meta key(s) 'published'" in text and "Traceback" not in text, text
    written = [path for path in home.rglob("*") if path.is_file()]
    assert not any(path.read_bytes().count(b"hf_secret") for path in written)  # no copy of the file anywhere
