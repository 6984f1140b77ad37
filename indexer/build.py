"""`build`: scan folders, embed new and changed images, keep catalog and FAISS index in step.

A run: claim the index's meta (the model), register the roots, scan (indexer/scan.py), then per file
read and decode -> embed (an engine, indexer/engines.py: a stream of ``Embedded`` records) -> decide
(``_Build._decide``: nothing, a move, a reused vector, a new vector or an error row) -> commit
(``_Build._commit``, one transaction per batch), and finally drop what is gone and finish the vector
index (``_Build._finish``). A video is one file: the engine embeds its keyframes, ``_decide`` makes a
row per further keyframe (indexer/video_rows.py) and ``_commit`` inserts, moves or deletes them in the
same transaction as the video's own row. A new per-file stage (OCR text, say) reads its facts in
indexer/reader.py, runs any model work in the engines, and is stored in the file's row in ``_decide``.

Progress is committed to SQLite one model batch at a time, so kill -9 loses at most the
batch in flight; the FAISS file is written atomically at the end and, after a crash, is
reconciled with the catalog on the next run.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict, deque
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import bindparam, delete, insert, select, update
from tqdm.auto import tqdm

from mme5.atomic import remove_stale_temps
from .catalog import (
    CATALOG_FILE,
    SCHEMA_VERSION,
    STATUS_ERROR,
    STATUS_OK,
    Catalog,
    Image,
    Root,
    Vector,
    encode_relpath,
    utcnow,
)
from . import rowstore, space
from .errors import BadRootError, IndexReplacedError
from .files import is_within, printable
from .lock import WriteLock
from .places import place_of
from .records import BuildSummary, FileError, Pending
from .reader import DEFAULT_DECODE_BUDGET, DecodeBudget
from .engines import Embedded, LocalEngine
from .scan import Row, WorkItem, folder_identity, plan_roots, scan
from .sync import finish, load_index
from .vectors import choose_index_type
from .video_rows import insert_keyframes, keyframe_ids, keyframe_rows, move_keyframes, video_values

if TYPE_CHECKING:  # annotations only: ocr loads on demand
    from .ocr import OcrEngine

logger = logging.getLogger(__name__)

DEFAULT_MAX_PRUNE_SHARE = 0.5  # a build drops at most this share of a folder's photos unless told --prune
ENGINES = ("local", "ray")


def motion_values(result) -> dict:
    """The catalog columns of a photo that moves (``Image.motion``): a Live Photo's clip as the scan found it."""
    clip = result.entry.clip
    return dict(
        motion=result.motion,
        motion_clip=encode_relpath(clip.relpath) if clip is not None else None,
        motion_clip_stat=result.entry.clip_signature,
    )


def build_index(
    roots: list[Path],
    index_dir: Path,
    embedder,
    batch_size: int = 8,
    show_progress: bool = True,
    index_type: str | None = None,
    include_hidden: bool = False,
    workers: int | None = None,
    engine: str = "local",
    ray_options=None,
    prune: bool = False,
    max_prune_share: float = DEFAULT_MAX_PRUNE_SHARE,
    decode_budget: int = DEFAULT_DECODE_BUDGET,
    ocr: str = "auto",
) -> BuildSummary:
    """Index new files, re-embed changed ones, drop deleted ones; resume after a crash.

    ``roots`` empty means every folder this index already knows. ``engine="ray"`` reads,
    decodes and embeds on a Ray cluster (``ray_options``: an ``indexer.ray_engine.RayOptions``)
    while this process keeps the catalog; see ``indexer/ray_engine.py``. Photos of a folder
    that lists no photos at all, or moved to another device with none of its files, are kept
    (an unmounted drive), as are removals of more than ``max_prune_share`` of a folder's
    photos; ``prune`` drops them all the same. ``decode_budget`` caps the pixels decoded at
    once across the local engine's ``workers`` threads. ``ocr`` (auto, on, off; indexer/ocr.py) reads
    the text in photos after they are embedded; file names and metadata words are read always.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not 0 <= max_prune_share <= 1:
        raise ValueError(f"max_prune_share must be between 0 and 1, got {max_prune_share}")
    budget = DecodeBudget(decode_budget)
    from .ocr import engine_for

    ocr_engine = engine_for(ocr)  # OcrUnavailableError for --ocr on without Tesseract, before any work
    if index_type is not None:
        choose_index_type(index_type, 0)  # validates the name before any work
    index_dir = Path(index_dir).expanduser().absolute()
    root_paths = plan_roots(roots, index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with WriteLock(index_dir, "build"):
        remove_stale_temps(index_dir)
        catalog = Catalog(index_dir / CATALOG_FILE, create=True)
        build = None
        try:
            chosen = _engine(engine, workers, ray_options)
            build = _Build(
                catalog,
                index_dir,
                embedder,
                batch_size,
                show_progress,
                index_type,
                include_hidden,
                prune,
                max_prune_share,
                budget,
                chosen,
            )
            build.ocr_engine = ocr_engine
            local = getattr(chosen, "videos", chosen)  # the Ray engine's local engine, or the local engine itself
            build.text_workers = min(4, local.workers)  # the text pass reads as many files at once, up to 4
            return build.run(root_paths)
        except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: say what the committed batches kept
            if build is not None:
                setattr(
                    interrupt, "kept", build.kept_note()
                )  # a dynamic attribute, read by __main__'s getattr(interrupt, "kept")
            raise
        finally:
            catalog.close()


def _engine(name: str, workers: int | None, ray_options):
    """The engine that reads, decodes and embeds the build's files (indexer/engines.py)."""
    local = LocalEngine(workers)  # --engine ray reads and embeds videos with it on the driver
    if name == "ray":
        from .ray_engine import RayEngine

        return RayEngine(ray_options, videos=local)
    return local


