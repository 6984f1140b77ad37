"""SigLIP on ONNX Runtime: the CPU default, same vectors as torch, exported once, int8 only on request."""

import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from mme5 import ModelLoadError, load_embedder
from mme5 import onnx_runtime
from mme5.registry import QueryKind

IMAGES = [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (64, 64), "navy"), Image.new("RGB", (20, 50), "olive")]
TEXTS = ["a red square", "un perro en la playa", "赤い丸 at night"]


def all_queries(embedder):
    return {
        "documents": embedder.encode_images(IMAGES),
        "text documents": embedder.encode_texts(TEXTS),
        **{
            kind.value: embedder.encode_query(
                kind, texts=TEXTS if kind.needs_text else None, images=IMAGES if kind.needs_image else None
            )
            for kind in QueryKind
        },
    }


def test_cpu_default_is_onnx_with_the_torch_vectors_and_vector_space(tiny_siglip, tiny_siglip_torch):
    assert (tiny_siglip.runtime, tiny_siglip.quantization) == ("onnx", None)
    assert tiny_siglip_torch.runtime == "torch"
    assert tiny_siglip.fingerprint == tiny_siglip_torch.fingerprint  # one vector space: indexes interchange
    onnx, torch_ = all_queries(tiny_siglip), all_queries(tiny_siglip_torch)
    for name in onnx:
        assert np.abs(onnx[name] - torch_[name]).max() < 1e-4, name
        assert np.abs(onnx[name] - onnx["documents"]).max() > 1e-3 or name in ("documents", "image")


def test_export_happens_once_and_a_moved_copy_of_the_model_reuses_it(tiny_siglip_dir, tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO, logger="mme5")
    first = load_embedder(str(tiny_siglip_dir), device="cpu", runtime="onnx")
    capfd.readouterr()
    caplog.clear()
    copy = shutil.copytree(tiny_siglip_dir, tmp_path / "elsewhere" / "same-model")
    again = load_embedder(str(copy), device="cpu", runtime="onnx")
    assert again.backbone.folder == first.backbone.folder
    assert "ONNX export" not in capfd.readouterr().err and "exporting" not in caplog.text
    np.testing.assert_array_equal(again.encode_text_queries(TEXTS), first.encode_text_queries(TEXTS))


def test_an_interrupted_export_leaves_no_cache_entry_and_the_next_start_exports(
    tiny_siglip_dir, tmp_path, monkeypatch, capfd, caplog
):
    caplog.set_level(logging.INFO, logger="mme5")
    monkeypatch.setenv("MME5_CACHE_DIR", str(tmp_path / "cache"))
    real = onnx_runtime._export_tower

    def interrupted(backbone, tower, path):
        real(backbone, tower, path)
        if tower == "text":
            raise KeyboardInterrupt

    monkeypatch.setattr(onnx_runtime, "_export_tower", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_embedder(str(tiny_siglip_dir), device="cpu", runtime="onnx")
    assert list((tmp_path / "cache" / "onnx").iterdir()) == []  # neither a half export nor its temp folder
    monkeypatch.setattr(onnx_runtime, "_export_tower", real)
    capfd.readouterr()
    caplog.clear()
    embedder = load_embedder(str(tiny_siglip_dir), device="cpu", runtime="onnx")
    assert "ONNX export" in capfd.readouterr().err  # the progress bar, on stderr
    assert "exporting" in caplog.text  # the note (the commands print it on stderr: mme5.cli.show_messages)
    assert embedder.encode_images(IMAGES[:1]).shape == (1, 32)


def test_int8_is_opt_in_close_to_fp32_and_a_different_vector_space(tiny_siglip_dir, tiny_siglip):
    int8 = load_embedder(str(tiny_siglip_dir), runtime="onnx-int8")
    assert (int8.runtime, int8.quantization, str(int8.device)) == ("onnx-int8", "int8", "cpu")
    assert int8.fingerprint != tiny_siglip.fingerprint and "int8" in int8.fingerprint
    fp32, quantised = tiny_siglip.encode_images(IMAGES), int8.encode_images(IMAGES)
    assert np.abs(fp32 - quantised).max() > 1e-6  # really other weights
    assert (fp32 * quantised).sum(axis=1).min() > 0.8  # but the same model


def test_runtime_requests_that_cannot_work_say_why(tiny_mllama_dir, tiny_siglip_dir):
    with pytest.raises(ModelLoadError, match="runtime 'onnx' is not available for mllama models; choose one of torch"):
        load_embedder(str(tiny_mllama_dir), device="cpu", runtime="onnx")
    with pytest.raises(ModelLoadError, match="unknown runtime 'tensorrt'"):
        load_embedder(str(tiny_siglip_dir), device="cpu", runtime="tensorrt")
    with pytest.raises(ModelLoadError, match="runs on the CPU"):
        load_embedder(str(tiny_siglip_dir), device="cuda", runtime="onnx")
    assert load_embedder(str(tiny_mllama_dir), device="cpu").runtime == "torch"  # auto: torch where ONNX is not offered


def test_an_adapter_gets_its_own_export_with_the_adapted_vectors(tiny_siglip_dir, tiny_siglip, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import SiglipModel

    model = get_peft_model(
        SiglipModel.from_pretrained(tiny_siglip_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "lora")
    onnx = load_embedder(str(tiny_siglip_dir), device="cpu", adapter=str(tmp_path / "lora"))
    torch_ = load_embedder(str(tiny_siglip_dir), device="cpu", adapter=str(tmp_path / "lora"), runtime="torch")
    assert onnx.runtime == "onnx" and onnx.backbone.folder != tiny_siglip.backbone.folder
    assert np.abs(onnx.encode_images(IMAGES) - torch_.encode_images(IMAGES)).max() < 1e-4
    assert np.abs(onnx.encode_images(IMAGES) - tiny_siglip.encode_images(IMAGES)).max() > 1e-3
