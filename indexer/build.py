"""`build`: scan folders, embed new and changed images, keep catalog and FAISS index in step.

Progress is committed to SQLite one model batch at a time, so kill -9 loses at most the
batch in flight; the FAISS file is written atomically at the end and, after a crash, is
reconciled with the catalog on the next run.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

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
    decode_relpath,
    utcnow,
)
from . import rowstore, space
from .errors import BadRootError, IndexReplacedError
from .files import FileEntry, FolderProblem, is_within, printable, root_key, scan_root
from .lock import WriteLock
from .places import place_of
from .reader import DEFAULT_DECODE_BUDGET, DecodeBudget, ReadResult, read_file
from .video_rows import insert_keyframes, keyframe_ids, keyframe_rows, move_keyframes, video_values
from .sync import load_index, measure_recall, needs_retraining, rebuild, recall_is_stale, save_index
from .vectors import INDEX_FILE, choose_index_type

logger = logging.getLogger(__name__)

MAX_ERRORS_KEPT = 1000  # in the stored last-build summary; the catalog keeps every error row
DEFAULT_MAX_PRUNE_SHARE = 0.5  # a build drops at most this share of a folder's photos unless told --prune
ENGINES = ("local", "ray")


def model_rejected_reason(error: Exception) -> str:
    """The error text recorded for an image the model could not embed (both engines)."""
    return f"the model could not embed this image ({type(error).__name__}: {error})"


@dataclass
class FileError:
    path: str
    reason: str


@dataclass
class BuildSummary:
    """What a build did.

    ``errors``: the files this build recorded as unreadable, with their reasons; each is an error row in the
    catalog (what ``info`` counts as "with errors"), not tried again until it changes. ``skipped``: what it
    could not look at and recorded nothing about (a folder it could not list or a symbolic link loop, a file
    that vanished or changed while being read); the next build looks again. A re-scan that finds nothing new
    reports neither."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: list[FileError] = field(default_factory=list)
    skipped: list[FileError] = field(default_factory=list)
    seconds: float = 0.0
    embedded: int = 0  # model forward passes (duplicates and moves need none)
    duplicates: int = 0  # new paths whose content was already embedded
    images: int = 0  # searchable images after the build
    index_type: str = ""
    started_at: str = ""
    kept: int = 0  # photos whose files look missing but were kept (unmounted drive?); --prune drops them
    warnings: list[str] = field(default_factory=list)
    peak_decode_pixels: int = 0  # most pixels decoded at once (bounded by the decode budget)
    text: dict = field(default_factory=dict)  # the text pass (words, OCR): indexer.fulltext.TextSummary.to_dict()

    @property
    def processed(self) -> int:
        return self.added + self.updated + self.moved + len(self.errors) + len(self.skipped)

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["errors"] = [asdict(error) for error in self.errors[:MAX_ERRORS_KEPT]]
        data["error_count"] = len(self.errors)
        data["skipped"] = [asdict(error) for error in self.skipped[:MAX_ERRORS_KEPT]]
        data["skipped_count"] = len(self.skipped)
        data["rate"] = round(self.rate, 2)
        data["seconds"] = round(self.seconds, 3)
        return data

    def __str__(self) -> str:
        kept = f"; KEPT {self.kept} photo(s) whose files were not found (see the warnings; --prune drops them)"
        return (
            f"added {self.added}, updated {self.updated}, moved {self.moved}, removed {self.removed}, "
            f"unchanged {self.unchanged}, errors {len(self.errors)}"
            + (f", skipped {len(self.skipped)}" if self.skipped else "") + f" in {self.seconds:.1f} s "
            f"({self.rate:.1f} images/s); {self.images} images searchable ({self.index_type} index)"
            + (kept if self.kept else "")
        )


