"""Exact, mask-free self-attention for Mllama's vision encoder (the flagship's hot loop).

Mllama's vision mask only blocks padding-query → padding-key pairs: it is ``p pᵀ · min``
with ``p`` the padding indicator (padded patches of every tile, and whole padded tiles).
So every valid query attends to all keys and every padding query to the valid keys only.
Two mask-free SDPA calls compute exactly that, and mask-free calls are flash/cuDNN
eligible, where the 4-D additive mask forces the memory-efficient kernel:

  1. valid queries over all keys (or all queries, when padding is rare: cheaper than gathering);
  2. padding queries over the valid keys only (K/V of the valid positions gathered).

The masked-out scores get ``finfo.min`` added in the stock path, which softmax turns into
exact zeros, so both compute the same function (fp32 difference ~1e-7 on the CPU).

It is an attention function registered with transformers (``AttentionInterface``) and
selected on the vision config only, so the q/k/v/o projections, LoRA adapters on them,
parameter names and gradient checkpointing are the stock ones. Samples whose tiles are
padded differently are grouped by padding pattern (one host sync per vision forward).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NAME = "mme5_vision_sdpa"
STOCK = "sdpa"
ENV = "MME5_FAST_ATTENTION"
#: Above this share of padding queries, call 1 gathers the valid queries instead of running all of them.
GATHER_QUERIES_ABOVE = 0.125

_local = threading.local()  # per-thread cache: (weakref to the mask, plan); autograd threads build their own


def wanted(device: torch.device | str, fast_attention: bool | None = None) -> bool:
    """On by default on CUDA; ``fast_attention`` (True/False) wins, then ``MME5_FAST_ATTENTION`` (0/1)."""
    if fast_attention is not None:
        return bool(fast_attention)
    from .settings import Settings

    env = Settings.from_env().fast_attention
    if env is not None:
        return env
    return torch.device(device).type == "cuda"


def register() -> None:
    """Make ``NAME`` a valid ``attn_implementation`` for transformers (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, vision_attention)


def vision_configs(model: torch.nn.Module) -> list:
    """The config objects of every Mllama vision encoder inside ``model`` (peft-wrapped or not)."""
    configs: list = []
    for module in model.modules():
        if type(module).__name__ == "MllamaVisionModel" and all(module.config is not c for c in configs):
            configs.append(module.config)
    return configs


def set_fast_attention(model: torch.nn.Module, on: bool) -> bool:
    """Switch the vision encoder(s) of ``model`` to the fast path (or back to stock SDPA); returns ``on``.

    Only the runtime attribute ``_attn_implementation`` changes: transformers never saves it,
    so a model saved while the fast path is on loads anywhere.
    """
    configs = vision_configs(model)
    if on:
        register()
    for config in configs:
        config._attn_implementation = NAME if on else STOCK
    return bool(on and configs)


def is_enabled(model: torch.nn.Module) -> bool:
    configs = vision_configs(model)
    return bool(configs) and all(config._attn_implementation == NAME for config in configs)


@dataclass
class _Group:
    samples: torch.Tensor | None  # sample indices (None: all samples, in order)
    valid: torch.Tensor | None  # positions that are not padding (None: no padding at all)
    pad: torch.Tensor | None
    inverse: torch.Tensor | None  # undoes cat([valid, pad]) when the valid queries are gathered
    gather_queries: bool


@dataclass
class _Plan:
    groups: list
    order: torch.Tensor | None  # undoes the grouping of samples (None: one group, samples in order)


