"""The generation loop itself: an unexpected error in one sample fails that sample, not the run."""

from __future__ import annotations

import pytest

from synth.backend import Completion
from synth.configure import Configurator
from synth.output import RunFolder
from synth.pool import ImagePool
from synth.run import generate
from synth.tasks import combo_weights
from .synth_answers import answer_for


class FlakyGPU:
    """Stands in for a local GPU model that runs out of memory on some samples (no GPU exists here)."""

    model = "flaky-gpu"

    def __init__(self):
        self.calls = 0

    def complete(self, messages):
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        request = {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
        return Completion(text=answer_for(request, self.calls), prompt_tokens=10, completion_tokens=5)


@pytest.fixture()
def configurator(index_dir):
    from indexer import IndexStore

    store = IndexStore.open(index_dir)
    yield Configurator(combo_weights({"vqa": 1.0}), {"de": 1.0}, ImagePool(store), seed=4)
    store.close()


def test_unexpected_errors_fail_single_samples_and_are_retried_later(configurator, tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.start({"seed": 4})
    summary = generate(folder, configurator, FlakyGPU(), n=6, concurrency=1, show_progress=False)
    assert summary.accepted == 6 and summary.failed["error"] == 2  # calls 3 and 6 of 8
    failures = list(folder.failures())
    assert all(f["retryable"] and "CUDA out of memory" in f["detail"] for f in failures)
    retried = generate(folder, configurator, FlakyGPU(), n=8, concurrency=1, show_progress=False)
    ids = {row["sample_id"] for row in folder.samples()}
    assert retried.accepted == 2 and len(ids) == 8
    assert {failure["sample_id"] for failure in failures} <= ids  # failed samples got their second chance first
