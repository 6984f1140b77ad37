"""Structured outputs against a real scripted server: json_schema where supported, else json_object, else text.

Three servers: one that supports json_schema, one that rejects it with HTTP 400, one that
accepts the parameter but ignores it (answers with chatter around the JSON).
"""

from __future__ import annotations

import json

from .synth_answers import answer_for
from .synth_fake_openai import FakeOpenAI, Reply, ok
from synth.cli import main
from synth.schema import Generation, response_schema

GENERATE = [
    "--n",
    "6",
    "--model",
    "fake-4o",
    "--api-key",
    "k",
    "--languages",
    "en",
    "--tasks",
    "retrieval:T->I",
    "--timeout",
    "5",
    "--no-progress",
    "--concurrency",
    "3",
]


def generate(index_dir, out, server) -> dict:
    assert main(["generate", "--index", str(index_dir), "--out", str(out), "--base-url", server.url, *GENERATE]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accepted"] == 6
    return summary


def stats(out, capsys) -> tuple[dict, str]:
    capsys.readouterr()
    assert main(["stats", str(out), "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["stats", str(out)]) == 0
    return as_json, capsys.readouterr().out


def formats(server) -> list:
    return [(request.get("response_format") or {}).get("type") for _, request in server.requests]


def test_schema_is_strict_and_closed():
    schema = response_schema()
    objects = [schema, *schema["$defs"].values()]
    assert {tuple(o["required"]) for o in objects} >= {
        ("description", "data", "evaluation", "revised"),
        ("instruction", "query", "positive", "hard_negative"),
    }
    assert all(o["additionalProperties"] is False and set(o["required"]) == set(o["properties"]) for o in objects)
    assert set(schema["properties"]) == set(Generation.model_fields)


def test_server_supporting_json_schema_gets_it_on_every_request(index_dir, tmp_path, capsys):
    def reply(request, number):
        rf = request.get("response_format") or {}
        assert rf.get("type") == "json_schema"  # a real structured-output server would constrain decoding here
        assert rf["json_schema"]["strict"] is True and rf["json_schema"]["schema"] == response_schema()
        return ok(answer_for(request, number))

    with FakeOpenAI(reply) as server:
        summary = generate(index_dir, tmp_path / "run", server)
        sent = formats(server)
    assert sent == ["json_schema"] * 6
    assert summary["structured_output"] == {"mode": "json_schema", "confirmed": True, "steps": []}
    as_json, text = stats(tmp_path / "run", capsys)
    assert as_json["structured_output"]["mode"] == "json_schema" and "structured output: json_schema" in text


def test_server_rejecting_json_schema_with_400_falls_back_to_json_object_once(index_dir, tmp_path, capsys):
    def reply(request, number):
        if (request.get("response_format") or {}).get("type") == "json_schema":
            return Reply(status=400, error="response_format type json_schema is not supported")
        return ok(answer_for(request, number))

    with FakeOpenAI(reply) as server:
        summary = generate(index_dir, tmp_path / "run", server)
        sent = formats(server)
    rejected = sent.count("json_schema")
    assert 1 <= rejected <= 3  # at most the requests already in flight (--concurrency 3) before the first 400
    assert sent.count("json_object") == 6 and len(sent) == 6 + rejected and sent[0] == "json_schema"
    assert summary["structured_output"]["mode"] == "json_object" and summary["structured_output"]["confirmed"]
    (step,) = summary["structured_output"]["steps"]
    assert step.startswith("json_schema -> json_object: the server rejected json_schema (HTTP 400")
    assert "json_schema is not supported" in step
    assert summary["failed"] == {} and summary["retries"] == 0  # a format fallback is not a retry or a failure
    as_json, text = stats(tmp_path / "run", capsys)
    assert as_json["structured_output"]["mode"] == "json_object" and "json_schema -> json_object" in text


def test_server_ignoring_response_format_is_read_as_text_with_repair(index_dir, tmp_path, capsys):
    def reply(request, number):  # takes response_format, never follows it
        return ok("Sure! Here is the data you asked for:\n" + answer_for(request, number) + "\nHope this helps.")

    with FakeOpenAI(reply) as server:
        summary = generate(index_dir, tmp_path / "run", server)
        sent = formats(server)
    ignored = sent.count("json_schema")
    assert 1 <= ignored <= 3  # the requests in flight before the first answer showed it was ignored
    assert len(sent) == 6 and sent.count(None) == 6 - ignored and sent[0] == "json_schema"  # then none at all
    assert summary["structured_output"]["mode"] == "text"
    assert "ignored it" in summary["structured_output"]["steps"][0]
    as_json, text = stats(tmp_path / "run", capsys)
    assert as_json["structured_output"]["mode"] == "text" and "structured output: text" in text
