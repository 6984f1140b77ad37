"""One factory that turns a model name or folder into a ready Embedder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from . import registry
from .cpu_features import CpuFeatures
from .cpu_features import detect as detect_cpu
from .embedder import Embedder
from .errors import ModelLoadError
from .model_ref import ModelRef, ModelRefError
from .settings import Settings

logger = logging.getLogger(__name__)

MME5_MODEL_ID = "intfloat/mmE5-mllama-11b-instruct"
CPU_MODEL_ID = "google/siglip-base-patch16-256-multilingual"
LARGE_CPU_MODEL_ID = "google/siglip2-large-patch16-256"
MME5_MIN_GPU_BYTES = 24 * 1024**3  # 21 GB of bf16 weights plus activations
SUPPORTED_TYPES = registry.SUPPORTED_TYPES


def default_device() -> torch.device:
    """CUDA, else Apple's GPU (MPS; ops it lacks fall back to the CPU, see mme5/__init__), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_model_id(device: torch.device | str | None = None) -> str:
    """mmE5 where a CUDA GPU can hold it, the small multilingual SigLIP elsewhere."""
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        if torch.cuda.get_device_properties(index).total_memory >= MME5_MIN_GPU_BYTES:
            return MME5_MODEL_ID
    return CPU_MODEL_ID


