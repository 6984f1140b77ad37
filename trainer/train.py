"""The training loop: data order, optimiser, schedule, gradient all-reduce, checkpoints, resume."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from mme5.atomic import fsync_dir, fsync_file, replace_folder, write_atomic
from mme5.errors import ImageError

from .data import load_examples
from .errors import TrainerError
from .loss import distributed
from .model import LoraSettings, make_trainable, save_weights, trainable_parameters
from .step import build_inputs, grad_cache_step, plain_step

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LOG_FILE = "log.jsonl"


class TrainError(TrainerError, ValueError):
    """A run cannot start or continue; the message says what to change."""


@dataclass
class TrainConfig:
    model: str
    data: list[str]
    output: str
    image_dir: str | None = None
    max_steps: int | None = None  # optimiser steps; default one epoch
    epochs: float = 1.0
    batch_size: int = 8  # per process: queries per contrastive pool on this rank
    grad_accum: int = 1
    grad_cache_chunk: int = 0  # >0: GradCache with chunks of this many inputs
    lr: float = 1e-5
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 5.0
    temperature: float = 0.02
    negative_ratio: int = 3
    max_length: int = 256
    lora: LoraSettings | None = field(default_factory=LoraSettings)  # None: full fine-tuning
    gradient_checkpointing: bool = True
    dtype: str | None = None  # default: bf16 on GPU, fp32 on CPU
    device: str | None = None
    seed: int = 42
    save_every: int = 500
    save_total_limit: int = 2
    resume: bool = False
    show_progress: bool = True


@dataclass
class TrainResult:
    steps: int
    losses: list[float]
    output: Path
    skipped: dict


# -- processes ----------------------------------------------------------------------------
def _setup_distributed(device: str | None) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    return rank, (dist.get_world_size() if dist.is_initialized() else 1), torch.device(device)


def average_gradients(parameters) -> None:
    """What DDP does after backward: mean of every trainable gradient over ranks, in one flat buffer."""
    if not distributed():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    start = 0
    for parameter, grad in zip(parameters, grads):
        count = grad.numel()
        parameter.grad = flat[start : start + count].view_as(grad).to(grad.dtype)
        start += count


def _broadcast(parameters) -> None:
    """Start every rank from rank 0's weights, as DDP does."""
    if distributed():
        with torch.no_grad():
            for parameter in parameters:
                dist.broadcast(parameter.data, src=0)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _mean_over_ranks(value: float) -> float:
    if not distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.item() / dist.get_world_size()


# -- data order ---------------------------------------------------------------------------
def micro_batch_indices(size: int, seed: int, micro_step: int, batch_size: int, world: int, rank: int) -> list[int]:
    """This rank's examples for a global micro-step: a seeded permutation per epoch, sliced."""
    global_batch = batch_size * world
    per_epoch = size // global_batch
    epoch, within = divmod(micro_step, per_epoch)
    start = within * global_batch + rank * batch_size
    return _epoch_order(size, seed, epoch)[start : start + batch_size].tolist()


@functools.lru_cache(maxsize=2)
def _epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch))


