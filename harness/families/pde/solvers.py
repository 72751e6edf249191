"""Numerical solvers that generate the PDE operator-learning data offline (nothing is downloaded).

The three problems and their samplers follow the Fourier Neural Operator paper (Li et al., arXiv
2010.08895, Sec. 5 and its data-generation scripts), which Cheng et al.'s Mamba Neural Operator
(arXiv 2410.02113) and the Galerkin Transformer (Cao, arXiv 2105.14995) reuse:

- ``gaussian_random_field``: samples of N(0, sigma^2 (-Laplace + tau^2 I)^-alpha) on the periodic unit
  torus, by filtering white noise in Fourier space (the Karhunen-Loeve expansion, mean mode removed).
- ``burgers_1d``: u_t + (u^2/2)_x = nu u_xx on the periodic unit interval, pseudo-spectral with 2/3
  de-aliasing; the stiff diffusion is integrated exactly (integrating factor) and the nonlinear term with
  classical RK4 in the transformed variable (IF-RK4, Kassam & Trefethen 2005's baseline), so the time step
  is bound by advection only, whatever the viscosity.
- ``darcy_2d``: -div(a grad u) = f on the unit square, u = 0 on the boundary; the 5-point finite-difference
  scheme (face coefficients = mean of the two node values) solved with ``scipy.sparse.linalg.spsolve``.
- ``navier_stokes_2d``: the vorticity form w_t + u.grad w = nu Laplace w + f on the periodic unit torus,
  pseudo-spectral, Crank-Nicolson for diffusion and forward Euler for the de-aliased advection: FNO's
  ``navier_stokes_2d`` scheme, except that the mean mode is left untouched (FNO's ``lap[0,0] = 1`` made
  a non-zero mean decay), so the mean vorticity is conserved exactly.

Written by hand because no installed library ships these generators (neuraloperator downloads FNO's
pre-generated files; PDEBench's generators are scripts, not a package). Torch FFTs run on whatever device
the inputs are on (the GPU when there is one).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import spsolve

DEALIAS_FRACTION = 2.0 / 3.0  # Orszag's 2/3 rule


def wavenumbers(n: int, device: torch.device | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Integer wavenumbers of an ``n``-point periodic grid in ``torch.fft.fft`` order."""
    return torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype)


def gaussian_random_field(
    n_samples: int,
    size: int,
    dim: int,
    alpha: float,
    tau: float,
    sigma: float,
    generator: torch.Generator,
    device: torch.device | None = None,
) -> torch.Tensor:
    """``(n_samples, size[, size])`` float64 samples of N(0, sigma^2 (-Laplace + tau^2)^-alpha) on the torus.

    White noise is drawn on the CPU from ``generator`` (same samples on every device), then filtered:
    a Fourier coefficient of white noise has variance ``size**dim``, so multiplying by
    ``sqrt(eigenvalue) * size**(dim/2)`` gives the expansion's unit-variance coefficients.
    """
    noise = torch.randn((n_samples,) + (size,) * dim, generator=generator, dtype=torch.float64).to(device)
    k = wavenumbers(size, device)
    k2 = sum(g**2 for g in torch.meshgrid(*([k] * dim), indexing="ij"))
    eig = sigma**2 * (4 * math.pi**2 * k2 + tau**2) ** (-alpha)
    eig.view(-1)[0] = 0.0  # zero-mean field
    dims = tuple(range(1, dim + 1))
    coeff = torch.fft.fftn(noise, dim=dims) * eig.sqrt() * size ** (dim / 2)
    return torch.fft.ifftn(coeff, dim=dims).real