def default_dtype(device: torch.device) -> torch.dtype:
    """The precision where nothing else is known: bf16 on CUDA, fp32 elsewhere (see ``choose_runtime_and_dtype``)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _offline_help(model: str, reason: str) -> str:
    return (
        f"Could not load model {model!r}: {reason}\n"
        f"It is not a local folder, and the Hugging Face Hub could not provide it (no network, or HF_HUB_OFFLINE=1).\n"
        f"  - On a machine with internet: `hf download {model} --local-dir ./models/NAME`, copy that folder here, "
        f"and pass its path (--model ./models/NAME).\n"
        f"  - For an offline smoke test: `python -m mme5 tiny --out ./models/tiny` and pass --model ./models/tiny."
    )


def _resolve(model: str, revision: str | None) -> tuple[str, object]:
    """(where to load from, config). Fails fast, with help, for unreachable hub ids."""
    from transformers import AutoConfig

    try:
        ref = ModelRef.parse(model)
    except ModelRefError as error:
        raise ModelLoadError(str(error)) from None
    if ref.is_local:
        path = ref.path
        if not path.exists():
            raise ModelLoadError(f"{model}: model folder not found")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path}: no config.json here; point --model at a folder written by save_pretrained")
        return str(path), AutoConfig.from_pretrained(path)
    model = ref.canonical
    try:  # already in the local Hugging Face cache: no network needed
        return model, AutoConfig.from_pretrained(model, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached; try the hub below
        pass
    if not _hub_reachable():
        raise ModelLoadError(_offline_help(model, "the Hugging Face Hub is unreachable"))
    try:
        return model, AutoConfig.from_pretrained(model, revision=revision)
    except Exception as error:  # noqa: BLE001 - hub errors come in many types
        raise ModelLoadError(_offline_help(model, str(error).splitlines()[0][:200])) from error


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick connect instead of huggingface_hub's ~25 s of retries when offline."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_embedder(
    model: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    adapter: str | os.PathLike | None = None,
    revision: str | None = None,
    verbose: bool = True,
    fast_attention: bool | None = None,
    runtime: str | None = None,
) -> Embedder:
    """Load a hub id or local folder (mmE5/Mllama or SigLIP) as an Embedder.

    ``adapter`` is a peft LoRA/DoRA folder (from ``python -m trainer train``); it is
    merged into the weights at load, so inference pays nothing for it. ``fast_attention``
    (Mllama): exact mask-free vision attention, default on for CUDA (``MME5_FAST_ATTENTION=0`` turns it off).
    ``runtime`` is ``torch``, ``onnx`` (dual encoders on the CPU, same vectors, about 2x
    faster) or ``onnx-int8`` (opt-in, int8 weights: another vector space); ``None`` or
    ``auto`` picks torch in bf16 on a CPU with bf16 matrix units (AMX; same vector space), else ONNX on the
    CPU where the family and an installed onnxruntime allow (``choose_runtime_and_dtype``).
    """
    if runtime in (registry.ONNX, registry.ONNX_INT8) and device is None:
        device = "cpu"  # ONNX Runtime runs here on the CPU
    device = torch.device(device) if device is not None else default_device()
    if model is None:
        model = default_model_id(device)
        if verbose:
            logger.info(f"mme5: no --model given; using {model} on {device}")
    asked_dtype: torch.dtype | None = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    source, config = _resolve(str(model), revision)
    model_type = getattr(config, "model_type", None)
    spec = _spec(model_type, str(model))
    runtime, dtype = choose_runtime_and_dtype(spec, runtime, asked_dtype, device, str(model))
    if verbose and device.type == "cpu" and asked_dtype is None and dtype != torch.float32:  # only what is new
        logger.info(
            f"mme5: {model} runs on {runtime} in {str(dtype).removeprefix('torch.')} ({detect_cpu().summary()})"
        )
    if runtime == registry.TORCH:
        backbone = _load_backbone(model_type, source, config, device, dtype, revision, adapter, fast_attention)
    else:
        from transformers import AutoProcessor

        from .dual_encoder import wants_lowercase
        from .onnx_runtime import load_onnx_backbone

        backbone = load_onnx_backbone(
            source,
            config,
            _missing_package_is_advice(source, lambda: AutoProcessor.from_pretrained(source, revision=revision)),
            revision,
            adapter,
            quantization="int8" if runtime == registry.ONNX_INT8 else None,
            lowercase=wants_lowercase(source, config),
            load_torch=lambda: _load_backbone(model_type, source, config, device, torch.float32, revision, adapter),
        )
    return Embedder(backbone, model_id=str(model), adapter=str(adapter) if adapter else None, revision=revision)


def _spec(model_type: str | None, model: str) -> registry.BackboneSpec:
    """The family that loads ``model_type``; ModelLoadError naming ``model`` if none does."""
    spec = registry.by_model_type(model_type)
    if spec is None:
        raise ModelLoadError(
            f"{model}: model type {model_type!r} is not supported; supported: {', '.join(SUPPORTED_TYPES)} "
            f"(e.g. {MME5_MODEL_ID} or {CPU_MODEL_ID})"
        )
    return spec


def choose_runtime_and_dtype(
    spec: registry.BackboneSpec,
    runtime: str | None,
    dtype: torch.dtype | None,
    device: torch.device,
    model: str = "",
    cpu: CpuFeatures | None = None,
    cpu_bf16: bool | None = None,
) -> tuple[str, torch.dtype]:
    """The runtime and precision to run ``spec``'s family with: what was asked for wins (a runtime asked for
    without a dtype runs fp32 on the CPU, as before); "auto" / None picks the fastest one whose vectors agree
    with fp32 (one vector space, see ``BackboneSpec.cpu_bf16``).

    On the CPU that is ONNX Runtime in fp32 where the family and an installed onnxruntime allow, else torch in
    fp32. torch in bf16 where the CPU has bf16 matrix units (AMX) and the family's bf16 vectors agree with fp32
    is opt-in (``cpu_bf16``, default ``MME5_CPU_BF16``, off) until it is measured faster on such a CPU: none was
    at hand, and AVX512_BF16 without AMX (AMD Zen 4) was not faster than ONNX fp32 for one text query
    (docs/performance.md). ``cpu`` defaults to this machine's (``mme5.cpu_features.detect``).
    """
    if device.type != "cpu":
        return choose_runtime(spec, runtime, device, model), dtype or default_dtype(device)
    if runtime in (None, "auto"):
        if dtype not in (None, torch.float32):
            return registry.TORCH, dtype  # ONNX runs fp32 only: an asked-for precision needs torch
        if cpu_bf16 is None:
            cpu_bf16 = bool(Settings.from_env().cpu_bf16)
        if dtype is None and cpu_bf16 and spec.cpu_bf16 and (cpu or detect_cpu()).bf16_matrix_units:
            return registry.TORCH, torch.bfloat16
        return choose_runtime(spec, runtime, device, model), torch.float32
    return choose_runtime(spec, runtime, device, model), dtype or torch.float32  # asked-for runtime: fp32 as before


def choose_runtime(spec: registry.BackboneSpec, runtime: str | None, device: torch.device, model: str = "") -> str:
    """The runtime to use: the one asked for (checked), or ONNX on the CPU where possible, else torch."""
    from .onnx_runtime import onnxruntime_available

    if runtime in (None, "auto"):
        if device.type == "cpu" and registry.ONNX in spec.runtimes and onnxruntime_available():
            return registry.ONNX
        return registry.TORCH
    if runtime not in registry.RUNTIMES:
        raise ModelLoadError(f"unknown runtime {runtime!r}; choose one of auto, {', '.join(registry.RUNTIMES)}")
    if runtime not in spec.runtimes:
        raise ModelLoadError(
            f"{model}: runtime {runtime!r} is not available for {spec.family} models; "
            f"choose one of {', '.join(spec.runtimes)}"
        )
    if runtime != registry.TORCH:
        if device.type != "cpu":
            raise ModelLoadError(f"runtime {runtime!r} runs on the CPU; pass --device cpu or --runtime torch")
        if not onnxruntime_available():
            raise ModelLoadError(f"runtime {runtime!r} needs onnxruntime: pip install -r requirements.txt")
    return runtime


def load_transformers_model(
    model_type: str, source: str, dtype: torch.dtype, revision: str | None = None, device: torch.device | None = None
):
    """The full transformers model (the module peft adapters attach to) and its processor."""
    from transformers import AutoProcessor

    spec = _spec(model_type, source)
    model_class = spec.transformers_class()
    common = dict(revision=revision, dtype=dtype, **spec.load_options)
    if device is not None and device.type == "cuda":
        common["device_map"] = str(device)  # weights go straight to the GPU, no CPU copy
    model = model_class.from_pretrained(source, **common)
    processor = AutoProcessor.from_pretrained(source, revision=revision)
    return model, processor


def _missing_package_is_advice(source, load):
    """``load()``, with an ImportError (SiglipTokenizer without sentencepiece ...) turned into install advice."""
    try:
        return load()
    except ImportError as error:  # an install problem, not the model's
        raise ModelLoadError(
            f"{source}: loading it needs a package that is not installed: {error}\n"
            "  Install the project's requirements: pip install -r requirements.txt"
        ) from error


def _load_backbone(model_type, source, config, device, dtype, revision, adapter, fast_attention=None):
    try:
        model, processor = _missing_package_is_advice(
            source, lambda: load_transformers_model(model_type, source, dtype, revision, device)
        )
    except ModelLoadError:
        raise
    except OSError as error:
        raise ModelLoadError(_offline_help(source, str(error).splitlines()[0][:200])) from error
    if adapter:
        model = merge_adapter(model, adapter)
    model.to(device).eval()
    model.requires_grad_(False)
    return make_backbone(model_type, model, processor, device, dtype, source, fast_attention=fast_attention)


def merge_adapter(model, adapter):
    """Fold a peft adapter into the base weights (LoRA/DoRA both supported by peft)."""
    import pickle

    from peft import PeftModel

    adapter_path = Path(adapter)
    if not (adapter_path / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter}: not a peft adapter folder (no adapter_config.json)")
    try:
        return PeftModel.from_pretrained(model, str(adapter_path)).merge_and_unload()
    except pickle.UnpicklingError as error:  # torch.load(weights_only=True) refused a pickle that is more than tensors
        raise ModelLoadError(
            f"{adapter}: the adapter's weights are a pickle holding more than tensors, and loading it would run its "
            "code: refused. Use an adapter saved as adapter_model.safetensors (peft's default) "
            f"({str(error).strip().splitlines()[0][:200] if str(error).strip() else 'unpickling refused'})"
        ) from None


def make_backbone(model_type, model, processor, device, dtype, source="", fast_attention=None):
    """Wrap a transformers model + processor in the backbone class for its type."""
    backbone_class = _spec(model_type, source).backbone_type()
    return backbone_class.wrap(model, processor, device, dtype, source, fast_attention=fast_attention)
