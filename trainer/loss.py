"""InfoNCE over the global batch: each query against every positive on every rank plus its
own hard negatives (mmE5's loss), with an all-gather whose backward sends each rank the
gradient that every other rank's queries put on its positives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums the gathered gradient over ranks and keeps the local slice.

    (all_reduce rather than reduce_scatter so that it also runs on gloo.)
    """

    @staticmethod
    def forward(ctx, tensor):
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rank, ctx.rows = rank, tensor.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    return _GatherWithGrad.apply(tensor) if distributed() else tensor


@dataclass
class LossOutput:
    loss: torch.Tensor  # mean over this rank's queries
    accuracy: float  # share of this rank's queries whose positive scores highest


def contrastive_loss(
    queries: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None = None,
    temperature: float = 0.02,
    negative_mask: torch.Tensor | None = None,
) -> LossOutput:
    """queries, positives: (b, d); negatives: (b, k, d) hard negatives of each query, or None;
    negative_mask: (b, k) bool, False where a query has no such negative (padding).

    Every rank must pass the same b.  With DDP-style gradient averaging over ranks the
    parameter gradients equal those of one process holding the whole global batch.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    all_positives = gather_with_grad(positives)
    logits = queries @ all_positives.T
    if negatives is not None and negatives.shape[1] > 0:
        negative_logits = torch.einsum("bd,bkd->bk", queries, negatives)
        if negative_mask is not None:
            negative_logits = negative_logits.masked_fill(~negative_mask, float("-inf"))
        logits = torch.cat([logits, negative_logits], dim=1)
    logits = logits / temperature
    offset = dist.get_rank() * queries.shape[0] if distributed() else 0
    target = torch.arange(queries.shape[0], device=queries.device) + offset
    loss = F.cross_entropy(logits.float(), target)
    accuracy = (logits.argmax(dim=1) == target).float().mean().item()
    return LossOutput(loss, accuracy)
