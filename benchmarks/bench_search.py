"""Search latency, p50/p95 per query type, at several index sizes: engine-only and end-to-end over HTTP.

For each size an index is made the way the indexer makes one (a real build of a few photos,
then random unit vectors added as extra catalog rows, and the FAISS index rebuilt from the
catalog with the type the indexer picks for that size). Then, per query type (text, image,
composed):
  engine     SearchEngine.search_* in-process, split into model time (encoding the query) and
             index time (FAISS + catalog + filters); the model should dominate
  rank       SearchEngine.rank alone with a precomputed query vector ("load more" pages)
  rare       a page from a folder of 3 photos (assets/photos/space): restricted to those photos
             up front (what the engine does) and, for comparison, filtering hits as they come
             (what it does for broad filters); "cold" is the first query of a fresh engine
  http       the same query from gradio_client against `python app.py` in a subprocess
             (queue, JSON, upload of the query image included)

With --split, one query type (text → top 20 with metadata) is timed instead, split into
  encode     the text query through the model (the compiled query path on a CUDA GPU)
  search     the vector search of the engine's first window (GPU torch search for a flat index on CUDA)
  fetch      the catalog records of the top 20
over a catalog of --sizes rows whose vectors are random unit vectors added straight to the
index (fast to make at 1,000,000; the catalog rows are real, the photos behind them are not).

Examples:
  python -m benchmarks.bench_search                                  # tiny model, sizes 1000,10000,100000
  python -m benchmarks.bench_search --split --sizes 20000 --queries 50          # tiny model, CPU
  python -m benchmarks.bench_search --device cuda --full-size-mme5 --split --sizes 1000000   # on a GPU
  python -m benchmarks.bench_search --sizes 1000,50000 --queries 50 --no-http
  python -m benchmarks.bench_search --sizes 1000000 --index-type auto --vectors clustered --no-http   # ivf-pq
  python -m benchmarks.bench_search --model ./models/siglip --device cpu --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]

RARE_FOLDER = "space"  # 3 of the sample photos, lost among the random vectors
QUERY_TEXTS = ["a dog on the beach", "кошка на диване", "沙发上的猫", "قطة على الأريكة", "un coche rojo de noche"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes (default 1000,10000,100000)")
    parser.add_argument("--queries", type=int, default=30, help="timed queries per type and size (default 30)")
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Mllama built here)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-http", action="store_true", help="skip the end-to-end HTTP measurements")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--index-type",
        default="auto",
        choices=["auto", "flat", "ivf", "ivf-sq8", "ivf-pq"],
        help="index type for the filled indexes (default auto: what the indexer picks per size); "
        "prints bytes per image and recall@10 against exact search for each",
    )
    parser.add_argument(
        "--vectors",
        default="uniform",
        choices=["uniform", "clustered"],
        help="filler vectors: uniform on the sphere, or clustered (see clustered_vectors)",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="time text query -> top 20 with metadata, split into encode / search / fetch",
    )
    parser.add_argument(
        "--full-size-mme5",
        action="store_true",
        help="random-weight full-size mmE5 architecture (needs a big CUDA GPU; with --split)",
    )
    args = parser.parse_args(argv)
    if args.full_size_mme5 and not args.split:
        parser.error("--full-size-mme5 goes with --split (the other measurements start the app with a model folder)")
    return args


def add_catalog_rows(store, count: int) -> None:
    """``count`` more OK image rows (no stored vectors): what the catalog holds for a big library."""
    from sqlalchemy import insert

    from indexer.catalog import STATUS_OK, Image, Root, encode_relpath, utcnow

    with store.catalog.session() as session:
        root_id = session.query(Root.id).scalar()
        now = utcnow()
        for start in range(0, count, 50_000):
            session.execute(
                insert(Image),
                [
                    {
                        "root_id": root_id,
                        "relpath": encode_relpath(f"synthetic/{n // 1000:04d}/IMG_{n:07d}.jpg"),
                        "size": 2_000_000 + n,
                        "mtime_ns": n,
                        "content_hash": hashlib.sha256(str(n).encode()).hexdigest()[:32],
                        "width": 4000,
                        "height": 3000,
                        "taken_at": None,
                        "camera": "Canon EOS R6",
                        "status": STATUS_OK,
                        "error": None,
                        "indexed_at": now,
                    }
                    for n in range(start, min(count, start + 50_000))
                ],
            )
        session.commit()


def random_index(ids, dim: int, device: str):
    """A flat VectorIndex of random unit vectors (float16-exact, as stored) under ``ids``."""
    import numpy as np
    import torch

    from indexer.vectors import VectorIndex

    index = VectorIndex.flat(dim)
    generator = torch.Generator(device=device).manual_seed(0)
    for start in range(0, len(ids), 100_000):
        chunk = ids[start : start + 100_000]
        rows = torch.randn((len(chunk), dim), generator=generator, device=device)
        rows = torch.nn.functional.normalize(rows, dim=1).half().float().cpu().numpy()
        index.add(np.asarray(chunk, dtype=np.int64), rows)
    return index


def time_split(work: Path, photos: Path, embedder, size: int, queries: int, device: str) -> dict:
    """Text query -> top 20 with metadata at ``size`` indexed vectors, split into encode / search / fetch."""
    import numpy as np
    from sqlalchemy import select

    from indexer import IndexStore, build_index
    from indexer.catalog import Image
    from search_app.engine import SearchEngine

    index_dir = work / f"split-{size}"
    build_index([photos], index_dir, embedder, show_progress=False)
    store = IndexStore.open(index_dir)
    started = time.perf_counter()
    add_catalog_rows(store, size - store.count)
    with store.catalog.session() as session:
        ids = np.asarray(session.execute(select(Image.id).order_by(Image.id)).scalars().all(), dtype=np.int64)
    store.index = random_index(ids, embedder.dim, device)
    print(
        f"bench: catalog of {len(ids)} rows and a flat index of {store.index.ntotal} vectors ready in "
        f"{time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    engine = SearchEngine(store, embedder, reload_interval=1e9)  # the rows were added behind the store's back
    window = engine.min_window  # the engine's first search window for a 20-result page
    first = engine.encode_query(text=QUERY_TEXTS[0])
    store.search(first, window)  # warm-up: the GPU copy of the index is made on the first search
    started = time.perf_counter()
    store.search(first, window)
    searcher = type(store.index._searcher()).__name__
    encode, search, fetch, total = [], [], [], []
    for n in range(queries):
        text = f"{QUERY_TEXTS[n % len(QUERY_TEXTS)]} {n}"  # a new query each time: nothing cached
        t0 = time.perf_counter()
        vector = engine.encode_query(text=text)
        t1 = time.perf_counter()
        _, hits = store.search(vector, window)
        t2 = time.perf_counter()
        records = store.records(hits[0][:20])
        t3 = time.perf_counter()
        assert sum(record is not None for record in records) == 20
        encode.append(t1 - t0), search.append(t2 - t1), fetch.append(t3 - t2), total.append(t3 - t0)
    engine_times = []
    for n in range(queries):
        started = time.perf_counter()
        engine.search_text(f"{QUERY_TEXTS[n % len(QUERY_TEXTS)]} {n}", k=20)
        engine_times.append(time.perf_counter() - started)
    compiler = getattr(embedder.backbone, "query_compiler", None)
    return {
        "vectors": int(store.index.ntotal),
        "searcher": searcher,
        "query_path": "compiled" if compiler is not None and compiler.active else "eager",
        "encode": percentiles(encode),
        "search": percentiles(search),
        "fetch": percentiles(fetch),
        "total": percentiles(total),
        "engine_search_text": percentiles(engine_times),
    }


def main_split(args, work: Path, model: str | None) -> dict:
    from mme5 import load_embedder

    if args.full_size_mme5:
        from mme5.tiny import random_mme5_embedder

        embedder = random_mme5_embedder("full", args.device)
    else:
        embedder = load_embedder(model, device=args.device, verbose=False)
    embedder.compile_queries()  # as the app does at start (eager on a CPU)
    report = {"model": embedder.model_id, "device": args.device, "dim": embedder.dim, "split": {}}
    for size in [int(value) for value in args.sizes.split(",")]:
        report["split"][size] = time_split(work, REPO / "assets" / "photos", embedder, size, args.queries, args.device)
    return report


def clustered_vectors(rng, count: int, dim: int, clusters: int = 2000, spread: float = 0.35):
    """Unit vectors around ``clusters`` random centres (Gaussian noise of ``spread`` per dimension
    relative to unit-variance centres): like real libraries, made of bursts, trips and pets, where
    quantisation errors reorder near neighbours; uniform vectors flatter compressed indexes less
    predictably (everything is almost equally far)."""
    import numpy as np

    state = np.random.default_rng(12345)  # the same centres for every chunk
    centres = state.standard_normal((clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, count)] + spread * rng.standard_normal((count, dim)).astype(np.float32)
    return vectors


def make_index(
    index_dir: Path, photos: Path, embedder, size: int, index_type: str = "auto", distribution: str = "uniform"
) -> None:
    """A real indexer index of ``size`` searchable images (all but the photos are random vectors)."""
    import numpy as np
    from sqlalchemy import insert

    from indexer import build_index, verify
    from indexer.catalog import CATALOG_FILE, STATUS_OK, Catalog, Image, Root, Vector, encode_relpath, utcnow
    from indexer.vectors import INDEX_FILE

    build_index([photos], index_dir, embedder, show_progress=False)
    catalog = Catalog(index_dir / CATALOG_FILE)
    rng = np.random.default_rng(size)
    try:
        with catalog.session() as session:
            root_id = session.query(Root.id).scalar()
            extra = size - catalog.count()
            for start in range(0, extra, 5000):
                count = min(5000, extra - start)
                if distribution == "clustered":
                    vectors = clustered_vectors(rng, count, embedder.dim)
                else:
                    vectors = rng.standard_normal((count, embedder.dim)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                hashes = [hashlib.sha256(f"{size}-{start + i}".encode()).hexdigest() for i in range(count)]
                session.execute(
                    insert(Vector),
                    [{"content_hash": h, "vector": v.astype(np.float16).tobytes()} for h, v in zip(hashes, vectors)],
                )
                now = utcnow()
                session.execute(
                    insert(Image),
                    [
                        {
                            "root_id": root_id,
                            "relpath": encode_relpath(f"synthetic/{(start + i) // 1000:04d}/{i}.jpg"),
                            "size": 1,
                            "mtime_ns": 0,
                            "content_hash": h,
                            "width": 1,
                            "height": 1,
                            "taken_at": None,
                            "camera": None,
                            "status": STATUS_OK,
                            "error": None,
                            "indexed_at": now,
                        }
                        for i, h in enumerate(hashes)
                    ],
                )
            Catalog.set_meta(session, index_type_request=index_type)
            session.commit()
    finally:
        catalog.close()
    # the vector file no longer matches the catalog: rebuilt as `indexer verify --repair` does, choosing the index
    # type for this size, so readers open a whole index (no "vector index file missing" warning, no rebuild per app)
    (index_dir / INDEX_FILE).unlink()
    verify(index_dir, repair=True)


@contextmanager
def stdout_to_stderr():
    """Keep stdout for the figures: the tokenizers trainer behind build_tiny prints blank lines to fd 1."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def percentiles(seconds: list[float]) -> dict:
    import numpy as np

    values = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(values, 50)), 2), "p95_ms": round(float(np.percentile(values, 95)), 2)}


