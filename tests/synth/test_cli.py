"""``python -m synth`` end to end against a real scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from .synth_answers import answer_for, asked
from .synth_fake_openai import FakeOpenAI, Reply, ok
from synth.cli import main
from synth.records import SCHEMA_COLUMNS
from synth.tasks import TASKS
from .synth_testing import assert_matches

LANGUAGES = {"en": 0.4, "de": 0.3, "fr": 0.2, "es": 0.1}
TASK_WEIGHTS = {"retrieval": 0.5, "vqa": 0.25, "classification": 0.25}
REPO = Path(__file__).resolve().parents[2]


def spec(weights: dict) -> str:
    return ",".join(f"{name}={weight}" for name, weight in weights.items())


def generate_args(index_dir, out, server, n, *extra) -> list[str]:
    return [
        "generate",
        "--index",
        str(index_dir),
        "--out",
        str(out),
        "--n",
        str(n),
        "--base-url",
        server.url,
        "--model",
        "fake-4o",
        "--api-key",
        "k",
        "--languages",
        spec(LANGUAGES),
        "--tasks",
        spec(TASK_WEIGHTS),
        "--timeout",
        "5",
        "--no-progress",
        *extra,
    ]


def valid(request, number):
    return ok(answer_for(request, number))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def big_run(index_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "big"
    with FakeOpenAI(valid) as server:
        assert (
            main(
                generate_args(
                    index_dir, out, server, 200, "--concurrency", "8", "--price-in", "2.5", "--price-out", "10"
                )
            )
            == 0
        )
        requests = [request for _, request in server.requests]
    return out, requests


@pytest.mark.slow  # the module's big run: 3 tests share its ~10 s
def test_records_follow_the_mmE5_schema(big_run, photos):
    out, requests = big_run
    rows = lines(out / "samples.jsonl")
    assert len(rows) == 200 and len({row["sample_id"] for row in rows}) == 200
    # every answer was valid, so each sample took one call; with 40 photos, image-only queries (same image,
    # same instruction) repeat and are dropped as near-duplicates
    failures = lines(out / "failures.jsonl") if (out / "failures.jsonl").exists() else []
    assert len(requests) == 200 + len(failures)
    assert {failure["reason"] for failure in failures} <= {"near_duplicate"}
    assert all(failure["modality"].split("->")[0] == "I" for failure in failures)
    for row in rows:
        assert set(SCHEMA_COLUMNS) <= set(row)
        query_side, target_side = row["modality"].split("->")
        assert row["modality"] in TASKS[row["task"]]
        assert row["qry"].startswith("<|image_1|>\n") == ("I" in query_side) == bool(row["qry_image_path"])
        assert row["pos_text"].startswith("<|image_1|>\n") == ("I" in target_side) == bool(row["pos_image_path"])
        negatives, negative_images = eval(row["neg_text"]), eval(row["neg_image_path"])  # noqa: S307 - HF format
        assert len(negatives) == len(negative_images) == 1
        assert negatives[0].startswith("<|image_1|>\n") == ("I" in target_side) == bool(negative_images[0])
        for path in (row["qry_image_path"], row["pos_image_path"], negative_images[0]):
            if path:
                assert (photos / path).is_file()
        assert row["generator"] == "fake-4o" and row["prompt_version"] == "synth-v1" and row["seed"] == 0
        assert {"general", "objects", "context", "brainstorm"} == set(json.loads(row["description"]))
        assert "improvements" in json.loads(row["evaluation"])
        if row["language"] != "en" and "T" in target_side:
            assert row["pos_text"].replace("<|image_1|>\n", "") != row["query_text"]


@pytest.mark.slow  # the module's big run
def test_languages_tasks_and_combinations_match_the_weights(big_run):
    out, requests = big_run
    rows = lines(out / "samples.jsonl")
    failures = lines(out / "failures.jsonl") if (out / "failures.jsonl").exists() else []
    assert_matches(Counter(row["language"] for row in rows), LANGUAGES)
    assert_matches(Counter(row["task"] for row in rows), TASK_WEIGHTS)
    combos = Counter(row["modality"] for row in rows if row["task"] == "retrieval")
    assert_matches(combos, {combo: 1 / 7 for combo in TASKS["retrieval"]})
    # and the prompt asked for exactly what the record says
    asked_for = Counter(asked(request) for request in requests)
    assert asked_for == Counter((row["task"], row["modality"], row["language"]) for row in rows + failures)


@pytest.mark.slow  # the module's big run
def test_summary_and_stats_account_for_tokens_and_cost(big_run, capsys):
    out, requests = big_run
    calls = len(requests)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accepted"] == 200 and summary["attempted"] == calls
    assert summary["prompt_tokens"] == calls * 1000 and summary["completion_tokens"] == calls * 300
    assert summary["cost_usd"] == pytest.approx((calls * 1000 * 2.5 + calls * 300 * 10.0) / 1e6)
    assert main(["stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    rows = lines(out / "samples.jsonl")
    assert stats["accepted"] == 200 and stats["failed"] == calls - 200
    assert stats["acceptance_rate"] == pytest.approx(200 / calls, abs=1e-4)
    assert stats["cost_usd"] == pytest.approx(summary["cost_usd"])
    assert stats["by_language"] == dict(Counter(row["language"] for row in rows))
    assert sum(stats["by_task_modality"].values()) == 200
    assert main(["stats", str(out)]) == 0
    text = capsys.readouterr().out
    assert "by language:" in text and f"acceptance {200 / calls:.1%}" in text


def test_failures_are_counted_with_reasons(index_dir, tmp_path, capsys):
    def reply(request, number):
        if number % 4 == 1:  # English text where German was asked for
            return ok(
                answer_for(
                    request,
                    number,
                    query="A black cat sleeps under a big oak tree at noon today",
                    positive="The picture shows a black cat sleeping in the shade of an old tree.",
                )
            )
        if number % 4 == 2:
            return Reply(content="Sure! Here is your data: description ...")
        return valid(request, number)

    out = tmp_path / "mixed"
    with FakeOpenAI(reply) as server:
        args = generate_args(index_dir, out, server, 12, "--languages", "de", "--tasks", "vqa", "--concurrency", "1")
        assert main(args) == 0
    assert len(lines(out / "samples.jsonl")) == 12
    assert main(["stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["failure_reasons"]["wrong_language"] >= 3
    assert stats["acceptance_rate"] == pytest.approx(12 / (12 + stats["failed"]), abs=1e-4)
    failures = lines(out / "failures.jsonl")
    assert all(failure["reason"] in ("wrong_language", "invalid_json", "schema") for failure in failures)
    wrong = [failure for failure in failures if failure["reason"] == "wrong_language"]
    assert all("text reads as en" in failure["detail"] for failure in wrong)
    assert all("A black cat sleeps" in failure["answer"] for failure in wrong)  # kept for inspection


@pytest.mark.slow  # kills a generate run and resumes it in subprocesses
def test_kill_and_resume_gives_every_sample_once(index_dir, tmp_path):
    out = tmp_path / "killed"

    def slow(request, number):
        return Reply(content=answer_for(request, number), delay=0.2)

    with FakeOpenAI(slow) as server:
        args = generate_args(index_dir, out, server, 40, "--concurrency", "4")
        env = dict(os.environ)
        process = subprocess.Popen(
            [sys.executable, "-m", "synth", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        samples = out / "samples.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not samples.exists() or len(samples.read_bytes().splitlines()) < 8):
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        before = lines(samples)
        assert 8 <= len(before) < 40
        with open(samples, "a", encoding="utf-8") as handle:  # what a kill in the middle of a write leaves
            handle.write('{"qry": "<|image_1|>\\nhalf a rec')
        assert main(args) == 0
        after = lines(samples)
        assert main(args) == 0  # a finished run has nothing left to do
        calls = len(server.requests)
        assert len(lines(samples)) == 40 and len(server.requests) == calls
    ids = [row["sample_id"] for row in after]
    assert len(ids) == 40 == len(set(ids))
    assert after[: len(before)] == before
    assert set(ids) == {f"s0-{index:08d}" for index in range(40)}  # the same samples an uninterrupted run makes


def test_resuming_with_other_settings_is_refused(index_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with FakeOpenAI(valid) as server:
        assert main(generate_args(index_dir, out, server, 2)) == 0
        assert main(generate_args(index_dir, out, server, 4, "--seed", "5")) == 1
    assert "seed: was 0, now 5" in capsys.readouterr().err
    assert len(lines(out / "samples.jsonl")) == 2


def test_overlapping_rank_windows_are_refused(index_dir, tmp_path, capsys):
    with FakeOpenAI(valid) as server:
        args = generate_args(
            index_dir, tmp_path / "r", server, 2, "--positive-ranks", "1-10", "--negative-ranks", "5-30"
        )
        assert main(args) == 2
    assert "--positive-ranks 1-10 must end before --negative-ranks 5-30" in capsys.readouterr().err


def test_dry_run_prints_exact_prompts_and_calls_nothing(index_dir, tmp_path, capsys):
    out = tmp_path / "dry"
    with FakeOpenAI(valid) as server:
        assert main(generate_args(index_dir, out, server, 3, "--dry-run")) == 0
        assert server.requests == []
    printed = capsys.readouterr().out
    assert printed.count("=== sample s0-0000000") == 3
    assert "--- system ---" in printed and "Rules for the data fields:" in printed and "[image: " in printed
    assert not out.exists()


def test_bad_key_stops_with_advice(index_dir, tmp_path, capsys):
    with FakeOpenAI([Reply(status=401, error="Incorrect API key provided")]) as server:
        assert main(generate_args(index_dir, tmp_path / "denied", server, 5, "--concurrency", "1")) == 1
        assert len(server.requests) == 1  # the first refusal stops the run: no request per sample
    assert "API key" in capsys.readouterr().err


@pytest.mark.slow  # runs the CLI in subprocesses (model loads each time)
def test_images_folder_is_indexed_then_used(photos, tiny_siglip_dir, tmp_path):
    out = tmp_path / "from_images"
    with FakeOpenAI(valid) as server:
        args = generate_args("unused", out, server, 4)
        args[1:3] = ["--images", str(photos)]
        assert main([*args, "--embed-model", str(tiny_siglip_dir), "--device", "cpu"]) == 0
    assert (out / "index").is_dir()
    rows = lines(out / "samples.jsonl")
    assert len(rows) == 4
    manifest = json.loads((out / "run.json").read_text())
    assert Path(manifest["image_root"]) == photos.resolve()


@pytest.mark.parametrize("command", [[], ["generate"], ["stats"], ["export"], ["languages"]])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "example" in capsys.readouterr().out


def test_an_outage_stops_the_run_and_a_rerun_retries_those_samples(index_dir, tmp_path, capsys):
    out = tmp_path / "outage"
    with FakeOpenAI([Reply(status=502, error="bad gateway")]) as server:
        args = generate_args(index_dir, out, server, 30, "--concurrency", "2", "--max-retries", "0")
        assert main(args) == 0
        assert len(server.requests) < 14  # stopped after 10 failed samples in a row, not after 30+
    in_a_row = re.search(r"the server failed (\d+) samples in a row", capsys.readouterr().err)
    assert in_a_row and 10 <= int(in_a_row.group(1)) <= 11  # two in flight may both fail at the tenth
    failed = lines(out / "failures.jsonl")
    assert all(failure["retryable"] and failure["reason"] == "api_error" for failure in failed)
    with FakeOpenAI(valid) as server:  # the server is back (on another port: --base-url may change)
        assert main(generate_args(index_dir, out, server, 30, "--concurrency", "2", "--max-retries", "0")) == 0
    ids = {row["sample_id"] for row in lines(out / "samples.jsonl")}
    assert {failure["sample_id"] for failure in failed} <= ids and len(ids) == 30
    assert main(["stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["accepted"] == 30 and "api_error" not in stats["failure_reasons"]
