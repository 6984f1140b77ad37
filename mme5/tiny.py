"""Deterministic random-weight models of the real architectures, built offline.

No hub is reachable in CI, yet the real loading code must run: these few-MB models
are saved with ``save_pretrained`` and load through exactly the same path as mmE5.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import InputError

import torch

# Multilingual text so the byte-level BPE learns merges for several scripts.
_CORPUS = [
    "Represent the given image. Find me an everyday image that matches the given caption:",
    "Find a day-to-day image that looks similar to the provided image.",
    "Given an image, find a similar everyday image with the described changes:",
    "a red circle on a white background; a blue square; a green triangle; a photo of a dog at night",
    "un círculo rojo, un cuadrado azul, un triángulo verde; une photo d'un chien la nuit; ein Hund",
    "красный круг, синий квадрат, зелёный треугольник; 赤い丸、青い四角、緑の三角; 红色圆圈 蓝色方块",
    "دائرة حمراء مربع أزرق مثلث أخضر; लाल वृत्त नीला वर्ग; 빨간 원 파란 사각형; κόκκινος κύκλος",
] * 4

MLLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<|python_tag|>"]


def build_tokenizer(vocab_size: int, specials: list[str], extra_special: Sequence[str] = ()):
    """A byte-level BPE whose base vocabulary has exactly ``vocab_size`` entries.

    Unused ids are filled with tokens no merge can produce, so a full-size vocabulary
    (128256 for Llama 3) costs nothing at tokenisation time. ``extra_special`` tokens
    get ids ``vocab_size``, ``vocab_size + 1``, ... (``<|image|>`` must equal vocab_size).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab_size, 600),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    trained.train_from_iterator(_CORPUS, trainer)
    vocab = dict(trained.get_vocab())
    merges = [_pair(merge) for merge in _merges_of(trained)]
    filler = 0
    while len(vocab) < vocab_size:
        vocab[f"<|unused_{filler}|>"] = len(vocab)
        filler += 1
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(specials))
    tokenizer.add_special_tokens(list(extra_special))
    return tokenizer


def _pair(merge: str | list[str]) -> tuple[str, str]:
    """One BPE merge as a pair: tokenizers writes "a b" (older) or ["a", "b"] (newer)."""
    first, second = merge.split(" ", 1) if isinstance(merge, str) else merge
    return first, second


def _merges_of(tokenizer) -> list:
    import json

    return json.loads(tokenizer.to_str())["model"]["merges"]


def mllama_config(size: str = "tiny"):
    """Llama-3.2-11B-Vision's architecture at full size, or a few-MB copy of its shape."""
    from transformers import MllamaConfig

    if size == "full":
        return MllamaConfig(
            vision_config=dict(
                image_size=560, patch_size=14, max_num_tiles=4, intermediate_layers_indices=[3, 7, 15, 23, 30]
            ),
            text_config=dict(
                cross_attention_layers=[3, 8, 13, 18, 23, 28, 33, 38],
                rope_parameters=dict(
                    rope_type="llama3",
                    rope_theta=500000.0,
                    factor=8.0,
                    low_freq_factor=1.0,
                    high_freq_factor=4.0,
                    original_max_position_embeddings=8192,
                ),
            ),
            image_token_index=128256,
        )
    vocab_size = 1024
    return MllamaConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_global_layers=1,
            attention_heads=2,
            image_size=28,
            patch_size=14,
            max_num_tiles=4,
            intermediate_layers_indices=[0],
            vision_output_dim=64,
            supported_aspect_ratios=[[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
        ),
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            cross_attention_layers=[1, 3],
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        ),
        image_token_index=vocab_size,
    )


def mllama_tokenizer(config):
    """Tokenizer for a config's vocabulary; writes its bos/eos/pad ids into the config."""
    vocab_size = config.text_config.vocab_size
    tokenizer_object = build_tokenizer(vocab_size, MLLAMA_SPECIALS, extra_special=["<|image|>"])
    assert tokenizer_object.token_to_id("<|image|>") == vocab_size == config.image_token_index
    for name, key in (
        ("<|begin_of_text|>", "bos_token_id"),
        ("<|end_of_text|>", "eos_token_id"),
        ("<|finetune_right_pad_id|>", "pad_token_id"),
    ):
        setattr(config.text_config, key, tokenizer_object.token_to_id(name))
    return tokenizer_object


