"""Peak memory and samples/s of a few contrastive training steps through the real trainer path.

Examples:
  python benchmarks/bench_train.py                                  # tiny random Mllama on CPU (smoke)
  python benchmarks/bench_train.py --model models/tiny --steps 5 --batch-size 8
  python benchmarks/bench_train.py --full-size-mme5 --batch-size 2  # Llama-3.2-11B-Vision shape, random bf16
                                                                    # weights, LoRA+DoRA, grad checkpointing (CUDA)
  python benchmarks/bench_train.py --full-size-mme5 --batch-size 64 --grad-cache 4   # big in-batch pool
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mme5 import prompts  # noqa: E402
from trainer.data import Example  # noqa: E402
from trainer.model import LoraSettings, make_trainable, trainable_parameters  # noqa: E402
from trainer.step import build_inputs, grad_cache_step, plain_step  # noqa: E402


def full_size_embedder(device: torch.device):
    """Llama-3.2-11B-Vision's architecture with random bf16 weights, built directly on the GPU."""
    from mme5.tiny import random_mme5_embedder

    return random_mme5_embedder("full", device=str(device))


def tiny_embedder(model: str | None, device: torch.device):
    from mme5 import load_embedder
    from mme5.tiny import build_tiny

    if model is None:
        model = str(build_tiny(Path(tempfile.mkdtemp()) / "tiny"))
    return load_embedder(model, device=device, verbose=False, runtime="torch")  # training needs torch


def examples(folder: Path, count: int, negatives: int, side: int) -> list[Example]:
    """Caption -> image rows with image hard negatives, mmE5's retrieval layout."""
    rng = random.Random(0)
    document = "<|image_1|>\nRepresent the given image.\n"
    paths = []
    for index in range(count * (1 + negatives)):
        path = folder / f"{index}.jpg"
        Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3))).save(path)
        paths.append(str(path))
    rows = []
    for index in range(count):
        caption = f"photo number {index} of a coloured square, seen from the front in daylight"
        negs = paths[count + index * negatives : count + (index + 1) * negatives]
        rows.append(Example(prompts.text_to_image_query(caption), None, document, paths[index],
                            [document] * negatives, negs))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Mllama)")
    parser.add_argument("--full-size-mme5", action="store_true", help="full-size Llama-3.2-11B-Vision, random weights (CUDA)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--batch-size", type=int, default=2, help="queries per step")
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--grad-cache", type=int, default=0, metavar="CHUNK")
    parser.add_argument("--image-size", type=int, default=560, help="square image side (560 = one Mllama tile)")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.full_size_mme5 and device.type != "cuda":
        parser.error("--full-size-mme5 needs a CUDA GPU (about 22 GB of bf16 weights plus activations)")
    started = time.perf_counter()
    embedder = full_size_embedder(device) if args.full_size_mme5 else tiny_embedder(args.model, device)
    built = time.perf_counter() - started
    torch.manual_seed(0)
    make_trainable(embedder, LoraSettings(), gradient_checkpointing=not args.no_gradient_checkpointing)
    params = list(trainable_parameters(embedder.backbone.model).values())
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    with tempfile.TemporaryDirectory() as folder:
        rows = examples(Path(folder), args.batch_size * (args.steps + 1), args.negatives, args.image_size)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for step in range(args.steps + 1):
            batch = rows[step * args.batch_size : (step + 1) * args.batch_size]
            inputs = build_inputs(embedder.family, batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tick = time.perf_counter()
            if args.grad_cache:
                out = grad_cache_step(embedder, inputs, 0.02, args.grad_cache)
            else:
                out = plain_step(embedder, inputs, 0.02)
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - tick)
            print(f"step {step}: loss {out.loss.item():.4f}, {times[-1]:.2f} s", file=sys.stderr)
    timed = times[1:] or times
    result = {
        "model": embedder.model_id, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(embedder.backbone.dtype), "batch_size": args.batch_size, "negatives": args.negatives,
        "grad_cache_chunk": args.grad_cache, "gradient_checkpointing": not args.no_gradient_checkpointing,
        "image_size": args.image_size, "trainable_parameters": sum(p.numel() for p in params),
        "build_s": round(built, 1), "step_s": round(sum(timed) / len(timed), 3),
        "samples_per_s": round(args.batch_size / (sum(timed) / len(timed)), 3),
    }
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    else:
        result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
