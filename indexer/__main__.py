"""Index photo folders for mmE5 search, and search, inspect, check or shrink the index.

Examples:
  python -m indexer build --dir ~/Pictures                     # index into ./index (default model)
  python -m indexer build --dir photos/ --dir /mnt/camera --index my-index --model models/tiny
  python -m indexer build --index my-index                     # re-scan every folder the index knows
  python -m indexer build --index my-index --prune             # photos of a folder that looks unmounted go too
  python -m indexer build --dir /mnt/nfs/archive --index my-index --engine ray --ray-address auto   # on a Ray cluster
  python -m indexer search --index my-index --text "un perro en la playa" -k 5
  python -m indexer search --index my-index --image query.jpg --text "but at night" --json
  python -m indexer build --dir ~/Pictures --runtime onnx-int8  # SigLIP on the CPU, int8 (a separate index)
  python -m indexer info --index my-index --json
  python -m indexer verify --index my-index --deep              # compare every vector, not a sample
  python -m indexer verify --index my-index --repair
  python -m indexer remove --index my-index --dir /mnt/camera
  python -m indexer watch --index my-index                     # keep it current as photos come and go
  python -m indexer watch --index my-index --dir /mnt/nas --poll 30   # network mount: rescan every 30 s
  python -m indexer similar --index my-index --threshold 0.95 --json   # groups of near-identical photos
  python -m indexer push --index my-index --repo alice/photos  # publish it for a Space (see push --help)
  python -m indexer info --index hf://datasets/alice/photos    # a published index, read from the HF cache
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mme5.threads import share_cores

# Only light modules at import time: everything heavy loads inside main(), where Ctrl-C is handled.
from .errors import Terminated
from .files import DEFAULT_INDEX_DIR, decodable, printable

share_cores()  # decoding threads share the cores with torch: before torch loads (mme5/threads.py)

if TYPE_CHECKING:  # annotations only: fulltext loads SQLAlchemy
    from .fulltext import TextHit

EPILOG = __doc__.split("\n", 2)[2]


def build_parser() -> argparse.ArgumentParser:
    from mme5.cli import held_interrupts
    from mme5.registry import RUNTIME_CHOICES, RUNTIME_HELP

    with held_interrupts():  # the first import of numpy (and PIL) in a build
        from .build import DEFAULT_MAX_PRUNE_SHARE
        from .reader import DEFAULT_DECODE_BUDGET

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m indexer", description=__doc__.split("\n\n")[0], epilog=EPILOG, formatter_class=formatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, epilog=EPILOG, formatter_class=formatter)
        sub.add_argument(
            "--index", type=Path, default=DEFAULT_INDEX_DIR, help=f"index folder (default: ./{DEFAULT_INDEX_DIR})"
        )
        return sub

    build = command("build", "index new photos, re-embed changed ones, drop deleted ones (resumes after a crash)")
    build.add_argument(
        "--dir",
        dest="dirs",
        type=Path,
        action="append",
        default=[],
        help="photo folder (repeatable; default: every folder the index already has)",
    )
    build.add_argument(
        "--model",
        help="hub id or local folder (default: the index's model; for a new index "
        "mmE5 on a big GPU, multilingual SigLIP otherwise)",
    )
    build.add_argument("--adapter", help="peft adapter folder merged into the model")
    build.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="images per model batch and per commit (default 8; lowered, with a note, when the "
        "GPU has too little free memory for it)",
    )
    build.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda, else Apple mps, else cpu)")
    build.add_argument("--runtime", choices=RUNTIME_CHOICES, help=RUNTIME_HELP)
    build.add_argument(
        "--index-type",
        choices=["auto", "flat", "ivf", "ivf-sq8", "ivf-pq"],
        help="FAISS index type (default auto: exact up to 100k images, IVF+SQ8 up to 1M, then "
        "IVF+PQ at <= 1 KB per image with exact re-ranking)",
    )
    build.add_argument(
        "--workers",
        type=int,
        help="local engine: decoding threads (default: CPU count, at most 8); "
        "ray engine: embedding workers (default: one per GPU, or 1)",
    )
    build.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (default): this process does everything; ray: decode and embed on a Ray "
        "cluster, this process keeps the catalog (photos must be at the same path on every node)",
    )
    build.add_argument(
        "--ray-address",
        help="ray engine: 'auto' (a running cluster), ray://HOST:10001 or a GCS "
        "address (default: start a local Ray on this machine)",
    )
    build.add_argument(
        "--gpus-per-worker",
        type=float,
        help="ray engine: GPUs per embedding worker (default 1 when the cluster has GPUs, else CPU)",
    )
    build.add_argument(
        "--cpus-per-decoder", type=float, default=1.0, help="ray engine: CPUs per decoding task (default 1)"
    )
    build.add_argument("--include-hidden", action="store_true", help="also index hidden files and folders")
    build.add_argument(
        "--prune",
        action="store_true",
        help="drop every photo whose file is gone, even when a whole folder looks unmounted or more "
        "than --max-prune-share of it vanished (by default those are kept, with a warning)",
    )
    build.add_argument(
        "--max-prune-share",
        type=float,
        default=DEFAULT_MAX_PRUNE_SHARE,
        help=f"largest share of a folder's photos a build drops without --prune (default {DEFAULT_MAX_PRUNE_SHARE})",
    )
    build.add_argument(
        "--decode-budget-mp",
        type=float,
        default=DEFAULT_DECODE_BUDGET / 1e6,
        help="megapixels decoded at once across all decoding threads, bounding memory "
        f"(default {DEFAULT_DECODE_BUDGET / 1e6:g}, about 4 bytes each; a larger image is "
        "decoded alone)",
    )
    build.add_argument(
        "--ocr",
        choices=["auto", "on", "off"],
        default="auto",
        help="read text in photos with Tesseract (auto, the default: when it is installed; on: "
        "required; off: never). File and folder names, captions and keywords are read always",
    )
    build.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    build.add_argument("--quiet", action="store_true", help="no progress bars")

    search = command("search", "top-k images for a text, an image, or an image plus a modifying text")
    search.add_argument("--text", help="query text (with --image: how to change the image)")
    search.add_argument("--image", type=Path, help='query image ("more like this")')
    search.add_argument("-k", type=int, default=20, help="results to print (default 20)")
    search.add_argument("--model", help="override the index's model (must be the same vector space)")
    search.add_argument("--adapter", help="override the index's adapter")
    search.add_argument("--device", help="cpu, cuda ... (default: cuda, else Apple mps, else cpu)")
    search.add_argument("--runtime", choices=RUNTIME_CHOICES, help=RUNTIME_HELP)
    search.add_argument("--json", action="store_true", help="print results as JSON")

    info = command("info", "counts, model, index type and recall, size on disk, folders, last build, errors")
    info.add_argument("--json", action="store_true", help="print the JSON payload documented in docs/indexer.md")

    verify = command(
        "verify", "check the catalog (SQLite integrity check) and that it agrees with the vector index (exit 1 if not)"
    )
    verify.add_argument(
        "--deep",
        action="store_true",
        help="compare every vector in the vector index with its stored vector, and check every stored vector (slower)",
    )
    verify.add_argument(
        "--repair",
        action="store_true",
        help="salvage a damaged catalog, rebuild the vector index from stored vectors, drop orphans, then check again",
    )

    similar = command("similar", "groups of near-identical photos (bursts, edits, resized copies), best one first")
    similar.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="least similarity (cosine) joining two photos (default: the index's model family's "
        "value in mme5/registry.py, 0.95 until calibrated; see docs/app.md)",
    )
    similar.add_argument("--json", action="store_true", help="print the groups as JSON")
    similar.add_argument("--quiet", action="store_true", help="no progress bar")

    remove = command("remove", "forget a photo folder: its images leave the index")
    remove.add_argument("--dir", type=Path, required=True, help="an indexed folder")
    watch = command(
        "watch",
        "keep the index current: build after each burst of new, changed, moved or deleted "
        "photos (Ctrl-C to stop; a restart catches up)",
    )
    watch.add_argument(
        "--dir",
        dest="dirs",
        type=Path,
        action="append",
        default=[],
        help="photo folder to watch (repeatable; default: every folder the index already has)",
    )
    watch.add_argument(
        "--poll",
        type=float,
        metavar="SECONDS",
        help="rescan every SECONDS instead of waiting for file events (network mounts)",
    )
    watch.add_argument("--model", help="as for build (default: the index's model)")
    watch.add_argument("--adapter", help="as for build")
    watch.add_argument("--runtime", choices=RUNTIME_CHOICES, help="as for build (default: the index's own)")
    watch.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    watch.add_argument("--batch-size", type=int, default=8, help="images per model batch and per commit (default 8)")
    watch.add_argument("--quiet", action="store_true", help="no progress bars")
    from .hub import COMMIT_FILES

    push = commands.add_parser(
        "push",
        help="publish the index as a Hugging Face dataset (catalog, vectors, previews) for a Space to serve",
        description="Publish an index as a Hugging Face dataset repo: catalog, vectors and a 384 px preview of every "
        "photo (the originals only with --originals); serve it with "
        "`python app.py --index hf://datasets/USER/NAME`. No path of your folders is uploaded. Files "
        f"the repo lacks go in commits of {COMMIT_FILES:,}, the catalog last: until then the repo serves "
        "the previous index, and after a failure the same command resumes.",
        epilog=PUSH_EXAMPLES,
        formatter_class=formatter,
    )
    push.add_argument(
        "--index", type=Path, default=DEFAULT_INDEX_DIR, help=f"index folder (default: ./{DEFAULT_INDEX_DIR})"
    )
    push.add_argument("--repo", required=True, metavar="USER/NAME", help="dataset repo to create or update")
    push.add_argument("--private", action="store_true", help="create the repo private (a Space then needs HF_TOKEN)")
    push.add_argument(
        "--originals",
        action="store_true",
        help="upload the photos themselves too (default: previews only; 'download original' then "
        "shows that the original was not published)",
    )
    push.add_argument("--token", help="Hugging Face token with write access (default: HF_TOKEN or `hf auth login`)")
    push.add_argument(
        "--model-id",
        metavar="ORG/NAME",
        help="Hub id of the index's model when it was built from a local folder (checked by content "
        "when the app loads it)",
    )
    push.add_argument("--message", help="message of the last commit (the one that publishes the catalog)")
    push.add_argument(
        "--prepare-only",
        type=Path,
        metavar="FOLDER",
        help="write what would be uploaded into FOLDER (new or empty) and upload nothing",
    )
    push.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


PUSH_EXAMPLES = """Examples:
  hf auth login                                                  # once: a token with write access
  python -m indexer push --index my-index --repo alice/holiday-photos
  python -m indexer push --index my-index --repo alice/holiday-photos --private --originals
  python -m indexer push --index my-index --repo alice/photos --model-id google/siglip-base-patch16-256-multilingual
  python -m indexer push --index my-index --repo alice/photos --prepare-only /tmp/upload   # look first
  python app.py --index hf://datasets/alice/holiday-photos      # serve it (also: MME5_INDEX on a Space)
