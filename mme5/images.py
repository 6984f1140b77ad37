"""Turning user files into RGB images the way the reference preprocessing expects."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .allocator import bound_heap_growth
from .errors import ImageError
from .raw import is_raw, load_raw, raw_size

try:  # HEIC/HEIF from phones; optional so a minimal install still works
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - exercised only without pillow-heif
    pass


def describe(item) -> str:
    """A short name for an input, used in error messages."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, Image.Image):
        name = getattr(item, "filename", "") or ""
        return name or f"<PIL image {item.width}x{item.height} {item.mode}>"
    return f"<{type(item).__name__}>"


def to_rgb(image: Image.Image) -> Image.Image:
    """EXIF-transpose, flatten to RGB, and stretch 1-pixel-high images to 2 rows.

    The Mllama processor fails on height-1 images; the reference resizes them to
    height 2, and we do the same for every backbone so vectors do not depend on it.
    """
    image = ImageOps.exif_transpose(image)
    if getattr(image, "is_animated", False):
        image.seek(0)
    if image.mode in ("P", "PA") or (image.mode == "LA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value * (1 / 256)).convert("L")
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    if height == 1 or width == 1:
        image = image.resize((max(width, 2), max(height, 2)))
    return image


def load_image(item, draft_size: int | None = None) -> Image.Image:
    """Open a path or accept a PIL image and return an RGB image.

    Raises ImageError (a ValueError) naming the input for every way a file can be bad, so
    callers can report it and carry on.  ``draft_size`` lets JPEG decoding skip detail the
    model will throw away (DCT scaling), a large saving for camera photos.
    """
    bound_heap_growth()  # a decoded image's memory goes back to the system when freed, in any thread
    if isinstance(item, Image.Image):
        try:
            return to_rgb(item)
        except Exception as error:  # noqa: BLE001 - PIL raises many types for bad data
            raise ImageError(describe(item), f"cannot convert image to RGB ({error})") from error
    if not isinstance(item, (str, os.PathLike)):
        raise ImageError(describe(item), "expected a file path or a PIL image")
    path = Path(item)
    if not path.exists():
        raise ImageError(path, "file not found")
    if path.is_dir():
        raise ImageError(path, "is a folder, not an image file")
    try:
        if path.stat().st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        if is_raw(path):
            return to_rgb(load_raw(path, draft_size))
        with Image.open(path) as opened:
            if draft_size and opened.format == "JPEG":
                opened.draft("RGB", (draft_size, draft_size))
            opened.load()
            return to_rgb(opened)
    except ImageError:
        raise
    except PermissionError as error:
        raise ImageError(path, "permission denied; check the file's read permissions") from error
    except UnidentifiedImageError as error:
        raise ImageError(path, "not an image file Pillow can read") from error
    except Image.DecompressionBombError as error:
        raise ImageError(path, f"image too large (decompression bomb guard: {error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(path, f"damaged or truncated image ({error})") from error


def image_size(item) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading only the header of a file."""
    if isinstance(item, Image.Image):
        image = item
        orientation = image.getexif().get(0x0112, 1) if hasattr(image, "getexif") else 1
        width, height = image.size
    elif is_raw(item):
        return raw_size(item)
    else:
        try:
            with Image.open(item) as image:
                orientation = image.getexif().get(0x0112, 1)
                width, height = image.size
        except Exception:  # noqa: BLE001 - a bad file is reported later, by load_image
            return (0, 0)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return width, height


PREVIEW_SIZE = 384  # longest side of gallery previews (the app's cache and the previews `indexer push` publishes)


def preview_jpeg(item, size: int = PREVIEW_SIZE, quality: int = 85) -> bytes:
    """A small JPEG of an image (longest side ``size``), the one preview recipe of the app and of published indexes.

    Raises ImageError like ``load_image``."""
    import io

    image = load_image(item, draft_size=size * 2)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
