"""The one place that knows the backbones and the kinds of query.

Adding a backbone family means one ``BackboneSpec`` below (plus its backbone class);
adding a query kind means one ``QueryKind`` member. Nothing else in mme5, indexer,
search_app or trainer compares family names or works out a query's kind by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from importlib import import_module
from typing import Callable

from . import prompts
from .errors import InputError

TORCH, ONNX, ONNX_INT8 = "torch", "onnx", "onnx-int8"
RUNTIMES = (TORCH, ONNX, ONNX_INT8)
RUNTIME_CHOICES = ("auto", *RUNTIMES)  # for --runtime flags
RUNTIME_HELP = (
    "auto (default: on the CPU ONNX Runtime for SigLIP when installed, or torch in bf16 where it has AMX and "
    "MME5_CPU_BF16=1; else torch), torch, onnx "
    "(same vectors as torch), or onnx-int8 (opt-in: int8 weights, a different vector space)"
)


class QueryKind(str, Enum):
    """What a search query is made of. The value is the name used on the command line and in JSON."""

    TEXT = "text"  # a caption -> images
    IMAGE = "image"  # "more like this"
    COMPOSED = "composed"  # an image plus a modifying text ("this photo, but at night")

    @property
    def needs_text(self) -> bool:
        return self in (QueryKind.TEXT, QueryKind.COMPOSED)

    @property
    def needs_image(self) -> bool:
        return self in (QueryKind.IMAGE, QueryKind.COMPOSED)

    @property
    def task(self) -> str:
        """The prompt task (see ``build_prompt``) that formats this kind of query."""
        return _QUERY_TASKS[self]

    @property
    def instruction(self) -> str | None:
        """The instruction a text query carries (mmE5's text-to-image one), None for the others."""
        return prompts.TEXT_TO_IMAGE_INSTRUCTION if self is QueryKind.TEXT else None

    @classmethod
    def of(cls, text: str | None = None, image=None) -> "QueryKind":
        """The kind a (text, image) pair asks for; blank strings count as absent."""
        has_text = isinstance(text, str) and bool(text.strip())
        has_image = image is not None and not (isinstance(image, str) and not image.strip())
        if has_image:
            return cls.COMPOSED if has_text else cls.IMAGE
        if has_text:
            return cls.TEXT
        raise InputError("a query needs a text, an image, or both")

    @classmethod
    def parse(cls, value: "QueryKind | str") -> "QueryKind":
        try:
            return cls(value)
        except ValueError:
            raise InputError(f"unknown query kind {value!r}; choose one of {', '.join(k.value for k in cls)}") from None


_QUERY_TASKS = {QueryKind.TEXT: "text", QueryKind.IMAGE: "image_query", QueryKind.COMPOSED: "composed"}


@dataclass(frozen=True)
class BackboneSpec:
    """Everything mme5 needs to know about one backbone family."""

    family: str  # recorded in indexes and reports ("mllama", "dual")
    model_types: tuple[str, ...]  # config.json "model_type" values this family loads
    model_class: str  # transformers class holding the full model (what peft adapters attach to)
    backbone_class: str  # "module:Class" of the mme5 Backbone wrapping it
    prompt: Callable[..., str | None]  # (task, text, instruction) -> formatted text, see build_prompt
    dataset_text: Callable[[str, bool], str | None]  # MMEB dataset text (+ has image) -> input text (trainer)
    lora_targets: tuple[str, ...]  # default LoRA/DoRA targets: what mmE5's reference target list matches here
    wide_lora_targets: tuple[str, ...]  # every attention and MLP projection, text and vision towers
    runtimes: tuple[str, ...] = (TORCH,)  # inference engines; the first is the default off the CPU
    # bf16 vectors agree with fp32 ones (cosine >= 0.999, tests/mme5/test_cpu_precision.py), so the CPU may run
    # this family in bf16 where that is faster (mme5.loading.choose_runtime_and_dtype) in the same vector space.
    cpu_bf16: bool = False
    load_options: dict = field(default_factory=dict)  # extra from_pretrained keywords
    sized_batches: bool = False  # batch images by their size (tile count) to save padding
    fixed_text_length: bool = False  # trained on fixed-length padded text: the trainer keeps that length
    paper_dim: int | None = None  # embedding size of the published model whose paper figures we compare to
    tiny_builder: str = ""  # function in mme5.tiny that builds a few-MB random model of this family
    # Least cosine similarity joining two photos into a similar-photo group (indexer/similar.py). 0.95 is a
    # placeholder until ``python -m benchmarks.calibrate_similar`` is run on the real checkpoint (see docs/app.md, "Similar-photo groups").
    similar_threshold: float = 0.95

    def backbone_type(self):
        module, name = self.backbone_class.split(":")
        return getattr(import_module(module, __package__), name)

    def transformers_class(self):
        import transformers

        return getattr(transformers, self.model_class)


def _dual_dataset_text(text: str, has_image: bool) -> str | None:
    """Dual encoders saw bare captions; an image-only input has no text at all."""
    return prompts.strip_image_tokens(text) or None


BACKBONES: dict[str, BackboneSpec] = {
    spec.family: spec
    for spec in (
        BackboneSpec(
            family="mllama",
            model_types=("mllama",),
            model_class="MllamaForConditionalGeneration",
            backbone_class=".mllama:MllamaBackbone",
            prompt=prompts.mllama_prompt,
            dataset_text=prompts.from_mmeb,
            lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "down_proj"),
            wide_lora_targets=(
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
                "fc1",
                "fc2",
            ),
            load_options={"attn_implementation": "sdpa"},
            cpu_bf16=True,
            sized_batches=True,
            paper_dim=4096,
            tiny_builder="build_tiny_mllama",
        ),
        BackboneSpec(
            family="dual",
            model_types=("siglip",),
            model_class="SiglipModel",
            backbone_class=".dual_encoder:DualEncoderBackbone",
            prompt=prompts.dual_prompt,
            dataset_text=_dual_dataset_text,
            lora_targets=("q_proj", "k_proj", "v_proj", "out_proj"),
            wide_lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
            runtimes=(TORCH, ONNX, ONNX_INT8),
            cpu_bf16=True,
            fixed_text_length=True,
            tiny_builder="build_tiny_siglip",
        ),
    )
}

