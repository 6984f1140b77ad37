"""The generation loop: bounded concurrency, append-only output, resume, progress and summary."""

from __future__ import annotations

import itertools
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from .backend import FatalBackendError
from .checks import Deduplicator
from .configure import sample_id
from .costs import cost
from .sample import Outcome, generate_one
from .output import RunFolder
from .prompt import build_messages, render
from .records import build_failure, dedup_text

MAX_API_ERRORS_IN_A_ROW = 10  # an outage, not bad luck: stop instead of burning through every sample


@dataclass
class Summary:
    target: int
    accepted_before: int = 0
    accepted: int = 0
    failed: Counter = field(default_factory=Counter)
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prices: tuple[float, float] | None = None
    seconds: float = 0.0
    stopped: str = ""
    structured: dict | None = None  # the backend's structured-output negotiation (mode, steps)

    @property
    def attempted(self) -> int:
        return self.accepted + sum(self.failed.values())

    @property
    def cost(self) -> float | None:
        return cost(self.prompt_tokens, self.completion_tokens, self.prices)

    def as_dict(self) -> dict:
        return {
            "target": self.target,
            "accepted_before": self.accepted_before,
            "accepted": self.accepted,
            "attempted": self.attempted,
            "failed": dict(self.failed),
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost,
            "seconds": round(self.seconds, 2),
            "stopped": self.stopped,
            "structured_output": self.structured,
        }

    def format(self) -> str:
        rate = self.accepted / self.attempted if self.attempted else 0.0
        lines = [
            f"synth: {self.accepted} accepted of {self.attempted} attempted this run ({rate:.0%}); "
            f"{self.accepted_before + self.accepted}/{self.target} in the output; {self.seconds:.1f} s",
            f"  tokens: {self.prompt_tokens:,} in, {self.completion_tokens:,} out; retries: {self.retries}; "
            + (f"cost: ${self.cost:.4f}" if self.cost is not None else "cost: unknown (pass --price-in/--price-out)"),
        ]
        if self.structured:
            lines.append(
                f"  structured output: {self.structured['mode']}"
                + "".join(f"; {step}" for step in self.structured["steps"])
            )
        if self.failed:
            lines.append("  failures: " + ", ".join(f"{reason} {count}" for reason, count in self.failed.most_common()))
        if self.stopped:
            lines.append(f"  stopped: {self.stopped}")
        return "\n".join(lines)


def _pending_indices(done: set[str], sample_id) -> itertools.count:
    return (index for index in itertools.count() if sample_id(index) not in done)


def _outcome(future, config, model: str) -> Outcome:
    """The sample's outcome; an unexpected error (say, GPU out of memory) fails this sample, not the run.

    ``FatalBackendError`` (bad key, unknown model) still propagates: no sample could succeed.
    """
    try:
        return future.result()
    except FatalBackendError:
        raise
    except Exception as error:  # noqa: BLE001 - recorded with its type; the sample is retried on the next run
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "retries": 0, "calls": 0}
        detail = f"{type(error).__name__}: {str(error)[:300]}"
        return Outcome(
            config, failure=build_failure(config, "error", detail, model, usage, retryable=True), usage=usage
        )


def dry_run(folder: RunFolder, configurator, n: int, out=None) -> None:
    """Print the exact prompts of the next ``n`` samples; nothing is called or written."""
    out = out or sys.stdout
    done = {row["sample_id"] for row in folder.samples()} if folder.exists() else set()
    indices = _pending_indices(done, lambda index: sample_id(configurator.seed, index))
    for index in itertools.islice(indices, n):
        config = configurator(index)
        print(
            f"=== sample {config.sample_id}: task={config.task} modality={config.combo.name} "
            f"language={config.language}",
            file=out,
        )
        print(render(build_messages(config)), file=out)
        print(file=out)


