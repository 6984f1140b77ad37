"""``python -m synth``: generate, stats, export, languages. The composition root of the package."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import languages, tasks
from .configure import NEGATIVE_RANKS, POSITIVE_RANKS
from .errors import SpecError
from .generator import GeneratorSettings, backend_from_settings
from mme5.atomic import write_atomic
from mme5.cli import UsageError

EXAMPLES = """examples:
  # 1000 samples from your photos with GPT-4o (OPENAI_API_KEY set), 8 requests at a time
  python -m synth generate --images ~/Pictures --n 1000 --out runs/synth1
  # from an index built with `python -m indexer build`, through a local vLLM server
  python -m synth generate --index index/ --n 500 --out runs/synth2 \\
      --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-VL-7B-Instruct
  # only German and French retrieval data; print the prompts, call nothing
  python -m synth generate --index index/ --n 3 --out runs/try --languages de=2,fr=1 --tasks retrieval --dry-run
  # offline on a GPU with a local vision-language model
  python -m synth generate --index index/ --n 100 --out runs/local --backend local --model ./models/llama-vision
  python -m synth stats runs/synth1
  python -m synth export runs/synth1 data/synth1      # then: python -m trainer train --data data/synth1 ...
"""


def _ranks(text: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rank window like 1-3, got {text!r}") from None
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"rank window {text!r} must satisfy 1 <= low <= high")
    return low, high


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m synth",
        description="mmE5-style synthetic multimodal data.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser(
        "generate",
        help="generate samples (resumable)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Configure, describe, synthesise, self-evaluate and revise; append accepted "
        "samples to OUT/samples.jsonl. Re-run the same command to continue.",
    )
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="folder of photos (indexed into OUT/index first)")
    source.add_argument("--index", type=Path, help="an index folder built by `python -m indexer build`")
    gen.add_argument("--n", type=_positive_int, required=True, help="number of accepted samples wanted")
    gen.add_argument("--out", type=Path, required=True, help="run folder (created, or continued)")
    gen.add_argument(
        "--backend",
        choices=("openai", "local"),
        default="openai",
        help="openai: any OpenAI-compatible server; local: a transformers model (default: openai)",
    )
    gen.add_argument(
        "--model",
        default=None,
        help="generator model (openai default: $SYNTH_MODEL or gpt-4o; local: a folder or hub id)",
    )
    gen.add_argument("--base-url", default=None, help="server URL (default: $OPENAI_BASE_URL or the OpenAI API)")
    gen.add_argument("--api-key", default=None, help="API key (default: $OPENAI_API_KEY)")
    gen.add_argument(
        "--languages",
        default=None,
        help="weights like en=0.5,de=0.3,fr (default: all 93, English 20%%; see `synth languages`)",
    )
    gen.add_argument(
        "--tasks",
        default=None,
        help="task weights like retrieval=0.6,vqa=0.2,classification=0.2 (the default); "
        "task:COMBO picks one combination, e.g. retrieval:T->I=2,retrieval:IT->I",
    )
    gen.add_argument("--concurrency", type=_positive_int, default=8, help="requests in flight (default 8)")
    gen.add_argument("--seed", type=int, default=0, help="fixes every sample's configuration (default 0)")
    gen.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=None,
        help="give up after this many samples were tried (default 2*n+20)",
    )
    gen.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    gen.add_argument("--max-retries", type=int, default=5, help="retries on timeouts, 429 and 5xx (default 5)")
    gen.add_argument(
        "--no-json-mode",
        action="store_true",
        help="send no response_format (default: json_schema, falling back to json_object, then text)",
    )
    gen.add_argument("--image-size", type=_positive_int, default=1024, help="longer image side sent (default 1024)")
    gen.add_argument("--max-tokens", type=_positive_int, default=2048, help="answer length limit (default 2048)")
    gen.add_argument(
        "--temperature", type=float, default=0.7, help="sampling temperature, openai backend (default 0.7)"
    )
    gen.add_argument("--price-in", type=float, default=None, help="USD per 1M input tokens (known models: built in)")
    gen.add_argument("--price-out", type=float, default=None, help="USD per 1M output tokens")
    gen.add_argument(
        "--positive-ranks",
        type=_ranks,
        default=POSITIVE_RANKS,
        help=f"neighbour ranks a positive image is drawn from (default {POSITIVE_RANKS[0]}-{POSITIVE_RANKS[1]})",
    )
    gen.add_argument(
        "--negative-ranks",
        type=_ranks,
        default=NEGATIVE_RANKS,
        help=f"ranks for hard-negative images (default {NEGATIVE_RANKS[0]}-{NEGATIVE_RANKS[1]})",
    )
    gen.add_argument("--embed-model", default=None, help="with --images: embedding model for the index")
    gen.add_argument("--device", default=None, help="cpu or cuda (embedding model and local backend)")
    gen.add_argument("--dry-run", action="store_true", help="print the exact prompts of the next n samples and stop")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")

    stats = commands.add_parser(
        "stats",
        help="counts, failure reasons, acceptance rate, cost",
        epilog="example:\n  python -m synth stats runs/synth1 --json | jq .by_language",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stats.add_argument("out", type=Path, help="run folder")
    stats.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    export = commands.add_parser(
        "export",
        help="write a datasets folder (save_to_disk)",
        epilog="examples:\n  python -m synth export runs/synth1 data/synth1\n"
        "  python -m synth export runs/synth1 data/synth1 --push-to-hub me/my-synth",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("out", type=Path, help="run folder")
    export.add_argument("dataset_dir", type=Path, help="where to save_to_disk")
    export.add_argument("--overwrite", action="store_true", help="replace an existing DATASET_DIR")
    export.add_argument("--no-inspection", action="store_true", help="leave out description/draft/evaluation")
    export.add_argument("--push-to-hub", metavar="REPO", default=None, help="also push to this Hub dataset repo")
    export.add_argument("--public", action="store_true", help="with --push-to-hub: make the repo public")

    commands.add_parser(
        "languages",
        help="list the 93 languages and their default weights",
        epilog="example:\n  python -m synth languages",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _open_pool(args, folder):
    from indexer import IndexStore, build_index

    if args.index is not None:
        return IndexStore.open(args.index), args.index.resolve()
    if not args.images.is_dir():
        raise SpecError(f"{args.images}: image folder not found")
    if folder.index_path.exists():
        print(f"synth: using the index in {folder.index_path} (delete it to re-index {args.images})", file=sys.stderr)
    else:
        from mme5 import load_embedder

        embedder = load_embedder(args.embed_model, device=args.device)
        summary = build_index([args.images], folder.index_path, embedder, show_progress=not args.no_progress)
        print(f"synth: indexed {args.images}: {summary.added} added, {len(summary.errors)} unreadable", file=sys.stderr)
    return IndexStore.open(folder.index_path), folder.index_path.resolve()


def _generator(args) -> GeneratorSettings:
    return GeneratorSettings(
        backend=args.backend,
        model=args.model,
        base_url=args.base_url,
        api_key=args.api_key,
        timeout=args.timeout,
        max_retries=args.max_retries,
        json_mode=not args.no_json_mode,
        image_size=args.image_size,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        device=args.device,
        price_in=args.price_in,
        price_out=args.price_out,
    )


def cmd_generate(args) -> int:
    from .configure import Configurator
    from .output import RunFolder
    from .pool import ImagePool
    from .prompt import PROMPT_VERSION
    from .run import dry_run, generate

    language_weights = (
        languages.parse_weights(args.languages, languages.NAMES, "language")
        if args.languages
        else languages.default_weights()
    )
    combos = tasks.parse_tasks(args.tasks) if args.tasks else tasks.combo_weights(tasks.DEFAULT_TASK_WEIGHTS)
    if args.positive_ranks[1] >= args.negative_ranks[0]:
        raise UsageError(
            f"--positive-ranks {args.positive_ranks[0]}-{args.positive_ranks[1]} must end before "
            f"--negative-ranks {args.negative_ranks[0]}-{args.negative_ranks[1]} begins"
        )
    generator = _generator(args)
    model = generator.model_name()
    folder = RunFolder(args.out)
    store, index_dir = _open_pool(args, folder)
    try:
        pool = ImagePool(store)
        configurator = Configurator(combos, language_weights, pool, args.seed, args.positive_ranks, args.negative_ranks)
        if args.dry_run:
            dry_run(folder, configurator, args.n)
            return 0
        prices = generator.prices()
        settings = {
            "backend": args.backend,
            "model": model,
            "base_url": args.base_url,
            "seed": args.seed,
            "languages": language_weights,
            "prompt_version": PROMPT_VERSION,
            "tasks": {f"{task}:{combo}": weight for (task, combo), weight in combos.items()},
            "positive_ranks": list(args.positive_ranks),
            "negative_ranks": list(args.negative_ranks),
            "index_dir": str(index_dir),
            "pool": pool.fingerprint,
            "image_root": pool.root,
            "prices": list(prices) if prices else None,
        }
        resuming = folder.start(settings)
        backend = backend_from_settings(generator)
        if resuming:
            print(f"synth: continuing the run in {folder.path}", file=sys.stderr)
        concurrency = 1 if args.backend == "local" else args.concurrency
        summary = generate(
            folder,
            configurator,
            backend,
            args.n,
            concurrency,
            args.max_attempts,
            prices,
            show_progress=not args.no_progress,
        )
    finally:
        store.close()
    print(summary.format(), file=sys.stderr)
    write_atomic(folder.path / "summary.json", json.dumps(summary.as_dict(), indent=2))
    if summary.stopped.startswith("interrupted"):
        # Everything written is fsynced and closed; do not wait up to --timeout for requests still in flight.
        sys.stderr.flush()
        os._exit(130)
    return 0


def cmd_stats(args) -> int:
    from .output import RunFolder
    from .stats import format_stats, run_stats

    stats = run_stats(RunFolder(args.out))
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else format_stats(stats))
    return 0


def cmd_export(args) -> int:
    from .export import export
    from .output import RunFolder

    folder = RunFolder(args.out)
    dataset = export(
        folder,
        args.dataset_dir,
        overwrite=args.overwrite,
        inspection=not args.no_inspection,
        push_to_hub=args.push_to_hub,
        private=not args.public,
    )
    root = folder.manifest().get("image_root")
    print(
        f"synth: exported {len(dataset)} samples to {args.dataset_dir}; image paths are relative to {root} "
        f"(train with --data {args.dataset_dir} --image-dir {root})",
        file=sys.stderr,
    )
    return 0


def cmd_languages(_args) -> int:
    weights = languages.default_weights()
    for code, name in languages.NAMES.items():
        print(f"{code}\t{name}\t{weights[code]:.4f}")
    return 0


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"generate": cmd_generate, "stats": cmd_stats, "export": cmd_export, "languages": cmd_languages}
    return handlers[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """0 ok, 1 error (one line for a user's problem, a traceback for a bug), 2 usage, 130 interrupted."""
    from indexer.errors import IndexerError
    from mme5.cli import run

    from .errors import SynthError

    return run(
        _main,
        argv,
        "synth",
        (SynthError, IndexerError),
        interrupted="interrupted; run the same command again to continue",
    )
