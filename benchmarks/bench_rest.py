"""A text query three ways, p50/p95 side by side: the engine in-process, the REST API, gradio_client; then many
REST clients at once.

The index is made as bench_search makes one (a real build of the sample photos, then random vectors up to
--size); the app runs in a subprocess (`python app.py`, optionally pinned to --cpus), and the same queries go
  engine          SearchEngine.search_text in this process (model + index + catalog, no HTTP)
  rest            GET /api/v1/search/text with one keep-alive httpx connection
  gradio_client   Client.predict(api_name="/search_text") (Gradio's queue protocol)
then --clients clients at once each send --per-client REST queries one after another (asyncio + httpx), and the
run reports errors (anything but 200: 503s counted apart), p50/p95/max latency and queries per second.

Examples:
  python -m benchmarks.bench_rest                                    # tiny model, 100,000 photos, 200 x 20
  python -m benchmarks.bench_rest --size 2000 --queries 20 --clients 20 --per-client 5   # a quick check
  python -m benchmarks.bench_rest --cpus 0,1 --json                  # the app on 2 cores (Linux)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_search import QUERY_TEXTS, REPO, make_index, percentiles, stdout_to_stderr


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=100_000, help="photos in the index (default 100000)")
    parser.add_argument("--queries", type=int, default=100, help="timed queries per way (default 100)")
    parser.add_argument("--clients", type=int, default=200, help="REST clients at once (default 200)")
    parser.add_argument("--per-client", type=int, default=20, help="queries each of them sends (default 20)")
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Mllama built here)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpus", help="pin the app to these CPUs, e.g. 0,1 (Linux; default: no pinning)")
    parser.add_argument("--concurrency", type=int, default=1, help="the app's --concurrency (default 1)")
    parser.add_argument("--api-queue", type=int, default=256, help="the app's --api-queue (default 256)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser.parse_args(argv)


def timed(call, queries: int) -> dict:
    call(0)  # warm-up
    seconds = []
    for n in range(queries):
        started = time.perf_counter()
        call(n)
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


def time_engine(index_dir: Path, model: str, device: str, queries: int) -> dict:
    from search_app.engine import SearchEngine

    engine = SearchEngine.open(index_dir, model=model, device=device)
    try:
        return timed(lambda n: engine.search_text(QUERY_TEXTS[n % len(QUERY_TEXTS)], k=20), queries)
    finally:
        engine.close()


def start_app(work: Path, index_dir: Path, model: str, args) -> tuple[subprocess.Popen, str, Path]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = work / "app.log"
    cpus = {int(cpu) for cpu in args.cpus.split(",")} if args.cpus else None
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "app.py",
                "--index",
                str(index_dir),
                "--model",
                model,
                "--device",
                args.device,
                "--port",
                str(port),
                "--concurrency",
                str(args.concurrency),
                "--api-queue",
                str(args.api_queue),
            ],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    return process, f"http://127.0.0.1:{port}", log


def wait_up(url: str, process, log: Path, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the app did not start within {timeout:.0f}s; see {log}")


def time_rest(url: str, queries: int) -> dict:
    import httpx

    with httpx.Client(base_url=f"{url}/api/v1", timeout=60) as client:

        def call(n):
            answer = client.get("/search/text", params={"text": QUERY_TEXTS[n % len(QUERY_TEXTS)], "k": 20})
            answer.raise_for_status()

        return timed(call, queries)


def time_gradio_client(url: str, queries: int) -> dict:
    from gradio_client import Client

    client = Client(f"{url}/", verbose=False)
    return timed(
        lambda n: client.predict(text=QUERY_TEXTS[n % len(QUERY_TEXTS)], k=20, api_name="/search_text"), queries
    )


async def _crowd(url: str, clients: int, per_client: int) -> dict:
    import httpx

    latencies, statuses, failures = [], {}, []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=120, limits=limits) as http:

        async def one_client(number: int) -> None:
            for n in range(per_client):
                started = time.perf_counter()
                try:
                    answer = await http.get(
                        "/search/text", params={"text": QUERY_TEXTS[(number + n) % len(QUERY_TEXTS)], "k": 20}
                    )
                except httpx.HTTPError as error:
                    failures.append(f"{type(error).__name__}: {error}")
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client(number) for number in range(clients)))
        wall = time.perf_counter() - started
    errors = len(failures) + sum(count for status, count in statuses.items() if status != 200)
    figures = percentiles(latencies) if latencies else {}
    return {
        "clients": clients,
        "per_client": per_client,
        "requests": clients * per_client,
        "errors": errors,
        "busy_503": statuses.get(503, 0),
        "statuses": statuses,
        "failures": failures[:5],
        **figures,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "queries_per_s": round(clients * per_client / wall, 1),
        "wall_s": round(wall, 1),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from indexer import IndexStore
    from mme5 import load_embedder
    from mme5.tiny import build_tiny

    work = Path(tempfile.mkdtemp(prefix="bench-rest-"))
    process = None
    try:
        with stdout_to_stderr():
            model = args.model or str(build_tiny(work / "tiny-mllama", backbone="mllama"))
        embedder = load_embedder(model, device=args.device, verbose=False)
        index_dir = work / "index"
        started = time.perf_counter()
        make_index(index_dir, REPO / "assets" / "photos", embedder, args.size)
        store = IndexStore.open(index_dir)
        report = {
            "model": embedder.model_id,
            "device": args.device,
            "size": int(store.count),
            "index_type": store.index_type,
            "cpus": args.cpus or f"all {os.cpu_count()}",
            "concurrency": args.concurrency,
        }
        store.close()
        del embedder
        print(f"bench: index of {report['size']} photos ready in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        report["engine"] = time_engine(index_dir, model, args.device, args.queries)
        process, url, log = start_app(work, index_dir, model, args)
        wait_up(url, process, log)
        report["rest"] = time_rest(url, args.queries)
        report["gradio_client"] = time_gradio_client(url, args.queries)
        report["crowd"] = asyncio.run(_crowd(url, args.clients, args.per_client))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)
    print_report(report, args.json)
    return 0


def print_report(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=1))
        return
    print(
        f"{report['size']:,} photos ({report['index_type']}), model {report['model']} on {report['device']}, "
        f"app on CPUs: {report['cpus']}, --concurrency {report['concurrency']}"
    )
    print(f"{'text query, k=20':<18}{'p50 ms':>9}{'p95 ms':>9}{'p50 over engine':>17}")
    engine = report["engine"]["p50_ms"]
    for way in ("engine", "rest", "gradio_client"):
        figures = report[way]
        print(f"{way:<18}{figures['p50_ms']:>9.2f}{figures['p95_ms']:>9.2f}{figures['p50_ms'] - engine:>+17.2f}")
    crowd = report["crowd"]
    print(
        f"{crowd['clients']} REST clients x {crowd['per_client']} queries: {crowd['errors']} errors "
        f"({crowd['busy_503']} busy 503), p50 {crowd.get('p50_ms')} ms, p95 {crowd.get('p95_ms')} ms, "
        f"max {crowd['max_ms']} ms, {crowd['queries_per_s']} queries/s"
    )
    if crowd["failures"]:
        print("  failures: " + "; ".join(crowd["failures"]))


if __name__ == "__main__":
    sys.exit(main())
