"""The shared config sections every task has: training budget, measurement protocol, budget matching.

Field names are the YAML keys. These are plain pydantic models so the training loop and the measurement
layer can take them without importing the suite schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainConfig(Section):
    """Training budget and optimiser (AdamW, linear warm-up then cosine decay, gradient clipping)."""

    steps: int = Field(200, ge=0, description="optimizer steps (the budget every variant gets)")
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = Field(20, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    grad_clip: float = Field(1.0, ge=0, description="max grad norm; 0 disables")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 autocast on CUDA, fp32 on CPU"
    )
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0 = only at the end)")
    divergence_factor: float = Field(
        1e3, gt=1, description="loss above this multiple of the first loss counts as divergence"
    )


class MeasureConfig(Section):
    """Cost measurement protocol, the same for every variant of a suite (recorded in each row)."""

    flops: bool = True
    latency: bool = True
    latency_seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="time latency only in the runs of these seeds (costs do not depend on the seed; "
                          "quality still uses every seed); None: every run"
    )
    memory: bool = True
    batch_size: int = Field(8, ge=1, description="batch for the forward costs (latency, inference memory, FLOPs); "
                                                 "train-step costs use one training batch (train.batch_size)")
    warmup_iters: int = Field(10, ge=0)
    warmup_s: float = Field(0.5, ge=0)
    min_iters: int = Field(10, ge=1)
    min_time_s: float = Field(1.0, ge=0)
    max_iters: int = Field(1000, ge=1)
    train_step: bool = Field(True, description="also time/measure a forward+backward+step")
    cuda_graphs: bool = Field(False, description="capture forward in a CUDA graph (all variants alike)")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto = bf16 on CUDA, fp32 on CPU")
    sdpa_kernels: list[Literal["flash", "cudnn", "efficient", "math"]] | None = Field(
        None, min_length=1, description="the attention (SDPA) kernels allowed for the whole run, training included, "
                                        "in the order torch tries them; None: torch's own order (cuDNN first on "
                                        "H100 with a recent cuDNN, else flash)"
    )
    cpu_threads: int | None = Field(
        None, ge=1, description="torch CPU threads for the whole run, training included (None: torch's default)"
    )

    @model_validator(mode="after")
    def _iters_in_order(self) -> "MeasureConfig":
        if self.min_iters > self.max_iters:
            raise ValueError(f"min_iters {self.min_iters} is above max_iters {self.max_iters}: the timer stops at max_iters")
        return self


class MatchConfig(Section):
    """Budget matching: solve each variant's width so params/FLOPs are within tolerance of the reference."""

    by: Literal["none", "params", "flops"] = "none"
    reference: str | None = Field(None, description="variant label whose budget the others match")
    tolerance: float = Field(0.05, gt=0, lt=1)
    field: str | None = Field(None, description="model field to solve (default: the family's width field)")
