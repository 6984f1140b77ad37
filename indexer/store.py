"""Reading an index: search vectors, fetch records and stored vectors, describe it (`info`)."""

from __future__ import annotations

import json
import logging
import os
import posixpath
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from mme5.model_ref import ModelRef

from . import rowstore
from .catalog import CATALOG_FILE, CHEAP_CHECK_BYTES, STATUS_ERROR, Catalog, Image, Meta, Root, Vector, decode_relpath
from .errors import BadRootError, IndexCorruptError, IndexLockedError, IndexNotFoundError
from .space import meta_updates
from .sync import load_index
from .vectors import INDEX_FILE

logger = logging.getLogger(__name__)

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
    latitude: float | None = None
    longitude: float | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    media_type: str = "photo"  # "video": this record is one keyframe of the video at ``path``
    duration_s: float | None = None  # videos: length in seconds
    timestamp_s: float | None = None  # videos: the second this keyframe shows
    video_id: int | None = None  # videos: the video's own row when this is a further keyframe
    motion: str | None = None  # photos that move: "live" (an Apple Live Photo) or "motion_photo" (MP4 appended)
    motion_clip: str | None = None  # a Live Photo's clip (the .MOV beside it), absolute path

    @property
    def video_key(self) -> int | None:
        """The id that names this record's video (its file row), or None for a photo: keyframes of one video share it."""
        return (self.video_id or self.id) if self.media_type == "video" else None