"""


def run_push(args) -> int:
    from .hub import push
    from .publish import prepare_push

    if args.prepare_only is not None:
        prepared = prepare_push(
            args.index,
            args.prepare_only,
            originals=args.originals,
            model_id=args.model_id,
            show_progress=not args.quiet,
        )
        for line in prepared.skipped:
            print(printable(f"indexer: not published: {line}"), file=sys.stderr)
        print(
            printable(
                f"prepared {prepared.photos} photos ({prepared.previews} previews, {prepared.originals} "
                f"originals, model {prepared.model_id}{' + its adapter in adapter/' if prepared.adapter else ''}) in "
                f"{prepared.folder}; nothing uploaded"
            )
        )
        return 0
    url = push(
        args.index,
        args.repo,
        private=args.private,
        originals=args.originals,
        token=args.token,
        model_id=args.model_id,
        message=args.message,
        show_progress=not args.quiet,
    )
    print(f"published: {url}\nserve it with: python app.py --index hf://datasets/{args.repo}")
    return 0


def run_watch(args) -> int:
    from mme5 import load_embedder

    from .store import index_model
    from .watch import Watcher, watch_roots

    if args.poll is not None and args.poll <= 0:
        from mme5.cli import UsageError

        raise UsageError(f"--poll must be a positive number of seconds, got {args.poll}")
    model, adapter, runtime = index_model(args.index, args.model, args.adapter, args.runtime)
    roots = watch_roots(args.index, args.dirs)
    embedder = load_embedder(model, device=args.device, adapter=adapter, runtime=runtime)
    watcher = Watcher(
        args.index, roots, embedder, poll=args.poll, show_progress=not args.quiet, batch_size=args.batch_size
    )
    try:
        watcher.run()
    except KeyboardInterrupt:
        print("stopped watching; committed builds are kept", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _undone_if_empty(index_dir: Path, before: set[str] | None):
    """A build that fails before writing anything (a missing model, Ctrl-C while loading) leaves the index folder
    as it was: the lock file it added is removed, and the folder too when the build made it. ``before``: the
    folder's names before, None when it did not exist. Runs while the caller still holds the lock."""
    try:
        yield
    except BaseException:
        from .lock import LOCK_FILE

        try:
            if set(os.listdir(index_dir)) - (before or set()) == {LOCK_FILE}:
                (index_dir / LOCK_FILE).unlink()
                if before is None:
                    index_dir.rmdir()
        except OSError:  # Windows keeps an open lock file; another process wrote meanwhile: leave it
            pass
        raise


