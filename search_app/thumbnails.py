"""Small JPEG previews for the gallery, so a page of camera photos is kilobytes, not megabytes."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mme5.images import load_image

DEFAULT_SIZE = 384


def default_cache_dir() -> Path:
    """Under the system temp dir: Gradio serves files from there, and losing it costs only time."""
    return Path(tempfile.gettempdir()) / "mme5-search-thumbnails"


class ThumbnailCache:
    """One preview per (content hash, size); written atomically so a kill never leaves half a file."""

    def __init__(self, cache_dir: str | os.PathLike | None = None, size: int = DEFAULT_SIZE):
        self.dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.size = size
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, path: str | os.PathLike, content_hash: str) -> Path:
        """Path of the preview of ``path`` (already checked by the caller), creating it if needed.

        Raises ValueError (from mme5.images) when the file is no longer a readable image.
        """
        key = content_hash or f"{os.fspath(path)}:{os.stat(path).st_mtime_ns}".encode().hex()[:64]
        target = self.dir / f"{key[:64]}-{self.size}.jpg"
        if target.is_file():
            return target
        image = load_image(path, draft_size=self.size * 2)
        image.thumbnail((self.size, self.size))
        handle, partial = tempfile.mkstemp(dir=self.dir, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as file:
                image.save(file, "JPEG", quality=85)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        return target
