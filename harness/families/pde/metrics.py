"""Operator-learning error metrics on ``(B, C, *grid)`` predictions.

- ``relative_l2``: the mean over samples and channels of ||pred - true|| / ||true|| (FNO's and the
  Galerkin Transformer's reported error; neuraloperator's ``LpLoss.rel``, also the training loss).
- ``trivial_rel_l2``: the trivial baseline of ``relative_l2`` (mean field or identity, the better).
- ``nrmse``, ``max_error`` and the low/mid/high ``fourier_band_errors``: PDEBench's definitions
  (Takamoto et al., arXiv 2210.07182; ``pdebench/models/metrics.py``). The Fourier error is the
  batch-RMS of the spectral error, binned by integer radius |k| over the non-negative quadrant, divided by
  the number of grid points (unit domain), then averaged over the bins [0, 4), [4, 12) and [12, end).
  Written here because PDEBench is not an installable package; an empty band (a grid too small to have
  it) is NaN.
"""

from __future__ import annotations

import math

import torch
from neuralop.losses import LpLoss

LOW_BAND_END = 4  # PDEBench's iLow
MID_BAND_END = 12  # PDEBench's iHigh


def relative_l2_loss(dim: int) -> LpLoss:
    """neuraloperator's relative L2 over the last ``dim`` axes, averaged over batch and channels."""
    return LpLoss(d=dim, p=2, reduction="mean")


def relative_l2(pred: torch.Tensor, true: torch.Tensor, dim: int) -> float:
    return float(relative_l2_loss(dim).rel(pred, true))


def trivial_rel_l2(train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, dim: int,
                   snapshot_channels: int) -> tuple[float, str]:
    """The better relative L2 of two predictors that learned nothing: the training targets' mean field, and
    (where the output is the input field later in time: ``snapshot_channels`` > 0, channels time-major) the
    identity, the last input snapshot carried to every output step."""
    mean = train_y.mean(0, keepdim=True).expand_as(test_y).contiguous()
    best = (relative_l2(mean, test_y, dim), "mean field")
    if snapshot_channels:
        last = test_x[:, -snapshot_channels:]
        identity = last.repeat(1, test_y.shape[1] // snapshot_channels, *([1] * dim))
        best = min(best, (relative_l2(identity, test_y, dim), "identity"))
    return best


def nrmse(pred: torch.Tensor, true: torch.Tensor) -> float:
    """PDEBench nRMSE: per sample and channel RMSE / RMS(true), averaged."""
    err = (pred - true).flatten(2).pow(2).mean(-1).sqrt()
    norm = true.flatten(2).pow(2).mean(-1).sqrt()
    return float((err / norm).mean())


def max_error(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float((pred - true).abs().max())


def radial_spectrum_error(pred: torch.Tensor, true: torch.Tensor, dim: int) -> torch.Tensor:
    """PDEBench's per-radius spectral error ``(C, n_bins)`` (batch-RMS, scaled by 1/number of points)."""
    shape = true.shape[2:]
    points = math.prod(shape)
    if dim == 1:
        diff = torch.fft.rfft(pred - true, dim=-1).abs().pow(2)  # (B, C, n//2+1)
        return diff.mean(0).sqrt() / points
    half = [s // 2 for s in shape]
    n_bins = min(half)
    diff = torch.fft.fftn(pred - true, dim=(-2, -1)).abs().pow(2)[..., : half[0], : half[1]]
    i, j = torch.meshgrid(*(torch.arange(h, device=diff.device) for h in half), indexing="ij")
    radius = (i.double().pow(2) + j.double().pow(2)).sqrt().floor().long()
    keep = radius < n_bins
    binned = torch.zeros(*diff.shape[:2], n_bins, dtype=diff.dtype, device=diff.device)
    binned.index_add_(2, radius[keep], diff[..., keep])
    return binned.mean(0).sqrt() / points


def fourier_band_errors(pred: torch.Tensor, true: torch.Tensor, dim: int) -> dict[str, float]:
    """``fourier_low``/``fourier_mid``/``fourier_high``: mean spectral error per band, averaged over channels."""
    spec = radial_spectrum_error(pred.double(), true.double(), dim)
    bands = {"fourier_low": (0, LOW_BAND_END), "fourier_mid": (LOW_BAND_END, MID_BAND_END),
             "fourier_high": (MID_BAND_END, spec.shape[-1])}
    return {name: float(spec[:, lo:hi].mean()) if hi > lo else float("nan") for name, (lo, hi) in bands.items()}
