"""Re-ranking cost at scale: fetching the stored vectors of the top candidates, SQLite BLOBs vs memory map.

The compressed index (ivf-pq) re-scores its top RERANK_CANDIDATES (1000) candidates exactly with
the stored float16 vectors. This times that fetch both ways on a catalog of N rows, with random
ids as a query's candidates would be, side by side: ``Catalog.vectors_for_ids`` (image id ->
content hash -> vector BLOB) and ``Catalog.exact_vectors`` (the memory-mapped vectors.f16 of
indexer/rowstore.py, the path a query takes now). The goal is <= 5 ms for the candidates at 1M
photos. Each source is timed over --passes passes of --queries queries; the first pass shows a
cold page cache (just after writing, the cache is partly warm: use --dir and run twice), the
last one the warm figure.

Examples:
  python -m benchmarks.bench_rerank                          # 1,000,000 rows of 768 dims (mSigLIP-B), ~3 GB
  python -m benchmarks.bench_rerank --rows 200000            # what fits a small machine
  python -m benchmarks.bench_rerank --rows 200000 --dim 4096 # mmE5-sized vectors
  python -m benchmarks.bench_rerank --dir /tmp/rerank-1m     # keep the catalog: a second run reuses it
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from indexer.vectors import RERANK_CANDIDATES

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument(
        "--candidates",
        type=int,
        default=RERANK_CANDIDATES,
        help=f"candidates per query (default {RERANK_CANDIDATES}, what a query re-scores)",
    )
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--passes", type=int, default=3, help="timing passes per source (default 3)")
    parser.add_argument("--dir", type=Path, help="keep the catalog here (default: a temp folder, removed)")
    args = parser.parse_args(argv)

    from indexer import rowstore
    from indexer.catalog import CATALOG_FILE, Catalog
    from indexer.catalog import utcnow

    with tempfile.TemporaryDirectory() as temp:
        folder = args.dir or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CATALOG_FILE
        fresh = not path.exists()
        catalog = Catalog(path, create=True)
        if fresh:
            started = time.perf_counter()
            rng = np.random.default_rng(0)
            raw = catalog.engine.raw_connection()
            cursor = raw.cursor()
            cursor.execute("insert into roots (id, path, added_at) values (1, '/photos', ?)", (utcnow(),))
            for start in range(0, args.rows, 20_000):
                count = min(20_000, args.rows - start)
                vectors = rng.standard_normal((count, args.dim)).astype(np.float16)
                hashes = [hashlib.sha256(str(start + i).encode()).hexdigest()[:32] for i in range(count)]
                cursor.executemany(
                    "insert into vectors (content_hash, vector) values (?, ?)",
                    [(h, v.tobytes()) for h, v in zip(hashes, vectors)],
                )
                cursor.executemany(
                    "insert into images (root_id, relpath, size, mtime_ns, content_hash, status, retry, indexed_at) "
                    "values (1, ?, 1, 0, ?, 'ok', 0, ?)",
                    [(f"{start + i}.jpg".encode(), h, utcnow()) for i, h in enumerate(hashes)],
                )
                raw.commit()
                print(f"\r  writing catalog: {start + count:,}/{args.rows:,}", end="", file=sys.stderr)
            print(f"\n  written in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        ids_max = catalog.count()
        started = time.perf_counter()
        meta = {**catalog.get_meta(), "dim": args.dim, "fingerprint": "bench_rerank"}
        rowstore.attach(catalog, folder, meta, writer=True)  # written once (or caught up) from the BLOBs
        print(f"  {rowstore.STORE_FILE} ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rng = np.random.default_rng(1)
        candidates = [
            np.sort(rng.choice(np.arange(1, ids_max + 1), args.candidates, replace=False)) for _ in range(args.queries)
        ]
        sources = {"sqlite BLOBs": catalog.vectors_for_ids, "memory map": catalog.exact_vectors}
        passes = {name: [] for name in sources}
        for _ in range(args.passes):
            for name, fetch in sources.items():
                timings = []
                for ids in candidates:
                    started = time.perf_counter()
                    found, vectors = fetch(ids)
                    timings.append(time.perf_counter() - started)
                    assert len(found) == args.candidates and vectors.shape == (args.candidates, args.dim)
                passes[name].append(np.asarray(timings) * 1000)
        first, last = catalog.vectors_for_ids(candidates[0]), catalog.exact_vectors(candidates[0])
        assert np.array_equal(first[0], last[0]) and np.array_equal(first[1], last[1])  # the same vectors
        catalog.close()
    print(
        f"rows {ids_max:,}  dim {args.dim}  candidates {args.candidates}  queries {args.queries} x {args.passes} "
        "passes (goal: p50 <= 5 ms)"
    )
    print(f"{'source':<14} {'first pass p50':>15} {'last pass p50':>14} {'last pass p95':>14}")
    for name, runs in passes.items():
        print(
            f"{name:<14} {np.percentile(runs[0], 50):12.2f} ms {np.percentile(runs[-1], 50):11.2f} ms "
            f"{np.percentile(runs[-1], 95):11.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
