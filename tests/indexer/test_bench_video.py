"""The video benchmark runs end to end at toy scale and prints every figure (speed itself is not asserted)."""

from __future__ import annotations

import json

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
    assert figures["accuracy"]["queries"] == 3 and 0 <= figures["accuracy"]["rank1_within_2s"] <= 3
