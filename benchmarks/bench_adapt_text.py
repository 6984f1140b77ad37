"""Does adapting on OCR text pairs help? ``trainer adapt`` with synthetic pairs only vs synthetic + text pairs.

A library of sign photos (benchmarks/text_photos.py: --words shop words, --per-word photos of each, every one its
own background and seed) is indexed with OCR on. A scripted OpenAI-compatible generator (real HTTP, synth's wire
format) recognises each photo it is sent (nearest thumbnail of the photos it was given) and writes an English query
about its sign ("the bakery sign", "shop front reading BAKERY", ...), as a vision model reading the sign would.
``trainer adapt --no-apply`` runs once without ``--text-pairs``; the second run reuses its split, its held-out
queries, its synthetic training samples and its "before" (copied), so the only difference is the text pairs OCR
adds to training. Same seed, steps, batch, learning rate. Prints held-out recall@1/@10 and MRR side by side.

With the tiny random model (the default) the vision side cannot read letters; what training can learn is which
photo (background, layout) goes with which words, and held-out photos are other photos of the same words.

  python -m benchmarks.bench_adapt_text                       # 16 words x 4 photos, 40 steps of 8, seed 0
  python -m benchmarks.bench_adapt_text --seeds 0,1,2 --json  # repeat with other seeds
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "CAFÉ CENTRAL",
    "BAKERY",
    "PHARMACY",
    "MUSEUM",
    "STATION",
    "HARBOUR",
    "LIBRARY",
    "THEATER",
    "HOTEL",
    "GARAGE",
    "FLORIST",
    "BUTCHER",
    "CINEMA",
    "MARKET",
    "POST OFFICE",
    "BOOKSHOP",
]
TEMPLATES = [  # 24 ways a person (or a vision model) might ask for a sign's photo
    f"{lead}{body}"
    for lead in ("", "photo: ", "looking for ")
    for body in (
        "the {w} sign",
        "a sign saying {W}",
        "shop front reading {W}",
        "the {w} on the corner",
        "street sign for the {w}",
        "{W} written on a plaque",
        "where was the {w}",
        "that {w} we passed",
    )
]


def thumbnail(image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((24, 16)), dtype=np.float32).ravel()


class Generator:
    """Answers synth's requests: finds the positive image among the library's photos, names its sign."""

    def __init__(self, photos: dict[str, str]):
        from PIL import Image

        self.words = list(photos.values())
        self.thumbs = np.stack([thumbnail(Image.open(path)) for path in photos])

    def word_of(self, url: str) -> str:
        from PIL import Image

        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        return self.words[int(np.argmin(((self.thumbs - thumbnail(image)) ** 2).sum(axis=1)))]

    def __call__(self, request: dict, number: int):
        from tests.synth.synth_fake_openai import ok

        user = next(m for m in request["messages"] if m["role"] == "user")["content"]
        labels = [part["text"] for part in user if part["type"] == "text" and part["text"].startswith("Image ")]
        urls = [part["image_url"]["url"] for part in user if part["type"] == "image_url"]
        target = next(url for label, url in zip(labels, urls) if "(positive image)" in label)
        word = self.word_of(target)
        text = "\n".join(part.get("text", "") for part in user if part["type"] == "text")
        choice = random.Random(f"{word}:{number}:{len(text)}").choice(TEMPLATES)
        data = {
            "instruction": "Find an everyday image that matches the given caption.",
            "query": choice.format(w=word.lower(), W=word),
            "positive": "",
            "hard_negative": "",
        }
        answer = {
            "description": {
                "general": f"A sign reading {word}.",
                "objects": "a plaque",
                "context": "a street",
                "brainstorm": "the sign's words",
            },
            "data": data,
            "evaluation": {k: "ok" for k in ("relevance", "plausibility", "clarity", "diversity", "improvements")},
            "revised": data,
        }
        return ok(json.dumps(answer, ensure_ascii=False))


def make_library(root: Path, words: list[str], per_word: int, model: str) -> tuple[Path, dict[str, str]]:
    from benchmarks.text_photos import sign_photo
    from indexer import IndexStore, build_index
    from indexer.fulltext import photo_texts
    from mme5 import load_embedder

    photos, labels = root / "photos", {}
    photos.mkdir(parents=True, exist_ok=True)
    for w, word in enumerate(words):
        for copy in range(per_word):
            path = photos / f"IMG_{w * per_word + copy:04d}.jpg"  # names say nothing: the sign does
            seed = 1000 + 37 * w + copy
            rng = random.Random(seed)
            labels[str(path)] = word
            if not path.exists():
                sign_photo(word, "latin", seed=seed, font_size=rng.randint(48, 72)).save(path, quality=90)
    embedder = load_embedder(model, device="cpu", verbose=False)
    build_index([photos], root / "index", embedder, show_progress=False)
    with IndexStore.open(root / "index") as store:
        read = sum(bool(text["ocr"]) for text in photo_texts(store.catalog, store.ids()).values())
    print(f"library: {len(labels)} sign photos, OCR read text in {read}", file=sys.stderr)
    return root / "index", labels


def adapt(index: Path, run: Path, server, args, seed: int, *extra: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "trainer",
        "adapt",
        "--index",
        str(index),
        "--out",
        str(run),
        "--base-url",
        server.url,
        "--model",
        "bench-vlm",
        "--api-key",
        "k",
        "--languages",
        "en",
        "--tasks",
        "retrieval:T->I",
        "--n",
        str(args.n),
        "--n-eval",
        str(args.n_eval),
        "--heldout",
        str(args.heldout),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--temperature",
        "0.05",
        "--no-gradient-checkpointing",
        "--save-every",
        "0",
        "--seed",
        str(seed),
        "--device",
        "cpu",
        "--no-progress",
        "--no-apply",
        *extra,
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"adapt failed:\n{result.stderr[-4000:]}")
    report = json.loads((run / "report.json").read_text())
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--words", type=int, default=16, help=f"sign words (at most {len(WORDS)}; default 16)")
    parser.add_argument("--per-word", type=int, default=4, help="photos per word (default 4)")
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Mllama built here)")
    parser.add_argument("--n", type=int, default=64, help="synthetic training samples (default 64)")
    parser.add_argument("--n-eval", type=int, default=24, help="held-out queries (default 24)")
    parser.add_argument("--heldout", type=float, default=0.3, help="share of photos held out (default 0.3)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", default="0", help="adapt seeds, comma-separated (default 0)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--work",
        metavar="DIR",
        help="keep the library, model and run folders in DIR (default: a temporary folder, removed); a library "
        "and tiny model already there are reused, so other training settings can be tried without indexing again",
    )
    args = parser.parse_args(argv)

    from tests.synth.synth_fake_openai import FakeOpenAI

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-adapt-text-"))
    try:
        model = args.model
        if model is None:
            from mme5.tiny import build_tiny

            if not (work / "tiny-mllama" / "config.json").exists():
                build_tiny(work / "tiny-mllama", backbone="mllama")
            model = str(work / "tiny-mllama")
        index, labels = make_library(work, WORDS[: args.words], args.per_word, model)
        results = []
        with FakeOpenAI(Generator(labels)) as server:
            for seed in (int(s) for s in args.seeds.split(",")):
                for name in (f"synthetic-{seed}", f"with-text-{seed}"):
                    shutil.rmtree(work / name, ignore_errors=True)  # runs of other settings: start afresh
                synthetic = adapt(index, work / f"synthetic-{seed}", server, args, seed)
                both = work / f"with-text-{seed}"
                both.mkdir()
                for name in ("split.json", "before.json"):
                    shutil.copy(work / f"synthetic-{seed}" / name, both / name)
                for name in ("heldout", "synth-train"):  # the very same queries and samples: nothing is called again
                    shutil.copytree(work / f"synthetic-{seed}" / name, both / name)
                with_text = adapt(index, both, server, args, seed, "--text-pairs")
                results.append({"seed": seed, "synthetic": synthetic, "with_text": with_text})
        rows = []
        for found in results:
            before = found["synthetic"]["before"]["overall"]
            for name, report in (("synthetic only", found["synthetic"]), ("synthetic + text", found["with_text"])):
                after = report["after"]["overall"]
                rows.append(
                    {
                        "seed": found["seed"],
                        "training": name,
                        "train_rows": report["synth"]["train"]["accepted"] + report["text_pairs"]["pairs"],
                        "text_pairs": report["text_pairs"]["pairs"],
                        "queries": after["queries"],
                        "before_r1": before["recall@1"],
                        "before_r10": before["recall@10"],
                        "after_r1": after["recall@1"],
                        "after_r10": after["recall@10"],
                        "after_mrr": after["mrr"],
                        "seconds": report["seconds"],
                    }
                )
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        print(f"library {len(labels)} sign photos ({args.words} words x {args.per_word}), {args.steps} steps, "
              f"batch {args.batch_size}, lr {args.lr}")  # fmt: skip
        print("| seed | training | rows | text pairs | held-out queries | R@1 before → after | R@10 before → after "
              "| MRR after | s |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['seed']} | {r['training']} | {r['train_rows']} | {r['text_pairs']} | {r['queries']} | "
                f"{r['before_r1']:.1f} → {r['after_r1']:.1f} | {r['before_r10']:.1f} → {r['after_r10']:.1f} | "
                f"{r['after_mrr']:.3f} | {r['seconds']:.0f} |"
            )
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
