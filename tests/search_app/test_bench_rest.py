"""The REST benchmark runs end to end at toy scale and prints every figure (speed itself is not asserted)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]  # starts the app in a subprocess, builds an index


def test_rest_bench_toy_run_splits_rest_into_server_work_and_wire(capsys):
    from benchmarks import bench_rest

    argv = ["--size", "300", "--queries", "6", "--block", "3", "--clients", "4", "--per-client", "2", "--json"]
    assert bench_rest.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == 300 and report["cpu"] and len(report["load_average"]) == 3
    for way in ("engine", "rest", "rest_work", "wire", "gradio_client"):
        assert report[way]["p50_ms"] > 0, way
    # The server's own work is part of what the client waited for, and the rest of it was on the wire.
    assert report["rest_work"]["p50_ms"] < report["rest"]["p50_ms"]
    assert report["crowd"]["requests"] == 8 and report["crowd"]["errors"] == 0


def test_a_block_of_one_is_refused_with_the_reason(capsys):
    from benchmarks import bench_rest

    with pytest.raises(SystemExit):
        bench_rest.parse_args(["--block", "1"])
    assert "the first query of each block is not counted" in capsys.readouterr().err
