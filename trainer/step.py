"""One contrastive micro-step: embed a batch of examples, compute the loss, backpropagate.

Two equivalent ways: plain (all embeddings in one graph) and GradCache (Gao et al. 2021):
embed chunk by chunk without a graph, take the loss gradient w.r.t. the embeddings, then
re-run each chunk with a graph and push that cached gradient in.  Memory then depends on
the chunk size, not the batch, so the in-batch pool can be thousands on one GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .data import Example
from .inputs import embed_with_grad, to_input
from .loss import LossOutput, contrastive_loss


@dataclass
class StepInputs:
    """The three lists of model inputs of a micro-batch plus where the negatives go."""

    queries: list
    positives: list
    negatives: list  # flattened, k per example that has negatives
    negative_slots: list[tuple[int, int]]  # (example, slot) of each negative
    negatives_per_query: int


def build_inputs(family: str, examples: Sequence[Example]) -> StepInputs:
    queries = [to_input(family, e.qry, e.qry_image_path) for e in examples]
    positives = [to_input(family, e.pos_text, e.pos_image_path) for e in examples]
    k = max((len(e.neg_texts) for e in examples), default=0)
    negatives, slots = [], []
    for row, example in enumerate(examples):
        for slot, (text, image) in enumerate(zip(example.neg_texts, example.neg_image_paths)):
            negatives.append(to_input(family, text, image))
            slots.append((row, slot))
    return StepInputs(queries, positives, negatives, slots, k)


def _loss(inputs: StepInputs, q, p, n, temperature) -> LossOutput:
    negatives = mask = None
    if inputs.negatives_per_query and n is not None:
        negatives = q.new_zeros(q.shape[0], inputs.negatives_per_query, q.shape[1])
        mask = torch.zeros(q.shape[0], inputs.negatives_per_query, dtype=torch.bool, device=q.device)
        rows = torch.tensor([r for r, _ in inputs.negative_slots], device=q.device)
        slots = torch.tensor([s for _, s in inputs.negative_slots], device=q.device)
        negatives = negatives.index_put((rows, slots), n)
        mask[rows, slots] = True
    return contrastive_loss(q, p, negatives, temperature, mask)


def plain_step(embedder, inputs: StepInputs, temperature: float, scale: float = 1.0) -> LossOutput:
    """Forward everything in one graph, backward ``loss * scale``."""
    q = embed_with_grad(embedder, inputs.queries)
    p = embed_with_grad(embedder, inputs.positives)
    n = embed_with_grad(embedder, inputs.negatives) if inputs.negatives else None
    out = _loss(inputs, q, p, n, temperature)
    (out.loss * scale).backward()
    return out


class _RngState:
    """CPU and CUDA generator states, so a re-run chunk draws the same dropout masks."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore(self):
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def grad_cache_step(
    embedder, inputs: StepInputs, temperature: float, chunk_size: int, scale: float = 1.0
) -> LossOutput:
    """Same loss and gradients as :func:`plain_step`, with peak memory of one chunk."""
    if chunk_size < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk_size}")
    lists = [inputs.queries, inputs.positives, inputs.negatives]
    chunks = [[items[i : i + chunk_size] for i in range(0, len(items), chunk_size)] for items in lists]
    states, cached = [], []
    with torch.no_grad():
        for kind in chunks:
            kind_states, kind_reps = [], []
            for chunk in kind:
                kind_states.append(_RngState())
                kind_reps.append(embed_with_grad(embedder, chunk))
            states.append(kind_states)
            cached.append(torch.cat(kind_reps).detach().requires_grad_() if kind_reps else None)
    out = _loss(inputs, cached[0], cached[1], cached[2], temperature)
    (out.loss * scale).backward()
    end_state = _RngState()
    for kind, kind_states, reps in zip(chunks, states, cached):
        start = 0
        for chunk, state in zip(kind, kind_states):
            state.restore()
            grad = reps.grad[start : start + len(chunk)]
            embed_with_grad(embedder, chunk).backward(grad)  # vector-Jacobian product with the cached gradient
            start += len(chunk)
    end_state.restore()
    return LossOutput(out.loss.detach(), out.accuracy)