def run_build(args) -> int:
    from .build import build_index
    from .scan import plan_roots
    from .lock import WriteLock
    from .store import index_model

    from mme5.cli import UsageError

    if not 0 <= args.max_prune_share <= 1:
        raise UsageError(f"--max-prune-share must be between 0 and 1, got {args.max_prune_share}")
    if args.decode_budget_mp <= 0:
        raise UsageError(f"--decode-budget-mp must be positive, got {args.decode_budget_mp}")
    index_dir = args.index.expanduser().absolute()
    plan_roots(args.dirs, index_dir)  # fail on a bad --dir before spending time on the model
    model, adapter, runtime = index_model(index_dir, args.model, args.adapter, args.runtime)
    before = set(os.listdir(index_dir)) if index_dir.is_dir() else None
    from .ocr import engine_for

    ocr_engine = engine_for(args.ocr)  # --ocr on without Tesseract fails here, before the model loads
    missing = " (Tesseract with language data not found)" if args.ocr == "auto" else ""
    print(f"indexer: {ocr_engine.describe() if ocr_engine else 'OCR: off' + missing}", file=sys.stderr)
    index_dir.mkdir(parents=True, exist_ok=True)
    with WriteLock(index_dir, "build"), _undone_if_empty(index_dir, before):
        # the lock first: a second build is refused now, not after minutes of model loading
        from mme5 import load_embedder

        embedder = load_embedder(model, device=args.device, adapter=adapter, runtime=runtime)
        ray_options = None
        if args.engine == "ray":
            from .ray_engine import RayOptions

            ray_options = RayOptions(
                address=args.ray_address,
                workers=args.workers,
                gpus_per_worker=args.gpus_per_worker,
                cpus_per_decoder=args.cpus_per_decoder,
            )
        summary = build_index(
            args.dirs,
            index_dir,
            embedder,
            batch_size=args.batch_size,
            show_progress=not args.quiet,
            index_type=args.index_type,
            include_hidden=args.include_hidden,
            workers=None if ray_options else args.workers,
            engine=args.engine,
            ray_options=ray_options,
            prune=args.prune,
            max_prune_share=args.max_prune_share,
            decode_budget=max(1, int(args.decode_budget_mp * 1e6)),
            ocr=args.ocr,
        )
    problems = [*summary.errors, *summary.skipped]
    for error in problems[:20]:
        print(printable(f"  skipped {error.path}: {error.reason}"), file=sys.stderr)
    if len(problems) > 20:
        print(
            printable(f"  ... and {len(problems) - 20} more (python -m indexer info --index {args.index})"),
            file=sys.stderr,
        )
    for error in summary.text.get("errors", [])[:20]:
        print(printable(f"  no text read from {error['path']}: {error['reason']}"), file=sys.stderr)
    for warning in summary.warnings:  # repeated after the progress bars, where they are read
        print(printable(f"WARNING: {warning}"), file=sys.stderr)
    print(json.dumps(summary.to_dict()) if args.json else str(summary))
    return 0