class IndexStore:
    """A built index opened for search. The catalog is read; nothing is written."""

    def __init__(self, index_dir: Path, catalog: Catalog, meta: dict, index, sync_report):
        self.index_dir, self.catalog, self.meta, self.index = index_dir, catalog, meta, index
        self.sync_report = sync_report  # non-empty when the index file lagged the catalog (interrupted build)
        self._sorted_ids: np.ndarray | None = None  # the index never changes while open: listed once
        self.vector_store = "sqlite"  # where re-rank vectors come from: rowstore.attach's answer
        self.immutable = (
            False  # opened as a downloaded published index (validated, never written); live.py reopens alike
        )

    @classmethod
    def open(cls, index_dir: Path | str, immutable: bool = False) -> "IndexStore":
        """Open an index folder; IndexNotFoundError / IndexCorruptError say what to do.

        ``immutable``: the folder is a published index downloaded from the Hub into its cache: data from a
        stranger, never written. It is validated completely first (``indexer.published.validate_published``, on every
        open, so a new revision is checked again; so is any folder whose catalog says it was published), and
        opened with nothing created beside it (no -wal/-shm/lock file) and no meta rewritten.
        """
        index_dir = Path(index_dir).expanduser().absolute()
        if not (index_dir / CATALOG_FILE).is_file():
            raise IndexNotFoundError(
                f"{index_dir}: no index here (no {CATALOG_FILE}); build one with: "
                f"python -m indexer build --dir PHOTOS --index {index_dir}"
            )
        catalog = Catalog(index_dir / CATALOG_FILE, immutable=immutable)
        try:
            meta = catalog.get_meta()
            published = immutable or "published" in meta
            if published and not immutable:  # a published copy outside the Hub's cache: read as a download is
                catalog.close()
                catalog, immutable = Catalog(index_dir / CATALOG_FILE, immutable=True), True
                meta = catalog.get_meta()
            if published:
                from .published import validate_published

                validate_published(index_dir, catalog, meta)
            elif "fingerprint" not in meta or "dim" not in meta:
                raise IndexCorruptError(
                    f"{index_dir}: the catalog has no model metadata (its first build was interrupted); "
                    "run the build again"
                )
            index, report = load_index(catalog, index_dir, meta)
            if published:
                from .published import refuse_unsynced

                refuse_unsynced(index_dir, report)  # never rebuilt or patched from a stranger's catalog
            vector_store = rowstore.attach(catalog, index_dir, meta, writer=False)
        except BaseException:
            catalog.close()
            raise
        if report.rebuilt:
            logger.warning(
                f"indexer: {report.rebuilt}; searching a copy rebuilt in memory from the catalog's stored "
                f"vectors (python -m indexer verify --index {index_dir} --repair rewrites the file)"
            )
        opened = cls(index_dir, catalog, meta, index, report)
        opened.vector_store = vector_store
        opened.immutable = immutable
        return opened

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
        """The adapter folder the index was built with (None: no adapter): absolute as recorded, or for a published
        index the ``adapter`` folder inside it (``push`` copies it there; a local index's relative path is kept)."""
        return _recorded_adapter(self.index_dir, self.meta)

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
        return [self.root_path(root.path) for root in self.catalog.roots()]

    def root_path(self, recorded: str) -> str:
        """Where a catalog root is: absolute as recorded, or relative to the index folder (a published index's
        roots are ``originals/<id>`` inside its dataset, so no publisher's folder is stored)."""
        return recorded if os.path.isabs(recorded) else os.path.join(self.index_dir, recorded)

    @property
    def published(self) -> dict | None:
        """What `python -m indexer push` recorded (previews folder, originals or not), None for a local index."""
        return self.meta.get("published")

    def preview_file(self, content_hash: str | None) -> Path | None:
        """The published preview of a photo's content (shown when the originals were not published), or None."""
        from .published import PREVIEWS
        from .reader import checked_content_hash

        if not self.published or not content_hash:
            return None
        try:
            content_hash = checked_content_hash(content_hash)  # a downloaded catalog cannot point it anywhere else
        except ValueError:
            return None
        path = self.index_dir / PREVIEWS / content_hash[:2] / f"{content_hash}.jpg"  # the folder push writes
        return path if path.is_file() else None

    @property
    def read_only(self) -> bool:
        """Opened without write access (read-only media or a full disk): searching works, building does not."""
        return self.catalog.mode != "rw"

    @property
    def generation(self) -> int:
        """The catalog's change counter when this store was opened."""
        return int(self.meta.get("generation", 0))

    def current_generation(self) -> int:
        """The catalog's change counter now: one indexed read, so a reader can poll it to notice a build's commits."""
        with self.catalog.session() as session:
            value = session.scalar(select(Meta.value).where(Meta.key == "generation"))
        return 0 if value is None else int(json.loads(value))

    @property
    def count(self) -> int:
        """Searchable images."""
        return self.index.ntotal

    def check_embedder(self, embedder) -> None:
        """Refuse an embedder whose vectors live in another space than this index's (IndexMismatchError).

        An index from before content identities, or one whose model folder moved, is accepted when the
        model is the same by content; its meta is rewritten then (skipped while a build holds the index:
        the build rewrites it).
        """
        updates = meta_updates(self.index_dir, self.meta, embedder)
        if not updates:
            return
        self.meta.update(updates)
        if self.read_only:  # read-only media, or a Hub snapshot that must stay as downloaded: not even a lock file
            return
        from .lock import WriteLock

        try:
            with WriteLock(self.index_dir), self.catalog.session() as session:
                Catalog.set_meta(session, **updates)
                session.commit()
        except (IndexLockedError, OSError, SQLAlchemyError) as error:  # read-only or busy: next open tries again
            logger.warning(f"indexer: {self.index_dir}: model record not updated ({error})")

    # -- search and lookup --------------------------------------------------------------
    def ids(self) -> np.ndarray:
        """Every searchable image id (the ids ``search`` can return), ascending, int64."""
        return self._searchable_sorted().copy()

    def ids_where(self, conditions: list, folder: str | None = None, limit: int | None = None) -> np.ndarray:
        """Searchable ids (ascending) meeting SQL ``conditions`` on ``Image`` columns, inside ``folder``.

        ``folder`` is absolute or relative to any indexed root and matches whole names ("2023"
        holds "2023/a.jpg", not "20231/a.jpg"); one that climbs out with ".." is a ValueError.
        ``limit`` stops after that many catalog ids (a cheap "are there few?"). Used by the
        search filters, which each bring their own condition (search_app/filters.py). Answered by
        index range scans in SQLite, so a filter matching a handful of photos costs about the same
        on any library size.
        """
        folder = normalise_folder(folder)
        places = None if folder is None else self._folder_places(folder)
        if places == []:
            return np.empty(0, np.int64)
        matching = self.catalog.ids_where(conditions, places, limit=limit)
        searchable = self._searchable_sorted()  # the catalog may have moved on since open (a build running)
        if not len(searchable):
            return matching[:0]
        found = searchable[np.minimum(np.searchsorted(searchable, matching), len(searchable) - 1)]
        return matching[found == matching]

    def folder_condition(self, folder: str | None):
        """One SQL condition (on ``Image``) for "inside ``folder``" (see ``ids_where``); None: no folder."""
        from sqlalchemy import and_, false, or_

        from .catalog import _under

        folder = normalise_folder(folder)
        if folder is None:
            return None
        places = self._folder_places(folder)
        if not places:
            return false()
        return or_(*(and_(Image.root_id == root_id, *_under(prefix)) for root_id, prefix in places))

    def folders(self) -> list[str]:
        """Every folder (relative to its root, "/"-separated) holding a searchable photo, with its parents; sorted."""
        found: set[str] = set()
        for raw in self.catalog.distinct_values(Image.relpath):
            parts = decode_relpath(raw).split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                found.add("/".join(parts[:depth]))
        return sorted(found)

    def distinct(self, column_name: str) -> list:
        """Distinct values of one catalog column among searchable photos (e.g. "camera"), for suggestions."""
        return sorted(self.catalog.distinct_values(getattr(Image, column_name)), key=str)

    def place_centres(self) -> list[tuple]:
        """(kind, name, country code, mean latitude, mean longitude, photos) per named city and region (see
        Catalog.place_centres)."""
        return self.catalog.place_centres()

    def _searchable_sorted(self) -> np.ndarray:
        if self._sorted_ids is None:
            self._sorted_ids = np.sort(self.index.ids())
        return self._sorted_ids

    def _folder_places(self, folder: str) -> list[tuple[int, bytes | None]]:
        """(root id, relpath prefix or None = the whole root) for each root ``folder`` reaches."""
        if not folder.startswith("/"):
            return [(root.id, os.fsencode(folder)) for root in self.catalog.roots()]
        places: list[tuple[int, bytes | None]] = []
        for root in self.catalog.roots():
            inside_root = os.path.join(self.root_path(root.path), "")  # a photo's path is os.path.join(root, relpath)
            if inside_root.startswith(folder + "/"):
                places.append((root.id, None))
            elif folder.startswith(inside_root):
                places.append((root.id, os.fsencode(folder[len(inside_root) :])))
        return places

    def search(self, vectors: np.ndarray, k: int, among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: (scores (n, k) float32, ids (n, k) int64), id -1 = no hit.

        ``among`` (ids, e.g. from ``ids_where``) restricts the hits to those ids, ranked as the
        unrestricted search ranks them (scores agree to float rounding, ~1e-7).
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"query vectors must have shape (n, {self.dim}), got {vectors.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if among is None:
            return self.index.search(vectors, int(k))
        return self.index.search_among(vectors, int(k), among)

    def records(self, ids) -> list[ImageRecord | None]:
        """Records in the order of ``ids``; None for -1 or an id no longer in the catalog.

        Every search result page calls this, so it is one plain SQL statement (ids passed as
        one JSON array): ~0.3 ms for 20 records, where the ORM query took several ms.
        """
        wanted = [int(i) for i in np.asarray(ids).reshape(-1)]
        valid = sorted({i for i in wanted if i >= 0})
        if not valid:
            return [None] * len(wanted)
        with self.catalog.engine.connect() as connection:
            rows = connection.exec_driver_sql(_RECORDS_SQL, (json.dumps(valid),)).all()
        found = {row[0]: _record_from_row(row, self.index_dir) for row in rows}
        return [found.get(i) for i in wanted]

    def vectors(self, ids) -> np.ndarray:
        """Stored vectors (float16 on disk) as float32, in the order of ``ids``; KeyError for unknown ids."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        unique = np.unique(wanted)
        searchable = self._searchable_sorted()
        found, stored = self.catalog.exact_vectors(unique[np.isin(unique, searchable)])
        position = {int(i): row for row, i in enumerate(found)}
        missing = [int(i) for i in wanted if int(i) not in position]
        if missing:
            raise KeyError(f"no stored vector for image id(s) {missing[:10]} (unknown, or a file that failed to index)")
        if not len(wanted):
            return np.empty((0, self.dim), np.float32)
        return stored[[position[int(i)] for i in wanted]].astype(np.float32)

    def errors(self, limit: int | None = None) -> list[ImageRecord]:
        with self.catalog.session() as session:
            query = (
                select(Image, Root.path)
                .join(Root, Root.id == Image.root_id)
                .where(Image.status == STATUS_ERROR)
                .order_by(Image.id)
                .limit(limit)
            )
            return [to_record(image, self.root_path(root)) for image, root in session.execute(query)]

    # -- info ---------------------------------------------------------------------------
    def _raw_counts(self) -> dict:
        """{"files", "pairs"}: camera RAW files and RAW+JPEG pairs (one shot, shown once) among searchable photos."""
        from mme5.raw import count_raw

        return count_raw(record.path for record in self.records(self.ids()) if record is not None)

    def info(self) -> dict:
        """The `info --json` payload (keys documented in docs/indexer.md)."""
        meta = self.catalog.get_meta()
        with self.catalog.session() as session:
            error_count = self.catalog.count(STATUS_ERROR, session)
            stored = int(session.scalar(select(func.count()).select_from(Vector)) or 0)
        files = {
            name: _size(self.index_dir / name)
            for name in (CATALOG_FILE, CATALOG_FILE + "-wal", CATALOG_FILE + "-shm", INDEX_FILE, rowstore.STORE_FILE)
        }
        catalog_bytes = sum(files[name] for name in (CATALOG_FILE, CATALOG_FILE + "-wal", CATALOG_FILE + "-shm"))
        store = self.catalog.vector_store
        return {
            "index_dir": str(self.index_dir),
            "images": self.count,
            "errors": error_count,
            "stored_vectors": stored,
            "model_id": meta["model_id"],
            "adapter": meta.get("adapter"),
            "fingerprint": meta["fingerprint"],
            "identity": meta.get("identity"),
            "family": meta.get("family"),
            "dim": int(meta["dim"]),
            "prompt_version": meta.get("prompt_version"),
            "index_type": self.index.kind,
            "index_type_request": meta.get("index_type_request") or "auto",
            "ivf_lists": self.index.nlist,
            "bytes_per_image": round(files[INDEX_FILE] / self.count) if self.count else 0,
            "recall": meta.get("recall"),
            "size_bytes": {
                "catalog": catalog_bytes,
                "vector_index": files[INDEX_FILE],
                "vector_store": files[rowstore.STORE_FILE],
                "total": sum(files.values()),
            },
            "vector_store": {
                "file": rowstore.STORE_FILE,
                "state": self.vector_store,
                "rows": store.rows if store is not None else 0,
                "serves": "memory map" if store is not None else "sqlite",
            },
            "roots": self.roots,
            "created_at": meta.get("created_at"),
            "last_build_at": meta.get("last_build_at"),
            "last_build": meta.get("last_build"),
            "in_sync": not self.sync_report.changed,
            "raw": self._raw_counts(),
            "error_list": [{"path": record.path, "error": record.error} for record in self.errors(INFO_ERROR_LIMIT)],
            "schema_version": meta.get("schema_version"),
            "read_only": self.read_only,
            "catalog_check": self._catalog_check(),
        }

    def _catalog_check(self) -> str:
        """SQLite's quick_check when the catalog is small enough for it to be cheap; else a pointer to verify."""
        if _size(self.catalog.path) > CHEAP_CHECK_BYTES:
            return f"not run (catalog over {CHEAP_CHECK_BYTES >> 20} MB): run verify"
        problem = self.catalog.integrity_problem()
        return "ok" if problem is None else f"damaged: {problem}; run verify --repair"


_RECORDS_SQL = (
    "SELECT images.id, images.relpath, images.size, images.mtime_ns, images.content_hash, images.width, "
    "images.height, images.taken_at, images.camera, images.status, images.error, roots.path, "
    "images.latitude, images.longitude, images.country, images.region, images.city, "
    "images.media_type, images.duration_s, images.timestamp_s, images.video_id, images.motion, images.motion_clip "
    "FROM images JOIN roots ON roots.id = images.root_id WHERE images.id IN (SELECT value FROM json_each(?))"
)


def _record_from_row(row, index_dir) -> ImageRecord:
    """An ImageRecord from a ``_RECORDS_SQL`` row (what ``to_record`` makes from ORM objects)."""
    (
        image_id,
        raw_relpath,
        size,
        mtime_ns,
        content_hash,
        width,
        height,
        taken_at,
        camera,
        status,
        error,
        root,
        latitude,
        longitude,
        country,
        region,
        city,
        media_type,
        duration_s,
        timestamp_s,
        video_id,
        motion,
        motion_clip,
    ) = row
    relpath = decode_relpath(raw_relpath)
    root = root if os.path.isabs(root) else os.path.join(index_dir, root)  # IndexStore.root_path
    if isinstance(taken_at, str):  # SQLAlchemy stores DateTime in SQLite as ISO text
        taken_at = datetime.fromisoformat(taken_at)
    return ImageRecord(
        id=image_id,
        root=root,
        relpath=relpath,
        path=os.path.join(root, relpath),
        size=size,
        mtime=mtime_ns / 1e9,
        content_hash=content_hash,
        width=width,
        height=height,
        taken_at=taken_at,
        camera=camera,
        status=status,
        error=error,
        latitude=latitude,
        longitude=longitude,
        country=country,
        region=region,
        city=city,
        media_type=media_type or "photo",
        duration_s=duration_s,
        timestamp_s=timestamp_s,
        video_id=video_id,
        motion=motion,
        motion_clip=_clip_path(root, motion_clip),
    )


def to_record(image: Image, root: str) -> ImageRecord:
    relpath = decode_relpath(image.relpath)
    return ImageRecord(
        id=image.id,
        root=root,
        relpath=relpath,
        path=os.path.join(root, relpath),
        size=image.size,
        mtime=image.mtime_ns / 1e9,
        content_hash=image.content_hash,
        width=image.width,
        height=image.height,
        taken_at=image.taken_at,
        camera=image.camera,
        status=image.status,
        error=image.error,
        latitude=image.latitude,
        longitude=image.longitude,
        country=image.country,
        region=image.region,
        city=image.city,
        media_type=image.media_type or "photo",
        duration_s=image.duration_s,
        timestamp_s=image.timestamp_s,
        video_id=image.video_id,
        motion=image.motion,
        motion_clip=_clip_path(root, image.motion_clip),
    )


def _clip_path(root: str, motion_clip: bytes | None) -> str | None:
    """A Live Photo clip's absolute path from its stored relpath (None: no clip, or a value no build writes)."""
    if not isinstance(motion_clip, bytes) or not motion_clip or b"\0" in motion_clip:
        return None
    relpath = decode_relpath(motion_clip)
    if os.path.isabs(relpath) or ".." in relpath.replace("\\", "/").split("/"):
        return None  # a stranger's catalog (a published index) cannot point outside its folder
    return os.path.join(root, relpath)


def normalise_folder(folder) -> str | None:
    """ "./2023/beach/" and "2023\\beach" both become "2023/beach"; "." or "" means no folder.

    ValueError for a folder that climbs out of the indexed folders with "..".
    """
    if folder is None:
        return None
    text = str(folder).strip().replace("\\", "/")
    if not text:
        return None
    text = posixpath.normpath(text)
    if text == ".":
        return None
    if text.startswith("../") or text == "..":
        raise BadRootError(f"folder {folder!r} points outside the indexed folders: give a folder inside one of them")
    return text


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _recorded_adapter(index_dir: Path, meta: dict) -> str | None:
    recorded = meta.get("adapter")
    if recorded and meta.get("published") and not os.path.isabs(recorded):
        return os.path.join(index_dir, recorded)
    return recorded


def index_model(
    index_dir: Path | str,
    model: str | None = None,
    adapter: str | None = None,
    runtime: str | None = None,
    meta: dict | None = None,
) -> tuple[str | None, str | None, str | None]:
    """(model, adapter, runtime) to open ``index_dir`` with: the model and adapter it was built with unless
    ``model`` is given (then ``adapter`` as given, else the index's); ``runtime`` defaults to one that gives the
    index's vectors (int8 for an int8-quantised index). Local folders come back absolute. Where there is no
    index yet, what was given. ``meta``: the index's metadata when the caller has it open already.

    The one place that decides which model opens an index (build, watch, search, the app, adapt)."""
    from mme5.registry import runtime_for

    if meta is None:
        meta = {}
        catalog_path = Path(index_dir) / CATALOG_FILE
        if catalog_path.is_file():
            catalog = Catalog(catalog_path)
            try:
                meta = catalog.get_meta()
            finally:
                catalog.close()
    if model is None and meta.get("model_id"):
        model, adapter = meta["model_id"], adapter or _recorded_adapter(Path(index_dir), meta)
    runtime = runtime or runtime_for(meta.get("quantization"))
    return ModelRef.canonical_of(model), ModelRef.canonical_of(adapter), runtime


def open_index(
    index_dir: Path | str,
    model: str | None = None,
    adapter: str | None = None,
    device=None,
    runtime: str | None = None,
    immutable: bool = False,
):
    """(embedder, store): the store plus the model+adapter it was built with (or the one given, checked).

    ``model``, ``adapter`` and ``runtime`` as in :func:`index_model`; ``immutable`` as in ``IndexStore.open``.
    """
    from mme5 import load_embedder

    store = IndexStore.open(index_dir, immutable=immutable)
    try:
        model, adapter, runtime = index_model(store.index_dir, model, adapter, runtime, meta=store.meta)
        embedder = load_embedder(model, device=device, adapter=adapter, runtime=runtime)
        store.check_embedder(embedder)
    except BaseException:
        store.close()
        raise
    return embedder, store
