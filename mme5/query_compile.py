"""The fast text-query path: one-row text queries through torch.compile with CUDA graphs.

A search query is one short text; eagerly it costs ~20 ms of kernel launches on a big GPU,
compiled with ``mode="reduce-overhead"`` (CUDA graphs) ~5 ms. CUDA graphs need fixed
shapes, so the tokens are right-padded to a few bucket lengths; pooling takes the last
non-pad token and attention is causal, so padding after it changes nothing.

Eager is kept (with the reason logged) on the CPU, where ``MME5_COMPILE_QUERIES=0``, on
Hugging Face ZeroGPU (``SPACES_ZERO_GPU``: the GPU is attached per call, graphs cannot be
kept), and when compiling fails (a warning, then eager for good). All compiled calls run on
one dedicated thread: CUDA-graph trees belong to the thread that recorded them, and the
web server answers from a pool of threads.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from .zero_gpu import on_zero_gpu

log = logging.getLogger(__name__)

BUCKETS = (16, 32, 64, 128, 256)
ENV = "MME5_COMPILE_QUERIES"
BUCKETS_ENV = "MME5_QUERY_BUCKETS"  # e.g. "32,64": fewer lengths, shorter warm-up; longer queries run eagerly


def default_buckets() -> tuple[int, ...]:
    """BUCKETS, or the lengths in MME5_QUERY_BUCKETS; a malformed value is an error that says what to write."""
    from .settings import Settings

    return Settings.from_env().query_buckets or BUCKETS


def eager_reason(device: torch.device | str) -> str | None:
    """Why queries must stay eager here, or None if compiling is allowed."""
    from .settings import Settings

    if Settings.from_env().compile_queries is False:
        return f"{ENV}=0"
    if on_zero_gpu():
        return "Hugging Face ZeroGPU (SPACES_ZERO_GPU) does not keep CUDA graphs between calls"
    if torch.device(device).type != "cuda":
        return "not on a CUDA GPU"
    return None


def bucket_for(length: int, buckets=BUCKETS) -> int | None:
    """Smallest bucket that holds ``length`` tokens; None if none does."""
    return next((bucket for bucket in buckets if bucket >= length), None)


def pad_to(tensors: dict, length: int, pad_id: int) -> dict:
    """input_ids / attention_mask right-padded to ``length`` (pad id, mask 0)."""
    ids, mask = tensors["input_ids"], tensors["attention_mask"]
    extra = length - ids.shape[1]
    if extra <= 0:
        return {"input_ids": ids, "attention_mask": mask}
    return {
        "input_ids": torch.nn.functional.pad(ids, (0, extra), value=pad_id),
        "attention_mask": torch.nn.functional.pad(mask, (0, extra), value=0),
    }


class QueryCompiler:
    """Runs one-row text batches of a backbone at bucketed lengths through a compiled forward.

    ``compiler`` is ``torch.compile`` (tests pass others); ``force`` compiles even where
    ``eager_reason`` says not to (tests, CPU experiments). ``run`` returns None whenever the
    batch is not for this path, so the caller simply runs eagerly.
    """

    def __init__(self, backbone, buckets=None, compiler=None, mode: str = "reduce-overhead", force: bool = False):
        self.backbone = backbone
        self.buckets = tuple(sorted(buckets or default_buckets()))
        self.reason: str | None = None if force else eager_reason(backbone.device)
        self.compiled: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if self.reason is None:
            compiler = compiler or torch.compile
            try:
                self.compiled = compiler(backbone.forward_text, mode=mode, dynamic=False)
            except Exception as error:  # noqa: BLE001 - any compile setup failure means: stay eager
                self._give_up(error)

    @property
    def active(self) -> bool:
        return self.compiled is not None

    def _give_up(self, error: BaseException) -> None:
        self.compiled = None
        self.reason = (
            f"compiling failed ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})"
        )
        warnings.warn(f"mme5: text queries run eagerly: {self.reason}", RuntimeWarning, stacklevel=3)
        log.warning("text queries run eagerly: %s", self.reason)

    def handles(self, tensors: dict) -> bool:
        ids = tensors.get("input_ids")
        return (
            self.compiled is not None
            and "pixel_values" not in tensors
            and ids is not None
            and ids.shape[0] == 1
            and bucket_for(ids.shape[1], self.buckets) is not None
            and not torch.is_grad_enabled()
        )

    def run(self, tensors: dict) -> torch.Tensor | None:
        """The pooled, normalised vector (1, dim), or None: not for this path (or it just failed)."""
        compiled = self.compiled  # read once: a failure on another thread may set it to None meanwhile
        if compiled is None or not self.handles(tensors):
            return None
        length = bucket_for(tensors["input_ids"].shape[1], self.buckets)
        if length is None:  # handles() checked that the length fits a bucket
            return None
        padded = pad_to(tensors, length, self.backbone.pad_token_id)
        try:
            return self._on_thread(compiled, padded)
        except Exception as error:  # noqa: BLE001 - a compile/graph failure must not fail the query
            self._give_up(error)
            return None

    def _on_thread(self, compiled: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], padded: dict) -> torch.Tensor:
        with self._lock:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mme5-query-graphs")
            thread = self._thread

        def call():
            with torch.inference_mode():
                moved = self.backbone.to_device(padded)
                # CUDA-graph outputs are overwritten by the next replay: copy out before returning
                return compiled(moved["input_ids"], moved["attention_mask"]).clone()

        return thread.submit(call).result()

    def warm_up(self, verbose: bool = True) -> float:
        """Compile (and record graphs) for every bucket now, so no user waits for it; returns seconds.

        Says on stderr which path queries take (the app's startup log shows it).
        """
        started = time.perf_counter()
        if self.compiled is not None:
            token = self.backbone.pad_token_id
            with torch.inference_mode():
                for bucket in self.buckets:
                    length = max(1, bucket - 1)  # one pad at least: the path real queries take
                    tensors = {
                        "input_ids": torch.full((1, length), token, dtype=torch.long),
                        "attention_mask": torch.ones((1, length), dtype=torch.long),
                    }
                    for _ in range(3):  # cudagraph trees record on the second or third call of a shape
                        self.run(tensors)
        seconds = time.perf_counter() - started if self.compiled is not None else 0.0
        if self.compiled is not None:
            message = (
                f"mme5: text queries compiled (CUDA graphs) for token lengths "
                f"{','.join(map(str, self.buckets))}; warm-up {seconds:.1f} s"
            )
        else:
            message = f"mme5: text queries run eagerly ({self.reason})"
        log.log(logging.INFO if verbose else logging.DEBUG, "%s", message)
        return seconds
