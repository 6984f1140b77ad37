"""Dual encoders (SigLIP) on ONNX Runtime: about twice torch's speed on a CPU, same vectors.

Both towers are exported once per model (and adapter), into the user cache keyed by
content (``mme5.identity``), so a moved or re-downloaded model reuses its export. The
export is written to a temporary folder and renamed into place, so an interrupted
export leaves nothing half-written behind. Int8 dynamic quantisation is an explicit
opt-in (``runtime="onnx-int8"``): it changes the vectors, so it is part of the
embedder's identity (``Embedder.quantization``, ``Embedder.fingerprint``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .dual_encoder import DualEncoderBackbone

logger = logging.getLogger(__name__)

EXPORT_VERSION = "1"  # bump when the exported graphs change, so old caches are not reused
OPSET = 17
TOWERS = ("vision", "text")
STALE_TEMP_SECONDS = 3600  # a temp export folder this old was left by an interrupted process


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def cache_root() -> Path:
    """``$MME5_CACHE_DIR`` or ``$XDG_CACHE_HOME/mme5`` (default ``~/.cache/mme5``), plus ``/onnx``."""
    from .settings import user_cache_dir

    return user_cache_dir() / "onnx"


def content_digests(
    source: str, adapter: str | os.PathLike | None, revision: str | None
) -> tuple[str, str | None] | None:
    """(model digest, adapter digest) by content, or None while the model's files are not local yet.

    Uses ``mme5.identity`` (the index's notion of model identity) where it exists, so the
    export cache and the index agree on what "the same model" is; otherwise a cheap local
    digest (configs whole, weight files by name, size and three 1 MiB samples).
    """
    model_digest: Callable[[str, str | None], str | None]
    adapter_digest: Callable[[str | os.PathLike], str | None]
    try:
        from . import identity

        model_digest, adapter_digest = identity.model_digest, identity.adapter_digest
    except ImportError:
        model_digest, adapter_digest = _sampled_digest, _sampled_digest
    model = model_digest(source, revision)
    if model is None or str(model).startswith("name:"):
        return None
    return model, (adapter_digest(adapter) if adapter else None)


def _sampled_digest(source, revision: str | None = None) -> str | None:
    folder = Path(source).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(source), revision=revision, local_files_only=True))
        except Exception:  # noqa: BLE001 - not a hub id, or not downloaded yet
            return None
    digest = hashlib.sha256()
    for name in ("config.json", "adapter_config.json"):
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    sample = 1 << 20
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin")):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as handle:
            for offset in sorted({0, max(0, size // 2 - sample // 2), max(0, size - sample)}):
                handle.seek(offset)
                digest.update(handle.read(sample))
    return digest.hexdigest()


def export_key(model_digest: str, adapter_digest: str | None) -> str:
    text = f"{EXPORT_VERSION}|{model_digest}|{adapter_digest or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class _Tower(torch.nn.Module):
    """One tower of a SigLIP model as a plain tensor -> tensor module (what the exporter traces)."""

    def __init__(self, backbone: DualEncoderBackbone, tower: str):
        super().__init__()
        self.model = backbone.model
        self.features = backbone.image_features if tower == "vision" else backbone.text_features

    def forward(self, inputs):
        return self.features(inputs)


def _example_input(config, tower: str) -> tuple[str, torch.Tensor]:
    if tower == "vision":
        side = int(config.vision_config.image_size)
        return "pixel_values", torch.zeros(2, int(config.vision_config.num_channels), side, side)
    length = int(config.text_config.max_position_embeddings)
    return "input_ids", torch.ones(2, length, dtype=torch.long)


def _export_tower(backbone: DualEncoderBackbone, tower: str, path: Path) -> None:
    name, example = _example_input(backbone.config, tower)
    module = _Tower(backbone, tower).eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=[name],
            output_names=["features"],
            dynamic_axes={name: {0: "batch"}, "features": {0: "batch"}},
            opset_version=OPSET,
        )


def _clean_stale(root: Path, key: str) -> None:
    for temp in root.glob(f".{key}.*"):
        try:
            if time.time() - temp.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(temp, ignore_errors=True)
        except OSError:
            pass


def export(backbone: DualEncoderBackbone, folder: Path, note: str = "") -> Path:
    """Write both towers of a torch-runtime backbone as ONNX into ``folder`` (atomically); returns it."""
    from tqdm.auto import tqdm

    folder.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(folder.parent, folder.name)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        logger.info(f"mme5: exporting {note or 'the model'} to ONNX once (later starts reuse {folder})")
        for tower in tqdm(TOWERS, desc="mme5: ONNX export", unit="tower", file=sys.stderr, dynamic_ncols=True):
            _export_tower(backbone, tower, temp / f"{tower}.onnx")
        (temp / "export.json").write_text(
            json.dumps({"version": EXPORT_VERSION, "opset": OPSET, "torch": torch.__version__, "source": note})
        )
        try:
            os.replace(temp, folder)
        except OSError:  # another process finished the same export first: keep theirs
            if not (folder / "export.json").is_file():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return folder


def quantized(folder: Path, tower: str) -> Path:
    """The int8 (dynamic quantisation) copy of a tower, made on first use next to the fp32 one."""
    target = folder / f"{tower}.int8.onnx"
    if target.is_file():
        return target
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logger.info(f"mme5: quantising the {tower} tower to int8 (once)")
    handle, temp = tempfile.mkstemp(prefix=f".{tower}.int8.", suffix=".onnx", dir=folder)
    os.close(handle)
    logging.disable(logging.WARNING)  # its "consider pre-processing" advice is for static quantisation
    try:
        quantize_dynamic(str(folder / f"{tower}.onnx"), temp, weight_type=QuantType.QInt8)
        os.replace(temp, target)
    finally:
        logging.disable(logging.NOTSET)
        if os.path.exists(temp):
            os.remove(temp)
    return target


def session(path: Path, threads: int | None = None):
    """A CPU InferenceSession with full graph optimisation; ``threads`` defaults to torch's thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":  # share the cores with decoding threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class OnnxDualEncoderBackbone(DualEncoderBackbone):
    """The dual encoder with its towers run by ONNX Runtime; tokenising and preprocessing stay the same."""

    runtime = "onnx"

    def __init__(self, config, processor, folder: Path, quantization: str | None = None, lowercase: bool = False):
        self._config = config
        super().__init__(None, processor, torch.device("cpu"), torch.float32, lowercase=lowercase)
        self.folder = folder
        self.quantization = quantization
        self.sessions = {
            tower: session(quantized(folder, tower) if quantization == "int8" else folder / f"{tower}.onnx")
            for tower in TOWERS
        }

    @property
    def config(self):
        return self._config

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._run("vision", "pixel_values", pixel_values)

    def text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._run("text", "input_ids", input_ids)

    def _run(self, tower: str, name: str, values: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(values.numpy())
        return torch.from_numpy(self.sessions[tower].run(None, {name: array})[0])


def load_onnx_backbone(
    source: str,
    config,
    processor,
    revision: str | None,
    adapter: str | os.PathLike | None,
    quantization: str | None,
    lowercase: bool,
    load_torch,
) -> OnnxDualEncoderBackbone:
    """The ONNX backbone for a model (+adapter), exporting first if the cache has no copy.

    ``load_torch()`` returns the torch-runtime backbone; it is called only to export.
    """
    backbone = None
    digests = content_digests(source, adapter, revision)
    if digests is None:  # a hub id whose weights are not downloaded yet: loading fetches them
        backbone = load_torch()
        digests = content_digests(source, adapter, revision)
    if digests is None:
        raise FileNotFoundError(f"{source}: no local copy of the model to export to ONNX; use --runtime torch")
    folder = cache_root() / export_key(*digests)
    if not (folder / "export.json").is_file():
        backbone = backbone or load_torch()
        export(backbone, folder, note=f"{source}" + (f" + adapter {adapter}" if adapter else ""))
    del backbone  # the torch weights are not needed for inference
    return OnnxDualEncoderBackbone(config, processor, folder, quantization=quantization, lowercase=lowercase)
