"""The FAISS side: an inner-product index keyed by catalog image ids (IndexIDMap2).

Exact (flat) while small; above ``AUTO_IVF_THRESHOLD`` vectors an IVF index with 8-bit
scalar quantisation is trained automatically, and from ``AUTO_PQ_THRESHOLD`` an IVF index
with product quantisation (one byte per 8 dimensions: ≤ 1 KB per image at any model size),
whose top candidates are re-ranked exactly with the stored float16 vectors. Training uses
GPUs when faiss-gpu sees one.

Searching a large flat index on a machine with a CUDA GPU runs on that GPU (torch: fp16
matrix, matmul + top-k, candidates rescored exactly from FAISS's float32 copy) when it fits
beside the model; ``MME5_GPU_SEARCH=0`` keeps it on the CPU.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Callable, cast

import faiss
import numpy as np

from mme5.atomic import write_atomic
from .errors import VectorFileError

logger = logging.getLogger(__name__)

INDEX_FILE = "vectors.faiss"
AUTO_IVF_THRESHOLD = 100_000  # up to here exact search is fast enough and memory is dim*4 bytes/image
AUTO_PQ_THRESHOLD = 1_000_000  # from here ivf-sq8's dim bytes/image (4 KB for mmE5) is too much memory
INDEX_TYPES = ("flat", "ivf", "ivf-sq8", "ivf-pq")
RERANKED = ("ivf-pq",)  # kinds whose scores are too coarse to rank by: the top candidates are re-scored exactly
# Candidates re-scored per query (at least; 4*k for large k). At 1M clustered vectors PQ order loses true
# neighbours past the top 200 (recall@10 0.82 at 64-d and 768-d) but not past the top 1000 (1.00), and the
# memory-mapped store fetches 1000 rows in ~1 ms (benchmarks/NOTES.md).
RERANK_CANDIDATES = 1000
PQ_DIMS_PER_BYTE = 8  # one 8-bit code per 8 dimensions: 96 B (mSigLIP-B), 128 B (SigLIP2-L), 512 B (mmE5)
PQ_MAX_BYTES = 960  # ... but never more than this per image (codes + ids stay under 1 KB)
GPU_SEARCH_MIN = 20_000  # below this a CPU scan is faster than the copy to the GPU
GPU_SEARCH_HEADROOM = 3 * 1024**3  # free GPU memory left to the model (query activations, allocator slack)
GPU_SEARCH_ENV = "MME5_GPU_SEARCH"


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

    def __init__(self, index: faiss.IndexIDMap2):
        self.index = index
        self.checksum: str | None = None  # of the file it was loaded from
        self._gpu_copy: faiss.Index | TorchFlatSearch | None = (
            None  # search-only replica, made on first search when faiss sees a GPU
        )
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
        spec = {"ivf": f"IVF{nlist},Flat", "ivf-sq8": f"IVF{nlist},SQ8", "ivf-pq": f"IVF{nlist},PQ{pq_bytes(dim)}"}[
            kind
        ]
        inner = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        if kind == "ivf-pq":  # polysemous codes only serve Hamming pre-filtering (unused) and cost minutes
            # faiss's stubs omit this IndexIVFPQ field (the SWIG class has it)
            faiss.downcast_index(faiss.extract_index_ivf(inner)).do_polysemous_training = False  # type: ignore[attr-defined]
        if faiss.get_num_gpus() > 0:  # k-means is the expensive part of training
            faiss.extract_index_ivf(inner).clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim))
        inner.train(np.ascontiguousarray(training, dtype=np.float32))
        ivf = faiss.extract_index_ivf(inner)
        ivf.clustering_index = None  # type: ignore[assignment]  # faiss's stubs say Index; SWIG takes None (no pointer)
        return cls(faiss.IndexIDMap2(inner))

    @classmethod
    def load(cls, path: Path, expected: set[str] | None = None) -> "VectorIndex":
        """Read an index file; ValueError if it is missing or unreadable.

        The file's checksum is computed as it is read (``checksum``); with ``expected`` (the
        checksums the catalog recorded) a file that matches none of them is a ValueError
        before FAISS parses a single byte of it.
        """
        path = Path(path)
        if not path.is_file():
            raise VectorFileError(f"{path}: vector index file missing")
        try:
            data, checksum = read_with_checksum(path)
        except OSError as error:
            raise VectorFileError(f"{path}: vector index file unreadable ({error.strerror or error})") from error
        if expected and checksum not in expected:
            raise VectorFileError(
                f"{path}: vector index file does not match the checksum recorded when it was written (damaged on disk)"
            )
        try:
            index = faiss.deserialize_index(data)
        except (RuntimeError, MemoryError, ValueError) as error:
            raise VectorFileError(
                f"{path}: vector index file unreadable ({str(error).splitlines()[0][:200]})"
            ) from error
        if not isinstance(index, faiss.IndexIDMap2):
            raise VectorFileError(f"{path}: not an id-mapped index ({type(index).__name__})")
        loaded = cls(index)
        loaded.checksum = checksum
        return loaded

    def serialize(self) -> tuple[np.ndarray, str]:
        """(file bytes, their checksum): what ``save`` writes and what the catalog records."""
        data = faiss.serialize_index(self.index)
        return data, checksum_of(data)

    def save(self, path: Path, data: np.ndarray | None = None) -> None:
        write_atomic(path, self.serialize()[0] if data is None else data)

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
        if self.kind == "flat":
            return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        # IndexIDMap2 compacts its id map after a removal, but IVF lists keep their internal ids
        # (positions in that map): renumber them, or every later hit names the wrong photo.
        removed = np.flatnonzero(np.isin(self.ids(), ids)).astype(np.int64)
        count = int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        if len(removed):
            invlists = _invlists(faiss.extract_index_ivf(self.index.index))
            for list_no in range(invlists.nlist):
                size = invlists.list_size(list_no)
                if size:
                    positions = faiss.rev_swig_ptr(invlists.get_ids(list_no), size)
                    positions -= np.searchsorted(removed, positions)
        return count

    def entries(self):
        """(ids, vectors, IVF list of each or None) chunk by chunk in storage order, as FAISS holds them.

        What ``verify --deep`` compares: flat and IVF-Flat hold the vectors exactly, IVF-SQ8
        holds 8-bit codes (decoded here). An entry whose internal position falls outside the
        id map (a damaged file) gets id -1.
        """
        id_map = self.ids()
        if self.kind == "flat":
            inner = cast(faiss.IndexFlat, faiss.downcast_index(self.index.index))
            data = faiss.rev_swig_ptr(inner.get_xb(), self.ntotal * self.dim).reshape(self.ntotal, self.dim)
            for start in range(0, self.ntotal, 65536):
                yield id_map[start : start + 65536], np.array(data[start : start + 65536]), None
            return
        ivf = cast(faiss.IndexIVF, faiss.downcast_index(faiss.extract_index_ivf(self.index.index)))
        invlists = _invlists(ivf)
        for list_no in range(invlists.nlist):
            size = invlists.list_size(list_no)
            if not size:
                continue
            positions = faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy()
            codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * invlists.code_size).copy()
            valid = (positions >= 0) & (positions < len(id_map))
            ids = np.where(valid, id_map[np.clip(positions, 0, max(len(id_map) - 1, 0))], -1)
            yield ids, self._decode(ivf, codes, list_no, size), np.full(size, list_no)

    def expected(self, stored: np.ndarray, lists: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(what FAISS should hold for these stored vectors, allowed difference per component).

        Flat and IVF-Flat: the vectors themselves, exactly. IVF-SQ8: each vector encoded into
        the list it sits in and decoded again; one quantisation step of slack is allowed, so a
        damaged code byte off by exactly one step goes unseen (the file checksum catches damage
        to the file itself).
        """
        if self.kind != "ivf-sq8":
            return stored, np.zeros(self.dim, np.float32)
        if lists is None:
            raise ValueError("an IVF-SQ8 index needs the IVF list of each stored vector (entries() gives them)")
        ivf = cast(faiss.IndexIVFScalarQuantizer, faiss.downcast_index(faiss.extract_index_ivf(self.index.index)))
        centroids = np.stack([ivf.quantizer.reconstruct(int(n)) for n in lists]) if ivf.by_residual else 0
        residual = np.ascontiguousarray(stored - centroids, dtype=np.float32)
        decoded = ivf.sq.decode(ivf.sq.compute_codes(residual))
        steps = ivf.sq.decode(np.stack([np.zeros(ivf.code_size, np.uint8), np.ones(ivf.code_size, np.uint8)]))
        return decoded + centroids, np.abs(steps[1] - steps[0]) * 1.01 + 1e-6

    def _decode(self, ivf, codes: np.ndarray, list_no: int, size: int) -> np.ndarray:
        if self.kind == "ivf":
            return codes.view(np.float32).reshape(size, self.dim).copy()
        vectors = ivf.sq.decode(codes.reshape(size, ivf.code_size))
        if ivf.by_residual:
            vectors += ivf.quantizer.reconstruct(list_no)
        return vectors

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return (
            np.stack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.empty((0, self.dim), np.float32)
        )

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
        if self.exact_source is None:  # reranks checks it
            raise ValueError("re-ranking needs the stored vectors (exact_source)")
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
            params = faiss.SearchParameters()
        else:
            params = ivf_params = faiss.SearchParametersIVF()
            ivf_params.nprobe = faiss.extract_index_ivf(self.index.index).nprobe
        params.sel = selector
        if self.reranks:
            return self._rerank(queries, self.index.search(queries, self._candidates(k), params=params)[1], k)
        return _hits(*self.index.search(queries, k, params=params))

    def prepare_search(self) -> str:
        """Set up where searches run now (a big flat index moves to the GPU here, not on the first query)."""
        return type(self._searcher()).__name__

    def _searcher(self):
        """Where searches run: torch on a CUDA GPU (flat), a faiss-gpu replica, or the index itself."""
        if self._gpu_copy is None:
            self._gpu_copy = self.index
            device = _torch_gpu_for(self.kind, self.ntotal, self.dim)
            if device is not None:
                self._gpu_copy = torch_search = TorchFlatSearch.from_index(self.index, device)
                logger.info(
                    f"indexer: searching {self.ntotal} vectors on {device} (float16, "
                    f"{torch_search.nbytes / 2**30:.1f} GiB)"
                )
            elif self.ntotal >= GPU_SEARCH_MIN and not _zero_gpu() and faiss.get_num_gpus() > 0:
                try:
                    self._gpu_copy = faiss.index_cpu_to_all_gpus(self.index)
                    self._set_probes(self._gpu_copy)
                except (RuntimeError, AttributeError):  # a type without a GPU version: CPU is fine
                    self._gpu_copy = self.index
        return self._gpu_copy

    def _set_probes(self, index=None) -> None:
        index = index or self.index
        nlist = self.nlist
        if nlist is not None:  # not flat
            on_gpu = index is not self.index and hasattr(faiss, "GpuParameterSpace")
            space = faiss.GpuParameterSpace() if on_gpu else faiss.ParameterSpace()
            try:
                space.set_index_parameter(index, "nprobe", probes_for(nlist))
            except RuntimeError:
                faiss.extract_index_ivf(index.index).nprobe = probes_for(nlist)


