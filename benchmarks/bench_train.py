"""Peak memory and samples/s of a few contrastive training steps through the real trainer path.

Examples:
  python -m benchmarks.bench_train                                  # tiny random Mllama on CPU (smoke)
  python -m benchmarks.bench_train --model models/tiny --steps 5 --batch-size 8
  python -m benchmarks.bench_train --full-size-mme5 --batch-size 2  # Llama-3.2-11B-Vision shape, random bf16
                                                                    # weights, LoRA+DoRA, grad checkpointing (CUDA)
  python -m benchmarks.bench_train --full-size-mme5 --batch-size 64 --grad-cache 4   # big in-batch pool
  python -m benchmarks.bench_train --full-size-mme5 --attention both --profile      # fast vs stock, and where time goes

Mllama runs its vision attention two ways (``--attention both``, the default): mme5's exact
mask-free path (mme5.fast_attention) and the stock masked SDPA, on the same examples, and
prints the step time of each. ``--profile`` prints the torch.profiler table (top ops by
device time, CPU time on a CPU) of one step to stderr; ``--profile-trace FILE`` saves a
Chrome trace of it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

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
        rows.append(
            Example(prompts.text_to_image_query(caption), None, document, paths[index], [document] * negatives, negs)
        )
    return rows


def one_step(embedder, batch, args, params, optimizer, device):
    """One optimiser step through the trainer's path; (seconds, step output)."""
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
    return time.perf_counter() - tick, out


@contextmanager
def profiled(enabled: bool, device: torch.device, trace: str | None):
    """torch.profiler around one step: the top ops to stderr (and a Chrome trace if asked)."""
    if not enabled:
        yield
        return
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=False) as prof:
        yield
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=30), file=sys.stderr)
    if trace:
        prof.export_chrome_trace(trace)
        print(f"bench: Chrome trace of the step saved to {trace}", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Mllama)")
    parser.add_argument(
        "--full-size-mme5", action="store_true", help="full-size Llama-3.2-11B-Vision, random weights (CUDA)"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--batch-size", type=int, default=2, help="queries per step")
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--grad-cache", type=int, default=0, metavar="CHUNK")
    parser.add_argument("--image-size", type=int, default=560, help="square image side (560 = one Mllama tile)")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--attention",
        choices=("both", "fast", "stock"),
        default="both",
        help="Mllama vision attention to time: mme5's fast path, the stock one, or both (default)",
    )
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of one step to stderr")
    parser.add_argument("--profile-trace", metavar="FILE", help="also save that step as a Chrome trace (JSON)")
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
    modes = ["fast", "stock"] if args.attention == "both" else [args.attention]
    if embedder.family != "mllama":
        modes = ["stock"]
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        rows = examples(Path(folder), args.batch_size * (args.steps + 1), args.negatives, args.image_size)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        peaks = {}
        for mode in modes:
            if embedder.family == "mllama":
                embedder.backbone.fast_attention = mode == "fast"
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times[mode] = []
            for step in range(args.steps + 1):
                batch = rows[step * args.batch_size : (step + 1) * args.batch_size]
                profiling = (args.profile or args.profile_trace) and mode == modes[0] and step == args.steps
                with profiled(profiling, device, args.profile_trace):
                    seconds, out = one_step(embedder, batch, args, params, optimizer, device)
                times[mode].append(seconds)
                print(f"{mode} attention, step {step}: loss {out.loss.item():.4f}, {seconds:.2f} s", file=sys.stderr)
            if device.type == "cuda":
                peaks[mode] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    step_s = {mode: round(sum(values[1:] or values) / len(values[1:] or values), 3) for mode, values in times.items()}
    first = modes[0]
    result = {
        "model": embedder.model_id,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(embedder.backbone.dtype),
        "batch_size": args.batch_size,
        "negatives": args.negatives,
        "grad_cache_chunk": args.grad_cache,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "image_size": args.image_size,
        "trainable_parameters": sum(p.numel() for p in params),
        "build_s": round(built, 1),
        "step_s": step_s[first],
        "samples_per_s": round(args.batch_size / step_s[first], 3),
        "step_s_by_attention": step_s,
    }
    if len(step_s) == 2:
        result["stock_over_fast"] = round(step_s["stock"] / step_s["fast"], 3)
    if device.type == "cuda":
        result["peak_gpu_memory_gib"] = peaks[first]
        result["peak_gpu_memory_gib_by_attention"] = peaks
    else:
        result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
