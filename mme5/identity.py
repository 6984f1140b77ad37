"""What a model folder *is*, by content: a digest that survives moves, copies and path spellings.

Used to key caches derived from a model (the ONNX export). Cheap on purpose: config files
are hashed whole, weight files by name, size and three 1 MiB samples (start, middle, end),
so a 21 GB checkpoint costs a few reads, not a full hash.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

CONFIG_FILES = ("config.json", "adapter_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SAMPLE = 1 << 20


def local_folder(source: str | os.PathLike, revision: str | None = None) -> Path | None:
    """The folder holding a model: ``source`` itself, or a hub id's snapshot in the local cache (None if absent)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(source), revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not a hub id, or not downloaded
        return None


def model_content_digest(source: str | os.PathLike, revision: str | None = None) -> str:
    """Hex digest of a model or adapter folder's content (see the module docstring)."""
    folder = local_folder(source, revision)
    if folder is None:
        raise FileNotFoundError(f"{source}: no local copy of this model to identify")
    digest = hashlib.sha256()
    for name in CONFIG_FILES:
        if (folder / name).is_file():
            digest.update(f"{name}\0".encode())
            digest.update((folder / name).read_bytes())
    weights = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix in WEIGHT_SUFFIXES)
    if not weights:
        raise FileNotFoundError(f"{folder}: no weight files ({', '.join(WEIGHT_SUFFIXES)}) to identify")
    for path in weights:
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as handle:
            for offset in sorted({0, max(0, size // 2 - SAMPLE // 2), max(0, size - SAMPLE)}):
                handle.seek(offset)
                digest.update(handle.read(SAMPLE))
    return digest.hexdigest()
