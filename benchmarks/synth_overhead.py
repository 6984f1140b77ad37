"""How fast synth's own side is: samples/s against an instant local OpenAI-compatible server.

Everything but the model runs for real (image encoding, HTTP, JSON validation, language
identification, near-duplicate check, fsynced append), so the figure is the ceiling that
synth itself puts on a run. Prints one line per concurrency level.

    python -m benchmarks.synth_overhead --n 300
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="samples per measurement (default 300)")
    parser.add_argument("--photos", type=int, default=200, help="photos in the temporary index (default 200)")
    parser.add_argument("--concurrency", default="1,4,16", help="levels to measure (default 1,4,16)")
    args = parser.parse_args()

    from tests.synth.synth_answers import answer_for
    from tests.synth.synth_testing import draw_photo
    from tests.synth.synth_fake_openai import FakeOpenAI, ok
    from indexer import build_index
    from mme5 import load_embedder
    from mme5.tiny import build_tiny
    from synth.cli import main as synth

    work = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    try:
        photos = work / "photos"
        photos.mkdir()
        for number in range(args.photos):
            draw_photo(photos / f"{number:04d}.jpg", seed=number)
        embedder = load_embedder(str(build_tiny(work / "tiny", "siglip")), device="cpu", verbose=False)
        build_index([photos], work / "index", embedder, show_progress=False)
        with FakeOpenAI(lambda request, number: ok(answer_for(request, number))) as server:
            for level in (int(part) for part in args.concurrency.split(",")):
                out = work / f"run{level}"
                started = time.perf_counter()
                synth(
                    [
                        "generate",
                        "--index",
                        str(work / "index"),
                        "--out",
                        str(out),
                        "--n",
                        str(args.n),
                        "--base-url",
                        server.url,
                        "--model",
                        "bench",
                        "--languages",
                        "en,de,fr,es,ja",
                        "--concurrency",
                        str(level),
                        "--no-progress",
                        "--max-attempts",
                        str(3 * args.n),
                    ]
                )
                seconds = time.perf_counter() - started
                print(
                    f"concurrency {level:>3}: {args.n} samples in {seconds:6.2f} s = {args.n / seconds:7.1f} samples/s "
                    f"(synth overhead {1000 * seconds / args.n:5.1f} ms/sample)",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