def check_roots(roots: Iterable[Path | str], index_dir: Path) -> list[str]:
    """Absolute root folders, or BadRootError before any work is done."""
    index_key = root_key(index_dir)
    checked: list[str] = []
    for root in roots:
        path = Path(root).expanduser()
        if not path.exists():
            raise BadRootError(f"{root}: folder does not exist; check the --dir path")
        if not path.is_dir():
            raise BadRootError(f"{root}: not a folder; --dir takes a folder of photos")
        key = root_key(path)
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRootError(f"{printable(key)}: folder path is not valid UTF-8; index a parent folder "
                               "(file and folder names below a root may use any bytes)") from None
        if is_within(key, index_key):
            raise BadRootError(f"{root}: is inside the index folder {index_dir}; point --dir at your photos")
        for other in checked:
            if is_within(key, other) or is_within(other, key):
                raise BadRootError(f"{root}: overlaps another --dir ({other}); give each folder once")
        checked.append(key)
    return checked


def plan_roots(roots: Iterable[Path | str], index_dir: Path) -> list[str]:
    """The checked root folders of a build, or BadRootError (also when there is nothing to index)."""
    index_dir = Path(index_dir).expanduser().absolute()
    root_paths = check_roots(roots, index_dir)
    if not root_paths and not (index_dir / CATALOG_FILE).is_file():
        raise BadRootError("no folder to index: give at least one --dir")
    return root_paths


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
            embedding = LocalEmbedding()
            if engine == "ray":
                from .ray_engine import RayEmbedding, RayOptions

                embedding = RayEmbedding(ray_options or RayOptions())
            build = _Build(catalog, index_dir, embedder, batch_size, show_progress, index_type,
                           include_hidden, workers, prune, max_prune_share, budget, embedding)
            build.ocr_engine = ocr_engine
            return build.run(root_paths)
        except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: say what the committed batches kept
            if build is not None:
                interrupt.kept = build.kept_note()
            raise
        finally:
            catalog.close()


def folder_identity(index_dir: Path) -> tuple:
    """Which index folder and catalog file these are (device, inode): a folder deleted and re-created
    at the same path by another build is a different one."""
    folder, catalog = os.stat(index_dir), os.stat(Path(index_dir) / CATALOG_FILE)
    return (folder.st_dev, folder.st_ino, catalog.st_dev, catalog.st_ino)


