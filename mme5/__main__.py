"""Command line: embed one input, or build an offline tiny model.

Examples:
  python -m mme5 tiny --out models/tiny                      # tiny random Mllama (tests, offline demo)
  python -m mme5 tiny --out models/tiny-siglip --backbone siglip
  python -m mme5 tiny --layout hub --backbone siglip-multilingual --out models/siglip-base-patch16-256-multilingual
  python -m mme5 embed --model models/tiny --text "a dog on a beach" --json
  python -m mme5 embed --model models/tiny --image photo.jpg
  python -m mme5 embed --model models/tiny --image photo.jpg --text "but at night"   # composed query
  python -m mme5 embed --model models/tiny-siglip --text "a dog" --runtime onnx      # ONNX Runtime (CPU)
  python -m mme5 settings                                    # every MME5_* environment variable, and its value
"""

from __future__ import annotations

import argparse
import json
import sys

from .registry import RUNTIME_CHOICES, RUNTIME_HELP, QueryKind, tiny_builders


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mme5",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser(
        "embed",
        help="print the embedding of a text, an image, or both (composed query)",
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("--model", help="hub id or local folder (default: mmE5 on a big GPU, SigLIP otherwise)")
    embed.add_argument("--adapter", help="peft adapter folder to merge")
    embed.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda, else Apple mps, else cpu)")
    embed.add_argument("--runtime", choices=RUNTIME_CHOICES, help=RUNTIME_HELP)
    embed.add_argument("--image", help="image file")
    embed.add_argument("--text", help="query text (with --image: the modification)")
    embed.add_argument("--instruction", help="instruction for a text query (default: mmE5's text-to-image one)")
    embed.add_argument("--document", action="store_true", help="embed as stored document (image, or plain text)")
    embed.add_argument("--json", action="store_true", help="print a JSON object instead of bare numbers")
    tiny = commands.add_parser("tiny", help="build a deterministic random-weight model (a few MB) offline")
    tiny.add_argument("--out", required=True, help="folder to write")
    tiny.add_argument(
        "--backbone",
        choices=[*tiny_builders(), "siglip-multilingual", "siglip2"],
        default="mllama",
        help="with --layout hub: siglip-multilingual, siglip2 or mllama",
    )
    tiny.add_argument(
        "--layout",
        choices=["save_pretrained", "hub"],
        default="save_pretrained",
        help="hub: the published checkpoint's files, class names and config formats (mme5/replica.py)",
    )
    tiny.add_argument("--seed", type=int, default=0)
    commands.add_parser("settings", help="list every MME5_* environment variable: value, default, meaning")
    return parser


def run_embed(args) -> int:
    from . import load_embedder
    from .cli import UsageError

    if not args.image and not args.text:
        raise UsageError("give --image, --text, or both")
    embedder = load_embedder(args.model, device=args.device, adapter=args.adapter, runtime=args.runtime)
    query = QueryKind.of(text=args.text, image=args.image)
    if args.document and query is not QueryKind.COMPOSED:
        kind = "image_document" if args.image else "text_document"
        vector = embedder.encode_images([args.image]) if args.image else embedder.encode_texts([args.text])
    elif query is QueryKind.TEXT and args.instruction:
        kind, vector = "text_query", embedder.encode_texts([args.text], args.instruction)
    else:
        kind = {QueryKind.TEXT: "text_query", QueryKind.IMAGE: "image_query"}.get(query, query.value)
        vector = embedder.encode_query(
            query, texts=[args.text] if query.needs_text else None, images=[args.image] if query.needs_image else None
        )
    values = [round(float(value), 7) for value in vector[0]]
    if args.json:
        print(json.dumps({"model": embedder.model_id, "kind": kind, "dim": embedder.dim, "embedding": values}))
    else:
        print(" ".join(str(value) for value in values))
    return 0


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "settings":
        from .settings import Settings, table

        Settings.from_env()  # a malformed value is an error naming it
        print(table())
        return 0
    if args.command == "tiny":
        if args.layout == "hub":
            from .replica import build_replica

            backbone = "siglip-multilingual" if args.backbone == "siglip" else args.backbone
            print(build_replica(args.out, backbone, seed=args.seed))
            return 0
        from .tiny import build_tiny

        print(build_tiny(args.out, backbone=args.backbone, seed=args.seed))
        return 0
    return run_embed(args)


def main(argv=None) -> int:
    """0 ok, 1 error (one line for a user's problem, a traceback for a bug), 2 usage."""
    from .cli import run

    return run(_main, argv, "mme5")


if __name__ == "__main__":
    sys.exit(main())
