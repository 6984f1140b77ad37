"""Small JPEG previews for the gallery, so a page of camera photos is kilobytes, not megabytes."""

from __future__ import annotations

import os
from pathlib import Path

from indexer.files import is_video_name
from indexer.reader import checked_content_hash
from mme5.errors import ImageError
from mme5.atomic import write_atomic
from mme5.images import PREVIEW_SIZE, preview_jpeg

from .private import cache_home, private_dir

DEFAULT_SIZE = PREVIEW_SIZE


def default_cache_dir() -> Path:
    """A private (0700) folder in the user's cache dir: previews show private photos, so never a shared temp path."""
    return cache_home() / "previews"


class ThumbnailCache:
    """One preview per (content hash, size); written atomically so a kill never leaves half a file."""

    def __init__(self, cache_dir: str | os.PathLike | None = None, size: int = DEFAULT_SIZE, published=None):
        self.dir = private_dir(cache_dir or default_cache_dir())
        self.size = size
        self.published = published  # content hash -> preview file of a published index (originals absent), or None

    def get(self, path: str | os.PathLike, content_hash: str, timestamp_s: float | None = None) -> Path:
        """Path of the preview of ``path`` (already checked by the caller), creating it if needed; for a video
        (``timestamp_s`` given) the frame at that second (a keyframe's content hash names it).

        Raises mme5.ImageError when the file is no longer a readable image, and ValueError for a content hash not
        in the shape the indexer writes (a stranger's catalog could hold any text, and the file is named by it).
        """
        if content_hash:
            key = checked_content_hash(content_hash)
        else:
            key = f"{os.fspath(path)}:{os.stat(path).st_mtime_ns}".encode().hex()[:64]
        target = self.dir / f"{key}-{self.size}.jpg"
        if target.parent != self.dir:  # defence in depth: a name is one file in this folder, never a path
            raise ValueError(f"{key!r}: not a preview name")
        if target.is_file():
            return target
        source = path
        if self.published is not None and content_hash and not os.path.isfile(path):
            source = self.published(content_hash) or path  # an index served from the Hub without its originals
        if timestamp_s is not None and os.path.isfile(source) and is_video_name(os.fspath(source)):
            from indexer.video import VideoError, frame_at

            try:
                source = frame_at(os.fspath(source), timestamp_s, 2 * self.size)
            except VideoError as error:
                raise ImageError(os.fspath(path), error.reason) from None
        write_atomic(target, preview_jpeg(source, self.size))
        return target