class _Build:
    """One build run; holds the open catalog, the in-memory FAISS index and the counters."""

    def __init__(self, catalog, index_dir, embedder, batch_size, show_progress, index_type, include_hidden, workers,
                 prune=False, max_prune_share=DEFAULT_MAX_PRUNE_SHARE, budget=None, embedding=None):
        self.catalog, self.index_dir, self.embedder = catalog, index_dir, embedder
        self.identity = folder_identity(index_dir)
        from mme5.gpu_memory import fit_batch_size

        batch_size = fit_batch_size(embedder, batch_size)  # lowered (and said on stderr) if the GPU is too small
        self.batch_size, self.show_progress, self.include_hidden = batch_size, show_progress, include_hidden
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.prune, self.max_prune_share = prune, max_prune_share
        self.budget = budget or DecodeBudget()
        self.embedding = embedding or LocalEmbedding()  # how files are read and embedded (local threads or Ray)
        self.summary = BuildSummary(started_at=utcnow().isoformat(timespec="seconds"))
        self.started = time.perf_counter()
        self.start_count = catalog.count()
        self.root_rows: dict[str, int] = {}  # root -> its catalog rows before this build
        self.root_devices: dict[str, int] = {}  # root -> device id to record at the end
        self.meta = self._claim_meta(index_type)
        self.index_type = index_type or self.meta.get("index_type_request")
        self.index, report = load_index(catalog, index_dir, self.meta, self.index_type)
        if report.changed:
            logger.info(f"indexer: resumed an interrupted build (vector index: +{report.added} -{report.removed}"
                        f"{', rebuilt: ' + report.rebuilt if report.rebuilt else ''})")
        rowstore.attach(catalog, index_dir, self.meta, writer=True, show_progress=show_progress)
        self.generation = int(self.meta.get("generation", 0))
        self.pending = _Pending()
        self.failed_hashes: dict[str, str] = {}  # content the model rejected in this run -> reason
        self.known: set[str] = set()

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
        return (f"the catalog keeps every committed batch: {count} searchable images "
                f"({count - self.start_count:+d} from this run); the vector index catches up on the next run")

    # -- setup --------------------------------------------------------------------------
    def _claim_meta(self, index_type: str | None) -> dict:
        """Record the model on a new index, or refuse a different one on an existing index."""
        embedder = self.embedder
        with self.catalog.session() as session:
            meta = self.catalog.get_meta(session)
            if meta.get("published"):
                from .publish import PublishError

                raise PublishError(f"{self.index_dir}: this is a published copy of an index (made by `python -m "
                                   "indexer push`, its folders are not on this machine); build the index it was "
                                   "made from, then push again")
            if "fingerprint" in meta:
                meta.update(space.meta_updates(self.index_dir, meta, embedder))  # IndexMismatchError if not ours
            else:
                meta = dict(schema_version=SCHEMA_VERSION, **space.record(embedder),
                            created_at=utcnow().isoformat(timespec="seconds"), generation=0, index_generation=0)
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
        work, missing, unlisted = self._scan(roots)
        missing = [row for row in missing if not any(is_within(row.path, folder) for folder in unlisted)]
        self.missing_by_hash: dict[str, deque] = defaultdict(deque)
        for row in missing:
            if row.status == STATUS_OK and row.content_hash:
                self.missing_by_hash[row.content_hash].append(row)
        self._process(work)
        self._text()
        self._finish(missing)
        return self.summary

    def _text(self) -> None:
        """Words and OCR text of the photos that lack them (indexer/fulltext.py); resumable like the rest."""
        from .fulltext import update_text

        self.summary.text = update_text(self.catalog, getattr(self, "ocr_engine", None), workers=min(self.workers, 4),
                                        budget=self.budget, show_progress=self.show_progress).to_dict()

    def _scan(self, roots: dict[str, int]):
        """Compare the folders with the catalog using stat only."""
        work: list[tuple[FileEntry, int, _Row | None]] = []
        missing: list[_Row] = []
        unlisted: list[str] = []
        progress = tqdm(desc="scanning", unit=" files", disable=not self.show_progress, file=sys.stderr,
                        dynamic_ncols=True)
        recorded_devices = self.meta.get("root_devices") or {}
        with self.catalog.session() as session:
            for path, root_id in roots.items():
                found_files, root_unlisted = 0, False
                rows = {
                    row.relpath: _Row(row.id, path, decode_relpath(row.relpath), row.size, row.mtime_ns,
                                      row.status, row.content_hash, row.retry)
                    for row in session.execute(
                        select(Image.id, Image.relpath, Image.size, Image.mtime_ns, Image.status, Image.content_hash,
                               Image.retry).where(Image.root_id == root_id, Image.video_id.is_(None))
                    )
                }
                self.root_rows[path] = len(rows)
                device = _device(path)
                for found in scan_root(path, self.include_hidden, exclude=(str(self.index_dir),)):
                    if isinstance(found, FolderProblem):
                        unlisted.append(found.path)
                        root_unlisted |= found.relpath == ""
                        self.summary.skipped.append(FileError(found.path, found.reason))
                        continue
                    found_files += 1
                    progress.update(1)
                    row = rows.pop(encode_relpath(found.relpath), None)
                    if row is not None and not row.retry and (row.size, row.mtime_ns) == (found.size, found.mtime_ns):
                        self.summary.unchanged += 1
                    else:
                        work.append((found, root_id, row))
                matched = self.root_rows[path] - len(rows)
                suspect = None if root_unlisted else self._looks_missing(
                    path, found_files, matched, recorded_devices.get(path), device)
                if suspect:
                    unlisted.append(path)  # its rows stay, like those of a folder that cannot be listed
                    self.summary.kept += len(rows)
                    self.warn(f"{path}: {suspect}; kept its {len(rows)} photo(s) in the index. Check that the "
                              "drive is mounted; if the photos are really gone, run build --prune")
                elif device is not None and not root_unlisted:
                    self.root_devices[path] = device
                missing.extend(rows.values())
        progress.close()
        return work, missing, unlisted

    def _looks_missing(self, path: str, found_files: int, matched: int, recorded: int | None,
                       device: int | None) -> str | None:
        """Why a root's files look absent rather than deleted (an unmounted drive), or None."""
        if self.prune or self.root_rows[path] == 0:
            return None
        if found_files == 0:
            return "lists no photos at all (an unmounted drive leaves an empty mount point)"
        if recorded is not None and device is not None and device != recorded and matched == 0:
            return (f"is on another device than at the last build (device id {recorded}, now {device}) "
                    "and none of the photos indexed there is present")
        return None

    def _process(self, work) -> None:
        """Read, decode and embed ``work``, handing each file to ``_handle`` and full batches to ``_flush``."""
        self.embedding.process(self, work)

    def _flush(self) -> None:
        """Embed the pending batch and commit it (when and how: the embedding strategy's choice)."""
        self.embedding.flush(self)

    def _handle(self, result: ReadResult, root_id: int, old: "_Row | None") -> None:
        """Decide what one file needs: nothing, a move, a reused vector, an embedding, or an error row."""
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
        values = dict(root_id=root_id, relpath=encode_relpath(result.entry.relpath), size=result.size,
                      mtime_ns=result.mtime_ns, content_hash=result.content_hash, width=result.width,
                      height=result.height, taken_at=result.taken_at, camera=result.camera, indexed_at=utcnow(),
                      latitude=result.latitude, longitude=result.longitude,
                      **place_of(result.latitude, result.longitude), **video_values(result))
        if result.error:
            self.summary.errors.append(FileError(path, result.error))
            if old is not None:
                pending.delete_ids.append(old.id)
            pending.rows.append(dict(values, status=STATUS_ERROR, error=result.error, retry=result.retry))
            return
        digest = result.content_hash
        if old is not None and old.status == STATUS_OK and old.content_hash == digest:
            pending.updates.append(dict(values, id=old.id))  # touched, same bytes: keep the vector
            self.summary.unchanged += 1
            return
        if old is not None:
            pending.delete_ids.append(old.id)
        if self.missing_by_hash.get(digest):
            moved = self.missing_by_hash[digest].popleft()
            pending.updates.append(dict(values, id=moved.id))  # same id: the vector stays where it is
            self.summary.moved += 1
            return
        pending.rows.append(dict(values, status=STATUS_OK, error=None))
        pending.waiting[digest].append((path, old is not None))
        if len(result.keyframes) > 1:  # a video's further keyframes: rows of their own, embedded like images
            pending.keyframes[len(pending.rows) - 1] = rows = keyframe_rows(values, result.keyframes)
            for row, (_, image) in zip(rows, result.keyframes[1:]):
                if row["content_hash"] not in self.known and row["content_hash"] not in pending.embed_hashes:
                    pending.embed_hashes[row["content_hash"]] = image
        if old is not None:
            self.summary.updated += 1
        else:
            self.summary.added += 1
        if digest in pending.embed_hashes:
            self.summary.duplicates += 1
        elif result.image is None or digest in self.known:
            self.summary.duplicates += 1  # content already embedded
        else:
            pending.embed_hashes[digest] = result.image

    def _commit(self, pending: "_Pending", vectors: np.ndarray | None) -> None:
        """Write one batch's decisions and vectors in one transaction, then update the FAISS index."""
        images = Image.__table__
        self.catalog.vector_store.sync_if_due()  # rows fsync'ed before the catalog records them
        with self.catalog.engine.begin() as connection:  # one transaction: all of it or none of it
            if vectors is not None and len(vectors):
                connection.execute(insert(Vector.__table__).prefix_with("OR IGNORE"), [
                    dict(content_hash=digest, vector=vector.astype(np.float16).tobytes())
                    for digest, vector in zip(pending.embed_hashes, vectors)
                ])
            if pending.delete_ids:
                pending.delete_ids.extend(keyframe_ids(connection, pending.delete_ids))  # a video's keyframes go with it
                connection.execute(delete(images).where(images.c.id.in_(pending.delete_ids)))
            if pending.updates:
                connection.execute(
                    update(images).where(images.c.id == bindparam("row_id")).values(status=STATUS_OK, error=None,
                                                                                    retry=False),
                    [{("row_id" if key == "id" else key): value for key, value in row.items()} for row in pending.updates],
                )
            new_ids: list[int] = []
            if pending.rows:
                inserted = connection.execute(
                    insert(images).returning(images.c.id, images.c.status, sort_by_parameter_order=True),
                    [dict(row, retry=row.get("retry", False)) for row in pending.rows],
                ).all()
                new_ids = [image_id for image_id, status in inserted if status == STATUS_OK]
                new_ids += insert_keyframes(connection, pending.keyframes, pending.rows, inserted,
                                            self.failed_hashes) if pending.keyframes else []
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

    def _embed(self, pending: "_Pending", future) -> np.ndarray:
        """Vectors for the batch's images; one the model cannot take becomes an error row, not a crash."""
        try:
            vectors = future.result()
        except Exception:  # noqa: BLE001 - isolate the bad image(s) one by one below
            vectors, failed = [], []
            for digest, image in list(pending.embed_hashes.items()):
                try:
                    vectors.append(self.embedder.encode_images([image], batch_size=1)[0])
                except Exception as error:  # noqa: BLE001
                    del pending.embed_hashes[digest]
                    failed.append((digest, model_rejected_reason(error)))
            vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), self.embedder.dim)
            for digest, reason in failed:
                self.failed_hashes[digest] = reason
                self._fail_rows(pending, digest, reason)
        self.summary.embedded += len(vectors)
        return vectors

    def _fail_rows(self, pending: "_Pending", digest: str, reason: str) -> None:
        for path, was_update in pending.fail(digest, reason):
            self.summary.errors.append(FileError(path, reason))
            if was_update:
                self.summary.updated -= 1
            else:
                self.summary.added -= 1

    def _finish(self, missing: list["_Row"]) -> None:
        """Drop files that are gone, collect unused vectors, retrain if needed, save atomically."""
        gone = self._allowed_removals(
            [row for queue in self.missing_by_hash.values() for row in queue]
            + [row for row in missing if not (row.status == STATUS_OK and row.content_hash)])
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
        count = self.catalog.count()
        reason = needs_retraining(self.index, self.index_type, count)
        if reason:
            logger.info(f"indexer: rebuilding the vector index ({reason})")
            self.index = rebuild(self.catalog, int(self.meta["dim"]), self.index_type)
        recall = self.meta.get("recall")
        if reason or recall_is_stale(recall, self.index, count):
            recall = measure_recall(self.catalog, self.index)
        self._check_still_ours()
        save_index(self.catalog, self.index, self.index_dir / INDEX_FILE)
        self.summary.seconds = time.perf_counter() - self.started
        self.summary.images = self.index.ntotal
        self.summary.index_type = self.index.kind
        self.catalog.vector_store.sync()
        with self.catalog.session() as session:
            Catalog.set_meta(session, **self._store_record(), index_generation=self.generation,
                             index_type=self.index.kind, nlist=self.index.nlist, recall=recall,
                             last_build=self.summary.to_dict(), last_build_at=utcnow().isoformat(timespec="seconds"))
            session.commit()

    def _store_record(self) -> dict:
        return {rowstore.META_KEY: self.catalog.vector_store.record()}

    def _allowed_removals(self, gone: list["_Row"]) -> list[int]:
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
            self.warn(f"{root}: {len(ids)} of its {total} photos were not found, more than the "
                      f"{self.max_prune_share:.0%} a build drops on its own (--max-prune-share); kept them in the index. "
                      "Check that the drive or share is complete; if the photos are really gone, run build --prune")
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


