"""Held-out search quality on the user's own library: recall@1/5/10 and MRR with every photo as a candidate.

``trainer adapt`` measures before and after training with it; ``trainer eval --index I --queries RUN/heldout``
measures the index as it is now. The queries are a synth run folder whose targets are photos of the index.
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from mme5.atomic import write_atomic

from .errors import AdaptError

KS = (1, 5, 10)


def load_queries(folder: Path) -> tuple[list[dict], str]:
    """Held-out queries (a synth run folder) whose target is a photo, and the folder their paths are relative to."""
    from synth.output import RunFolder

    run = RunFolder(folder)
    root = run.manifest().get("image_root")
    rows = [row for row in run.samples() if _kind(row) is not None]
    if not rows:
        raise AdaptError(f"{folder}: no held-out queries with a photo as target (text, composed or image search)")
    return rows, root


class Library:
    """Every searchable photo of an index: ids, paths, content hashes; vectors per model."""

    def __init__(self, store):
        self.ids = store.ids()
        records = [r for start in range(0, len(self.ids), 1000) for r in store.records(self.ids[start : start + 1000])]
        self.paths = [r.path for r in records]
        self.hashes = [r.content_hash or r.path for r in records]
        self.by_path = {os.path.abspath(r.path): i for i, r in enumerate(records)}
        self.by_hash: dict[str, list[int]] = defaultdict(list)
        for position, content in enumerate(self.hashes):
            self.by_hash[content].append(position)

    def positions(self, relpath: str, root: str) -> list[int]:
        """Library rows holding the photo at ``root/relpath`` (and its byte-identical copies)."""
        position = self.by_path.get(os.path.abspath(os.path.join(root, relpath)))
        return [] if position is None else self.by_hash[self.hashes[position]]


def _kind(row: dict):
    """The app's kind of search a synth sample is (its modality, e.g. ``IT->I``), None if it is no photo search."""
    from synth.tasks import Combo

    return Combo(str(row.get("modality"))).query_kind


def encode_queries(embedder, rows: list[dict], root: str, show_progress: bool) -> np.ndarray:
    """Each query as the app encodes it (``encode_query`` with its QueryKind), grouped by kind."""
    vectors = np.zeros((len(rows), embedder.dim), dtype=np.float32)
    groups: dict = defaultdict(list)
    for number, row in enumerate(rows):
        groups[_kind(row)].append(number)
    for kind, numbers in groups.items():
        texts = [rows[n].get("query_text") or "" for n in numbers] if kind.needs_text else None
        images = [os.path.join(root, rows[n]["qry_image_path"]) for n in numbers] if kind.needs_image else None
        vectors[numbers] = embedder.encode_query(kind, texts=texts, images=images, show_progress_bar=show_progress)
    return vectors


def ranks(
    query_vectors: np.ndarray, library_vectors: np.ndarray, rows: list[dict], root: str, library: Library
) -> list[int]:
    """1-based rank of the best positive photo among the whole library (the query photo itself left out)."""
    found = []
    for start in range(0, len(rows), 256):
        scores = query_vectors[start : start + 256] @ library_vectors.T
        for offset, row in enumerate(rows[start : start + 256]):
            line = scores[offset]
            positives = library.positions(row["pos_image_path"], root)
            if not positives:
                raise AdaptError(
                    f"{row['pos_image_path']}: held-out target photo is no longer in the index; start a new run folder"
                )
            if row.get("qry_image_path"):
                line = line.copy()
                line[library.positions(row["qry_image_path"], root)] = -np.inf
            best = line[positives].max()
            found.append(1 + int(np.sum(line > best)))
    return found


def metrics(rank_list) -> dict:
    rank_array = np.asarray(rank_list, dtype=np.float64)
    if not len(rank_array):
        return {"queries": 0}
    result = {f"recall@{k}": round(100.0 * float(np.mean(rank_array <= k)), 2) for k in KS}
    result["mrr"] = round(float(np.mean(1.0 / rank_array)), 4)
    result["queries"] = int(len(rank_array))
    return result


def measure(
    embedder, library_vectors: np.ndarray, library: Library, rows: list[dict], root: str, show_progress: bool
) -> dict:
    """Recall@1/5/10 and MRR overall, per language and per search mode (text, composed, image)."""
    found = ranks(encode_queries(embedder, rows, root, show_progress), library_vectors, rows, root, library)
    by_language, by_task = defaultdict(list), defaultdict(list)
    for rank, row in zip(found, rows):
        by_language[row["language"]].append(rank)
        by_task[_kind(row).value].append(rank)
    return {
        "overall": metrics(found),
        "by_language": {k: metrics(v) for k, v in sorted(by_language.items())},
        "by_task": {k: metrics(v) for k, v in sorted(by_task.items())},
        "library": len(library.ids),
    }


def table(result: dict, title: str) -> str:
    lines = [f"| {title} | queries | R@1 | R@5 | R@10 | MRR |", "|---|---|---|---|---|---|"]
    groups = (
        [("all", result["overall"])]
        + [(f"language {k}", v) for k, v in result["by_language"].items()]
        + [(f"search {k}", v) for k, v in result["by_task"].items()]
    )
    for name, values in groups:
        lines.append(
            f"| {name} | {values['queries']} | {values['recall@1']:.1f} | {values['recall@5']:.1f} | "
            f"{values['recall@10']:.1f} | {values['mrr']:.3f} |"
        )
    return "\n".join(lines)


def library_vectors_for(embedder, library: Library, cache: Path | None, show_progress: bool) -> np.ndarray:
    """Every library photo embedded with ``embedder`` (kept in ``cache`` so a rerun does not redo it)."""
    if cache is not None and cache.exists():
        vectors = np.load(cache)
        if vectors.shape == (len(library.ids), embedder.dim):
            return vectors
    vectors = embedder.encode_images(library.paths, show_progress_bar=show_progress)
    # stored as the index stores them (float16), so "after" is measured at the precision the app will serve
    vectors = vectors.astype(np.float16).astype(np.float32)
    if cache is not None:
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        write_atomic(cache, buffer.getvalue())
    return vectors


def evaluate_index(index_dir, queries_dir, device=None, show_progress=True) -> dict:
    """``trainer eval --index I --queries RUN/heldout``: the current model over the whole library."""
    from indexer import open_index

    rows, root = load_queries(Path(queries_dir))
    embedder, store = open_index(Path(index_dir), device=device)
    try:
        library = Library(store)
        result = measure(embedder, store.vectors(library.ids), library, rows, root, show_progress)
    finally:
        store.close()
    result.update(model=embedder.model_id, adapter=embedder.adapter, index=str(Path(index_dir).absolute()))
    return result
