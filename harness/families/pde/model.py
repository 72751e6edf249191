"""The neural operators paired in this family: one skeleton with the mixer swapped, and FNO.

Cheng et al. (Mamba Neural Operator, arXiv 2410.02113) keep the transformer operator's skeleton (same
width, depth, lifting and regressor) and change only the mixer. ``MixerOperator`` is that skeleton:

    (B, C_in, *grid) -> append grid coordinates as channels -> tokens (raster order) -> Linear lifting
    -> n_layers x MixerBlock(mixer, MLP) -> norm -> MLP projection -> (B, C_out, *grid)

with the mixer chosen by name (``create_mixer``): ``mno`` = ``mamba`` with a bidirectional scan (1-D) or
VMamba's four-direction cross scan (2-D); ``galerkin`` = Galerkin linear attention (Cao 2021);
``softmax`` = non-causal ``attention``; ``gated_cnn`` = MambaOut's gated CNN (the no-SSM baseline).
``fno`` is neuraloperator's ``FNO`` (Li et al., arXiv 2010.08895) with its own lifting/projection, at the
same width and depth, fed the same coordinate channels (its built-in grid embedding is off).

Inputs and outputs are normalised by per-channel scalars fitted on the training set (neuraloperator's
``UnitGaussianNormalizer`` reduced over batch and grid), not pointwise as FNO's loaders do, so the model
stays grid-independent and evaluates at 2x resolution unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from neuralop.data.transforms.normalizers import UnitGaussianNormalizer
from neuralop.models import FNO
from torch import nn

from harness.families.pde.data import Layout
from harness.modules.block import MixerBlock, make_norm
from harness.modules.registry import create_mixer


def grid_coordinates(shape: tuple[int, ...], grid: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(len(shape), *shape)`` coordinates in [0, 1]: i/n on periodic grids, i/(n-1) on node grids,
    (i + 1/2)/n at cell centres."""
    def axis(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device, dtype=dtype)
        return {"periodic": i / n, "nodes": i / max(n - 1, 1), "cells": (i + 0.5) / n}[grid]

    return torch.stack(torch.meshgrid(*(axis(n) for n in shape), indexing="ij"))


def _channel_normalizer(channels: int, dim: int) -> UnitGaussianNormalizer:
    """An identity normaliser with per-channel scalar statistics (fitted later by ``fit``)."""
    stat = (1, channels) + (1,) * dim
    return UnitGaussianNormalizer(mean=torch.zeros(stat), std=torch.ones(stat), dim=[0, *range(2, 2 + dim)])


def _coordinates_name(shape: tuple[int, ...]) -> str:
    return "coordinates_" + "x".join(map(str, shape))


class Operator(nn.Module, ABC):
    """Shared by every operator: normalisation, coordinate channels, and the (B, C, *grid) interface."""

    def __init__(self, layout: Layout):
        super().__init__()
        self.layout = layout
        self.in_norm = _channel_normalizer(layout.in_channels, layout.dim)
        self.out_norm = _channel_normalizer(layout.out_channels, layout.dim)

    def fit_normalizers(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.in_norm.fit(x)
        self.out_norm.fit(y)

    def set_coordinates(self, grids: dict[tuple[int, ...], torch.Tensor]) -> None:
        """Use these ``(dim, *shape)`` coordinates on grids of their shape (read from a data file; buffers, so
        they follow the model's device); other grids get ``grid_coordinates``."""
        for shape, coords in grids.items():
            self.register_buffer(_coordinates_name(shape), coords.float(), persistent=False)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        shape = tuple(a.shape[2:])
        coords = getattr(self, _coordinates_name(shape), None)
        if coords is None:
            coords = grid_coordinates(shape, self.layout.grid, a.device, a.dtype)
        else:
            coords = coords.to(a.dtype)
        x = torch.cat([self.in_norm.transform(a), coords.expand(a.shape[0], *coords.shape)], dim=1)
        return self.out_norm.inverse_transform(self.operator(x, shape))

    @abstractmethod
    def operator(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """``(B, C_in + dim, *grid)`` normalised input with coordinates -> ``(B, C_out, *grid)``."""


class MixerOperator(Operator):
    """Lifting -> ``n_layers`` mixer blocks -> projection, on the raster-ordered grid tokens."""

    def __init__(self, layout: Layout, width: int, n_layers: int, mixer: str, mixer_options: dict[str, Any],
                 mlp_ratio: float, norm: str, projection_ratio: float):
        super().__init__(layout)
        self.lift = nn.Linear(layout.in_channels + layout.dim, width)
        self.blocks = nn.ModuleList(
            MixerBlock(width, create_mixer(mixer, width, **mixer_options), mlp_ratio=mlp_ratio, norm=norm)
            for _ in range(n_layers)
        )
        self.norm = make_norm(norm, width)
        hidden = max(1, round(width * projection_ratio))
        self.project = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, layout.out_channels))

    def operator(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        b = x.shape[0]
        h = self.lift(x.flatten(2).transpose(1, 2))
        mixer_shape = shape if len(shape) == 2 else None  # 1-D grids are plain sequences
        for block in self.blocks:
            h = block(h, shape=mixer_shape)
        y = self.project(self.norm(h))
        return y.transpose(1, 2).reshape(b, self.layout.out_channels, *shape)


class FNOOperator(Operator):
    """neuraloperator's FNO at the same width and depth, on the same inputs (coordinates included)."""

    def __init__(self, layout: Layout, width: int, n_layers: int, n_modes: int, projection_ratio: float):
        super().__init__(layout)
        self.fno = FNO(
            n_modes=(n_modes,) * layout.dim,
            in_channels=layout.in_channels + layout.dim,
            out_channels=layout.out_channels,
            hidden_channels=width,
            n_layers=n_layers,
            projection_channel_ratio=projection_ratio,
            positional_embedding=None,
        )
        self.last_backend: str | None = None  # the row's backend column (mixers set theirs)

    def operator(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Under bf16 autocast the FNO runs in fp32 (cuFFT has no bf16 transform), and its backend says so."""
        if torch.is_autocast_enabled(x.device.type) and torch.get_autocast_dtype(x.device.type) == torch.bfloat16:
            self.last_backend = "neuralop-fno-fp32"
            with torch.autocast(x.device.type, enabled=False):
                return self.fno(x.float())
        self.last_backend = "neuralop-fno"
        return self.fno(x)
