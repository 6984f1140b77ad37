"""Indexer throughput against its two floors: JPEG decoding alone and the model alone.

Builds (or reuses) a corpus of realistic camera-like JPEGs, then prints, on the same
files and cores:
  decode     images/s of draft-mode decoding in the indexer's worker threads
  model      images/s of the embedder on pre-decoded images
  indexer    images/s of build_index end to end (scan, hash, EXIF, decode, model, SQLite, FAISS;
             model loading excluded)
  efficiency indexer / (1 / (1/decode + 1/model)); on a CPU decoding and the model share the
             cores, so that harmonic rate is the ceiling (target >= 0.8). On a GPU, decoding runs
             beside the model, so indexer / model is printed too (target >= 0.95).
  rerun      seconds for a re-run over the same, unchanged files (nothing is read), and over
             --rerun-files hard links (default 10,000)

Examples:
  python -m benchmarks.bench_indexer --engine ray --ray-workers 1,2 --images 400   # local vs Ray, side by side
  python -m benchmarks.bench_indexer --full-size-siglip --engine ray --images 160 --export-dir /tmp/onnx  # a real-size model
  python -m benchmarks.bench_indexer                                # 1500 JPEGs, tiny Mllama, CPU
  python -m benchmarks.bench_indexer --images 5000 --size 4000x3000 --corpus /tmp/bench-corpus
  python -m benchmarks.bench_indexer --backbone siglip --batch-size 32
  python -m benchmarks.bench_indexer --full-size-mme5 --device cuda --batch-size 16 --images 2000
  python -m benchmarks.bench_indexer --full-size-mme5 --device cuda --memory-cap-gb 24 --images 64   # a 24 GB card
  python -m benchmarks.bench_indexer --full-size-siglip --images 200 --export-dir /tmp/onnx   # CPU: ONNX vs torch

On a GPU the batch size is lowered to what fits the free memory (mme5.gpu_memory), as the
indexer does; --memory-cap-gb caps this process's GPU memory (set_per_process_memory_fraction)
to check that the defaults fit a smaller card, and the peak GPU memory is printed.

--full-size-siglip builds mSigLIP-B/16-256's architecture (random weights) and measures each CPU path:
ONNX Runtime fp32, torch fp32 and torch bf16 (model alone, indexer end to end, one text query) on
the same files, beside the CPU's instruction sets, the path the loader picks on this CPU and the fp32
and bf16 matrix-product rates; it prints onnx_indexer_vs_onnx_model (target >= 0.8) and
onnx_indexer_vs_torch_indexer (target >= 1.8); the paths are measured round by round, interleaved, so
a shared machine's load hits all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mme5.threads import share_cores

os.environ.setdefault("HF_HUB_OFFLINE", "1")
share_cores()  # as `python -m indexer` does: decode threads share the cores


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=1500, help="corpus size (default 1500)")
    parser.add_argument("--size", default="1600x1200", help="JPEG size WxH (default 1600x1200)")
    parser.add_argument("--corpus", type=Path, help="corpus folder to create or reuse (default: a temp folder)")
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random model built here)")
    parser.add_argument("--backbone", choices=["mllama", "siglip"], default="mllama", help="tiny model type")
    parser.add_argument(
        "--full-size-mme5",
        action="store_true",
        help="random-weight Llama-3.2-11B-Vision architecture in bf16 (needs a big GPU)",
    )
    parser.add_argument(
        "--full-size-siglip",
        action="store_true",
        help="random-weight mSigLIP-B/16-256 on the CPU: ONNX Runtime (the default) vs torch",
    )
    parser.add_argument("--export-dir", type=Path, help="with --full-size-siglip: keep the ONNX export here for reuse")
    parser.add_argument(
        "--siglip-size",
        choices=["full", "tiny"],
        default="full",
        help="with --full-size-siglip: tiny runs the same code in seconds (a smoke test)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="with --full-size-siglip: interleaved rounds over parts of the corpus (default 4)",
    )
    parser.add_argument("--runtime", help="with --model: mme5 runtime (auto, torch, onnx, onnx-int8)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: as the indexer)")
    parser.add_argument("--model-images", type=int, default=256, help="pre-decoded images for the model-only rate")
    parser.add_argument("--torch-threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument(
        "--rerun-files",
        type=int,
        default=10000,
        help="also time a re-run over this many unchanged files (hard links; 0 = skip)",
    )
    parser.add_argument(
        "--memory-cap-gb",
        type=float,
        default=None,
        help="CUDA: cap this process's GPU memory to this many GB (10^9 bytes), e.g. 24",
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="ray: also build with --engine ray on a local Ray (or --ray-address) and print its rate "
        "beside the local engine's (overhead ratio; goal >= 0.9 on one machine)",
    )
    parser.add_argument("--ray-address", help="Ray cluster to use with --engine ray (default: start one here)")
    parser.add_argument(
        "--ray-workers",
        default="1",
        help="embedding workers to try with --engine ray, e.g. 1,2,4 on a machine with 4 GPUs "
        "(prints the rate per added worker)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return parser.parse_args(argv)


def make_corpus(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """Camera-like JPEGs: smooth scenes plus sensor noise, EXIF with capture time and camera."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i // 500:03d}" / f"IMG_{i:05d}.jpg" for i in range(count)]
    todo = [(i, path) for i, path in enumerate(paths) if not path.exists()]
    if not todo:
        return paths

    def write(item):
        i, path = item
        rng = np.random.default_rng(i)
        base = rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC)
        noise = rng.normal(0, 6, (height, width, 3))
        pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R6"
        exif.get_ifd(0x8769)[0x9003] = f"2023:0{1 + i % 9}:1{i % 10} 12:{i % 60:02d}:00"
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        Image.fromarray(pixels).save(temp, "JPEG", quality=88, exif=exif)
        os.replace(temp, path)

    print(f"bench: writing {len(todo)} JPEGs of {width}x{height} to {folder}", file=sys.stderr)
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, todo))
    return paths


