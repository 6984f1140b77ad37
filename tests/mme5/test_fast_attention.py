"""The mask-free vision attention computes the stock function: same vectors, same gradients (fp32, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mme5 import fast_attention, prompts
from mme5.backbone import EmbedInput

TOL = 1e-5


def photos():
    """1, 2, 3 and 4 tiles on the tiny model's 28-px tiles (so 3, 2, 1 and 0 padded tiles)."""
    sizes = [(20, 20), (50, 25), (20, 75), (50, 50), (100, 20), (24, 30)]
    images = []
    for number, (width, height) in enumerate(sizes):
        rng = np.random.default_rng(number)
        images.append(Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)))
    return images


@pytest.fixture(scope="module")
def embedder(tiny_mllama_dir):
    from mme5 import load_embedder

    return load_embedder(str(tiny_mllama_dir), device="cpu", fast_attention=False, verbose=False)


@pytest.fixture
def plans(monkeypatch):
    """Counts fast-path plans made: proves which path a forward took."""
    calls = []
    original = fast_attention._make_plan

    def counting(mask):
        calls.append(mask.shape)
        return original(mask)

    monkeypatch.setattr(fast_attention, "_make_plan", counting)
    return calls


def test_switches(tiny_mllama_dir, monkeypatch):
    from mme5 import load_embedder

    assert fast_attention.wanted("cuda") and not fast_attention.wanted("cpu")
    assert fast_attention.wanted("cpu", True) and not fast_attention.wanted("cuda", False)
    monkeypatch.setenv("MME5_FAST_ATTENTION", "0")
    assert not fast_attention.wanted("cuda") and fast_attention.wanted("cuda", True)
    monkeypatch.setenv("MME5_FAST_ATTENTION", "1")
    assert fast_attention.wanted("cpu")
    monkeypatch.delenv("MME5_FAST_ATTENTION")
    forced = load_embedder(str(tiny_mllama_dir), device="cpu", fast_attention=True, verbose=False)
    assert forced.backbone.fast_attention
    assert load_embedder(str(tiny_mllama_dir), device="cpu", verbose=False).backbone.fast_attention is False


def encode_all(embedder, kind: str, batch_size: int) -> np.ndarray:
    images = photos()
    texts = ["a red square at night", "кот", "un perro en la playa con su dueño", "x", "赤い丸", "dog"]
    if kind == "images":
        return embedder.encode_images(images, batch_size=batch_size)
    if kind == "image_queries":
        return embedder.encode_image_queries(images, batch_size=batch_size)
    return embedder.encode_composed(images, texts, batch_size=batch_size)


@pytest.mark.parametrize("gather_above", [fast_attention.GATHER_QUERIES_ABOVE, 1.0], ids=["gathered", "overwrite"])
@pytest.mark.parametrize("kind", ["images", "image_queries", "composed"])
@pytest.mark.parametrize("batch_size", [1, 6], ids=["single", "batched"])
def test_vectors_equal_the_stock_module(embedder, plans, monkeypatch, kind, batch_size, gather_above):
    monkeypatch.setattr(fast_attention, "GATHER_QUERIES_ABOVE", gather_above)
    backbone = embedder.backbone
    backbone.fast_attention = False
    stock = encode_all(embedder, kind, batch_size)
    assert plans == []
    backbone.fast_attention = True
    try:
        fast = encode_all(embedder, kind, batch_size)
    finally:
        backbone.fast_attention = False
    assert plans, "the fast path was not used"
    assert len(plans) == (len(photos()) if batch_size == 1 else 1)  # one plan per vision forward, not per layer
    assert np.abs(fast - stock).max() <= TOL
    assert np.abs(stock).max() > 0.01  # real vectors, not zeros


def masks(tiles_per_sample, num_patches=13, target=16, max_tiles=4):
    from transformers.models.mllama.modeling_mllama import _prepare_aspect_ratio_attention_mask

    aspect = torch.zeros(len(tiles_per_sample), max_tiles, dtype=torch.long)
    for row, tiles in enumerate(tiles_per_sample):
        aspect[row, :tiles] = 1
    return _prepare_aspect_ratio_attention_mask(aspect, num_patches, target, torch.float32)


