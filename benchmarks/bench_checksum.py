"""What checking the vector file's checksum on every open costs: open time with and without it, side by side.

Examples:
  python -m benchmarks.bench_checksum                      # 100,000 x 256-d flat index (~100 MB)
  python -m benchmarks.bench_checksum --count 1000000 --dim 1024 --repeat 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np


from indexer.vectors import VectorIndex, read_with_checksum


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=100_000, help="vectors in the index (default 100,000)")
    parser.add_argument("--dim", type=int, default=256, help="dimensions (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="timed opens of each kind; the best counts (default 3)")
    args = parser.parse_args(argv)
    vectors = np.random.default_rng(0).standard_normal((args.count, args.dim)).astype(np.float32)
    index = VectorIndex.flat(args.dim)
    index.add(np.arange(args.count, dtype=np.int64), vectors)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vectors.faiss"
        index.save(path)
        size = path.stat().st_size
        plain, checked, hashing = [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            VectorIndex.load(path)
            checked.append(time.perf_counter() - started)
            started = time.perf_counter()
            read_with_checksum(path)
            hashing.append(time.perf_counter() - started)
    print(f"vector file: {size / 1e6:.0f} MB ({args.count:,} x {args.dim})")
    print(f"open without checksum:  {min(plain):.3f} s")
    print(f"open with checksum:     {min(checked):.3f} s  (+{(min(checked) / min(plain) - 1) * 100:.0f}%)")
    print(f"read + SHA-256 alone:   {min(hashing):.3f} s  ({size / 1e6 / min(hashing):.0f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