class _Build:
    """One build run; holds the open catalog, the in-memory FAISS index and the counters."""

    def __init__(
        self,
        catalog,
        index_dir,
        embedder,
        batch_size,
        show_progress,
        index_type,
        include_hidden,
        prune,
        max_prune_share,
        budget,
        engine,
    ):
        self.catalog, self.index_dir, self.embedder = catalog, index_dir, embedder
        self.identity = folder_identity(index_dir)
        from mme5.gpu_memory import fit_batch_size

        batch_size = fit_batch_size(embedder, batch_size)  # lowered (and said on stderr) if the GPU is too small
        self.batch_size, self.show_progress, self.include_hidden = batch_size, show_progress, include_hidden
        self.prune, self.max_prune_share = prune, max_prune_share
        self.budget = budget
        self.engine = engine  # how files are read, decoded and embedded (indexer/engines.py)
        self.summary = BuildSummary(started_at=utcnow().isoformat(timespec="seconds"))
        self.started = time.perf_counter()
        self.start_count = catalog.count()
        self.root_rows: dict[str, int] = {}  # root -> its catalog rows before this build (from the scan)
        self.root_devices: dict[str, int] = {}  # root -> device id to record at the end (from the scan)
        self.meta = self._claim_meta(index_type)
        self.index_type = index_type or self.meta.get("index_type_request")
        self.index, report = load_index(catalog, index_dir, self.meta, self.index_type)
        if report.changed:
            logger.info(
                f"indexer: resumed an interrupted build (vector index: +{report.added} -{report.removed}"
                f"{', rebuilt: ' + report.rebuilt if report.rebuilt else ''})"
            )
        rowstore.attach(catalog, index_dir, self.meta, writer=True, show_progress=show_progress)
        self.generation = int(self.meta.get("generation", 0))
        self.pending = Pending()
        self.failed_hashes: dict[str, str] = {}  # content the model rejected in this run -> reason
        self.known: set[str] = set()  # content whose vector the catalog stores (or this build committed)
        self.ocr_engine: OcrEngine | None = None  # the text pass's OCR (build_index sets it); None: no OCR
        self.text_workers = 2  # files the text pass reads at once (build_index sets it from the engine)

    def warn(self, message: str) -> None:
        """A data-safety warning: shown now on stderr and kept in the summary (info shows it)."""
        self.summary.warnings.append(message)
        logger.warning(f"indexer: WARNING: {printable(message)}")

    def kept_note(self) -> str:
        """What an interrupted build leaves behind (every committed batch stays)."""
        try:
            count = self.catalog.count()
        except Exception:  # noqa: BLE001 - the note must not hide the interruption
            return "progress committed so far is kept in the catalog"
        return (
            f"the catalog keeps every committed batch: {count} searchable images "
            f"({count - self.start_count:+d} from this run); the vector index catches up on the next run"
        )

    # -- setup --------------------------------------------------------------------------
    def _claim_meta(self, index_type: str | None) -> dict:
        """Record the model on a new index, or refuse a different one on an existing index."""
        embedder = self.embedder
        with self.catalog.session() as session:
            meta = self.catalog.get_meta(session)
            if meta.get("published"):
                from .publish import PublishError

                raise PublishError(
                    f"{self.index_dir}: this is a published copy of an index (made by `python -m "
                    "indexer push`, its folders are not on this machine); build the index it was "
                    "made from, then push again"
                )
            if "fingerprint" in meta:
                meta.update(space.meta_updates(self.index_dir, meta, embedder))  # IndexMismatchError if not ours
            else:
                meta = dict(
                    schema_version=SCHEMA_VERSION,
                    **space.record(embedder),
                    created_at=utcnow().isoformat(timespec="seconds"),
                    generation=0,
                    index_generation=0,
                )
            if index_type:
                meta["index_type_request"] = index_type
            Catalog.set_meta(session, **meta)
            session.commit()
        return meta

    def _register_roots(self, root_paths: list[str]) -> dict[str, int]:
        with self.catalog.session() as session:
            known = {root.path: root.id for root in session.scalars(select(Root))}
            for path in root_paths:
                if path in known:
                    continue
                for other in known:
                    if is_within(path, other) or is_within(other, path):
                        raise BadRootError(
                            f"{path}: overlaps the indexed folder {other}; remove that one first "
                            f"(python -m indexer remove --dir {other}) or index {other} itself"
                        )
                root = Root(path=path, added_at=utcnow())
                session.add(root)
                session.flush()
                known[path] = root.id
            session.commit()
        return {path: known[path] for path in (root_paths or list(known))}

    # -- the run ------------------------------------------------------------------------
    def run(self, root_paths: list[str]) -> BuildSummary:
        roots = self._register_roots(root_paths)
        scanned = scan(
            self.catalog,
            roots,
            self.index_dir,
            include_hidden=self.include_hidden,
            prune=self.prune,
            recorded_devices=self.meta.get("root_devices") or {},
            warn=self.warn,
            show_progress=self.show_progress,
        )
        self.summary.unchanged += scanned.unchanged
        self.summary.skipped += scanned.skipped
        self.summary.kept += scanned.kept
        self.root_rows, self.root_devices = scanned.root_rows, scanned.root_devices
        self.folded = [row.id for row in scanned.folded]  # clips now part of a Live Photo: their rows go
        self.missing_by_hash: dict[str, deque] = defaultdict(deque)
        for row in scanned.missing:
            if row.status == STATUS_OK and row.content_hash:
                self.missing_by_hash[row.content_hash].append(row)
        self._process(scanned.work)
        self._text()
        self._finish(scanned.missing)
        return self.summary

    def _text(self) -> None:
        """Words and OCR text of the photos that lack them (indexer/fulltext.py); resumable like the rest."""
        from .fulltext import update_text

        self.summary.text = update_text(
            self.catalog,
            self.ocr_engine,
            workers=self.text_workers,
            budget=self.budget,
            show_progress=self.show_progress,
        ).to_dict()

    def _process(self, work: list[WorkItem]) -> None:
        """Per file: read and decode, embed (the engine) -> decide (``_decide``) -> commit a batch (``_commit``)."""
        if not work:
            return
        with self.catalog.session() as session:
            self.known = set(session.scalars(select(Vector.content_hash)))
        progress = tqdm(
            total=len(work),
            desc=self.engine.label,
            unit=" img",
            disable=not self.show_progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        stream = self.engine.results(
            [item.entry for item in work], self.embedder, frozenset(self.known), self.batch_size, self.budget
        )
        with closing(stream):  # stopping early (Ctrl-C, an error) stops the engine's reads too
            for record in stream:
                self._decide(record, work[record.position].root_id, work[record.position].old)
                progress.update(1)
                if self.pending.full(self.batch_size):
                    self._commit()
        self.summary.peak_decode_pixels = self.engine.peak_decode_pixels
        self._commit()
        progress.close()

    def _decide(self, record: Embedded, root_id: int, old: Row | None) -> None:
        """Decide what one file needs: nothing, a move, a reused vector, its new vector, or an error row; a new
        video also gets a row per further keyframe (indexer/video_rows.py), committed with its own."""
        result, vector, failure = record.result, record.vector, record.failure
        path = result.entry.path
        pending = self.pending
        if result.vanished:
            self.summary.skipped.append(FileError(path, "vanished while indexing (deleted?)"))
            if old is not None:
                pending.delete_ids.append(old.id)
                self.summary.removed += 1
            return
        if result.changed:
            self.summary.skipped.append(FileError(path, "changed while being read; it will be indexed on the next run"))
            return
        digest = result.content_hash  # None only where reading failed (result.error says why)
        if failure is None and vector is None and not result.error and digest in self.failed_hashes:
            failure = self.failed_hashes[digest]  # a copy of content the model rejected
        if failure is not None:
            if digest is not None:
                self.failed_hashes[digest] = failure
            result.error = failure  # an error row, not tried again until the file changes
        values = dict(
            root_id=root_id,
            relpath=encode_relpath(result.entry.relpath),
            size=result.size,
            mtime_ns=result.mtime_ns,
            content_hash=result.content_hash,
            width=result.width,
            height=result.height,
            taken_at=result.taken_at,
            camera=result.camera,
            indexed_at=utcnow(),
            latitude=result.latitude,
            longitude=result.longitude,
            **place_of(result.latitude, result.longitude),
            **video_values(result),
            **motion_values(result),
        )
        if result.motion_problem:
            self.warn(f"{result.entry.path}: {result.motion_problem}")
        if result.error:
            self.summary.errors.append(FileError(path, result.error))
            if old is not None:
                pending.delete_ids.append(old.id)
            pending.rows.append(dict(values, status=STATUS_ERROR, error=result.error, retry=result.retry))
            return
        if old is not None and old.status == STATUS_OK and old.content_hash == digest:
            pending.updates.append(dict(values, id=old.id))  # touched, same bytes: keep the vector
            self.summary.unchanged += 1
            return
        if old is not None:
            pending.delete_ids.append(old.id)
        if digest is not None and self.missing_by_hash.get(digest):
            moved = self.missing_by_hash[digest].popleft()
            pending.updates.append(dict(values, id=moved.id))  # same id: the vector stays where it is
            self.summary.moved += 1
            return
        pending.rows.append(dict(values, status=STATUS_OK, error=None))
        if record.keyframes:  # a video's further keyframes: rows of their own, inserted with its row
            pending.keyframes[len(pending.rows) - 1] = self._keyframe_rows(values, record.keyframes)
        if old is not None:
            self.summary.updated += 1
        else:
            self.summary.added += 1
        if digest in pending.vectors or digest in self.known or vector is None:
            self.summary.duplicates += 1  # content already embedded (or being committed)
        else:
            pending.vectors[digest] = vector

    def _keyframe_rows(self, values: dict, keyframes) -> list[dict]:
        """The rows of a new video's further keyframes; their new vectors join the batch, and a keyframe the model
        rejected (now or as earlier copy) is left out: the video stays searchable by its other keyframes."""
        for keyframe in keyframes:
            if keyframe.failure is not None:
                self.failed_hashes[keyframe.content_hash] = keyframe.failure
            elif keyframe.vector is not None and keyframe.content_hash not in self.known:
                self.pending.vectors.setdefault(keyframe.content_hash, keyframe.vector)
        return [
            row
            for row in keyframe_rows(values, [keyframe.timestamp_s for keyframe in keyframes])
            if row["content_hash"] not in self.failed_hashes
        ]

    def _commit(self) -> None:
        """Write the pending decisions and vectors in one transaction, then update the FAISS index."""
        pending, self.pending = self.pending, Pending()
        if pending.empty:
            return
        vectors = (
            np.stack([np.asarray(v, dtype=np.float32) for v in pending.vectors.values()]) if pending.vectors else None
        )
        self.known.update(pending.vectors)
        self.summary.embedded += len(pending.vectors)
        images = Image.__table__
        self.catalog.vector_store.sync_if_due()  # rows fsync'ed before the catalog records them
        with self.catalog.engine.begin() as connection:  # one transaction: all of it or none of it
            if vectors is not None and len(vectors):
                connection.execute(
                    insert(Vector.__table__).prefix_with("OR IGNORE"),
                    [
                        dict(content_hash=digest, vector=vector.astype(np.float16).tobytes())
                        for digest, vector in zip(pending.vectors, vectors)
                    ],
                )
            if pending.delete_ids:
                pending.delete_ids.extend(
                    keyframe_ids(connection, pending.delete_ids)
                )  # a video's keyframes go with it
                connection.execute(delete(images).where(images.c.id.in_(pending.delete_ids)))
            if pending.updates:
                connection.execute(
                    update(images)
                    .where(images.c.id == bindparam("row_id"))
                    .values(status=STATUS_OK, error=None, retry=False),
                    [
                        {("row_id" if key == "id" else key): value for key, value in row.items()}
                        for row in pending.updates
                    ],
                )
            new_ids: list[int] = []
            if pending.rows:
                inserted = connection.execute(
                    insert(images).returning(images.c.id, images.c.status, sort_by_parameter_order=True),
                    [dict(row, retry=row.get("retry", False)) for row in pending.rows],
                ).all()
                new_ids = [image_id for image_id, status in inserted if status == STATUS_OK]
                new_ids += insert_keyframes(connection, pending.keyframes, pending.rows, inserted)
            if pending.updates:
                move_keyframes(connection, pending.updates)  # a moved video's keyframe rows follow its path
            self.generation += 1
            # the vector store's fsync'ed rows (earlier batches): recorded with this one
            Catalog.set_meta(connection, generation=self.generation, **self._store_record())
        self.index.remove(pending.delete_ids)
        if new_ids:
            found, stored = self.catalog.vectors_for_ids(new_ids)
            self.index.add(found, stored)
            self.catalog.vector_store.append(found, stored)  # recorded by a later commit, once fsync'ed

    def _finish(self, missing: list[Row]) -> None:
        """Drop files that are gone, collect unused vectors, then finish the vector index (sync.finish)."""
        gone = self._allowed_removals(
            [row for queue in self.missing_by_hash.values() for row in queue]
            + [row for row in missing if not (row.status == STATUS_OK and row.content_hash)]
        )
        gone += self.folded  # a clip now part of its Live Photo is no result of its own any more
        self.summary.removed += len(gone)
        with self.catalog.session() as session:
            gone += keyframe_ids(session, gone)  # a removed video's keyframes go with it
            for start in range(0, len(gone), 500):
                session.execute(delete(Image).where(Image.id.in_(gone[start : start + 500])))
            Catalog.delete_orphan_vectors(session)
            self.generation += 1
            devices = {**(self.meta.get("root_devices") or {}), **self.root_devices}
            Catalog.set_meta(session, generation=self.generation, root_devices=devices)
            session.commit()
        self.index.remove(gone)
        self.index = finish(
            self.catalog,
            self.index_dir,
            self.index,
            self.generation,
            index_type=self.index_type,
            recall=self.meta.get("recall"),
            before_save=self._check_still_ours,
            more_meta=self._build_record,
        )

    def _build_record(self, index) -> dict:
        """What the build records beside the saved vector index: its summary and the vector store's state."""
        self.summary.seconds = time.perf_counter() - self.started
        self.summary.images = index.ntotal
        self.summary.index_type = index.kind
        self.catalog.vector_store.sync()
        return dict(
            self._store_record(),
            last_build=self.summary.to_dict(),
            last_build_at=utcnow().isoformat(timespec="seconds"),
        )

    def _store_record(self) -> dict:
        return {rowstore.META_KEY: self.catalog.vector_store.record()}

    def _allowed_removals(self, gone: list[Row]) -> list[int]:
        """Ids of vanished files to drop: all of them with --prune, otherwise per folder at most
        ``max_prune_share`` of its photos (more looks like a drive or share that is not there)."""
        by_root: dict[str, list[int]] = defaultdict(list)
        for row in gone:
            by_root[row.root].append(row.id)
        allowed: list[int] = []
        for root, ids in by_root.items():
            total = self.root_rows.get(root, len(ids))
            if self.prune or len(ids) <= self.max_prune_share * total:
                allowed += ids
                continue
            self.summary.kept += len(ids)
            self.warn(
                f"{root}: {len(ids)} of its {total} photos were not found, more than the "
                f"{self.max_prune_share:.0%} a build drops on its own (--max-prune-share); kept them in the index. "
                "Check that the drive or share is complete; if the photos are really gone, run build --prune"
            )
        return allowed

    def _check_still_ours(self) -> None:
        """Refuse to write vectors.faiss into an index folder that another build has re-created."""
        try:
            replaced = folder_identity(self.index_dir) != self.identity
        except FileNotFoundError:
            replaced = True
        if replaced:
            raise IndexReplacedError(
                f"{self.index_dir}: the index folder or its catalog was deleted or replaced while this build ran "
                "(by another process); this build's work went with the deleted files and it saved nothing, so the "
                "index now there was left untouched. Run the build again if that index should include these folders."
            )
