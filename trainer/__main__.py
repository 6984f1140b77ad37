"""Command line: fine-tune, evaluate and merge mmE5-style embedding models.

Examples:
  # LoRA/DoRA fine-tuning on synth output plus a labeled set, 2 GPUs:
  torchrun --nproc_per_node 2 -m trainer train --model intfloat/mmE5-mllama-11b-instruct \\
      --data runs/synth/train.jsonl --data data/mmE5-MMEB-hardneg/MSCOCO_t2i --image-dir data/images \\
      --output runs/lora1 --batch-size 2 --grad-accum 8
  # offline smoke run on a tiny random model:
  python -m mme5 tiny --out models/tiny
  python -m trainer train --model models/tiny --data toy.jsonl --image-dir toy/ --output runs/toy \\
      --max-steps 20 --batch-size 8 --lr 1e-3
  python -m trainer train ... --output runs/toy --resume        # continue after a crash or kill
  # the paper's data mix (hub access; images under --image-dir), plus your own synth output capped at 20k rows:
  python -m trainer train --model intfloat/mmE5-mllama-11b-instruct --recipe mme5 --data runs/synth/data@20000 \\
      --image-dir data/images --output runs/mme5
  python -m trainer eval --model models/tiny --adapter runs/toy --xtd data/xtd --image-dir data/xtd-images \\
      --out report.json
  python -m trainer merge --model models/tiny --adapter runs/toy --out models/tiny-tuned
  python -m indexer build --dir photos/ --model models/tiny --adapter runs/toy   # serve the result
  # your photos, your languages: measure, adapt, and (if it helps) serve the adapted model
  python -m trainer adapt --index index/ --out runs/adapt1 --languages en,uk --n 2000 --dry-run
  python -m trainer adapt --index index/ --out runs/adapt1 --languages en,uk --n 2000 --apply \\
      --guard-mmeb data/MMEB-eval --guard-mmeb-image-dir images/MMEB-eval   # and check general ability
  python -m trainer eval --index index/ --queries runs/adapt1/heldout          # how good is search on my photos?
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = __doc__.split("\n", 2)[2]


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=34)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer", description=__doc__.split("\n\n")[0], epilog=EXAMPLES, formatter_class=_formatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="contrastive LoRA (or full) fine-tuning",
        epilog=EXAMPLES,
        formatter_class=_formatter,
        description="Contrastive fine-tuning with mmE5's recipe (defaults: LoRA r 8, alpha 64, "
        "dropout 0.1, DoRA, Gaussian init; temperature 0.02; 3 hard negatives; "
        "lr 1e-5, 5%% warmup, linear decay; grad clip 5; max length 256; "
        "bf16 on GPU; gradient checkpointing).",
    )
    train.add_argument("--model", required=True, help="hub id or local folder of the backbone (mllama or siglip)")
    train.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="D[@ROWS]",
        help="datasets folder (save_to_disk), mmE5-schema .jsonl, or hub name[:config]; @ROWS keeps "
        "only its first ROWS rows; repeatable",
    )
    train.add_argument(
        "--recipe",
        choices=("mme5",),
        help="mme5: the paper's mix, first 50,000 rows of each of 24 intfloat/mmE5-MMEB-hardneg "
        "subsets + all of intfloat/mmE5-synthetic (needs the hub, or see docs/training.md); --data adds more",
    )
    train.add_argument("--image-dir", help="folder that image paths in the data are relative to")
    train.add_argument("--output", required=True, help="run folder: adapter (peft format), checkpoints/, log.jsonl")
    train.add_argument("--max-steps", type=int, help="optimiser steps (default: --epochs over the data)")
    train.add_argument("--epochs", type=float, default=1.0)
    train.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="queries per process per micro-step (the in-batch pool is this x processes)",
    )
    train.add_argument("--grad-accum", type=int, default=1, help="micro-steps per optimiser step")
    train.add_argument(
        "--grad-cache",
        type=int,
        default=0,
        metavar="CHUNK",
        help="GradCache: embed CHUNK inputs at a time so --batch-size can be in the thousands (0: off)",
    )
    train.add_argument("--lr", type=float, default=1e-5)
    train.add_argument("--warmup-ratio", type=float, default=0.05)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--max-grad-norm", type=float, default=5.0)
    train.add_argument("--temperature", type=float, default=0.02)
    train.add_argument("--negative-ratio", type=int, default=3, help="hard negatives per query")
    train.add_argument("--max-length", type=int, default=256, help="text tokens per input (longer is truncated)")
    train.add_argument("--lora-r", type=int, default=8)
    train.add_argument("--lora-alpha", type=int, default=64)
    train.add_argument("--lora-dropout", type=float, default=0.1)
    train.add_argument("--no-dora", action="store_true", help="plain LoRA instead of DoRA")
    train.add_argument("--lora-init", default="gaussian", help="peft init_lora_weights (gaussian, default, pissa, ...)")
    train.add_argument(
        "--lora-targets",
        metavar="PRESET|NAMES",
        help="mme5 (default: what the reference's list matches: q/k/v/o_proj + down_proj on Mllama), "
        "wide (all attention and MLP projections incl. gate/up_proj, fc1/fc2), "
        "or comma-separated module names",
    )
    train.add_argument(
        "--full", action="store_true", help="full fine-tuning; --output then receives a whole model folder"
    )
    train.add_argument("--no-gradient-checkpointing", action="store_true")
    train.add_argument("--dtype", help="float32, bfloat16 ... (default: bfloat16 on GPU, float32 on CPU)")
    train.add_argument("--device", help="cpu, cuda (default: cuda:LOCAL_RANK when available)")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--save-every", type=int, default=500, help="checkpoint every N steps (0: never)")
    train.add_argument("--save-total-limit", type=int, default=2, help="checkpoints to keep")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    train.add_argument("--no-progress", action="store_true")

    evaluate = commands.add_parser(
        "eval",
        help="MMEB Precision@1 and XTD Recall@10, or held-out recall on an index",
        epilog=EXAMPLES,
        formatter_class=_formatter,
        description="Each DIR holds one <Subset>.jsonl or datasets folder per subset, named "
        "as in the paper (MSCOCO_t2i, ImageNet-1K, ... ; XTD: it es ru zh pl tr ko). "
        "With --index and --queries: recall@1/5/10 and MRR of the index's model "
        "on held-out queries from `trainer adapt`, every photo a candidate.",
    )
    evaluate.add_argument("--index", help="with --queries: an index folder (its own model and adapter are used)")
    evaluate.add_argument("--queries", metavar="RUN/heldout", help="held-out queries written by `trainer adapt`")
    evaluate.add_argument("--model", help="hub id or local folder (as for train)")
    evaluate.add_argument("--adapter", help="peft adapter folder from `trainer train`")
    evaluate.add_argument("--mmeb", metavar="DIR", help="folder of MMEB subsets")
    evaluate.add_argument("--xtd", metavar="DIR", help="folder of XTD languages")
    evaluate.add_argument("--image-dir", help="folder the rows' image paths are relative to (MMEB/XTD)")
    evaluate.add_argument("--out", metavar="REPORT.json", help="report path; a .md table is written beside it")
    evaluate.add_argument(
        "--batch-size", type=int, default=16, help="inputs per forward pass (default 16, as the reference)"
    )
    evaluate.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")

    add_adapt_parser(commands)

    merge = commands.add_parser(
        "merge",
        help="fold an adapter into the weights and write a model folder",
        epilog=EXAMPLES,
        formatter_class=_formatter,
    )
    merge.add_argument("--model", required=True, help="base model the adapter was trained on")
    merge.add_argument("--adapter", required=True, help="adapter folder from `trainer train`")
    merge.add_argument("--out", required=True, help="new model folder (must not exist or be empty)")
    merge.add_argument("--dtype", help="weights dtype to write (default: the model's own)")
    return parser


def add_adapt_parser(commands) -> None:
    adapt = commands.add_parser(
        "adapt",
        help="measure search on your library, adapt the model to it, apply it if it helps",
        epilog=EXAMPLES,
        formatter_class=_formatter,
        description="Split the index's photos by content hash (held-out photos never reach training), synthesise "
        "held-out queries and training samples with synth, measure recall@1/5/10 and MRR per language "
        "and search mode with every photo a candidate, train a LoRA adapter, measure again, and re-index "
        "with the adapter only if held-out recall@10 improved (--apply, or asked on a terminal). "
        "Writes OUT/report.md, report.json and PNG charts; a rerun continues after the last finished step.",
    )
    adapt.add_argument("--index", required=True, help="index folder built by `python -m indexer build`")
    adapt.add_argument("--out", required=True, help="run folder (created, or continued)")
    adapt.add_argument("--heldout", type=float, default=0.2, help="share of photos held out for evaluation (0.2)")
    adapt.add_argument("--n", type=int, default=1000, help="training samples to synthesise (default 1000)")
    adapt.add_argument("--n-eval", type=int, default=None, help="held-out queries (default n/5, at least 20)")
    adapt.add_argument("--languages", help="synth language weights, e.g. en,uk=2 (default: English + your locale's)")
    adapt.add_argument(
        "--tasks",
        help="synth tasks (default: text, composed and image search: "
        "retrieval:T->I=0.6,retrieval:IT->I=0.2,retrieval:I->I=0.2)",
    )
    adapt.add_argument("--backend", choices=("openai", "local"), default="openai", help="synth backend (openai)")
    adapt.add_argument("--model", help="generator model (openai default: $SYNTH_MODEL or gpt-4o)")
    adapt.add_argument("--base-url", help="OpenAI-compatible server URL (default: $OPENAI_BASE_URL or OpenAI)")
    adapt.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY)")
    adapt.add_argument("--concurrency", type=int, default=8, help="synth requests in flight (8)")
    adapt.add_argument("--timeout", type=float, default=120.0, help="seconds per synth request (120)")
    adapt.add_argument("--max-retries", type=int, default=5)
    adapt.add_argument("--no-json-mode", action="store_true", help="send no response_format to the server")
    adapt.add_argument("--image-size", type=int, default=1024, help="longer image side sent to the generator")
    adapt.add_argument("--max-tokens", type=int, default=2048)
    adapt.add_argument(
        "--temperature-gen",
        dest="gen_temperature",
        type=float,
        default=0.7,
        help="generator sampling temperature (0.7)",
    )
    adapt.add_argument("--price-in", type=float, help="USD per 1M input tokens (known models: built in)")
    adapt.add_argument("--price-out", type=float, help="USD per 1M output tokens")
    adapt.add_argument(
        "--mix",
        action="append",
        default=[],
        metavar="DIR_OR_HUB_ID@ROWS",
        help="labeled data mixed into training to keep general ability; repeatable",
    )
    adapt.add_argument("--mix-image-dir", help="folder the --mix rows' image paths are relative to")
    adapt.add_argument("--steps", type=int, default=200, help="training steps (200)")
    adapt.add_argument("--batch-size", type=int, default=8)
    adapt.add_argument("--lr", type=float, default=1e-4)
    adapt.add_argument("--warmup-ratio", type=float, default=0.05)
    adapt.add_argument("--temperature", type=float, default=0.02, help="InfoNCE temperature (0.02)")
    adapt.add_argument("--negative-ratio", type=int, default=1, help="hard negatives per query (1)")
    adapt.add_argument("--lora-r", type=int, default=8)
    adapt.add_argument(
        "--text-pairs",
        action="store_true",
        help="also train on query → photo pairs from the text OCR read in the training photos and from their "
        "keywords and descriptions, at most --n of them (off by default: not measured to help yet, see "
        "docs/training.md)",
    )
    adapt.add_argument("--lora-targets", help="mme5 (default), wide, or module names")
    adapt.add_argument("--no-gradient-checkpointing", action="store_true")
    adapt.add_argument("--save-every", type=int, default=100, help="training checkpoint every N steps (100)")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--device", help="cpu, cuda ... (embedding, training; local synth backend)")
    adapt.add_argument(
        "--guard-mmeb",
        metavar="DIR",
        help="MMEB-eval subsets (as `trainer eval --mmeb` reads them): "
        "measure overall Precision@1 before and after, to see what adapting costs elsewhere",
    )
    adapt.add_argument(
        "--guard-xtd",
        metavar="DIR",
        help="XTD-10 languages (as `trainer eval --xtd` reads them): mean text->image Recall@10 before and after",
    )
    adapt.add_argument("--guard-image-dir", default=".", help="folder the guard sets' image paths are relative to")
    adapt.add_argument(
        "--guard-mmeb-image-dir",
        metavar="DIR",
        help="the same for --guard-mmeb only (MMEB-eval's "
        "images and XTD-10's unpack into different folders); default --guard-image-dir",
    )
    adapt.add_argument("--guard-xtd-image-dir", metavar="DIR", help="the same for --guard-xtd only")
    adapt.add_argument(
        "--guard-max-drop",
        type=float,
        default=2.0,
        metavar="POINTS",
        help="not applied if a guard score falls by more than this many points (2.0)",
    )
    decide = adapt.add_mutually_exclusive_group()
    decide.add_argument(
        "--apply",
        action="store_true",
        help="re-index with the adapter if recall@10 improved "
        "(without --apply or --no-apply you are asked when a terminal is attached)",
    )
    decide.add_argument("--no-apply", action="store_true", help="never re-index, do not ask: measure and report only")
    adapt.add_argument("--dry-run", action="store_true", help="print the plan (photos, split, calls, cost) and stop")
    adapt.add_argument("--no-progress", action="store_true")


def run_adapt(args) -> int:
    from .adapt import run_adapt as adapt

    return adapt(args)


def run_train(args) -> int:
    from .data import expand_recipe
    from .model import LoraSettings
    from .train import TrainConfig, train

    data = expand_recipe(args.recipe, args.data)
    if not data:
        raise ValueError("no training data: give --data SOURCE (repeatable) and/or --recipe mme5")
    lora = (
        None
        if args.full
        else LoraSettings(
            r=args.lora_r,
            alpha=args.lora_alpha,
            dropout=args.lora_dropout,
            dora=not args.no_dora,
            init=args.lora_init,
            targets=args.lora_targets or [],
        )
    )
    config = TrainConfig(
        model=args.model,
        data=data,
        output=args.output,
        image_dir=args.image_dir,
        max_steps=args.max_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        grad_cache_chunk=args.grad_cache,
        lr=args.lr,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        temperature=args.temperature,
        negative_ratio=args.negative_ratio,
        max_length=args.max_length,
        lora=lora,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        dtype=args.dtype,
        device=args.device,
        seed=args.seed,
        save_every=args.save_every,
        save_total_limit=args.save_total_limit,
        resume=args.resume,
        show_progress=not args.no_progress,
    )
    result = train(config)
    print(result.output)
    return 0


def run_eval(args) -> int:
    from .evaluate import evaluate_cli

    return evaluate_cli(args)


def run_merge(args) -> int:
    from .merge import merge

    print(merge(args.model, args.adapter, args.out, dtype=args.dtype))
    return 0


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": run_train, "eval": run_eval, "merge": run_merge, "adapt": run_adapt}
    return handlers[args.command](args)


def main(argv=None) -> int:
    """0 ok, 1 error (one line for a user's problem, a traceback for a bug), 2 usage."""
    from indexer.errors import IndexerError
    from mme5.cli import run
    from synth.errors import SynthError

    from .errors import TrainerError

    # `adapt` drives synth and the indexer: their user errors (a bad --languages, no index there) are one line too
    return run(_main, argv, "trainer", (TrainerError, SynthError, IndexerError))


if __name__ == "__main__":
    sys.exit(main())
