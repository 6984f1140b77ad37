"""Tiny random-weight copies of the *published* checkpoints' folders, built offline.

``mme5.tiny`` writes what today's ``save_pretrained`` writes; people load what the Hub serves, which
differs: other tokenizer classes (a SentencePiece ``SiglipTokenizer`` that needs ``sentencepiece`` and
``protobuf``), a separate ``preprocessor_config.json``, configs written by transformers 4.3x/4.4x, and
Mllama weights under the 4.4x key names. These replicas have the published file names, class names and
config formats, only with few-MB sizes, so the tests load exactly what a download would give.

Sources (the Hub's public file pages, read with the project's docs search, 2026-11):
  google/siglip-base-patch16-256-multilingual
    https://huggingface.co/google/siglip-base-patch16-256-multilingual/tree/10457587cc5244ac3e5120cf2824e883e6d6c3f2
      files: config.json, model.safetensors, preprocessor_config.json, special_tokens_map.json,
      spiece.model, tokenizer_config.json (main added a tokenizer.json in PR #4, 2024-09; transformers
      5's SiglipTokenizer is SentencePiece-only and does not read it, so it is left out here)
    https://huggingface.co/google/siglip-base-patch16-256-multilingual/blob/main/config.json
      (SiglipModel, text vocab 250000, image 256, transformers 4.37.0.dev0)
    https://huggingface.co/google/siglip-base-patch16-224/blob/7c23f8b1bcb7431520472026ebd6f9a2658cd7cc/tokenizer_config.json
    https://huggingface.co/google/siglip-large-patch16-256/blob/refs%2Fpr%2F2/preprocessor_config.json
    https://huggingface.co/merve/siglip-so400m-patch16-256-i18n/blob/main/special_tokens_map.json
  google/siglip2-large-patch16-256
    https://huggingface.co/google/siglip2-base-patch16-224/discussions/22 ("All SigLIP2 checkpoints
      currently ship with tokenizer_class GemmaTokenizer"; trained on lower-cased text, length 64)
    config/preprocessor of google/siglip2-base-patch16-512@a89f5c50 as mirrored in
      https://huggingface.co/JackIsNotInTheBox/Generate_Audio_for_Video_Checkpoints/commit/4696f5f1030fc32e284d37b15df565beaf3a32d9
      (no "architectures", vocab 256000, transformers 4.49.0.dev0, resample 2, do_convert_rgb null)
  intfloat/mmE5-mllama-11b-instruct
    https://huggingface.co/intfloat/mmE5-mllama-11b-instruct/blob/refs%2Fpr%2F2/model-00001-of-00005.safetensors
      (five safetensors shards + index); Llama-3.2-11B-Vision layout as in
    https://huggingface.co/hf-internal-testing/mllama-11b/tree/f3e9f570fa081c0192e9453458431b6d86d352a7
      (chat_template.json, preprocessor_config.json, special_tokens_map.json, tokenizer.json,
      tokenizer_config.json); /work/shared/reference/published-layouts.md for MllamaImageProcessor's values.

``python -m mme5 tiny --layout hub --backbone siglip-multilingual|siglip2|mllama --out DIR`` builds one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from .tiny import _CORPUS, mllama_config, mllama_tokenizer, open_gates

REPLICAS = {
    "siglip-multilingual": "google/siglip-base-patch16-256-multilingual",
    "siglip2": "google/siglip2-large-patch16-256",
    "mllama": "intfloat/mmE5-mllama-11b-instruct",
}
# What each replica's load needs beyond requirements' core (tests hide these to prove they are needed).
NEEDS = {"siglip-multilingual": ("sentencepiece", "google.protobuf"), "siglip2": (), "mllama": ()}
IMAGE_SIDE = 32  # published: 256 (SigLIP), 560 (Mllama); the tiny side keeps tests fast
TEXT_TOKENS = 64  # SigLIP's model_max_length as published


def folder_name(kind: str) -> str:
    """The hub repo's name: code that looks at the name (SigLIP 2 lower-casing) sees what a download has."""
    return REPLICAS[kind].split("/")[1]


