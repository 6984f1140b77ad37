"""Videos: probing a container and choosing its keyframes (PyAV's bundled FFmpeg), within bounded memory and time.

A video is indexed as a handful of keyframes, each embedded like a photo and stored with its
timestamp. Keyframes are chosen by scene change: frames are sampled (``sample_fps``), shrunk to a
small grey thumbnail, and a sample becomes a keyframe when it differs from the last keyframe by
more than ``scene_threshold`` (mean absolute difference, 0..1), or when ``max_gap_s`` passed
without one while the picture drifted (a still shot, within ``still_threshold``, keeps its first frame
only, so a search plays it from its start). The first frame is always a keyframe. At most ``max_keyframes`` are kept: when more
are found, every second one is dropped and the gaps double, so a 3-hour recording stays bounded.
Videos longer than ``sequential_limit_s`` are not decoded end to end: frames are fetched by
seeking to evenly spread positions. Frames are converted at a reduced size only (the model's
input size), and decoding a file stops after ``max_seconds`` (keeping what was found).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

THUMB_SIZE = (32, 18)  # grey thumbnail compared for scene changes
MAX_KEYFRAME_SIDE = 640  # keyframes are kept at most this large (the model's input size, if smaller)


@dataclass(frozen=True)
class KeyframePolicy:
    """How keyframes are chosen and what a file may cost (see the module docstring)."""

    max_gap_s: float = 10.0
    min_gap_s: float = 0.5
    scene_threshold: float = 0.08
    still_threshold: float = 0.01  # below this a frame is the same picture: no keyframe, however long the gap
    sample_fps: float = 4.0
    max_keyframes: int = 120
    max_seconds: float = 300.0  # wall-clock decode time per file
    max_pixels: int = 36_000_000  # 8K UHD (33.2 MP) passes; larger frames are refused before decoding
    sequential_limit_s: float = 3 * 3600.0  # longer videos are sampled by seeking


DEFAULT_POLICY = KeyframePolicy()


@dataclass
class VideoFacts:
    """What the container says about a video (before any frame is decoded)."""

    duration_s: float | None
    width: int
    height: int
    rotation: int = 0  # degrees counter-clockwise the frames are turned for display
    codec: str = ""
    taken_at: datetime | None = None
    make: str | None = None
    model: str | None = None
    latitude: float | None = None
    longitude: float | None = None


@dataclass
class Keyframe:
    timestamp_s: float
    image: Image.Image = field(repr=False)


class VideoError(Exception):
    """A file that cannot be indexed as a video; ``reason`` is the sentence recorded for it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def keyframe_hash(content_hash: str, timestamp_s: float) -> str:
    """The content key of one keyframe's vector: the video's content and the millisecond (32 hex digits, like
    ``reader.hash_file``), so an unchanged video at another path, or a rerun after a crash, reuses the vector."""
    return hashlib.sha256(f"{content_hash}@{round(timestamp_s * 1000)}".encode()).hexdigest()[:32]


def read_video(
    path: str, draft_size: int, policy: KeyframePolicy = DEFAULT_POLICY, budget=None
) -> tuple[VideoFacts, list[Keyframe]]:
    """The container's facts and the chosen keyframes (PIL images, longest side at most ``draft_size``).

    VideoError (with a reason) for anything that is not a readable video; never any other exception.
    """
    container = _open(path)
    try:
        facts, stream = _probe(container, policy)
        pixels = facts.width * facts.height
        with budget.hold(4 * pixels) if budget is not None else _nothing():
            keyframes = _choose(container, stream, facts, draft_size, policy, path)
    except VideoError:
        raise
    except Exception as error:  # noqa: BLE001 - a decoder bug on one file must not stop the build
        raise VideoError(f"cannot decode video ({_ffmpeg_reason(error)})") from None
    finally:
        container.close()
    if not keyframes:
        raise VideoError("no frame could be decoded (truncated or damaged video?)")
    return facts, keyframes


def _open(path: str):
    """The file as a PyAV container, or VideoError saying it cannot be opened as a video."""
    import av

    try:
        return av.open(path, metadata_errors="ignore")
    except Exception as error:  # noqa: BLE001 - FFmpeg's many error types: all mean "cannot open"
        raise VideoError(
            f"cannot open as a video: damaged, truncated or not a video at all ({_ffmpeg_reason(error)})"
        ) from None


