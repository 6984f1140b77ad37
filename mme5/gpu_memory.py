"""How many images fit in one forward on the GPU at hand (so mmE5 runs with defaults on 24 GB cards).

The flagship's weights take ~20 GiB in bf16; on a 24 GB card (A10G, L4, RTX 4090) that leaves
2–4 GiB for activations, while the default batch of 8 four-tile photos peaks at ~7 GiB more.
The indexer asks ``batch_size_for`` before its first batch and says on stderr when it lowers it.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

GIB = 1024**3
#: Peak activation bytes per image ÷ (tiles × tokens per tile × vision width × dtype bytes).
#: Measured on an H200 (benchmarks/NOTES.md, full-size mmE5, bf16, stock attention): peak grows
#: 0.88 GiB per 4-tile photo (27.0 GiB at batch 8, 34.0 at 16, 48.1 at 32) → factor 57; 64 keeps a margin.
ACTIVATION_FACTOR = 64
#: Left free on top (allocator fragmentation, the cuBLAS/cuDNN workspaces, the query path of the app).
RESERVE_BYTES = GIB // 2


def image_activation_bytes(tiles: int, tile_tokens: int, vision_width: int, dtype_bytes: int) -> int:
    """Estimated peak activation bytes one image adds to a forward."""
    return int(ACTIVATION_FACTOR * tiles * tile_tokens * vision_width * dtype_bytes)


def batch_size_for(free_bytes: int, per_image_bytes: int, requested: int, reserve_bytes: int = RESERVE_BYTES) -> int:
    """The largest batch ≤ ``requested`` whose activations fit in ``free_bytes`` (never below 1)."""
    if requested < 1:
        raise ValueError(f"batch size must be at least 1, got {requested}")
    if per_image_bytes <= 0:
        return requested
    fitting = (free_bytes - reserve_bytes) // per_image_bytes
    return int(max(1, min(requested, fitting)))


def free_bytes(device: torch.device) -> int:
    """Bytes this process may still allocate on ``device``: free on the card, within any per-process cap.

    Memory torch has cached but not handed out counts as free; a cap set with
    ``torch.cuda.set_per_process_memory_fraction`` is respected (the 24 GB check uses it).
    """
    device = torch.device(device)
    free, total = torch.cuda.mem_get_info(device)
    reserved, allocated = torch.cuda.memory_reserved(device), torch.cuda.memory_allocated(device)
    available = free + (reserved - allocated)
    fraction = torch.cuda.get_per_process_memory_fraction(device)
    if fraction < 1.0:
        available = min(available, int(fraction * total) - allocated)
    return max(0, int(available))


def fit_batch_size(embedder, requested: int, verbose: bool = True) -> int:
    """``requested`` lowered to what fits on the embedder's GPU for image batches (unchanged on the CPU)."""
    estimate = getattr(getattr(embedder, "backbone", None), "image_activation_bytes", None)
    device = getattr(embedder, "device", None)
    if estimate is None or device is None or torch.device(device).type != "cuda":
        return requested
    per_image = estimate()
    available = free_bytes(embedder.device)
    chosen = batch_size_for(available, per_image, requested)
    if chosen < requested and verbose:
        logger.warning(
            f"mme5: batch size {requested} would need "
            f"~{(requested * per_image + RESERVE_BYTES) / GIB:.1f} GiB of GPU memory, "
            f"{available / GIB:.1f} GiB free: using batch size {chosen}"
        )
    return chosen