def generate(
    folder: RunFolder,
    configurator,
    backend,
    n: int,
    concurrency: int = 4,
    max_attempts: int | None = None,
    prices: tuple[float, float] | None = None,
    show_progress: bool = True,
) -> Summary:
    """Generate until ``n`` samples are accepted in ``folder`` (or ``max_attempts`` samples are done)."""
    started = time.perf_counter()
    dedup = Deduplicator()
    accepted_ids = set()
    batch: list[tuple[str, str]] = []
    for row in folder.samples():  # re-add the accepted queries in batches: 100,000 take seconds
        accepted_ids.add(row["sample_id"])
        batch.append(dedup_text(row))
        if len(batch) >= 10_000:
            dedup.seen_many(batch)
            batch.clear()
    dedup.seen_many(batch)
    final_failures = {row["sample_id"] for row in folder.failures() if not row.get("retryable")} - accepted_ids
    done = accepted_ids | final_failures
    max_attempts = max_attempts if max_attempts is not None else 2 * n + 20
    summary = Summary(target=n, accepted_before=len(accepted_ids), prices=prices)
    indices = _pending_indices(done, lambda index: sample_id(configurator.seed, index))
    attempts = len(done)
    progress = tqdm(
        total=n,
        initial=min(n, len(accepted_ids)),
        desc="synth",
        unit="sample",
        file=sys.stderr,
        disable=not show_progress,
        dynamic_ncols=True,
    )
    executor = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="synth")
    in_flight: dict = {}  # future -> its sample's configuration
    api_errors_in_a_row = 0

    def accepted_total() -> int:
        return summary.accepted_before + summary.accepted

    try:
        while True:
            if api_errors_in_a_row >= MAX_API_ERRORS_IN_A_ROW and not summary.stopped:
                summary.stopped = (
                    f"the server failed {api_errors_in_a_row} samples in a row even after retries "
                    "(see failures.jsonl); fix it and run the same command again to retry them"
                )
            while (
                not summary.stopped
                and len(in_flight) < concurrency
                and accepted_total() + len(in_flight) < n
                and attempts + len(in_flight) < max_attempts
            ):
                config = configurator(next(indices))
                in_flight[executor.submit(generate_one, backend, config)] = config
            if not in_flight:  # when stopping, the requests already paid for are still written
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = _outcome(future, in_flight.pop(future), backend.model)
                attempts += 1
                usage = outcome.usage
                summary.prompt_tokens += usage.get("prompt_tokens", 0)
                summary.completion_tokens += usage.get("completion_tokens", 0)
                summary.retries += usage.get("retries", 0)
                record, failure = outcome.record, outcome.failure
                if record is not None and dedup.seen(*dedup_text(record)):
                    failure = build_failure(
                        outcome.config, "near_duplicate", "query nearly repeats an earlier one", backend.model, usage
                    )
                    record = None
                if record is not None:
                    folder.add_sample(record)
                    summary.accepted += 1
                    progress.update(1)
                else:
                    folder.add_failure(failure)
                    summary.failed[failure["reason"]] += 1
                api_errors_in_a_row = api_errors_in_a_row + 1 if failure and failure["retryable"] else 0
                progress.set_postfix(
                    failed=sum(summary.failed.values()),
                    tokens=summary.prompt_tokens + summary.completion_tokens,
                    refresh=False,
                )
        if accepted_total() < n and not summary.stopped:
            summary.stopped = (
                f"reached --max-attempts {max_attempts} with {accepted_total()} of {n} accepted; "
                "raise --max-attempts or look at the failure reasons (python -m synth stats OUT)"
            )
    except KeyboardInterrupt:
        executor.shutdown(wait=False, cancel_futures=True)
        summary.stopped = "interrupted; run the same command again to continue where it stopped"
        return summary
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        progress.close()
        summary.seconds = time.perf_counter() - started
        summary.structured = getattr(backend, "structured", None)
        folder.close()
    executor.shutdown(wait=True)
    return summary
