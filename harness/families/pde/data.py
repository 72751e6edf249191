"""The PDE datasets: schemas, generation at two resolutions, and the on-disk cache.

Every sample is an input function ``a: (C_in, *grid)`` and an output function ``u: (C_out, *grid)``. The
solvers (``solvers.py``) run on a fine grid, the result is subsampled to the *2x* grid, and the training
grid is every second point of that, so the same samples exist at the training resolution and at twice it
(zero-shot super-resolution, as in FNO and Cheng et al., arXiv 2410.02113). Generated sets are cached in
``ctx.cache_dir/pde/`` under a hash of everything that determines them (``harness.families.cache``), so
concurrent runs may race to create it safely.

Grids: ``periodic`` problems use x_i = i/n (i < n), so the 2x grid has 2n points; ``nodes`` problems
(Darcy, Dirichlet boundary) use x_i = i/(n-1) including both walls, so the 2x grid has 2n-1 points;
``cells`` (PDEBench's non-periodic files) are cell centres, (i + 1/2)/n unless the file gives coordinates
(``PDEData.coordinates``), with 2n points at 2x. The models append the coordinates as input channels, so a
model trained at n evaluates at 2x unchanged.
``test_2x: false`` solves on the training grid only (for large resolution sweeps that measure cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from harness.families.base import Params
from harness.families.cache import config_key, load_or_build
from harness.families.pde import solvers
from harness.families.pde.config import BurgersParams, DarcyParams, NavierStokesParams

GENERATOR_VERSION = 1  # bump when a solver changes its output, so stale caches are not reused
Grid = Literal["periodic", "nodes", "cells"]


@dataclass(frozen=True)
class Layout:
    """What a model needs to know about a dataset without generating it."""

    dim: int
    in_channels: int
    out_channels: int
    grid: Grid
    resolution: int

    def shape(self, resolution: int | None = None) -> tuple[int, ...]:
        return (resolution or self.resolution,) * self.dim

    def resolution_2x(self) -> int:
        return 2 * self.resolution - 1 if self.grid == "nodes" else 2 * self.resolution


@dataclass(frozen=True)
class PDEData:
    """Train and test pairs at the training resolution, and the test pairs at 2x (or why there are none)."""

    layout: Layout
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_x_2x: torch.Tensor | None
    test_y_2x: torch.Tensor | None
    no_2x_reason: str = ""
    #: grid shape -> ``(dim, *shape)`` coordinates read with the data (PDEBench files); other grids' are computed
    coordinates: dict[tuple[int, ...], torch.Tensor] = field(default_factory=dict)
    protocol: str = ""  # how a PDEBench file was read and split, where it differs from PDEBench (the row's data_protocol)
    split: str = ""  # the sample indices of the test and training sets (the row's split)

    def to(self, device: torch.device) -> "PDEData":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return PDEData(
            self.layout, *(move(t) for t in (self.train_x, self.train_y, self.test_x, self.test_y,
                                             self.test_x_2x, self.test_y_2x)), self.no_2x_reason,
            {shape: move(c) for shape, c in self.coordinates.items()}, self.protocol, self.split,
        )


def split_two_resolutions(layout: Layout, x2: torch.Tensor, y2: torch.Tensor, n_train: int) -> PDEData:
    """Split samples given on the 2x grid into train (training grid) and test (both grids)."""
    sub = (slice(None), slice(None)) + (slice(None, None, 2),) * layout.dim
    x, y = x2[sub].contiguous(), y2[sub].contiguous()
    return PDEData(layout, x[:n_train], y[:n_train], x[n_train:], y[n_train:], x2[n_train:], y2[n_train:])


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scale(p: Params) -> int:
    """The generated grid is this multiple of the training grid's spacing: 2 with the 2x test set, else 1."""
    return 2 if p.test_2x else 1


