"""SigLIP-family dual encoders: a small multilingual model for people without a GPU."""

from __future__ import annotations

import torch

from .backbone import Backbone, Batch, EmbedInput, batch_texts, normalize

SIGLIP_TEXT_TOKENS = 64  # SigLIP was trained on max_length=64 padded text; dynamic padding wrecks retrieval


def _features(output) -> torch.Tensor:
    """transformers 4.x returns a tensor, 5.x a ModelOutput whose pooler_output is the feature."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def wants_lowercase(source, config) -> bool:
    """SigLIP 2 checkpoints were trained on lower-cased text."""
    return "siglip2" in str(source).lower() or bool(getattr(config, "mme5_lowercase_text", False))


class DualEncoderBackbone(Backbone):
    """Image and text towers; a composed query is the normalised sum of both vectors."""

    family = "dual"
    max_text_tokens = SIGLIP_TEXT_TOKENS

    def __init__(self, model, processor, device, dtype, lowercase: bool = False):
        super().__init__(model, processor, device, dtype)
        self.tokenizer = processor.tokenizer
        self.lowercase = lowercase  # SigLIP 2 checkpoints were trained on lower-cased text
        size = processor.image_processor.size
        self.image_side = int(size.get("height") or size.get("shortest_edge"))

    @classmethod
    def wrap(cls, model, processor, device, dtype, source: str = "", fast_attention=None, **options):
        """``fast_attention`` is Mllama's (its vision mask); SigLIP's attention has no mask to drop."""
        return cls(model, processor, device, dtype, lowercase=wants_lowercase(source, model.config), **options)

    @property
    def config(self):
        return self.model.config

    @property
    def dim(self) -> int:
        return int(self.config.vision_config.hidden_size)

    @property
    def image_draft_size(self) -> int:
        return self.image_side

    def group_key(self, item: EmbedInput) -> tuple:
        return (item.has_image, item.text is not None)

    def collate(self, items: list[EmbedInput]) -> Batch:
        tensors: dict = {}
        truncated = 0
        if items[0].text is not None:
            texts = [text.lower() if self.lowercase else text for text in batch_texts(items)]
            lengths = [len(ids) for ids in self.tokenizer(texts)["input_ids"]]
            truncated = sum(length > self.max_text_tokens for length in lengths)
            encoded = self.tokenizer(
                texts, padding="max_length", max_length=self.max_text_tokens, truncation=True, return_tensors="pt"
            )
            tensors["input_ids"] = encoded["input_ids"]  # no attention mask: SigLIP attends to padding as trained
        if items[0].has_image:
            pixels = self.processor.image_processor([item.image for item in items], return_tensors="pt")
            tensors["pixel_values"] = pixels["pixel_values"]
        return Batch(tensors, truncated)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image tower's pooled output (before normalisation)."""
        return _features(self.model.get_image_features(pixel_values=pixel_values))

    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The text tower's pooled output (before normalisation)."""
        return _features(self.model.get_text_features(input_ids=input_ids))

    def embed(self, batch: Batch) -> torch.Tensor:
        tensors = self.to_device(batch.tensors)
        vectors: torch.Tensor | None = None
        if "pixel_values" in tensors:
            vectors = normalize(self.image_features(tensors["pixel_values"]))
        if "input_ids" in tensors:
            text = normalize(self.text_features(tensors["input_ids"]))
            vectors = text if vectors is None else vectors + text
        if vectors is None:  # collate always sets one of the two
            raise ValueError("a batch with neither pixel_values nor input_ids has nothing to embed")
        return normalize(vectors)
