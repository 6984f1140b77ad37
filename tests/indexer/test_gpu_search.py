"""GPU search path (torch matmul + top-k), run here on the CPU device: same hits and scores as FAISS flat."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from indexer import vectors as vectors_module
from indexer.vectors import GPU_SEARCH_HEADROOM, GPU_SEARCH_MIN, TorchFlatSearch, VectorIndex, gpu_search_fits


def unit_rows(rng, count, dim):
    rows = rng.standard_normal((count, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float16).astype(np.float32)  # as the catalog stores them


@pytest.fixture(scope="module")
def index():
    rng = np.random.default_rng(7)
    rows = unit_rows(rng, 6000, 64)
    rows[100] = rows[200]  # exact duplicates: tied scores
    ids = rng.permutation(np.arange(10, 10 + 3 * len(rows), 3))[: len(rows)].astype(np.int64)
    index = VectorIndex.flat(64)
    index.add(ids, rows)
    return index, rows


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
@pytest.mark.parametrize("k", [1, 21, 500])
def test_same_hits_as_faiss_flat(index, dtype, k):
    vector_index, rows = index
    rng = np.random.default_rng(k)
    queries = np.concatenate([unit_rows(rng, 5, 64), rows[[100, 3]] + 0.01])
    expected_scores, expected_ids = vector_index.search(queries, k)
    searcher = TorchFlatSearch.from_index(vector_index.index, "cpu", dtype)
    scores, ids = searcher.search(queries, k)
    assert scores.shape == ids.shape == (len(queries), k) and ids.dtype == np.int64
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    ties = 0
    for row in range(len(queries)):  # same ids in the same order; which of an exact tie at the k-th place is free
        last = expected_scores[row, -1]
        strict = lambda hits, values: [i for _, i in sorted((-v, i) for v, i in zip(values, hits) if v > last + 1e-5)]  # noqa: E731
        assert strict(ids[row], scores[row]) == strict(expected_ids[row], expected_scores[row])
        ties += len(set(ids[row]) ^ set(expected_ids[row])) > 0
    assert ties <= 1  # only the query on the duplicated row can split a tie (at k=1)


def test_more_hits_asked_than_vectors():
    rows = unit_rows(np.random.default_rng(0), 5, 8)
    index = VectorIndex.flat(8)
    index.add(np.arange(5), rows)
    scores, ids = TorchFlatSearch.from_index(index.index, "cpu").search(rows[:2], 8)
    assert (ids[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert ids[0, 0] == 0 and ids[1, 0] == 1


def test_fits_beside_the_model():
    dim, count = 4096, 1_000_000
    needed = count * dim * 2
    assert gpu_search_fits("flat", count, dim, needed + GPU_SEARCH_HEADROOM)
    assert not gpu_search_fits("flat", count, dim, needed + GPU_SEARCH_HEADROOM - 1)
    assert not gpu_search_fits("ivf-sq8", count, dim, 10 * needed)  # IVF: faiss (GPU if it has one) or CPU
    assert not gpu_search_fits("flat", GPU_SEARCH_MIN - 1, dim, 10 * needed)  # small: the CPU scan is faster


def test_vector_index_uses_the_gpu_searcher_when_one_is_chosen(index, monkeypatch, caplog):
    """The wiring: a chosen device puts searches on TorchFlatSearch; a change drops it again."""
    caplog.set_level(logging.INFO, logger="indexer")
    vector_index, rows = index
    fresh = VectorIndex.flat(64)
    fresh.add(vector_index.ids(), rows)
    expected = vector_index.search(rows[:3], 10)
    monkeypatch.setattr(vectors_module, "_torch_gpu_for", lambda kind, count, dim: torch.device("cpu"))
    assert fresh.prepare_search() == "TorchFlatSearch"
    got = fresh.search(rows[:3], 10)
    assert isinstance(fresh._searcher(), TorchFlatSearch)
    assert "searching 6000 vectors on cpu" in caplog.text
    np.testing.assert_array_equal(got[1][:, 0], expected[1][:, 0])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    fresh.remove(fresh.ids()[:1])
    assert fresh._gpu_copy is None


def test_no_gpu_or_switched_off_keeps_the_cpu(monkeypatch):
    assert vectors_module._torch_gpu_for("flat", 10 * GPU_SEARCH_MIN, 64) is None  # no CUDA on this machine
    monkeypatch.setenv("MME5_GPU_SEARCH", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert vectors_module._torch_gpu_for("flat", 10 * GPU_SEARCH_MIN, 64) is None


def test_wide_windows_go_to_faiss(index, monkeypatch):
    vector_index, rows = index
    searcher = TorchFlatSearch.from_index(vector_index.index, "cpu")
    monkeypatch.setattr(TorchFlatSearch, "MAX_K", 50)
    calls = []
    monkeypatch.setattr(searcher, "host", None)  # any rescoring on the host would fail now
    original = searcher.owner.search
    searcher.owner = type("Spy", (), {"search": lambda self, q, k: calls.append(k) or original(q, k)})()
    scores, ids = searcher.search(rows[:2], 200)
    assert calls == [200] and ids.shape == (2, 200) and ids[0, 0] == vector_index.ids()[0]
