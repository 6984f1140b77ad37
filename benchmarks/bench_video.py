"""Videos: keyframe extraction speed (video seconds per wall second) and the scene timestamp found at rank 1.

1. Extraction: a generated 1080p video (moving scenes, H.264 and HEVC) read by indexer/video.py on at most
   --cores CPU cores, side by side with ffmpeg's own scene detection on the same file and cores
   (``ffmpeg -i F -vf "select='gt(scene,0.3)',showinfo" -f null -``, with its default threads and with --cores
   threads): video seconds per wall second and scene cuts found, with the CPU's instruction sets and the load
   average. Without an ``ffmpeg`` binary the comparison is left out and the script says so.
2. Accuracy: generated videos with several scenes each are indexed; each scene's picture is the query, and a query
   counts when the rank-1 result is its video with ``timestamp_s`` within ±2 s of the scene's start. With the tiny
   random model this measures the pipeline (keyframe choice, timestamps, folding), not the model's understanding.

Examples:
  python -m benchmarks.bench_video                         # 1080p, 30 s a codec, 2 cores; 6 videos x 5 scenes
  python -m benchmarks.bench_video --seconds 10 --size 640x360 --videos 2 --json
  python -m benchmarks.bench_video --model google/siglip-base-patch16-256-multilingual
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

CODECS = {"h264": ("libx264", ".mp4"), "hevc": ("libx265", ".mp4")}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each extraction test video (default 30)")
    parser.add_argument("--size", default="1920x1080", help="extraction test video size (default 1920x1080)")
    parser.add_argument("--fps", type=int, default=30, help="frame rate of the extraction test videos (default 30)")
    parser.add_argument("--cores", type=int, default=2, help="CPU cores the extraction may use (default 2)")
    parser.add_argument("--videos", type=int, default=6, help="videos in the accuracy test (default 6)")
    parser.add_argument("--scenes", type=int, default=5, help="scenes a video in the accuracy test (default 5)")
    parser.add_argument("--model", help="model for the accuracy test (default: a tiny random SigLIP built here)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser.parse_args(argv)


def picture(seed: int, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(1000 + seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BILINEAR))


def moving_video(path: Path, codec: str, seconds: float, size: tuple[int, int], fps: int, scene_s: float = 5.0):
    """Scenes of ``scene_s`` seconds, each a picture panning sideways with a little noise (so frames really differ)."""
    import av

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 12, (size[1], size[0] + 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"preset": "ultrafast"} | ({"x265-params": "log-level=none"} if codec == "libx265" else {})
        scene = None
        for index in range(round(seconds * fps)):
            t = index / fps
            if scene is None or int(t // scene_s) != scene[0]:
                scene = (int(t // scene_s), np.concatenate([picture(int(t // scene_s), size)] * 2, axis=1))
            shift = index % 64
            frame = av.VideoFrame.from_ndarray(
                scene[1][:, shift : shift + size[0]] + noise[:, shift : shift + size[0]], format="rgb24"
            )
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


SCENE_FILTER = "select='gt(scene,0.3)',showinfo"  # ffmpeg's own scene detection, as its documentation shows it
INSTRUCTION_SETS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile")
ARM_SETS = ("asimd", "sve", "sve2", "i8mm", "bf16")


def instruction_sets() -> str:
    """The CPU's model and the SIMD instruction sets decoders use (from /proc/cpuinfo; the platform elsewhere)."""
    import platform

    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    found = [name for name in (*INSTRUCTION_SETS, *ARM_SETS) if name in flags]
    model = fields.get("model name") or fields.get("CPU part") or platform.machine()
    return f"{model}; " + (" ".join(found) if found else "no SIMD flags listed")


def ffmpeg_scene_detect(ffmpeg: str, path: Path, threads: int | None, duration_s: float) -> dict:
    """One run of ``ffmpeg -i F -vf "select='gt(scene,0.3)',showinfo" -f null -`` (``threads``: ``-threads N`` for
    the decoder and ``-filter_threads N``; None: ffmpeg's default): its speed and the scene cuts it printed."""
    import re

    extra = [] if threads is None else ["-threads", str(threads), "-filter_threads", str(threads)]
    command = [ffmpeg, "-hide_banner", "-nostats", *extra, "-i", str(path), "-vf", SCENE_FILTER, "-f", "null", "-"]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, errors="replace")
    wall = time.perf_counter() - started
    if run.returncode != 0:
        tail = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"ffmpeg failed on {path.name} (exit {run.returncode}): {tail}")
    cuts = len(re.findall(r"Parsed_showinfo\S*\s.*\bn:\s*\d+", run.stderr))
    return {"video_s_per_wall_s": round(duration_s / wall, 2), "wall_s": round(wall, 3), "scene_cuts": cuts}


