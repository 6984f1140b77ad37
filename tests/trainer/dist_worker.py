"""Run by torchrun from test_distributed.py: one contrastive micro-step on this rank's shard.

Saves the (rank-averaged) loss and LoRA gradients so the test can compare them with one
process holding the whole global batch.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist


def prepare(model_dir: str):
    """The tiny model with LoRA whose weights are all non-zero (so every gradient is informative)."""
    from mme5 import load_embedder
    from trainer.model import LoraSettings, make_trainable, trainable_parameters

    embedder = load_embedder(model_dir, device="cpu", verbose=False, runtime="torch")
    torch.manual_seed(0)
    make_trainable(embedder, LoraSettings(dropout=0.0), gradient_checkpointing=False)
    params = trainable_parameters(embedder.backbone.model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name in sorted(params):
            params[name].add_(0.05 * torch.randn(params[name].shape, generator=generator))
    return embedder, params


def run_step(embedder, params, data, batch_size, world, rank, chunk):
    from trainer.step import build_inputs, grad_cache_step, plain_step
    from trainer.train import average_gradients, micro_batch_indices

    indices = micro_batch_indices(len(data), 42, 0, batch_size, world, rank)
    inputs = build_inputs(embedder.family, [data[i] for i in indices])
    out = grad_cache_step(embedder, inputs, 0.05, chunk) if chunk else plain_step(embedder, inputs, 0.05)
    average_gradients([params[name] for name in sorted(params)])
    return out


def main(model_dir, train_file, image_dir, batch_size, out_prefix, chunk):
    from trainer.data import load_examples

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    embedder, params = prepare(model_dir)
    data = load_examples([train_file], image_dir)
    out = run_step(embedder, params, data, int(batch_size), world, rank, int(chunk))
    loss = torch.tensor([out.loss.item()], dtype=torch.float64)
    dist.all_reduce(loss)
    torch.save(
        {"loss": loss.item() / world, "grads": {n: p.grad.clone() for n, p in params.items()}},
        f"{out_prefix}-{rank}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