CHECKSUM_ALGORITHM = "sha256"  # hardware-accelerated; what it adds to an open: benchmarks/bench_checksum.py
READ_CHUNK = 16 << 20


def _invlists(ivf: faiss.IndexIVF) -> faiss.InvertedLists:
    """An IVF index's lists (None only for an index without storage, which no file here holds)."""
    if ivf.invlists is None:
        raise VectorFileError("the IVF index has no inverted lists (damaged file)")
    return ivf.invlists


def checksum_of(data) -> str:
    return f"{CHECKSUM_ALGORITHM}:{hashlib.new(CHECKSUM_ALGORITHM, memoryview(data)).hexdigest()}"


def read_with_checksum(path: Path) -> tuple[np.ndarray, str]:
    """The file's bytes and checksum in one pass (each chunk is hashed while it is still in cache)."""
    digest = hashlib.new(CHECKSUM_ALGORITHM)
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        data = np.empty(size, np.uint8)
        view, done = data.data, 0  # the array's own buffer
        while done < size:
            got = file.readinto(view[done : done + READ_CHUNK])
            if not got:
                raise OSError(f"{path}: file shrank while being read")
            digest.update(view[done : done + got])
            done += got
    return data, f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"


def gpu_search_fits(kind: str, count: int, dim: int, free_bytes: int) -> bool:
    """Whether a flat index of ``count`` vectors should be searched on a GPU with ``free_bytes`` free.

    Worth it from GPU_SEARCH_MIN vectors; fits if its float16 copy leaves GPU_SEARCH_HEADROOM
    free for the model that shares the card.
    """
    return kind == "flat" and count >= GPU_SEARCH_MIN and count * dim * 2 + GPU_SEARCH_HEADROOM <= free_bytes