def probe_video(path: str) -> VideoFacts:
    """The container's facts without decoding a frame (a Live Photo's clip is checked so); VideoError if unreadable."""
    container = _open(path)
    try:
        return _probe(container, DEFAULT_POLICY)[0]
    except VideoError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged header
        raise VideoError(f"cannot read the video's header ({_ffmpeg_reason(error)})") from None
    finally:
        container.close()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _probe(container, policy: KeyframePolicy):
    fmt = container.format.name or ""
    if "pipe" in fmt or fmt.startswith("image2"):
        raise VideoError(
            f"not a video but a still image ({fmt.replace('_pipe', '')}) with a video file extension; "
            "rename it with the right extension"
        )
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams})
        raise VideoError("no video stream" + (f" (only {', '.join(kinds)}: an audio-only file?)" if kinds else ""))
    stream = container.streams.video[0]
    context = stream.codec_context
    name = context.name if context is not None else None
    if not name or name == "none" or context.codec is None:
        raise VideoError(
            "unsupported video codec (FFmpeg bundled with PyAV has no decoder for it); "
            "convert it to H.264, HEVC, VP9 or AV1"
        )
    width, height = int(context.width or 0), int(context.height or 0)
    if width <= 0 or height <= 0:
        raise VideoError("the video stream has no picture size (damaged header?)")
    if width * height > policy.max_pixels:
        raise VideoError(
            f"resolution {width}x{height} is over the {policy.max_pixels / 1e6:.0f} megapixels a video "
            "may have here; scale it down to index it"
        )
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    metadata = {str(key).lower(): str(value) for key, value in {**container.metadata, **stream.metadata}.items()}
    facts = VideoFacts(
        duration_s=duration if duration and duration > 0 else None,
        width=width,
        height=height,
        codec=name,
        taken_at=_creation_time(metadata.get("creation_time")),
        make=metadata.get("com.apple.quicktime.make") or metadata.get("make"),
        model=metadata.get("com.apple.quicktime.model") or metadata.get("model"),
    )
    facts.latitude, facts.longitude = _iso6709(
        metadata.get("com.apple.quicktime.location.iso6709") or metadata.get("location")
    )
    rotate = metadata.get("rotate")
    if rotate and re.fullmatch(r"-?\d+", rotate.strip()):
        facts.rotation = -int(rotate) % 360  # the old tag is clockwise
    return facts, stream


def _choose(container, stream, facts: VideoFacts, draft_size: int, policy: KeyframePolicy, path: str):
    stream.thread_type = "AUTO"
    try:
        stream.codec_context.skip_frame = "NONREF"  # B-frames are never needed at a few samples a second
    except Exception:  # noqa: BLE001 - a decoder without the option decodes everything
        pass
    deadline = time.monotonic() + policy.max_seconds
    if facts.duration_s and facts.duration_s > policy.sequential_limit_s:
        frames = _seeking(container, stream, facts.duration_s, policy, deadline, path)
        gap_s = facts.duration_s / max(policy.max_keyframes, 1)
        chooser = _Chooser(policy, draft_size, facts, max_gap_s=max(policy.max_gap_s, gap_s), every=True)
    else:
        frames = _sequential(container, stream, policy, deadline, path)
        chooser = _Chooser(policy, draft_size, facts)
    for seconds, frame in frames:
        chooser.offer(seconds, frame)
    return chooser.kept


def _sequential(container, stream, policy: KeyframePolicy, deadline: float, path: str):
    """(seconds, frame) samples at most ``sample_fps`` a second, in order, until the end, an error or the deadline."""
    step = 1.0 / policy.sample_fps
    next_at = -math.inf
    decoded = 0
    held = None  # the last frame skipped since the last sample: in a variable frame rate video it may stay on
    try:  # screen for seconds, so it is sampled too when the next frame comes more than a step later
        for frame in container.decode(stream):
            decoded += 1
            seconds = frame.time
            if seconds is None:
                continue
            if seconds < next_at:
                held = (seconds, frame)
                continue
            if held is not None and seconds - held[0] > step:
                yield held
            held = None
            next_at = seconds + step
            yield seconds, frame
            if time.monotonic() > deadline:
                log.warning(
                    "%s: stopped decoding after %.0f s (at %.1f s of video); the keyframes found so far are indexed",
                    path,
                    policy.max_seconds,
                    seconds,
                )
                return
    except Exception as error:  # noqa: BLE001 - a truncated file: keep what decoded
        if not decoded:
            raise
        log.warning(
            "%s: decoding stopped early (%s); the keyframes found so far are indexed", path, _ffmpeg_reason(error)
        )


def _seeking(container, stream, duration_s: float, policy: KeyframePolicy, deadline: float, path: str):
    """One frame near each of ``max_keyframes`` evenly spread positions, found by seeking (long videos)."""
    count = max(1, min(policy.max_keyframes, math.ceil(duration_s / policy.max_gap_s)))
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    last = -math.inf
    for index in range(count):
        if time.monotonic() > deadline:
            log.warning(
                "%s: stopped seeking after %.0f s; the keyframes found so far are indexed", path, policy.max_seconds
            )
            return
        target = start + duration_s * index / count
        try:
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time >= target - 1e-3:
                    if frame.time > last:
                        last = frame.time
                        yield frame.time, frame
                    break
        except Exception as error:  # noqa: BLE001 - a damaged stretch: the other positions still count
            log.warning("%s: no frame at %.0f s (%s)", path, target, _ffmpeg_reason(error))


