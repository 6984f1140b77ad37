"""The video benchmark runs end to end at toy scale and prints every figure (speed itself is not asserted)."""

from __future__ import annotations

import json
import os

import pytest


@pytest.mark.slow  # runs a benchmark script end to end
def test_video_bench_toy_run_prints_every_figure(capsys):
    from benchmarks import bench_video

    assert bench_video.main(["--seconds", "2", "--size", "320x180", "--videos", "1", "--scenes", "3", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for codec in ("h264", "hevc"):
        row = figures["extraction"][codec]
        assert row["video_s_per_wall_s"] > 0 and row["keyframes"] >= 1 and row["video_s"] == pytest.approx(2, abs=0.2)
    assert figures["extraction"]["ffmpeg"]  # the path of the binary, or why there is no comparison
    assert figures["cpu"] and len(figures["load_average"]) == 3
    assert figures["accuracy"]["queries"] == 3 and 0 <= figures["accuracy"]["rank1_within_2s"] <= 3


def fake_ffmpeg(folder, cuts: int) -> None:
    """An ``ffmpeg`` on PATH that prints ``cuts`` showinfo frame lines (the scene filter's picks) as ffmpeg does."""
    lines = "\n".join(
        f"[Parsed_showinfo_1 @ 0x55d0] n:{n:4d} pts:{n * 512} pts_time:{n * 5.0} duration:512 pos:1024 fmt:yuv420p"
        for n in range(cuts)
    )
    script = folder / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-version" ]; then echo "ffmpeg version 9.9-fake Copyright"; exit 0; fi\n'
        'echo "$@" >> "$(dirname "$0")/calls"\n'
        f"cat >&2 <<'END'\n[Parsed_showinfo_1 @ 0x55d0] config in time_base: 1/15360, frame_rate: 30/1\n{lines}\nEND\n",
        encoding="utf-8",
    )
    script.chmod(0o755)


def test_the_extraction_figures_set_ours_beside_ffmpegs_scene_detection(tmp_path, monkeypatch):
    from benchmarks import bench_video

    tools = tmp_path / "bin"
    tools.mkdir()
    fake_ffmpeg(tools, cuts=3)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")  # this test is about which ffmpeg runs
    args = bench_video.parse_args(["--seconds", "2", "--size", "320x180", "--cores", "2"])
    figures = bench_video.extraction(tmp_path, args)
    assert figures["ffmpeg"] == f"{tools / 'ffmpeg'}: ffmpeg version 9.9-fake"
    for codec in ("h264", "hevc"):
        row = figures[codec]
        assert row["scene_cuts"] == row["keyframes"] - 1 and row["true_scene_cuts"] == 0
        for key in ("ffmpeg_default_threads", "ffmpeg_same_threads"):
            assert row[key]["scene_cuts"] == 3 and row[key]["video_s_per_wall_s"] > 0, row
    calls = (tools / "calls").read_text(encoding="utf-8").splitlines()
    assert len(calls) == 4 and all("select='gt(scene,0.3)',showinfo -f null -" in call for call in calls)
    assert sum("-threads 2 -filter_threads 2" in call for call in calls) == 2  # the fair run: our cores, as threads


@pytest.mark.slow  # runs a benchmark script end to end
def test_without_ffmpeg_the_benchmark_runs_and_says_so(tmp_path, monkeypatch, capsys):
    from benchmarks import bench_video

    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on PATH (this test is about its absence)
    assert bench_video.main(["--seconds", "2", "--size", "320x180", "--videos", "1", "--scenes", "2"]) == 0
    out = capsys.readouterr().out
    assert "ffmpeg: not installed: no comparison with ffmpeg's own scene detection (install it" in out
    assert "ours (2 cores)" in out and "ffmpeg, same threads" not in out
    assert out.startswith("CPU: ") and "load average" in out
