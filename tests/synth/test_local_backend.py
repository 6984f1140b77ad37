"""The local transformers backend on the tiny random Mllama: gibberish is counted, never a crash."""

from __future__ import annotations

import json

from .synth_testing import make_config
from synth.cli import main
from synth.sample import generate_one
from synth.local_backend import LLAMA_VISION_TEMPLATE, LocalBackend


def test_tiny_mllama_output_is_a_counted_failure(tiny_mllama_dir, photos):
    backend = LocalBackend(str(tiny_mllama_dir), device="cpu", max_new_tokens=12, image_max_side=64)
    assert backend.processor.chat_template == LLAMA_VISION_TEMPLATE  # the tiny processor ships none
    outcome = generate_one(backend, make_config(photos, combo="IT->IT"))
    assert outcome.record is None
    assert outcome.failure["reason"] in ("invalid_json", "schema")
    assert "after one repair attempt" in outcome.failure["detail"]
    usage = outcome.usage
    assert usage["calls"] == 2 and usage["completion_tokens"] <= 24 and usage["prompt_tokens"] > 100


def test_local_run_ends_cleanly_with_failures_reported(tiny_mllama_dir, index_dir, tmp_path, capsys):
    out = tmp_path / "local"
    code = main(
        [
            "generate",
            "--index",
            str(index_dir),
            "--out",
            str(out),
            "--n",
            "2",
            "--backend",
            "local",
            "--model",
            str(tiny_mllama_dir),
            "--device",
            "cpu",
            "--max-tokens",
            "8",
            "--image-size",
            "64",
            "--max-attempts",
            "2",
            "--languages",
            "en",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "reached --max-attempts 2 with 0 of 2 accepted" in capsys.readouterr().err
    assert not (out / "samples.jsonl").exists()
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 2 and all(failure["reason"] in ("invalid_json", "schema") for failure in failures)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cost_usd"] == 0.0 and summary["completion_tokens"] > 0
