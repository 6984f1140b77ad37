"""The benchmark script runs end to end at toy scale and prints every figure (speed itself is not asserted)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from .conftest import REPO


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_indexer", REPO / "benchmarks" / "bench_indexer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_documents_the_gpu_flag(bench, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--full-size-mme5" in text and "efficiency" in text and "Examples:" in text


@pytest.mark.slow  # runs the benchmark
def test_toy_run_prints_all_figures(bench, tmp_path, tiny_mllama_dir, capsys):
    code = bench.main(
        [
            "--images",
            "24",
            "--size",
            "320x240",
            "--corpus",
            str(tmp_path / "corpus"),
            "--model",
            str(tiny_mllama_dir),
            "--device",
            "cpu",
            "--model-images",
            "16",
            "--rerun-files",
            "100",
            "--json",
        ]
    )
    assert code == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["images"] == 24 and figures["errors"] == 0 and figures["rerun_files"] == 100
    for key in ("decode_img_s", "model_img_s", "indexer_img_s", "cpu_floor_img_s", "efficiency", "efficiency_vs_model"):
        assert figures[key] > 0, key
    assert figures["cpu_floor_img_s"] < min(figures["decode_img_s"], figures["model_img_s"])
    assert len(list((tmp_path / "corpus").rglob("*.jpg"))) == 24  # the corpus is kept for reuse


@pytest.mark.slow  # exports and runs three paths (about a minute on 2 busy cores)
def test_full_size_siglip_prints_each_cpu_path_beside_the_instruction_sets(bench, tmp_path, capsys):
    """--siglip-size tiny runs the --full-size-siglip code in seconds: every path, the choice, both matmul rates."""
    code = bench.main(
        [
            "--full-size-siglip",
            "--siglip-size",
            "tiny",
            "--images",
            "6",
            "--size",
            "320x240",
            "--rounds",
            "2",
            "--batch-size",
            "2",
            "--export-dir",
            str(tmp_path / "onnx"),
            "--json",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    figures = json.loads(captured.out)
    from mme5.cpu_features import detect

    assert figures["cpu_instruction_sets"] == detect().summary()
    assert f"bench: CPU instruction sets: {detect().summary()}" in captured.err
    assert figures["chosen_path"] in ("onnx", "torch", "torch_bf16")
    for path in ("onnx", "torch", "torch_bf16"):
        for key in (f"{path}_model_img_s", f"{path}_indexer_img_s", f"{path}_text_query_p50_ms"):
            assert figures[key] > 0, key
    assert figures["cpu_fp32_matmul_gflop_s"] > 0 and figures["cpu_bf16_matmul_gflop_s"] > 0
    assert figures["torch_bf16_model_vs_onnx_model"] > 0
