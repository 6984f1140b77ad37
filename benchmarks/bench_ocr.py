"""Text in photos: recall@1/@10 per script with the text signal fused vs vector-only, false matches, text-pass speed.

A corpus of sign photos (benchmarks/text_photos.py: a plaque with a planted word on a textured, photo-like
background; --per-script of each script) and --distractors photos without text is indexed with OCR on. Each
sign's word is then searched for as a user would type it:
  fused        SearchEngine.search_text (the app: text hits fused with the vector ranking)
  vector_only  the same query vector ranked without the text signal (what search was before)
and recall@1 / recall@10 is the share of queries whose sign is first / in the top 10, per script.
  false_matches_per_query   text hits that are not the sign the word was planted on
  no_text_photos_with_text  distractors OCR read any text from (a detection false positive that recognition
                            did not reject)
  text_pass_img_s           photos per second through the text pass (words + detection + recognition)
  detect_img_s              photos per second through the detection pass alone (what a photo without text costs)
With the tiny random model (the default) vector-only recall is chance: the text signal is what is measured.

--cost-photos N measures what OCR costs instead: for each --text-share, N photos of which that share carry a sign
(the words of --scripts in turn, each photo its own background) are indexed with OCR on and with OCR off, and
  text_pass_s_per_1000      seconds of the text pass (words + detection + recognition) per 1,000 photos
  build_s_per_1000_ocr_on / _ocr_off   the whole build per 1,000 photos with and without OCR
are reported (on this machine's CPUs; the embedding model is the tiny one unless --model says otherwise).

Examples:
  python -m benchmarks.bench_ocr                                              # 8 signs per script, 40 distractors
  python -m benchmarks.bench_ocr --per-script 2 --distractors 4 --scripts latin,cyrillic --json
  python -m benchmarks.bench_ocr --model ./models/siglip --per-script 8       # with a real model
  python -m benchmarks.bench_ocr --cost-photos 1000 --text-share 0.1,1.0      # OCR cost per 1,000 photos
  python -m benchmarks.bench_ocr --page                                       # Tesseract's own speed, one page

--page measures Tesseract as its project publishes its speed (a whole page of text, one language): an A4 page at
300 dpi (2480 x 3508 px, 60 lines of English) read with ``tesseract page.png stdout -l eng``, one thread
(OMP_THREAD_LIMIT=1) and Tesseract's own threading, median of 3; and beside it what one sign photo costs here
(prepare: detection and crop, then read_page: one --psm 11 pass per installed script, one thread each).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = {
    "latin": ["CAFÉ CENTRAL", "BAKERY", "PHARMACY", "MUSEUM", "STATION", "HARBOUR", "LIBRARY", "THEATER"],
    "cyrillic": ["КАФЕ", "АПТЕКА", "МУЗЕЙ", "ВОКЗАЛ", "ТЕАТР", "БАНК", "ПОЧТА", "РЫНОК"],
    "cjk": ["東京駅", "大阪城", "図書館", "美術館", "郵便局", "銀行", "病院", "公園"],
    "arabic": ["مقهى", "صيدلية", "متحف", "مكتبة", "مسرح", "بنك", "بريد", "سوق"],
    "devanagari": ["बाज़ार", "डाकघर", "पुस्तकालय", "संग्रहालय", "रंगमंच", "बैंक", "अस्पताल", "उद्यान"],
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scripts", default=",".join(WORDS), help=f"scripts to plant (default {','.join(WORDS)})")
    parser.add_argument("--per-script", type=int, default=8, help="sign photos per script (at most 8; default 8)")
    parser.add_argument("--distractors", type=int, default=40, help="photos without text (default 40)")
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Mllama built here)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--cost-photos",
        type=int,
        default=0,
        metavar="N",
        help="measure the OCR cost on N photos per --text-share instead of recall",
    )
    parser.add_argument(
        "--text-share", default="0.1,1.0", help="shares of --cost-photos photos that carry text (default 0.1,1.0)"
    )
    parser.add_argument("--page", action="store_true", help="Tesseract's speed on a full page vs one sign photo")
    args = parser.parse_args(argv)
    try:
        args.shares = [float(share) for share in args.text_share.split(",")]
    except ValueError:
        parser.error(f"--text-share takes numbers between 0 and 1 separated by commas, not {args.text_share!r}")
    if not all(0 <= share <= 1 for share in args.shares) or args.cost_photos < 0:
        parser.error("--text-share takes numbers between 0 and 1; --cost-photos a count of photos")
    unknown = set(args.scripts.split(",")) - set(WORDS)
    if unknown:
        parser.error(f"unknown scripts {sorted(unknown)}; choose from {', '.join(WORDS)}")
    if not 1 <= args.per_script <= 8:
        parser.error("--per-script must be between 1 and 8")
    return args


def make_corpus(folder: Path, scripts: list[str], per_script: int, distractors: int) -> dict[str, list]:
    """The photos; returns script -> [(relpath, word)]."""
    from benchmarks.text_photos import sign_photo, texture

    planted: dict[str, list] = {}
    for s, script in enumerate(scripts):
        for i, word in enumerate(WORDS[script][:per_script]):
            relpath = f"{script}/{i:04d}.jpg"  # names say nothing: only the pixels hold the word
            (folder / script).mkdir(parents=True, exist_ok=True)
            sign_photo(word, script, seed=100 * s + i).save(folder / relpath, quality=90)
            planted.setdefault(script, []).append((relpath, word))
    (folder / "plain").mkdir(parents=True, exist_ok=True)
    for i in range(distractors):
        texture((640, 420), seed=10_000 + i).save(folder / "plain" / f"{i:04d}.jpg", quality=90)
    return planted


def measure_cost(args, work: Path, model: str) -> dict:
    """Text-pass and build seconds per 1,000 photos at each text share, OCR on and off (see the module doc)."""
    from benchmarks.text_photos import sign_photo, texture
    from indexer import build_index
    from mme5 import load_embedder

    scripts = args.scripts.split(",")
    words = [(script, word) for i in range(8) for script in scripts for word in WORDS[script][i : i + 1]]
    embedder = load_embedder(model, device=args.device, verbose=False)
    figures: dict = {"photos": args.cost_photos, "shares": {}}
    for share in args.shares:
        folder = work / f"cost-{share:g}"
        signs = round(args.cost_photos * share)
        for i in range(args.cost_photos):  # signs spread through the folder, as photos with text are
            folder.joinpath(f"{i // 100:02d}").mkdir(parents=True, exist_ok=True)
            with_text = signs and i * signs // args.cost_photos != (i + 1) * signs // args.cost_photos
            script, word = words[i % len(words)]
            image = sign_photo(word, script, seed=20_000 + i) if with_text else texture((640, 420), seed=20_000 + i)
            image.save(folder / f"{i // 100:02d}" / f"{i:05d}.jpg", quality=90)
        row: dict = {"text_photos": signs}
        for ocr in ("off", "on"):
            started = time.perf_counter()
            summary = build_index([folder], work / f"index-{share:g}-{ocr}", embedder, show_progress=False, ocr=ocr)
            seconds = time.perf_counter() - started
            row[f"build_s_per_1000_ocr_{ocr}"] = round(seconds * 1000 / args.cost_photos, 1)
            if ocr == "on":
                row["text_pass_s_per_1000"] = round(summary.text["seconds"] * 1000 / args.cost_photos, 1)
                row["ocr_with_text"] = summary.text["ocr_with_text"]
                row["ocr_errors"] = summary.text["error_count"]
                figures["ocr"] = summary.text["ocr"]
        figures["shares"][f"{share:g}"] = row
    return figures


def measure(args, work: Path, model: str) -> dict:
    from PIL import Image

    from indexer import IndexStore, build_index
    from indexer.ocr import text_regions
    from mme5 import load_embedder
    from search_app.engine import SearchEngine, SearchOptions

    scripts = args.scripts.split(",")
    folder = work / "photos"
    planted = make_corpus(folder, scripts, args.per_script, args.distractors)
    embedder = load_embedder(model, device=args.device, verbose=False)
    summary = build_index([folder], work / "index", embedder, show_progress=False, ocr="on")
    text = summary.text
    plain = sorted((folder / "plain").glob("*.jpg"))
    started = time.perf_counter()
    for path in plain:
        with Image.open(path) as image:
            text_regions(image.convert("L"))
    detect_seconds = time.perf_counter() - started
    engine = SearchEngine(IndexStore.open(work / "index"), embedder)
    figures: dict = {
        "scripts": {},
        "ocr": text["ocr"],
        "photos": summary.images,
        "text_pass_img_s": round(text["ocr_read"] / text["seconds"], 3) if text["seconds"] else None,
        "detect_img_s": round(len(plain) / detect_seconds, 1) if plain and detect_seconds else None,
    }
    false_matches = queries = 0
    try:
        for script, signs in planted.items():
            counts = {"fused@1": 0, "fused@10": 0, "vector@1": 0, "vector@10": 0}
            for relpath, word in signs:
                fused = [r.relpath for r in engine.search_text(word.lower(), k=10).results]
                vector = [
                    r.relpath
                    for r in engine.rank(engine.encode_query(text=word.lower()), SearchOptions.parse(k=10)).results
                ]
                counts["fused@1"] += fused[:1] == [relpath]
                counts["fused@10"] += relpath in fused
                counts["vector@1"] += vector[:1] == [relpath]
                counts["vector@10"] += relpath in vector
                hits = [r for r in engine.search_text(word.lower(), k=50).results if r.text_match is not None]
                false_matches += sum(r.relpath != relpath for r in hits)
                queries += 1
            figures["scripts"][script] = {
                "queries": len(signs),
                "recall@1_fused": round(counts["fused@1"] / len(signs), 3),
                "recall@10_fused": round(counts["fused@10"] / len(signs), 3),
                "recall@1_vector_only": round(counts["vector@1"] / len(signs), 3),
                "recall@10_vector_only": round(counts["vector@10"] / len(signs), 3),
            }
        with engine.store.catalog.engine.connect() as connection:
            with_text = connection.exec_driver_sql(
                "SELECT count(*) FROM images i JOIN ocr_text o ON o.content_hash = i.content_hash "
                "WHERE o.text != '' AND CAST(i.relpath AS TEXT) LIKE 'plain/%'"
            ).scalar()
    finally:
        engine.close()
    figures["false_matches_per_query"] = round(false_matches / max(queries, 1), 3)
    figures["no_text_photos_with_text"] = round(with_text / len(plain), 3) if plain else None
    figures["ocr_errors"] = text["error_count"]
    return figures


def measure_page(work: Path) -> dict:
    """Seconds for one full page (one language) and for one sign photo as the build reads it (see the doc)."""
    import resource
    import statistics
    import subprocess

    from PIL import Image, ImageDraw, ImageFont

    from benchmarks.text_photos import font_for, sign_photo
    from indexer.ocr import engine_for, prepare, read_page

    engine = engine_for("on")
    page = Image.new("L", (2480, 3508), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(font_for("latin")).replace("-Bold", ""), 42)  # about 10 pt at 300 dpi
    words = "the quick brown fox jumps over a lazy dog while search finds photos by their text".split()
    for line in range(60):
        text = " ".join(words[(line * 7 + i) % len(words)] for i in range(13))
        draw.text((200, 200 + line * 52), text, font=font, fill=0)
    page.save(work / "page.png")

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def timed(run) -> tuple[float, float]:
        """Median wall seconds and median CPU seconds (Tesseract's processes: what load on the machine does not
        inflate) of 3 runs."""
        walls, cpus = [], []
        for _ in range(3):
            started, cpu = time.perf_counter(), children_cpu()
            run()
            walls.append(time.perf_counter() - started)
            cpus.append(children_cpu() - cpu)
        return round(statistics.median(walls), 2), round(statistics.median(cpus), 2)

    command = [engine.binary, str(work / "page.png"), "stdout", "-l", "eng"]
    single = dict(os.environ, OMP_THREAD_LIMIT="1")
    threaded = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
    page_single = timed(lambda: subprocess.run(command, env=single, capture_output=True, check=True))
    page_threaded = timed(lambda: subprocess.run(command, env=threaded, capture_output=True, check=True))
    sign_photo("CAFÉ CENTRAL", "latin", seed=1).save(work / "sign.jpg", quality=90)

    def sign() -> None:
        prepared = prepare(str(work / "sign.jpg"), str(work / "sign-page.png"))
        if isinstance(prepared, str):
            read_page(engine, prepared)

    photo = timed(sign)
    return {
        "ocr": engine.describe(),
        "page_wall_s_one_thread": page_single[0],
        "page_cpu_s_one_thread": page_single[1],
        "page_wall_s_threaded": page_threaded[0],
        "page_cpu_s_threaded": page_threaded[1],
        "sign_photo_wall_s": photo[0],
        "sign_photo_tesseract_cpu_s": photo[1],
        "passes_per_photo": len(engine.passes),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.page:
        work = Path(tempfile.mkdtemp(prefix="bench-ocr-page-"))
        try:
            figures = measure_page(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
        return 0
    from benchmarks.bench_search import stdout_to_stderr
    from mme5.tiny import build_tiny

    work = Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    try:
        with stdout_to_stderr():
            model = args.model or str(build_tiny(work / "tiny-mllama", backbone="mllama"))
            figures = (measure_cost if args.cost_photos else measure)(args, work, model)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
        return 0
    if args.cost_photos:
        print(f"{figures['ocr']}\n{figures['photos']} photos per share; seconds per 1,000 photos:")
        print(f"{'text share':<12}{'text pass':>10}{'build, OCR on':>15}{'build, OCR off':>16}")
        for share, row in figures["shares"].items():
            print(
                f"{share:<12}{row['text_pass_s_per_1000']:>10}{row['build_s_per_1000_ocr_on']:>15}"
                f"{row['build_s_per_1000_ocr_off']:>16}"
            )
        return 0
    print(
        f"{figures['ocr']}\n{figures['photos']} photos; text pass {figures['text_pass_img_s']} img/s, detection "
        f"alone {figures['detect_img_s']} img/s; {figures['ocr_errors']} OCR errors"
    )
    print(f"{'script':<12}{'R@1 fused':>10}{'R@10 fused':>11}{'R@1 vector':>11}{'R@10 vector':>12}")
    for script, row in figures["scripts"].items():
        print(
            f"{script:<12}{row['recall@1_fused']:>10}{row['recall@10_fused']:>11}{row['recall@1_vector_only']:>11}"
            f"{row['recall@10_vector_only']:>12}"
        )
    print(
        f"false text matches per query: {figures['false_matches_per_query']}; photos without text that OCR read "
        f"text from: {figures['no_text_photos_with_text']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
