"""The fast-path benchmarks run end to end on the tiny model and print every figure (speed is not asserted)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str):
    return importlib.import_module(f"benchmarks.{name}")  # pytest runs from the repo root


@pytest.mark.slow  # runs the benchmark at several tile counts
def test_bench_embed_compares_stock_and_fast_per_tile_count(tiny_mllama_dir, capsys):
    code = load("bench_embed").main(
        [
            "--model",
            str(tiny_mllama_dir),
            "--device",
            "cpu",
            "--images",
            "4",
            "--texts",
            "4",
            "--batch-sizes",
            "2",
            "--compare-tiles",
            "1",
            "2",
            "4",
            "--peak-batches",
            "1",
            "--queries",
            "3",
            "--baseline",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"^ +[124] +\d+x\d+ \|", line)]
    assert [int(row.split()[0]) for row in rows] == [1, 2, 4]
    for row in rows:
        delta, cosine = float(row.split()[-2]), float(row.split()[-1])
        assert delta <= 1e-5 and cosine >= 0.99999  # fp32: the fast path is the stock function
    assert "-- peak GPU memory" in out and "-- text query, batch 1" in out and "plain transformers forward" in out


@pytest.mark.slow  # runs a benchmark script end to end
def test_bench_search_split_prints_encode_search_fetch(tiny_mllama_dir, capsys):
    code = load("bench_search").main(
        ["--model", str(tiny_mllama_dir), "--split", "--sizes", "500", "--queries", "3", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    figures = report["split"]["500"]
    assert figures["vectors"] == 500 and figures["query_path"] == "eager"
    for part in ("encode", "search", "fetch", "total", "engine_search_text"):
        assert 0 < figures[part]["p50_ms"] <= figures[part]["p95_ms"], part


@pytest.mark.slow  # trains (a tiny model, LoRA) through the CLI
def test_bench_train_times_both_attentions(tiny_mllama_dir, capsys):
    code = load("bench_train").main(
        [
            "--model",
            str(tiny_mllama_dir),
            "--device",
            "cpu",
            "--steps",
            "0",
            "--batch-size",
            "2",
            "--negatives",
            "1",
            "--image-size",
            "40",
            "--profile",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out[captured.out.index("{") :])
    assert set(result["step_s_by_attention"]) == {"fast", "stock"} and result["stock_over_fast"] > 0
    assert "Self CPU time total" in captured.err  # the profile of one step


@pytest.mark.parametrize("script", ["bench_embed", "bench_search", "bench_train", "bench_indexer"])
def test_help_has_examples(script, capsys):
    module = load(script)
    parse = getattr(module, "parse_args", None) or module.main
    with pytest.raises(SystemExit) as exit_info:
        parse(["--help"])
    assert exit_info.value.code == 0
    assert "Examples:" in capsys.readouterr().out
