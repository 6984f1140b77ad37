"""Camera RAW files via rawpy (LibRaw): the embedded JPEG preview when there is one (fast), a demosaic otherwise.

The model sees a few hundred pixels, so a camera's own preview (usually full-size or 1-2 MP, already
colour-rendered) is both faster and truer to what the photographer saw than our demosaic.
"""

from __future__ import annotations

import io
import os

from PIL import Image

from .errors import ImageError

RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw"})
MIN_PREVIEW_SIDE = 200  # a smaller embedded thumbnail (160x120 in some IFD0s) is too coarse: demosaic instead


def is_raw(path: str | os.PathLike) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in RAW_EXTENSIONS


def load_raw(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    """The photo in a RAW file as a PIL image (not yet RGB-normalised); ImageError for a bad or unsupported file."""
    try:
        import rawpy
    except ImportError:  # pragma: no cover - rawpy is in requirements.txt
        raise ImageError(path, "camera RAW file, but rawpy is not installed (pip install rawpy)") from None
    try:
        with rawpy.imread(os.fspath(path)) as raw:
            preview = _preview(raw, rawpy)
            if preview is not None:
                return preview
            half = bool(draft_size and min(raw.sizes.width, raw.sizes.height) >= 4 * draft_size)
            pixels = raw.postprocess(use_camera_wb=True, half_size=half, no_auto_bright=False, output_bps=8)
            return Image.fromarray(pixels, "RGB")
    except ImageError:
        raise
    except rawpy.LibRawFileUnsupportedError as error:
        raise ImageError(path, f"not a RAW file LibRaw can read ({error})") from error
    except (rawpy.LibRawError, OSError, ValueError) as error:
        raise ImageError(path, f"damaged or truncated RAW file ({error})") from error


def raw_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of the developed image, from the header; (0, 0) when unreadable."""
    try:
        import rawpy

        with rawpy.imread(os.fspath(path)) as raw:
            sizes = raw.sizes
            width, height = sizes.width, sizes.height
            return (height, width) if sizes.flip in (5, 6) else (width, height)
    except Exception:  # noqa: BLE001 - a bad file is reported later, by load_raw
        return (0, 0)


def _preview(raw, rawpy) -> Image.Image | None:
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    except rawpy.LibRawError:
        return None  # a broken preview: the RAW data may still be fine
    image: Image.Image
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            image = Image.open(io.BytesIO(thumb.data))
            image.load()
        else:
            image = Image.fromarray(thumb.data)
    except Exception:  # noqa: BLE001 - a broken preview: fall back to the RAW data
        return None
    return image if min(image.size) >= MIN_PREVIEW_SIDE else None


PAIR_EXTENSIONS = frozenset({".jpg", ".jpeg", ".heic", ".heif"})  # what a camera writes next to its RAW


def shot_key(path: str | os.PathLike) -> tuple[str, str, bool] | None:
    """(folder, lower-case stem, is RAW) for a file that can be half of a RAW+JPEG pair; None otherwise.

    A camera set to RAW+JPEG writes IMG_0042.CR3 and IMG_0042.JPG side by side: one shot, shown once.
    """
    folder, name = os.path.split(os.fspath(path))
    stem, extension = os.path.splitext(name)
    extension = extension.lower()
    if extension in RAW_EXTENSIONS:
        return folder, stem.lower(), True
    if extension in PAIR_EXTENSIONS:
        return folder, stem.lower(), False
    return None


def count_raw(paths) -> dict:
    """{"files": RAW files, "pairs": RAW+JPEG pairs} among ``paths``."""
    kinds: dict[tuple[str, str], set[bool]] = {}
    files = 0
    for path in paths:
        key = shot_key(path)
        if key is None:
            continue
        files += key[2]
        kinds.setdefault(key[:2], set()).add(key[2])
    return {"files": files, "pairs": sum(len(found) == 2 for found in kinds.values())}
