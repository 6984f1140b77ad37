"""Fixtures for indexer tests: realistic photo files (good and bad) and a CLI runner."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from contextlib import contextmanager
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
        path = (
            self.folder / name
            if isinstance(name, str)
            else Path(os.fsdecode(os.path.join(os.fsencode(self.folder), name)))
        )
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
        data = (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b"")
        )
        return self.raw(name, data)

    def exif(self, orientation=None, taken="2021:07:14 18:30:05", make="Canon", model="Canon EOS 5D", position=None):
        """EXIF tags; ``position``: (latitude, longitude) in degrees, written as EXIF GPS."""
        exif = Image.Exif()
        if orientation:
            exif[0x0112] = orientation
        exif[0x010F], exif[0x0110] = make, model
        exif.get_ifd(0x8769)[0x9003] = taken
        if position:
            gps = exif.get_ifd(0x8825)
            for (ref, tag, value), signs in zip(((1, 2, position[0]), (3, 4, position[1])), ("NS", "EW")):
                gps[ref] = signs[value < 0]
                degrees = abs(value)
                gps[tag] = (int(degrees), int(degrees * 60 % 60), round(degrees * 3600 % 60, 2))
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
    return subprocess.run(
        [sys.executable, "-m", "indexer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=kwargs.pop("cwd", REPO),
        **kwargs,
    )


@pytest.fixture
def cli():
    return run_cli


FAKE_MSVCRT = Path(__file__).with_name("fake_msvcrt.py")
_HOLDER = """
import importlib.util, sys
index_dir, os_name, fake = sys.argv[1:4]
if os_name == "nt":  # the Windows branch, on a stand-in msvcrt
    spec = importlib.util.spec_from_file_location("msvcrt", fake)
    sys.modules["msvcrt"] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
from indexer import lock
lock._os_lock = lock._platform_lock(os_name)
with lock.WriteLock(index_dir, "build"):
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def process_holding_write_lock(index_dir, os_name: str = os.name):
    """Another process holding the index's write lock through indexer.lock, as a running build does; it lets go
    when the block ends (or when the test kills it). ``os_name`` "nt": the Windows branch (see fake_msvcrt.py)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(index_dir), os_name, str(FAKE_MSVCRT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        process.communicate("", timeout=60)  # closing its stdin ends it
