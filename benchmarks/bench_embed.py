"""Images/s and texts/s of mme5's encoders, for any model on any device.

Examples:
  python -m benchmarks.bench_embed --model models/tiny                       # tiny model on CPU
  python -m benchmarks.bench_embed --full-size-mme5 --batch-sizes 8 16 32 --baseline   # on a CUDA GPU
  python -m benchmarks.bench_embed --full-size-mme5 --batch-sizes 8 --compare-tiles 1 2 4 \
      --peak-batches 1 2 4 8 --queries 50                                    # the fast-path report (GPU)
  python -m benchmarks.bench_embed --model google/siglip-base-patch16-256-multilingual --device cpu
  python -m benchmarks.bench_embed --full-size-siglip --images 64 --texts 128 --batch-sizes 8   # CPU runtimes

--full-size-siglip builds google/siglip-base-patch16-256-multilingual's architecture (371M
parameters, random weights) and prints torch vs ONNX Runtime fp32 vs ONNX Runtime int8
side by side, with the int8 ranking's agreement with fp32 (recall@10 of the fp32 top 10).
--full-size-mme5 builds the 10.6B-parameter Llama-3.2-11B-Vision architecture with random
weights (speed does not depend on the weights). --baseline also times the plain
transformers forward the reference code uses (full model with LM head and all hidden
states), at the same batch size and inputs.

For Mllama, --compare-tiles (default 1 2 4) prints, per tile count, on the same photos: the
plain transformers forward (stock masked vision attention), mme5 with the stock attention,
and mme5's path (exact mask-free vision attention, mme5.fast_attention): images/s, peak GPU
memory, and max |Δ| / min cosine of its vectors against the plain forward's.
--peak-batches prints the peak GPU memory of mme5's path at those batch sizes (4-tile photos).
--queries times one-text queries eager vs compiled (mme5.query_compile; eager on a CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from PIL import Image


from benchmarks._models import load_for_benchmark


def photos(count: int, width: int, height: int, seed: int = 0) -> list[Image.Image]:
    """Smooth random images (photo-like statistics; decoding is not part of this benchmark)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        small = rng.integers(0, 255, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        images.append(Image.fromarray(small).resize((width, height), Image.BILINEAR))
    return images


def captions(count: int, seed: int = 0) -> list[str]:
    words = "a dog cat red blue beach night city mountain river child bicycle under over near old new".split()
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=rng.integers(5, 20))) for _ in range(count)]


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(function, device, repeats: int = 1) -> float:
    function()  # warm-up (kernels, allocator)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    synchronize(device)
    return (time.perf_counter() - started) / repeats


def baseline_forward(embedder, images, batch_size, out: list | None = None):
    """The reference's way: full model forward with output_hidden_states, then hidden_states[-1].

    Runs with the stock (masked) vision attention whatever the embedder is set to; vectors go to ``out``.
    """
    backbone = embedder.backbone
    from mme5 import EmbedInput, prompts

    def run():
        vectors = []
        fast = getattr(backbone, "fast_attention", False)
        if fast:
            backbone.fast_attention = False
        try:
            with torch.inference_mode():
                for start in range(0, len(images), batch_size):
                    items = [
                        EmbedInput(text=prompts.image_document(), image=image)
                        for image in images[start : start + batch_size]
                    ]
                    tensors = backbone.to_device(backbone.collate(items).tensors)
                    output = backbone.model(**tensors, output_hidden_states=True, return_dict=True)
                    hidden = output.hidden_states[-1]
                    last = tensors["attention_mask"].sum(1) - 1
                    vectors.append(
                        torch.nn.functional.normalize(hidden[torch.arange(hidden.shape[0]), last].float(), dim=-1).cpu()
                    )
        finally:
            if fast:
                backbone.fast_attention = True
        if out is not None:
            out[:] = [torch.cat(vectors).numpy()]

    return run


def recall_at_10(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean share of each query's top 10 under ``reference`` scores that ``candidate`` scores also rank top 10."""
    k = min(10, reference.shape[1])
    top = lambda scores: np.argsort(-scores, axis=1)[:, :k]  # noqa: E731
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top(reference), top(candidate))]))


def _without_self(scores: np.ndarray) -> np.ndarray:
    scores = scores.copy()
    np.fill_diagonal(scores, -np.inf)  # an image is trivially its own nearest neighbour
    return scores


