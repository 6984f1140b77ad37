"""The factory: local folders, plain from_pretrained, adapters, and fast offline failures."""

import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mme5 import ModelLoadError, load_embedder
from mme5.loading import make_backbone


def test_tiny_models_load_with_plain_from_pretrained(tiny_mllama_dir, tiny_siglip_dir):
    from transformers import AutoProcessor, MllamaForConditionalGeneration, SiglipModel

    assert MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir).config.model_type == "mllama"
    assert AutoProcessor.from_pretrained(tiny_mllama_dir).tokenizer.padding_side == "right"
    assert SiglipModel.from_pretrained(tiny_siglip_dir).config.model_type == "siglip"


def test_tiny_build_is_deterministic(tmp_path):
    from mme5.tiny import build_tiny

    first = load_embedder(str(build_tiny(tmp_path / "a")), device="cpu").encode_texts(["hola"])
    second = load_embedder(str(build_tiny(tmp_path / "b")), device="cpu").encode_texts(["hola"])
    np.testing.assert_array_equal(first, second)


def test_hub_id_without_network_fails_fast_with_advice():
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as error:
        load_embedder("intfloat/mmE5-mllama-11b-instruct", device="cpu")
    assert time.monotonic() - started < 10
    assert "--model" in str(error.value) and "local" in str(error.value)


def test_missing_folder_and_foreign_model_type(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_embedder(str(tmp_path / "absent"), device="cpu")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelLoadError, match="not supported"):
        load_embedder(str(tmp_path / "bert"), device="cpu")


def lora_adapter(model, out, use_dora=False):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights="gaussian", use_dora=use_dora
    )
    peft_model = get_peft_model(model, config)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)  # peft starts B at zero; make the adapter do something
    peft_model.save_pretrained(out)
    return out


def test_adapter_changes_vectors_and_equals_merging_by_hand(tiny_mllama_dir, tmp_path):
    from transformers import AutoProcessor, MllamaForConditionalGeneration
    from safetensors.torch import load_file

    adapter = lora_adapter(MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir), tmp_path / "lora")
    base = load_embedder(str(tiny_mllama_dir), device="cpu")
    adapted = load_embedder(str(tiny_mllama_dir), device="cpu", adapter=str(adapter))
    images = [Image.new("RGB", (30, 50), "red")]
    assert np.abs(base.encode_images(images) - adapted.encode_images(images)).max() > 1e-3

    model = MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir)
    weights = load_file(adapter / "adapter_model.safetensors")
    scale = 8 / 4
    modules = dict(model.named_modules())
    merged = 0
    for key, lora_a in weights.items():
        if ".lora_A." not in key:
            continue
        lora_b = weights[key.replace(".lora_A.", ".lora_B.")]
        module_name = key.split("base_model.model.", 1)[1].split(".lora_A.")[0]
        with torch.no_grad():
            modules[module_name].weight += scale * lora_b @ lora_a
        merged += 1
    assert merged > 0
    by_hand = base.__class__(
        make_backbone(
            "mllama", model.eval(), AutoProcessor.from_pretrained(tiny_mllama_dir), torch.device("cpu"), torch.float32
        ),
        "by-hand",
    )
    np.testing.assert_allclose(by_hand.encode_images(images), adapted.encode_images(images), atol=1e-5)
    np.testing.assert_allclose(
        by_hand.encode_text_queries(["un perro"]), adapted.encode_text_queries(["un perro"]), atol=1e-5
    )
    assert adapted.fingerprint != base.fingerprint


def test_dora_adapter_loads(tiny_mllama_dir, tmp_path):
    from transformers import MllamaForConditionalGeneration

    adapter = lora_adapter(MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir), tmp_path / "dora", True)
    base = load_embedder(str(tiny_mllama_dir), device="cpu").encode_texts(["x"])
    adapted = load_embedder(str(tiny_mllama_dir), device="cpu", adapter=str(adapter)).encode_texts(["x"])
    assert np.abs(base - adapted).max() > 1e-3


def test_bad_adapter_folder(tiny_mllama_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="not a peft adapter"):
        load_embedder(str(tiny_mllama_dir), device="cpu", adapter=str(tmp_path))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mme5", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # CLI subprocesses: 182 s at load average ~10 on 2 cores
def test_cli_tiny_and_embed_json(tmp_path):
    import json

    built = run_cli("tiny", "--out", str(tmp_path / "m"), "--backbone", "siglip")
    assert built.returncode == 0, built.stderr
    result = run_cli("embed", "--model", str(tmp_path / "m"), "--text", "un gato", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["dim"] == 32 and len(payload["embedding"]) == 32 and payload["kind"] == "text_query"
    image = tmp_path / "a.png"
    Image.new("RGB", (20, 20), "red").save(image)
    composed = run_cli("embed", "--model", str(tmp_path / "m"), "--image", str(image), "--text", "at night")
    assert composed.returncode == 0 and len(composed.stdout.split()) == 32
    missing = run_cli("embed", "--model", str(tmp_path / "m"), "--image", str(tmp_path / "none.jpg"))
    assert missing.returncode == 1 and "none.jpg: file not found" in missing.stderr


def test_default_model_on_cpu_is_small_siglip_and_the_choice_is_printed(capsys):
    from mme5 import CPU_MODEL_ID, default_model_id

    assert default_model_id("cpu") == CPU_MODEL_ID
    with pytest.raises(ModelLoadError, match="siglip-base-patch16-256-multilingual"):
        load_embedder(device="cpu")
    assert f"using {CPU_MODEL_ID} on cpu" in capsys.readouterr().err


def test_random_architecture_embedder_runs_the_same_path():
    """benchmarks build full-size mmE5 this way on a GPU; the tiny size checks the code path here."""
    from mme5.tiny import random_mme5_embedder

    embedder = random_mme5_embedder("tiny", device="cpu", dtype=torch.float32)
    vectors = embedder.encode_images([Image.new("RGB", (40, 30), "red"), Image.new("RGB", (30, 30), "blue")])
    assert vectors.shape == (2, 64) and abs(float(vectors[0] @ vectors[1])) < 0.9999


def test_siglip2_checkpoints_get_lower_cased_text(tiny_siglip_dir, tmp_path):
    """SigLIP 2 was trained on lower-cased captions; SigLIP 1 is case-sensitive."""
    import shutil

    siglip2 = tmp_path / "tiny-siglip2-base"
    shutil.copytree(tiny_siglip_dir, siglip2)
    upper, lower = ["A RED CIRCLE"], ["a red circle"]
    v2 = load_embedder(str(siglip2), device="cpu")
    np.testing.assert_allclose(v2.encode_texts(upper), v2.encode_texts(lower), atol=1e-6)
    v1 = load_embedder(str(tiny_siglip_dir), device="cpu")
    assert np.abs(v1.encode_texts(upper) - v1.encode_texts(lower)).max() > 1e-4
