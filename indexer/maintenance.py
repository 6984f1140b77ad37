"""`verify [--repair]` and `remove --dir`: keeping an index consistent after the fact."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select, text

from .atomic import remove_stale_temps
from .catalog import CATALOG_FILE, STATUS_OK, Catalog, Image, Root, Vector
from .errors import BadRootError, IndexNotFoundError
from .files import root_key
from .lock import WriteLock, lock_holder
from .sync import load_index, measure_recall, rebuild
from .vectors import INDEX_FILE, VectorIndex

VECTOR_SAMPLE = 200


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    checked: dict = field(default_factory=dict)
    writer: tuple | None = None  # (pid, purpose) of a build writing the index meanwhile: lags are expected

    @property
    def clean(self) -> bool:
        return not self.problems


def _open_catalog(index_dir: Path) -> Catalog:
    if not (Path(index_dir) / CATALOG_FILE).is_file():
        raise IndexNotFoundError(f"{index_dir}: no index here (no {CATALOG_FILE})")
    return Catalog(Path(index_dir) / CATALOG_FILE)


def verify(index_dir: Path | str, repair: bool = False) -> VerifyReport:
    """Check catalog ⇄ vector index consistency; with ``repair``, rebuild what is derivable."""
    index_dir = Path(index_dir).expanduser().absolute()
    catalog = _open_catalog(index_dir)
    try:
        if repair:
            with WriteLock(index_dir, "verify --repair"):
                report = _check(catalog, index_dir)
                if report.problems:
                    _repair(catalog, index_dir, report)
            return report
        writer = lock_holder(index_dir)
        report = _check(catalog, index_dir)
        report.writer = writer or lock_holder(index_dir)  # a build that started during the check counts too
        return report
    finally:
        catalog.close()


def _check(catalog: Catalog, index_dir: Path) -> VerifyReport:
    report = VerifyReport()
    problems = report.problems
    with catalog.session() as session:
        integrity = session.execute(text("PRAGMA quick_check")).scalar()
        if integrity != "ok":
            problems.append(f"SQLite integrity check failed: {integrity}")
        meta = catalog.get_meta(session)
        dim = int(meta.get("dim", 0))
        if "fingerprint" not in meta:
            problems.append("catalog has no model metadata")
        no_vector = session.scalars(
            select(Image.id).outerjoin(Vector, Vector.content_hash == Image.content_hash)
            .where(Image.status == STATUS_OK, Vector.content_hash.is_(None))
        ).all()
        if no_vector:
            problems.append(f"{len(no_vector)} searchable image(s) have no stored vector (ids {list(no_vector[:5])}...)")
        used = select(Image.content_hash).where(Image.status == STATUS_OK, Image.content_hash.is_not(None))
        orphans = session.scalar(select(func.count()).select_from(Vector).where(Vector.content_hash.not_in(used)))
        if orphans:
            problems.append(f"{orphans} stored vector(s) belong to no image")
        bad_size = session.scalar(select(func.count()).select_from(Vector).where(func.length(Vector.vector) != dim * 2))
        if bad_size:
            problems.append(f"{bad_size} stored vector(s) do not have {dim} float16 values")
        report.checked["images"] = catalog.count(session=session)
    temps = list(index_dir.glob(".*.tmp"))
    if temps:
        problems.append(f"{len(temps)} leftover temporary file(s) from an interrupted write")
    try:
        index = VectorIndex.load(index_dir / INDEX_FILE)
    except ValueError as error:
        problems.append(str(error))
        return report
    if index.dim != dim:
        problems.append(f"vector index dim {index.dim} != catalog dim {dim}")
        return report
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
    if index.kind == "flat":  # exact index: stored vectors must be exactly what FAISS holds
        sample = np.intersect1d(wanted, present)[:VECTOR_SAMPLE]
        ids, stored = catalog.vectors_for_ids(sample)
        if len(ids) and not np.allclose(index.reconstruct(ids), stored.astype(np.float32), atol=1e-3):
            problems.append("vector index content differs from the stored vectors")
    return report


def _repair(catalog: Catalog, index_dir: Path, report: VerifyReport) -> None:
    remove_stale_temps(index_dir)
    with catalog.session() as session:
        meta = catalog.get_meta(session)
        dim = int(meta["dim"])
        no_vector = session.scalars(
            select(Image.id).outerjoin(Vector, Vector.content_hash == Image.content_hash)
            .where(Image.status == STATUS_OK, Vector.content_hash.is_(None))
        ).all()
        if no_vector:  # the next build re-adds these files from disk
            session.execute(delete(Image).where(Image.id.in_(no_vector)))
            report.repaired.append(f"forgot {len(no_vector)} image(s) without a vector; the next build re-embeds them")
        session.execute(delete(Vector).where(func.length(Vector.vector) != dim * 2))
        dropped = Catalog.delete_orphan_vectors(session)
        if dropped:
            report.repaired.append(f"deleted {dropped} unused stored vector(s)")
        session.commit()
    index = rebuild(catalog, dim, meta.get("index_type_request"))
    index.save(index_dir / INDEX_FILE)
    recall = measure_recall(catalog, index)
    with catalog.session() as session:
        Catalog.set_meta(session, index_generation=meta.get("generation", 0), index_type=index.kind,
                         nlist=index.nlist, recall=recall)
        session.commit()
    report.repaired.append(f"rebuilt the {index.kind} vector index from {index.ntotal} stored vectors")


def remove_root(index_dir: Path | str, root: Path | str) -> int:
    """Forget a folder: its files leave catalog and vector index. Returns how many were searchable."""
    index_dir = Path(index_dir).expanduser().absolute()
    catalog = _open_catalog(index_dir)
    try:
        with WriteLock(index_dir, "remove"):
            key = root_key(root)
            with catalog.session() as session:
                meta = catalog.get_meta(session)
                found = session.scalar(select(Root).where(Root.path.in_([key, str(Path(root).expanduser().absolute())])))
                if found is None:
                    known = ", ".join(r.path for r in session.scalars(select(Root))) or "none"
                    raise BadRootError(f"{root}: not a folder of this index (indexed folders: {known})")
                ids = session.scalars(select(Image.id).where(Image.root_id == found.id, Image.status == STATUS_OK)).all()
                session.delete(found)  # images go with it (ON DELETE CASCADE)
                session.flush()
                Catalog.delete_orphan_vectors(session)
                generation = int(meta.get("generation", 0)) + 1
                Catalog.set_meta(session, generation=generation)
                session.commit()
            meta = catalog.get_meta()
            index, _ = load_index(catalog, index_dir, meta)
            index.remove(np.asarray(ids, dtype=np.int64))
            index.save(index_dir / INDEX_FILE)
            with catalog.session() as session:
                Catalog.set_meta(session, index_generation=generation)
                session.commit()
            return len(ids)
    finally:
        catalog.close()
