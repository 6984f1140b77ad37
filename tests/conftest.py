"""Shared fixtures: tiny random-weight models, built offline once per test session."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch a hub
# ONNX exports of the tiny models go to a per-run cache, never the user's (subprocesses inherit it).
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

os.environ["MME5_CACHE_DIR"] = tempfile.mkdtemp(prefix="mme5-test-cache-")
atexit.register(shutil.rmtree, os.environ["MME5_CACHE_DIR"], True)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from mme5.cli import show_messages  # noqa: E402

show_messages()  # the library's log lines reach stderr as in every command, so tests see what users see


@pytest.fixture(scope="session")
def tiny_mllama_dir(tmp_path_factory):
    from mme5.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-mllama", backbone="mllama")


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory):
    from mme5.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-siglip", backbone="siglip")


@pytest.fixture(scope="session")
def tiny_mllama(tiny_mllama_dir):
    from mme5 import load_embedder

    return load_embedder(str(tiny_mllama_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_siglip(tiny_siglip_dir):
    from mme5 import load_embedder

    return load_embedder(str(tiny_siglip_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_siglip_torch(tiny_siglip_dir):
    """The tiny SigLIP on the torch runtime (``tiny_siglip`` uses ONNX Runtime on the CPU when installed)."""
    from mme5 import load_embedder

    return load_embedder(str(tiny_siglip_dir), device="cpu", runtime="torch")


@pytest.fixture(scope="session")
def replica_dirs(tmp_path_factory):
    """Tiny copies of the published checkpoints' folders (mme5/replica.py), named like the hub repos."""
    from mme5.replica import REPLICAS, build_replica, folder_name

    root = tmp_path_factory.mktemp("replicas")
    return {kind: build_replica(root / folder_name(kind), kind) for kind in REPLICAS}


LFS_SUFFIXES = (".safetensors", ".model", ".bin", ".jpg", ".sqlite", ".faiss")  # Git LFS on the Hub: blob by sha256


def _fill_hub_cache(cache, repo_id: str, folder, commit: str = "0" * 40, repo_type: str = "model"):
    """{models,datasets}--org--name/{blobs,snapshots/<commit>,refs/main} as from_pretrained / snapshot_download
    / `hf download` leave it (offline): snapshot files, in sub-folders too, are relative symlinks to blobs named
    by sha256 (LFS) or git blob id."""
    import hashlib
    from pathlib import Path

    repo = Path(cache) / (f"{repo_type}s--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name.endswith(LFS_SUFFIXES):
            blob = hashlib.sha256(data).hexdigest()
        else:
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        relative = path.relative_to(folder)
        (snapshot / relative).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / relative).symlink_to(Path(*[".."] * (len(relative.parts) + 1), "blobs", blob))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def fill_hub_cache():
    """Writes a folder into a Hugging Face cache folder: fill_hub_cache(cache, repo_id, folder[, commit, repo_type])."""
    return _fill_hub_cache
