"""Dataset texts (MMEB placeholders) -> mme5 inputs, and embedding them with autograd.

The rewrite itself lives in :mod:`mme5.prompts` (picked per family by :mod:`mme5.registry`);
this module only groups inputs the way the backbone batches them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from mme5 import EmbedInput, registry


def to_input(family: str, text: str, image: str | None) -> EmbedInput:
    """One dataset text (with ``<|image_1|>\\n``) and optional image path as an EmbedInput."""
    formatted = registry.by_family(family).dataset_text(text or "", image is not None)
    name = image if image is not None else (text[:60] or "<empty>")
    return EmbedInput(text=formatted, image=image, name=name)


def input_key(item: EmbedInput) -> tuple:
    """Identity of an input, so each unique one is embedded once."""
    return (item.text, None if item.image is None else str(item.image))


def embed_with_grad(embedder, items: Sequence[EmbedInput]) -> torch.Tensor:
    """Embeddings (n, dim) in input order, with autograd, through ``Embedder.forward``.

    A backbone batches only like inputs together (image vs text, ...), so mixed lists
    are split by ``backbone.group_key`` and the pieces put back in order.
    """
    groups: dict[tuple, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(embedder.backbone.group_key(item), []).append(index)
    if len(groups) == 1:
        return embedder.forward(list(items))
    order, parts = [], []
    for indices in groups.values():
        parts.append(embedder.forward([items[index] for index in indices]))
        order.extend(indices)
    stacked = torch.cat(parts)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return stacked[inverse.to(stacked.device)]
