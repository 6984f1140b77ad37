"""The trainer really teaches: a toy multilingual shapes task goes from chance to near perfect,
and the saved adapter carries that gain through mme5, `indexer build --adapter` and the search engine.

Tiny random Mllama, LoRA with mmE5's defaults (r 8, alpha 64, DoRA, Gaussian init, dropout 0.1)
except a learning rate and temperature suited to random weights, and the wide target set
(`--lora-targets wide`: the vision MLPs too), which this measured figure was taken with; a
random tiny vision tower needs that capacity to learn colours and shapes in 120 steps.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # trains the tiny model until recall rises


def recall_at_1(embedder, toy) -> float:
    """Share of held-out captions (3 languages) whose top image is of the captioned colour and shape."""
    labels = [label for label, _ in toy["test_images"]]
    images = embedder.encode_images([str(toy["images"] / name) for _, name in toy["test_images"]])
    queries = embedder.encode_text_queries([caption for _, _, caption in toy["queries"]])
    top = (queries @ images.T).argmax(axis=1)
    return float(np.mean([labels[t] == label for t, (label, _, _) in zip(top, toy["queries"])]))


def search_recall_at_1(engine, toy) -> float:
    hits = []
    for label, _, caption in toy["queries"]:
        page = engine.search_text(caption, k=1)
        hits.append(toy["labels"][f"test/{Path(page.results[0].path).name}"] == label)
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def trained(tiny_mllama_dir, toy, cli_env, tmp_path_factory):
    output = tmp_path_factory.mktemp("learn") / "adapter"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "train",
            "--model",
            str(tiny_mllama_dir),
            "--data",
            str(toy["train"]),
            "--image-dir",
            str(toy["images"]),
            "--output",
            str(output),
            "--max-steps",
            "120",
            "--batch-size",
            "16",
            "--lr",
            "1e-3",
            "--temperature",
            "0.05",
            "--warmup-ratio",
            "0.1",
            "--negative-ratio",
            "1",
            "--no-gradient-checkpointing",
            "--save-every",
            "0",
            "--no-progress",
            "--lora-targets",
            "wide",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def test_recall_rises_from_chance_and_loads_with_mme5(tiny_mllama, tiny_mllama_dir, toy, trained):
    from mme5 import load_embedder

    before = recall_at_1(tiny_mllama, toy)
    after = recall_at_1(load_embedder(str(tiny_mllama_dir), device="cpu", adapter=str(trained)), toy)
    print(f"toy R@1 before {before:.2f}, after {after:.2f} (chance {1 / 9:.2f})")
    assert before <= 0.35
    assert after >= 0.85


def test_gain_reproduced_through_indexer_and_search_engine(
    tiny_mllama, tiny_mllama_dir, toy, trained, cli_env, tmp_path
):
    from indexer import build_index
    from search_app.engine import SearchEngine

    photos = toy["images"] / "test"
    base_index = tmp_path / "base-index"
    build_index([photos], base_index, tiny_mllama, show_progress=False)
    tuned_index = tmp_path / "tuned-index"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "indexer",
            "build",
            "--dir",
            str(photos),
            "--index",
            str(tuned_index),
            "--model",
            str(tiny_mllama_dir),
            "--adapter",
            str(trained),
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    base = SearchEngine.open(base_index, device="cpu")
    tuned = SearchEngine.open(tuned_index, device="cpu")  # loads the model + adapter the index was built with
    try:
        assert tuned.embedder.adapter == str(trained)
        before, after = search_recall_at_1(base, toy), search_recall_at_1(tuned, toy)
    finally:
        base.close()
        tuned.close()
    print(f"search engine R@1 before {before:.2f}, after {after:.2f}")
    assert before <= 0.35
    assert after >= 0.85