SUPPORTED_TYPES = tuple(model_type for spec in BACKBONES.values() for model_type in spec.model_types)


def by_family(family: str) -> BackboneSpec:
    try:
        return BACKBONES[family]
    except KeyError:
        raise InputError(f"unknown backbone family {family!r}; known: {', '.join(BACKBONES)}") from None


def build_prompt(family: str, task: str, text: str | None = None, instruction: str | None = None) -> str | None:
    """The text a backbone family sees for one input; None means image only.

    ``task`` is one of ``image_document``, ``text``, ``image_query``, ``composed``,
    ``image_instruction``; the family's formatter (in ``mme5.prompts``) is named in its ``BackboneSpec``.
    """
    return by_family(family).prompt(task, text=text, instruction=instruction)


def by_model_type(model_type: str | None) -> BackboneSpec | None:
    """The family that loads a config.json ``model_type``, or None if no family does."""
    for spec in BACKBONES.values():
        if model_type in spec.model_types:
            return spec
    return None


def similar_threshold(family: str | None) -> float:
    """The default similar-photo threshold of an index built with ``family`` (the dataclass default if unknown)."""
    spec = BACKBONES.get(family or "")
    return spec.similar_threshold if spec is not None else BackboneSpec.similar_threshold


def runtime_for(quantization: str | None) -> str | None:
    """The runtime that reproduces an index's recorded quantisation (None: any fp32 runtime will do)."""
    return {None: None, "int8": ONNX_INT8}[quantization]


def tiny_builders() -> dict[str, str]:
    """``python -m mme5 tiny --backbone NAME`` choices: model type -> builder function in mme5.tiny."""
    return {spec.model_types[0]: spec.tiny_builder for spec in BACKBONES.values() if spec.tiny_builder}
