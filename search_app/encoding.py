"""Turning a query (text, image, both, plus "without" texts) into one vector, one forward pass at a time."""
from __future__ import annotations

import threading

import numpy as np


class QueryEncoder:
    """Wraps the embedder: picks text / image / composed encoding and pushes "without" texts away."""

    def __init__(self, embedder):
        self.embedder = embedder
        self._lock = threading.Lock()  # one forward pass at a time: torch is not re-entrant-safe here

    def encode(self, text: str | None = None, image=None, without: tuple[str, ...] = ()) -> np.ndarray:
        """The (1, dim) query vector."""
        has_text = isinstance(text, str) and bool(text.strip())
        if image is None or (isinstance(image, str) and not image.strip()):
            text = check_text(text, "query text")
            encode = lambda: self.embedder.encode_text_queries([text])  # noqa: E731
        elif has_text:
            encode = lambda: self.embedder.encode_composed([image], [text.strip()])  # noqa: E731
        else:
            encode = lambda: self.embedder.encode_image_queries([image])  # noqa: E731
        with self._lock:
            vector = np.ascontiguousarray(encode(), dtype=np.float32)
            if without:
                negatives = np.asarray(self.embedder.encode_text_queries(list(without)), dtype=np.float32)
        return push_away(vector, negatives) if without else vector


def push_away(vector: np.ndarray, negatives: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """The query minus its "without" vectors, renormalised (chosen by measurement: see the README).

    q' = q − strength · Σ nᵢ, scaled back to unit length: scores stay cosines and the index needs nothing new.
    """
    moved = vector - strength * negatives.sum(axis=0, keepdims=True)
    norm = np.linalg.norm(moved, axis=1, keepdims=True)
    if not np.all(norm > 1e-6):  # "x without x": nothing left to search for
        raise ValueError("The “without” texts cancel the whole query: remove one, or describe what you want.")
    return np.ascontiguousarray(moved / norm, dtype=np.float32)


def check_text(text, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"The {what} is empty: type what you are looking for, e.g. “a dog on a beach”.")
    return text.strip()
