"""Fold a trained adapter into its base model and write a plain model folder (no peft needed to serve it)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from mme5.atomic import replace_folder

from .errors import TrainerError

logger = logging.getLogger(__name__)


def merge(model: str, adapter: str, out: str, dtype: str | None = None) -> Path:
    """Load ``model`` with ``adapter`` merged (mme5's own path) and save it to ``out`` atomically."""
    from mme5 import load_embedder

    out_path = Path(out)
    if out_path.exists() and any(out_path.iterdir()):
        raise TrainerError(f"{out_path}: already exists and is not empty; choose a new --out")
    chosen = getattr(torch, dtype) if dtype else None
    embedder = load_embedder(
        model, device="cpu", dtype=chosen or _native_dtype(model), adapter=adapter, runtime="torch"
    )
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    embedder.backbone.model.save_pretrained(tmp)
    embedder.backbone.processor.save_pretrained(tmp)
    if out_path.exists():
        out_path.rmdir()
    replace_folder(tmp, out_path)
    logger.info(f"trainer merge: wrote {model} + {adapter} to {out_path}")
    return out_path


def _native_dtype(model: str) -> torch.dtype:
    """The dtype the weights are stored in, so merging does not double an 11B model's size on disk."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model)
    except Exception:  # noqa: BLE001 - load_embedder reports an unreachable model properly
        return torch.float32
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32
