"""The training loop every family shares: AdamW, warm-up + cosine, clipping, autocast, divergence checks.

Families supply batches and a loss through ``Experiment``; they never write their own loop, so the
training budget and protocol are identical across variants (the pairing changes the mixer only).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from harness.config.sections import TrainConfig
from harness.errors import Diverged
from harness.families.base import Experiment
from harness.measure import exclusive
from harness.measure.precision import autocast
from harness.run import distributed


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    train_time_s: float
    losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    tracked: dict[str, float] = field(default_factory=dict)  # from Experiment.after_step: <key>, max_<key>


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``lr * min_lr_ratio`` at ``cfg.steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; deterministic algorithms on CPU so reruns give identical metrics."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(exp: Experiment, device: torch.device, **fields: Any) -> TrainResult:
    """``train`` at the ``TrainConfig`` made of ``fields``: handed to families as ``RunContext.fit`` for the
    artefacts they train for themselves (a tokenizer, a scoring classifier), as they import no spine."""
    return train(exp, TrainConfig(**fields), device)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms and parameters flagged ``_no_weight_decay`` (A_log, D, dt bias)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or getattr(p, "_no_weight_decay", False) or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(
    exp: Experiment,
    cfg: TrainConfig,
    device: torch.device,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``exp.model`` for ``cfg.steps`` steps; raises ``Diverged`` on a non-finite/exploding loss."""
    model = exp.model
    model.train()
    ddp = distributed.wrap(model, device) if distributed.active() else None  # torchrun runs only
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    result = TrainResult(steps=0, final_loss=float("nan"), train_time_s=0.0)
    first_loss: float | None = None
    reference = exp.reference_loss()
    start = time.perf_counter()
    for step in range(cfg.steps):
        exclusive.yield_point()  # device shared with other runs (--jobs): let a waiting measurement in
        # ... and take the first step alone (lazy init, cuDNN search, Triton autotuning see an idle device)
        with exclusive.exclusive() if step == 0 else nullcontext():
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            batch = exp.train_batch(step)
            if ddp is not None:  # this rank's shard of the global batch; the loss goes through DDP
                batch = distributed.shard_batch(batch, cfg.batch_size)
            with autocast(cfg.precision, device), distributed.swapped(exp, ddp):
                loss = exp.loss(batch)
            value = float(loss.detach()) if ddp is None else distributed.mean_scalar(float(loss.detach()), device)
            if first_loss is None:
                first_loss = value
            scale = reference if reference is not None else first_loss
            if not math.isfinite(value) or value > cfg.divergence_factor * max(abs(scale), 1e-3):
                what = "reference loss" if reference is not None else "first loss"
                raise Diverged(f"loss {value:.4g} at step {step} ({what} {scale:.4g}, factor {cfg.divergence_factor:g})")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
        for key, v in exp.after_step(step).items():
            result.tracked[key] = float(v)
            result.tracked[f"max_{key}"] = max(float(v), result.tracked.get(f"max_{key}", float("-inf")))
        result.losses.append(value)
        result.steps = step + 1
        if on_step is not None:
            on_step(step, value)
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            result.evals.append((step + 1, exp.evaluate()))
            model.train()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result.train_time_s = time.perf_counter() - start
    result.final_loss = result.losses[-1] if result.losses else float("nan")
    return result
