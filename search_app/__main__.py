"""Serve the photo search UI and HTTP API (the composition root of the app).

Examples:
  python app.py                                   # index assets/photos/ on first start, then serve it
  python app.py --tiny                            # offline smoke mode: tiny random model, sample photos
  python app.py --index ~/.photo-index            # serve an index built with `python -m indexer build`
  python app.py --model ./models/siglip --photos ~/Pictures
  python app.py --host 0.0.0.0 --port 8080        # reachable from other machines
  MME5_MODEL=tiny python app.py                   # every flag has an environment variable (for Spaces)

Open the printed URL in a browser; the HTTP API is described at /?view=api.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PHOTOS = REPO / "assets" / "photos"
TINY = "tiny"


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mme5-search"


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    on_spaces = bool(env("SPACE_ID"))
    parser = argparse.ArgumentParser(
        prog="python app.py", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--index", default=env("MME5_INDEX"),
                        help="index folder [env MME5_INDEX; default: the indexer's default, or a cache folder with --tiny]")
    parser.add_argument("--model", default=env("MME5_MODEL"),
                        help="hub id or local folder; 'tiny' = offline smoke mode [env MME5_MODEL; default: the "
                             "model the index was built with, else mmE5 on a big GPU / SigLIP on CPU]")
    parser.add_argument("--adapter", default=env("MME5_ADAPTER"), help="peft adapter folder [env MME5_ADAPTER]")
    parser.add_argument("--device", default=env("MME5_DEVICE"), help="cpu, cuda, cuda:1 ... [env MME5_DEVICE]")
    parser.add_argument("--photos", default=env("MME5_PHOTOS", str(SAMPLE_PHOTOS)),
                        help="folder indexed when the index does not exist yet [env MME5_PHOTOS; default: assets/photos]")
    parser.add_argument("--tiny", action="store_true", default=env("MME5_MODEL") == TINY,
                        help="offline smoke mode: build a tiny random-weight model (results are meaningless)")
    parser.add_argument("--host", default=env("MME5_HOST", "0.0.0.0" if on_spaces else "127.0.0.1"),
                        help="address to bind [env MME5_HOST; default 127.0.0.1, 0.0.0.0 on Spaces]")
    parser.add_argument("--port", type=int, default=int(env("MME5_PORT") or env("GRADIO_SERVER_PORT") or 7860),
                        help="port [env MME5_PORT; default 7860]")
    parser.add_argument("--share", action="store_true", default=env("MME5_SHARE", "") == "1",
                        help="also open a public *.gradio.live link [env MME5_SHARE=1]")
    parser.add_argument("--concurrency", type=int, default=int(env("MME5_CONCURRENCY") or 1),
                        help="queries run at once on the model; others wait in the queue [env MME5_CONCURRENCY; "
                             "default 1]")
    parser.add_argument("--page-size", type=int, default=int(env("MME5_PAGE_SIZE") or 24),
                        help="photos per page in the UI [env MME5_PAGE_SIZE; default 24]")
    return parser


def resolve_model(args) -> tuple[str | None, Path | None]:
    """(model, index) after applying smoke mode: the tiny model gets its own cached index."""
    if args.tiny or args.model == TINY:
        from mme5.tiny import build_tiny

        folder = cache_home() / "tiny-mllama"
        if not (folder / "config.json").is_file():
            print(f"smoke mode: building the tiny random-weight model in {folder}", file=sys.stderr)
            build_tiny(folder, backbone="mllama")
        return str(folder), Path(args.index) if args.index else cache_home() / "index-tiny"
    from indexer import DEFAULT_INDEX_DIR

    return args.model, Path(args.index) if args.index else Path(DEFAULT_INDEX_DIR)


def open_or_build(index_dir: Path, model: str | None, adapter: str | None, device: str | None, photos: Path):
    """The engine over ``index_dir``; indexes ``photos`` first when there is no index there yet."""
    from indexer import IndexNotFoundError, IndexStore, build_index

    from .engine import SearchEngine

    try:
        IndexStore.open(index_dir).close()
    except IndexNotFoundError:
        from mme5 import load_embedder

        if not photos.is_dir():
            raise FileNotFoundError(f"{photos}: photo folder not found; pass --photos DIR, or --index of an existing "
                                    "index") from None
        embedder = load_embedder(model, device=device, adapter=adapter)
        print(f"no index in {index_dir}: indexing {photos} with {embedder.model_id} ...", file=sys.stderr)
        summary = build_index([photos], index_dir, embedder, show_progress=True)
        print(f"indexed {summary.added} photos ({len(summary.errors)} unreadable) in {summary.seconds:.1f}s", file=sys.stderr)
        return SearchEngine(IndexStore.open(index_dir), embedder, extra_roots=[SAMPLE_PHOTOS])
    return SearchEngine.open(index_dir, model=model, adapter=adapter, device=device, extra_roots=[SAMPLE_PHOTOS])


def zero_gpu():
    """``spaces.GPU`` on Hugging Face ZeroGPU, a no-op decorator elsewhere (the package is optional)."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from indexer import IndexerError
    from mme5 import ModelLoadError

    model, index_dir = resolve_model(args)
    try:
        engine = open_or_build(index_dir, model, args.adapter, args.device, Path(args.photos))
    except ModelLoadError as error:
        print(f"error: {error}\n  - Or try the app offline right now on a tiny random model: python app.py --tiny",
              file=sys.stderr)
        return 2
    except (IndexerError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    engine.embedder.compile_queries()  # compile + warm up the one-text query path now (logged), not on a user's query
    engine.store.index.prepare_search()  # a big flat index goes to the GPU now, if it fits beside the model

    from .ui import CSS, JS, SearchUI

    demo = SearchUI(engine, concurrency_limit=args.concurrency, gpu=zero_gpu(), page_size=args.page_size).build()
    demo.queue(default_concurrency_limit=args.concurrency, max_size=None)
    stats = engine.stats()
    print(f"serving {stats['images']} photos with {stats['model']} on http://{args.host}:{args.port}", file=sys.stderr)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size="20mb", css=CSS, js=JS,
                footer_links=["api", "gradio"], show_error=False, quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
