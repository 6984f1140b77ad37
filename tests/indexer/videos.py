"""Test videos made with PyAV: several scenes of distinct pictures, any codec and container PyAV's FFmpeg writes.

Each scene is one still picture (``scene_picture``) held for a few seconds, so a test can search with the
scene's picture and expect that scene's timestamp (a tiny random model maps the same picture to the same vector).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

SIZE = (160, 120)


def scene_picture(seed: int, size=SIZE) -> Image.Image:
    """A picture unlike any other seed's: coarse random blocks, smoothly enlarged."""
    rng = np.random.default_rng(1000 + seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


def make_video(
    path: Path,
    scenes=((0, 4.0), (1, 4.0), (2, 4.0)),
    codec: str = "libx264",
    fps: int = 10,
    size=SIZE,
    metadata: dict | None = None,
    frame_times=None,
    rotation: int | None = None,
    audio: bool = False,
    pictures: dict | None = None,
) -> Path:
    """Write ``scenes`` ((seed, seconds), ...) as one video; returns the path.

    ``frame_times`` (seconds of each frame) makes a variable-frame-rate video instead (each frame shows the scene
    its time falls in); ``rotation`` sets the display rotation; ``metadata`` the container's tags; ``pictures``
    (seed -> PIL image, resized to ``size``) shows those pictures instead of ``scene_picture(seed)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    starts, total = [], 0.0
    for seed, seconds in scenes:
        starts.append((total, seed))
        total += seconds
    times = list(frame_times) if frame_times is not None else [i / fps for i in range(round(total * fps))]
    chosen = pictures or {}
    frames = {
        seed: av.VideoFrame.from_image(chosen[seed].resize(size) if seed in chosen else scene_picture(seed, size))
        for seed, _ in scenes
    }
    with av.open(str(path), "w") as container:
        if metadata:
            container.metadata.update(metadata)
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        if codec in ("libx264", "libx265"):
            stream.options = (
                {"preset": "ultrafast"}
                if codec == "libx264"
                else {"preset": "ultrafast", "x265-params": "log-level=none"}
            )
        if frame_times is not None:
            stream.codec_context.max_b_frames = 0  # irregular frame times: no reordering, millisecond clock
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for t in times:
            seed = [s for start, s in starts if start <= t + 1e-9][-1]
            frame = frames[seed].reformat(format="yuv420p")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = int(8000 * seconds)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
