"""Build embedders for benchmarks: any saved model, or mmE5's full-size architecture with random weights."""
from __future__ import annotations

import torch


def full_size_mme5(device: str = "cuda", dtype: torch.dtype = torch.bfloat16, size: str = "full"):
    """Llama-3.2-11B-Vision / mmE5 shapes (10.6B parameters) with random weights: no download needed."""
    from transformers import MllamaForConditionalGeneration

    from mme5 import Embedder
    from mme5.loading import make_backbone
    from mme5.tiny import MLLAMA_SPECIALS, build_tokenizer, mllama_config, mllama_processor, open_gates

    config = mllama_config(size)  # size="tiny" exercises this path on a CPU
    tokenizer_object = build_tokenizer(config.text_config.vocab_size, MLLAMA_SPECIALS, extra_special=["<|image|>"])
    for name, key in (("<|begin_of_text|>", "bos_token_id"), ("<|end_of_text|>", "eos_token_id"),
                      ("<|finetune_right_pad_id|>", "pad_token_id")):
        setattr(config.text_config, key, tokenizer_object.token_to_id(name))
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = MllamaForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    open_gates(model, 0.5)
    model.eval().requires_grad_(False)
    processor = mllama_processor(config, tokenizer_object)
    backbone = make_backbone("mllama", model, processor, torch.device(device), dtype)
    return Embedder(backbone, model_id="mmE5-full-size-random")


def load_for_benchmark(model: str | None, device: str | None, full_size: bool):
    if full_size:
        return full_size_mme5(device or "cuda")
    from mme5 import load_embedder

    return load_embedder(model, device=device)
