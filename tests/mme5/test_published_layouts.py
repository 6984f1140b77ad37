"""The published checkpoints' folder layouts (tiny random-weight replicas) load, index and serve.

The replicas (mme5/replica.py) have the Hub's file names, tokenizer and image-processor classes and
config formats, so a package the real download needs (sentencepiece + protobuf for the multilingual
SigLIP's SiglipTokenizer) is needed here too: hiding it must break the load, and requirements.txt
must name it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mme5 import load_embedder
from mme5.replica import NEEDS, REPLICAS

REPO = Path(__file__).resolve().parents[2]
PUBLISHED_CLASSES = {  # tokenizer_config.json tokenizer_class, preprocessor image_processor_type, loaded tokenizer
    "siglip-multilingual": ("SiglipTokenizer", "SiglipImageProcessor", "SiglipTokenizer"),
    "siglip2": ("GemmaTokenizer", "SiglipImageProcessor", "GemmaTokenizer"),
    "mllama": ("PreTrainedTokenizerFast", "MllamaImageProcessor", "TokenizersBackend"),
}

# Runs load_embedder with some packages made uninstalled: PathFinder, except that it cannot find them.
HIDDEN_LOAD = """
import importlib.machinery as machinery, sys
model, *hidden = sys.argv[1:]

class Hiding:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if any(name == h or name.startswith(h + ".") for h in hidden):
            return None
        return machinery.PathFinder.find_spec(name, path, target)
    @staticmethod
    def find_distributions(*args, **kwargs):
        return machinery.PathFinder.find_distributions(*args, **kwargs)
    @staticmethod
    def invalidate_caches():
        machinery.PathFinder.invalidate_caches()

sys.meta_path[:] = [Hiding if finder is machinery.PathFinder else finder for finder in sys.meta_path]
from mme5 import ModelLoadError, load_embedder
try:
    embedder = load_embedder(model, device="cpu")
except ModelLoadError as error:
    print(f"ModelLoadError: {error}", file=sys.stderr)
    sys.exit(3)
print(embedder.encode_text_queries(["un perro en la playa"]).shape)
"""


def load_with_hidden(model: Path, *hidden: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", HIDDEN_LOAD, str(model), *hidden],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )


def requirement_names() -> set[str]:
    names = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


@pytest.mark.parametrize("kind", sorted(REPLICAS))
def test_replica_has_the_published_files_and_loads_with_the_published_classes(replica_dirs, kind):
    folder = replica_dirs[kind]
    tokenizer_class, processor_type, loaded_class = PUBLISHED_CLASSES[kind]
    config = json.loads((folder / "config.json").read_text())
    assert config["transformers_version"].startswith("4.") and "text_config" in config and "vision_config" in config
    assert json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == tokenizer_class
    assert json.loads((folder / "preprocessor_config.json").read_text())["image_processor_type"] == processor_type

    embedder = load_embedder(str(folder), device="cpu")
    assert type(embedder.backbone.processor.tokenizer).__name__ == loaded_class
    assert type(embedder.backbone.processor.image_processor).__name__.startswith(processor_type)
    images = [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (30, 50), "blue")]
    image_vectors = embedder.encode_images(images)
    text_vectors = embedder.encode_text_queries(["a red circle", "un cuadrado azul"])
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1, atol=1e-5)
    assert np.abs(image_vectors[0] - image_vectors[1]).max() > 1e-4
    assert np.abs(text_vectors[0] - text_vectors[1]).max() > 1e-4


def test_multilingual_siglip_is_the_sentencepiece_layout_with_published_text_settings(replica_dirs):
    import sentencepiece

    folder = replica_dirs["siglip-multilingual"]
    assert sorted(path.name for path in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "special_tokens_map.json",
        "spiece.model",
        "tokenizer_config.json",
    ]
    pieces = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    assert [pieces.id_to_piece(i) for i in (1, 2)] == ["</s>", "<unk>"] and pieces.get_piece_size() > 50
    tokenizer = load_embedder(str(folder), device="cpu").backbone.processor.tokenizer
    assert tokenizer.model_max_length == 64
    assert tokenizer("A RED Circle").input_ids == tokenizer("a red circle").input_ids  # do_lower_case, as published


def test_mmE5_replica_keeps_the_4_4x_weight_names_and_they_really_load(replica_dirs):
    from safetensors import safe_open
    from transformers import MllamaForConditionalGeneration

    folder = replica_dirs["mllama"]
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    names = set(index["weight_map"])
    assert {"language_model.lm_head.weight", "language_model.model.embed_tokens.weight"} <= names
    assert any(name.startswith("vision_model.") for name in names)
    assert any(name.startswith("multi_modal_projector.") for name in names)
    assert not any(name.startswith("model.") for name in names)
    shard = index["weight_map"]["language_model.model.embed_tokens.weight"]
    with safe_open(str(folder / shard), "pt") as weights:
        stored = weights.get_tensor("language_model.model.embed_tokens.weight")
    assert stored.dtype == torch.bfloat16  # as published
    loaded = MllamaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).get_input_embeddings().weight
    np.testing.assert_array_equal(loaded.detach().numpy(), stored.float().numpy())  # mapped, not freshly initialised


@pytest.mark.slow  # builds, indexes and serves in subprocesses: ~140 s at load average ~10 on 2 cores
def test_a_package_the_published_siglip_needs_is_required(replica_dirs):
    """Hiding sentencepiece or protobuf breaks the load with advice; with both present it works; both are listed."""
    folder = replica_dirs["siglip-multilingual"]
    present = load_with_hidden(folder)
    assert present.returncode == 0 and "(1, 32)" in present.stdout, present.stderr[-2000:]
    listed = requirement_names()
    distributions = packages_distributions()
    assert NEEDS["siglip-multilingual"]
    for module in NEEDS["siglip-multilingual"]:
        hidden = load_with_hidden(folder, module)
        assert hidden.returncode == 3, hidden.stderr[-2000:]
        assert "pip install -r requirements.txt" in hidden.stderr and "Traceback" not in hidden.stderr
        owners = {name.lower() for name in distributions[module.split(".")[0]]}
        if module == "google.protobuf":
            owners &= {"protobuf"}
        assert owners & listed, f"{module} (from {owners}) is needed but requirements.txt does not list it"


@pytest.mark.slow  # builds, indexes and serves in subprocesses: ~140 s at load average ~10 on 2 cores
def test_the_other_replicas_need_no_sentencepiece(replica_dirs):
    """SigLIP 2 and mmE5 ship tokenizer.json: they load through `tokenizers` alone."""
    for kind in ("siglip2", "mllama"):
        assert NEEDS[kind] == ()
        result = load_with_hidden(replica_dirs[kind], "sentencepiece", "google.protobuf")
        assert result.returncode == 0, result.stderr[-2000:]
