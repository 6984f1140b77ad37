"""Checks on images people upload, so a bad file gets a plain-language answer before any model work."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .limits import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, UPLOAD_SUFFIXES, not_a_photo_file

log = logging.getLogger(__name__)


def check_upload(path: str | os.PathLike | None) -> str:
    """The upload's path if it is a readable image of sane size; ValueError with a human message otherwise."""
    if path is None or not str(path).strip():
        raise ValueError("No image given: upload a photo to search with it.")
    name = Path(path).name
    if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
        raise not_a_photo_file(name)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise ValueError(f"The upload {name} could not be read: please upload it again.") from None
    if size == 0:
        raise ValueError(f"The upload {name} is empty (0 bytes): choose a photo file.")
    if size > MAX_UPLOAD_BYTES:
        raise ValueError(
            f"The upload {name} is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB. "
            "Please upload a smaller copy of the photo."
        )
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_UPLOAD_PIXELS:
                raise ValueError(
                    f"The upload {name} is {width}×{height} pixels ({width * height / 1e6:.0f} MP); the limit is "
                    f"{MAX_UPLOAD_PIXELS // 1_000_000} MP. Please upload a smaller copy of the photo."
                )
            image.verify()
    except ValueError:
        raise
    except Image.DecompressionBombError:
        raise ValueError(
            f"The upload {name} has too many pixels to decode safely: please upload a smaller copy."
        ) from None
    except UnidentifiedImageError:
        raise ValueError(f"The upload {name} is not an image this app can read (JPEG, PNG, WebP, HEIC, ...).") from None
    except (OSError, SyntaxError):
        raise ValueError(f"The upload {name} is damaged or truncated: please upload an intact photo.") from None
    return str(path)


class UploadGuard:
    """ASGI middleware: Gradio's upload route keeps only photo files (by name; their content is checked on use).

    Gradio stores whatever is posted to ``/gradio_api/upload`` in its cache; every upload this app takes is a
    photo, so a file of any other type is deleted as soon as Gradio has stored it and the request gets a 415 with
    the sentence ``check_upload`` gives.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not scope["path"].rstrip("/").endswith("/upload")
        ):
            return await self.app(scope, receive, send)
        held: list[dict] = []

        async def hold(message):
            held.append(message)

        await self.app(scope, receive, hold)  # background moves into the cache run before it returns
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        refused = []
        if start is not None and start["status"] == 200:
            try:
                stored = [str(path) for path in json.loads(body)]
            except (ValueError, TypeError):
                stored = []
            refused = [path for path in stored if Path(path).suffix.lower() not in UPLOAD_SUFFIXES]
            for path in stored if refused else ():  # all or nothing: the caller sends the whole request again
                Path(path).unlink(missing_ok=True)
        if not refused:
            for message in held:
                await send(message)
            return
        message = str(not_a_photo_file(Path(refused[0]).name)).encode()
        log.warning("refused an upload: %s", message.decode())
        await send(
            {
                "type": "http.response.start",
                "status": 415,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(message)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": message})
