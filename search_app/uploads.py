"""Checks on images people upload, so a bad file gets a plain-language answer before any model work."""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .limits import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, UPLOAD_SUFFIXES


def check_upload(path: str | os.PathLike | None) -> str:
    """The upload's path if it is a readable image of sane size; ValueError with a human message otherwise."""
    if path is None or not str(path).strip():
        raise ValueError("No image given: upload a photo to search with it.")
    name = Path(path).name
    if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
        raise ValueError(f"The upload {name} is not a photo file: upload a {', '.join(s.lstrip('.') for s in UPLOAD_SUFFIXES)} "
                         "file.")
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
        raise ValueError(f"The upload {name} has too many pixels to decode safely: please upload a smaller copy.") from None
    except UnidentifiedImageError:
        raise ValueError(f"The upload {name} is not an image this app can read (JPEG, PNG, WebP, HEIC, ...).") from None
    except (OSError, SyntaxError):
        raise ValueError(f"The upload {name} is damaged or truncated: please upload an intact photo.") from None
    return str(path)
