"""Derive a model's similar-photo threshold (``python -m indexer similar``) from a photo library.

For each photo it makes edited copies (half-size resize, JPEG recompressed at quality 60, a 90 %
centre crop, 15 % brighter), embeds originals and copies with the model as the indexer does, and
compares two distributions of cosine similarity:
  near-duplicate pairs  (a photo and one of its edited copies)
  distinct pairs        (two different photos of the library)
The suggested threshold is a low percentile of the near-duplicate pairs (default the 1st: 99 % of
such copies are grouped), printed with the share of distinct pairs it would wrongly join. Put the
figure in the family's ``BackboneSpec.similar_threshold`` (mme5/registry.py). A library with real
bursts or look-alike shots makes the distinct side honest: random or synthetic photos separate
far more easily than a holiday's worth of beach pictures.

Examples:
  python -m benchmarks.calibrate_similar --photos ~/Pictures --model intfloat/mmE5-mllama-11b-instruct
  python -m benchmarks.calibrate_similar --photos ~/Pictures --model PATH --max-photos 300 --percentile 0.5 --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

EDITS = ("resize", "jpeg", "crop", "brightness")


def edited(image, kind: str):
    """One edited copy of a PIL image (what a phone or an editing app does to a photo)."""
    from PIL import Image, ImageEnhance

    if kind == "resize":
        return image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS)
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=60)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")
    if kind == "crop":
        dx, dy = image.width // 20, image.height // 20
        return image.crop((dx, dy, image.width - dx, image.height - dy))
    if kind == "brightness":
        return ImageEnhance.Brightness(image).enhance(1.15)
    raise ValueError(f"unknown edit {kind!r}; known: {', '.join(EDITS)}")


def library_photos(folder: Path, limit: int, seed: int) -> list[Path]:
    """Up to ``limit`` image files below ``folder``, a fixed random sample when there are more."""
    from indexer.files import is_image_name

    found = sorted(Path(root) / name for root, _, names in os.walk(folder) for name in names if is_image_name(name))
    if len(found) > limit:
        picked = np.random.default_rng(seed).choice(len(found), size=limit, replace=False)
        found = [found[i] for i in sorted(picked)]
    return found


def summary(scores: np.ndarray) -> dict:
    if scores.size == 0:
        return {"pairs": 0}
    quantiles = np.percentile(scores, [0, 1, 5, 50, 95, 100])
    return {
        "pairs": int(scores.size),
        **{name: round(float(value), 5) for name, value in zip(("min", "p1", "p5", "median", "p95", "max"), quantiles)},
    }


def calibrate(embedder, photos: list[Path], percentile: float, batch_size: int = 8, progress: bool = True) -> dict:
    """Similarities of near-duplicate and distinct pairs, and the threshold separating them."""
    from tqdm import tqdm

    from mme5.images import load_image

    originals, copies = [], {kind: [] for kind in EDITS}
    kept = []
    for path in tqdm(photos, desc="editing", unit="photo", disable=not progress, file=sys.stderr):
        try:
            image = load_image(str(path)).convert("RGB")
        except Exception as error:  # noqa: BLE001 - a broken file is skipped and named, never fatal
            print(f"skipped {path}: {error}", file=sys.stderr)
            continue
        kept.append(path)
        originals.append(image)
        for kind in EDITS:
            copies[kind].append(edited(image, kind))
    if len(kept) < 2:
        raise ValueError(f"need at least 2 readable photos, found {len(kept)}: point --photos at a photo folder")
    print(f"embedding {len(kept)} photos and {len(kept) * len(EDITS)} edited copies…", file=sys.stderr)
    base = embedder.encode_images(originals, batch_size=batch_size, show_progress_bar=progress)
    near = {
        kind: np.einsum(
            "ij,ij->i", base, embedder.encode_images(copies[kind], batch_size=batch_size, show_progress_bar=progress)
        )
        for kind in EDITS
    }
    gram = base @ base.T
    distinct = gram[np.triu_indices(len(kept), k=1)]
    all_near = np.concatenate(list(near.values()))
    # rounded down to 5 digits: the printed figure groups at least the share it reports
    threshold = round(float(np.floor(float(np.percentile(all_near, percentile)) * 1e5)) / 1e5, 5)
    return {
        "model": embedder.model_id,
        "family": embedder.family,
        "photos": len(kept),
        "percentile": percentile,
        "near_duplicate": summary(all_near),
        "by_edit": {kind: summary(scores) for kind, scores in near.items()},
        "distinct": summary(distinct),
        "threshold": threshold,
        "near_duplicates_grouped": round(float((all_near >= threshold).mean()), 4),
        "distinct_pairs_wrongly_grouped": round(float((distinct >= threshold).mean()), 6),
        "overlap": bool(distinct.size and distinct.max() >= all_near.min()),
    }


def report(result: dict) -> str:
    lines = [
        f"model {result['model']} ({result['family']}), {result['photos']} photos",
        f"{'pairs':<24}{'count':>7}{'min':>9}{'p1':>9}{'p5':>9}{'median':>9}{'p95':>9}{'max':>9}",
    ]

    def row(name, stats):
        if not stats.get("pairs"):
            return f"{name:<24}{0:>7}"
        return f"{name:<24}{stats['pairs']:>7}" + "".join(
            f"{stats[key]:>9.4f}" for key in ("min", "p1", "p5", "median", "p95", "max")
        )

    lines.append(row("near-duplicate (all)", result["near_duplicate"]))
    lines += [row(f"  {kind}", stats) for kind, stats in result["by_edit"].items()]
    lines.append(row("distinct photos", result["distinct"]))
    lines.append(
        f"threshold (p{result['percentile']:g} of near-duplicate pairs): {result['threshold']:.5f}  "
        f"groups {result['near_duplicates_grouped']:.1%} of edited copies, joins "
        f"{result['distinct_pairs_wrongly_grouped']:.3%} of distinct pairs"
    )
    if result["overlap"]:
        lines.append(
            "note: the distributions overlap: no threshold separates them completely (look at which edit "
            "scores lowest; a lower percentile trades missed copies for fewer false matches)"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibrate_similar",
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("Examples:\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--photos", type=Path, required=True, help="a folder of photos (searched recursively)")
    parser.add_argument("--model", required=True, help="model folder or hub id (the one the index is built with)")
    parser.add_argument("--device", default=None, help="cpu, cuda, … (default: the best available)")
    parser.add_argument("--max-photos", type=int, default=200, help="photos sampled from the folder (default 200)")
    parser.add_argument(
        "--percentile",
        type=float,
        default=1.0,
        help="percentile of near-duplicate similarities used as the threshold (default 1)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the photo sample")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if not 0 <= args.percentile <= 100:
        parser.error(f"--percentile must be between 0 and 100, got {args.percentile}")
    if args.max_photos < 2:
        parser.error(f"--max-photos must be at least 2, got {args.max_photos}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.photos.is_dir():
        print(f"error: --photos {args.photos} is not a folder", file=sys.stderr)
        return 1
    from mme5 import load_embedder

    photos = library_photos(args.photos, args.max_photos, args.seed)
    try:
        embedder = load_embedder(args.model, device=args.device)
        result = calibrate(embedder, photos, args.percentile, args.batch_size, progress=not args.quiet)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
