"""The one encode() path: validation, sorting to save padding, batching, progress, numpy out."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import groupby
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import prompts, registry
from .backbone import Backbone, EmbedInput
from .errors import ImageError, InputError
from .images import describe, image_size, load_image


class Embedder:
    """Images and texts in, L2-normalised float32 vectors out (rows in input order)."""

    def __init__(self, backbone: Backbone, model_id: str, adapter: str | None = None, revision: str | None = None):
        self.backbone = backbone
        self.model_id = model_id
        self.adapter = adapter
        self.revision = revision
        self._identity: dict | None = None
        self._model_lock = threading.Lock()  # one forward at a time, whatever thread asks
        self._background: ThreadPoolExecutor | None = None

    # -- facts callers store next to the vectors ------------------------------------------
    @property
    def dim(self) -> int:
        return self.backbone.dim

    @property
    def family(self) -> str:
        return self.backbone.family

    @property
    def spec(self) -> registry.BackboneSpec:
        """The registry entry of this embedder's backbone family."""
        return registry.by_family(self.family)

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @property
    def runtime(self) -> str:
        """The engine running the model: torch, onnx (same vectors as torch) or onnx-int8."""
        return self.backbone.runtime if self.quantization is None else f"{self.backbone.runtime}-{self.quantization}"

    @property
    def quantization(self) -> str | None:
        """None for the model's own weights; "int8" when quantised, which makes a different vector space."""
        return self.backbone.quantization

    @property
    def prompt_version(self) -> str:
        return prompts.PROMPT_VERSION

    @property
    def identity(self) -> dict:
        """What makes the vector space, by content (see mme5.identity): never the path the model was given by.

        ``quantization`` is the backbone's (e.g. ``"int8-dynamic"`` for a quantised runtime; None = full
        precision): quantised vectors are close to, not equal to, full-precision ones.
        """
        if self._identity is None:
            from . import identity

            self._identity = {
                "model": identity.model_digest(self.model_id, self.revision),
                "adapter": identity.adapter_digest(self.adapter),
                "family": self.family,
                "dim": self.dim,
                "prompt_version": prompts.PROMPT_VERSION,
                "quantization": getattr(self.backbone, "quantization", None),
            }
        return self._identity

    @property
    def fingerprint(self) -> str:
        """Identifies the vector space: same fingerprint ⇔ vectors are comparable."""
        from .identity import fingerprint

        return fingerprint(self.identity)

    def __repr__(self) -> str:
        return (
            f"Embedder(model_id={self.model_id!r}, family={self.family!r}, dim={self.dim}, device={self.device}, "
            f"runtime={self.runtime!r})"
        )

    # -- public encoders ---------------------------------------------------------------
    def encode_images(self, images: Sequence, batch_size: int = 8, show_progress_bar: bool = False) -> np.ndarray:
        """Images as documents in the index."""
        return self._encode_task("image_document", images, None, None, batch_size, show_progress_bar)

    def encode_texts(
        self,
        texts: Sequence[str],
        instruction: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Texts as queries (with an instruction) or as plain text documents (instruction=None)."""
        return self._encode_task("text", None, texts, instruction, batch_size, show_progress_bar)

    def encode_text_queries(self, texts: Sequence[str], batch_size: int = 32, show_progress_bar: bool = False):
        """Text → image search queries in the format mmE5 was trained on."""
        return self.encode_query(
            registry.QueryKind.TEXT, texts=texts, batch_size=batch_size, show_progress_bar=show_progress_bar
        )

    def encode_image_queries(self, images: Sequence, batch_size: int = 8, show_progress_bar: bool = False):
        """ "More like this": an image as a query for similar images."""
        return self.encode_query(
            registry.QueryKind.IMAGE, images=images, batch_size=batch_size, show_progress_bar=show_progress_bar
        )

    def encode_composed(
        self, images: Sequence, texts: Sequence[str], batch_size: int = 8, show_progress_bar: bool = False
    ) -> np.ndarray:
        """Image plus modifying text → image ("this photo, but at night")."""
        return self.encode_query(
            registry.QueryKind.COMPOSED,
            texts=texts,
            images=images,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
        )

    def encode_image_instructions(
        self, images: Sequence, instruction: str, batch_size: int = 8, show_progress_bar: bool = False
    ) -> np.ndarray:
        """Images with a free instruction (generic ``<|image|><|begin_of_text|>{instruction}``), e.g. VQA."""
        return self._encode_task("image_instruction", images, None, instruction, batch_size, show_progress_bar)

    def encode_query(
        self,
        kind: registry.QueryKind | str,
        texts: Sequence[str] | None = None,
        images: Sequence | None = None,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Search queries of one ``QueryKind``: texts for TEXT, images for IMAGE, both (paired) for COMPOSED."""
        kind = registry.QueryKind.parse(kind)
        for needed, given, what in ((kind.needs_text, texts, "texts"), (kind.needs_image, images, "images")):
            if needed and given is None:
                raise InputError(f"a {kind.value} query needs {what}")
            if not needed and given is not None:
                raise InputError(f"a {kind.value} query takes no {what}")
        texts, images = _as_list(texts, "texts"), _as_list(images, "images")
        if kind is registry.QueryKind.COMPOSED and len(images) != len(texts):
            raise InputError(
                f"a composed query needs one text per image, got {len(images)} images and {len(texts)} texts"
            )
        if batch_size is None:
            batch_size = 8 if kind.needs_image else 32
        return self._encode_task(kind.task, images, texts, kind.instruction, batch_size, show_progress_bar)

    def submit(self, method: str, *args, **kwargs) -> Future:
        """Run ``self.<method>(*args, **kwargs)`` (an ``encode_*``) in the background; returns its Future.

        Streaming callers (the indexer) keep one call in flight while they prepare the
        next: on a GPU the next call's decoding and preprocessing then overlap this
        call's forward passes, which take turns on the model. Exceptions surface from
        ``future.result()``.
        """
        if not method.startswith("encode"):
            raise InputError(f"submit runs encode_* methods, not {method!r}")
        if self._background is None:
            workers = 1 if self.device.type == "cpu" else 2
            self._background = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mme5-submit")
        return self._background.submit(getattr(self, method), *args, **kwargs)

    def compile_queries(self, **options) -> float:
        """Compile and warm up the fast one-text query path now (mme5.query_compile); returns seconds.

        Call once at startup (the app does) so no user pays for compiling. Where compiling is
        not possible (CPU, ZeroGPU, MME5_COMPILE_QUERIES=0, a failure) queries stay eager.
        """
        compile_queries = getattr(self.backbone, "compile_queries", None)
        if compile_queries is None:
            return 0.0
        with self._model_lock:
            return compile_queries(**options).warm_up()

    # -- the shared path -----------------------------------------------------------------
    def _encode_task(self, task, images, texts, instruction, batch_size, show_progress_bar) -> np.ndarray:
        images = _as_list(images, "images")
        texts = _as_list(texts, "texts")
        if instruction is not None and not instruction.strip():
            raise InputError("instruction is empty: pass None for plain text documents")
        count = len(images) if images is not None else len(texts)
        items = []
        for index in range(count):
            text = None
            if texts is not None:
                text = texts[index]
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"text #{index} ({text!r}) is empty: every text input needs some content")
            image = images[index] if images is not None else None
            if image is not None:
                _check_image_input(image, index)
            formatted = registry.build_prompt(self.family, task, text=text, instruction=instruction)
            name = describe(image) if image is not None else f"text #{index}"
            items.append(EmbedInput(text=formatted, image=image, name=name))
        return self.encode(items, batch_size=batch_size, show_progress_bar=show_progress_bar)

    def encode(self, items: Sequence[EmbedInput], batch_size: int = 8, show_progress_bar: bool = False) -> np.ndarray:
        """Embed already-formatted inputs. Batches are sorted by cost; output keeps input order."""
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        output = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return output
        batches = self._plan_batches(items, batch_size)
        truncated = 0
        progress = tqdm(
            total=len(items), unit="input", disable=not show_progress_bar, file=sys.stderr, dynamic_ncols=True
        )
        with torch.inference_mode():
            for batch, indices in zip(self._prepared_batches(items, batches), batches):
                truncated += batch.truncated
                with self._model_lock:
                    output[indices] = self.backbone.embed(batch).cpu().numpy()
                progress.update(len(indices))
        progress.close()
        if truncated:
            warnings.warn(
                f"{truncated} text input(s) exceeded {self.backbone.max_text_tokens} tokens and were truncated "
                "(as in training)",
                stacklevel=3,
            )
        return output

    def _prepared_batches(self, items, batches):
        """Collated batches in order; on a GPU, decoding and the processor run ahead in threads.

        On a CPU the model already uses every core (and its OpenMP threads spin between
        ops), so preprocessing in parallel would only steal time: it runs inline there.
        """
        workers = self.preprocess_workers
        if workers == 0:
            for indices in batches:
                yield self._prepare(items, indices)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mme5-preprocess") as pool:
            pending = deque(pool.submit(self._prepare, items, indices) for indices in batches[: workers + 1])
            for number in range(len(batches)):
                batch = pending.popleft().result()
                if number + workers + 1 < len(batches):
                    pending.append(pool.submit(self._prepare, items, batches[number + workers + 1]))
                yield batch

    def forward(self, items: Sequence[EmbedInput]) -> torch.Tensor:
        """Embeddings with autograd, for training: one batch, same collate/pool as inference."""
        return self.backbone.embed(self._prepare(items, range(len(items))))

    @property
    def preprocess_workers(self) -> int:
        """Threads that decode and preprocess ahead of the model (numpy and PIL release the GIL)."""
        if self.device.type == "cpu":
            return 0
        return max(1, min(4, (os.cpu_count() or 2) // 2))

    def _prepare(self, items: Sequence[EmbedInput], indices: Iterable[int]):
        batch = self.backbone.collate(self._load(items, indices))
        if self.device.type == "cuda":  # pinned memory makes the host-to-device copy asynchronous
            batch.tensors = {
                key: value.pin_memory() if isinstance(value, torch.Tensor) else value
                for key, value in batch.tensors.items()
            }
        return batch

    def _plan_batches(self, items: Sequence[EmbedInput], batch_size: int) -> list[list[int]]:
        sizes = {}
        if self.spec.sized_batches:
            sizes = {i: image_size(item.image) for i, item in enumerate(items) if item.has_image}
        backbone = self.backbone

        def order(index: int) -> tuple:
            item = items[index]
            return backbone.group_key(item) + backbone.cost_key(item, sizes.get(index))

        ordered = sorted(range(len(items)), key=order)
        batches: list[list[int]] = []
        for _, members in groupby(ordered, key=lambda index: backbone.group_key(items[index])):
            group = list(members)
            batches.extend(group[start : start + batch_size] for start in range(0, len(group), batch_size))
        return batches

    def _load(self, items: Sequence[EmbedInput], indices: Iterable[int]) -> list[EmbedInput]:
        draft = self.backbone.image_draft_size
        loaded = []
        for index in indices:
            item = items[index]
            image = load_image(item.image, draft_size=draft) if item.has_image else None
            loaded.append(EmbedInput(text=item.text, image=image, name=item.name))
        return loaded


def _as_list(values, what: str):
    if values is None:
        return None
    if isinstance(values, (str, os.PathLike)) or not hasattr(values, "__len__"):
        raise InputError(f"{what} must be a list, got {type(values).__name__}; wrap a single input in a list")
    return list(values)


def _check_image_input(image, index: int) -> None:
    """Cheap checks before any model work, so a bad path fails fast and by name."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise ImageError(path, f"file not found (image #{index})")
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise ImageError(path, f"empty file (0 bytes) (image #{index})")
