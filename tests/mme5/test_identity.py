"""Model identity by content: same weights anywhere → one digest; cheap on every start (no re-hash)."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from mme5 import identity


def note_local_download(folder: Path, commit: str = "0" * 40) -> None:
    """The per-file notes `hf download --local-dir` leaves in .cache/huggingface/download/ (commit, etag, time)."""
    notes = folder / ".cache" / "huggingface" / "download"
    notes.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.safetensors"):
        etag = hashlib.sha256(path.read_bytes()).hexdigest()
        (notes / f"{path.name}.metadata").write_text(f"{commit}\n{etag}\n{time.time() + 1}\n")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MME5_CACHE_DIR", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache"


def test_a_big_file_is_hashed_once_then_known_by_path_size_and_mtime(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(identity, "CACHE_MIN_BYTES", 0)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    first = identity.file_sha256(weights)
    assert first == hashlib.sha256(b"a" * 1000).hexdigest()
    assert len(list((cache_dir / "digests").iterdir())) == 1
    stat = weights.stat()
    weights.write_bytes(b"b" * 1000)  # same size; put the old mtime back: only a re-hash could notice
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert identity.file_sha256(weights) == first  # answered from the cache: the file was not read
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert identity.file_sha256(weights) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_hub_blobs_and_local_download_notes_give_the_digest_without_reading(tmp_path, cache_dir):
    blob = tmp_path / "blobs" / ("f" * 64)
    blob.parent.mkdir()
    blob.write_bytes(b"content whose sha256 is not ffff...")
    link = tmp_path / "model.safetensors"
    link.symlink_to(blob)
    assert identity.file_sha256(link) == "f" * 64  # the hub names LFS blobs by their sha256

    local = tmp_path / "download"
    local.mkdir()
    (local / "model.safetensors").write_bytes(b"weights")
    note_local_download(local)
    noted = (local / ".cache/huggingface/download/model.safetensors.metadata").read_text().splitlines()[1]
    note = local / ".cache/huggingface/download/model.safetensors.metadata"
    note.write_text(note.read_text().replace(noted, "e" * 64))
    assert identity.file_sha256(local / "model.safetensors") == "e" * 64  # the note is trusted, nothing hashed
    later = note.stat().st_mtime + 60
    os.utime(local / "model.safetensors", (later, later))  # edited after the download: the note is stale
    assert identity.file_sha256(local / "model.safetensors") == hashlib.sha256(b"weights").hexdigest()


def test_same_model_same_digest_wherever_it_lives_and_any_change_shows(
    replica_dirs, tmp_path, cache_dir, monkeypatch, fill_hub_cache
):
    source = replica_dirs["siglip-multilingual"]
    digest = identity.model_digest(str(source))
    assert digest.startswith("sha256:")
    moved = tmp_path / "moved"
    shutil.copytree(source, moved)
    monkeypatch.chdir(tmp_path)
    assert identity.model_digest("moved") == identity.model_digest("./moved/") == digest

    hub = tmp_path / "hub"
    fill_hub_cache(hub, "google/siglip-base-patch16-256-multilingual", source)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    assert identity.model_digest("google/siglip-base-patch16-256-multilingual") == digest
    assert identity.model_digest("google/not-downloaded") == "name:google/not-downloaded"

    sharded = replica_dirs["mllama"]
    assert identity.model_digest(str(sharded)) not in (digest, None)
    config = moved / "config.json"
    config.write_text(config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3', 1))
    assert identity.model_digest("moved") != digest
