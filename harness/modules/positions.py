"""Position information for attention: rotary embeddings (RoPE) and learned relative position bias.

Both work on integer token coordinates ``(L, A)`` with ``A`` axes (1 for sequences, 2 for raster-ordered
images), so a 1-D sequence, a 2-D grid and a Swin window share one code path:

- RoPE (Su et al., arXiv 2104.09864) rotates query/key channel pairs by ``coord * base**(-2i/d)``; on 2-D
  grids the head dimension is split in equal halves, one per axis ("axial" RoPE, as in timm's EVA/ViT
  variants), so attention scores depend only on row and column offsets.
- Relative position bias (Swin, arXiv 2103.14030; MambaIRv2's window attention) is a learned
  ``(prod(2e-1), heads)`` table indexed by the per-axis offset, clipped to ``+-(e-1)`` per axis. With
  ``extent = window`` offsets never clip and the index equals timm's ``get_relative_position_index``
  (tested); on whole sequences ``extent`` is a maximum distance (T5-style clipping).

Written here rather than imported because timm's rotary/bias helpers are tied to its own ViT/Swin
attention layouts (fixed grid at construction), while our mixer gets its shape at call time.
"""

from __future__ import annotations

import torch
from torch import nn


def grid_coords(shape: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
    """Integer coordinates ``(prod(shape), len(shape))`` of a raster-ordered grid (row-major)."""
    axes = [torch.arange(n, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


def rope_angles(coords: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Rotation angles ``(L, head_dim // 2)`` for coordinates ``(L, A)``; each axis gets ``head_dim / A`` channels."""
    n_axes = coords.shape[-1]
    per_axis = head_dim // n_axes
    if per_axis * n_axes != head_dim or per_axis % 2:
        raise ValueError(f"RoPE needs head_dim ({head_dim}) divisible by 2 x number of axes ({n_axes})")
    inv_freq = base ** (-torch.arange(0, per_axis, 2, device=coords.device, dtype=torch.float32) / per_axis)
    angles = coords.to(torch.float32)[..., None] * inv_freq  # (L, A, per_axis/2)
    return angles.reshape(coords.shape[0], head_dim // 2)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(x[2i], x[2i+1])`` of ``x: (..., L, head_dim)`` by ``angles: (L, head_dim/2)``."""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class RelativePositionBias(nn.Module):
    """Learned per-head bias ``(heads, Lq, Lk)`` from clipped per-axis coordinate offsets."""

    def __init__(self, n_heads: int, extent: tuple[int, ...]):
        super().__init__()
        self.extent = tuple(int(e) for e in extent)
        sizes = [2 * e - 1 for e in self.extent]
        self.table = nn.Parameter(torch.zeros(int(torch.tensor(sizes).prod()), n_heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        strides = [1] * len(sizes)
        for i in range(len(sizes) - 2, -1, -1):
            strides[i] = strides[i + 1] * sizes[i + 1]
        self.register_buffer("strides", torch.tensor(strides), persistent=False)
        self.register_buffer("limits", torch.tensor(self.extent) - 1, persistent=False)

    def index(self, coords_q: torch.Tensor, coords_k: torch.Tensor) -> torch.Tensor:
        """Table row ``(Lq, Lk)`` for each query/key pair (Swin's ``relative_position_index``)."""
        offset = coords_q[:, None, :] - coords_k[None, :, :]
        offset = torch.maximum(torch.minimum(offset, self.limits), -self.limits) + self.limits
        return (offset * self.strides).sum(-1)

    def forward(self, coords_q: torch.Tensor, coords_k: torch.Tensor | None = None) -> torch.Tensor:
        coords_k = coords_q if coords_k is None else coords_k
        return self.table[self.index(coords_q, coords_k)].permute(2, 0, 1)
