"""What a model *is*, so an index can tell vector spaces apart: content digests, never the path typed.

The same weights reached as ``./models/x``, ``/abs/models/x``, a moved copy of that folder, the hub id
``org/name`` (from the Hugging Face cache) or an ``hf download --local-dir`` copy all get one digest;
different weights, config or adapter get another.

Cheap on every start, even for a 21 GB checkpoint:
  - a file in the hub cache is a symlink to ``blobs/<sha256>``: the name is the digest (nothing read);
  - an ``hf download --local-dir`` copy keeps each file's sha256 (its LFS etag) in
    ``.cache/huggingface/download/<file>.metadata``, trusted while the file is not newer than that note;
  - any other file is hashed once, with a progress bar; the digest is cached in the user cache folder,
    keyed by the file's real path, size and mtime_ns, so later starts only ``stat`` it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

IDENTITY_VERSION = 2  # fingerprints before this named the model by path (see indexer.space)
_SHA256 = re.compile(r"[0-9a-f]{64}")
CACHE_MIN_BYTES = 32 * 1024**2  # smaller files are re-hashed (milliseconds) rather than cached
PROGRESS_MIN_BYTES = 256 * 1024**2
# Keys that say where or by what a file was written, not what the model computes.
_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "base_model_name_or_path"}


def locate_model(model: str, revision: str | None = None) -> Path | None:
    """The folder holding ``model``'s files: a local folder, or the hub cache snapshot of a hub id."""
    from .model_ref import ModelRef, ModelRefError

    try:
        ref = ModelRef.parse(model)
    except ModelRefError:  # an in-memory model's name
        return None
    if ref.is_local:
        return ref.path if ref.path.is_dir() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(ref.canonical, "config.json", revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def weight_files(folder: Path) -> list[str]:
    """The weight files from_pretrained reads, in transformers' order of preference (sharded via the index)."""
    for index_name, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
        (None, "adapter_model.safetensors"),
        (None, "adapter_model.bin"),
    ):
        if index_name and (folder / index_name).is_file():
            weight_map = json.loads((folder / index_name).read_text())["weight_map"]
            return sorted(set(weight_map.values()))
        if (folder / single).is_file():
            return [single]
    return []


def folder_digest(folder: Path, config_name: str = "config.json") -> str:
    """sha256 over the folder's config (as data, minus path/version notes) and its weight files' sha256."""
    folder = Path(folder)
    lines = []
    config = folder / config_name
    if config.is_file():
        lines.append(f"{config_name} {_config_digest(config)}")
    weights = weight_files(folder)
    if not weights and not lines:
        raise FileNotFoundError(f"{folder}: neither {config_name} nor weight files found to identify the model by")
    for name in weights:
        lines.append(f"{name} {file_sha256(folder / name)}")
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def model_digest(model: str, revision: str | None = None) -> str:
    """``sha256:...`` of the model's config and weights when its files can be found, else ``name:<model>``
    (an in-memory model, e.g. the benchmarks' random full-size architecture)."""
    folder = locate_model(str(model), revision)
    if folder is None:
        return f"name:{model}"
    return folder_digest(folder)


def adapter_digest(adapter: str | os.PathLike | None) -> str | None:
    if not adapter:
        return None
    folder = Path(adapter).expanduser()
    if not folder.is_dir():
        return f"name:{adapter}"
    return folder_digest(folder.resolve(), config_name="adapter_config.json")


def fingerprint(identity: dict) -> str:
    """The identity as one comparable string (stored in an index's meta as ``fingerprint``)."""
    parts = [f"v{IDENTITY_VERSION}"] + [
        f"{key}={'-' if identity[key] is None else identity[key]}" for key in sorted(identity)
    ]
    return "|".join(parts)


def is_content_fingerprint(value: object) -> bool:
    """Whether a stored fingerprint (any JSON value from an index's meta) is a content one of this version."""
    return str(value).startswith(f"v{IDENTITY_VERSION}|")


# -- file digests ----------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    """A file's sha256 (hex), from the hub's own records where they exist, else hashed once and cached."""
    path = Path(path)
    real = path.resolve()
    if real.parent.name == "blobs" and _SHA256.fullmatch(real.name):
        return real.name  # hub cache: blobs are named by their LFS sha256
    stat = real.stat()
    noted = _local_dir_etag(path, stat.st_mtime)
    if noted:
        return noted
    if stat.st_size < CACHE_MIN_BYTES:
        return _hash(real, stat.st_size)
    from .settings import user_cache_dir

    entry = user_cache_dir() / "digests" / (hashlib.sha256(str(real).encode()).hexdigest()[:32] + ".json")
    key = {"path": str(real), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        cached = json.loads(entry.read_text())
        if {name: cached.get(name) for name in key} == key and _SHA256.fullmatch(str(cached.get("sha256"))):
            return cached["sha256"]
    except (OSError, ValueError):
        pass
    digest = _hash(real, stat.st_size)
    try:
        from .atomic import write_atomic

        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(entry, json.dumps({**key, "sha256": digest}).encode())
    except OSError as error:  # a read-only home only costs a re-hash next time
        logger.warning(
            f"mme5: could not cache the digest of {real} in {entry.parent} ({error}); it will be computed "
            "again next start (set MME5_CACHE_DIR to a writable folder)"
        )
    return digest


def _local_dir_etag(path: Path, mtime: float) -> str | None:
    """The sha256 `hf download --local-dir` noted for this file, if the file has not changed since."""
    note = path.parent / ".cache" / "huggingface" / "download" / f"{path.name}.metadata"
    try:
        _commit, etag, timestamp = note.read_text().splitlines()[:3]
        if _SHA256.fullmatch(etag.strip()) and mtime - 1 <= float(timestamp):  # huggingface_hub's own rule
            return etag.strip()
    except (OSError, ValueError):
        pass
    return None


def _hash(path: Path, size: int) -> str:
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    with (
        open(path, "rb") as file,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            file=sys.stderr,
            desc=f"mme5: identifying {path.name} (once)",
            disable=size < PROGRESS_MIN_BYTES,
        ) as progress,
    ):
        while chunk := file.read(8 * 1024**2):
            digest.update(chunk)
            progress.update(len(chunk))
    return digest.hexdigest()


def _config_digest(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
