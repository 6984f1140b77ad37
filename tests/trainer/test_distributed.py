"""Two gloo processes give the loss and gradients of one process holding the global batch;
GradCache gives the gradients of plain backprop."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.data import load_examples

pytestmark = pytest.mark.slow  # trains under torchrun

WORKER = Path(__file__).with_name("dist_worker.py")
pytestmark = pytest.mark.slow  # trains in one process and in two torchrun-style gloo processes


def _worker():
    spec = importlib.util.spec_from_file_location("dist_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def single(tiny_mllama_dir, toy):
    """Loss and gradients of one process on the global batch of 2 x 2 examples."""
    worker = _worker()
    embedder, params = worker.prepare(str(tiny_mllama_dir))
    data = load_examples([str(toy["train"])], str(toy["images"]))
    out = worker.run_step(embedder, params, data, 4, 1, 0, 0)
    return {
        "loss": out.loss.item(),
        "grads": {n: p.grad.clone() for n, p in params.items()},
        "worker": worker,
        "embedder": embedder,
        "params": params,
        "data": data,
    }


@pytest.mark.parametrize("chunk", [0, 1], ids=["plain", "grad-cache"])
def test_two_gloo_processes_match_one_process(tiny_mllama_dir, toy, single, cli_env, tmp_path, chunk):
    prefix = tmp_path / "rank"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "--module",
        "tests.trainer.dist_worker",
        str(tiny_mllama_dir),
        str(toy["train"]),
        str(toy["images"]),
        "2",
        str(prefix),
        str(chunk),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=400, env=cli_env, cwd=WORKER.parents[2]
    )  # `--module` from the repo root finds the packages
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(f"{prefix}-{rank}.pt") for rank in (0, 1)]
    for saved in ranks:
        assert saved["loss"] == pytest.approx(single["loss"], rel=1e-5)
        assert set(saved["grads"]) == set(single["grads"])
        for name, grad in single["grads"].items():
            torch.testing.assert_close(saved["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert sum(float(g.abs().sum()) for g in single["grads"].values()) > 0


def test_grad_cache_gradients_equal_plain(single):
    worker, embedder, params = single["worker"], single["embedder"], single["params"]
    for parameter in params.values():
        parameter.grad = None
    out = worker.run_step(embedder, params, single["data"], 4, 1, 0, 3)  # chunks of 3 of 4 queries, 12 negatives
    assert out.loss.item() == pytest.approx(single["loss"], rel=1e-5)
    for name, grad in single["grads"].items():
        torch.testing.assert_close(params[name].grad, grad, rtol=1e-4, atol=1e-6, msg=name)
