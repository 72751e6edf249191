"""Restoration metrics by the standard SR protocol (BasicSR / SwinIR / MambaIR / MambaIRv2 evaluation).

- Outputs are clamped to [0, 1] and quantised to 8 bits first, as the published numbers are computed on
  saved PNGs (BasicSR's ``tensor2img``).
- Super-resolution: PSNR and SSIM on the Y channel of BT.601 YCbCr (``Y = 16 + 65.481 R + 128.553 G +
  24.966 B`` for RGB in [0, 1], BasicSR's ``rgb2ycbcr(y_only=True)``, same as ``skimage.color.rgb2ycbcr``),
  on the 0..255 scale, with ``scale`` pixels cropped from every border.
- Denoising: PSNR and SSIM on RGB (SwinIR's colour-denoising protocol), no border crop.

PSNR and SSIM come from torchmetrics (so evaluation stays on the device); SSIM is its Gaussian 11x11,
sigma 1.5 map averaged over the *valid* region only (5 pixels in from each side), which is what BasicSR
and ``skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)`` do;
torchmetrics' own reduction also averages the reflect-padded border, which reads about 1e-3 higher.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

#: BT.601 luma for RGB in [0, 1] -> Y in [16, 235] (BasicSR ``rgb2ycbcr``, ``skimage.color.rgb2ycbcr``).
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0
_SSIM_KERNEL = 11
_SSIM_SIGMA = 1.5
_DATA_RANGE = 255.0


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8 bits (kept in [0, 1]), as when an output is saved as PNG."""
    return (img.clamp(0, 1) * 255.0).round() / 255.0


def to_y(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) BT.601 Y on the 0..255 scale."""
    w = img.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return (img * w).sum(dim=1, keepdim=True) + _Y_OFFSET


def crop_border(img: torch.Tensor, border: int) -> torch.Tensor:
    return img[..., border:-border, border:-border] if border > 0 else img


def psnr_ssim(pred: torch.Tensor, target: torch.Tensor, *, y_channel: bool, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image PSNR (dB) and SSIM of (B, 3, H, W) images in [0, 1]; returns two (B,) tensors.

    ``y_channel`` selects the SR protocol (Y channel) over RGB; ``border`` pixels are cropped per side.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    pred, target = quantize(pred).double(), quantize(target).double()
    if y_channel:
        pred, target = to_y(pred), to_y(target)
    else:
        pred, target = pred * _DATA_RANGE, target * _DATA_RANGE
    pred, target = crop_border(pred, border), crop_border(target, border)
    if min(pred.shape[-2:]) < _SSIM_KERNEL:
        raise ValueError(f"images of {tuple(pred.shape[-2:])} after the border crop are smaller than the SSIM window")
    psnr = peak_signal_noise_ratio(pred, target, data_range=_DATA_RANGE, reduction="none", dim=(1, 2, 3))
    _, ssim_map = structural_similarity_index_measure(
        pred, target, gaussian_kernel=True, sigma=_SSIM_SIGMA, kernel_size=_SSIM_KERNEL,
        data_range=_DATA_RANGE, reduction="none", return_full_image=True,
    )
    pad = (_SSIM_KERNEL - 1) // 2
    ssim = ssim_map[..., pad:-pad, pad:-pad].mean(dim=(1, 2, 3))
    return psnr.float(), ssim.float()
