"""Serve the photo search UI and HTTP API (the composition root of the app).

Examples:
  python app.py                                   # index assets/photos/ on first start, then serve it
  python app.py --tiny                            # offline smoke mode: tiny random model, sample photos
  python app.py --index ~/.photo-index            # serve an index built with `python -m indexer build`
  python app.py --index hf://datasets/alice/photos   # one published with `python -m indexer push` (read-only)
  python app.py --model ./models/siglip --photos ~/Pictures
  python app.py --model ./models/siglip --runtime torch   # skip ONNX Runtime (the CPU default for SigLIP)
  python -m search_app add-user alice            # create a login (asked twice, never echoed)
  python -m search_app add-token alice           # an API token for /api/v1 (revoke-token alice stops it)
  python app.py --host 0.0.0.0 --port 8080        # reachable from other machines: needs a login (above)
  python app.py --host 0.0.0.0 --auth-file users  # users file written by add-user
  MME5_AUTH=alice:secret python app.py --share    # one login from the environment (a Spaces secret)
  MME5_MODEL=tiny python app.py                   # every flag has an environment variable (for Spaces)

Open the printed URL in a browser; the HTTP API is described at /?view=api.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mme5.errors import ModelLoadError
from mme5.registry import RUNTIME_CHOICES, RUNTIME_HELP
from mme5.threads import share_cores

from .cache_cleanup import DEFAULT_MAX_DAYS, DEFAULT_MAX_GB, start_cache_cleanup
from .hosts import LOOPBACK_NAMES
from .private import cache_home

share_cores()  # the event loop answers HTTP on the cores the model and FAISS use: before torch loads (mme5/threads.py)

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PHOTOS = REPO / "assets" / "photos"
TINY = "tiny"


def build_parser() -> argparse.ArgumentParser:
    from mme5.settings import Settings

    env = Settings.from_env()  # every MME5_* variable, checked: a bad one is a sentence naming it
    on_spaces = bool(os.environ.get("SPACE_ID"))
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--index",
        default=env.index,
        help="index folder, or hf://datasets/USER/NAME[@REVISION] for one published with `python -m "
        "indexer push` (downloaded once into the Hugging Face cache, served read-only) "
        "[env MME5_INDEX; default: the indexer's default, or a cache folder with --tiny]",
    )
    parser.add_argument(
        "--model",
        default=env.model,
        help="hub id or local folder; 'tiny' = offline smoke mode [env MME5_MODEL; default: the "
        "model the index was built with, else mmE5 on a big GPU / SigLIP on CPU]",
    )
    parser.add_argument("--adapter", default=env.adapter, help="peft adapter folder [env MME5_ADAPTER]")
    parser.add_argument("--device", default=env.device, help="cpu, cuda, cuda:1 ... [env MME5_DEVICE]")
    parser.add_argument(
        "--runtime", default=env.runtime, choices=RUNTIME_CHOICES, help=f"{RUNTIME_HELP} [env MME5_RUNTIME]"
    )
    parser.add_argument(
        "--photos",
        default=env.photos or str(SAMPLE_PHOTOS),
        help="folder indexed when the index does not exist yet [env MME5_PHOTOS; default: assets/photos]",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        default=env.model == TINY,
        help="offline smoke mode: build a tiny random-weight model (results are meaningless)",
    )
    parser.add_argument(
        "--host",
        default=env.host or ("0.0.0.0" if on_spaces else "127.0.0.1"),
        help="address to bind [env MME5_HOST; default 127.0.0.1, 0.0.0.0 on Spaces]",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=env.port if env.port is not None else int(os.environ.get("GRADIO_SERVER_PORT") or 7860),
        help="port [env MME5_PORT; default 7860]",
    )
    parser.add_argument(
        "--share",
        action="store_true",
        default=bool(env.share),
        help="also open a public *.gradio.live link [env MME5_SHARE=1]",
    )
    parser.add_argument(
        "--auth-file",
        default=env.auth_file,
        help="users file (NAME:argon2-hash lines) written by `python -m search_app add-user NAME` "
        "[env MME5_AUTH_FILE; default: that command's file when it exists]; also "
        "env MME5_AUTH=user:password for one login from a secret",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests addressed to this host name (a reverse proxy's or a LAN name); "
        "repeat for several. Loopback names, IP addresses and --host are always allowed; "
        "other names are refused against DNS rebinding [env MME5_ALLOWED_HOSTS=a,b]",
    )
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        default=bool(env.allow_anonymous),
        help="serve without login on a network address or --share (anyone who finds the address "
        "sees every photo) [env MME5_ALLOW_ANONYMOUS=1]",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        default=bool(env.watch),
        help="keep the index current while serving: new, changed, moved and deleted photos in the "
        "indexed folders are indexed after each burst (as `python -m indexer watch`) "
        "[env MME5_WATCH=1]",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=env.poll or None,
        metavar="SECONDS",
        help="with --watch: rescan every SECONDS instead of waiting for file events (network mounts) [env MME5_POLL]",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=env.concurrency or 1,
        help="queries run at once on the model; others wait in the queue [env MME5_CONCURRENCY; default 1]",
    )
    parser.add_argument(
        "--api-queue",
        type=int,
        default=256 if env.api_queue is None else env.api_queue,
        help="REST requests (/api/v1) that may wait beyond --concurrency; more answer 503 with "
        "Retry-After at once [env MME5_API_QUEUE; default 256]",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=env.page_size or 24,
        help="photos per page in the UI [env MME5_PAGE_SIZE; default 24]",
    )
    parser.add_argument(
        "--cache-max-gb",
        type=_positive,
        default=env.cache_max_gb or DEFAULT_MAX_GB,
        metavar="GB",
        help="previews, copies of originals, album zips and uploads kept in the cache "
        "folder: the oldest go beyond this size [env MME5_CACHE_MAX_GB; default %(default)s]",
    )
    parser.add_argument(
        "--cache-max-days",
        type=_positive,
        default=env.cache_max_days or DEFAULT_MAX_DAYS,
        metavar="DAYS",
        help="cache files not used for this long are removed (checked at start and "
        "hourly) [env MME5_CACHE_MAX_DAYS; default %(default)s]",
    )
    parser.add_argument(
        "--map-tiles",
        type=_tiles,
        default=env.map_tiles,
        metavar="URL",
        help="the map's tiles: a URL template with {z}, {x} and {y}, or none for a plain map "
        "[env MME5_MAP_TILES; default OpenStreetMap's https://tile.openstreetmap.org/{z}/{x}/{y}.png]",
    )
    return parser


def _tiles(text: str) -> str:
    from mme5.settings import SettingsError, tile_url

    try:
        return tile_url("--map-tiles", text)
    except SettingsError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--map-tiles=")) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def smoke_mode(args) -> bool:
    """--tiny (or --model tiny): a tiny random-weight model, built here, whose results are meaningless."""
    return bool(args.tiny or args.model == TINY)


def resolve_model(args) -> tuple[str | None, Path | None]:
    """(model, index) after applying smoke mode: the tiny model gets its own cached index; an hf:// index is
    downloaded (once) into the Hugging Face cache."""
    from indexer.hub import download_index, is_hub_index

    if is_hub_index(args.index):
        return args.model, download_index(args.index)
    if smoke_mode(args):
        from mme5.tiny import build_tiny

        folder = cache_home() / "tiny-mllama"
        if not (folder / "config.json").is_file():
            print(f"smoke mode: building the tiny random-weight model in {folder}", file=sys.stderr)
            build_tiny(folder, backbone="mllama")
        return str(folder), Path(args.index) if args.index else cache_home() / "index-tiny"
    from indexer import DEFAULT_INDEX_DIR

    return args.model, Path(args.index) if args.index else Path(DEFAULT_INDEX_DIR)


def open_or_build(
    index_dir: Path,
    model: str | None,
    adapter: str | None,
    device: str | None,
    photos: Path,
    runtime: str | None = None,
    published: bool = False,
    gpu=None,
    named: bool = False,
):
    """The engine over ``index_dir``; indexes ``photos`` first when there is no index there yet.

    ``published``: a Hub snapshot (``hf://``), opened read-only with nothing written beside it; its
    originals and previews are symlinks into the cache's blobs folder, which may be served too. ``gpu``: wraps
    each query's forward pass (``zero_gpu()``). ``named``: the user named ``index_dir`` (--index, MME5_INDEX);
    then a missing index is an error unless photos other than the bundled samples were named to fill it (a
    mistyped --index must not quietly serve the samples)."""
    from indexer import IndexNotFoundError, IndexStore, build_index
    from mme5.zero_gpu import on_zero_gpu

    from .engine import SearchEngine
    from .errors import SearchAppError

    if published:
        blobs = index_dir.parent.parent / "blobs"
        return SearchEngine.open(
            index_dir,
            model=model,
            adapter=adapter,
            device=device,
            runtime=runtime,
            extra_roots=[SAMPLE_PHOTOS, *([blobs] if blobs.is_dir() else [])],
            immutable=True,
            gpu=gpu,
        )
    try:
        IndexStore.open(index_dir).close()
    except IndexNotFoundError:
        from mme5 import load_embedder

        if on_zero_gpu():
            raise SearchAppError(
                f"{index_dir}: no index, and on ZeroGPU the app must not index photos at start-up (start-up has a time "
                "limit and the GPU exists only inside @spaces.GPU calls). Build the index on your machine with "
                "`python -m indexer build --dir PHOTOS --index INDEX`, publish it with `python -m indexer push "
                "--index INDEX --repo USER/NAME`, and set the Space variable MME5_INDEX=hf://datasets/USER/NAME"
            ) from None
        if named and photos.resolve() == SAMPLE_PHOTOS.resolve():
            raise SearchAppError(
                f"{index_dir.absolute()}: no index there (no catalog.sqlite). Check the --index path; to index your "
                "photos into a new index there, add --photos DIR (or build it first: `python -m indexer build --dir "
                f"PHOTOS --index {index_dir}`). Without --index the app serves the bundled sample photos."
            ) from None
        if not photos.is_dir():
            raise SearchAppError(
                f"{photos}: photo folder not found; pass --photos DIR, or --index of an existing index"
            ) from None
        embedder = load_embedder(model, device=device, adapter=adapter, runtime=runtime)
        print(f"no index in {index_dir}: indexing {photos} with {embedder.model_id} ...", file=sys.stderr)
        summary = build_index([photos], index_dir, embedder, show_progress=True)
        print(
            f"indexed {summary.added} photos ({len(summary.errors)} unreadable) in {summary.seconds:.1f}s",
            file=sys.stderr,
        )
        return SearchEngine(IndexStore.open(index_dir), embedder, extra_roots=[SAMPLE_PHOTOS], gpu=gpu)
    return SearchEngine.open(
        index_dir, model=model, adapter=adapter, device=device, extra_roots=[SAMPLE_PHOTOS], runtime=runtime, gpu=gpu
    )


def zero_gpu():
    """``spaces.GPU`` on Hugging Face ZeroGPU (wraps each query's forward pass, nothing else), a no-op decorator
    elsewhere (the package is optional)."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU


def is_loopback(host: str) -> bool:
    """True only for addresses other machines cannot reach (127.x, ::1, localhost)."""
    import ipaddress

    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(args, auth) -> None:
    """Refuse to serve private photos to a network or a public link without a login (UsageError, exit 2)."""
    from mme5.cli import UsageError

    exposed = [
        what
        for what, yes in (
            ("--share (a public *.gradio.live link)", args.share),
            (f"--host {args.host} (reachable from other machines)", not is_loopback(args.host)),
        )
        if yes
    ]
    if not exposed or auth is not None:
        return
    if os.environ.get("SPACE_ID"):
        print(
            "note: this Space is public and has no login: anyone can search its photos. To make it private, add a "
            "secret MME5_AUTH=user:password in the Space's settings (or make the Space private).",
            file=sys.stderr,
        )
        return
    if args.allow_anonymous:
        print(
            f"WARNING: serving WITHOUT LOGIN on {' and '.join(exposed)}: anyone who finds the address sees every "
            "photo. Add a user with: python -m search_app add-user NAME",
            file=sys.stderr,
        )
        return
    raise UsageError(
        f"refusing to serve your photos without a login on {' and '.join(exposed)}.\n"
        "  - add a user (asked for a password twice): python -m search_app add-user NAME\n"
        "    then start again (the users file is found automatically, or pass --auth-file FILE)\n"
        "  - or set MME5_AUTH=user:password in the environment\n"
        "  - or, if every photo may be public, pass --allow-anonymous deliberately\n"
        "  - or serve only this machine: --host 127.0.0.1 without --share"
    )


def start_engine(args):
    """The engine the app serves, ready for the first query. Embeds nothing on ZeroGPU (only an existing or
    published index is opened there; compiling and GPU search are skipped by their own ZeroGPU checks)."""
    from indexer.hub import READ_ONLY_ADVICE, is_hub_index
    from mme5.cli import UsageError

    published = is_hub_index(args.index)
    if published and args.watch:
        raise UsageError(f"--watch with --index {args.index}: {READ_ONLY_ADVICE}")
    model, index_dir = resolve_model(args)
    try:
        engine = open_or_build(
            index_dir,
            model,
            args.adapter,
            args.device,
            Path(args.photos),
            args.runtime,
            published=published,
            gpu=zero_gpu(),
            named=args.index is not None,
        )
    except ModelLoadError as error:
        raise ModelLoadError(
            f"{error}\n  - Or try the app offline right now on a tiny random model: python app.py --tiny"
        ) from None
    engine.random_weights = smoke_mode(args)
    engine.embedder.compile_queries()  # compile + warm up the one-text query path now (logged), not on a user's query
    engine.store.index.prepare_search()  # a big flat index goes to the GPU now, if it fits beside the model
    return engine


LOGIN_MESSAGE = "Log in to search this photo library."


def serve(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .auth import LoginThrottle, SessionGuard, load_auth
    from .login_page import LoginPage
    from .hosts import HostGuard, allowed_hosts
    from .limits import MAX_UPLOAD_BYTES
    from .private import private_dir

    from mme5.settings import Settings

    auth = load_auth(args.auth_file, Settings.from_env().auth)
    check_exposure(args, auth)
    # Gradio copies every preview and upload into its cache folder: keep it private too (0700), not /tmp/gradio.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(private_dir(cache_home() / "gradio")))
    start_cache_cleanup(args.cache_max_gb, args.cache_max_days)  # those copies, previews, zips: within budget
    engine = start_engine(args)
    index_dir = engine.store.index_dir

    if args.watch:
        from indexer.watch import Watcher, watch_roots

        # The build takes the index's write lock, so a `python -m indexer build` elsewhere waits its turn (and
        # the watcher retries); the engine notices each commit and reopens the index by itself.
        Watcher(index_dir, watch_roots(index_dir, []), engine.embedder, poll=args.poll).start()
        print(
            f"watching the indexed folders of {index_dir}" + (f" (polling every {args.poll:g} s)" if args.poll else ""),
            file=sys.stderr,
        )

    from starlette.middleware import Middleware

    from .rest import rest_routes
    from .ui import CSS, JS, THEME, SearchUI
    from .uploads import UploadGuard

    demo = SearchUI(
        engine,
        concurrency_limit=args.concurrency,
        page_size=args.page_size,
        map_tiles=args.map_tiles,
        logout=auth is not None,
    ).build()
    demo.queue(default_concurrency_limit=args.concurrency, max_size=None)
    stats = engine.stats()
    login = f", login required ({len(auth.users)} user(s))" if auth else ""
    print(
        f"serving {stats['images']} photos with {stats['model']} on http://{args.host}:{args.port}{login}",
        file=sys.stderr,
    )
    throttle = Middleware(LoginThrottle, trust_forwarded=bool(os.environ.get("SPACE_ID")))
    hosts = Middleware(HostGuard, allow=allowed_hosts(args.host, args.allowed_host, args.share))
    # with login on: users removed from the file are logged out, and a visit without a login gets the app's own
    # login page (search_app/login_page.py: autocomplete attributes, the user name kept after a failure)
    sessions = (
        [Middleware(SessionGuard, authenticator=auth), Middleware(LoginPage, message=LOGIN_MESSAGE)] if auth else []
    )
    uploads = Middleware(UploadGuard)
    middleware = [
        hosts,
        *sessions,
        throttle,
        uploads,
    ]  # outermost first: a foreign Host is refused before anything else
    from .map_view import static_route

    rest = [*rest_routes(engine, auth, args), static_route()]  # /api/v1 and the map's files, before Gradio's own
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=MAX_UPLOAD_BYTES,
        css=CSS,
        js=JS,
        theme=THEME,
        footer_links=["api", "gradio"],
        show_error=False,
        quiet=True,
        auth=auth.login if auth else None,
        auth_message=LOGIN_MESSAGE,
        app_kwargs={"middleware": middleware, "routes": rest},
    )
    return 0


def main(argv=None) -> int:
    from indexer import IndexerError
    from mme5.cli import run

    from .errors import SearchAppError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["add-user"]:
        from .auth import add_user_cli

        return run(add_user_cli, argv[1:], "add-user", (SearchAppError,))
    if argv[:1] in (["add-token"], ["revoke-token"]):
        from . import tokens

        command = tokens.add_token_cli if argv[0] == "add-token" else tokens.revoke_token_cli
        return run(command, argv[1:], argv[0], (SearchAppError,))
    return run(serve, argv, "app", (SearchAppError, IndexerError))


if __name__ == "__main__":
    sys.exit(main())
