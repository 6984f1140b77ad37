"""Load the embedder a benchmark measures: any saved model, or mmE5's full-size random architecture."""

from __future__ import annotations


def load_for_benchmark(model: str | None, device: str | None, full_size: bool):
    if full_size:
        from mme5.tiny import random_mme5_embedder

        return random_mme5_embedder("full", device or "cuda")
    from mme5 import load_embedder

    return load_embedder(model, device=device)
