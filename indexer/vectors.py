"""The FAISS side: an inner-product index keyed by catalog image ids (IndexIDMap2).

Exact (flat) while small; above ``AUTO_IVF_THRESHOLD`` vectors an IVF index with 8-bit
scalar quantisation is trained automatically, and from ``AUTO_PQ_THRESHOLD`` an IVF index
with product quantisation (one byte per 8 dimensions: ≤ 1 KB per image at any model size),
whose top candidates are re-ranked exactly with the stored float16 vectors. Training uses
GPUs when faiss-gpu sees one.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from .atomic import write_atomic

INDEX_FILE = "vectors.faiss"
AUTO_IVF_THRESHOLD = 100_000  # up to here exact search is fast enough and memory is dim*4 bytes/image
AUTO_PQ_THRESHOLD = 1_000_000  # from here ivf-sq8's dim bytes/image (4 KB for mmE5) is too much memory
INDEX_TYPES = ("flat", "ivf", "ivf-sq8", "ivf-pq")
RERANKED = ("ivf-pq",)  # kinds whose scores are too coarse to rank by: the top candidates are re-scored exactly
RERANK_CANDIDATES = 200  # candidates re-scored per query (at least; 4*k for large k)
PQ_DIMS_PER_BYTE = 8  # one 8-bit code per 8 dimensions: 96 B (mSigLIP-B), 128 B (SigLIP2-L), 512 B (mmE5)
PQ_MAX_BYTES = 960  # ... but never more than this per image (codes + ids stay under 1 KB)
GPU_SEARCH_MIN = 20_000  # below this a CPU scan is faster than the copy to the GPU


def choose_index_type(requested: str | None, count: int) -> str:
    """The index type to use for ``count`` vectors: the user's choice, else by size."""
    if requested and requested != "auto":
        if requested not in INDEX_TYPES:
            raise ValueError(f"unknown index type {requested!r}; choose one of auto, {', '.join(INDEX_TYPES)}")
        return requested
    if count <= AUTO_IVF_THRESHOLD:
        return "flat"
    return "ivf-sq8" if count < AUTO_PQ_THRESHOLD else "ivf-pq"


