"""The compiled text-query path: bucket padding keeps the vectors, and every fallback ends in eager."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from mme5 import query_compile

TEXTS = ["a dog", "un círculo rojo sobre un fondo blanco, de noche", "кот на диване", "赤い丸", "x " * 40]


@pytest.fixture(scope="module")
def loaded(tiny_mllama_dir):
    from mme5 import load_embedder

    return load_embedder(str(tiny_mllama_dir), device="cpu", verbose=False)


@pytest.fixture
def embedder(loaded):
    loaded.backbone.query_compiler = None
    yield loaded
    loaded.backbone.query_compiler = None


def eager_vectors(embedder):
    assert embedder.backbone.query_compiler is None or not embedder.backbone.query_compiler.active
    return np.concatenate([embedder.encode_text_queries([text]) for text in TEXTS])


def test_cpu_stays_eager_and_says_so(embedder, caplog):
    caplog.set_level(logging.INFO, logger="mme5")
    before = eager_vectors(embedder)
    assert embedder.compile_queries() == 0.0
    compiler = embedder.backbone.query_compiler
    assert not compiler.active and compiler.reason == "not on a CUDA GPU"
    assert "text queries run eagerly (not on a CUDA GPU)" in caplog.text
    np.testing.assert_array_equal(eager_vectors(embedder), before)


@pytest.mark.parametrize("env", [{"SPACES_ZERO_GPU": "true"}, {"MME5_COMPILE_QUERIES": "0"}], ids=["zerogpu", "off"])
def test_cuda_stays_eager_where_compile_is_not_allowed(monkeypatch, env):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.delenv("MME5_COMPILE_QUERIES", raising=False)
    assert query_compile.eager_reason("cuda") is None
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reason = query_compile.eager_reason("cuda")
    assert reason and next(iter(env)) in reason


def test_zero_gpu_seen_through_a_loaded_spaces_config(monkeypatch):
    import sys
    import types

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not query_compile.on_zero_gpu()
    config = types.ModuleType("spaces.config")
    config.Config = types.SimpleNamespace(zero_gpu=True)
    monkeypatch.setitem(sys.modules, "spaces.config", config)
    assert query_compile.on_zero_gpu()


def test_bucket_padding_gives_the_same_vectors(embedder):
    """Through the padded path (compiler = identity, forced on the CPU): same vectors as unpadded eager."""
    expected = eager_vectors(embedder)
    lengths = []
    original = embedder.backbone.forward_text

    def recording(input_ids, attention_mask):
        lengths.append((input_ids.shape[1], int(attention_mask.sum())))
        return original(input_ids, attention_mask)

    compiler = embedder.backbone.compile_queries(
        compiler=lambda fn, **options: recording, force=True, buckets=(8, 16, 64, 256)
    )
    assert compiler.active
    padded = np.concatenate([embedder.encode_text_queries([text]) for text in TEXTS])
    assert np.abs(padded - expected).max() <= 1e-5
    query_lengths = lengths[-len(TEXTS) :]
    assert len(lengths) == len(TEXTS)
    assert all(bucket in (8, 16, 64, 256) and bucket >= real for bucket, real in query_lengths)
    assert any(bucket > real for bucket, real in query_lengths)  # padding really happened
    # batches of several texts (indexing, evaluation) keep the eager path
    batched = embedder.encode_text_queries(TEXTS, batch_size=len(TEXTS))
    assert len(lengths) == len(TEXTS) and np.abs(batched - expected).max() <= 1e-5


def test_compile_failure_falls_back_to_eager_with_a_warning(embedder):
    expected = eager_vectors(embedder)

    def broken(*args):
        raise RuntimeError("inductor: no C++ compiler")

    compiler = embedder.backbone.compile_queries(compiler=lambda fn, **options: broken, force=True)
    with pytest.warns(RuntimeWarning, match="run eagerly: compiling failed .*no C\\+\\+ compiler"):
        vectors = np.concatenate([embedder.encode_text_queries([text]) for text in TEXTS])
    assert not compiler.active
    np.testing.assert_array_equal(vectors, expected)


def test_compiler_that_fails_at_setup_falls_back(embedder, caplog):
    caplog.set_level(logging.INFO, logger="mme5")

    def refusing(fn, **options):
        raise RuntimeError("Windows not yet supported for torch.compile")

    with pytest.warns(RuntimeWarning, match="compiling failed"):
        seconds = embedder.compile_queries(compiler=refusing, force=True)
    assert seconds >= 0 and not embedder.backbone.query_compiler.active
    assert "run eagerly (compiling failed (RuntimeError: Windows" in caplog.text


@pytest.mark.slow  # torch.compile of the whole forward
def test_forward_traces_as_one_graph(embedder):
    """Dynamo captures the whole text forward without graph breaks (what CUDA graphs need)."""
    expected = eager_vectors(embedder)
    compiler = embedder.backbone.compile_queries(
        compiler=lambda fn, mode, dynamic: torch.compile(fn, backend="eager", dynamic=dynamic, fullgraph=True),
        force=True,
        buckets=(64,),
    )
    vectors = np.concatenate([embedder.encode_text_queries([text]) for text in TEXTS[:2]])
    assert compiler.active, compiler.reason
    assert np.abs(vectors - expected[:2]).max() <= 1e-5


def test_buckets_from_the_environment(monkeypatch):
    monkeypatch.setenv("MME5_QUERY_BUCKETS", "64, 32")
    assert query_compile.default_buckets() == (32, 64)
    monkeypatch.setenv("MME5_QUERY_BUCKETS", "short")
    with pytest.raises(ValueError, match="MME5_QUERY_BUCKETS='short': give token lengths"):
        query_compile.default_buckets()
    monkeypatch.delenv("MME5_QUERY_BUCKETS")
    assert query_compile.default_buckets() == query_compile.BUCKETS
    assert query_compile.bucket_for(17, (16, 32)) == 32 and query_compile.bucket_for(33, (16, 32)) is None
