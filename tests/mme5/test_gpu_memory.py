"""Batch size from free GPU memory: the pure rule, the mmE5 estimate, the per-process cap, the stderr note."""

from __future__ import annotations

import types

import pytest
import torch

from mme5 import gpu_memory
from mme5.gpu_memory import GIB, RESERVE_BYTES, batch_size_for, image_activation_bytes

WEIGHTS = 19.8 * GIB  # full-size mmE5 in bf16


def full_size_per_image() -> int:
    from mme5.tiny import mllama_config

    vision = mllama_config("full").vision_config
    return image_activation_bytes(4, 1608, vision.hidden_size, 2)


def test_estimate_covers_the_measured_growth():
    """H200 measurement (stock attention): +0.88 GiB peak per 4-tile photo; the estimate must not be below it."""
    per_image = full_size_per_image()
    assert 0.88 * GIB <= per_image <= 1.2 * GIB


@pytest.mark.parametrize(("card_gib", "expected"), [(22.3, 2), (24.0, 3), (40.0, 8), (80.0, 8), (141.0, 8)])
def test_cards(card_gib, expected):
    """Cards people own, after the weights: 24 GB cards get a smaller batch instead of running out of memory."""
    free = int(card_gib * GIB - WEIGHTS)
    chosen = batch_size_for(free, full_size_per_image(), requested=8)
    assert chosen == expected
    assert chosen * full_size_per_image() + RESERVE_BYTES <= free or chosen == 1


def test_rule_edges():
    assert batch_size_for(0, 10, requested=8) == 1  # never below one: the forward decides, with a clear OOM
    assert batch_size_for(10**12, 10, requested=5) == 5  # never above what was asked
    assert batch_size_for(RESERVE_BYTES + 30, 10, requested=8) == 3
    assert batch_size_for(1, 0, requested=4) == 4  # nothing to estimate
    with pytest.raises(ValueError, match="at least 1"):
        batch_size_for(GIB, 10, requested=0)


def test_tiny_backbone_estimate_follows_its_config(tiny_mllama):
    # tiny: 28-px tiles of 14-px patches = 5 tokens, padded to 8; width 32; float32 on the CPU; 4 tiles
    assert tiny_mllama.backbone.image_activation_bytes() == gpu_memory.ACTIVATION_FACTOR * 4 * 8 * 32 * 4


def test_free_bytes_respects_a_per_process_cap(monkeypatch):
    """The 24 GB check caps the process with set_per_process_memory_fraction on a big card: honour it."""
    total = 141 * GIB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (120 * GIB, total))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 21 * GIB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 20 * GIB)
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda device=None: 1.0)
    assert gpu_memory.free_bytes(torch.device("cuda")) == 121 * GIB
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda device=None: 24e9 / total)
    assert gpu_memory.free_bytes(torch.device("cuda")) == int(24e9) - 20 * GIB


def test_fit_lowers_on_a_small_gpu_and_says_so(monkeypatch, caplog):
    fake = types.SimpleNamespace(
        device=torch.device("cuda"), backbone=types.SimpleNamespace(image_activation_bytes=lambda: GIB)
    )
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda device: int(2.6 * GIB))
    assert gpu_memory.fit_batch_size(fake, 8) == 2
    err = caplog.text
    assert "batch size 8 would need ~8.5 GiB" in err and "2.6 GiB free: using batch size 2" in err
    caplog.clear()
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda device: 100 * GIB)
    assert gpu_memory.fit_batch_size(fake, 8) == 8
    assert caplog.text == ""


def test_cpu_keeps_the_requested_batch(tiny_mllama):
    assert gpu_memory.fit_batch_size(tiny_mllama, 8) == 8
    assert gpu_memory.fit_batch_size(types.SimpleNamespace(), 8) == 8  # not an mme5 embedder: untouched
