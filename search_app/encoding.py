"""Turning a query (text, image, both, plus "without" texts) into one vector, one forward pass at a time."""

from __future__ import annotations

import threading
import weakref
from typing import Callable

import numpy as np

from mme5.registry import QueryKind

from .limits import MAX_QUERY_CHARS, check_length  # noqa: F401 - re-exported: the engine and the UI import them here


class QueryEncoder:
    """Picks text / image / composed encoding and pushes "without" texts away, one forward pass at a time.

    The embedder is given per call: the one paired with the index the query will rank against
    (the app may switch to an adapted model and index together, see ``live``).

    ``gpu`` wraps the forward pass alone (on Hugging Face ZeroGPU: ``spaces.GPU``, which runs the wrapped
    function in a forked process holding a GPU for the duration of the call). Only that pass needs the
    GPU; checking the text, reading dates and places, ranking and reading the catalog stay outside, so a
    query holds the shared GPU for milliseconds. The wrapped function takes only plain values (ZeroGPU
    pickles the arguments to its worker); the model is found by a key in ``_models``, which a forked
    worker inherits."""

    def __init__(self, gpu: Callable[[Callable], Callable] | None = None):
        self._lock = threading.Lock()  # one forward pass at a time: torch is not re-entrant-safe here
        self._models: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._forward = (gpu or _unchanged)(self._forward_pass)

    def encode(self, embedder, text: str | None = None, image=None, without: tuple[str, ...] = ()) -> np.ndarray:
        """The (1, dim) query vector."""
        if image is None or (isinstance(image, str) and not image.strip()):
            text = check_text(text, "query text")
        kind = QueryKind.of(text=text, image=image)
        if kind is QueryKind.COMPOSED:
            text = check_text(text, "modifying text")
        texts = [text.strip()] if kind.needs_text else None
        without = [check_text(item, "“without” text") for item in without]
        key = id(embedder)
        self._models[key] = embedder
        with self._lock:
            vector, negatives = self._forward(key, kind.value, texts, [image] if kind.needs_image else None, without)
        return push_away(vector, negatives) if without else vector

    def _forward_pass(self, key: int, kind: str, texts, images, without):
        """(query vector, "without" vectors or None): the only work that runs on the model's device."""
        embedder = self._models.get(key)
        if embedder is None:  # a ZeroGPU worker forked before the app switched models: fail, so a fresh one is forked
            raise RuntimeError("the model changed since this GPU worker started; search again")
        vector = np.ascontiguousarray(embedder.encode_query(kind, texts=texts, images=images), dtype=np.float32)
        negatives = np.asarray(embedder.encode_text_queries(without), dtype=np.float32) if without else None
        return vector, negatives


def _unchanged(function: Callable) -> Callable:
    return function


def push_away(vector: np.ndarray, negatives: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """The query minus its "without" vectors, renormalised (chosen by measurement: see docs/search-design.md).

    q' = q − strength · Σ nᵢ, scaled back to unit length: scores stay cosines and the index needs nothing new.
    """
    moved = vector - strength * negatives.sum(axis=0, keepdims=True)
    norm = np.linalg.norm(moved, axis=1, keepdims=True)
    if not np.all(norm > 1e-6):  # "x without x": nothing left to search for
        raise ValueError("The “without” texts cancel the whole query: remove one, or describe what you want.")
    return np.ascontiguousarray(moved / norm, dtype=np.float32)


def check_text(text, what: str) -> str:
    check_length(text, what)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"The {what} is empty: type what you are looking for, e.g. “a dog on a beach”.")
    return text.strip()
