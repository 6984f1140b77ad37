"""bench_embed's SigLIP runtime comparison runs end to end (at tiny size) and prints every figure side by side."""

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_siglip_runtimes_are_printed_side_by_side_with_int8_agreement(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_embed", REPO / "benchmarks" / "bench_embed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert (
        bench.main(
            [
                "--full-size-siglip",
                "--siglip-size",
                "tiny",
                "--images",
                "12",
                "--texts",
                "12",
                "--batch-sizes",
                "4",
                "--export-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for runtime in ("torch", "onnx", "onnx-int8"):
        assert re.search(rf"^{runtime} +4 +[0-9.]+ +[0-9.]+$", out, re.M), runtime
    assert "onnx / torch: images" in out
    difference = float(re.search(r"onnx vs torch max \|difference\|: images ([0-9.e+-]+)", out).group(1))
    assert difference < 1e-4
    recall = float(re.search(r"recall@10 of the fp32 ranking: text->image ([0-9.]+)", out).group(1))
    assert 0 < recall <= 1


def test_recall_at_10_counts_the_shared_top_10():
    import numpy as np

    spec = importlib.util.spec_from_file_location("bench_embed", REPO / "benchmarks" / "bench_embed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    reference = np.arange(20, dtype=float)[None, :]  # top 10: items 10..19
    assert bench.recall_at_10(reference, reference) == 1.0
    shifted = reference.copy()
    shifted[0, :5] += 100  # items 0..4 jump into the top 10, pushing out 10..14
    assert bench.recall_at_10(reference, shifted) == 0.5
