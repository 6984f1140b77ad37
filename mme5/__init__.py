"""mmE5 embedding core: one factory, thin encoders, prompts and pooling as trained."""
from .backbone import EmbedInput
from .embedder import Embedder
from .loading import CPU_MODEL_ID, MME5_MODEL_ID, ModelLoadError, default_model_id, load_embedder

__all__ = [
    "CPU_MODEL_ID",
    "EmbedInput",
    "Embedder",
    "MME5_MODEL_ID",
    "ModelLoadError",
    "default_model_id",
    "load_embedder",
]
__version__ = "0.1.0"
