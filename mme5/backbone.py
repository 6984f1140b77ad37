"""What every backbone offers the Embedder: collate a batch, embed it, pool, normalise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

MAX_TEXT_TOKENS = 256  # mmE5 training max_len; longer inputs are truncated as in training


@dataclass
class EmbedInput:
    """One thing to embed: the backbone-formatted text and/or an image (path or PIL)."""

    text: str | None = None
    image: Any = None
    name: str = ""

    @property
    def has_image(self) -> bool:
        return self.image is not None


@dataclass
class Batch:
    """Model-ready tensors plus how many texts were truncated."""

    tensors: dict
    truncated: int = 0


def batch_texts(items: list[EmbedInput]) -> list[str]:
    """The texts of a batch that group_key made all-text; a missing one is a caller's bug, named here."""
    texts = [item.text for item in items]
    missing = [item.name or f"#{index}" for index, item in enumerate(items) if item.text is None]
    if missing:
        raise ValueError(f"a text batch has inputs without text: {', '.join(missing[:5])}")
    return [text for text in texts if text is not None]


class Backbone:
    """Base class. Subclasses hold a transformers ``model`` and its ``processor``.

    ``model`` is the full transformers model as loaded, so peft adapters (trained by
    ``trainer``) attach to the same module names at training and at load time.
    """

    family: str = ""
    max_text_tokens: int = MAX_TEXT_TOKENS
    runtime: str = "torch"  # the engine that runs the forward pass (see mme5.registry.RUNTIMES)
    quantization: str | None = None  # e.g. "int8": weights changed, so the vectors are another space

    def __init__(self, model: torch.nn.Module, processor, device: torch.device, dtype: torch.dtype):
        # Any: a transformers model's config and sub-modules are dynamic attributes (torch types them Tensor | Module)
        self.model: Any = model
        self.processor = processor
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    def wrap(
        cls, model: torch.nn.Module, processor, device: torch.device, dtype: torch.dtype, source: str = "", **options
    ):
        """The backbone for a loaded model; ``source`` (its hub id or folder) and ``options`` may tune it."""
        return cls(model, processor, device, dtype, **options)

    # -- properties the Embedder uses -------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def image_draft_size(self) -> int:
        """Smallest square a JPEG may be DCT-downscaled to without losing model input detail."""
        raise NotImplementedError

    def group_key(self, item: EmbedInput) -> tuple:
        """Inputs in one forward pass must share this key."""
        return (item.has_image,)

    def cost_key(self, item: EmbedInput, image_size: tuple[int, int] | None) -> tuple:
        """Sort key that puts inputs with similar padding needs next to each other."""
        return (len(item.text or ""),)

    # -- the forward path (also used, with gradients, by the trainer) -----------------
    def collate(self, items: list[EmbedInput]) -> Batch:
        raise NotImplementedError

    def embed(self, batch: Batch) -> torch.Tensor:
        """L2-normalised float32 embeddings (n, dim); keeps autograd when enabled."""
        raise NotImplementedError

    def to_device(self, tensors: dict) -> dict:
        moved = {}
        for key, value in tensors.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=True)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            moved[key] = value
        return moved


def normalize(vectors: torch.Tensor) -> torch.Tensor:
    return F.normalize(vectors.float(), p=2, dim=-1)