def time_engine(engine, photo: str, queries: int) -> dict:

    from search_app.engine import SearchOptions

    calls = {
        "text": lambda n: engine.search_text(QUERY_TEXTS[n % len(QUERY_TEXTS)], k=20),
        "image": lambda n: engine.search_image(photo, k=20),
        "composed": lambda n: engine.search_composed(photo, QUERY_TEXTS[n % len(QUERY_TEXTS)], k=20),
    }
    figures = {}
    for kind, call in calls.items():
        call(0)  # warm-up
        total, model, index = [], [], []
        for n in range(queries):
            started = time.perf_counter()
            page = call(n)
            total.append(time.perf_counter() - started)
            model.append(page.query_seconds)
            index.append(page.search_seconds)
        figures[kind] = {"engine": percentiles(total), "model": percentiles(model), "index": percentiles(index)}
    vector = engine.encode_query(text="a dog")
    ranks = []
    for n in range(queries):
        started = time.perf_counter()
        engine.rank(vector, SearchOptions.parse(k=20, offset=20 * (n % 5)))
        ranks.append(time.perf_counter() - started)
    figures["rank_only"] = percentiles(ranks)
    filtered = []
    for n in range(queries):
        started = time.perf_counter()
        engine.rank(vector, SearchOptions.parse(k=20, folder="synthetic/0000"))
        filtered.append(time.perf_counter() - started)
    figures["rank_folder_filter"] = percentiles(filtered)
    return figures


