"""The ``data:`` and ``model:`` schemas of the AR-generation family (field names are the YAML keys).

The tokenizer and the FID classifier are part of ``data:`` because they are shared by every AR variant
of a task: both are keyed (and cached) by the data config, never by the variant or the run seed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.families.base import Params, user_path


class VQParams(Params):
    """Stage-1 tokenizer: a VQ-VAE in LlamaGen's layout (arXiv 2406.06525), trained here unless
    ``checkpoint`` points at a LlamaGen VQ-8 or VQ-16 checkpoint (then the other fields but commit_beta are unused)."""

    downsample: Literal[4, 8, 16] = Field(4, description="image side / token-grid side")
    channels: int = Field(16, ge=1, description="base conv width (LlamaGen: 128)")
    num_res_blocks: int = Field(1, ge=1, description="resnet blocks per resolution (LlamaGen: 2)")
    z_channels: int = Field(32, ge=1, description="encoder output width before quant_conv (LlamaGen: 256)")
    norm_groups: int = Field(8, ge=1, description="GroupNorm groups (LlamaGen: 32)")
    codebook_size: int = Field(64, ge=2)
    codebook_dim: int = Field(8, ge=1, description="code width; codes are L2-normalised (LlamaGen: 8)")
    commit_beta: float = Field(0.25, ge=0, description="commitment loss weight (straight-through VQ)")
    steps: int = Field(300, ge=0, description="tokenizer training steps (shared loop, run once, cached)")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    seed: int = Field(0, description="tokenizer training seed (independent of the run seed)")
    checkpoint: str | None = user_path(
        "file", "a LlamaGen VQ-8 / VQ-16 checkpoint: released (vq_ds16_c2i.pt), a vq_train.py one (its 'ema' weights "
        "first, then 'model'), or a state dict", None
    )

    @model_validator(mode="after")
    def _check(self) -> "VQParams":
        if self.checkpoint is None:
            widths = {self.channels * m for m in self.ch_mult} | {self.z_channels}
            bad = sorted(w for w in widths if w % self.norm_groups)
            if bad:
                raise ValueError(f"norm_groups={self.norm_groups} must divide every conv width; {bad} do not")
        return self

    @property
    def ch_mult(self) -> tuple[int, ...]:
        """Width multiplier per resolution: one level per halving (LlamaGen VQ-16 uses (1, 1, 2, 2, 4))."""
        levels = self.downsample.bit_length() - 1
        return (1,) + (2,) * levels


class ClassifierParams(Params):
    """The small CNN whose penultimate features give the classifier-FID and whose labels give sample_acc."""

    width: int = Field(32, ge=4, description="channels of the first conv (doubled per stage)")
    steps: int = Field(200, ge=0)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    seed: int = 0


class ImageDataParams(Params):
    """Fields every built-in image set shares (digits, textures)."""

    resolution: int = Field(16, ge=4, description="image side in pixels (a multiple of tokenizer.downsample)")
    test_fraction: float = Field(0.2, gt=0, lt=1)
    split_seed: int = Field(0, description="fixed train/test split, shared by all runs and the tokenizer")
    tokenizer: VQParams = VQParams()
    classifier: ClassifierParams = ClassifierParams()
    inception_weights: str | None = user_path(
        "file", "local Inception-v3 FID weights (torch-fidelity's pt_inception) for standard FID", None
    )

    @model_validator(mode="after")
    def _check_grid(self) -> "ImageDataParams":
        if self.tokenizer.checkpoint is None and self.resolution % self.tokenizer.downsample:
            raise ValueError(
                f"resolution {self.resolution} is not a multiple of tokenizer.downsample {self.tokenizer.downsample}"
            )
        return self


class DigitsParams(ImageDataParams):
    """scikit-learn's 8x8 digits (1797 images, 10 classes), bilinearly upsampled to ``resolution``."""


class TexturesParams(ImageDataParams):
    """Random crops of scikit-image's bundled photos/textures; the class is the source image."""

    crop: int = Field(64, ge=8, description="crop side in source pixels before resizing to resolution")
    per_class: int = Field(200, ge=10, description="crops per source image")


class ARModelParams(Params):
    """Stage-2 next-token model. Variants differ only by mixer (and their defaults below)."""

    d_model: int = Field(64, ge=8)
    depth: int = Field(4, ge=1)
    norm: Literal["rmsnorm", "layernorm"] = Field("rmsnorm", description="AiM and LlamaGen use RMSNorm")
    mlp_ratio: float = Field(0.0, ge=0, description="MLP after each mixer (transformer: 4; AiM: none)")
    pos: Literal["learned", "rope", "none"] = Field(
        "learned", description="learned absolute positions, RoPE inside attention (transformer only), or none"
    )
    adaln_groups: int = Field(
        0, ge=0, description="adaLN-group: G shared modulation predictors (1 = adaLN-single, depth = full); 0 = off"
    )
    label_drop: float = Field(0.1, ge=0, lt=1, description="class-label dropout for classifier-free guidance")
    # mixer options (each mixer reads its own)
    d_state: int = Field(16, ge=1, description="mamba2 state size")
    headdim: int = Field(16, ge=1, description="mamba2 head dimension")
    expand: int = Field(2, ge=1, description="mamba2 inner expansion")
    n_heads: int = Field(4, ge=1, description="attention heads")
    d_conv: int = Field(4, ge=2, description="gated_cnn causal conv kernel (Mamba's d_conv)")
    expansion_ratio: float = Field(8 / 3, gt=0, description="gated_cnn hidden expansion (MambaOut: 8/3)")
    # sampling (evaluation) and decode measurement
    cfg_scale: float = Field(2.0, ge=0, description="classifier-free guidance scale for samples (1 = off)")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0, description="sample from the k most likely codes (0 = all)")
    samples_per_class: int = Field(16, ge=2, description="generated images per class for FID/sample_acc")
    decode_len: int | None = Field(
        None, ge=1, description="tokens generated when timing decode (None = the task's token count; larger "
        "lengths are timed on an untrained copy of the same architecture)"
    )
    decode_batch_sizes: tuple[int, ...] = Field((1, 16), description="batches at which decode is timed")

    @model_validator(mode="after")
    def _check(self) -> "ARModelParams":
        if self.adaln_groups > self.depth:
            raise ValueError(f"adaln_groups={self.adaln_groups} exceeds depth={self.depth}")
        if not self.decode_batch_sizes or min(self.decode_batch_sizes) < 1:
            raise ValueError("decode_batch_sizes must be a non-empty list of positive batch sizes")
        return self
