"""Small JPEG previews for the gallery, so a page of camera photos is kilobytes, not megabytes."""
from __future__ import annotations

import io
import os
from pathlib import Path

from mme5.atomic import write_atomic
from mme5.images import load_image

from .private import cache_home, private_dir

DEFAULT_SIZE = 384


def default_cache_dir() -> Path:
    """A private (0700) folder in the user's cache dir: previews show private photos, so never a shared temp path."""
    return cache_home() / "previews"


class ThumbnailCache:
    """One preview per (content hash, size); written atomically so a kill never leaves half a file."""

    def __init__(self, cache_dir: str | os.PathLike | None = None, size: int = DEFAULT_SIZE):
        self.dir = private_dir(cache_dir or default_cache_dir())
        self.size = size

    def get(self, path: str | os.PathLike, content_hash: str) -> Path:
        """Path of the preview of ``path`` (already checked by the caller), creating it if needed.

        Raises mme5.ImageError when the file is no longer a readable image.
        """
        key = content_hash or f"{os.fspath(path)}:{os.stat(path).st_mtime_ns}".encode().hex()[:64]
        target = self.dir / f"{key[:64]}-{self.size}.jpg"
        if target.is_file():
            return target
        image = load_image(path, draft_size=self.size * 2)
        image.thumbnail((self.size, self.size))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        write_atomic(target, buffer.getbuffer())
        return target