def time_features(engine, queries: int) -> dict:
    """Index-side cost of the search features, side by side with them off, in one run (query already encoded).

    off: a plain page. on: the same page with the date and place readers run on the text (the place reader
    knows the index's place names; a library without GPS has none), "without" applied to the
    vector and strong matches only (cut-off from the library sample, strong ones counted). The extra
    text encoding of a "without" text is model time, reported with the model, not here."""
    import numpy as np

    from search_app.encoding import push_away
    from search_app.engine import SearchOptions
    from search_app.query_dates import find_dates

    vector = engine.encode_query(text="a dog on a beach")
    negative = engine.encode_query(text="people")
    plain = SearchOptions.parse(k=20)
    featured = SearchOptions.parse(k=20, strong_only=True, without=["people"])
    engine.rank(vector, featured)  # the library sample is drawn once per opened index, not per query
    engine.read_query_places("x", plain)  # so are the index's place names
    off, on = [], []
    for n in range(queries):
        for way, bucket in (("off", off), ("on", on)):
            started = time.perf_counter()
            if way == "off":
                engine.rank(vector, plain)
            else:
                find_dates(QUERY_TEXTS[n % len(QUERY_TEXTS)])
                engine.read_query_places(QUERY_TEXTS[n % len(QUERY_TEXTS)], plain)
                engine.rank(push_away(vector, negative), featured)
            bucket.append(time.perf_counter() - started)
    return {
        "off": percentiles(off),
        "on": percentiles(on),
        "added_p50_ms": round(float(np.percentile(on, 50) - np.percentile(off, 50)) * 1000, 2),
    }