def _zero_gpu() -> bool:
    from mme5.zero_gpu import on_zero_gpu

    return on_zero_gpu()


def _torch_gpu_for(kind: str, count: int, dim: int):
    """The CUDA device to search on with torch, or None (no GPU, switched off, not flat, does not fit)."""
    from mme5.settings import Settings

    if Settings.from_env().gpu_search is False:
        return None
    if _zero_gpu():  # the GPU exists only inside @spaces.GPU calls: CUDA must not start in the main process
        return None
    if kind != "flat" or count < GPU_SEARCH_MIN:
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        device = torch.device("cuda", torch.cuda.current_device())
        free, _ = torch.cuda.mem_get_info(device)
    except Exception:  # noqa: BLE001 - a broken CUDA setup: search on the CPU
        return None
    return device if gpu_search_fits(kind, count, dim, free) else None


class TorchFlatSearch:
    """Exact inner-product top-k on a torch device, with FAISS's ``search`` signature.

    The float16 matrix ranks everything in one matmul + top-k; the best ``k + margin``
    candidates are then rescored in float32 from the host copy, so scores (and hence the
    order) are those of FAISS's flat search, not float16 approximations of them.
    """

    CHUNK = 65_536  # rows converted per host-to-device copy
    MAX_K = 4_096  # larger windows (rare filters grown wide) go to FAISS: rescoring them on the host would not pay

    def __init__(self, vectors: np.ndarray, ids: np.ndarray, device, dtype=None):
        import torch

        self.host = vectors  # (n, d) float32, kept (a view into the FAISS index) for rescoring
        self.ids = np.asarray(ids, dtype=np.int64)
        self.owner: faiss.IndexIDMap2 | None = None  # the index ``vectors`` views (from_index)
        self.device = torch.device(device)
        self.dtype = dtype or torch.float16
        self.ntotal, self.d = vectors.shape
        self.matrix = torch.empty((self.ntotal, self.d), dtype=self.dtype, device=self.device)
        for start in range(0, self.ntotal, self.CHUNK):
            chunk = torch.from_numpy(np.ascontiguousarray(vectors[start : start + self.CHUNK]))
            self.matrix[start : start + len(chunk)] = chunk.to(self.device, non_blocking=False).to(self.dtype)

    @classmethod
    def from_index(cls, index: faiss.IndexIDMap2, device, dtype=None) -> "TorchFlatSearch":
        flat = cast(faiss.IndexFlat, faiss.downcast_index(index.index))
        count, dim = int(flat.ntotal), int(flat.d)
        vectors = faiss.rev_swig_ptr(flat.get_xb(), count * dim).reshape(count, dim)
        searcher = cls(vectors, faiss.vector_to_array(index.id_map), device, dtype)
        searcher.owner = index  # ``vectors`` is a view into its memory: keep it alive; also serves k > MAX_K
        return searcher

    @property
    def nbytes(self) -> int:
        return self.matrix.numel() * self.matrix.element_size()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) as FAISS returns them: (n, k), padded with id -1 beyond ntotal."""
        import torch

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = len(queries)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        take = min(k, self.ntotal)
        if take == 0 or n == 0:
            return scores, ids
        if take > self.MAX_K and self.owner is not None:
            return self.owner.search(queries, k)
        candidates = min(self.ntotal, take + max(32, take // 4))
        with torch.inference_mode():
            query = torch.from_numpy(queries).to(self.device).to(self.dtype)
            rough = query @ self.matrix.T
            positions = rough.topk(candidates, dim=1, sorted=False).indices.cpu().numpy()
        for row in range(n):
            exact = self.host[positions[row]] @ queries[row]  # float32, like FAISS
            best = np.argsort(-exact, kind="stable")[:take]
            scores[row, :take] = exact[best]
            ids[row, :take] = self.ids[positions[row][best]]
        return scores, ids


def _hits(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAISS output in this module's convention: missing hits score -inf."""
    scores = scores.astype(np.float32)
    scores[ids < 0] = -np.inf
    return scores, ids.astype(np.int64)


def _no_hits(queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((queries, k), -np.inf, np.float32), np.full((queries, k), -1, np.int64)
