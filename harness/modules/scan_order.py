"""Scan orders for SSM mixers: which 1-D paths a scan takes over a (possibly 2-D) token grid.

Every order is a permutation of the raster sequence, with its exact inverse, kept in this one place:

* ``raster``: the sequence as given (one causal direction; Mamba, arXiv 2312.00752).
* ``bidirectional``: raster and reversed, outputs summed (Vim, arXiv 2401.09417; Mamba Neural Operator,
  arXiv 2410.02113).
* ``cross4``: rows, columns, and both reversed, outputs summed (VMamba's cross-scan, arXiv 2401.10166);
  needs the spatial ``shape``.
* ``sgn``: a caller-supplied per-sample permutation (MambaIRv2's semantic-guided neighbouring,
  arXiv 2411.15269: pixels sorted by their prompt class, scanned, then un-sorted).

    orders = scan_orders("cross4", 12, shape=(3, 4))   # list of (L,) long tensors
    y = reorder(x, orders[1], dim=-1); x == reorder(y, invert(orders[1]), dim=-1)
"""

from __future__ import annotations

import torch

SCANS = ("raster", "bidirectional", "cross4", "sgn")


def num_directions(scan: str) -> int:
    """How many scans (each with its own SSM parameters) a scan order runs."""
    if scan not in SCANS:
        raise ValueError(f"unknown scan {scan!r}; use one of {SCANS}")
    return {"raster": 1, "bidirectional": 2, "cross4": 4, "sgn": 1}[scan]


def scan_orders(
    scan: str, length: int, shape: tuple[int, int] | None = None, perm: torch.Tensor | None = None,
    device: torch.device | None = None,
) -> list[torch.Tensor | None]:
    """The permutations of a scan order; ``None`` stands for the identity (raster) so it costs nothing.

    Returns ``num_directions(scan)`` entries, each ``None``, a (length,) or, for ``sgn``, a (B, length) long
    tensor: direction k reads token ``order[i]`` at step i.
    """
    num_directions(scan)
    if scan == "sgn":
        if perm is None or perm.shape[-1] != length:
            raise ValueError("scan='sgn' needs perm: a (B, L) long tensor from the caller (e.g. an argsort)")
        return [perm.to(device)]
    if perm is not None:
        raise ValueError(f"perm is only used with scan='sgn', not {scan!r}")
    if scan == "raster":
        return [None]
    reverse = torch.arange(length - 1, -1, -1, device=device)
    if scan == "bidirectional":
        return [None, reverse]
    if shape is None or shape[0] * shape[1] != length:
        raise ValueError(f"scan='cross4' needs the spatial shape (H, W) with H*W == L={length}, got {shape}")
    columns = torch.arange(length, device=device).view(shape).t().reshape(-1)
    return [None, columns, reverse, columns.flip(0)]


def invert(perm: torch.Tensor) -> torch.Tensor:
    """The inverse permutation along the last dim: ``reorder(reorder(x, p), invert(p)) == x``."""
    inv = torch.empty_like(perm)
    src = torch.arange(perm.shape[-1], device=perm.device).expand_as(perm)
    return inv.scatter_(-1, perm, src)


def reorder(x: torch.Tensor, perm: torch.Tensor | None, dim: int) -> torch.Tensor:
    """``x`` with its sequence dim ``dim`` permuted: out[..., i, ...] = x[..., perm[i], ...].

    x: (B, ..., L, ...); perm: None (identity), (L,) shared, or (B, L) per sample.
    """
    if perm is None:
        return x
    if perm.dim() == 1:
        return x.index_select(dim, perm)
    dim = dim % x.dim()
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[dim] = x.shape[dim]
    return torch.gather(x, dim, perm.view(shape).expand_as(x))