def open_gates(model: torch.nn.Module, value: float = 1.0) -> None:
    """Mllama initialises every tanh gate to 0, which would make images invisible to the text."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.rsplit(".", 1)[-1] in (
                "gate",
                "gate_attn",
                "gate_ffn",
                "cross_attn_attn_gate",
                "cross_attn_mlp_gate",
            ):
                parameter.fill_(value)


def mllama_processor(config, tokenizer_object):
    from transformers import MllamaProcessor, PreTrainedTokenizerFast
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|finetune_right_pad_id|>",
        padding_side="right",
        model_max_length=131072,
    )
    side = config.vision_config.image_size
    image_processor = MllamaImageProcessorPil(
        size={"height": side, "width": side}, max_image_tiles=config.vision_config.max_num_tiles
    )
    return MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_tiny_mllama(out: str | Path, seed: int = 0) -> Path:
    from transformers import MllamaForConditionalGeneration

    out = Path(out)
    config = mllama_config("tiny")
    tokenizer_object = mllama_tokenizer(config)
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    open_gates(model)
    model.save_pretrained(out)
    mllama_processor(config, tokenizer_object).save_pretrained(out)
    return out


SIGLIP_SPECIALS = ["<pad>", "</s>", "<unk>"]


def siglip_config(size: str = "tiny"):
    """google/siglip-base-patch16-256-multilingual's architecture at full size (371M parameters), or a tiny copy."""
    from transformers import SiglipConfig

    if size == "full":
        tower = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
        return SiglipConfig(
            text_config=dict(
                vocab_size=250000, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=1, **tower
            ),
            vision_config=dict(image_size=256, patch_size=16, **tower),
        )
    return SiglipConfig(
        text_config=dict(
            vocab_size=1024,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
    )


def siglip_processor(config):
    from transformers import PreTrainedTokenizerFast, SiglipProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tokenizer_object = build_tokenizer(config.text_config.vocab_size - 1, SIGLIP_SPECIALS, extra_special=[])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=config.text_config.max_position_embeddings,
    )
    side = config.vision_config.image_size
    return SiglipProcessor(
        image_processor=SiglipImageProcessorPil(size={"height": side, "width": side}), tokenizer=tokenizer
    )


def build_tiny_siglip(out: str | Path, seed: int = 0) -> Path:
    from transformers import SiglipModel

    out = Path(out)
    config = siglip_config("tiny")
    processor = siglip_processor(config)
    torch.manual_seed(seed)
    model = SiglipModel(config)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def random_siglip_embedders(
    size: str = "full", runtimes=("torch", "onnx"), export_dir: str | Path | None = None, seed: int = 0
) -> dict:
    """{runtime: Embedder} over one random-weight SigLIP built in memory (benchmarks; speed ignores weights).

    ONNX runtimes export into ``export_dir`` (reused when it already holds this size's export); ``torch-bf16``
    is the torch runtime with the same weights in bf16 (what ``mme5.loading`` picks on CPUs with AMX).
    """
    from transformers import SiglipModel

    from .embedder import Embedder
    from .loading import make_backbone

    config = siglip_config(size)
    processor = siglip_processor(config)
    torch.manual_seed(seed)
    model = SiglipModel(config).eval().requires_grad_(False)
    backbone = make_backbone("siglip", model, processor, torch.device("cpu"), torch.float32)
    model_id = f"siglip-{size}-size-random"
    embedders = {}
    if any(runtime not in ("torch", "torch-bf16") for runtime in runtimes):
        from .onnx_runtime import OnnxDualEncoderBackbone, export

        if export_dir is None:
            raise ValueError("ONNX runtimes need an export_dir")
        folder = Path(export_dir) / f"{model_id}-seed{seed}"
        if not (folder / "export.json").is_file():
            export(backbone, folder, note=model_id)
        for runtime in runtimes:
            if runtime.startswith("onnx"):
                quantization = "int8" if runtime == "onnx-int8" else None
                embedders[runtime] = Embedder(
                    OnnxDualEncoderBackbone(config, processor, folder, quantization), model_id=model_id
                )
    if "torch" in runtimes:
        embedders["torch"] = Embedder(backbone, model_id=model_id)
    if "torch-bf16" in runtimes:
        import copy

        half = copy.deepcopy(model).to(torch.bfloat16)
        embedders["torch-bf16"] = Embedder(
            make_backbone("siglip", half, processor, torch.device("cpu"), torch.bfloat16), model_id=model_id
        )
    return {runtime: embedders[runtime] for runtime in runtimes}


def save_random_siglip(out: str | Path, size: str = "full", seed: int = 0) -> Path:
    """A random-weight SigLIP written as a model folder (benchmarks that need one on disk, e.g. for Ray
    workers); ``random_siglip_embedders`` builds the same model in memory."""
    from transformers import SiglipModel

    out = Path(out)
    if not (out / "config.json").is_file():
        config = siglip_config(size)
        torch.manual_seed(seed)
        SiglipModel(config).eval().save_pretrained(out)
        siglip_processor(config).save_pretrained(out)
    return out


def build_tiny(out: str | Path, backbone: str = "mllama", seed: int = 0) -> Path:
    from .registry import tiny_builders

    builders = tiny_builders()
    if backbone not in builders:
        raise InputError(f"unknown backbone {backbone!r}; choose one of {', '.join(builders)}")
    return globals()[builders[backbone]](out, seed=seed)


def random_mme5_embedder(size: str = "full", device: str = "cuda", dtype: torch.dtype = torch.bfloat16):
    """An Embedder with mmE5's architecture and random weights, built in memory (benchmarks).

    ``size="full"`` is Llama-3.2-11B-Vision's shape (10.6B parameters: give it a GPU);
    speed does not depend on the weights, so no download is needed to measure it.
    ``size="tiny"`` runs the same code path anywhere.
    """
    from transformers import MllamaForConditionalGeneration

    from .embedder import Embedder
    from .loading import make_backbone

    config = mllama_config(size)
    tokenizer_object = mllama_tokenizer(config)
    with torch.device(device):
        model = MllamaForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    open_gates(model, 0.5)
    model.eval().requires_grad_(False)
    backbone = make_backbone("mllama", model, mllama_processor(config, tokenizer_object), torch.device(device), dtype)
    return Embedder(backbone, model_id=f"mmE5-{size}-size-random")
