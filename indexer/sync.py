"""Keeping the FAISS index equal to the catalog: load, reconcile, rebuild, measure recall, finish.

Because an image id never changes content, comparing id sets is enough to bring an
index file left behind by a crash up to date with the catalog.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .catalog import Catalog
from .errors import os_problem
from .vectors import INDEX_FILE, VectorIndex, choose_index_type, lists_for

logger = logging.getLogger(__name__)

RECALL_K = 10
RECALL_QUERIES = 200
TRAINING_POINTS_PER_LIST = 64  # k-means sample per IVF list ...
MAX_TRAINING_POINTS = 100_000  # ... but at most this many (1.6 GB of float32 at mmE5's 4096 dims)


@dataclass
class SyncReport:
    """What had to be done to make the index match the catalog."""

    rebuilt: str | None = None  # why it was rebuilt, if it was
    added: int = 0
    removed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.rebuilt or self.added or self.removed)


def load_index(
    catalog: Catalog, index_dir: Path, meta: dict, index_type: str | None = None
) -> tuple[VectorIndex, SyncReport]:
    """The index file brought in line with the catalog (in memory; the caller saves)."""
    report = SyncReport()
    if not (Path(index_dir) / INDEX_FILE).exists() and catalog.count() == 0:
        return with_exact_vectors(VectorIndex.flat(int(meta["dim"])), catalog), report  # a new (or empty) index
    try:
        index = with_exact_vectors(load_checked(catalog, Path(index_dir) / INDEX_FILE, meta), catalog)
        if index.dim != int(meta["dim"]):
            raise ValueError(f"vector index has dim {index.dim}, catalog says {meta['dim']}")
    except ValueError as error:
        report.rebuilt = str(error)
        request = index_type or meta.get("index_type_request")
        return rebuild(catalog, int(meta["dim"]), request), report
    if meta.get("index_generation") != meta.get("generation") or id_summary(index) != catalog.ok_id_summary():
        report.added, report.removed = reconcile(catalog, index)
    return index, report


def recorded_checksums(meta: dict) -> set[str]:
    """Checksums the catalog vouches for: the last file written, and one being written (a crash between the
    rename and the catalog update leaves the new file with only the pending checksum). Empty: none recorded."""
    return {value for value in (meta.get("index_checksum"), meta.get("index_checksum_pending")) if value}


def load_checked(catalog: Catalog, path: Path, meta: dict) -> VectorIndex:
    """The FAISS file, refused (ValueError) unless its checksum is one the catalog recorded.

    A build may replace the file between our read of the catalog and of the file: a
    mismatch is only believed after reading both again.
    """
    try:
        return VectorIndex.load(path, expected=recorded_checksums(meta))
    except ValueError as error:
        if "checksum" not in str(error):
            raise
    return VectorIndex.load(path, expected=recorded_checksums(catalog.get_meta()))


def save_index(catalog: Catalog, index: VectorIndex, path: Path) -> str:
    """Write the FAISS file atomically and record its checksum in the catalog; returns the checksum.

    Order: checksum recorded as pending, file renamed into place, checksum made current. A
    crash anywhere leaves a file whose checksum the catalog knows (old or new); a full disk
    is a DiskFullError that leaves the previous file in place.
    """
    data, checksum = index.serialize()
    with catalog.session() as session:
        Catalog.set_meta(session, index_checksum_pending=checksum)
        session.commit()
    try:
        index.save(path, data)
    except OSError as error:
        problem = os_problem(error, Path(path).parent)
        if problem is error:
            raise
        raise problem from error
    with catalog.session() as session:
        Catalog.set_meta(session, index_checksum=checksum, index_checksum_pending=None)
        session.commit()
    index.checksum = checksum
    return checksum


def with_exact_vectors(index: VectorIndex, catalog: Catalog) -> VectorIndex:
    """Let a compressed index re-rank its candidates with the catalog's stored vectors (memory-mapped
    store when attached: indexer/rowstore.py)."""
    index.exact_source = catalog.exact_vectors
    return index


def id_summary(index: VectorIndex) -> tuple[int, int, int, int]:
    ids = index.ids()
    if not len(ids):
        return (0, 0, 0, 0)
    return (len(ids), int(ids.sum()), int(ids.min()), int(ids.max()))


def reconcile(catalog: Catalog, index: VectorIndex) -> tuple[int, int]:
    """Add catalog vectors the index lacks and drop ids the catalog no longer has."""
    wanted = catalog.ok_ids()
    present = index.ids()
    extra = np.setdiff1d(present, wanted, assume_unique=True)
    missing = np.setdiff1d(wanted, present, assume_unique=True)
    index.remove(extra)
    for start in range(0, len(missing), 4096):
        ids, vectors = catalog.vectors_for_ids(missing[start : start + 4096])
        index.add(ids, vectors)
    return len(missing), len(extra)


def rebuild(catalog: Catalog, dim: int, index_type: str | None) -> VectorIndex:
    """A fresh index of the right type from the stored float16 vectors (no re-embedding)."""
    count = catalog.count()
    kind = choose_index_type(index_type, count)
    if kind == "flat" or count == 0:
        index = VectorIndex.flat(dim)
    else:
        ids = catalog.ok_ids()
        rng = np.random.default_rng(0)
        nlist = lists_for(count)
        wanted = max(39 * nlist, min(TRAINING_POINTS_PER_LIST * nlist, MAX_TRAINING_POINTS))  # faiss needs 39/list
        sample = rng.choice(ids, size=min(len(ids), wanted), replace=False)
        _, training = catalog.vectors_for_ids(np.sort(sample))
        logger.info(f"indexer: training a {kind} index on {len(training)} of {count} vectors")
        index = VectorIndex.trained(kind, dim, training, count)
    for ids, vectors in catalog.iter_ok_vectors():
        index.add(ids, vectors)
    return with_exact_vectors(index, catalog)


def needs_retraining(index: VectorIndex, index_type: str | None, count: int) -> str | None:
    """Why the index should be rebuilt now (type change or outgrown IVF lists), or None."""
    target = choose_index_type(index_type, count)
    if index.kind != target:
        return f"index type {index.kind} -> {target} for {count} images"
    if index.nlist is not None and lists_for(count) > 2 * index.nlist:
        return f"{count} images outgrew {index.nlist} IVF lists"
    return None


def measure_recall(catalog: Catalog, index: VectorIndex, k: int = RECALL_K, queries: int = RECALL_QUERIES) -> dict:
    """Recall@k of the index against exact search, using stored vectors as queries."""
    ids = catalog.ok_ids()
    if index.kind == "flat" or len(ids) == 0:
        return {"recall_at_k": 1.0, "k": k, "queries": 0, "exact": True, "images": len(ids)}
    k = min(k, len(ids))
    rng = np.random.default_rng(1)
    chosen = np.sort(rng.choice(ids, size=min(queries, len(ids)), replace=False))
    _, query_vectors = catalog.vectors_for_ids(chosen)
    query_vectors = query_vectors.astype(np.float32)
    best_scores = np.full((len(query_vectors), k), -np.inf, np.float32)
    best_ids = np.full((len(query_vectors), k), -1, np.int64)
    for chunk_ids, chunk in catalog.iter_ok_vectors():
        scores = query_vectors @ chunk.astype(np.float32).T
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, np.broadcast_to(chunk_ids, scores.shape)], axis=1)
        top = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(all_scores, top, 1)
        best_ids = np.take_along_axis(all_ids, top, 1)
    _, approx = index.search(query_vectors, k)
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), best_ids.tolist()))
    return {
        "recall_at_k": round(hits / (k * len(query_vectors)), 4),
        "k": k,
        "queries": len(query_vectors),
        "exact": False,
        "images": len(ids),
    }


def recall_is_stale(recall: dict | None, index: VectorIndex, count: int) -> bool:
    """Re-measure (a full pass over the stored vectors) only when the answer can have moved."""
    if recall is None or recall.get("exact") != (index.kind == "flat"):
        return True
    measured = recall.get("images", 0)
    return abs(count - measured) > max(0.1 * measured, 0 if index.kind == "flat" else 100)


def finish(
    catalog: Catalog,
    index_dir: Path,
    index: VectorIndex,
    generation: int,
    *,
    index_type: str | None,
    recall: dict | None = None,
    before_save: Callable[[], None] | None = None,
    more_meta: Callable[[VectorIndex], dict] | None = None,
) -> VectorIndex:
    """Bring the vector index of a changed catalog to rest (build, ``verify --repair``, ``remove``).

    ``index`` already holds the catalog's searchable vectors as of ``generation`` (the generation the
    change committed). Retrains it when its type or size calls for it (``index_type``: the index's
    request, None for auto), measures recall again when ``recall`` (the last measurement) can have moved,
    calls ``before_save`` (a last check that may refuse), saves the FAISS file atomically and records, in
    one transaction, that the file matches ``generation``, with its type, IVF lists and recall, plus
    ``more_meta(index)``. Returns the index as saved.
    """
    count = catalog.count()
    reason = needs_retraining(index, index_type, count)
    if reason:
        logger.info(f"indexer: rebuilding the vector index ({reason})")
        index = rebuild(catalog, index.dim, index_type)
    if reason or recall_is_stale(recall, index, count):
        recall = measure_recall(catalog, index)
    if before_save is not None:
        before_save()
    save_index(catalog, index, Path(index_dir) / INDEX_FILE)
    with catalog.session() as session:
        Catalog.set_meta(
            session,
            index_generation=generation,
            index_type=index.kind,
            nlist=index.nlist,
            recall=recall,
            **(more_meta(index) if more_meta is not None else {}),
        )
        session.commit()
    return index