def build_replica(out: str | Path, kind: str, seed: int = 0) -> Path:
    builders = {"siglip-multilingual": _siglip_multilingual, "siglip2": _siglip2, "mllama": _mllama}
    if kind not in builders:
        raise ValueError(f"unknown replica {kind!r}; choose one of {', '.join(builders)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    builders[kind](out, seed)
    return out


# -- SigLIP (multilingual, SentencePiece) ------------------------------------------------------------
def _siglip_multilingual(out: Path, seed: int) -> None:
    vocab = _train_spiece(
        out / "spiece.model", model_type="unigram", vocab_size=400, ids=dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    )
    _write_siglip_model(
        out,
        seed,
        vocab,
        config_extra={
            "architectures": ["SiglipModel"],
            "torch_dtype": "float32",
            "transformers_version": "4.37.0.dev0",
        },
    )
    _json(
        out / "preprocessor_config.json",
        {
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "processor_class": "SiglipProcessor",
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"height": IMAGE_SIDE, "width": IMAGE_SIDE},
        },
    )
    token = {"lstrip": True, "normalized": False, "rstrip": True, "single_word": False}
    _json(
        out / "special_tokens_map.json",
        {
            "eos_token": {"content": "</s>", **token},
            "pad_token": {"content": "</s>", **token},
            "unk_token": {"content": "<unk>", **token},
        },
    )
    added = {"lstrip": True, "normalized": True, "rstrip": True, "single_word": False, "special": True}
    _json(
        out / "tokenizer_config.json",
        {
            "added_tokens_decoder": {"1": {"content": "</s>", **added}, "2": {"content": "<unk>", **added}},
            "additional_special_tokens": [],
            "clean_up_tokenization_spaces": True,
            "do_lower_case": True,
            "eos_token": "</s>",
            "model_max_length": TEXT_TOKENS,
            "pad_token": "</s>",
            "processor_class": "SiglipProcessor",
            "sp_model_kwargs": {},
            "tokenizer_class": "SiglipTokenizer",
            "unk_token": "<unk>",
        },
    )


# -- SigLIP 2 (Gemma tokenizer with tokenizer.json) -----------------------------------------------------
def _siglip2(out: Path, seed: int) -> None:
    work = out / ".build"
    work.mkdir(exist_ok=True)
    _train_spiece(
        work / "tokenizer.model",
        model_type="bpe",
        vocab_size=400,
        byte_fallback=True,
        ids=dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3),
    )
    (out / "tokenizer.model").write_bytes((work / "tokenizer.model").read_bytes())
    from tokenizers.models import BPE
    from transformers import GemmaTokenizer
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    # tokenizer.json: the SentencePiece model's vocabulary and merges in transformers' Gemma tokenizer
    # transformers annotates extract() as a (vocab, merges) tuple, but this class returns its kwargs dict
    pieces: dict[str, Any] = SentencePieceExtractor(str(work / "tokenizer.model")).extract(BPE)  # type: ignore[assignment]
    fast = GemmaTokenizer(vocab=pieces["vocab"], merges=pieces["merges"])
    fast.backend_tokenizer.save(str(out / "tokenizer.json"))
    vocab = len(fast)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    _write_siglip_model(out, seed, vocab, config_extra={"transformers_version": "4.49.0.dev0"})
    _json(
        out / "preprocessor_config.json",
        {
            "do_convert_rgb": None,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor",
            "image_std": [0.5, 0.5, 0.5],
            "processor_class": "SiglipProcessor",
            "resample": 2,
            "rescale_factor": 0.00392156862745098,
            "size": {"height": IMAGE_SIDE, "width": IMAGE_SIDE},
        },
    )
    special = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    _json(
        out / "special_tokens_map.json",
        {
            name: {"content": content, **special}
            for name, content in (
                ("bos_token", "<bos>"),
                ("eos_token", "<eos>"),
                ("pad_token", "<pad>"),
                ("unk_token", "<unk>"),
            )
        },
    )
    _json(
        out / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_eos_token": True,
            "added_tokens_decoder": {
                str(i): {"content": name, **special, "special": True}
                for i, name in enumerate(["<pad>", "<eos>", "<bos>", "<unk>"])
            },
            "bos_token": "<bos>",
            "clean_up_tokenization_spaces": False,
            "eos_token": "<eos>",
            "model_max_length": TEXT_TOKENS,
            "pad_token": "<pad>",
            "padding_side": "right",
            "processor_class": "SiglipProcessor",
            "sp_model_kwargs": {},
            "spaces_between_special_tokens": False,
            "tokenizer_class": "GemmaTokenizer",
            "unk_token": "<unk>",
            "use_default_system_prompt": False,
        },
    )