def extraction(folder: Path, args) -> dict:
    from indexer.video import read_video

    size = tuple(int(part) for part in args.size.lower().split("x"))
    figures: dict = {}
    ffmpeg = shutil.which("ffmpeg")
    scene_s = 5.0
    for name, (codec, suffix) in CODECS.items():
        path = folder / f"{name}{suffix}"
        moving_video(path, codec, args.seconds, size, args.fps, scene_s)
        started = time.perf_counter()
        facts, keyframes = read_video(str(path), 256)
        wall = time.perf_counter() - started
        figures[name] = {
            "video_s": round(facts.duration_s, 2),
            "wall_s": round(wall, 3),
            "video_s_per_wall_s": round(facts.duration_s / wall, 2),
            "keyframes": len(keyframes),
            "scene_cuts": len(keyframes) - 1,  # the first keyframe is the first frame, not a cut
            "true_scene_cuts": max(0, int(np.ceil(args.seconds / scene_s)) - 1),
        }
        if ffmpeg:
            figures[name]["ffmpeg_default_threads"] = ffmpeg_scene_detect(ffmpeg, path, None, facts.duration_s)
            figures[name]["ffmpeg_same_threads"] = ffmpeg_scene_detect(ffmpeg, path, args.cores, facts.duration_s)
    figures["ffmpeg"] = (
        ffmpeg_version(ffmpeg)
        if ffmpeg
        else "not installed: no comparison with ffmpeg's own scene detection "
        "(install it, e.g. apt install ffmpeg, and run again)"
    )
    return figures


def ffmpeg_version(ffmpeg: str) -> str:
    run = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, errors="replace")
    first = (run.stdout.splitlines() or ["ffmpeg (version unknown)"])[0]
    return f"{ffmpeg}: {' '.join(first.split()[:3])}"


def accuracy(folder: Path, args) -> dict:
    from indexer import IndexStore, build_index
    from mme5 import load_embedder
    from mme5.tiny import build_tiny

    model = args.model or str(build_tiny(folder / "tiny-siglip", backbone="siglip"))
    embedder = load_embedder(model)
    media = folder / "media"
    media.mkdir()
    rng = np.random.default_rng(1)
    truth = []  # (relpath, seed, start second)
    import av

    for video in range(args.videos):
        relpath = f"video{video}.mp4"
        lengths = rng.uniform(3.0, 12.0, args.scenes)
        starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        seeds = [video * args.scenes + scene for scene in range(args.scenes)]
        fps = 10
        with av.open(str(media / relpath), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
            stream.options = {"preset": "ultrafast"}
            for index in range(int(sum(lengths) * fps)):
                scene = int(np.searchsorted(starts, index / fps, side="right") - 1)
                frame = av.VideoFrame.from_ndarray(picture(seeds[scene], (160, 120)), format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        truth += [(relpath, seed, float(start)) for seed, start in zip(seeds, starts)]
    index_dir = folder / "index"
    build_index([media], index_dir, embedder, show_progress=False)
    from search_app.engine import SearchEngine
    from PIL import Image

    engine = SearchEngine(IndexStore.open(index_dir), embedder)
    hits, errors = 0, []
    try:
        for relpath, seed, start in truth:
            best = engine.search_image(Image.fromarray(picture(seed, (160, 120))), k=1).results[0]
            errors.append(abs(best.timestamp_s - start) if best.relpath == relpath else float("inf"))
            hits += best.relpath == relpath and abs(best.timestamp_s - start) <= 2
    finally:
        engine.close()
    finite = [error for error in errors if error != float("inf")]
    return {
        "model": embedder.model_id if args.model else "tiny random SigLIP",
        "queries": len(truth),
        "rank1_within_2s": hits,
        "rank1_within_2s_share": round(hits / len(truth), 3),
        "median_timestamp_error_s": round(float(np.median(finite)), 3) if finite else None,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    pinned = hasattr(os, "sched_setaffinity")
    before = os.sched_getaffinity(0) if pinned else None
    try:
        if pinned:  # the extraction runs on at most --cores cores (restored afterwards)
            os.sched_setaffinity(0, sorted(before)[: args.cores])
        with tempfile.TemporaryDirectory() as folder:
            figures = {"cores": args.cores, "size": args.size, "extraction": extraction(Path(folder), args)}
    finally:
        if pinned:
            os.sched_setaffinity(0, before)
    with tempfile.TemporaryDirectory() as folder:
        figures["accuracy"] = accuracy(Path(folder), args)
    figures["cpu"] = instruction_sets()
    figures["load_average"] = [round(load, 2) for load in os.getloadavg()] if hasattr(os, "getloadavg") else None
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"CPU: {figures['cpu']}; load average {figures['load_average']}")
    print(f"ffmpeg: {figures['extraction']['ffmpeg']}")
    print(f"{'':25} {'video s / wall s':>16} {'cuts found':>12}")  # ours: keyframes after the first
    for name in CODECS:
        row = figures["extraction"][name]
        print(f"{name} {args.size}, {row['video_s']:.0f} s, {row['true_scene_cuts']} real cuts:")
        print(
            f"  {'ours (' + str(args.cores) + ' cores)':23} {row['video_s_per_wall_s']:>16.1f} {row['scene_cuts']:>12}"
        )
        for key, label in (
            ("ffmpeg_default_threads", "ffmpeg, default threads"),
            ("ffmpeg_same_threads", "ffmpeg, same threads"),
        ):
            if key in row:
                print(f"  {label:23} {row[key]['video_s_per_wall_s']:>16.1f} {row[key]['scene_cuts']:>12}")
    acc = figures["accuracy"]
    print(
        f"rank 1 within ±2 s: {acc['rank1_within_2s']}/{acc['queries']} ({acc['rank1_within_2s_share']:.0%}), "
        f"median timestamp error {acc['median_timestamp_error_s']} s ({acc['model']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
