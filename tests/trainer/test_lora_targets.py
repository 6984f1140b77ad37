"""LoRA targets: the default is what the reference's target list matches, the wide set is an option."""

from __future__ import annotations

import pytest
import torch

from trainer.model import REFERENCE_TARGETS, TARGET_PRESETS, LoraSettings, make_trainable, resolve_targets


def lora_counts(model: torch.nn.Module, targets: set[str], r: int = 8) -> int:
    """Trainable LoRA+DoRA parameters: r*(in+out) per adapted Linear, plus DoRA's magnitude (out)."""
    return sum(
        r * (m.in_features + m.out_features) + m.out_features
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets
    )


def adapted(tiny_mllama_dir, targets) -> tuple[set[str], int]:
    """(module-name suffixes that got LoRA, trainable parameter count) on a fresh tiny Mllama."""
    from mme5 import load_embedder

    embedder = load_embedder(str(tiny_mllama_dir), device="cpu")
    peft_model = make_trainable(embedder, LoraSettings(targets=targets), gradient_checkpointing=False)
    names = {
        name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in peft_model.named_parameters() if ".lora_A." in name
    }
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return names, trainable


def test_default_is_exactly_what_the_reference_list_matches_on_mllama(tiny_mllama_dir):
    reference, reference_count = adapted(tiny_mllama_dir, list(REFERENCE_TARGETS))
    default, default_count = adapted(tiny_mllama_dir, [])
    assert default == reference == {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"}
    assert default_count == reference_count


def test_wide_preset_adds_gate_up_and_vision_mlp(tiny_mllama_dir):
    wide, wide_count = adapted(tiny_mllama_dir, "wide")
    assert wide == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc1", "fc2"}
    _, default_count = adapted(tiny_mllama_dir, "mme5")
    assert wide_count > default_count


def test_full_size_counts_match_the_reference_figures(tiny_mllama_dir):
    """18.5M trainable (reference) vs 35.8M (wide) on Llama-3.2-11B-Vision, counted on the meta device."""
    from transformers import MllamaForConditionalGeneration

    from mme5.tiny import mllama_config

    _, tiny_count = adapted(tiny_mllama_dir, "mme5")  # the formula agrees with peft on a real model first
    with torch.device("meta"):
        tiny = MllamaForConditionalGeneration(mllama_config("tiny"))
        full = MllamaForConditionalGeneration(mllama_config("full"))
    assert lora_counts(tiny, set(TARGET_PRESETS["mme5"]["mllama"])) == tiny_count
    assert lora_counts(full, set(TARGET_PRESETS["mme5"]["mllama"])) / 1e6 == pytest.approx(18.47, abs=0.01)
    assert lora_counts(full, set(TARGET_PRESETS["wide"]["mllama"])) / 1e6 == pytest.approx(35.77, abs=0.01)


def test_target_specs():
    assert resolve_targets(None, "mllama") == TARGET_PRESETS["mme5"]["mllama"]
    assert resolve_targets("q_proj, v_proj", "mllama") == ["q_proj", "v_proj"]
    assert resolve_targets(["q_proj"], "dual") == ["q_proj"]
    with pytest.raises(ValueError, match="--lora-targets is empty"):
        resolve_targets(" , ", "mllama")
