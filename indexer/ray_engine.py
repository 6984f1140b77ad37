"""`build --engine ray`: reading, decoding and embedding on a Ray cluster; the catalog stays here.

The driver (this process) keeps sole ownership of the catalog exactly as the local engine
does: it scans, decides what is new or changed, and commits results one batch at a time,
so a killed driver loses nothing committed and the same command resumes. Ray Data does the
heavy part and streams results back, so memory stays bounded on any collection size:

    from_items(work) -> map_batches(decode, num_cpus=...)          CPU tasks: hash, EXIF, decode
                     -> map_batches(EmbedWorker, concurrency=N,     actor pool: one Embedder each,
                                    num_gpus=...)                   loaded once per actor
                     -> iter_batches()                               back to the driver's commits

``RayEngine`` is the build's engine for ``engine="ray"`` (the local one is ``indexer.engines.LocalEngine``;
both yield ``indexer.engines.Embedded`` records, which the build decides and commits); decode tasks hold the
build's decode budget through one ``BudgetKeeper`` actor, as the local reader threads share theirs.
Fault tolerance is Ray's, as Ray Data configures it: a killed embedding actor is restarted
(``max_restarts=-1``) and its batch retried (``max_task_retries=-1``); a decode task whose
worker died is retried (Ray's task ``max_retries``). Nothing here re-implements that.
Photos must be readable at the same path on every node (a shared NFS/SMB mount); a worker
that cannot see a folder the driver listed stops the build with a clear error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Generator

import numpy as np

from mme5.threads import SHARED_CORES_ENV

from .engines import Embedded, LocalEngine, embed_isolating
from .errors import IndexerError
from .files import FileEntry, is_video_name, printable
from .reader import DEFAULT_DECODE_BUDGET, DecodeBudget, ReadResult, read_file

logger = logging.getLogger(__name__)

# The columns a decoded file comes back in: "idx" (its place in the work list, which gives back its FileEntry), then
# every other ReadResult field but the image (sent as raw "pixels") and a video's keyframes (videos are read and
# embedded on the driver: see RayEngine.results), derived so that a new field cannot be dropped.
RESULT_FIELDS = (
    "idx",
    *(field.name for field in fields(ReadResult) if field.name not in ("entry", "image", "keyframes")),
)


class WorkerCannotReadError(IndexerError):
    """A Ray worker cannot see a photo folder the driver listed (no shared mount on that node)."""


@dataclass
class RayOptions:
    """How to run on Ray; ``None`` fields mean 'pick from the cluster'."""

    address: str | None = None  # None: start a local Ray on this machine; "auto" or "ray://host:10001"
    workers: int | None = None  # embedding actors (default: one per GPU, or one on the CPU)
    gpus_per_worker: float | None = None  # default 1 when the cluster has GPUs, else 0
    cpus_per_decoder: float = 1.0
    cpus_per_worker: float = 1.0  # CPU actors only: what Ray reserves for each
    threads_per_worker: int | None = None  # CPU actors: model threads (default: the node's CPUs shared by its actors)
    num_cpus: int | None = None  # a local Ray started here: CPUs it may use (default: all)
    object_store_bytes: int | None = None  # ... and its object store size (default: Ray's)


def start_ray(options: RayOptions):
    """Connect to (or start) Ray, shipping this repo's packages to the workers."""
    import ray

    if ray.is_initialized():
        return ray
    import mme5

    packages = [str(Path(mme5.__file__).parent), str(Path(__file__).parent)]
    local: dict[str, Any] = (
        dict(num_cpus=options.num_cpus, object_store_memory=options.object_store_bytes) if not options.address else {}
    )
    ray.init(
        address=options.address,
        include_dashboard=False,
        log_to_driver=False,
        **local,
        runtime_env={
            "py_modules": packages,
            "env_vars": {**SHARED_CORES_ENV, "TOKENIZERS_PARALLELISM": "false"},
        },
    )
    return ray


