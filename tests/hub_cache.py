"""Write a model folder into a Hugging Face cache the way `hf download` / from_pretrained lay it out (offline)."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".model", ".bin")  # stored with Git LFS on the Hub: blob named by sha256


def fill_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str = "0" * 40) -> Path:
    """models--org--name/{blobs,snapshots/<commit>,refs/main}; snapshot files are relative symlinks to blobs."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name.endswith(LFS_SUFFIXES):
            blob = hashlib.sha256(data).hexdigest()
        else:  # git blob id, as the Hub's etag for small files
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def note_local_download(folder: Path, commit: str = "0" * 40) -> None:
    """The per-file notes `hf download --local-dir` leaves in .cache/huggingface/download/ (commit, etag, time)."""
    notes = Path(folder) / ".cache" / "huggingface" / "download"
    notes.mkdir(parents=True, exist_ok=True)
    for path in Path(folder).iterdir():
        if path.is_file() and path.name.endswith(LFS_SUFFIXES):
            etag = hashlib.sha256(path.read_bytes()).hexdigest()
            (notes / f"{path.name}.metadata").write_text(f"{commit}\n{etag}\n{time.time() + 1}\n")