def pq_bytes(dim: int) -> int:
    """PQ sub-quantiser count (= code bytes per image): the largest divisor of dim near dim/8."""
    target = max(1, min(dim // PQ_DIMS_PER_BYTE, PQ_MAX_BYTES))
    return next(m for m in range(target, 0, -1) if dim % m == 0)


def lists_for(count: int) -> int:
    """IVF list count: ~4·sqrt(n), but with enough points per list to train well."""
    return max(1, min(int(4 * math.sqrt(max(count, 1))), count // 39))


def probes_for(nlist: int) -> int:
    return min(nlist, max(8, nlist // 16))


class VectorIndex:
    """A FAISS index whose ids are catalog image ids."""

    def __init__(self, index: faiss.Index):
        self.index = index
        self._gpu_copy = None  # search-only replica, made on first search when faiss sees a GPU
        # ids -> (ids found, float16/32 vectors): the stored full-precision vectors, for re-ranking
        self.exact_source: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
        self._set_probes()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def flat(cls, dim: int) -> "VectorIndex":
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @classmethod
    def trained(cls, kind: str, dim: int, training: np.ndarray, count: int) -> "VectorIndex":
        """An empty index of ``kind`` trained on a sample of the vectors it will hold."""
        if kind == "flat":
            return cls.flat(dim)
        nlist = min(lists_for(count), max(1, len(training)))
        spec = {"ivf": f"IVF{nlist},Flat", "ivf-sq8": f"IVF{nlist},SQ8", "ivf-pq": f"IVF{nlist},PQ{pq_bytes(dim)}"}[kind]
        inner = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        if kind == "ivf-pq":  # polysemous codes only serve Hamming pre-filtering (unused) and cost minutes
            faiss.downcast_index(faiss.extract_index_ivf(inner)).do_polysemous_training = False
        if faiss.get_num_gpus() > 0:  # k-means is the expensive part of training
            faiss.extract_index_ivf(inner).clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim))
        inner.train(np.ascontiguousarray(training, dtype=np.float32))
        ivf = faiss.extract_index_ivf(inner)
        ivf.clustering_index = None
        return cls(faiss.IndexIDMap2(inner))

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        """Read an index file; ValueError if it is missing or unreadable."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: vector index file missing")
        try:
            data = np.fromfile(path, dtype=np.uint8)
            index = faiss.deserialize_index(data)
        except (RuntimeError, MemoryError, ValueError) as error:
            raise ValueError(f"{path}: vector index file unreadable ({str(error).splitlines()[0][:200]})") from error
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"{path}: not an id-mapped index ({type(index).__name__})")
        return cls(index)

    def save(self, path: Path) -> None:
        write_atomic(path, faiss.serialize_index(self.index))

    # -- facts -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexFlat):
            return "flat"
        if isinstance(inner, faiss.IndexIVFScalarQuantizer):
            return "ivf-sq8"
        if isinstance(inner, faiss.IndexIVFPQ):
            return "ivf-pq"
        if isinstance(inner, faiss.IndexIVFFlat):
            return "ivf"
        return type(inner).__name__

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nlist(self) -> int | None:
        return None if self.kind == "flat" else int(faiss.extract_index_ivf(self.index.index).nlist)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    # -- changes -----------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._gpu_copy = None
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids) -> int:
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        if not len(ids):
            return 0
        self._gpu_copy = None
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return np.stack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.empty((0, self.dim), np.float32)

    # -- search ------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), both (n, k); missing hits have id -1 and score -inf."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.ntotal == 0:
            return _no_hits(len(queries), k)
        if self.reranks:
            return self._rerank(queries, self._searcher().search(queries, self._candidates(k))[1], k)
        return _hits(*self._searcher().search(queries, k))

    @property
    def reranks(self) -> bool:
        return self.exact_source is not None and self.kind in RERANKED

    def _candidates(self, k: int) -> int:
        return min(self.ntotal, max(RERANK_CANDIDATES, 4 * k))

    def _rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores for each query's candidates from the stored vectors; the top k of those."""
        wanted = np.unique(candidates[candidates >= 0])
        found, stored = self.exact_source(wanted)
        row_of = dict(zip(found.tolist(), range(len(found))))
        scores, ids = _no_hits(len(queries), k)
        for q, row in enumerate(candidates):
            rows = [row_of[i] for i in row.tolist() if i in row_of]  # an id removed meanwhile has no vector
            if not rows:
                continue
            exact = stored[rows].astype(np.float32) @ queries[q]
            top = np.argsort(-exact, kind="stable")[:k]
            scores[q, : len(top)] = exact[top]
            ids[q, : len(top)] = found[rows][top]
        return scores, ids

    def search_among(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like ``search``, but only ``ids`` can be hits (a FAISS IDSelector skips the rest).

        The scan and the scores are those of ``search`` (same vectors, same IVF lists probed),
        so the hits equal the unrestricted ranking with other ids removed. It runs on the CPU
        index: FAISS GPU indexes take no selector.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.ntotal == 0 or not len(ids):
            return _no_hits(len(queries), k)
        selector = faiss.IDSelectorBatch(ids)  # kept referenced until the search returns
        if self.kind == "flat":
            params = faiss.SearchParameters(sel=selector)
        else:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=faiss.extract_index_ivf(self.index.index).nprobe)
        if self.reranks:
            return self._rerank(queries, self.index.search(queries, self._candidates(k), params=params)[1], k)
        return _hits(*self.index.search(queries, k, params=params))

    def _searcher(self) -> faiss.Index:
        """The GPU replica when faiss-gpu sees a GPU and the index is worth moving; else the index."""
        if self._gpu_copy is None:
            self._gpu_copy = self.index
            if faiss.get_num_gpus() > 0 and self.ntotal >= GPU_SEARCH_MIN:
                try:
                    self._gpu_copy = faiss.index_cpu_to_all_gpus(self.index)
                    self._set_probes(self._gpu_copy)
                except (RuntimeError, AttributeError):  # a type without a GPU version: CPU is fine
                    self._gpu_copy = self.index
        return self._gpu_copy

    def _set_probes(self, index=None) -> None:
        index = index or self.index
        if self.kind != "flat":
            on_gpu = index is not self.index and hasattr(faiss, "GpuParameterSpace")
            space = faiss.GpuParameterSpace() if on_gpu else faiss.ParameterSpace()
            try:
                space.set_index_parameter(index, "nprobe", probes_for(self.nlist))
            except RuntimeError:
                faiss.extract_index_ivf(index.index).nprobe = probes_for(self.nlist)


def _hits(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAISS output in this module's convention: missing hits score -inf."""
    scores = scores.astype(np.float32)
    scores[ids < 0] = -np.inf
    return scores, ids.astype(np.int64)


def _no_hits(queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((queries, k), -np.inf, np.float32), np.full((queries, k), -1, np.int64)
