"""Shared fixtures: tiny random-weight models, built offline once per test session."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch a hub
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
def replica_dirs(tmp_path_factory):
    """Tiny copies of the published checkpoints' folders (mme5/replica.py), named like the hub repos."""
    from mme5.replica import REPLICAS, build_replica, folder_name

    root = tmp_path_factory.mktemp("replicas")
    return {kind: build_replica(root / folder_name(kind), kind) for kind in REPLICAS}
