"""Shared fixtures: tiny random-weight models, built offline once per test session."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch a hub
# ONNX exports of the tiny models go to a per-run cache, never the user's (subprocesses inherit it).
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

os.environ["MME5_CACHE_DIR"] = tempfile.mkdtemp(prefix="mme5-test-cache-")
atexit.register(shutil.rmtree, os.environ["MME5_CACHE_DIR"], True)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_mllama_dir(tmp_path_factory):
    from mme5.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-mllama", backbone="mllama")


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory):
    from mme5.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-siglip", backbone="siglip")


@pytest.fixture(scope="session")
def tiny_mllama(tiny_mllama_dir):
    from mme5 import load_embedder

    return load_embedder(str(tiny_mllama_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_siglip(tiny_siglip_dir):
    from mme5 import load_embedder

    return load_embedder(str(tiny_siglip_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_siglip_torch(tiny_siglip_dir):
    """The tiny SigLIP on the torch runtime (``tiny_siglip`` uses ONNX Runtime on the CPU when installed)."""
    from mme5 import load_embedder

    return load_embedder(str(tiny_siglip_dir), device="cpu", runtime="torch")