def run_search(args) -> int:
    from mme5.registry import QueryKind

    from .store import open_index
    from .video_rows import fold_videos

    if args.text is None and args.image is None:
        print("error: give --text, --image, or both", file=sys.stderr)
        return 2
    if args.k < 1:
        print(f"error: -k must be at least 1, got {args.k}", file=sys.stderr)
        return 2
    embedder, store = open_index(
        args.index,
        model=args.model,
        adapter=args.adapter,
        device=args.device,
        runtime=args.runtime,
        immutable=args.immutable,
    )
    with store:
        kind = QueryKind.of(text=args.text, image=args.image)
        query = embedder.encode_query(
            kind, texts=[args.text] if kind.needs_text else None, images=[str(args.image)] if kind.needs_image else None
        )
        scores, ids = store.search(query, min(max(store.count, 1), 8 * args.k))  # a video's keyframes fold into one
        hits = [(float(s), r) for s, r in zip(scores[0], store.records(ids[0])) if r is not None]
        matches: dict[int, TextHit] = {}
        if kind.needs_text and not kind.needs_image:  # words in the photos, their names and metadata
            from .fulltext import fused_with_text

            hits, matches = fused_with_text(store, query, args.text, hits, len(hits))
        folded = fold_videos(hits)[: args.k]
    if args.json:
        results = [
            {
                "path": decodable(r.path),
                "score": round(s, 6),
                "id": r.id,
                "size": r.size,
                "taken_at": r.taken_at.isoformat() if r.taken_at else None,
                "camera": r.camera,
                "width": r.width,
                "height": r.height,
                "content_hash": r.content_hash,
                "media_type": r.media_type,
                **(
                    {
                        "timestamp_s": r.timestamp_s,
                        "duration_s": r.duration_s,
                        "moments": [{"timestamp_s": t, "score": round(m, 6)} for t, m in moments],
                    }
                    if r.media_type == "video"
                    else {}
                ),
                **(
                    {
                        "motion": r.motion,
                        "live": True,
                        "motion_clip": decodable(r.motion_clip) if r.motion_clip else None,
                    }
                    if r.motion
                    else {}
                ),
                "text_match": matches[r.id].to_json() if r.id in matches else None,
            }
            for s, r, moments in folded
        ]
        print(
            json.dumps(
                {"text": args.text, "image": str(args.image) if args.image else None, "results": results},
                ensure_ascii=False,
            )
        )
    else:
        for score, record, moments in folded:
            at = (
                ""
                if record.media_type != "video"
                else f"\tat {record.timestamp_s:.1f} s"
                + (f" (+{len(moments) - 1} more moments)" if len(moments) > 1 else "")
            )
            print(f"{score:.4f}\t{printable(record.path)}{at}")
    return 0