def generate_burgers(p: BurgersParams, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, u)`` on the 2x grid (the training grid when ``test_2x`` is off), ``(N, 1, 2n)`` each."""
    n_fine = _scale(p) * p.resolution * p.refine
    u0 = solvers.gaussian_random_field(
        p.n_train + p.n_test, n_fine, 1, p.grf_alpha, p.grf_tau, p.grf_sigma, _generator(p.data_seed), device
    )
    u1 = solvers.burgers_1d(u0, p.viscosity, p.final_time, p.cfl)
    return u0[:, None, :: p.refine], u1[:, None, :: p.refine]


def generate_darcy(p: DarcyParams, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, u)`` on the 2x node grid, ``(N, 1, 2n-1, 2n-1)`` each (scipy solve on the CPU, one per sample)."""
    cells = _scale(p) * (p.resolution - 1) * p.refine  # solver cells per side; nodes = cells + 1
    field = solvers.gaussian_random_field(
        p.n_train + p.n_test, cells, 2, p.grf_alpha, p.grf_tau, 1.0, _generator(p.data_seed), torch.device("cpu")
    ).numpy()
    field = np.pad(field, ((0, 0), (0, 1), (0, 1)), mode="wrap")  # the torus' node at x = 1 is the one at 0
    a = np.where(field >= 0, p.a_high, p.a_low)
    u = np.stack([solvers.darcy_2d(ai, p.forcing) for ai in a])
    sub = (slice(None), None, slice(None, None, p.refine), slice(None, None, p.refine))
    return torch.from_numpy(a[sub]), torch.from_numpy(u[sub])


def ns_forcing(n: int, amplitude: float, device: torch.device | None = None) -> torch.Tensor:
    """FNO's forcing A (sin 2pi(x+y) + cos 2pi(x+y)) on the periodic ``(n, n)`` grid."""
    x = torch.arange(n, dtype=torch.float64, device=device) / n
    s = x[:, None] + x[None, :]
    return amplitude * (torch.sin(2 * math.pi * s) + torch.cos(2 * math.pi * s))


def generate_navier_stokes(p: NavierStokesParams, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, u)`` on the 2x grid: ``(N, input_steps, 2n, 2n)`` and ``(N, output_steps, 2n, 2n)``."""
    n_fine = _scale(p) * p.resolution * p.refine
    w0 = solvers.gaussian_random_field(
        p.n_train + p.n_test, n_fine, 2, p.grf_alpha, p.grf_tau, p.grf_sigma, _generator(p.data_seed), device
    )
    w = solvers.navier_stokes_2d(
        w0, ns_forcing(n_fine, p.forcing_amplitude, device), p.viscosity, p.dt, p.record_every,
        p.input_steps + p.output_steps,
    )
    if not torch.isfinite(w).all():
        raise ValueError(f"the Navier-Stokes solver diverged with dt={p.dt} on a {n_fine}^2 grid; lower data.dt")
    w = w[..., :: p.refine, :: p.refine]
    return w[:, : p.input_steps], w[:, p.input_steps :]


GENERATORS = {
    "burgers": (BurgersParams, generate_burgers, 1, "periodic"),
    "darcy": (DarcyParams, generate_darcy, 2, "nodes"),
    "navier_stokes": (NavierStokesParams, generate_navier_stokes, 2, "periodic"),
}


def generated_layout(dataset: str, p: Params) -> Layout:
    _, _, dim, grid = GENERATORS[dataset]
    c_in, c_out = (p.input_steps, p.output_steps) if dataset == "navier_stokes" else (1, 1)
    return Layout(dim, c_in, c_out, grid, p.resolution)


def cache_path(cache_dir: Path, dataset: str, p: Params) -> Path:
    """``cache_dir/pde/<dataset>-<hash>.pt``; the hash covers every parameter and the generator version."""
    key = config_key({"dataset": dataset, "version": GENERATOR_VERSION, **p.model_dump()})
    return Path(cache_dir) / "pde" / f"{dataset}-{key}.pt"


def load_generated(dataset: str, p: Params, cache_dir: Path, device: torch.device) -> PDEData:
    """Generate (on ``device`` when it is a GPU) or read from the cache; returns float32 data on the CPU."""

    def generate() -> tuple[torch.Tensor, torch.Tensor]:
        _, make, _, _ = GENERATORS[dataset]
        solve_on = device if device.type == "cuda" else torch.device("cpu")
        x2, y2 = (t.float().cpu().contiguous() for t in make(p, solve_on))
        return x2, y2

    (x2, y2), _ = load_or_build(cache_path(cache_dir, dataset, p), generate)
    layout = generated_layout(dataset, p)
    if not p.test_2x:
        n = p.n_train
        return PDEData(layout, x2[:n], y2[:n], x2[n:], y2[n:], None, None, "data.test_2x is off")
    return split_two_resolutions(layout, x2, y2, p.n_train)
