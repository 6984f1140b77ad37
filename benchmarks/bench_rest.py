"""A text query three ways, p50/p95 side by side: the engine in-process, the REST API, gradio_client; then many
REST clients at once.

The index is made as bench_search makes one (a real build of the sample photos, then random vectors up to
--size); the app runs in a subprocess (`python app.py`, optionally pinned to --cpus), and the same queries go
  engine          SearchEngine.search_text in this process (model + index + catalog, no HTTP)
  rest            GET /api/v1/search/text with one keep-alive httpx connection
  gradio_client   Client.predict(api_name="/search_text") (Gradio's queue protocol)
Engine and REST queries alternate in blocks of --block (the first of each block not counted), so both see the
machine in the same state: a shared machine's speed drifts by a third within minutes. The engine here runs with
the OpenMP setting the app uses (mme5/threads.py); set OMP_WAIT_POLICY yourself to compare another. Each REST
answer's Server-Timing header gives the server's own search time ("rest, server's work"); REST minus that is the
time on the wire (HTTP, the web framework, the client). Then --clients clients at once (asyncio, an httpx client
and connection each) each send --per-client REST queries one after another, and the run reports errors
(anything but 200: 503s counted apart), p50/p95/max latency and queries per second.

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
from mme5.threads import share_cores

share_cores()  # the engine here waits for OpenMP workers as the app does (python app.py sets it too)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=100_000, help="photos in the index (default 100000)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per way (default 200)")
    parser.add_argument("--block", type=int, default=10, help="engine and REST queries alternate in blocks of this")
    parser.add_argument("--clients", type=int, default=200, help="REST clients at once (default 200)")
    parser.add_argument("--per-client", type=int, default=20, help="queries each of them sends (default 20)")
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Mllama built here)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpus", help="pin the app to these CPUs, e.g. 0,1 (Linux; default: no pinning)")
    parser.add_argument("--concurrency", type=int, default=1, help="the app's --concurrency (default 1)")
    parser.add_argument("--api-queue", type=int, default=256, help="the app's --api-queue (default 256)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.block < 2:
        parser.error("--block must be at least 2: the first query of each block is not counted")
    return args


def timed(call, queries: int) -> dict:
    call(0)  # warm-up
    seconds = []
    for n in range(queries):
        started = time.perf_counter()
        call(n)
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


def time_engine_and_rest(index_dir: Path, model: str, device: str, url: str, queries: int, block: int) -> dict:
    """The engine in this process and the REST API, block by block: {"engine", "rest", "rest_work", "wire"}."""
    import httpx

    from search_app.engine import SearchEngine

    engine = SearchEngine.open(index_dir, model=model, device=device)
    seconds: dict[str, list[float]] = {"engine": [], "rest": [], "rest_work": [], "wire": []}
    try:
        with httpx.Client(base_url=f"{url}/api/v1", timeout=60) as client:

            def engine_query(n: int) -> None:
                engine.search_text(QUERY_TEXTS[n % len(QUERY_TEXTS)], k=20)

            def rest_query(n: int) -> float:
                answer = client.get("/search/text", params={"text": QUERY_TEXTS[n % len(QUERY_TEXTS)], "k": 20})
                answer.raise_for_status()
                return server_work(answer.headers.get("Server-Timing", ""))

            engine_query(0)  # warm-up
            rest_query(0)
            n = 0
            while len(seconds["rest"]) < queries:
                # The first query of each block is not counted: it pays for the switch (the other side's threads
                # winding down).
                for i in range(n, n + block):
                    started = time.perf_counter()
                    engine_query(i)
                    if i > n:
                        seconds["engine"].append(time.perf_counter() - started)
                for i in range(n, n + block):
                    started = time.perf_counter()
                    work = rest_query(i)
                    elapsed = time.perf_counter() - started
                    if i > n:
                        seconds["rest"].append(elapsed)
                        seconds["rest_work"].append(work)
                        seconds["wire"].append(elapsed - work)
                n += block
    finally:
        engine.close()
    return {way: percentiles(values) for way, values in seconds.items()}


def server_work(header: str) -> float:
    """Seconds of the "work" metric in a Server-Timing header (search_app.rest.RestAPI.work writes it)."""
    for metric in header.split(","):
        name, _, duration = metric.strip().partition(";dur=")
        if name == "work" and duration:
            return float(duration) / 1000
    raise ValueError(f"no work duration in Server-Timing {header!r}: is the app older than this benchmark?")


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


def time_gradio_client(url: str, queries: int) -> dict:
    from gradio_client import Client

    client = Client(f"{url}/", verbose=False)
    return timed(
        lambda n: client.predict(text=QUERY_TEXTS[n % len(QUERY_TEXTS)], k=20, api_name="/search_text"), queries
    )


async def _crowd(url: str, clients: int, per_client: int) -> dict:
    """``clients`` programs at once, each with its own HTTP client and connection, made before the clock starts.

    One shared httpx pool of 200 connections measured httpx, not the server: every few seconds the client process
    spent ~6 s at 100 % CPU in the pool's bookkeeping while the server idled (maxima of 7-10 s, one ReadError)."""
    import ssl

    import httpx

    latencies, statuses, failures = [], {}, []
    tls = ssl.create_default_context()  # one for all: each client would otherwise load the CA store (~20 ms each)
    https = [httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=120, verify=tls) for _ in range(clients)]

    async def one_client(number: int) -> None:
        http = https[number]
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

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(number) for number in range(clients)))
        wall = time.perf_counter() - started
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
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
        from mme5.cpu_features import detect

        report = {
            "cpu": detect().summary(),
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
        process, url, log = start_app(work, index_dir, model, args)
        wait_up(url, process, log)
        report["load_average"] = [round(load, 2) for load in os.getloadavg()]  # before the timed queries
        report.update(time_engine_and_rest(index_dir, model, args.device, url, args.queries, args.block))
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
    print(f"CPU: {report['cpu']}; load average {report['load_average']}")
    print(f"{'text query, k=20':<18}{'p50 ms':>9}{'p95 ms':>9}{'p50 over engine':>17}")
    engine = report["engine"]["p50_ms"]
    for way, label in (("engine", "engine"), ("rest", "rest"), ("gradio_client", "gradio_client")):
        figures = report[way]
        print(f"{label:<18}{figures['p50_ms']:>9.2f}{figures['p95_ms']:>9.2f}{figures['p50_ms'] - engine:>+17.2f}")
    work, wire = report["rest_work"], report["wire"]
    print(
        f"  of which REST's server work p50 {work['p50_ms']:.2f} ms (p95 {work['p95_ms']:.2f}), "
        f"on the wire p50 {wire['p50_ms']:.2f} ms (p95 {wire['p95_ms']:.2f}): HTTP, web framework, client"
    )
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