def _write_siglip_model(out: Path, seed: int, vocab_size: int, config_extra: dict) -> None:
    from safetensors.torch import save_file
    from transformers import SiglipConfig, SiglipModel

    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    text = {**tower, "model_type": "siglip_text_model", "vocab_size": vocab_size}
    vision = {**tower, "image_size": IMAGE_SIDE, "model_type": "siglip_vision_model", "patch_size": 16}
    config = {
        "initializer_factor": 1.0,
        "model_type": "siglip",
        "text_config": text,
        "vision_config": vision,
        **config_extra,
    }
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(text_config=dict(text), vision_config=dict(vision)))
    save_file(
        {key: value.contiguous() for key, value in model.state_dict().items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    _json(out / "config.json", dict(sorted(config.items())))


# -- mmE5 (Mllama, 4.4x key layout, sharded) ---------------------------------------------------------
def _mllama(out: Path, seed: int) -> None:
    from safetensors.torch import save_file
    from transformers import MllamaForConditionalGeneration, PreTrainedTokenizerFast

    config = mllama_config("tiny")
    tokenizer_object = mllama_tokenizer(config)
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    open_gates(model)
    # bfloat16, as mmE5's shards are (config torch_dtype); names as transformers 4.45 wrote them
    weights = {_key_44x(key): value.to(torch.bfloat16).contiguous() for key, value in model.state_dict().items()}
    names = sorted(weights)
    shards = {
        "model-00001-of-00002.safetensors": names[: len(names) // 2],
        "model-00002-of-00002.safetensors": names[len(names) // 2 :],
    }
    for shard, keys in shards.items():
        save_file({key: weights[key] for key in keys}, str(out / shard), metadata={"format": "pt"})
    total = sum(value.numel() * value.element_size() for value in weights.values())
    _json(
        out / "model.safetensors.index.json",
        {
            "metadata": {"total_size": total},
            "weight_map": {key: shard for shard, keys in shards.items() for key in keys},
        },
    )
    text, vision = config.text_config.to_dict(), config.vision_config.to_dict()
    for part in (text, vision):
        for key in (
            "transformers_version",
            "_name_or_path",
            "architectures",
            "dtype",
            "output_attentions",
            "output_hidden_states",
            "return_dict",
            "chunk_size_feed_forward",
            "problem_type",
            "id2label",
            "label2id",
            "tie_word_embeddings",
        ):
            part.pop(key, None)
    text["model_type"], vision["model_type"] = "mllama_text_model", "mllama_vision_model"
    rope = text.pop("rope_parameters", None) or {}
    text["rope_theta"] = rope.get("rope_theta", 500000.0)
    text["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"} or None
    _json(
        out / "config.json",
        {
            "architectures": ["MllamaForConditionalGeneration"],
            "image_token_index": config.image_token_index,
            "model_type": "mllama",
            "text_config": text,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.45.2",
            "vision_config": vision,
        },
    )
    _json(
        out / "generation_config.json",
        {
            "bos_token_id": text["bos_token_id"],
            "eos_token_id": text["eos_token_id"],
            "pad_token_id": text["pad_token_id"],
            "transformers_version": "4.45.2",
        },
    )
    _json(
        out / "preprocessor_config.json",
        {
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_pad": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_processor_type": "MllamaImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "max_image_tiles": config.vision_config.max_num_tiles,
            "processor_class": "MllamaProcessor",
            "resample": 2,
            "rescale_factor": 0.00392156862745098,
            "size": {"height": config.vision_config.image_size, "width": config.vision_config.image_size},
        },
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer_object)
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    specials = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "pad_token": "<|finetune_right_pad_id|>",
    }
    _json(
        out / "special_tokens_map.json",
        {
            name: {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
            for name, content in specials.items()
        },
    )
    _json(
        out / "tokenizer_config.json",
        {
            **specials,
            "clean_up_tokenization_spaces": True,
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 131072,
            "padding_side": "right",
            "processor_class": "MllamaProcessor",
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    _json(
        out / "chat_template.json",
        {
            "chat_template": (
                "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
                "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|image|>{% else %}{{ part['text'] }}"
                "{% endif %}{% endfor %}<|eot_id|>{% endfor %}"
            )
        },
    )


def _key_44x(key: str) -> str:
    """transformers 5 names → the names transformers 4.45 wrote (and the Hub's mmE5 shards use)."""
    for new, old in (
        ("model.language_model.", "language_model.model."),
        ("model.vision_model.", "vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ):
        if key.startswith(new):
            return old + key[len(new) :]
    if key.startswith("lm_head."):
        return "language_model." + key
    return key


# -- helpers -----------------------------------------------------------------------------------------
def _train_spiece(path: Path, model_type: str, vocab_size: int, ids: dict, byte_fallback: bool = False) -> int:
    """A real SentencePiece model trained on a few multilingual sentences (deterministic: one thread)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS),
        model_writer=model,
        model_type=model_type,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        byte_fallback=byte_fallback,
        num_threads=1,
        minloglevel=2,
        **ids,
    )
    path.write_bytes(model.getvalue())
    return spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()


def _json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