def load_model(args, temp: Path):
    from mme5 import load_embedder

    if args.full_size_mme5:
        from mme5.tiny import random_mme5_embedder

        return random_mme5_embedder("full", args.device or "cuda")
    if args.full_size_siglip and args.engine == "ray":  # Ray's workers load the model from a folder
        from mme5.tiny import save_random_siglip

        folder = save_random_siglip(
            Path(args.export_dir or temp) / f"siglip-{args.siglip_size}-random", args.siglip_size
        )
        return load_embedder(str(folder), device="cpu", runtime=args.runtime)
    if args.full_size_siglip:
        from mme5.tiny import random_siglip_embedders

        embedders = random_siglip_embedders(
            args.siglip_size, ("onnx", "torch", "torch-bf16"), export_dir=args.export_dir or temp / "onnx"
        )
        args.torch_embedder = embedders["torch"]
        args.bf16_embedder = embedders["torch-bf16"]
        return embedders["onnx"]
    if args.model:
        return load_embedder(args.model, device=args.device, runtime=args.runtime)
    from mme5.tiny import build_tiny

    return load_embedder(
        str(build_tiny(temp / f"tiny-{args.backbone}", backbone=args.backbone)), device=args.device or "cpu"
    )


def decode_rate(paths, draft: int, workers: int) -> float:
    from mme5.images import load_image

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda path: load_image(path, draft_size=draft).size, paths):
            pass
    return len(paths) / (time.perf_counter() - started)


def model_rate(embedder, paths, batch_size: int) -> float:
    from mme5.gpu_memory import fit_batch_size
    from mme5.images import load_image

    batch_size = fit_batch_size(embedder, batch_size, verbose=False)  # what the indexer will use

    images = [load_image(path, draft_size=embedder.backbone.image_draft_size) for path in paths]
    embedder.encode_images(images[: 2 * batch_size], batch_size=batch_size)  # warm-up
    synchronize(embedder)
    started = time.perf_counter()
    embedder.encode_images(images, batch_size=batch_size)
    synchronize(embedder)
    return len(images) / (time.perf_counter() - started)


