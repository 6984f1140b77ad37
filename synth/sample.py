"""Stages 2-4 for one sample: one MLLM call, validation, at most one repair, quality gates."""

from __future__ import annotations

from dataclasses import dataclass, field

from .backend import BackendError, Completion
from .checks import Rejected, check_data
from .configure import SampleConfig
from .prompt import build_messages, repair_messages
from .records import build_failure, build_record
from .schema import Generation, GenerationError, parse_generation


@dataclass
class Outcome:
    config: SampleConfig
    record: dict | None = None
    failure: dict | None = None
    generation: Generation | None = None
    usage: dict = field(default_factory=dict)


def _add(usage: dict, completion: Completion) -> None:
    usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + completion.prompt_tokens
    usage["completion_tokens"] = usage.get("completion_tokens", 0) + completion.completion_tokens
    usage["retries"] = usage.get("retries", 0) + completion.retries
    usage["calls"] = usage.get("calls", 0) + 1


def generate_one(backend, config: SampleConfig) -> Outcome:
    """Never raises for a bad sample: every way it can fail ends in ``Outcome.failure``.

    ``FatalBackendError`` (bad key, unknown model) does propagate: no sample could succeed.
    """
    usage: dict = {"prompt_tokens": 0, "completion_tokens": 0, "retries": 0, "calls": 0}
    outcome = Outcome(config, usage=usage)
    messages = build_messages(config)

    answer = None

    def fail(reason: str, detail: str, retryable: bool = False) -> Outcome:
        outcome.failure = build_failure(config, reason, detail, backend.model, usage, retryable, answer)
        return outcome

    try:
        completion = backend.complete(messages)
        _add(usage, completion)
        answer = completion.text
        try:
            generation = parse_generation(completion.text, config.combo)
        except GenerationError as first:
            completion = backend.complete(repair_messages(messages, completion.text, str(first)))
            _add(usage, completion)
            answer = completion.text
            try:
                generation = parse_generation(completion.text, config.combo)
            except GenerationError as second:
                return fail(second.reason, f"{second.detail} (after one repair attempt; first: {first.detail})")
    except BackendError as error:
        usage["retries"] += error.retries
        return fail(error.reason, error.detail, retryable=True)
    except ValueError as error:  # an image that cannot be read
        return fail("bad_image", str(error))
    outcome.generation = generation
    try:
        check_data(generation.revised, config)
    except Rejected as rejected:
        return fail(rejected.reason, rejected.detail)
    outcome.record = build_record(config, generation, backend.model, usage)
    return outcome