def run_info(args) -> int:
    from .lock import lock_holder
    from .store import IndexStore

    with IndexStore.open(args.index, immutable=args.immutable) as store:
        info = store.info()
    writer = lock_holder(args.index)
    info["build_running"] = writer[0] if writer and writer[1] == "build" else None
    if args.json:
        print(json.dumps(_printable_tree(info), ensure_ascii=False, default=str))
        return 0
    recall = info["recall"] or {}
    sizes = info["size_bytes"]
    print(f"index:        {printable(str(info['index_dir']))}")
    print(f"images:       {info['images']} searchable, {info['errors']} with errors")
    if info.get("raw", {}).get("files"):
        print(f"camera RAW:   {info['raw']['files']} files, {info['raw']['pairs']} RAW+JPEG pairs (each shown once)")
    print(f"model:        {info['model_id']}" + (f" + adapter {info['adapter']}" if info["adapter"] else ""))
    print(f"dim:          {info['dim']} (prompt version {info['prompt_version']})")
    recall_text = "exact" if recall.get("exact", True) else f"recall@{recall['k']} {recall['recall_at_k']:.3f}"
    print(f"index type:   {info['index_type']} ({recall_text}; {info['bytes_per_image']} bytes per image)")
    print(
        f"size on disk: {sizes['total'] / 1e6:.1f} MB (catalog {sizes['catalog'] / 1e6:.1f} MB, "
        f"vector index {sizes['vector_index'] / 1e6:.1f} MB, vector store {sizes['vector_store'] / 1e6:.1f} MB)"
    )
    store = info["vector_store"]
    print(
        f"re-rank:      {store['file']}: {store['rows']} rows, memory-mapped"
        if store["serves"] == "memory map"
        else f"re-rank:      from the catalog ({store['file']}: {store['state']})"
    )
    print("folders:      " + (", ".join(printable(root) for root in info["roots"]) or "none"))
    last = info["last_build"]
    if last:
        print(
            f"last build:   {info['last_build_at']}: added {last['added']}, updated {last['updated']}, "
            f"moved {last['moved']}, removed {last['removed']}, unchanged {last['unchanged']}, "
            f"errors {last['error_count']}"
            + (f", skipped {last['skipped_count']}" if last.get("skipped_count") else "")
            + f" in {last['seconds']:.1f} s"
        )
        for warning in last.get("warnings", []):
            print(printable(f"  WARNING: {warning}"))
    print(
        f"catalog:      {info['catalog_check']}"
        + (" (read-only storage: searchable, not writable)" if info["read_only"] else "")
    )
    if writer:
        print(f"build:        {_writer_text(writer)}; the vector index catches up when it finishes")
    elif not info["in_sync"]:
        print("note:         the vector index lags the catalog (interrupted build); run build or verify --repair")
    for error in info["error_list"]:
        print(printable(f"  error {error['path']}: {error['error']}"))
    return 0