def burgers_1d(u0: torch.Tensor, viscosity: float, final_time: float, cfl: float) -> torch.Tensor:
    """Solve viscous Burgers from ``u0: (N, n)`` (periodic grid x_i = i/n) to ``final_time``; returns (N, n).

    IF-RK4 on v = exp(nu k^2 t) u_hat: the linear part is exact, so a single Fourier mode of tiny amplitude
    decays exactly as exp(-nu (2 pi k)^2 t). The step is ``cfl * dx / max|u0|`` (viscous Burgers obeys a
    maximum principle, so max|u| never grows), rounded so the steps land exactly on ``final_time``.
    """
    n = u0.shape[-1]
    k_int = torch.fft.rfftfreq(n, d=1.0 / n, device=u0.device, dtype=u0.dtype)
    k = 2 * math.pi * k_int
    lin = -viscosity * k**2
    dealias = (k_int <= DEALIAS_FRACTION * (n // 2)).to(u0.dtype)
    speed = float(u0.abs().max()) if u0.numel() else 0.0
    steps = max(1, math.ceil(final_time * speed * n / cfl))
    dt = final_time / steps
    half = torch.exp(lin * dt / 2)
    full = half**2

    def nonlinear(u_hat: torch.Tensor) -> torch.Tensor:
        u = torch.fft.irfft(u_hat, n=n, dim=-1)
        return -0.5j * k * dealias * torch.fft.rfft(u * u, dim=-1)

    u_hat = torch.fft.rfft(u0, dim=-1)
    for _ in range(steps):
        a = nonlinear(u_hat)
        b = nonlinear(half * (u_hat + dt / 2 * a))
        c = nonlinear(half * u_hat + dt / 2 * b)
        d = nonlinear(full * u_hat + dt * half * c)
        u_hat = full * u_hat + dt / 6 * (full * a + 2 * half * (b + c) + d)
    return torch.fft.irfft(u_hat, n=n, dim=-1)


def darcy_matrix(a: np.ndarray) -> sp.csr_matrix:
    """The 5-point matrix of -div(a grad .) on the interior nodes of an ``(n, n)`` node grid of [0, 1]^2.

    Node (i, j) sits at (i h, j h) with h = 1/(n-1); the boundary nodes carry the Dirichlet value 0. The
    coefficient on the face between two nodes is the mean of their values; unknowns are interior nodes in
    row-major order.
    """
    n = a.shape[0]
    m = n - 2
    h2 = (1.0 / (n - 1)) ** 2
    c = a[1:-1, 1:-1]
    east = 0.5 * (c + a[1:-1, 2:])
    west = 0.5 * (c + a[1:-1, :-2])
    north = 0.5 * (c + a[2:, 1:-1])
    south = 0.5 * (c + a[:-2, 1:-1])
    idx = np.arange(m * m).reshape(m, m)
    rows = [idx.ravel()]
    cols = [idx.ravel()]
    vals = [((east + west + north + south) / h2).ravel()]
    for coef, di, dj in ((east, 0, 1), (west, 0, -1), (north, 1, 0), (south, -1, 0)):
        ii, jj = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        inside = (ii + di >= 0) & (ii + di < m) & (jj + dj >= 0) & (jj + dj < m)
        rows.append(idx[inside])
        cols.append(idx[ii[inside] + di, jj[inside] + dj])
        vals.append(-coef[inside] / h2)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m, m * m))


def darcy_2d(a: np.ndarray, f: np.ndarray | float) -> np.ndarray:
    """Solve -div(a grad u) = f, u = 0 on the boundary, for one ``(n, n)`` node grid; returns ``(n, n)``."""
    n = a.shape[0]
    rhs = np.broadcast_to(np.asarray(f, dtype=np.float64), a.shape)[1:-1, 1:-1].ravel()
    u = np.zeros_like(a, dtype=np.float64)
    u[1:-1, 1:-1] = spsolve(darcy_matrix(a).tocsc(), rhs).reshape(n - 2, n - 2)
    return u


def navier_stokes_2d(
    w0: torch.Tensor,
    forcing: torch.Tensor,
    viscosity: float,
    dt: float,
    record_every: float,
    n_records: int,
) -> torch.Tensor:
    """Evolve vorticity ``w0: (N, n, n)`` and return ``(N, n_records, n, n)`` snapshots at t = k * record_every.

    ``forcing``: ``(n, n)`` (or ``(N, n, n)``). Stream function psi = -Laplace^-1 w, velocity
    (psi_y, -psi_x); a ``(kx, ky)`` mode of a field with no advection decays by the Crank-Nicolson factor
    (1 - dt nu lambda / 2) / (1 + dt nu lambda / 2) per step, lambda = 4 pi^2 (kx^2 + ky^2).
    """
    n = w0.shape[-1]
    steps_per_record = max(1, round(record_every / dt))
    dt = record_every / steps_per_record
    k = wavenumbers(n, w0.device)
    kr = k[: n // 2 + 1].abs()  # rfft2 keeps the non-negative half of the last axis
    kx, ky = torch.meshgrid(k, kr, indexing="ij")
    lap = 4 * math.pi**2 * (kx**2 + ky**2)
    inv_lap = torch.where(lap > 0, 1.0 / lap.clamp_min(1e-30), torch.zeros_like(lap))
    cutoff = DEALIAS_FRACTION * (n // 2)
    dealias = ((kx.abs() <= cutoff) & (ky.abs() <= cutoff)).to(w0.dtype)
    dx, dy = 2j * math.pi * kx, 2j * math.pi * ky
    half_diffusion = 0.5 * dt * viscosity * lap
    f_hat = torch.fft.rfft2(forcing.to(w0.dtype))
    w_hat = torch.fft.rfft2(w0)
    out = []
    for _ in range(n_records):
        for _ in range(steps_per_record):
            psi_hat = w_hat * inv_lap
            ux = torch.fft.irfft2(dy * psi_hat, s=(n, n))
            uy = torch.fft.irfft2(-dx * psi_hat, s=(n, n))
            wx = torch.fft.irfft2(dx * w_hat, s=(n, n))
            wy = torch.fft.irfft2(dy * w_hat, s=(n, n))
            adv_hat = dealias * torch.fft.rfft2(ux * wx + uy * wy)
            w_hat = (dt * (f_hat - adv_hat) + (1 - half_diffusion) * w_hat) / (1 + half_diffusion)
        out.append(torch.fft.irfft2(w_hat, s=(n, n)))
    return torch.stack(out, dim=1)
