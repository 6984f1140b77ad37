"""`verify [--repair]` and `remove --dir`: keeping an index consistent after the fact."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select

from mme5.atomic import remove_stale_temps
from .catalog import CATALOG_FILE, STATUS_OK, Catalog, Image, Root, Vector
from .video_rows import stray_keyframes
from .errors import BadRootError, IndexCorruptError, IndexNotFoundError
from . import rowstore
from .files import root_key
from .lock import WriteLock, lock_holder
from .salvage import salvage
from .sync import finish, load_checked, load_index, rebuild, recorded_checksums
from .vectors import INDEX_FILE, VectorIndex

VECTOR_SAMPLE = 200
DEEP_KINDS = ("flat", "ivf", "ivf-sq8")  # index types whose every vector --deep compares
UNIT_TOLERANCE = 0.01  # stored vectors are L2-normalised; float16 rounding moves the norm by < 1e-3
NO_MODEL = (
    "the catalog has no model metadata (its first build was interrupted before it recorded the model, or the "
    "metadata was lost to damage); "
    "nothing can be rebuilt without it: run the build again (python -m indexer build --dir PHOTOS --index "
    "INDEX), or, if the catalog already holds photos, move the index folder aside and build it again"
)


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)  # after --repair: what a second check still finds
    notes: list[str] = field(default_factory=list)  # facts worth knowing that are not problems
    checked: dict = field(default_factory=dict)
    writer: tuple | None = None  # (pid, purpose) of a build writing the index meanwhile: lags are expected
    damaged: bool = False  # SQLite found damaged pages or indexes in the catalog
    bad_vectors: list[str] = field(default_factory=list, repr=False)  # content hashes of damaged stored vectors

    @property
    def clean(self) -> bool:
        return not self.problems


def _open_catalog(index_dir: Path, writable: bool = False) -> Catalog:
    if not (Path(index_dir) / CATALOG_FILE).is_file():
        raise IndexNotFoundError(f"{index_dir}: no index here (no {CATALOG_FILE})")
    return Catalog(Path(index_dir) / CATALOG_FILE, writable=writable)


def verify(index_dir: Path | str, repair: bool = False, deep: bool = False) -> VerifyReport:
    """Check the catalog (SQLite integrity check) and catalog ⇄ vector index consistency.

    ``deep`` compares every vector FAISS holds with its stored vector (not a sample).
    ``repair`` salvages a damaged catalog, rebuilds what is derivable, then checks again:
    ``unrepaired`` lists whatever that second check still finds.
    """
    index_dir = Path(index_dir).expanduser().absolute()
    if not (index_dir / CATALOG_FILE).is_file():
        raise IndexNotFoundError(f"{index_dir}: no index here (no {CATALOG_FILE})")
    catalog: Catalog | None
    if not repair:
        writer = lock_holder(index_dir)
        try:
            catalog = _open_catalog(index_dir)
        except IndexCorruptError as error:  # damaged where even opening reads (schema, meta)
            return VerifyReport(problems=[str(error)], damaged=True, writer=writer)
        try:
            report = _check(catalog, index_dir, deep)
            report.writer = writer or lock_holder(index_dir)  # a build that started during the check counts too
            return report
        finally:
            catalog.close()
    with WriteLock(index_dir, "verify --repair"):
        catalog = None
        try:
            try:
                catalog = _open_catalog(index_dir, writable=True)
            except IndexCorruptError as error:
                report = VerifyReport(problems=[str(error)], damaged=True)
            else:
                report = _check(catalog, index_dir, deep)
            if report.problems:
                try:
                    catalog = _repair(catalog, index_dir, report)
                except IndexCorruptError as error:  # beyond salvage
                    report.unrepaired = [str(error)]
                    return report
                again = _check(catalog, index_dir, deep)
                report.unrepaired, report.notes = again.problems, again.notes
            return report
        finally:
            if catalog is not None:
                catalog.close()


def _check(catalog: Catalog, index_dir: Path, deep: bool = False) -> VerifyReport:
    report = VerifyReport()
    damage = catalog.integrity_problem(full=deep)
    if damage:
        report.damaged = True
        report.problems.append(f"{CATALOG_FILE} is damaged (SQLite integrity check: {damage})")
        return report
    try:
        _check_contents(catalog, index_dir, deep, report)
    except IndexCorruptError as error:  # damage the integrity check did not reach (a concurrent change?)
        report.damaged = True
        report.problems.append(str(error))
    return report


def _check_contents(catalog: Catalog, index_dir: Path, deep: bool, report: VerifyReport) -> None:
    problems = report.problems
    with catalog.session() as session:
        meta = catalog.get_meta(session)
        dim = int(meta.get("dim", 0))
        if "fingerprint" not in meta or not dim:
            problems.append(NO_MODEL)
        no_vector = session.scalars(
            select(Image.id)
            .outerjoin(Vector, Vector.content_hash == Image.content_hash)
            .where(Image.status == STATUS_OK, Vector.content_hash.is_(None))
        ).all()
        if no_vector:
            problems.append(
                f"{len(no_vector)} searchable image(s) have no stored vector (ids {list(no_vector[:5])}...)"
            )
        stray = stray_keyframes(session)
        if stray:
            problems.append(f"{len(stray)} video keyframe(s) belong to no indexed video (ids {stray[:5]}...)")
        used = select(Image.content_hash).where(Image.status == STATUS_OK, Image.content_hash.is_not(None))
        orphans = session.scalar(select(func.count()).select_from(Vector).where(Vector.content_hash.not_in(used)))
        if orphans and orphans <= int(meta.get("salvage_kept_vectors", 0)):
            report.notes.append(
                f"{orphans} stored vector(s) belong to no image since a salvage; kept so that the next "
                "build reuses them for the photos it finds again (it drops the rest)"
            )
        elif orphans:
            problems.append(f"{orphans} stored vector(s) belong to no image")
        if dim:
            bad_size = session.scalar(
                select(func.count()).select_from(Vector).where(func.length(Vector.vector) != dim * 2)
            )
            if bad_size:
                problems.append(f"{bad_size} stored vector(s) do not have {dim} float16 values")
        report.checked["images"] = catalog.count(session=session)
        from .fulltext import consistency_problems  # words, OCR text and their full-text rows

        problems.extend(consistency_problems(session.connection()))
    temps = list(index_dir.glob(".*.tmp"))
    if temps:
        problems.append(f"{len(temps)} leftover temporary file(s) from an interrupted write")
    if not dim:
        return
    _check_store(catalog, index_dir, meta, deep, report)
    if not recorded_checksums(meta):
        report.checked["checksum"] = "none recorded (written by an older version; the next build records one)"
    try:
        index = load_checked(catalog, index_dir / INDEX_FILE, meta)
    except IndexCorruptError:
        raise  # the catalog, not the vector file: reported as catalog damage by _check
    except ValueError as error:
        problems.append(str(error))
        return
    if index.dim != dim:
        problems.append(f"vector index dim {index.dim} != catalog dim {dim}")
        return
    wanted, present = catalog.ok_ids(), index.ids()
    missing = np.setdiff1d(wanted, present)
    extra = np.setdiff1d(present, wanted)
    if len(missing):
        problems.append(f"{len(missing)} searchable image(s) missing from the vector index")
    if len(extra):
        problems.append(f"{len(extra)} vector index entr(ies) point to no searchable image")
    if len(np.unique(present)) != len(present):
        problems.append("duplicate ids in the vector index")
    report.checked["vector_index"] = index.ntotal
    if deep:
        _compare_every_vector(catalog, index, report)
    elif index.kind == "flat":  # exact index: stored vectors must be exactly what FAISS holds
        sample = np.intersect1d(wanted, present)[:VECTOR_SAMPLE]
        ids, stored = catalog.vectors_for_ids(sample)
        if len(ids) and not np.allclose(index.reconstruct(ids), stored.astype(np.float32), atol=1e-3):
            problems.append("vector index content differs from the stored vectors")


def _check_store(catalog: Catalog, index_dir: Path, meta: dict, deep: bool, report: VerifyReport) -> None:
    """The memory-mapped vector store (indexer/rowstore.py) against the catalog: header, length, and the
    rows themselves (a sample; every row with ``deep``). Rows committed after its last record are a note:
    they are read from the catalog until a writer catches up."""
    if not (meta.get(rowstore.META_KEY) or {}).get("id"):
        report.notes.append(
            f"no {rowstore.STORE_FILE} yet (index from an older version): the next build, or an "
            "open with write access, creates it; re-ranking reads the catalog meanwhile"
        )
        return
    try:
        store = rowstore.RowStore.open_checked(index_dir, meta)
    except ValueError as error:
        report.problems.append(f"{error}; --repair rebuilds it from the catalog (readers use the catalog meanwhile)")
        return
    try:
        ids = catalog.ok_ids()
        covered = ids[store.covered(ids)]
        if len(covered) < len(ids):
            report.notes.append(
                f"{len(ids) - len(covered)} searchable image(s) newer than {rowstore.STORE_FILE}'s "
                "record; read from the catalog until the next build or open writes them"
            )
        if not deep:
            covered = covered[np.linspace(0, len(covered) - 1, min(VECTOR_SAMPLE, len(covered))).astype(int)]
        wrong = []
        for start in range(0, len(covered), 8192):
            found, stored = catalog.vectors_for_ids(covered[start : start + 8192])
            if len(found):
                held = store.rows_for(found)
                wrong.extend(found[np.any(held.view(np.uint16) != stored.view(np.uint16), axis=1)].tolist())
        report.checked["vector_store_rows"] = len(covered)
        if wrong:
            report.problems.append(
                f"{len(wrong)} row(s) of {rowstore.STORE_FILE} differ from the stored vectors "
                f"(ids {wrong[:5]}); --repair rebuilds it from the catalog"
            )
    finally:
        store.close()


def _compare_every_vector(catalog: Catalog, index: VectorIndex, report: VerifyReport) -> None:
    """`verify --deep`: every FAISS entry against the stored vector it was made from, and every stored
    vector against what the models write (finite, unit length)."""
    differ: list[int] = []
    lost, compared = 0, 0
    if index.kind not in DEEP_KINDS:
        report.notes.append(
            f"--deep does not compare the vectors of a {index.kind} index (its codes are not "
            "comparable one by one); the file checksum and the id sets were checked"
        )
    for ids, held, lists in index.entries() if index.kind in DEEP_KINDS else ():
        lost += int((ids < 0).sum())
        found, stored = catalog.vectors_for_ids(ids[ids >= 0])
        if not len(found):
            continue
        row = {int(i): n for n, i in enumerate(found)}
        keep = np.asarray([int(i) in row for i in ids])
        order = [row[int(i)] for i in ids[keep]]
        stored = stored[order].astype(np.float32)
        expected, slack = index.expected(stored, None if lists is None else lists[keep])
        wrong = np.any(~(np.abs(held[keep] - expected) <= slack), axis=1)
        differ.extend(int(i) for i in ids[keep][wrong])
        compared += int(keep.sum())
    report.checked["vectors_compared"] = compared
    if lost:
        report.problems.append(f"{lost} vector index entr(ies) have no valid id (the file is damaged)")
    if differ:
        report.problems.append(
            f"{len(differ)} vector(s) in the vector index differ from the stored vectors (ids {sorted(differ)[:5]})"
        )
    bad = []
    with catalog.session() as session:
        for digest, blob in session.execute(select(Vector.content_hash, Vector.vector)):
            vector = np.frombuffer(blob, np.float16).astype(np.float32)
            norm = float(np.sqrt(np.dot(vector, vector))) if np.isfinite(vector).all() else np.nan
            if not abs(norm - 1.0) <= UNIT_TOLERANCE:
                bad.append(digest)
    if bad:
        report.bad_vectors = bad
        report.problems.append(
            f"{len(bad)} stored vector(s) are damaged (not finite or not unit length); "
            "--repair forgets them so the next build embeds those photos again"
        )


def _repair(catalog: Catalog | None, index_dir: Path, report: VerifyReport) -> Catalog:
    """Fix what is derivable; returns the catalog to check again (a new one after a salvage)."""
    remove_stale_temps(index_dir)
    if report.damaged:
        if catalog is not None:
            catalog.close()
        salvaged = salvage(index_dir / CATALOG_FILE, max_known_id=_highest_faiss_id(index_dir))
        report.repaired.extend(salvaged.lines())
        catalog = _open_catalog(index_dir, writable=True)
        again = _check(catalog, index_dir)
        if again.damaged:
            return catalog
        report.bad_vectors = []
    if catalog is None:  # only a damaged catalog fails to open, and that one was salvaged above
        raise ValueError(f"{index_dir}: no catalog to repair")
    with catalog.session() as session:
        meta = catalog.get_meta(session)
        if "fingerprint" not in meta or not meta.get("dim"):
            return catalog  # nothing can be rebuilt without knowing the model; the second check says so
        dim = int(meta["dim"])
        from .fulltext import repair_text

        report.repaired.extend(repair_text(session.connection()))
        if report.bad_vectors:
            for start in range(0, len(report.bad_vectors), 500):
                session.execute(delete(Vector).where(Vector.content_hash.in_(report.bad_vectors[start : start + 500])))
            report.repaired.append(f"deleted {len(report.bad_vectors)} damaged stored vector(s)")
        no_vector = session.scalars(
            select(Image.id)
            .outerjoin(Vector, Vector.content_hash == Image.content_hash)
            .where(Image.status == STATUS_OK, Vector.content_hash.is_(None))
        ).all()
        if no_vector:  # the next build re-adds these files from disk
            session.execute(delete(Image).where(Image.id.in_(no_vector)))
            report.repaired.append(f"forgot {len(no_vector)} image(s) without a vector; the next build re-embeds them")
        stray = stray_keyframes(session)
        if stray:  # their video was forgotten or is gone: the next build makes its keyframes again
            session.execute(delete(Image).where(Image.id.in_(stray)))
            report.repaired.append(f"deleted {len(stray)} video keyframe(s) that belonged to no indexed video")
        session.execute(delete(Vector).where(func.length(Vector.vector) != dim * 2))
        if not int(meta.get("salvage_kept_vectors", 0)):  # after a salvage they are what the next build reuses
            dropped = Catalog.delete_orphan_vectors(session)
            if dropped:
                report.repaired.append(f"deleted {dropped} unused stored vector(s)")
        generation = int(meta.get("generation", 0)) + 1  # readers holding the old state reopen
        Catalog.set_meta(session, generation=generation)
        session.commit()
    with catalog.session() as session:  # the store is derived too: written again from what the catalog now holds
        Catalog.set_meta(session, **{rowstore.META_KEY: None})
        session.commit()
    rowstore.attach(catalog, index_dir, catalog.get_meta(), writer=True)
    report.repaired.append(f"rebuilt {rowstore.STORE_FILE} from {catalog.count()} stored vectors")
    request = meta.get("index_type_request")
    index = finish(catalog, index_dir, rebuild(catalog, dim, request), generation, index_type=request)
    report.repaired.append(f"rebuilt the {index.kind} vector index from {index.ntotal} stored vectors")
    return catalog


def _highest_faiss_id(index_dir: Path) -> int:
    """The largest id the (possibly damaged) FAISS file uses: a salvaged catalog never hands it out again."""
    try:
        ids = VectorIndex.load(index_dir / INDEX_FILE).ids()
    except ValueError:
        return 0
    return int(ids.max()) if len(ids) else 0


def remove_root(index_dir: Path | str, root: Path | str) -> int:
    """Forget a folder: its files leave catalog and vector index. Returns how many were searchable."""
    index_dir = Path(index_dir).expanduser().absolute()
    _open_catalog(index_dir).close()
    with WriteLock(index_dir, "remove"):
        catalog = _open_catalog(index_dir, writable=True)
        try:
            key = root_key(root)
            with catalog.session() as session:
                meta = catalog.get_meta(session)
                found = session.scalar(
                    select(Root).where(Root.path.in_([key, str(Path(root).expanduser().absolute())]))
                )
                if found is None:
                    known = ", ".join(r.path for r in session.scalars(select(Root))) or "none"
                    raise BadRootError(f"{root}: not a folder of this index (indexed folders: {known})")
                ids = session.scalars(
                    select(Image.id).where(Image.root_id == found.id, Image.status == STATUS_OK)
                ).all()
                session.delete(found)  # images go with it (ON DELETE CASCADE)
                session.flush()
                Catalog.delete_orphan_vectors(session)
                generation = int(meta.get("generation", 0)) + 1
                Catalog.set_meta(session, generation=generation)
                session.commit()
            meta = catalog.get_meta()
            index, _ = load_index(catalog, index_dir, meta)
            index.remove(np.asarray(ids, dtype=np.int64))
            finish(
                catalog,
                index_dir,
                index,
                generation,
                index_type=meta.get("index_type_request"),
                recall=meta.get("recall"),
            )  # a smaller index may want another type, and recall moves
            return len(ids)
        finally:
            catalog.close()