def _writer_text(writer: tuple) -> str:
    """'a build is running (pid N)' for the lock holder lock_holder() found."""
    pid, purpose = writer
    what = "a build is running" if purpose == "build" else f"an indexer process is writing this index ({purpose})"
    return f"{what} (pid {pid if pid is not None else 'unknown'})"


def run_verify(args) -> int:
    from .maintenance import verify

    report = verify(args.index, repair=args.repair, deep=args.deep)
    for problem in report.problems:
        print(printable(f"problem: {problem}"), file=sys.stderr)
    for fixed in report.repaired:
        print(printable(f"repaired: {fixed}"), file=sys.stderr)
    for left in report.unrepaired:
        print(printable(f"not repaired: {left}"), file=sys.stderr)
    for note in report.notes:
        print(printable(f"note: {note}"), file=sys.stderr)
    if report.clean:
        compared = report.checked.get("vectors_compared")
        print(
            f"ok: {report.checked.get('images', 0)} images, catalog sound, catalog and vector index agree"
            + (f" ({compared} vectors compared)" if compared is not None else "")
        )
        return 0
    if args.repair and not report.unrepaired:
        print("repaired, and checked again: catalog sound, catalog and vector index agree")
        return 0
    if report.writer and not args.repair:  # its batches are committed, its vector index is saved at the end
        print(
            f"{_writer_text(report.writer)}: until it finishes the vector index lags the catalog, so these "
            "differences are expected; run verify again when it has finished"
        )
        return EXIT_BUSY
    if args.repair:
        print(f"{len(report.unrepaired)} problem(s) remain after the repair (see above)")
        return 1
    print(f"{len(report.problems)} problem(s); run: python -m indexer verify --index {args.index} --repair")
    return 1