class _Chooser:
    """Scene-change keyframe selection over (seconds, frame) samples, bounded by ``max_keyframes``."""

    def __init__(
        self,
        policy: KeyframePolicy,
        draft_size: int,
        facts: VideoFacts,
        max_gap_s: float | None = None,
        every: bool = False,
    ):
        self.policy, self.draft_size, self.facts, self.every = policy, draft_size, facts, every
        self.max_gap_s = max_gap_s or policy.max_gap_s
        self.min_gap_s = policy.min_gap_s
        self.kept: list[Keyframe] = []
        self.last_thumb: np.ndarray | None = None
        self.last_s = -math.inf

    def offer(self, seconds: float, frame) -> None:
        thumb = frame.to_ndarray(width=THUMB_SIZE[0], height=THUMB_SIZE[1], format="gray").astype(np.float32) / 255
        if self.kept and not self.every:
            gap = seconds - self.last_s
            if gap < self.min_gap_s:
                return
            difference = float(np.abs(thumb - self.last_thumb).mean())
            if difference <= self.policy.still_threshold:
                return  # a still shot: its first frame stands for all of it (a later one would only move the second)
            if difference <= self.policy.scene_threshold and gap < self.max_gap_s:
                return
        self.kept.append(Keyframe(round(max(seconds, 0.0), 3), self._image(frame)))
        self.last_thumb, self.last_s = thumb, seconds
        if len(self.kept) > self.policy.max_keyframes:
            self.kept = self.kept[::2]  # keeps the first; memory and count stay bounded
            self.max_gap_s *= 2
            self.min_gap_s = max(self.min_gap_s * 2, self.policy.min_gap_s)

    def _image(self, frame) -> Image.Image:
        width, height = frame.width, frame.height
        scale = min(1.0, self.draft_size / max(width, height)) if self.draft_size else 1.0
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = frame.to_image(width=size[0], height=size[1])
        if not self.facts.rotation:  # FFmpeg puts the display matrix on the frames (newer files)
            self.facts.rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
        rotation = self.facts.rotation
        if rotation:
            image = image.rotate(rotation, expand=True)
        return image


def frame_at(path: str, seconds: float, size: int) -> Image.Image:
    """The frame shown at ``seconds`` (upright, longest side at most ``size``): a video hit's preview.

    VideoError when the file cannot be read as a video."""
    import av

    try:
        with av.open(path, metadata_errors="ignore") as container:
            facts, stream = _probe(container, DEFAULT_POLICY)
            stream.thread_type = "AUTO"
            chooser = _Chooser(DEFAULT_POLICY, size, facts)
            container.seek(max(0, int(seconds / stream.time_base)), stream=stream, backward=True, any_frame=False)
            last = None
            for frame in container.decode(stream):
                last = frame
                if frame.time is not None and frame.time >= seconds - 1e-3:
                    break
            if last is None:
                raise VideoError(f"no frame at {seconds:.1f} s")
            return chooser._image(last)
    except VideoError:
        raise
    except Exception as error:  # noqa: BLE001 - FFmpeg's many error types
        raise VideoError(f"cannot decode video ({_ffmpeg_reason(error)})") from None


def sniff_video(path: str) -> str | None:
    """The kind of video container a file's first bytes say it is (for a photo name that holds a video), or None."""
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        return "MP4/QuickTime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def displayed_size(facts: VideoFacts) -> tuple[int, int]:
    """(width, height) as shown, after the container's rotation."""
    return (facts.height, facts.width) if facts.rotation % 180 == 90 else (facts.width, facts.height)


def _creation_time(value: str | None) -> datetime | None:
    """A container's creation_time (ISO 8601, usually UTC) as a naive datetime; None when absent or impossible."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    if parsed.year < 1971:  # cameras without a clock write 1970 or 1904 (QuickTime's epoch)
        return None
    return parsed


_ISO6709 = re.compile(r"([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")


def _iso6709(value: str | None) -> tuple[float | None, float | None]:
    """(latitude, longitude) from an ISO 6709 string such as ``+48.8584+002.2945+035.000/``."""
    match = _ISO6709.match(value.strip()) if value else None
    if not match:
        return None, None
    latitude, longitude = float(match.group(1)), float(match.group(2))
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or (latitude == 0 and longitude == 0):
        return None, None
    return latitude, longitude


def _ffmpeg_reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error).strip() or type(error).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return re.sub(r"\s*:\s*'[^']*'$", "", text)[:200]  # FFmpeg repeats the file name at the end
