"""Near-duplicate filter of synth: the MinHash LSH index against the old trigram-bucket scan.

Queries look like generated ones (a few hundred query images, words drawn from a Zipf-like
vocabulary in Latin and Cyrillic script) and ~10 % are light rewrites of an earlier query
(case, punctuation, one word changed), which the filter must catch. Prints, side by side,
the time to check N queries with each filter and how many duplicates each found, then the
time a resumed run takes to re-add every accepted query (what ``synth generate`` does
before it continues).

    python -m benchmarks.bench_synth_dedup --n 100000 --old-n 2000
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
import threading
import time
from pathlib import Path

from synth.checks import DUPLICATE_SIMILARITY, Deduplicator, normalise, similarity, trigrams

REPO = Path(__file__).resolve().parents[1]


class OldDeduplicator:
    """The filter before MinHash, verbatim: buckets on the alphabetically first quarter of trigrams."""

    def __init__(self, threshold: float = DUPLICATE_SIMILARITY):
        self.threshold = threshold
        self._buckets: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()

    def _keys(self, image: str, text: str) -> list[tuple[str, str]]:
        grams = sorted(trigrams(text))
        return [(image, gram) for gram in grams[: max(1, len(grams) // 4)]] or [(image, "")]

    def seen(self, image: str, text: str) -> bool:
        with self._lock:
            keys = self._keys(image, text)
            for key in keys:
                for other in self._buckets.get(key, ()):
                    if normalise(other) == normalise(text) or similarity(other, text) >= self.threshold:
                        return True
            for key in keys:
                self._buckets.setdefault(key, []).append(text)
            return False


def queries(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    latin = "abcdefghijklmnopqrstuvwxyz"
    cyrillic = "абвгдежзийклмнопрстуфхцчшщыэюя"
    vocabulary = [
        ("".join(rng.choice(latin if i % 3 else cyrillic) for _ in range(rng.randint(2, 10)))) for i in range(20_000)
    ]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))  # once, not per call
    images = [f"photos/{i:05d}.jpg" for i in range(500)] + [""]  # "" = text-only queries
    made: list[tuple[str, str]] = []
    for _ in range(n):
        if made and rng.random() < 0.1:
            image, text = rng.choice(made)
            words = text.split()
            words[rng.randrange(len(words))] = rng.choice(vocabulary) if len(words) > 12 else words[0]
            text = " ".join(words).upper() if rng.random() < 0.5 else " ".join(words) + "!"
        else:
            image = rng.choice(images)
            text = " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(6, 18))).capitalize() + "."
        made.append((image, text))
    return made


def run(dedup, items) -> tuple[float, int]:
    started = time.perf_counter()
    duplicates = sum(dedup.seen(image, text) for image, text in items)
    return time.perf_counter() - started, duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="queries for the MinHash filter (default 100000)")
    parser.add_argument("--old-n", type=int, default=2_000, help="queries for the old filter (quadratic; default 2000)")
    args = parser.parse_args()

    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s): figures scale with it")
    print(f"{'queries':>8} {'old filter s':>13} {'old dups':>9} {'MinHash s':>10} {'MinHash dups':>13}")
    sizes = sorted({min(args.old_n // 2, args.n), min(args.old_n, args.n), args.n})
    every = queries(args.n)  # the same stream at every size: a smaller run is a prefix of the largest
    for size in sizes:
        items = every[:size]
        old = run(OldDeduplicator(), items) if size <= args.old_n else None
        new = run(Deduplicator(), items)
        old_cells = f"{old[0]:13.2f} {old[1]:9d}" if old else f"{'(skipped)':>13} {'':>9}"
        print(f"{size:8d} {old_cells} {new[0]:10.2f} {new[1]:13d}", flush=True)

    # resume: a run with args.n accepted samples re-adds them all before continuing (synth/run.py)
    from synth.output import RunFolder
    from synth.records import dedup_text

    with tempfile.TemporaryDirectory() as work:
        folder = RunFolder(work)
        accepted = every
        with open(folder.samples_path, "w", encoding="utf-8") as handle:
            for number, (image, text) in enumerate(accepted):
                handle.write(
                    json.dumps(
                        {"sample_id": f"s0-{number:08d}", "qry_image_path": image, "query_text": text, "qry": text},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        started = time.perf_counter()
        dedup = Deduplicator()
        dedup.seen_many(dedup_text(row) for row in folder.samples())  # as synth/run.py does, batched
        print(
            f"resume: re-adding {args.n} accepted queries from samples.jsonl took "
            f"{time.perf_counter() - started:.2f} s ({len(dedup)} distinct kept)"
        )


if __name__ == "__main__":
    main()