def run_remove(args) -> int:
    from .maintenance import remove_root

    removed = remove_root(args.index, args.dir)
    print(printable(f"removed {args.dir}: {removed} image(s) left the index"))
    return 0


def run_similar(args) -> int:
    from tqdm import tqdm

    from .similar import default_threshold, similar_groups
    from .store import IndexStore

    with IndexStore.open(args.index) as store:
        if args.threshold is None:
            args.threshold = default_threshold(store)
        with tqdm(total=store.count, desc="comparing", unit="photo", disable=args.quiet, file=sys.stderr) as bar:
            groups = similar_groups(store, args.threshold, progress=bar)
    if args.json:
        print(
            json.dumps(
                _printable_tree({"threshold": args.threshold, "groups": [g.to_json() for g in groups]}),
                ensure_ascii=False,
                indent=1,
            )
        )
        return 0
    for number, group in enumerate(groups, start=1):
        print(f"group {number}: {len(group.members)} photos")
        for member in group.members:
            mark = "*" if member is group.best else " "
            sharp = "?" if member.sharpness is None else f"{member.sharpness:.0f}"
            print(
                f"  {mark} {printable(member.path)}  {member.width or '?'}x{member.height or '?'}  "
                f"sharpness {sharp}  similarity {member.score:.3f}"
            )
    print(
        f"{len(groups)} group(s) at similarity >= {args.threshold} (* = best: most pixels, then sharpest)",
        file=sys.stderr,
    )
    return 0


def _printable_tree(value):
    """For JSON: json.dumps escapes control characters itself; only undecodable bytes need escaping."""
    if isinstance(value, str):
        return decodable(value)
    if isinstance(value, dict):
        return {key: _printable_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable_tree(item) for item in value]
    return value


EXIT_BUSY = 75  # sysexits EX_TEMPFAIL: verify during a build; try again when it has finished
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


def _resolve_hub_index(args) -> None:
    """``--index hf://datasets/USER/NAME``: searched and described from the Hugging Face cache, never written."""
    from .hub import READ_ONLY_ADVICE, download_index, is_hub_index

    args.immutable = False
    if not is_hub_index(args.index):
        return
    if args.command not in ("search", "info"):
        from mme5.cli import UsageError

        raise UsageError(f"{args.command} --index {str(args.index).replace('hf:/', 'hf://', 1)}: {READ_ONLY_ADVICE}")
    args.index, args.immutable = download_index(args.index), True


def _raise_terminated(signum, frame):
    raise Terminated()


def _main(argv) -> int:
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        handlers = {
            "build": run_build,
            "search": run_search,
            "info": run_info,
            "verify": run_verify,
            "remove": run_remove,
            "watch": run_watch,
            "similar": run_similar,
            "push": run_push,
        }
        _resolve_hub_index(args)
        return handlers[command](args)
    except KeyboardInterrupt as interrupt:  # also Terminated; never a traceback, even during start-up
        terminated = isinstance(interrupt, Terminated)
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        if command in ("build", "remove", "watch") or getattr(interrupt, "kept", None):
            kept = getattr(interrupt, "kept", None) or "committed progress is kept"
            what += f"; {kept}; run the same command again to resume"
        print(printable(what), file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def main(argv=None) -> int:
    """0 ok, 1 error (one line for a user's problem, a traceback for a bug), 2 usage, 75 busy, 130/143 stopped."""
    from mme5.cli import run

    from .errors import IndexerError

    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)  # systemd/docker stop: unwind like Ctrl-C
    try:
        return run(
            _main,
            argv,
            "indexer",
            (IndexerError,),
            escape=printable,
            interrupted="interrupted; committed progress is kept, run the same command again to resume",
        )
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