class LocalEmbedding:
    """The local engine: reader threads decode within the decode budget while this process's
    embedder embeds, one batch in flight. ``build_index`` passes a strategy like this to the
    build (``indexer.ray_engine.RayEmbedding`` for ``--engine ray``): the build keeps the
    scan, the decisions (``_handle``) and the commits (``_commit``); the strategy decides how
    files are read and embedded and when a batch is committed."""

    def __init__(self):
        self.in_flight: tuple[_Pending, object] | None = None  # a batch the model is embedding now

    def process(self, build: "_Build", work) -> None:
        """Read files in worker threads (overlapping the model), then catalog them in order."""
        if not work:
            return
        with build.catalog.session() as session:
            build.known = known = set(session.scalars(select(Vector.content_hash)))
        draft = build.embedder.backbone.image_draft_size
        window = max(2 * build.batch_size, 2 * build.workers)
        progress = tqdm(total=len(work), desc="indexing", unit=" img", disable=not build.show_progress,
                        file=sys.stderr, dynamic_ncols=True)
        pool = ThreadPoolExecutor(build.workers, thread_name_prefix="indexer-read")
        try:
            queue: deque = deque()
            items = iter(work)
            for entry, root_id, row in items:
                queue.append((pool.submit(read_file, entry, draft, known, build.budget), root_id, row))
                if len(queue) >= window:
                    break
            while queue:
                future, root_id, row = queue.popleft()
                nxt = next(items, None)
                if nxt is not None:
                    queue.append((pool.submit(read_file, nxt[0], draft, known, build.budget), nxt[1], nxt[2]))
                build._handle(future.result(), root_id, row)
                progress.update(1)
                if build.pending.full(build.batch_size):
                    self.flush(build)
        finally:  # on Ctrl-C/SIGTERM, reads not yet started are dropped instead of run
            pool.shutdown(wait=True, cancel_futures=True)
        build.summary.peak_decode_pixels = build.budget.peak
        self.flush(build)
        self._commit_in_flight(build)
        progress.close()

    def flush(self, build: "_Build") -> None:
        """Hand the pending batch to the model in the background, then commit the batch before it.

        One batch is always in flight: while the model embeds it, the reader threads decode
        the next one (on a GPU, mme5 also preprocesses it meanwhile). Batches still commit
        one at a time and in order, each in one transaction, so a kill loses at most the
        batches not yet committed.
        """
        pending = build.pending
        if pending.empty:
            return
        build.pending = _Pending()
        future = None
        if pending.embed_hashes:
            future = build.embedder.submit("encode_images", list(pending.embed_hashes.values()),
                                           batch_size=build.batch_size)
            build.known.update(pending.embed_hashes)  # later copies of this content reuse its vector
        self._commit_in_flight(build)
        self.in_flight = (pending, future)

    def _commit_in_flight(self, build: "_Build") -> None:
        if self.in_flight is None:
            return
        pending, future = self.in_flight
        self.in_flight = None
        vectors = build._embed(pending, future) if future is not None else None
        for digest in [digest for digest in pending.waiting if digest in build.failed_hashes]:
            build._fail_rows(pending, digest, build.failed_hashes[digest])  # copies of content rejected earlier
        build._commit(pending, vectors)


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


