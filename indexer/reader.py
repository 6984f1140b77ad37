"""Reading one image (or video: indexer/video.py) file in a worker thread: content hash, metadata (EXIF), decoded pixels."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime

from PIL import Image

from mme5.allocator import bound_heap_growth
from mme5.errors import ImageError
from mme5.images import load_image

from .files import FileEntry, is_video_name

HASH_CHUNK = 1 << 20
DEFAULT_DECODE_BUDGET = 100_000_000  # pixels decoded at once across all reader threads (~0.4 GB as RGB)
EXIF_ORIENTATION, EXIF_DATETIME, EXIF_MAKE, EXIF_MODEL = 0x0112, 0x0132, 0x010F, 0x0110
EXIF_IFD, EXIF_DATETIME_ORIGINAL, EXIF_GPS_IFD = 0x8769, 0x9003, 0x8825


@dataclass
class ReadResult:
    """Everything the catalog stores about one file; ``image`` only when it must be embedded."""

    entry: FileEntry
    size: int = 0
    mtime_ns: int = 0
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    camera: str | None = None
    latitude: float | None = None  # from EXIF GPS, degrees (north/east positive)
    longitude: float | None = None
    image: Image.Image | None = field(default=None, repr=False)
    media_type: str = "photo"  # or "video" (indexer/video.py): ``image`` is then its first keyframe
    duration_s: float | None = None  # videos: length in seconds
    rotation: int | None = None  # videos: display rotation, degrees counter-clockwise
    timestamp_s: float | None = None  # videos: the second ``image`` shows
    keyframes: list = field(default_factory=list, repr=False)  # videos: [(timestamp_s, image)], the first is
    # image; an engine empties it (and image) once the pixels go to the model: indexer/engines.py
    motion: str | None = None  # photos that move: "live" (its clip checked) or "motion_photo" (an MP4 appended)
    motion_problem: str | None = None  # why a Live Photo's clip or a motion photo's video was not taken (a warning)
    error: str | None = None
    retry: bool = False  # the error is about access, not content: try again next run even if unchanged
    vanished: bool = False  # gone before we could read it
    changed: bool = False  # modified while we were reading it


class DecodeBudget:
    """Caps the pixels being decoded at once across reader threads, so memory stays bounded.

    A PNG or TIFF is decoded whole (Pillow cannot decode them reduced; JPEGs are decoded at
    reduced scale, so they cost little): eight 100-megapixel PNGs in eight threads would need
    several GB at once. Each decode holds its pixel count until the image is shrunk to what
    the model needs; one image larger than the whole budget waits until it can run alone, so
    every file that passes Pillow's bomb guard is still indexed and a build always finishes.
    ``peak`` is the most pixels ever in flight (reported in the build summary).

    Pixels counted here only bound memory if freed pixels go back to the system: creating a budget
    sets the C allocator up for that (mme5/allocator.py), before the reader threads start.
    """

    def __init__(self, pixels: int = DEFAULT_DECODE_BUDGET):
        if pixels < 1:
            raise ValueError(f"decode budget must be at least 1 pixel, got {pixels}")
        bound_heap_growth()
        self.limit = int(pixels)
        self.in_use = 0
        self.peak = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int):
        with self._changed:
            while not self.try_take(pixels):
                self._changed.wait()
        try:
            yield
        finally:
            with self._changed:
                self.give_back(pixels)
                self._changed.notify_all()

    def try_take(self, pixels: int) -> bool:
        """Take ``pixels`` if they fit (or nothing else is decoding); the caller serialises calls.
        ``hold`` waits on it in threads; the Ray engine's shared budget polls it (indexer/ray_engine.py)."""
        if self.in_use and self.in_use + pixels > self.limit:
            return False
        self.in_use += pixels
        self.peak = max(self.peak, self.in_use)
        return True

    def give_back(self, pixels: int) -> None:
        self.in_use -= pixels


