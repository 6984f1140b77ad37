"""mmE5 on the Mllama (Llama-3.2-Vision) backbone, exactly as the reference pools it."""

from __future__ import annotations

import torch

from . import fast_attention as fast_attention_module
from . import prompts
from .backbone import Backbone, Batch, EmbedInput, batch_texts, normalize


class MllamaBackbone(Backbone):
    """Last non-pad token of the final (normed) hidden state, right padding, L2 norm."""

    family = "mllama"
    #: Optional SDPA backend priority, e.g. ["cudnn", "efficient"]; None lets torch choose.
    sdpa_backends: list[str] | None = None

    def __init__(self, model, processor, device, dtype, fast_attention: bool | None = None):
        super().__init__(model, processor, device, dtype)
        self.fast_attention = fast_attention_module.wanted(self.device, fast_attention)
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "right"
        image_processor = processor.image_processor
        self.tile_size = int(image_processor.size["height"])
        self.max_tiles = int(image_processor.max_image_tiles)

    @property
    def fast_attention(self) -> bool:
        """Exact mask-free vision attention (mme5.fast_attention) instead of the stock masked SDPA."""
        return fast_attention_module.is_enabled(self.model)

    @fast_attention.setter
    def fast_attention(self, on: bool) -> None:
        fast_attention_module.set_fast_attention(self.model, bool(on))

    def image_activation_bytes(self) -> int:
        """Peak GPU bytes one image adds to a forward (mme5.gpu_memory): every image runs as max_tiles tiles."""
        from .gpu_memory import image_activation_bytes

        vision = self.model.config.vision_config
        tokens = (vision.image_size // vision.patch_size) ** 2 + 1
        tokens += (8 - tokens % 8) % 8  # Mllama pads each tile's patches to a multiple of 8
        return image_activation_bytes(self.max_tiles, tokens, vision.hidden_size, torch.finfo(self.dtype).bits // 8)

    @property
    def dim(self) -> int:
        return int(self.model.config.text_config.hidden_size)

    @property
    def image_draft_size(self) -> int:
        return 2 * self.tile_size

    def tiles_for(self, image_size: tuple[int, int]) -> int:
        """Number of tiles the processor will cut an image of this size into."""
        from transformers.models.mllama.image_processing_pil_mllama import get_optimal_tiled_canvas

        width, height = image_size
        if not width or not height:
            return 0
        canvas_height, canvas_width = get_optimal_tiled_canvas(
            max(height, 2), max(width, 2), self.max_tiles, self.tile_size
        )
        return int((canvas_height // self.tile_size) * (canvas_width // self.tile_size))

    def cost_key(self, item: EmbedInput, image_size=None) -> tuple:
        tiles = self.tiles_for(image_size) if image_size else 0
        return (tiles, len(item.text or ""))

    def token_lengths(self, texts: list[str]) -> list[int]:
        """Token counts exactly as the processor will see the texts (BOS inserted)."""
        from transformers.models.mllama.processing_mllama import build_string_from_input

        with_bos = [build_string_from_input(text, prompts.BOS, prompts.IMAGE_TOKEN) for text in texts]
        return [len(ids) for ids in self.tokenizer(with_bos)["input_ids"]]

    def _attention_backends(self):
        """Vision attention always carries a padding mask, so torch picks a masked kernel;
        on Hopper cuDNN's can beat it. Opt-in (benchmarked in benchmarks/NOTES.md)."""
        import contextlib

        if not self.sdpa_backends or self.device.type != "cuda":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        names = {
            "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "flash": SDPBackend.FLASH_ATTENTION,
            "math": SDPBackend.MATH,
        }
        return sdpa_kernel([names[name] for name in self.sdpa_backends], set_priority=True)

    def collate(self, items: list[EmbedInput]) -> Batch:
        texts = batch_texts(items)
        truncated = sum(length > self.max_text_tokens for length in self.token_lengths(texts))
        images = [[item.image] for item in items] if items[0].has_image else None
        tensors = self.processor(
            text=texts,
            images=images,
            padding=True,
            truncation=True,
            max_length=self.max_text_tokens,
            return_tensors="pt",
        )
        tensors.pop("token_type_ids", None)
        return Batch(dict(tensors), truncated)

    def embed(self, batch: Batch) -> torch.Tensor:
        if self.query_compiler is not None:  # one text query: the compiled path, if it takes it
            fast = self.query_compiler.run(batch.tensors)
            if fast is not None:
                return fast
        tensors = self.to_device(batch.tensors)
        base = self.model.model  # MllamaModel: skips the LM head entirely
        with self._attention_backends():
            output = base(**tensors, use_cache=False, return_dict=True)
        return self.pool(output.last_hidden_state, tensors["attention_mask"])

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last non-pad token (right padding), L2-normalised: the reference's pooling."""
        last = attention_mask.sum(dim=1) - 1
        return normalize(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])

    # -- the compiled text-query path (mme5.query_compile) -----------------------------
    query_compiler = None

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def forward_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text-only forward + pooling as one function of tensors: what torch.compile compiles."""
        output = self.model.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=True)
        return self.pool(output.last_hidden_state, attention_mask)

    def compile_queries(self, **options):
        """Route one-row text queries through a QueryCompiler (eager where it cannot compile); returns it."""
        from .query_compile import QueryCompiler

        self.query_compiler = QueryCompiler(self, **options)
        return self.query_compiler