def time_rare_folder(store, embedder, queries: int) -> dict:
    """Cold (fresh engine, nothing cached) and warm latency of one page of a 3-photo folder, both ways."""
    import search_app.ranking as engine_module
    from search_app.engine import SearchEngine, SearchOptions

    options = SearchOptions.parse(k=20, folder=RARE_FOLDER)
    figures = {}
    for way, few_matches in (("restricted", engine_module.FEW_MATCHES), ("as_they_come", 0)):
        saved, engine_module.FEW_MATCHES = engine_module.FEW_MATCHES, few_matches
        try:
            engine = SearchEngine(store, embedder)  # not closed: it would close the shared store
            vector = engine.encode_query(text="a rocket")
            started = time.perf_counter()
            page = engine.rank(vector, options)
            cold = time.perf_counter() - started
            assert len(page.results) == 3, page.results
            warm = []
            for _ in range(queries):
                started = time.perf_counter()
                engine.rank(vector, options)
                warm.append(time.perf_counter() - started)
        finally:
            engine_module.FEW_MATCHES = saved
        figures[way] = {"cold_ms": round(cold * 1000, 2), **percentiles(warm)}
    return figures


def time_http(index_dir: Path, model: str, device: str, photo: str, queries: int) -> dict:
    from gradio_client import handle_file

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tempfile.NamedTemporaryFile(prefix="bench-search-app-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [
            sys.executable,
            "app.py",
            "--index",
            str(index_dir),
            "--model",
            model,
            "--device",
            device,
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=log,
        stderr=log,
    )
    try:
        client = _connect(f"http://127.0.0.1:{port}/", process, log.name)
        calls = {
            "text": lambda n: client.predict(text=QUERY_TEXTS[n % len(QUERY_TEXTS)], k=20, api_name="/search_text"),
            "image": lambda n: client.predict(image=handle_file(photo), k=20, api_name="/search_image"),
            "composed": lambda n: client.predict(
                image=handle_file(photo), text=QUERY_TEXTS[n % len(QUERY_TEXTS)], k=20, api_name="/search_composed"
            ),
        }
        figures = {}
        for kind, call in calls.items():
            call(0)
            seconds = []
            for n in range(queries):
                started = time.perf_counter()
                call(n)
                seconds.append(time.perf_counter() - started)
            figures[kind] = percentiles(seconds)
        return figures
    finally:
        process.terminate()
        process.wait(timeout=30)


def _connect(url: str, process, log: str, timeout: float = 300):
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited early; see {log}")
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(1)
    raise RuntimeError(f"app did not start within {timeout}s; see {log}")