def read_file(entry: FileEntry, draft_size: int, known_hashes, budget: DecodeBudget | None = None) -> ReadResult:
    """Hash the file, read its metadata and, unless its content is already embedded, decode it
    (within ``budget``'s memory).

    Never raises for a bad file: the reason lands in ``error``.
    """
    result = ReadResult(entry)
    if entry.problem:
        result.size, result.mtime_ns, result.error = entry.size, entry.mtime_ns, entry.problem
        return result
    path = entry.path
    try:
        before = os.stat(path)
    except FileNotFoundError:
        result.vanished = True
        return result
    except OSError as error:
        result.size, result.mtime_ns, result.error, result.retry = entry.size, entry.mtime_ns, _os_reason(error), True
        return result
    result.size, result.mtime_ns = before.st_size, before.st_mtime_ns
    if before.st_size == 0:
        result.error = "empty file (0 bytes)"
        return result
    try:
        result.content_hash = hash_file(path)
    except FileNotFoundError:
        result.vanished = True
        return result
    except OSError as error:
        result.error, result.retry = _os_reason(error), True
        return result
    try:
        if is_video_name(path):  # keyframes are decoded even for known content: their timestamps make the rows
            _read_video(result, path, draft_size, budget)
            pixels = None
        else:
            pixels = _read_metadata(path, result, draft_size)
        if pixels is not None and result.content_hash not in known_hashes:
            with budget.hold(pixels) if budget is not None else contextlib.nullcontext():
                result.image = _shrink(load_image(path, draft_size=draft_size), draft_size)
    except ImageError as error:
        result.error = error.reason
        result.image = None
        from .video import sniff_video

        if kind := sniff_video(path):  # a video named like a photo
            result.error += f"; it is a video ({kind}): give it a video file extension (.mp4, .mkv) to index it"
    except Exception as error:  # noqa: BLE001 - a decoder bug on one file must not stop the build
        result.error = f"cannot decode image ({type(error).__name__}: {error})"
        result.image = None
    if entry.clip is not None:
        _live_clip(result, entry.clip)
    try:
        after = os.stat(path)
    except FileNotFoundError:
        result.vanished = True
        return result
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        result.changed = True
    return result


CONTENT_HASH = re.compile(r"[0-9a-f]{32}")  # what hash_file writes: the only shape a content hash may have


def checked_content_hash(value) -> str:
    """``value`` if it has the shape ``hash_file`` writes (32 lowercase hex digits), else ValueError: the one gate
    for file names made from a content hash (previews, original copies), whose catalog may be a stranger's."""
    if not isinstance(value, str) or not CONTENT_HASH.fullmatch(value):
        raise ValueError(f"{str(value)[:80]!r} is not a content hash (32 hex digits): no file is named after it")
    return value


def hash_file(path: str) -> str:
    """First 128 bits of SHA-256 (hardware-accelerated on current CPUs: about twice BLAKE2b's speed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:32]


def _read_video(result: ReadResult, path: str, draft_size: int, budget: DecodeBudget | None) -> None:
    """A video's facts and keyframes (indexer/video.py) into ``result``, or the reason it cannot be read."""
    from .video import MAX_KEYFRAME_SIDE, VideoError, displayed_size, read_video

    result.media_type = "video"
    try:
        facts, keyframes = read_video(path, min(draft_size or MAX_KEYFRAME_SIDE, MAX_KEYFRAME_SIDE), budget=budget)
    except VideoError as error:
        result.error = error.reason
        return
    result.width, result.height = displayed_size(facts)
    result.duration_s, result.rotation = facts.duration_s, facts.rotation
    result.taken_at, result.camera = facts.taken_at, camera_name(facts.make, facts.model)
    result.latitude, result.longitude = facts.latitude, facts.longitude
    result.keyframes = [(keyframe.timestamp_s, keyframe.image) for keyframe in keyframes]
    result.timestamp_s, result.image = result.keyframes[0]


def _live_clip(result: ReadResult, clip: FileEntry) -> None:
    """A Live Photo still's clip: checked to be a video (its header only), or the reason it is not."""
    from .video import VideoError, probe_video

    name = os.path.basename(clip.relpath)
    if result.error:
        result.error += f"; its Live Photo clip {name} is not indexed either"
        return
    try:
        probe_video(clip.path)
    except VideoError as error:
        result.motion_problem = f"Live Photo clip {name}: {error.reason}; the photo is indexed without it"
        return
    result.motion = "live"