@dataclass
class _Row:
    """The catalog facts about a file that the scan compares against."""

    id: int
    root: str
    relpath: str
    size: int
    mtime_ns: int
    status: str
    content_hash: str | None
    retry: bool = False

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.relpath)


@dataclass
class _Pending:
    """Catalog changes decided since the last commit."""

    rows: list[dict] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    delete_ids: list[int] = field(default_factory=list)
    embed_hashes: dict = field(default_factory=dict)  # content hash -> decoded image, in order
    keyframes: dict = field(default_factory=dict)  # index in rows of a video -> its further keyframes' rows
    waiting: dict = field(default_factory=lambda: defaultdict(list))  # content hash -> [(path, was_update)]

    def fail(self, digest: str, reason: str) -> list[tuple[str, bool]]:
        """Turn the rows waiting for ``digest``'s vector into error rows; returns (path, was_update) of each."""
        for row in self.rows:
            if row["content_hash"] == digest and row["status"] == STATUS_OK:
                row.update(status=STATUS_ERROR, error=reason)
        return self.waiting.pop(digest, [])

    def full(self, batch_size: int) -> bool:
        return len(self.embed_hashes) >= batch_size or len(self.rows) + len(self.updates) + len(self.delete_ids) >= 256

    @property
    def empty(self) -> bool:
        return not (self.rows or self.updates or self.delete_ids or self.embed_hashes)
