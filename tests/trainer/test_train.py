"""The training CLI: resume after kill -9, refusing to clobber a run, clear errors, merge."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def train_command(model, toy, output, *extra, steps=8, save_every=2):
    return [
        sys.executable,
        "-m",
        "trainer",
        "train",
        "--model",
        str(model),
        "--data",
        str(toy["train"]),
        "--image-dir",
        str(toy["images"]),
        "--output",
        str(output),
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--max-steps",
        str(steps),
        "--save-every",
        str(save_every),
        "--no-progress",
        *extra,
    ]


def run(command, env, timeout=400):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def losses(output):
    return [json.loads(line)["loss"] for line in (output / "log.jsonl").read_text().splitlines()]


def lora_weights(output):
    from safetensors.torch import load_file

    return load_file(str(output / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def straight_run(tiny_mllama_dir, toy, cli_env, tmp_path_factory):
    """8 steps without interruption (dropout on, gradient checkpointing on: the defaults)."""
    output = tmp_path_factory.mktemp("runs") / "straight"
    result = run(train_command(tiny_mllama_dir, toy, output), cli_env)
    assert result.returncode == 0, result.stderr[-3000:]
    return output


@pytest.mark.slow  # trains through the CLI (with the module's straight_run)
def test_resume_after_kill_continues_the_same_loss_curve(cli_env, tiny_mllama_dir, toy, straight_run, tmp_path):
    output = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(tiny_mllama_dir, toy, output),
        cwd=ROOT,
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = output / "checkpoints" / "step-00000004"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), process.stderr.read()[-2000:]
    assert not (output / "adapter_config.json").exists()  # really killed mid-run
    resumed = run(train_command(tiny_mllama_dir, toy, output, "--resume"), cli_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "at step 4/8" in resumed.stderr
    assert len(losses(output)) == 8
    np.testing.assert_allclose(losses(output), losses(straight_run), rtol=1e-5)
    expected, got = lora_weights(straight_run), lora_weights(output)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-7, msg=name)
    kept = sorted(p.name for p in (output / "checkpoints").iterdir())
    assert kept == ["step-00000004", "step-00000006"]  # --save-total-limit 2, no temporary folders left


@pytest.mark.slow  # trains
def test_run_outputs_log_and_settings(straight_run):
    records = [json.loads(line) for line in (straight_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9))
    assert {"loss", "lr", "acc", "grad_norm", "samples_per_s"} <= set(records[0])
    assert records[0]["lr"] == pytest.approx(1e-3)  # 5 % of 8 steps rounds up to one warmup step
    assert records[-1]["lr"] == pytest.approx(1e-3 / 7)  # linear decay towards 0
    settings = json.loads((straight_run / "training_args.json").read_text())
    assert settings["lora"] == {"r": 8, "alpha": 64, "dropout": 0.1, "dora": True, "init": "gaussian", "targets": []}
    assert settings["temperature"] == 0.02 and settings["negative_ratio"] == 3 and settings["max_grad_norm"] == 5.0
    config = json.loads((straight_run / "adapter_config.json").read_text())
    assert config["use_dora"] is True and config["r"] == 8 and config["lora_alpha"] == 64
    assert {"q_proj", "v_proj", "down_proj"} <= set(config["target_modules"])


@pytest.mark.slow  # trains through the CLI (with the module's straight_run)
def test_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(
    cli_env, tiny_mllama_dir, toy, straight_run, tmp_path
):
    before = (straight_run / "adapter_model.safetensors").read_bytes()
    again = run(train_command(tiny_mllama_dir, toy, straight_run), cli_env)
    assert again.returncode == 1 and "already holds a run" in again.stderr and "--resume" in again.stderr
    assert (straight_run / "adapter_model.safetensors").read_bytes() == before
    fresh = run(train_command(tiny_mllama_dir, toy, tmp_path / "new", "--resume"), cli_env)
    assert fresh.returncode == 1 and "no checkpoint to resume from" in fresh.stderr


@pytest.mark.slow  # trains through the CLI
def test_bad_data_gives_a_clear_error(cli_env, tiny_mllama_dir, toy, tmp_path):
    missing = run(
        train_command(tiny_mllama_dir, {"train": tmp_path / "nope.jsonl", "images": toy["images"]}, tmp_path / "out"),
        cli_env,
    )
    assert missing.returncode == 1 and "nope.jsonl: data file or folder not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_help_has_worked_example(cli_env):
    result = run([sys.executable, "-m", "trainer", "train", "--help"], cli_env)
    assert result.returncode == 0
    assert "torchrun --nproc_per_node 2 -m trainer train" in result.stdout and "--grad-cache" in result.stdout


@pytest.mark.slow  # trains through the CLI (with the module's straight_run)
def test_merge_writes_a_model_equal_to_base_plus_adapter(cli_env, tiny_mllama_dir, toy, straight_run, tmp_path):
    from mme5 import load_embedder

    out = tmp_path / "merged"
    result = run(
        [
            sys.executable,
            "-m",
            "trainer",
            "merge",
            "--model",
            str(tiny_mllama_dir),
            "--adapter",
            str(straight_run),
            "--out",
            str(out),
        ],
        cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    image = str(next(iter(sorted((toy["images"] / "test").iterdir()))))
    merged = load_embedder(str(out), device="cpu")
    adapted = load_embedder(str(tiny_mllama_dir), device="cpu", adapter=str(straight_run))
    base = load_embedder(str(tiny_mllama_dir), device="cpu")
    for encode in (lambda e: e.encode_images([image]), lambda e: e.encode_text_queries(["un círculo rojo"])):
        np.testing.assert_allclose(encode(merged), encode(adapted), atol=1e-5)
        assert not np.allclose(encode(base), encode(adapted), atol=1e-3)  # the adapter changed something
    again = run(
        [
            sys.executable,
            "-m",
            "trainer",
            "merge",
            "--model",
            str(tiny_mllama_dir),
            "--adapter",
            str(straight_run),
            "--out",
            str(out),
        ],
        cli_env,
    )
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.slow  # trains through the CLI
def test_row_with_an_undecodable_image_is_replaced_and_counted(cli_env, tiny_mllama_dir, toy, tmp_path):
    rows = [json.loads(line) for line in toy["train"].read_text(encoding="utf-8").splitlines()[:5]]
    broken = toy["images"] / "train" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    rows[0]["pos_image_path"] = "train/broken.png"
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    output = tmp_path / "out"
    result = run(
        train_command(
            tiny_mllama_dir,
            {"train": data, "images": toy["images"]},
            output,
            "--no-gradient-checkpointing",
            steps=2,
            save_every=0,
        ),
        cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "broken.png" in result.stderr and "unreadable image" in result.stderr
    assert json.loads((output / "training_args.json").read_text())["skipped"] == {"unreadable image": 1}
    assert (output / "adapter_model.safetensors").is_file()


@pytest.mark.slow  # trains
def test_full_fine_tuning_writes_a_loadable_model(tiny_mllama_dir, toy, tmp_path):
    from mme5 import load_embedder
    from trainer.train import TrainConfig, train

    output = tmp_path / "full"
    result = train(
        TrainConfig(
            model=str(tiny_mllama_dir),
            data=[str(toy["train"])],
            output=str(output),
            image_dir=str(toy["images"]),
            max_steps=2,
            batch_size=4,
            lr=1e-3,
            lora=None,
            gradient_checkpointing=False,
            save_every=0,
            show_progress=False,
            device="cpu",
        )
    )
    assert result.steps == 2 and len(result.losses) == 2
    assert (output / "config.json").is_file() and not (output / "adapter_config.json").exists()
    tuned, base = load_embedder(str(output), device="cpu"), load_embedder(str(tiny_mllama_dir), device="cpu")
    query = ["a red circle"]
    assert tuned.dim == base.dim
    assert not np.allclose(tuned.encode_text_queries(query), base.encode_text_queries(query), atol=1e-4)


def test_a_finished_run_without_checkpoints_is_not_overwritten(tmp_path):
    from trainer.train import TrainConfig, TrainError, train

    output = tmp_path / "done"
    output.mkdir()
    (output / "adapter_config.json").write_text("{}")
    with pytest.raises(TrainError, match=r"already holds a run \(adapter_config.json\); pass --resume"):
        train(TrainConfig(model="unused", data=["unused.jsonl"], output=str(output)))
    assert (output / "adapter_config.json").read_text() == "{}"


@pytest.mark.slow  # trains
def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_over(tiny_mllama_dir, toy, tmp_path):
    from trainer.train import TrainConfig, train

    output = tmp_path / "early"
    output.mkdir()
    (output / "log.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "loss": 9.0}\n')
    result = train(
        TrainConfig(
            model=str(tiny_mllama_dir),
            data=[str(toy["train"])],
            output=str(output),
            image_dir=str(toy["images"]),
            max_steps=1,
            batch_size=2,
            resume=True,
            save_every=0,
            gradient_checkpointing=False,
            show_progress=False,
            device="cpu",
        )
    )
    assert result.steps == 1
    assert [json.loads(line)["step"] for line in (output / "log.jsonl").read_text().splitlines()] == [1]
    assert json.loads((output / "log.jsonl").read_text())["loss"] != 9.0


def test_unreadable_checkpoint_is_reported_not_silently_skipped(tiny_mllama_dir, toy, tmp_path):
    from trainer.train import TrainConfig, TrainError, train

    output = tmp_path / "broken"
    checkpoint = output / "checkpoints" / "step-00000002"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.pt").write_bytes(b"truncated")
    with pytest.raises(TrainError, match=r"step-00000002: checkpoint cannot be read .*delete this folder"):
        train(
            TrainConfig(
                model=str(tiny_mllama_dir),
                data=[str(toy["train"])],
                output=str(output),
                image_dir=str(toy["images"]),
                batch_size=2,
                max_steps=4,
                resume=True,
                device="cpu",
                gradient_checkpointing=False,
                show_progress=False,
            )
        )


def test_vision_layers_are_checkpointed_and_gradients_unchanged(tiny_mllama_dir):
    """transformers leaves Mllama's vision encoder out of gradient checkpointing; we add it."""
    import torch
    from PIL import Image

    from mme5 import EmbedInput, load_embedder, prompts
    from trainer.model import LoraSettings, make_trainable, trainable_parameters

    items = [
        EmbedInput(text=prompts.image_document(), image=Image.new("RGB", (40, 30), colour))
        for colour in ("red", "blue")
    ]
    gradients = []
    for checkpointing in (False, True):
        embedder = load_embedder(str(tiny_mllama_dir), device="cpu")
        torch.manual_seed(0)
        make_trainable(embedder, LoraSettings(dropout=0.0), gradient_checkpointing=checkpointing)
        vision_layers = embedder.backbone.model.model.vision_model.transformer.layers
        assert all(getattr(layer, "_mme5_checkpointed", False) == checkpointing for layer in vision_layers)
        vectors = embedder.forward(items)
        (vectors[0] @ vectors[1]).backward()
        gradients.append(
            {
                name: p.grad.clone()
                for name, p in trainable_parameters(embedder.backbone.model).items()
                if p.grad is not None and "vision_model" in name
            }
        )
    assert gradients[0] and gradients[0].keys() == gradients[1].keys()
    for name in gradients[0]:
        torch.testing.assert_close(gradients[0][name], gradients[1][name], rtol=1e-5, atol=1e-6)