def _read_metadata(path: str, result: ReadResult, draft_size: int = 0) -> int:
    """Displayed size (after EXIF rotation), capture time and camera, from the header only.

    Returns the pixels a decode will hold (JPEGs: at the reduced draft scale load_image uses).
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            exif = image.getexif()
            xmp = image.info.get("xmp") if image.format == "JPEG" else None
            decoded = width * height
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
                decoded = image.size[0] * image.size[1]
    except Exception:  # noqa: BLE001 - load_image reports the real reason
        return 0
    if exif.get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
        width, height = height, width
    result.width, result.height = width, height
    try:
        original = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL)
    except Exception:  # noqa: BLE001 - malformed EXIF sub-IFD
        original = None
    result.taken_at = parse_exif_datetime(original or exif.get(EXIF_DATETIME))
    result.camera = camera_name(exif.get(EXIF_MAKE), exif.get(EXIF_MODEL))
    try:
        result.latitude, result.longitude = gps_position(exif.get_ifd(EXIF_GPS_IFD))
    except Exception:  # noqa: BLE001 - malformed GPS IFD: no position, the photo still indexes
        result.latitude = result.longitude = None
    if xmp:
        result.motion, result.motion_problem = motion_photo(path, xmp, result.size)
    return decoded


_MICRO_VIDEO_OFFSET = re.compile(rb"MicroVideoOffset(?:=\"|>)\s*(\d{1,12})")
_CONTAINER_ITEM = re.compile(rb"<Container:Item\b[^>]*>|<rdf:li\b[^>]*Item:Semantic[^>]*>", re.DOTALL)
_ITEM_LENGTH = re.compile(rb"Item:Length=\"\s*(\d{1,12})\s*\"")
MAX_XMP = 1 << 16  # bytes of a photo's XMP searched for a motion photo's video


def motion_photo(path: str, xmp, size: int) -> tuple[str | None, str | None]:
    """("motion_photo", None) when the JPEG's XMP says an MP4 is appended (Google's ``GCamera:MicroVideoOffset``,
    or the newer ``Container:Directory`` item with ``Item:Semantic="MotionPhoto"`` and its ``Item:Length``) and the
    file holds one there; (None, why not) when it says so but the offset is impossible; (None, None) otherwise."""
    offset, problem = _motion_video_offset(path, xmp, size)
    return ("motion_photo" if offset is not None else None), problem


def motion_photo_video(path: str) -> tuple[int, int]:
    """(start, length) in bytes of the MP4 inside the motion photo at ``path``, read from the file as it is now
    (the viewer plays it); ValueError says why there is none."""
    size = os.stat(path).st_size
    try:
        with Image.open(path) as image:
            xmp = image.info.get("xmp") if image.format == "JPEG" else None
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not an image it can read"
        raise ValueError(f"{os.path.basename(path)}: not a readable JPEG ({error})") from error
    offset, problem = _motion_video_offset(path, xmp or b"", size)
    if offset is None:
        raise ValueError(problem or f"{os.path.basename(path)}: its XMP names no motion photo video")
    return size - offset, offset


def _motion_video_offset(path: str, xmp, size: int) -> tuple[int | None, str | None]:
    """(how many bytes before the end the MP4 starts, None); (None, why not); (None, None): not a motion photo."""
    text = (xmp if isinstance(xmp, bytes) else str(xmp).encode("utf-8", "replace"))[:MAX_XMP]
    if b"MicroVideo" not in text and b"MotionPhoto" not in text:
        return None, None
    offset = None
    if match := _MICRO_VIDEO_OFFSET.search(text):
        offset = int(match.group(1))
    else:
        for item in _CONTAINER_ITEM.finditer(text):
            if b'Semantic="MotionPhoto"' in item.group() and (length := _ITEM_LENGTH.search(item.group())):
                offset = int(length.group(1))
    if offset is None:
        return None, None  # flagged, but no video position given (an older variant): a still photo
    name = os.path.basename(path)
    if not 8 <= offset < size:
        return None, (
            f"motion photo {name}: its XMP puts the video {offset:,} bytes before the end of a {size:,}-byte file; "
            "indexed as a still photo"
        )
    try:
        with open(path, "rb") as file:
            file.seek(size - offset)
            head = file.read(12)
    except OSError as error:
        return None, f"motion photo {name}: cannot read its video ({_os_reason(error)}); indexed as a still photo"
    if head[4:8] != b"ftyp":
        return None, (
            f"motion photo {name}: no MP4 video where its XMP says ({offset:,} bytes before the end); "
            "indexed as a still photo"
        )
    return offset, None


def gps_position(gps) -> tuple[float | None, float | None]:
    """(latitude, longitude) in degrees from an EXIF GPS IFD, or (None, None) when absent or impossible."""
    if not gps or 2 not in gps or 4 not in gps:
        return None, None

    def degrees(value, reference, negative: str) -> float:
        d, m, s = (float(part) for part in value)
        result = d + m / 60 + s / 3600
        return -result if str(reference).strip("\x00 ").upper() == negative else result

    latitude = degrees(gps[2], gps.get(1, "N"), "S")
    longitude = degrees(gps[4], gps.get(3, "E"), "W")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or (latitude == 0 and longitude == 0):
        return None, None
    return latitude, longitude


def parse_exif_datetime(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def camera_name(make, model) -> str | None:
    make = make.strip("\x00 ") if isinstance(make, str) else ""
    model = model.strip("\x00 ") if isinstance(model, str) else ""
    if model.lower().startswith(make.lower()):
        make = ""
    return " ".join(part for part in (make, model) if part) or None


def _shrink(image: Image.Image, draft_size: int) -> Image.Image:
    """Bound memory for huge PNG/TIFF panoramas; the model never sees more than this."""
    limit = 4 * draft_size
    if max(image.size) > limit:
        image.thumbnail((limit, limit), Image.Resampling.BICUBIC)
    return image


def _os_reason(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return "permission denied; check the file's read permissions"
    return f"cannot read file ({error.strerror or error})"