def rerun_many(corpus: Path, paths, count: int, temp: Path, embedder) -> float:
    """Seconds for a re-run over ``count`` unchanged files (hard links to the corpus: one embedding each)."""
    from indexer import build_index

    folder = temp / "many"
    for i in range(count):
        link = folder / f"{i // 1000:03d}" / f"link_{i:06d}.jpg"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(paths[i % len(paths)], link)
    build_index([folder], temp / "many-index", embedder, show_progress=False)
    return build_index([folder], temp / "many-index", embedder, show_progress=False).seconds


def compare_runtimes(args, paths, temp: Path, onnx, torch_embedder, workers: int, load_seconds: float) -> int:
    """Each CPU path (ONNX fp32, torch fp32, torch bf16): indexer end to end and model-only, interleaved round
    by round, plus one text query end to end; beside them the CPU's instruction sets, the path the loader
    picks on this CPU (mme5.loading.choose_runtime_and_dtype) and the fp32 and bf16 matrix-product rates.

    The corpus is split into ``--rounds`` parts; each round measures every path on its part, in an
    order that alternates between rounds, so load from other processes on a shared machine
    falls on every figure alike instead of on whichever ran last.
    """
    import numpy as np
    import torch

    from indexer import build_index
    from mme5 import registry
    from mme5.cpu_features import detect
    from mme5.images import load_image
    from mme5.loading import choose_runtime_and_dtype

    cpu = detect()
    print(f"bench: CPU instruction sets: {cpu.summary()}", file=sys.stderr, flush=True)
    steps = [("onnx", onnx), ("torch", torch_embedder), ("torch_bf16", args.bf16_embedder)]
    rounds = max(1, min(args.rounds, len(paths)))
    totals = {f"{name}_{what}": [0, 0.0] for name, _ in steps for what in ("model", "indexer")}
    queries: dict[str, list[float]] = {name: [] for name, _ in steps}
    draft = onnx.backbone.image_draft_size
    decode = decode_rate(paths, draft, workers)
    for _, embedder in steps:  # warm-up outside the clock
        embedder.encode_images(
            [load_image(path, draft_size=draft) for path in paths[: args.batch_size]], batch_size=args.batch_size
        )
        embedder.encode_texts([QUERIES[0]])
    for number in range(rounds):
        part = paths[number::rounds]
        folder = temp / "rounds" / f"{number:02d}"
        for i, path in enumerate(part):
            folder.mkdir(parents=True, exist_ok=True)
            os.link(path, folder / f"{i:05d}.jpg")
        images = [load_image(path, draft_size=draft) for path in part]
        for name, embedder in steps if number % 2 == 0 else steps[::-1]:
            started = time.perf_counter()
            embedder.encode_images(images, batch_size=args.batch_size)
            totals[f"{name}_model"][0] += len(images)
            totals[f"{name}_model"][1] += time.perf_counter() - started
            summary = build_index(
                [folder],
                temp / f"index-{name}",
                embedder,
                batch_size=args.batch_size,
                show_progress=False,
                workers=workers,
            )
            totals[f"{name}_indexer"][0] += summary.processed
            totals[f"{name}_indexer"][1] += summary.seconds
            for query in QUERIES:  # one text query, end to end (tokenise, encode, normalise), model loaded
                started = time.perf_counter()
                embedder.encode_texts([query])
                queries[name].append(time.perf_counter() - started)
        rates = {key: count / seconds for key, (count, seconds) in totals.items()}
        print(
            f"bench: round {number + 1}/{rounds}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in rates.items())
            + " images/s so far",
            file=sys.stderr,
            flush=True,
        )
    ceiling = fp32_ceiling(torch_embedder, images[0])
    runtime, dtype = choose_runtime_and_dtype(registry.by_family("dual"), None, None, torch.device("cpu"), cpu=cpu)
    chosen = f"{runtime}_{'bf16' if dtype == torch.bfloat16 else 'fp32'}"
    figures = {
        "images": len(paths),
        "size": args.size,
        "model": onnx.model_id,
        "cpu_instruction_sets": cpu.summary(),
        "chosen_path": chosen.replace("torch_fp32", "torch").replace("onnx_fp32", "onnx"),
        "batch_size": args.batch_size,
        "workers": workers,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "rounds": rounds,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "model_load_s": round(load_seconds, 1),
        "decode_img_s": round(decode, 1),
        **{f"{key}_img_s": round(rate, 2) for key, rate in rates.items()},
        **{f"{name}_text_query_p50_ms": round(1000 * float(np.median(times)), 1) for name, times in queries.items()},
        "onnx_indexer_vs_onnx_model": round(rates["onnx_indexer"] / rates["onnx_model"], 3),
        "onnx_indexer_vs_torch_indexer": round(rates["onnx_indexer"] / rates["torch_indexer"], 3),
        "onnx_model_vs_torch_model": round(rates["onnx_model"] / rates["torch_model"], 3),
        "torch_bf16_model_vs_onnx_model": round(rates["torch_bf16_model"] / rates["onnx_model"], 3),
        "torch_bf16_indexer_vs_onnx_indexer": round(rates["torch_bf16_indexer"] / rates["onnx_indexer"], 3),
        "model_gflop_per_image": round(ceiling["gflop"], 2),
        "cpu_fp32_matmul_gflop_s": round(ceiling["peak"], 1),
        "cpu_bf16_matmul_gflop_s": round(ceiling["peak_bf16"], 1),
        **{
            f"{name}_model_gflop_s": round(rates[f"{name}_model"] * ceiling["gflop"], 1)
            for name in ("onnx", "torch", "torch_bf16")
        },
        "fp32_ceiling_vs_torch_model": round(ceiling["peak"] / (rates["torch_model"] * ceiling["gflop"]), 2),
    }
    print_figures(figures, args.json)
    return 0


