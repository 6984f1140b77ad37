"""Is this process on Hugging Face ZeroGPU? A light check (no torch, never imports ``spaces``).

On ZeroGPU a GPU is attached only inside ``@spaces.GPU`` calls: the main process must not
initialise CUDA (no compiling, no index on the GPU, no embedding at start-up).
"""

from __future__ import annotations

import os
import sys


def on_zero_gpu() -> bool:
    """Hugging Face ZeroGPU, by the variable the ``spaces`` package itself reads (or its loaded config)."""
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true"):
        return True
    spaces_config = sys.modules.get("spaces.config")  # never import spaces here: it is optional
    return bool(getattr(getattr(spaces_config, "Config", None), "zero_gpu", False))
