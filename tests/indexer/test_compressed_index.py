"""The compressed index for 10M+ photos: IVF-PQ at <= 1 KB per image, re-ranked exactly from stored vectors."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from sqlalchemy import insert

from indexer import IndexStore, build_index, verify
from indexer.catalog import CATALOG_FILE, STATUS_OK, Catalog, Image, Root, Vector, encode_relpath, utcnow
from indexer.vectors import AUTO_PQ_THRESHOLD, INDEX_FILE, choose_index_type, pq_bytes


def clustered(count: int, dim: int, seed: int, clusters: int = 200, spread: float = 0.35) -> np.ndarray:
    """Unit vectors around random centres: photo libraries are clumpy (bursts, trips, pets), not uniform."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, count)] + spread * rng.standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def add_vectors(index_dir, photos, vectors: np.ndarray) -> None:
    """Extra catalog rows as a build would have written them for small files that exist (so the
    next build keeps them as unchanged); embedding 12k photos with the model would take too long."""
    catalog = Catalog(index_dir / CATALOG_FILE)
    folder = photos / "synthetic"
    folder.mkdir()
    rows = []
    for i in range(len(vectors)):
        path = folder / f"{i}.jpg"
        path.write_bytes(b"x")
        rows.append((f"synthetic/{i}.jpg", path.stat().st_mtime_ns, hashlib.sha256(f"v{i}".encode()).hexdigest()[:32]))
    with catalog.session() as session:
        root_id = session.query(Root.id).scalar()
        session.execute(
            insert(Vector),
            [{"content_hash": h, "vector": v.astype(np.float16).tobytes()} for (_, _, h), v in zip(rows, vectors)],
        )
        session.execute(
            insert(Image),
            [
                {
                    "root_id": root_id,
                    "relpath": encode_relpath(relpath),
                    "size": 1,
                    "mtime_ns": mtime_ns,
                    "content_hash": h,
                    "status": STATUS_OK,
                    "indexed_at": utcnow(),
                }
                for relpath, mtime_ns, h in rows
            ],
        )
        session.commit()
    catalog.close()
    (index_dir / INDEX_FILE).unlink()


def test_auto_picks_the_compressed_index_from_a_million_photos():
    assert choose_index_type("auto", AUTO_PQ_THRESHOLD - 1) == "ivf-sq8"
    assert choose_index_type("auto", AUTO_PQ_THRESHOLD) == "ivf-pq"
    assert choose_index_type(None, 50_000_000) == "ivf-pq"
    # one byte per 8 dimensions: mSigLIP-B, SigLIP2-L, mmE5; always a divisor of dim and under 1 KB
    assert [pq_bytes(d) for d in (768, 1024, 4096, 64)] == [96, 128, 512, 8]
    assert all(pq_bytes(d) <= 960 and d % pq_bytes(d) == 0 for d in (100, 4097, 8192, 12288))


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, tiny_mllama):
    from PIL import Image as PILImage

    folder = tmp_path_factory.mktemp("pq")
    photos = folder / "photos"
    photos.mkdir()
    for i in range(3):
        PILImage.new("RGB", (64, 48), (80 * i, 40, 200 - 60 * i)).save(photos / f"p{i}.jpg")
    index = folder / "index"
    build_index([photos], index, tiny_mllama, show_progress=False)
    add_vectors(index, photos, clustered(12_000, tiny_mllama.dim, seed=7))
    summary = build_index([], index, tiny_mllama, show_progress=False, index_type="ivf-pq")
    return index, summary


@pytest.mark.slow  # the fixture trains an ivf-pq index on 12,000 clustered vectors: about 60 s under load
def test_compressed_index_keeps_recall_through_exact_reranking(compressed):
    index, summary = compressed
    assert summary.index_type == "ivf-pq" and summary.images == 12_003 and summary.removed == 0
    with IndexStore.open(index) as store:
        info = store.info()
        assert info["index_type"] == "ivf-pq" and info["bytes_per_image"] <= 1024, info
        assert info["recall"]["recall_at_k"] >= 0.95 and not info["recall"]["exact"]
        ids = store.ids()
        queries = store.vectors(np.random.default_rng(3).choice(ids, 50, replace=False))
        stored = store.vectors(ids)
        exact = np.argsort(-(queries @ stored.T), axis=1)[:, :10]
        scores, hits = store.search(queries, 10)
        recall = np.mean([len(set(ids[e]) & set(h)) / 10 for e, h in zip(exact, hits)])
        assert recall >= 0.95, recall
        # the scores are the exact ones (stored float16 vectors), not PQ approximations
        again = np.einsum("qd,qkd->qk", queries, store.vectors(hits.reshape(-1)).reshape(50, 10, -1))
        np.testing.assert_allclose(scores, again, atol=1e-5)
        among = np.sort(ids[::7])
        _, restricted = store.search(queries[:5], 10, among=among)
        assert set(restricted.reshape(-1).tolist()) <= set(among.tolist())
    assert verify(index).clean


@pytest.mark.slow  # the fixture trains an ivf-pq index on 12,000 clustered vectors: about 60 s under load
def test_info_reports_bytes_per_image_and_recall(compressed):
    from indexer.__main__ import main

    index, _ = compressed
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["info", "--index", str(index), "--json"]) == 0
    info = json.loads(out.getvalue())
    assert info["index_type"] == "ivf-pq" and 0 < info["bytes_per_image"] <= 1024
    assert info["recall"]["recall_at_k"] >= 0.95