def plan_workers(options: RayOptions, cluster: dict) -> tuple[int, float]:
    """(embedding actors, GPUs per actor) from the options and the cluster's resources."""
    gpus = float(cluster.get("GPU", 0))
    per = options.gpus_per_worker if options.gpus_per_worker is not None else (1.0 if gpus else 0.0)
    if per > gpus:
        raise IndexerError(f"--gpus-per-worker {per:g} but the Ray cluster has {gpus:g} GPU(s)")
    if options.workers is not None:
        if options.workers < 1:
            raise IndexerError(f"--workers must be at least 1, got {options.workers}")
        return options.workers, per
    return (max(1, int(gpus // per)) if per else 1), per


def model_spec(embedder) -> dict:
    """What an actor needs to load the same model: absolute local paths, hub ids as they are."""
    from mme5.model_ref import ModelRef

    return {
        "model": ModelRef.canonical_of(embedder.model_id),
        "adapter": ModelRef.canonical_of(embedder.adapter),
        "dtype": str(embedder.backbone.dtype).removeprefix("torch."),
        "runtime": embedder.runtime,
    }


def actor_memory(embedder, on_gpu: bool, node_memory: float = 0) -> int:
    """Bytes of host memory Ray reserves for each embedding actor, so it never packs more actors on a
    node than fit: 2.5× the weights on the CPU (loaded weights plus the runtime's buffers: a 1.5 GB
    SigLIP-B actor peaked at 2.5 GiB, and Ray Data asks for 25 % on top), once beside a GPU (the weights
    pass through memory on loading).
    At most 80 % of the largest node's ``node_memory``: a reservation no node can grant would leave the
    build waiting for ever instead of trying."""
    backbone = embedder.backbone
    folder = getattr(backbone, "folder", None)  # ONNX Runtime: the exported towers' files
    if folder is not None:
        weights = sum(path.stat().st_size for path in Path(folder).iterdir() if path.is_file())
    else:
        weights = sum(t.numel() * t.element_size() for t in (*backbone.model.parameters(), *backbone.model.buffers()))
    wanted = int(weights * (1 if on_gpu else 2.5))
    return min(wanted, int(node_memory * 0.8)) if node_memory else wanted


def model_threads(options: RayOptions, actors: int, cluster: dict, nodes: int) -> int:
    """Threads each CPU actor's model may use. Ray pins a task's math libraries to the CPUs it reserved
    (OMP_NUM_THREADS=1 for the default one CPU), which would leave a CPU actor using one core of many
    while the local engine uses them all; decoding is a small share of a CPU build, so the actors on a
    node share all its CPUs instead, as the local engine's model does beside its decode threads."""
    if options.threads_per_worker:
        return max(1, int(options.threads_per_worker))
    per_node = int(cluster.get("CPU", 1)) // max(1, nodes)
    return max(1, per_node // max(1, -(-actors // max(1, nodes))))


# -- the two stages ------------------------------------------------------------------------


class BudgetKeeper:
    """Ray actor holding the build's decode budget (``--decode-budget-mp``) for every decode task on
    the cluster, as ``DecodeBudget`` does for the local engine's threads. Each grant is a lease:
    one held by a task that died (worker killed; Ray retries the task) is taken back after
    ``LEASE_S``, so a lost release cannot stall the build."""

    LEASE_S = 120.0  # far longer than decoding one image takes
    POLL_S = 0.005

    def __init__(self, pixels: int):
        import threading

        self.budget = DecodeBudget(pixels)
        self.leases: dict[int, tuple[int, float]] = {}
        self.lock = threading.Lock()
        self.next_token = 0

    def acquire(self, pixels: int) -> int:
        while True:
            with self.lock:
                now = time.monotonic()
                for token, (held, since) in list(self.leases.items()):
                    if now - since > self.LEASE_S:
                        del self.leases[token]
                        self.budget.give_back(held)
                if self.budget.try_take(pixels):
                    self.next_token += 1
                    self.leases[self.next_token] = (pixels, now)
                    return self.next_token
            time.sleep(self.POLL_S)

    def release(self, token: int) -> None:
        with self.lock:
            held = self.leases.pop(token, None)
            if held is not None:
                self.budget.give_back(held[0])

    def peak(self) -> int:
        return self.budget.peak


class SharedBudget:
    """What a decode task holds instead of a ``DecodeBudget``: the same ``hold``, granted by the BudgetKeeper."""

    def __init__(self, keeper):
        self.keeper = keeper

    @contextlib.contextmanager
    def hold(self, pixels: int):
        import ray

        token = ray.get(self.keeper.acquire.remote(int(pixels)))
        try:
            yield
        finally:
            ray.get(self.keeper.release.remote(token))


def decode_batch(batch: dict, draft_size: int, known_hashes, probes: dict, budget=None) -> dict:
    """CPU task: hash, metadata and (unless its content is embedded already) pixels of each file,
    decoding within the cluster-wide ``budget`` (a SharedBudget)."""
    _check_roots(set(batch["root"].tolist()), probes)
    out: dict[str, list] = {name: [] for name in (*RESULT_FIELDS, "pixels", "pixels_shape")}
    for i in range(len(batch["idx"])):
        entry = FileEntry(
            str(batch["root"][i]),
            str(batch["relpath"][i]),
            int(batch["size"][i]),
            int(batch["mtime_ns"][i]),
            batch["problem"][i] or None,
        )
        if clip := str(batch["clip"][i]):
            entry = replace(entry, clip=FileEntry(entry.root, clip, 0, 0))
        result = read_file(entry, draft_size, known_hashes, budget)
        out["idx"].append(int(batch["idx"][i]))
        for name in RESULT_FIELDS[1:]:
            value = getattr(result, name)
            out[name].append(value.isoformat() if isinstance(value, datetime) else value)
        # raw RGB bytes + shape: Arrow blocks hold bytes of any length, not ragged arrays mixed with None
        pixels = np.asarray(result.image.convert("RGB")) if result.image is not None else None
        out["pixels"].append(b"" if pixels is None else pixels.tobytes())
        out["pixels_shape"].append("" if pixels is None else f"{pixels.shape[0]}x{pixels.shape[1]}")
    return {name: _column(values) for name, values in out.items()}


class EmbedWorker:
    """Actor: loads the Embedder once, then embeds the decoded images of each batch it is given."""

    def __init__(self, spec: dict, device: str, batch_size: int, threads: int | None = None):
        from mme5 import load_embedder

        if threads and device == "cpu":
            import torch

            torch.set_num_threads(threads)  # before loading: an ONNX session takes torch's thread count
        self.embedder = load_embedder(
            spec["model"],
            device=device,
            dtype=spec["dtype"],
            adapter=spec["adapter"],
            verbose=False,
            runtime=spec["runtime"],
        )
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        from PIL import Image

        pixels, shapes = batch.pop("pixels"), batch.pop("pixels_shape")
        wanted = [i for i, shape in enumerate(shapes) if shape]
        vectors: list = [b""] * len(shapes)
        failures: list = [""] * len(shapes)
        pictures = []
        for i in wanted:
            height, width = map(int, shapes[i].split("x"))
            pictures.append(Image.fromarray(np.frombuffer(pixels[i], np.uint8).reshape(height, width, 3)))
        outcomes = embed_isolating(
            self.embedder, pictures, lambda: self.embedder.encode_images(pictures, batch_size=self.batch_size)
        )
        for i, (vector, failure) in zip(wanted, outcomes):
            vectors[i] = b"" if vector is None else vector.astype(np.float32).tobytes()
            failures[i] = failure or ""
        batch["vector"] = _column(vectors)
        batch["embed_error"] = _column(failures)
        return batch


def _column(values: list) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _check_roots(roots: set, probes: dict) -> None:
    """Fail fast where this node does not see the driver's folders (unmounted share, other path)."""
    for root in roots:
        probe = probes.get(root)
        if probe is None:
            continue
        relpath, size = probe
        try:
            if os.stat(os.path.join(root, relpath)).st_size == size:
                continue
        except OSError:
            pass
        try:  # the probe may simply have been deleted meanwhile: only an empty or missing folder is fatal
            with os.scandir(root) as entries:
                if next(entries, None) is not None:
                    continue
        except OSError:
            pass
        raise WorkerCannotReadError(
            f"a Ray worker on {socket.gethostname()} cannot read the photo folder {printable(root)} that the driver "
            f"listed (missing or empty there). Mount the photo folders at the same path on every node "
            f"(a shared NFS/SMB mount), then run the same command again; committed progress is kept."
        )


# -- the driver side -----------------------------------------------------------------------


def _ray_results(
    owner: "RayEngine",
    entries: list[FileEntry],
    embedder,
    known_hashes: frozenset,
    options: RayOptions,
    batch_size: int,
    decode_budget: int = DEFAULT_DECODE_BUDGET,
):
    """Yield an ``Embedded`` record per entry as the cluster finishes them; afterwards ``owner.peak_decode_pixels`` is the most pixels the decode tasks held at once."""
    ray = start_ray(options)
    import ray.data  # noqa: F811 - the same module start_ray returned; this loads its data submodule

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.verbose_stats_logs = False
    cluster = ray.cluster_resources()
    actors, gpus = plan_workers(options, cluster)
    device = "cuda" if gpus else "cpu"
    nodes = [node for node in ray.nodes() if node["Alive"]]
    threads = None if gpus else model_threads(options, actors, cluster, len(nodes))
    logger.info(
        f"indexer: Ray engine, {actors} embedding worker(s) on {device}"
        f"{f' ({gpus:g} GPU each)' if gpus else f' ({threads} thread(s) each)'}, decoding on CPU tasks"
    )
    probes: dict = {}
    for entry in entries:
        if entry.problem is None and entry.root not in probes:
            probes[entry.root] = (entry.relpath, entry.size)
    items = [
        {
            "idx": i,
            "root": entry.root,
            "relpath": entry.relpath,
            "size": entry.size,
            "mtime_ns": entry.mtime_ns,
            "problem": entry.problem or "",
            "clip": entry.clip.relpath if entry.clip is not None else "",  # a Live Photo's clip, checked on read
        }
        for i, entry in enumerate(entries)
    ]
    actor_args = dict(num_gpus=gpus) if gpus else dict(num_cpus=options.cpus_per_worker)
    actor_args["memory"] = actor_memory(embedder, bool(gpus), max(node["Resources"].get("memory", 0) for node in nodes))
    keeper = ray.remote(BudgetKeeper).options(num_cpus=0, max_concurrency=256).remote(decode_budget)
    dataset = (
        ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // batch_size, 1000)))
        .map_batches(
            decode_batch,
            batch_size=batch_size,
            batch_format="numpy",
            num_cpus=options.cpus_per_decoder,
            fn_kwargs=dict(
                draft_size=embedder.backbone.image_draft_size,
                known_hashes=known_hashes,
                probes=probes,
                budget=SharedBudget(keeper),
            ),
        )
        .map_batches(
            EmbedWorker,
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs=dict(
                spec=model_spec(embedder), device=device, batch_size=batch_size, threads=threads
            ),
            **actor_args,
        )
    )
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(batch["idx"])):
                index = int(batch["idx"][i])
                result = ReadResult(entries[index])
                for name in RESULT_FIELDS[1:]:
                    value = batch[name][i]
                    setattr(result, name, _plain(name, value))
                vector = batch["vector"][i]
                yield Embedded(
                    index,
                    result,
                    np.frombuffer(vector, np.float32) if len(vector) else None,
                    batch["embed_error"][i] or None,
                )
        owner.peak_decode_pixels = int(ray.get(keeper.peak.remote()))
    except Exception as error:  # noqa: BLE001 - Ray wraps worker errors; surface ours as they are
        cause = _find_cause(error, WorkerCannotReadError)
        if cause is not None:
            raise WorkerCannotReadError(str(cause)) from None
        raise
    finally:
        ray.kill(keeper)


def _plain(name: str, value):
    """A column value back as ReadResult holds it (Arrow turns missing ints into NaN floats)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and value != value):
        return None
    if name == "taken_at":
        return datetime.fromisoformat(value)
    if name in ("size", "mtime_ns", "width", "height"):
        return int(value)
    if name in ("retry", "vanished", "changed"):
        return bool(value)
    return value or None if name in ("content_hash", "camera", "error") else value


def _find_cause(error: BaseException, kind: type) -> BaseException | None:
    """Our exception inside Ray's wrappers (RayTaskError, UserCodeException, ...), or None."""
    seen = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        if kind.__name__ in str(current).split(":")[0] or f"{kind.__name__}:" in str(current):
            text = str(current)
            return kind(text[text.find("a Ray worker") :] if "a Ray worker" in text else text)
        stack += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    return None


class RayEngine:
    """The engine of ``--engine ray`` (see ``indexer.engines``): files are read, decoded and embedded on
    the cluster and come back as they finish, each with its vector; the build commits them in batches."""

    label = "indexing (ray)"

    def __init__(self, options: RayOptions | None = None, videos: LocalEngine | None = None):
        self.options = options or RayOptions()
        self.videos = videos or LocalEngine()  # reads and embeds the videos on the driver
        self.peak_decode_pixels = 0  # most pixels the decode tasks held at once, after a run

    def results(
        self, entries: list[FileEntry], embedder, known: frozenset, batch_size: int, budget: DecodeBudget
    ) -> Generator[Embedded, None, None]:
        """Photos on the cluster; videos through ``self.videos`` (a ``LocalEngine``) here on the driver, since a
        video is many keyframes and Ray's columns carry one image per file. Indexes are the list's own."""
        videos = [index for index, entry in enumerate(entries) if is_video_name(entry.path)]
        photos = [index for index, entry in enumerate(entries) if not is_video_name(entry.path)]
        peak = 0
        if videos:
            with contextlib.closing(
                self.videos.results([entries[index] for index in videos], embedder, known, batch_size, budget)
            ) as stream:
                for record in stream:
                    yield record._replace(position=videos[record.position])
            peak = self.videos.peak_decode_pixels
        if photos:
            with contextlib.closing(
                _ray_results(
                    self, [entries[index] for index in photos], embedder, known, self.options, batch_size, budget.limit
                )
            ) as stream:
                for record in stream:
                    yield record._replace(position=photos[record.position])
        self.peak_decode_pixels = max(self.peak_decode_pixels, peak)