def lr_lambda(total: int, warmup: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


# -- checkpoints --------------------------------------------------------------------------
def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def latest_checkpoint(output: Path) -> Path | None:
    folder = output / CHECKPOINTS
    done = sorted(p for p in folder.glob("step-*") if (p / "state.pt").is_file()) if folder.is_dir() else []
    return done[-1] if done else None


def _save_checkpoint(
    output: Path,
    step: int,
    params: dict,
    optimizer,
    scheduler,
    run_facts: dict,
    rank: int,
    world: int,
    keep: int,
    unreadable: set[str],
) -> None:
    """Write to a temporary folder, then rename: a kill at any moment leaves the last good one."""
    folder = output / CHECKPOINTS
    tmp = folder / f".tmp-step-{step:08d}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    torch.save({**_rng_state(), "unreadable": sorted(unreadable)}, tmp / f"rng-{rank}.pt")
    _barrier()
    if rank == 0:
        torch.save({name: p.detach().cpu() for name, p in params.items()}, tmp / "weights.pt")
        torch.save(
            {
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "facts": run_facts,
                "world": world,
            },
            tmp / "state.pt",
        )
        final = folder / f"step-{step:08d}"
        shutil.rmtree(final, ignore_errors=True)
        replace_folder(tmp, final)
        for old in sorted(p for p in folder.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()


def _load_checkpoint(
    path: Path, params: dict, optimizer, scheduler, run_facts: dict, rank: int, world: int
) -> tuple[int, set[str]]:
    try:
        return _restore(path, params, optimizer, scheduler, run_facts, rank, world)
    except TrainError:
        raise
    except Exception as error:  # noqa: BLE001 - torch.load raises pickle, zip, EOF and OS errors
        raise TrainError(
            f"{path}: checkpoint cannot be read ({error}); delete this folder to resume from the previous checkpoint"
        ) from error


def _restore(
    path: Path, params: dict, optimizer, scheduler, run_facts: dict, rank: int, world: int
) -> tuple[int, set[str]]:
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    if state["world"] != world:
        raise TrainError(f"{path}: saved with {state['world']} process(es), now {world}; resume with the same number")
    changed = {k: (state["facts"].get(k), v) for k, v in run_facts.items() if state["facts"].get(k) != v}
    if changed:
        detail = ", ".join(f"{k}: {old} -> {new}" for k, (old, new) in changed.items())
        raise TrainError(f"{path}: the run changed since this checkpoint ({detail}); resume with the same settings")
    weights = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    if set(weights) != set(params):
        raise TrainError(f"{path}: checkpoint weights do not match the model's trainable parameters")
    with torch.no_grad():
        for name, parameter in params.items():
            parameter.copy_(weights[name])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rank_state = torch.load(path / f"rng-{rank}.pt", map_location="cpu", weights_only=False)
    _set_rng_state(rank_state)
    return int(state["step"]), set(rank_state.get("unreadable", ()))


def _barrier() -> None:
    if distributed():
        dist.barrier()


def _truncate_log(path: Path, step: int) -> None:
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    write_atomic(path, "".join(line + "\n" for line in kept))


# -- the loop -----------------------------------------------------------------------------
def train(config: TrainConfig, embedder=None) -> TrainResult:
    """Fine-tune ``config.model`` (or a given Embedder) contrastively; write the result to ``config.output``."""
    from mme5 import load_embedder

    rank, world, device = _setup_distributed(config.device)
    output = Path(config.output)
    resume_from = latest_checkpoint(output)
    finished = [name for name in ("adapter_config.json", "config.json", LOG_FILE) if (output / name).exists()]
    if config.resume and resume_from is None:
        if finished != [LOG_FILE]:
            raise TrainError(f"{output}: no checkpoint to resume from; drop --resume to start a new run")
        if rank == 0:  # killed before its first checkpoint: start again from step 0
            logger.info(f"trainer: {output} has no checkpoint yet; restarting from step 0")
            _truncate_log(output / LOG_FILE, 0)
    if not config.resume and (resume_from is not None or finished):
        held = "checkpoints/" if resume_from is not None else finished[0]
        raise TrainError(
            f"{output}: already holds a run ({held}); pass --resume to continue it or pick another --output"
        )
    for name, value in (("batch size", config.batch_size), ("grad accumulation", config.grad_accum)):
        if value < 1:
            raise TrainError(f"{name} must be at least 1, got {value}")

    data = load_examples(config.data, config.image_dir, config.negative_ratio)
    global_batch = config.batch_size * world
    micro_per_epoch = len(data) // global_batch
    if micro_per_epoch == 0:
        raise TrainError(
            f"only {len(data)} usable examples, fewer than one global batch ({global_batch}); "
            "lower --batch-size or add data"
        )
    total = config.max_steps or max(1, int(config.epochs * micro_per_epoch) // config.grad_accum)

    if embedder is None:
        embedder = load_embedder(config.model, device=device, dtype=config.dtype, verbose=rank == 0, runtime="torch")
    if not embedder.spec.fixed_text_length:  # dual encoders keep the fixed text length they were trained with
        embedder.backbone.max_text_tokens = config.max_length
    torch.manual_seed(config.seed)  # the same adapter initialisation on every rank
    trained = make_trainable(embedder, config.lora, config.gradient_checkpointing)
    params = trainable_parameters(embedder.backbone.model)
    _broadcast(params.values())
    _seed(config.seed + rank)  # but a different dropout stream per rank
    parameters = list(params.values())
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    warmup = math.ceil(config.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total, warmup))
    run_facts = {
        "examples": len(data),
        "batch_size": config.batch_size,
        "grad_accum": config.grad_accum,
        "seed": config.seed,
        "max_steps": total,
        "trainable": len(params),
    }
    log_path = output / LOG_FILE
    step = 0
    unreadable: set[str] = set()  # image files that exist but cannot be decoded; their rows are replaced
    if resume_from is not None:
        step, unreadable = _load_checkpoint(resume_from, params, optimizer, scheduler, run_facts, rank, world)
        if rank == 0:
            _truncate_log(log_path, step)
            logger.info(f"trainer: resuming {resume_from} at step {step}/{total}")
    if rank == 0:
        output.mkdir(parents=True, exist_ok=True)
        write_atomic(
            output / "training_args.json",
            json.dumps(_describe(config, embedder, world, len(data), data.skipped), indent=2),
        )
        count = sum(p.numel() for p in parameters)
        logger.info(
            f"trainer: {len(data)} examples, {world} process(es) x batch {config.batch_size} x accum "
            f"{config.grad_accum}, {total} steps, {count:,} trainable parameters"
        )

    losses = []
    progress = tqdm(
        total=total,
        initial=step,
        unit="step",
        disable=not (config.show_progress and rank == 0),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    while step < total:
        started = time.perf_counter()
        step_loss = step_acc = 0.0
        for micro in range(config.grad_accum):
            indices = micro_batch_indices(
                len(data), config.seed, step * config.grad_accum + micro, config.batch_size, world, rank
            )
            out = _micro_step(embedder, data, indices, unreadable, config, 1.0 / config.grad_accum)
            step_loss += out.loss.item() / config.grad_accum
            step_acc += out.accuracy / config.grad_accum
        average_gradients(parameters)
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm).item()
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_loss, step_acc = _mean_over_ranks(step_loss), _mean_over_ranks(step_acc)
        losses.append(step_loss)
        if rank == 0:
            record = {
                "step": step,
                "loss": round(step_loss, 6),
                "lr": lr,
                "acc": round(step_acc, 4),
                "grad_norm": round(grad_norm, 4),
                "samples_per_s": round(global_batch * config.grad_accum / (time.perf_counter() - started), 2),
            }
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            progress.set_postfix(loss=f"{step_loss:.4f}", acc=f"{step_acc:.2f}", lr=f"{lr:.2e}")
            progress.update(1)
        if config.save_every and step % config.save_every == 0 and step < total:
            _save_checkpoint(
                output, step, params, optimizer, scheduler, run_facts, rank, world, config.save_total_limit, unreadable
            )
    progress.close()
    if rank == 0:
        _write_final(trained, embedder, output, config.lora is None)
        write_atomic(
            output / "training_args.json",  # now with rows skipped during the run too
            json.dumps(_describe(config, embedder, world, len(data), data.skipped), indent=2),
        )
        logger.info(f"trainer: wrote {'model' if config.lora is None else 'adapter'} to {output}")
    _barrier()
    return TrainResult(step, losses, output, dict(data.skipped))


def _micro_step(embedder, data, indices: list[int], unreadable: set[str], config: TrainConfig, scale: float):
    """Forward/backward one micro-batch; a row whose image cannot be decoded is replaced, counted, not fatal.

    Replacement is deterministic (the next readable row), so a resumed run sees the same batches.
    """
    batch = [_readable(data, index, unreadable) for index in indices]
    while True:
        inputs = build_inputs(embedder.family, [data[index] for index in batch])
        try:
            if config.grad_cache_chunk:
                return grad_cache_step(embedder, inputs, config.temperature, config.grad_cache_chunk, scale)
            return plain_step(embedder, inputs, config.temperature, scale)
        except ImageError as error:  # mme5 says which file; any other error is not about one image
            bad = {path for index in batch for path in _paths(data[index]) if path == error.path}
            if not bad:
                raise
            unreadable.update(bad)
            data.skipped["unreadable image"] += 1
            logger.warning(f"trainer: skipping a row with an unreadable image: {error}")
            batch = [_readable(data, index, unreadable) for index in batch]


def _paths(example) -> list[str]:
    return [p for p in (example.qry_image_path, example.pos_image_path, *example.neg_image_paths) if p]


def _readable(data, index: int, unreadable: set[str]) -> int:
    for offset in range(len(data)):
        candidate = (index + offset) % len(data)
        if not unreadable.intersection(_paths(data[candidate])):
            return candidate
    raise TrainError("no training row has only readable images")


def _write_final(trained, embedder, output: Path, full: bool) -> None:
    """Save into a temporary folder and move the files in, so a kill never leaves half an adapter."""
    tmp = output / ".tmp-final"
    shutil.rmtree(tmp, ignore_errors=True)
    save_weights(trained, embedder, tmp, full)
    for item in tmp.iterdir():
        fsync_file(item)
        os.replace(item, output / item.name)
    tmp.rmdir()
    fsync_dir(output)


def _describe(config: TrainConfig, embedder, world: int, examples: int, skipped) -> dict:
    described = asdict(config)
    described.update(
        world_size=world,
        examples=examples,
        skipped=dict(skipped),
        model_id=embedder.model_id,
        family=embedder.family,
        dim=embedder.dim,
    )
    return described
