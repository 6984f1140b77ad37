"""Images/s and texts/s of mme5's encoders, for any model on any device.

Examples:
  python -m benchmarks.bench_embed --model models/tiny                       # tiny model on CPU
  python -m benchmarks.bench_embed --full-size-mme5 --batch-sizes 8 16 32 --baseline   # on a CUDA GPU
  python -m benchmarks.bench_embed --model google/siglip-base-patch16-256-multilingual --device cpu

--full-size-mme5 builds the 10.6B-parameter Llama-3.2-11B-Vision architecture with random
weights (speed does not depend on the weights). --baseline also times the plain
transformers forward the reference code uses (full model with LM head and all hidden
states), at the same batch size and inputs.
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


def baseline_forward(embedder, images, batch_size):
    """The reference's way: full model forward with output_hidden_states, then hidden_states[-1]."""
    backbone = embedder.backbone
    from mme5 import EmbedInput, prompts

    def run():
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                items = [EmbedInput(text=prompts.image_document(), image=image) for image in images[start:start + batch_size]]
                tensors = backbone.to_device(backbone.collate(items).tensors)
                output = backbone.model(**tensors, output_hidden_states=True, return_dict=True)
                hidden = output.hidden_states[-1]
                last = tensors["attention_mask"].sum(1) - 1
                torch.nn.functional.normalize(hidden[torch.arange(hidden.shape[0]), last].float(), dim=-1).cpu()

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="hub id or local folder")
    parser.add_argument("--full-size-mme5", action="store_true", help="random-weight 10.6B mmE5 architecture (GPU)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--images", type=int, default=64, help="images per measurement")
    parser.add_argument("--texts", type=int, default=256, help="texts per measurement")
    parser.add_argument("--image-size", default="1024x768", help="WxH of the synthetic photos")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--sdpa", nargs="+", help="SDPA backend priority for Mllama, e.g. cudnn efficient")
    parser.add_argument("--baseline", action="store_true", help="also time the plain transformers forward (Mllama)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    embedder = load_for_benchmark(args.model, args.device, args.full_size_mme5)
    device = embedder.device
    if args.sdpa:
        embedder.backbone.sdpa_backends = args.sdpa
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"model {embedder.model_id} ({embedder.family}, dim {embedder.dim}) on {name}; sdpa {args.sdpa or 'default'}; "
          f"load {time.perf_counter() - started:.1f}s; torch {torch.__version__}", flush=True)
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
            print(f"batch {batch_size:3d}: images/s {len(images) / seconds:8.1f}  (plain transformers forward, baseline)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