def siglip_runtimes(args) -> int:
    """Full-size SigLIP on the CPU: each runtime on the same inputs, measured in turn, printed side by side."""
    import tempfile

    from mme5.tiny import random_siglip_embedders

    runtimes = ["torch", "onnx"] + ([] if args.no_int8 else ["onnx-int8"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as temp:
        embedders = random_siglip_embedders(args.siglip_size, runtimes, export_dir=args.export_dir or temp)
        print(
            f"mSigLIP-B/16-256 architecture ({args.siglip_size} size, random weights) on CPU ({os.cpu_count()} cores, torch threads "
            f"{torch.get_num_threads()}); build + export {time.perf_counter() - started:.0f}s; torch {torch.__version__}",
            flush=True,
        )
        width, height = (int(value) for value in args.image_size.split("x"))
        images, texts = photos(args.images, width, height), captions(args.texts)
        print(f"load average (1 min) at start {os.getloadavg()[0]:.1f}", flush=True)
        vectors = {}
        print(f"{'runtime':<10} {'batch':>5} {'images/s':>9} {'text queries/s':>15}", flush=True)
        for batch_size in args.batch_sizes:
            for embedder in embedders.values():  # warm-up outside the clock
                embedder.encode_images(images[:batch_size], batch_size=batch_size)
                embedder.encode_text_queries(texts[:batch_size], batch_size=batch_size)
            seconds = {runtime: [0.0, 0.0] for runtime in runtimes}
            parts = {runtime: ([], []) for runtime in runtimes}
            # Interleaved batch by batch, in rotating order, so other processes' load falls on every runtime alike.
            image_starts = range(0, len(images), batch_size)
            text_step = max(1, len(texts) * batch_size // max(1, len(images)))
            for step, start in enumerate(image_starts):
                order = runtimes[step % len(runtimes) :] + runtimes[: step % len(runtimes)]
                text_slice = (
                    texts[step * text_step : (step + 1) * text_step]
                    if step < len(image_starts) - 1
                    else texts[step * text_step :]
                )
                for runtime in order:
                    embedder = embedders[runtime]
                    began = time.perf_counter()
                    parts[runtime][0].append(
                        embedder.encode_images(images[start : start + batch_size], batch_size=batch_size)
                    )
                    seconds[runtime][0] += time.perf_counter() - began
                    if text_slice:
                        began = time.perf_counter()
                        parts[runtime][1].append(embedder.encode_text_queries(text_slice, batch_size=batch_size))
                        seconds[runtime][1] += time.perf_counter() - began
                print(
                    f"bench: step {step + 1}/{len(image_starts)}: seconds so far "
                    + ", ".join(f"{r} {i:.1f}+{t:.1f}" for r, (i, t) in seconds.items()),
                    file=sys.stderr,
                    flush=True,
                )
            rates = {}
            for runtime in runtimes:
                vectors[runtime] = tuple(np.concatenate(chunks) for chunks in parts[runtime])
                rates[runtime] = (len(images) / seconds[runtime][0], len(texts) / seconds[runtime][1])
                print(f"{runtime:<10} {batch_size:>5} {rates[runtime][0]:>9.2f} {rates[runtime][1]:>15.1f}", flush=True)
            base = rates["torch"]
            for runtime in runtimes[1:]:
                print(
                    f"  {runtime} / torch: images {rates[runtime][0] / base[0]:.2f}x, "
                    f"text queries {rates[runtime][1] / base[1]:.2f}x",
                    flush=True,
                )
        print(f"load average (1 min) at end {os.getloadavg()[0]:.1f}", flush=True)
        torch_images, torch_texts = vectors["torch"]
        onnx_images, onnx_texts = vectors["onnx"]
        print(
            f"onnx vs torch max |difference|: images {np.abs(onnx_images - torch_images).max():.2e}, "
            f"text queries {np.abs(onnx_texts - torch_texts).max():.2e}"
        )
        if "onnx-int8" in vectors:
            int8_images, int8_texts = vectors["onnx-int8"]
            text_to_image = recall_at_10(onnx_texts @ onnx_images.T, int8_texts @ int8_images.T)
            image_to_image = recall_at_10(*(_without_self(v @ v.T) for v in (onnx_images, int8_images)))
            cosine = float(np.mean(np.sum(onnx_images * int8_images, axis=1)))
            print(
                f"int8 agreement with fp32: recall@10 of the fp32 ranking: text->image {text_to_image:.3f}, "
                f"image->image {image_to_image:.3f} ({len(texts)} queries, {len(images)} images); "
                f"mean cosine(fp32, int8) of image vectors {cosine:.4f}"
            )
    return 0


def photo_size_for_tiles(backbone, tiles: int) -> tuple[int, int]:
    """A camera-like photo size that the Mllama processor cuts into exactly ``tiles`` tiles."""
    side = backbone.tile_size
    for width, height in (
        (side * 9 // 10, side * 3 // 4),
        (side * 2 - side // 8, side * 3 // 4),
        (side * 3 - side // 8, side * 3 // 4),
        (side * 2 - side // 8, side * 3 // 2),
    ):
        if backbone.tiles_for((width, height)) == tiles:
            return width, height
    raise ValueError(f"no photo size found for {tiles} tiles")


def peak_gib(device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if torch.device(device).type == "cuda" else "-"


def reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def compare_paths(embedder, tiles_list, count: int, batch_size: int) -> None:
    """Plain forward vs mme5 with stock attention vs mme5's fast path, per tile count, same photos."""
    backbone, device = embedder.backbone, embedder.device
    print(
        f"-- vision attention: stock (masked SDPA) vs mme5 fast (exact, mask-free); batch {batch_size}, "
        f"{count} photos per row",
        flush=True,
    )
    print(
        f"{'tiles':>5} {'photo':>9} | {'plain fwd img/s':>15} {'peak GiB':>8} | {'mme5 stock img/s':>16} "
        f"{'peak GiB':>8} | {'mme5 fast img/s':>15} {'peak GiB':>8} | {'fast/plain':>10} {'fast/stock':>10} | "
        f"{'max|Δ| vs plain':>15} {'min cos':>9}",
        flush=True,
    )
    for tiles in tiles_list:
        width, height = photo_size_for_tiles(backbone, tiles)
        images = photos(count, width, height, seed=tiles)
        plain_vectors: list = []
        reset_peak(device)
        plain_rate = count / timed(baseline_forward(embedder, images, batch_size, plain_vectors), device)
        plain_peak = peak_gib(device)
        rates, peaks, vectors = {}, {}, {}
        for mode in (False, True):
            backbone.fast_attention = mode
            reset_peak(device)
            rates[mode] = count / timed(
                lambda: vectors.__setitem__(mode, embedder.encode_images(images, batch_size=batch_size)), device
            )
            peaks[mode] = peak_gib(device)
        backbone.fast_attention = True
        reference = plain_vectors[0]
        delta = float(np.abs(vectors[True] - reference).max())
        cosine = float((vectors[True] * reference).sum(axis=1).min())
        print(
            f"{tiles:>5} {f'{width}x{height}':>9} | {plain_rate:>15.1f} {plain_peak:>8} | {rates[False]:>16.1f} "
            f"{peaks[False]:>8} | {rates[True]:>15.1f} {peaks[True]:>8} | {rates[True] / plain_rate:>9.2f}x "
            f"{rates[True] / rates[False]:>9.2f}x | {delta:>15.2e} {cosine:>9.5f}",
            flush=True,
        )


def peak_by_batch(embedder, batches, count: int) -> None:
    backbone, device = embedder.backbone, embedder.device
    width, height = photo_size_for_tiles(backbone, 4)
    images = photos(count, width, height, seed=4)
    backbone.fast_attention = True
    cells = []
    for batch_size in batches:
        reset_peak(device)
        embedder.encode_images(images[: max(batch_size, 1)], batch_size=batch_size)
        cells.append(f"batch {batch_size}: {peak_gib(device)} GiB")
    print(f"-- peak GPU memory, mme5 fast path, 4-tile photos: {'; '.join(cells)}", flush=True)


def query_latency(embedder, count: int) -> None:
    """One-text queries: eager, then compiled (CUDA graphs) as the app does at start; p50/p95 and agreement."""
    texts = [
        f"{' '.join(caption.split()[:5])} {n}" for n, caption in enumerate(captions(count, seed=1))
    ]  # search-box length

    def run() -> tuple[np.ndarray, list[float]]:
        vectors, seconds = [], []
        embedder.encode_text_queries([texts[0]])  # warm-up
        for text in texts:
            synchronize(embedder.device)
            started = time.perf_counter()
            vectors.append(embedder.encode_text_queries([text])[0])
            seconds.append(time.perf_counter() - started)
        return np.stack(vectors), seconds

    embedder.backbone.query_compiler = None
    eager, eager_s = run()
    warm = embedder.compile_queries()
    compiled, compiled_s = run()
    active = embedder.backbone.query_compiler is not None and embedder.backbone.query_compiler.active
    cosine = float((eager * compiled).sum(axis=1).min())
    ms = lambda values: f"{np.percentile(values, 50) * 1000:.1f} / {np.percentile(values, 95) * 1000:.1f} ms"  # noqa: E731
    print(
        f"-- text query, batch 1, p50 / p95: eager {ms(eager_s)}; "
        f"{'compiled' if active else 'eager again (not compiled here)'} {ms(compiled_s)} (warm-up {warm:.1f} s); "
        f"min cosine vs eager {cosine:.5f}",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="hub id or local folder")
    parser.add_argument("--full-size-mme5", action="store_true", help="random-weight 10.6B mmE5 architecture (GPU)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--images", type=int, default=64, help="images per measurement")
    parser.add_argument("--texts", type=int, default=256, help="texts per measurement")
    parser.add_argument("--image-size", default="1024x768", help="WxH of the synthetic photos")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--sdpa", nargs="+", help="SDPA backend priority for Mllama, e.g. cudnn efficient")
    parser.add_argument("--baseline", action="store_true", help="also time the plain transformers forward (Mllama)")
    parser.add_argument(
        "--full-size-siglip",
        action="store_true",
        help="random-weight mSigLIP-B/16-256: torch vs ONNX Runtime (fp32, int8) on the CPU",
    )
    parser.add_argument(
        "--siglip-size",
        choices=["full", "tiny"],
        default="full",
        help="with --full-size-siglip: tiny runs the same code in seconds (a smoke test)",
    )
    parser.add_argument("--no-int8", action="store_true", help="with --full-size-siglip: skip the int8 runtime")
    parser.add_argument(
        "--export-dir",
        help="with --full-size-siglip: keep the ONNX export here for reuse (default: a temporary folder)",
    )
    parser.add_argument(
        "--compare-tiles",
        type=int,
        nargs="*",
        default=[1, 2, 4],
        help="Mllama: tile counts for the stock-vs-fast comparison (default 1 2 4; none to skip)",
    )
    parser.add_argument("--compare-images", type=int, default=None, help="photos per comparison row (default --images)")
    parser.add_argument(
        "--peak-batches",
        type=int,
        nargs="*",
        default=[],
        help="Mllama on CUDA: print the fast path's peak memory at these batch sizes, e.g. 1 2 4 8",
    )
    parser.add_argument("--queries", type=int, default=0, help="time this many one-text queries, eager vs compiled")
    args = parser.parse_args(argv)
    if args.full_size_siglip:
        return siglip_runtimes(args)

    started = time.perf_counter()
    embedder = load_for_benchmark(args.model, args.device, args.full_size_mme5)
    device = embedder.device
    if args.sdpa:
        embedder.backbone.sdpa_backends = args.sdpa
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(
        f"model {embedder.model_id} ({embedder.family}, dim {embedder.dim}) on {name}; sdpa {args.sdpa or 'default'}; "
        f"load {time.perf_counter() - started:.1f}s; torch {torch.__version__}",
        flush=True,
    )
    if embedder.family == "mllama":
        print(
            f"fast vision attention: {'on' if embedder.backbone.fast_attention else 'off'} "
            "(MME5_FAST_ATTENTION=0 turns it off)",
            flush=True,
        )
    if embedder.family == "mllama" and args.compare_tiles:
        compare_paths(embedder, args.compare_tiles, args.compare_images or args.images, args.batch_sizes[0])
    if embedder.family == "mllama" and args.peak_batches:
        peak_by_batch(embedder, args.peak_batches, max(args.peak_batches))
    if args.queries:
        query_latency(embedder, args.queries)
    width, height = (int(value) for value in args.image_size.split("x"))
    images = photos(args.images, width, height)
    texts = captions(args.texts)
    for batch_size in args.batch_sizes:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = timed(lambda: embedder.encode_images(images, batch_size=batch_size), device)
        peak = f", peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else ""
        print(f"batch {batch_size:3d}: images/s {len(images) / seconds:8.1f}{peak}", flush=True)
        seconds = timed(lambda: embedder.encode_text_queries(texts, batch_size=batch_size), device)
        print(f"batch {batch_size:3d}: texts/s  {len(texts) / seconds:8.1f}", flush=True)
        if args.baseline and embedder.family == "mllama":
            seconds = timed(baseline_forward(embedder, images, batch_size), device)
            print(
                f"batch {batch_size:3d}: images/s {len(images) / seconds:8.1f}  (plain transformers forward, baseline)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
