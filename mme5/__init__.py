"""mmE5 embedding core: one factory, thin encoders, prompts and pooling as trained.

Names are imported on first use (PEP 562), so CLIs that only parse arguments never load torch.
"""
import os
from importlib import import_module

# Apple GPUs: ops MPS lacks run on the CPU instead of failing. torch reads this once, when it is first imported.
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

_EXPORTS = {
    "CPU_MODEL_ID": "loading",
    "EmbedInput": "backbone",
    "Embedder": "embedder",
    "MME5_MODEL_ID": "loading",
    "ModelLoadError": "loading",
    "default_model_id": "loading",
    "load_embedder": "loading",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
