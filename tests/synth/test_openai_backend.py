"""The OpenAI-compatible backend against a real HTTP server: retries, waits, repair, failures."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from .synth_answers import answer_for, asked
from .synth_testing import make_config
from .synth_fake_openai import FakeOpenAI, Reply, ok
from synth.backend import FatalBackendError
from synth.sample import generate_one
from synth.openai_backend import OpenAIBackend


def backend(server, **options) -> OpenAIBackend:
    settings = dict(model="fake-4o", base_url=server.url, api_key="test-key", timeout=5.0, max_retries=3, backoff=0.05)
    settings.update(options)
    return OpenAIBackend(**settings)


def valid(request, number):
    return ok(answer_for(request, number))


def test_valid_answer_becomes_a_record_and_request_is_well_formed(photos):
    config = make_config(photos, combo="IT->IT", language="de")
    with FakeOpenAI(valid) as server:
        outcome = generate_one(backend(server), config)
        ((_, request),) = server.requests
    assert outcome.failure is None, outcome.failure
    record = outcome.record
    assert record["qry"].startswith("<|image_1|>\nFind an everyday photo")
    assert record["pos_text"].startswith("<|image_1|>\nDieses Bild zeigt")
    assert record["qry_image_path"] == config.query_image.relpath
    assert eval(record["neg_image_path"]) == [config.neg_image.relpath]  # noqa: S307 - the HF dataset's format
    assert record["usage"] == {"prompt_tokens": 1000, "completion_tokens": 300, "retries": 0, "calls": 1}
    # the wire: model, structured output, three images as data URLs in prompt order, the configured language named
    assert request["model"] == "fake-4o" and request["response_format"]["type"] == "json_schema"
    assert request["temperature"] == 0.7 and request["max_tokens"] == 2048
    parts = request["messages"][1]["content"]
    urls = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
    assert len(urls) == 3 and all(url.startswith("data:image/jpeg;base64,") for url in urls)
    decoded = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1])))
    assert decoded.size == Image.open(config.query_image.path).size
    assert asked(request) == ("retrieval", "IT->IT", "de")


def test_429_waits_for_retry_after_then_succeeds(photos):
    config = make_config(photos)
    script = [Reply(status=429, headers={"Retry-After": "1"}, error="rate limited"), None]

    def reply(request, number):
        return script[0] if number == 0 else valid(request, number)

    with FakeOpenAI(reply) as server:
        outcome = generate_one(backend(server, backoff=0.01), config)
        times = [moment for moment, _ in server.requests]
    assert outcome.record is not None
    assert outcome.usage["retries"] == 1
    assert times[1] - times[0] >= 0.95  # honoured Retry-After: 1 although the backoff alone is 10 ms


def test_500_and_a_hang_past_the_timeout_are_retried(photos):
    config = make_config(photos)
    replies = [Reply(status=500, error="upstream exploded"), Reply(delay=3.0, content="{}")]

    def reply(request, number):
        return replies[number] if number < len(replies) else valid(request, number)

    with FakeOpenAI(reply) as server:
        outcome = generate_one(backend(server, timeout=0.5), config)
        count = len(server.requests)
    assert outcome.record is not None, outcome.failure
    assert count == 3 and outcome.usage["retries"] == 2


def test_a_proxy_page_or_truncated_body_is_retried_not_a_crash(photos):
    config = make_config(photos)
    replies = [
        Reply(raw=b"<html><body>502 Bad Gateway</body></html>"),
        Reply(raw=b'{"id": "chatcmpl-1", "cho'),
        Reply(raw=b'{"object": "error"}'),
    ]

    def reply(request, number):
        return replies[number] if number < len(replies) else valid(request, number)

    with FakeOpenAI(reply) as server:
        outcome = generate_one(backend(server), config)
    assert outcome.record is not None and outcome.usage["retries"] == 3
    with FakeOpenAI([Reply(raw=b"<html>down</html>")]) as server:
        outcome = generate_one(backend(server, max_retries=1), config)
    assert outcome.failure["reason"] == "api_error" and "not a chat completion" in outcome.failure["detail"]


def test_retries_are_bounded_and_counted_as_a_retryable_failure(photos):
    config = make_config(photos)
    with FakeOpenAI([Reply(status=503, error="overloaded")]) as server:
        outcome = generate_one(backend(server, max_retries=2), config)
        count = len(server.requests)
    assert count == 3
    assert outcome.failure["reason"] == "api_error" and outcome.failure["retryable"] is True
    assert "HTTP 503" in outcome.failure["detail"] and outcome.failure["usage"]["retries"] == 2


def test_malformed_json_gets_one_repair_attempt(photos):
    config = make_config(photos)

    def reply(request, number):
        return ok('{"description": {"general": "a cat", ') if number == 0 else valid(request, number)

    with FakeOpenAI(reply) as server:
        outcome = generate_one(backend(server), config)
        repair = server.requests[1][1]["messages"]
    assert outcome.record is not None
    assert outcome.usage["calls"] == 2
    assert repair[-2] == {"role": "assistant", "content": '{"description": {"general": "a cat", '}
    assert "could not be used" in repair[-1]["content"]


def test_missing_fields_twice_fail_with_the_schema_reason(photos):
    config = make_config(photos)

    def reply(request, number):
        broken = json.loads(answer_for(request, number))
        del broken["revised"]["positive"]
        del broken["evaluation"]
        return ok(broken)

    with FakeOpenAI(reply) as server:
        outcome = generate_one(backend(server), config)
        count = len(server.requests)
    assert count == 2  # the answer and exactly one repair
    assert outcome.record is None
    assert outcome.failure["reason"] == "schema" and outcome.failure["retryable"] is False
    assert "revised.positive" in outcome.failure["detail"] and "evaluation" in outcome.failure["detail"]


def test_empty_required_field_is_a_schema_failure(photos):
    config = make_config(photos, combo="T->I")
    with FakeOpenAI(lambda request, number: ok(answer_for(request, number, query=""))) as server:
        outcome = generate_one(backend(server), config)
    assert outcome.failure["reason"] == "schema" and "revised.query empty" in outcome.failure["detail"]


@pytest.mark.parametrize(
    "override, reason",
    [
        ({"query": "A red bicycle stands next to the river at sunset, seen from the other side."}, "wrong_language"),
        ({"instruction": "Finde ein alltägliches Foto, das zur gegebenen Beschreibung passt."}, "wrong_language"),
        (
            {
                "query": "Dieses Bild zeigt deutlich ein rotes Fahrrad neben dem Fluss am Mittag, umgeben von Menschen",
                "positive": "Dieses Bild zeigt deutlich ein rotes Fahrrad neben dem Fluss am Mittag, umgeben von Menschen.",
            },
            "copied_positive",
        ),
    ],
)
def test_quality_gates_reject(photos, override, reason):
    config = make_config(photos, combo="IT->T", language="de")
    with FakeOpenAI(lambda request, number: ok(answer_for(request, number, **override))) as server:
        outcome = generate_one(backend(server), config)
    assert outcome.record is None and outcome.failure["reason"] == reason, outcome.failure


def test_server_without_json_mode_is_asked_again_without_it(photos):
    config = make_config(photos)

    def reply(request, number):
        if "response_format" in request:
            return Reply(status=400, error="response_format is not supported by this model")
        return valid(request, number)

    with FakeOpenAI(reply) as server:
        client = backend(server)
        outcome = generate_one(client, config)
    assert outcome.record is not None and client.json_mode is False and client.mode == "text"


def test_bad_key_stops_the_run(photos):
    with FakeOpenAI([Reply(status=401, error="invalid api key")]) as server:
        with pytest.raises(FatalBackendError, match="API key"):
            generate_one(backend(server), make_config(photos))
