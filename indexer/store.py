"""Reading an index: search vectors, fetch records and stored vectors, describe it (`info`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from .catalog import CATALOG_FILE, STATUS_ERROR, Catalog, Image, Root, Vector, decode_relpath
from .errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError, mismatch_message
from .sync import load_index
from .vectors import INDEX_FILE

DEFAULT_INDEX_DIR = Path("index")
INFO_ERROR_LIMIT = 1000


@dataclass
class ImageRecord:
    """One catalogued image file."""

    id: int
    root: str
    relpath: str
    path: str
    size: int
    mtime: float
    content_hash: str | None
    width: int | None
    height: int | None
    taken_at: datetime | None
    camera: str | None
    status: str
    error: str | None


class IndexStore:
    """A built index opened for search. The catalog is read; nothing is written."""

    def __init__(self, index_dir: Path, catalog: Catalog, meta: dict, index, sync_report):
        self.index_dir, self.catalog, self.meta, self.index = index_dir, catalog, meta, index
        self.sync_report = sync_report  # non-empty when the index file lagged the catalog (interrupted build)

    @classmethod
    def open(cls, index_dir: Path | str) -> "IndexStore":
        """Open an index folder; IndexNotFoundError / IndexCorruptError say what to do."""
        index_dir = Path(index_dir).expanduser().absolute()
        if not (index_dir / CATALOG_FILE).is_file():
            raise IndexNotFoundError(
                f"{index_dir}: no index here (no {CATALOG_FILE}); build one with: "
                f"python -m indexer build --dir PHOTOS --index {index_dir}"
            )
        catalog = Catalog(index_dir / CATALOG_FILE)
        try:
            meta = catalog.get_meta()
            if "fingerprint" not in meta or "dim" not in meta:
                raise IndexCorruptError(
                    f"{index_dir}: the catalog has no model metadata (its first build was interrupted); "
                    "run the build again"
                )
            index, report = load_index(catalog, index_dir, meta)
        except BaseException:
            catalog.close()
            raise
        return cls(index_dir, catalog, meta, index, report)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> "IndexStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- facts --------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.meta["model_id"]

    @property
    def adapter(self) -> str | None:
        return self.meta.get("adapter")

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def index_type(self) -> str:
        return self.index.kind

    @property
    def roots(self) -> list[str]:
        return [root.path for root in self.catalog.roots()]

    @property
    def count(self) -> int:
        """Searchable images."""
        return self.index.ntotal

    def check_embedder(self, embedder) -> None:
        """Refuse an embedder whose vectors live in another space than this index's."""
        if embedder.fingerprint != self.fingerprint:
            raise IndexMismatchError(mismatch_message(self.index_dir, self.meta, embedder))

    # -- search and lookup --------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores (n, k) float32, ids (n, k) int64), id -1 = no hit."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"query vectors must have shape (n, {self.dim}), got {vectors.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        return self.index.search(vectors, int(k))

    def records(self, ids) -> list[ImageRecord | None]:
        """Records in the order of ``ids``; None for -1 or an id no longer in the catalog."""
        wanted = [int(i) for i in np.asarray(ids).reshape(-1)]
        found: dict[int, ImageRecord] = {}
        valid = sorted({i for i in wanted if i >= 0})
        with self.catalog.session() as session:
            for start in range(0, len(valid), 500):
                rows = session.execute(
                    select(Image, Root.path).join(Root, Root.id == Image.root_id).where(Image.id.in_(valid[start : start + 500]))
                )
                for image, root in rows:
                    found[image.id] = to_record(image, root)
        return [found.get(i) for i in wanted]

    def vectors(self, ids) -> np.ndarray:
        """Stored vectors (float16 on disk) as float32, in the order of ``ids``; KeyError for unknown ids."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        found, stored = self.catalog.vectors_for_ids(np.unique(wanted))
        position = {int(i): row for row, i in enumerate(found)}
        missing = [int(i) for i in wanted if int(i) not in position]
        if missing:
            raise KeyError(f"no stored vector for image id(s) {missing[:10]} (unknown, or a file that failed to index)")
        if not len(wanted):
            return np.empty((0, self.dim), np.float32)
        return stored[[position[int(i)] for i in wanted]].astype(np.float32)

    def errors(self, limit: int | None = None) -> list[ImageRecord]:
        with self.catalog.session() as session:
            query = (select(Image, Root.path).join(Root, Root.id == Image.root_id)
                     .where(Image.status == STATUS_ERROR).order_by(Image.id).limit(limit))
            return [to_record(image, root) for image, root in session.execute(query)]

    # -- info ---------------------------------------------------------------------------
    def info(self) -> dict:
        """The `info --json` payload (keys documented in the README)."""
        meta = self.catalog.get_meta()
        with self.catalog.session() as session:
            error_count = self.catalog.count(STATUS_ERROR, session)
            stored = int(session.scalar(select(func.count()).select_from(Vector)))
        files = {name: _size(self.index_dir / name) for name in
                 (CATALOG_FILE, CATALOG_FILE + "-wal", CATALOG_FILE + "-shm", INDEX_FILE)}
        return {
            "index_dir": str(self.index_dir),
            "images": self.count,
            "errors": error_count,
            "stored_vectors": stored,
            "model_id": meta["model_id"],
            "adapter": meta.get("adapter"),
            "fingerprint": meta["fingerprint"],
            "family": meta.get("family"),
            "dim": int(meta["dim"]),
            "prompt_version": meta.get("prompt_version"),
            "index_type": self.index.kind,
            "index_type_request": meta.get("index_type_request") or "auto",
            "ivf_lists": self.index.nlist,
            "recall": meta.get("recall"),
            "size_bytes": {"catalog": sum(v for k, v in files.items() if k != INDEX_FILE),
                           "vector_index": files[INDEX_FILE], "total": sum(files.values())},
            "roots": self.roots,
            "created_at": meta.get("created_at"),
            "last_build_at": meta.get("last_build_at"),
            "last_build": meta.get("last_build"),
            "in_sync": not self.sync_report.changed,
            "error_list": [{"path": record.path, "error": record.error} for record in self.errors(INFO_ERROR_LIMIT)],
            "schema_version": meta.get("schema_version"),
        }


def to_record(image: Image, root: str) -> ImageRecord:
    relpath = decode_relpath(image.relpath)
    return ImageRecord(
        id=image.id, root=root, relpath=relpath, path=os.path.join(root, relpath), size=image.size,
        mtime=image.mtime_ns / 1e9, content_hash=image.content_hash, width=image.width, height=image.height,
        taken_at=image.taken_at, camera=image.camera, status=image.status, error=image.error,
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def resolve_local(path: str | None) -> str | None:
    """A model/adapter folder as an absolute path, so `./m` and `m` name the same vector space."""
    if path and Path(path).expanduser().exists():
        return str(Path(path).expanduser().resolve())
    return path


def open_index(index_dir: Path | str, model: str | None = None, adapter: str | None = None, device=None):
    """(embedder, store): the store plus the model+adapter it was built with (or the one given, checked)."""
    from mme5 import load_embedder

    store = IndexStore.open(index_dir)
    try:
        if model is None:
            model, adapter = store.model_id, adapter or store.adapter
        embedder = load_embedder(resolve_local(model), device=device, adapter=resolve_local(adapter))
        store.check_embedder(embedder)
    except BaseException:
        store.close()
        raise
    return embedder, store