@pytest.mark.parametrize("gather_above", [fast_attention.GATHER_QUERIES_ABOVE, 1.0], ids=["gathered", "overwrite"])
@pytest.mark.parametrize("tiles", [[4], [1], [1, 2, 3, 4], [2, 2, 4, 1, 2]], ids=str)
def test_function_and_gradients_equal_stock_sdpa(tiles, gather_above, monkeypatch):
    """Against transformers' own SDPA function on its own mask, forward and backward."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    monkeypatch.setattr(fast_attention, "GATHER_QUERIES_ABOVE", gather_above)

    mask = masks(tiles)
    batch, heads, length, dim = len(tiles), 3, mask.shape[-1], 8
    generator = torch.Generator().manual_seed(len(tiles))
    inputs = [torch.randn(batch, heads, length, dim, generator=generator, dtype=torch.float32) for _ in range(3)]
    module = torch.nn.Module()
    results = {}
    for name, function in (("stock", sdpa_attention_forward), ("fast", fast_attention.vision_attention)):
        leaves = [tensor.clone().requires_grad_(True) for tensor in inputs]
        output, _ = function(module, *leaves, mask, dropout=0.0, scaling=dim**-0.5)
        weights = torch.linspace(-1, 1, output.numel()).reshape(output.shape)
        (output * weights).sum().backward()
        results[name] = (output.detach(), [leaf.grad for leaf in leaves])
    assert results["fast"][0].shape == results["stock"][0].shape == (batch, length, heads, dim)
    assert (results["fast"][0] - results["stock"][0]).abs().max() <= TOL
    for fast_grad, stock_grad in zip(results["fast"][1], results["stock"][1]):
        assert (fast_grad - stock_grad).abs().max() <= TOL
        assert stock_grad.abs().max() > 0


def test_padding_read_from_the_mask_diagonal():
    padding = fast_attention.padding_of(masks([1, 4], num_patches=5, target=8))
    assert padding.shape == (2, 32)
    assert padding[0].tolist() == [False] * 5 + [True] * 27
    assert padding[1].tolist() == ([False] * 5 + [True] * 3) * 4


def test_training_gradients_equal_under_lora_and_checkpointing(tiny_mllama_dir, plans):
    """LoRA on every projection, gradient checkpointing on every layer: same loss, same adapter gradients."""
    from mme5 import load_embedder
    from trainer.model import LoraSettings, make_trainable, trainable_parameters

    results = {}
    for on in (False, True):
        embedder = load_embedder(str(tiny_mllama_dir), device="cpu", fast_attention=on, verbose=False)
        torch.manual_seed(0)
        make_trainable(embedder, LoraSettings(dropout=0.0, dora=True), gradient_checkpointing=True)
        items = [EmbedInput(text=prompts.image_document(), image=image) for image in photos()[:4]]
        items.append(EmbedInput(text=prompts.composed_query("at night"), image=photos()[4]))
        items = items[:4]
        vectors = embedder.forward(items)
        loss = (vectors @ torch.linspace(-1, 1, vectors.shape[1])).square().sum()
        loss.backward()
        grads = {
            name: parameter.grad.clone()
            for name, parameter in trainable_parameters(embedder.backbone.model).items()
            if "vision_model" in name
        }
        results[on] = (vectors.detach(), grads)
        assert bool(plans) == on
    assert (results[True][0] - results[False][0]).abs().max() <= TOL
    assert results[True][1].keys() == results[False][1].keys() and results[False][1]
    moved = 0
    for name, stock in results[False][1].items():
        assert (results[True][1][name] - stock).abs().max() <= TOL * max(1.0, stock.abs().max().item()), name
        moved += bool(stock.abs().max() > 0)
    assert moved > 0
