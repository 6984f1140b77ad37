"""Fixtures for indexer tests: realistic photo files (good and bad) and a CLI runner."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


class Photos:
    """Writes image files of every kind a phone/camera folder contains."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seed = 0

    def path(self, name) -> Path:
        path = self.folder / name if isinstance(name, str) else Path(os.fsdecode(os.path.join(os.fsencode(self.folder), name)))
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def pixels(self, width=96, height=72, seed=None) -> np.ndarray:
        """A smooth random picture (compresses like a photo, differs per seed)."""
        self.seed += 1
        rng = np.random.default_rng(self.seed if seed is None else seed)
        small = rng.integers(0, 256, (max(height // 8, 2), max(width // 8, 2), 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))

    def jpeg(self, name, width=96, height=72, seed=None, exif=None, mode="RGB") -> Path:
        image = Image.fromarray(self.pixels(width, height, seed))
        if mode != "RGB":
            image = image.convert(mode)
        path = self.path(name)
        image.save(path, "JPEG", quality=90, **({"exif": exif} if exif is not None else {}))
        return path

    def png(self, name, image: Image.Image | None = None, **kwargs) -> Path:
        path = self.path(name)
        (image or Image.fromarray(self.pixels())).save(path, "PNG", **kwargs)
        return path

    def raw(self, name, data: bytes) -> Path:
        path = self.path(name)
        path.write_bytes(data)
        return path

    def truncated(self, name, source: Path) -> Path:
        data = source.read_bytes()
        return self.raw(name, data[: len(data) // 2])

    def bomb_png(self, name, side=40000) -> Path:
        """A tiny file whose header claims side x side pixels (Pillow's bomb guard must trip)."""
        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
        data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
        return self.raw(name, data)

    def exif(self, orientation=None, taken="2021:07:14 18:30:05", make="Canon", model="Canon EOS 5D"):
        exif = Image.Exif()
        if orientation:
            exif[0x0112] = orientation
        exif[0x010F], exif[0x0110] = make, model
        exif.get_ifd(0x8769)[0x9003] = taken
        return exif


@pytest.fixture
def photos(tmp_path) -> Photos:
    return Photos(tmp_path / "photos")


@pytest.fixture
def make_photos(tmp_path):
    return lambda name: Photos(tmp_path / name)


def run_cli(*args, timeout=300, env=None, **kwargs) -> subprocess.CompletedProcess:
    """``python -m indexer ARGS`` in a real subprocess, as a user would run it."""
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "indexer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=environment, cwd=kwargs.pop("cwd", REPO), **kwargs)


@pytest.fixture
def cli():
    return run_cli
