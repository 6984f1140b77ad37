"""mmE5 embedding core: one factory, thin encoders, prompts and pooling as trained.

The errors and helpers import without torch; the model classes load it on first use, so a
CLI's --help and its error handling start in a fraction of a second.
"""

import os
from importlib import import_module

from .errors import ImageError, InputError, MME5Error, ModelLoadError
from .model_ref import ModelRef, ModelRefError

# Apple GPUs: ops MPS lacks run on the CPU instead of failing. torch reads this once, when it is first imported.
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

_LAZY = {
    "CPU_MODEL_ID": ".loading",
    "MME5_MODEL_ID": ".loading",
    "default_model_id": ".loading",
    "load_embedder": ".loading",
    "EmbedInput": ".backbone",
    "Embedder": ".embedder",
}

__all__ = [
    "CPU_MODEL_ID",
    "EmbedInput",
    "Embedder",
    "ImageError",
    "InputError",
    "MME5Error",
    "MME5_MODEL_ID",
    "ModelLoadError",
    "ModelRef",
    "ModelRefError",
    "default_model_id",
    "load_embedder",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        from .cli import held_interrupts

        with held_interrupts():  # torch and transformers load here
            value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
