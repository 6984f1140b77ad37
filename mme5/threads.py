"""How our programs share a machine's cores: OpenMP threads that wait sleep instead of spinning.

The indexer decodes photos on threads beside the model, and the search server answers HTTP on its event loop
beside the model and FAISS, which bring two separate OpenMP runtimes (torch's libgomp and the one bundled with
faiss). An OpenMP worker that spins while it waits holds a core, so on a small machine it starves the other
runtime's workers, the decode threads and the event loop. On the 2-core development CPU spinning cut the
indexer's pipeline efficiency from 0.85 to 0.2, and made the server's own search of a REST text query take
~14 ms where passive waiting took ~10 ms (docs/performance.md, docs/app.md). ONNX Runtime follows the same
setting (``mme5.onnx_runtime.session`` turns its spinning off).
"""

from __future__ import annotations

import os

SHARED_CORES_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def share_cores() -> None:
    """Set ``SHARED_CORES_ENV`` unless the user set those variables. OpenMP reads them once, when torch, faiss
    or onnxruntime first loads, so entry points call this before importing any of them."""
    for name, value in SHARED_CORES_ENV.items():
        os.environ.setdefault(name, value)