def padding_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq) bool padding indicator from Mllama's (batch, 1, seq, seq) additive mask.

    The mask is ``p pᵀ · min``, so its diagonal is ``p · min``: reading it is O(seq).
    """
    return torch.diagonal(attention_mask[:, 0], dim1=-2, dim2=-1) != 0


def _make_plan(attention_mask: torch.Tensor) -> _Plan:
    device = attention_mask.device
    padding = padding_of(attention_mask).cpu()  # the one host sync per vision forward
    patterns, inverse = torch.unique(padding, dim=0, return_inverse=True)
    groups, members = [], []
    for number, pattern in enumerate(patterns):
        samples = torch.nonzero(inverse == number).flatten()
        members.append(samples)
        pad = torch.nonzero(pattern).flatten()
        valid = torch.nonzero(~pattern).flatten()
        if len(pad) == 0 or len(valid) == 0:  # nothing to split (all-pad rows never occur; stock handles them)
            group = _Group(samples, None, None, None, False)
            if len(valid) == 0:
                group.valid = valid  # marks "fall back to the masked call"
        else:
            gather = len(pad) > GATHER_QUERIES_ABOVE * len(pattern)
            group = _Group(
                samples,
                valid.to(device, non_blocking=True),
                pad.to(device, non_blocking=True),
                torch.argsort(torch.cat([valid, pad])).to(device, non_blocking=True) if gather else None,
                gather,
            )
        groups.append(group)
    if len(groups) == 1:
        groups[0].samples = None
        return _Plan(groups, None)
    order = torch.argsort(torch.cat(members))
    for group, samples in zip(groups, members):  # members[i] is groups[i].samples, typed as set
        group.samples = samples.to(device, non_blocking=True)
    return _Plan(groups, order.to(device, non_blocking=True))


def _plan_for(attention_mask: torch.Tensor) -> _Plan:
    """Every layer of one forward gets the same mask object: plan once, reuse for the other layers."""
    cached = getattr(_local, "cached", None)
    if cached is not None and cached[0]() is attention_mask:
        return cached[1]
    plan = _make_plan(attention_mask)
    _local.cached = (weakref.ref(attention_mask), plan)
    return plan


def _attend(query, key, value, dropout, scaling):
    return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, scale=scaling)


def vision_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Drop-in for transformers' ``sdpa_attention_forward`` on Mllama's vision encoder (same output layout)."""
    square = (
        attention_mask is not None
        and attention_mask.dim() == 4
        and attention_mask.shape[1] == 1
        and attention_mask.shape[-1] == attention_mask.shape[-2] == key.shape[2] == query.shape[2]
        and attention_mask.shape[0] == query.shape[0]
    )
    if attention_mask is None:
        return _attend(query, key, value, dropout, scaling).transpose(1, 2).contiguous(), None
    if not square:  # not the vision mask this was written for: the stock function
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    plan = _plan_for(attention_mask)
    outputs = []
    for group in plan.groups:
        q, k, v = query, key, value
        if group.samples is not None:
            q, k, v = (tensor.index_select(0, group.samples) for tensor in (query, key, value))
        if group.valid is None:  # no padding in these samples
            out = _attend(q, k, v, dropout, scaling)
        elif group.pad is None:  # only padding (never made by Mllama): keep the stock masked call
            mask = attention_mask if group.samples is None else attention_mask.index_select(0, group.samples)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scaling)
        else:
            valid_k, valid_v = k.index_select(2, group.valid), v.index_select(2, group.valid)
            out_pad = _attend(q.index_select(2, group.pad), valid_k, valid_v, dropout, scaling)
            if group.gather_queries:
                out_valid = _attend(q.index_select(2, group.valid), k, v, dropout, scaling)
                out = torch.cat([out_valid, out_pad], dim=2).index_select(2, group.inverse)
            else:  # few padding queries: run them all in call 1, then replace the padding rows
                out = _attend(q, k, v, dropout, scaling)
                if out.requires_grad:
                    out = out.index_copy(2, group.pad, out_pad)
                else:  # inference: no copy of the whole output
                    out.index_copy_(2, group.pad, out_pad)
        outputs.append(out)
    out = outputs[0] if plan.order is None else torch.cat(outputs).index_select(0, plan.order)
    return out.transpose(1, 2).contiguous(), None
