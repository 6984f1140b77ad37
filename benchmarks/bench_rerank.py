"""Re-ranking cost at scale: fetching the stored vectors of the top candidates from the SQLite catalog.

The compressed index (ivf-pq) re-scores its top RERANK_CANDIDATES (200) candidates exactly with
the float16 vectors the catalog keeps. This times that fetch (``Catalog.vectors_for_ids``:
image id -> content hash -> vector BLOB, the path a query takes) on a catalog of N rows, with
random ids as a query's candidates would be (cold pages excepted: run it twice to see the
page cache warm). The goal is <= 5 ms for 200 candidates at 1M photos; if a machine misses it,
a memory-mapped vector store is the next step (see indexer/vectors.py).

Examples:
  python benchmarks/bench_rerank.py                          # 1,000,000 rows of 768 dims (mSigLIP-B), ~1.6 GB
  python benchmarks/bench_rerank.py --rows 200000 --dim 4096 # mmE5-sized vectors
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--dir", type=Path, help="keep the catalog here (default: a temp folder, removed)")
    args = parser.parse_args(argv)

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
                cursor.executemany("insert into vectors (content_hash, vector) values (?, ?)",
                                   [(h, v.tobytes()) for h, v in zip(hashes, vectors)])
                cursor.executemany(
                    "insert into images (root_id, relpath, size, mtime_ns, content_hash, status, retry, indexed_at) "
                    "values (1, ?, 1, 0, ?, 'ok', 0, ?)",
                    [(f"{start + i}.jpg".encode(), h, utcnow()) for i, h in enumerate(hashes)])
                raw.commit()
                print(f"\r  writing catalog: {start + count:,}/{args.rows:,}", end="", file=sys.stderr)
            print(f"\n  written in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        ids_max = catalog.count()
        rng = np.random.default_rng(1)
        timings = []
        for _ in range(args.queries):
            ids = np.sort(rng.choice(np.arange(1, ids_max + 1), args.candidates, replace=False))
            started = time.perf_counter()
            found, vectors = catalog.vectors_for_ids(ids)
            timings.append(time.perf_counter() - started)
            assert len(found) == args.candidates and vectors.shape == (args.candidates, args.dim)
        catalog.close()
    ms = np.asarray(timings) * 1000
    print(f"rows {ids_max:,}  dim {args.dim}  candidates {args.candidates}: fetch p50 {np.percentile(ms, 50):.2f} ms, "
          f"p95 {np.percentile(ms, 95):.2f} ms (first {ms[0]:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
