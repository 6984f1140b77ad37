"""How to apply "without" texts: query minus the without-vectors (renormalised) vs a score penalty.

Planted data, so the right answer is known: image vectors share a modality direction (as real
image embeddings do), text vectors another; each photo shows the query's concept A, the
unwanted concept B, both, or neither. The query "A without B" should rank the A-only photos
first. Reported: precision of the top-|A only| hits, for several mixing strengths.

Examples:
  python -m benchmarks.bench_without
  python -m benchmarks.bench_without --dim 256 --trials 50
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


from search_app.encoding import push_away


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def trial(rng, dim: int, noise: float, b_weight: float, sizes=(100, 100, 100, 1700)):
    basis = unit(rng.normal(size=(4, dim)))  # image modality, text modality, concept A, concept B
    m_img, m_txt, a, b = basis
    groups = []
    for group, count in enumerate(sizes):  # 0: A only (wanted), 1: A and B, 2: B only, 3: neither
        has_a, has_b = group in (0, 1), group in (1, 2)
        x = 1.0 * m_img + 0.5 * has_a * a + b_weight * has_b * b + noise * rng.normal(size=(count, dim)) / np.sqrt(dim)
        groups.append(unit(x))
    library = np.vstack(groups)
    wanted = np.zeros(len(library), bool)
    wanted[: sizes[0]] = True
    query = unit(m_txt + a + 0.2 * rng.normal(size=dim) / np.sqrt(dim))[None]
    negative = unit(m_txt + b + 0.2 * rng.normal(size=dim) / np.sqrt(dim))[None]
    top = sizes[0]

    def precision(scores):
        return wanted[np.argsort(-scores)[:top]].mean()

    plain = library @ query[0]
    subtract = library @ push_away(query.astype(np.float32), negative.astype(np.float32))[0]
    penalty = plain - np.maximum(0, library @ negative[0] - np.median(library @ negative[0]))
    return precision(plain), precision(subtract), precision(penalty)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'B strength':>10} {'noise':>6} | {'plain':>6} {'q − n':>6} {'penalty':>8}   (precision of the top hits)")
    for b_weight in (0.3, 0.5, 0.8):
        for noise in (0.3, 0.6):
            scores = np.mean([trial(rng, args.dim, noise, b_weight) for _ in range(args.trials)], axis=0)
            print(f"{b_weight:>10} {noise:>6} | {scores[0]:6.3f} {scores[1]:6.3f} {scores[2]:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