def main(argv=None) -> int:
    args = parse_args(argv)
    from indexer import IndexStore
    from mme5 import load_embedder
    from mme5.tiny import build_tiny

    from search_app.engine import SearchEngine

    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        with stdout_to_stderr():
            model = args.model or (
                None if args.full_size_mme5 else str(build_tiny(work / "tiny-mllama", backbone="mllama"))
            )
        if args.split:
            print_split(main_split(args, work, model), args.json)
            return 0
        embedder = load_embedder(model, device=args.device, verbose=False)
        photos = REPO / "assets" / "photos"
        photo = str(photos / "everyday" / "chelsea.jpg")
        report = {"model": embedder.model_id, "device": args.device, "dim": embedder.dim, "sizes": {}}
        for size in [int(value) for value in args.sizes.split(",")]:
            index_dir = work / f"index-{size}"
            started = time.perf_counter()
            make_index(index_dir, photos, embedder, size, args.index_type, args.vectors)
            store = IndexStore.open(index_dir)
            print(
                f"bench: index of {store.count} images ({store.index_type}) ready in "
                f"{time.perf_counter() - started:.1f}s",
                file=sys.stderr,
            )
            rare = time_rare_folder(store, embedder, args.queries)  # first, while nothing is cached
            engine = SearchEngine(store, embedder)
            from indexer.sync import measure_recall

            recall = measure_recall(store.catalog, store.index)
            figures = {
                "index_type": store.index_type,
                "bytes_per_image": store.info()["bytes_per_image"],
                "recall_at_10": recall["recall_at_k"],
                **time_engine(engine, photo, args.queries),
                "rare_folder": rare,
                "features": time_features(engine, args.queries),
            }
            engine.close()
            if not args.no_http:
                figures["http"] = time_http(index_dir, model, args.device, photo, args.queries)
            report["sizes"][size] = figures
            shutil.rmtree(index_dir)
        print_report(report, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def print_split(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"model {report['model']} ({report['dim']}-d) on {report['device']}: text query -> top 20 with metadata, "
        "ms p50 / p95"
    )
    print(
        f"{'vectors':>9} {'searcher':>16} {'query path':>10} {'encode':>13} {'search':>13} {'fetch':>13} "
        f"{'total':>13} {'engine':>13}"
    )
    for figures in report["split"].values():
        cells = [
            f"{figures[part]['p50_ms']:.2f} / {figures[part]['p95_ms']:.2f}"
            for part in ("encode", "search", "fetch", "total", "engine_search_text")
        ]
        print(
            f"{figures['vectors']:>9} {figures['searcher']:>16} {figures['query_path']:>10} "
            + " ".join(f"{cell:>13}" for cell in cells)
        )


def print_report(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(f"model {report['model']} ({report['dim']}-d) on {report['device']}; latency in ms, p50 / p95")
    print(f"{'size':>8} {'index':>8} {'query':>9} {'engine':>15} {'model':>15} {'index+catalog':>15} {'http':>15}")
    for size, figures in report["sizes"].items():
        for kind in ("text", "image", "composed"):
            row = figures[kind]
            http = figures.get("http", {}).get(kind)
            cells = [f"{row[part]['p50_ms']:.1f} / {row[part]['p95_ms']:.1f}" for part in ("engine", "model", "index")]
            cells.append(f"{http['p50_ms']:.1f} / {http['p95_ms']:.1f}" if http else "-")
            print(f"{size:>8} {figures['index_type']:>8} {kind:>9} " + " ".join(f"{cell:>15}" for cell in cells))
        print(
            f"{size:>8} {'':>8} {'memory':>9} {figures['bytes_per_image']} bytes/image, recall@10 vs exact "
            f"{figures['recall_at_10']:.3f}"
        )
        rank, folder = figures["rank_only"], figures["rank_folder_filter"]
        print(
            f"{size:>8} {'':>8} {'page':>9} rank only {rank['p50_ms']:.1f} / {rank['p95_ms']:.1f}; "
            f"with a folder filter {folder['p50_ms']:.1f} / {folder['p95_ms']:.1f}"
        )
        feat = figures["features"]
        print(
            f"{size:>8} {'':>8} {'features':>9} off {feat['off']['p50_ms']:.2f} / {feat['off']['p95_ms']:.2f}; "
            f"on (dates, places, without, strong only) {feat['on']['p50_ms']:.2f} / {feat['on']['p95_ms']:.2f}; "
            f"added p50 {feat['added_p50_ms']:+.2f}"
        )
        for way, row in figures["rare_folder"].items():
            print(
                f"{size:>8} {'':>8} {'rare':>9} 3-photo folder, {way.replace('_', ' ')}: cold {row['cold_ms']:.1f}, "
                f"warm {row['p50_ms']:.1f} / {row['p95_ms']:.1f}"
            )


if __name__ == "__main__":
    sys.exit(main())
