"""Make an mme5 Embedder trainable: peft LoRA/DoRA on the full transformers model, or full fine-tuning.

LoRA attaches to ``embedder.backbone.model`` in place, so the forward path stays mme5's
and the saved adapter has the module names ``mme5.load_embedder(adapter=...)`` expects.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from mme5 import registry

# The reference's --lora_target_modules default (src/arguments.py of haon-chen/mmE5), written for
# Phi-3.5-V/LLaVA/Mllama alike. peft matches it by module name, so on Mllama only q/k/v/o_proj
# (text self- and cross-attention, vision attention) and the text MLP's down_proj take LoRA
# (~18.5M trainable parameters at r 8 with DoRA): gate/up_proj and the vision fc1/fc2 are left out.
# What it matches in each family is the registry's ``lora_targets``; "wide" is ``wide_lora_targets``.
REFERENCE_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj", "k_proj", "q_proj", "out_proj", "v_proj"]
TARGET_PRESETS = {
    "mme5": {family: list(spec.lora_targets) for family, spec in registry.BACKBONES.items()},
    "wide": {family: list(spec.wide_lora_targets) for family, spec in registry.BACKBONES.items()},
}
DEFAULT_TARGETS = TARGET_PRESETS["mme5"]


def resolve_targets(spec: str | list[str] | None, family: str) -> list[str]:
    """``None``/"" or a preset name ("mme5", "wide") or a comma-separated module-name list -> names."""
    if not spec:
        spec = "mme5"
    if isinstance(spec, str):
        if spec.strip() in TARGET_PRESETS:
            return list(TARGET_PRESETS[spec.strip()][family])
        spec = spec.split(",")
    names = [name.strip() for name in spec if name.strip()]
    if not names:
        raise ValueError("--lora-targets is empty: give a preset (mme5, wide) or module names like q_proj,v_proj")
    return names


@dataclass
class LoraSettings:
    """mmE5's defaults (scripts/train/train.sh and src/arguments.py of the reference)."""

    r: int = 8
    alpha: int = 64
    dropout: float = 0.1
    dora: bool = True
    init: str = "gaussian"
    targets: list[str] | str = field(default_factory=list)  # empty: the "mme5" preset; or "wide", or names


def make_trainable(embedder, lora: LoraSettings | None, gradient_checkpointing: bool = True):
    """Put the model in training mode; returns the PeftModel (LoRA) or the model itself (full)."""
    if embedder.runtime != "torch":
        raise ValueError(f"training needs the torch runtime, not {embedder.runtime!r}: load with runtime='torch'")
    model = embedder.backbone.model
    model.train()
    if gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False):
        model.activation_checkpointing_enable({"use_reentrant": False})
        checkpoint_plain_layers(model)
    if lora is None:
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        use_dora=lora.dora,
        init_lora_weights=lora.init if lora.init != "default" else True,
        target_modules=resolve_targets(lora.targets, embedder.family),
    )
    with warnings.catch_warnings():  # peft still asks the deprecated is_gradient_checkpointing
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(model, config)  # injects LoRA layers into `model` itself
    peft_model.train()
    return peft_model


def checkpoint_plain_layers(model: torch.nn.Module) -> int:
    """Checkpoint encoder layers that transformers' switch leaves out; returns how many.

    transformers 5 checkpoints only ``GradientCheckpointingLayer`` subclasses, and
    Mllama's 40 vision-encoder layers are not among them: without this, LoRA training of
    the full-size model keeps ~100 GB of vision activations for ten 4-tile images.
    The layer's own ``forward`` is wrapped (not the module replaced), so parameter and
    adapter names stay exactly as mme5 loads them.
    """
    from torch.utils.checkpoint import checkpoint
    from transformers.modeling_layers import GradientCheckpointingLayer

    wrapped = 0
    for module in model.modules():
        layers = getattr(module, "layers", None)
        if not hasattr(module, "gradient_checkpointing") or not isinstance(layers, torch.nn.ModuleList):
            continue
        for layer in layers:
            if isinstance(layer, GradientCheckpointingLayer) or getattr(layer, "_mme5_checkpointed", False):
                continue
            original = layer.forward

            def forward(*args, _original=original, _layer=layer, **kwargs):
                if _layer.training and torch.is_grad_enabled():
                    return checkpoint(_original, *args, use_reentrant=False, **kwargs)
                return _original(*args, **kwargs)

            layer.forward = forward
            layer._mme5_checkpointed = True
            wrapped += 1
    return wrapped


def trainable_parameters(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: parameter for name, parameter in module.named_parameters() if parameter.requires_grad}


def save_weights(trained, embedder, out_dir, full: bool) -> None:
    """Adapter (peft format) for LoRA, or a complete model folder for full fine-tuning."""
    if full:
        embedder.backbone.model.save_pretrained(out_dir)
        embedder.backbone.processor.save_pretrained(out_dir)
    else:
        trained.save_pretrained(out_dir)