QUERIES = ("a dog on the beach at sunset", "zwei Katzen schlafen auf dem Sofa", "un vélo rouge contre un mur")


def fp32_ceiling(torch_embedder, image) -> dict:
    """What fp32 can gain on this CPU at most: the model's GFLOP per image (counted by torch) and the
    GFLOP/s of a large fp32 matrix product (the model's main operation) on the same threads, and of the
    same product in bf16 (``peak_bf16``). A runtime already near the fp32 rate cannot go much faster without
    fewer bits (bf16 where the CPU multiplies it faster, int8)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        torch_embedder.encode_images([image], batch_size=1)
    rates = {}
    for key, dtype in (("peak", torch.float32), ("peak_bf16", torch.bfloat16)):
        # a ViT-B MLP product over 8 images' tokens
        left, right = torch.randn(2048, 768).to(dtype), torch.randn(768, 3072).to(dtype)
        for _ in range(3):
            left @ right
        repeats, started = 20, time.perf_counter()
        for _ in range(repeats):
            left @ right
        rates[key] = 2 * 2048 * 768 * 3072 * repeats / (time.perf_counter() - started) / 1e9
    return {"gflop": counter.get_total_flops() / 1e9, **rates}


def print_figures(figures: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")


def synchronize(embedder) -> None:
    import torch

    if embedder.device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    args = parse_args(argv)
    width, height = (int(value) for value in args.size.lower().split("x"))
    from indexer import build_index

    workers = args.workers or min(8, os.cpu_count() or 1)
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    temp = Path(tempfile.mkdtemp(prefix="bench-indexer-"))
    try:
        corpus = args.corpus or temp / "corpus"
        paths = make_corpus(corpus, args.images, width, height)
        cap = None
        if args.memory_cap_gb:
            device = torch.device(args.device or "cuda")
            if device.type != "cuda":
                raise SystemExit("--memory-cap-gb needs a CUDA device")
            total = torch.cuda.get_device_properties(device).total_memory
            cap = min(1.0, args.memory_cap_gb * 1e9 / total)
            torch.cuda.set_per_process_memory_fraction(cap, device)
            print(
                f"bench: GPU memory of this process capped to {args.memory_cap_gb:g} GB "
                f"({cap:.3f} of {total / 1e9:.0f} GB)",
                file=sys.stderr,
            )
        started = time.perf_counter()
        embedder = load_model(args, temp)
        load_seconds = time.perf_counter() - started
        if args.full_size_siglip and args.engine != "ray":
            return compare_runtimes(args, paths, temp, embedder, args.torch_embedder, workers, load_seconds)
        from mme5.gpu_memory import fit_batch_size

        used = fit_batch_size(embedder, args.batch_size, verbose=False)  # what the indexer will pick
        draft = embedder.backbone.image_draft_size
        decode = decode_rate(paths, draft, workers)  # also warms the page cache for everything after
        model = model_rate(embedder, paths[: args.model_images], args.batch_size)
        summary = build_index(
            [corpus], temp / "index", embedder, batch_size=args.batch_size, show_progress=True, workers=workers
        )
        indexer = summary.processed / summary.seconds
        rerun = build_index([corpus], temp / "index", embedder, batch_size=args.batch_size, show_progress=False)
        floor = 1 / (1 / decode + 1 / model)

        gpu = {}
        if embedder.device.type == "cuda":
            gpu = {
                "gpu": torch.cuda.get_device_name(embedder.device),
                "memory_cap_gb": args.memory_cap_gb,
                "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated(embedder.device) / 2**30, 2),
            }
        fast = getattr(embedder.backbone, "fast_attention", None)
        many = rerun_many(corpus, paths, args.rerun_files, temp, embedder) if args.rerun_files else None
        figures = {
            "images": len(paths),
            "size": f"{width}x{height}",
            "model": embedder.model_id,
            "device": str(embedder.device),
            "batch_size": args.batch_size,
            "batch_size_used": used,
            "fast_attention": fast,
            **gpu,
            "workers": workers,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "model_load_s": round(load_seconds, 2),
            "decode_img_s": round(decode, 1),
            "model_img_s": round(model, 2),
            "indexer_img_s": round(indexer, 2),
            "cpu_floor_img_s": round(floor, 1),
            "efficiency": round(indexer / floor, 3),
            "efficiency_vs_model": round(indexer / model, 3),
            "rerun_unchanged_s": round(rerun.seconds, 2),
            "errors": len(summary.errors),
            **({"rerun_files": args.rerun_files, "rerun_many_unchanged_s": round(many, 2)} if many is not None else {}),
        }
        if args.engine == "ray":
            figures.update(ray_rates(args, corpus, temp, embedder, indexer))
        print_figures(figures, args.json)
        return 0
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def ray_rates(args, corpus: Path, temp: Path, embedder, local_rate: float) -> dict:
    """The same corpus through ``--engine ray`` with 1, 2, ... embedding workers (fresh index each time).

    Each Ray build starts its workers (a Python process each: imports, model load), which the local
    figure leaves out (its model is loaded before the clock starts). So each count also builds one
    batch of photos alone first: its time is the start-up, and the rest of the full build's time gives
    the steady rate, the figure that decides a long build."""
    from indexer import build_index
    from indexer.ray_engine import RayOptions, start_ray

    figures = {}
    start_ray(RayOptions(address=args.ray_address))
    files = sorted(path for path in corpus.rglob("*.jpg"))
    one_batch = temp / "ray-one-batch"
    one_batch.mkdir(exist_ok=True)
    for path in files[: args.batch_size]:
        target = one_batch / path.name
        if not target.exists():
            os.link(path, target)
    for count in (int(n) for n in args.ray_workers.split(",")):
        options = RayOptions(address=args.ray_address, workers=count)
        startup = build_index(
            [one_batch],
            temp / f"index-ray-{count}-start",
            embedder,
            batch_size=args.batch_size,
            show_progress=False,
            engine="ray",
            ray_options=options,
        ).seconds
        summary = build_index(
            [corpus],
            temp / f"index-ray-{count}",
            embedder,
            batch_size=args.batch_size,
            show_progress=True,
            engine="ray",
            ray_options=options,
        )
        rate = summary.processed / summary.seconds
        steady = (summary.processed - args.batch_size) / max(1e-9, summary.seconds - startup)
        figures[f"ray_{count}w_img_s"] = round(rate, 2)
        figures[f"ray_{count}w_vs_local"] = round(rate / local_rate, 3)
        figures[f"ray_{count}w_startup_s"] = round(startup, 1)
        figures[f"ray_{count}w_steady_img_s"] = round(steady, 2)
        figures[f"ray_{count}w_steady_vs_local"] = round(steady / local_rate, 3)
        figures[f"ray_{count}w_per_worker_img_s"] = round(rate / count, 2)
    return figures


if __name__ == "__main__":
    sys.exit(main())
