"""Make an mme5 Embedder trainable: peft LoRA/DoRA on the full transformers model, or full fine-tuning.

LoRA attaches to ``embedder.backbone.model`` in place, so the forward path stays mme5's
and the saved adapter has the module names ``mme5.load_embedder(adapter=...)`` expects.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from mme5 import registry

# Attention and MLP projections of each family (text and vision towers alike), from the registry.
DEFAULT_TARGETS = {family: list(spec.lora_targets) for family, spec in registry.BACKBONES.items()}


@dataclass
class LoraSettings:
    """mmE5's defaults (scripts/train/train.sh of the reference)."""

    r: int = 8
    alpha: int = 64
    dropout: float = 0.1
    dora: bool = True
    init: str = "gaussian"
    targets: list[str] = field(default_factory=list)  # empty: DEFAULT_TARGETS of the family


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
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, use_dora=lora.dora,
        init_lora_weights=lora.init if lora.init != "default" else True,
        target_modules=lora.targets or list(embedder.spec.lora_targets),
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
