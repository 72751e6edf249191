"""Real data: PDEBench HDF5 files (Takamoto et al., arXiv 2210.07182) read from a user path with h5py.

Nothing is downloaded; point ``data.path`` at a file from PDEBench's release. Layouts read (PDEBench's
keys; the first axis is the sample):

- ``burgers`` (``1D_Burgers_Sols_Nu*.hdf5``): ``tensor`` (N, T, X) on a periodic grid.
- ``darcy`` (``2D_DarcyFlow_beta*_Train.hdf5``): ``nu`` (N, X, Y) the permeability, ``tensor`` (N, 1, X, Y).
- ``navier_stokes`` (``ns_incom_inhom_2d_*.h5``): ``velocity`` (N, T, X, Y, 2); the vorticity
  dv_y/dx - dv_x/dy is taken with second-order central differences (``numpy.gradient``, unit domain).

For time-dependent files the input is ``input_steps`` snapshots taken every ``time_stride`` steps from the
start and the target the ``output_steps`` snapshots after them. The grid is subsampled by an integer stride
to ``resolution``; the 2x test set exists when that stride is even (else ``rel_l2_2x`` is NaN with a reason).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.errors import HarnessError
from harness.families.pde.config import PDEBenchParams
from harness.families.pde.data import Layout, PDEData

EXPECTED = {
    "burgers": "'tensor' (N, T, X)",
    "darcy": "'nu' (N, X, Y) and 'tensor' (N, 1, X, Y)",
    "navier_stokes": "'velocity' (N, T, X, Y, 2)",
}


def pdebench_layout(p: PDEBenchParams) -> Layout:
    dim = 1 if p.equation == "burgers" else 2
    c_in, c_out = (1, 1) if p.equation == "darcy" else (p.input_steps, p.output_steps)
    return Layout(dim, c_in, c_out, "periodic", p.resolution)


def _read(f, key: str, p: PDEBenchParams, ndim: int) -> np.ndarray:
    if key not in f:
        raise HarnessError(
            f"{p.path}: no dataset {key!r} (found {sorted(f.keys())}); a PDEBench {p.equation} file holds "
            f"{EXPECTED[p.equation]}"
        )
    ds = f[key]
    if ds.ndim != ndim:
        raise HarnessError(f"{p.path}: {key!r} has shape {ds.shape}; expected {EXPECTED[p.equation]}")
    n = p.n_train + p.n_test
    if ds.shape[0] < n:
        raise HarnessError(f"{p.path}: {key!r} holds {ds.shape[0]} samples, n_train + n_test = {n}")
    return np.asarray(ds[:n], dtype=np.float32)


def _time_window(u: np.ndarray, p: PDEBenchParams) -> tuple[np.ndarray, np.ndarray]:
    """Split ``(N, T, *grid)`` into input and target snapshots along T."""
    frames = u[:, :: p.time_stride]
    need = p.input_steps + p.output_steps
    if frames.shape[1] < need:
        raise HarnessError(
            f"{p.path}: {u.shape[1]} time steps at stride {p.time_stride} give {frames.shape[1]} snapshots; "
            f"input_steps + output_steps = {need}"
        )
    return frames[:, : p.input_steps], frames[:, p.input_steps : need]


def load_pdebench(p: PDEBenchParams) -> PDEData:
    """Read, window, subsample and split one PDEBench file (float32 tensors on the CPU)."""
    import h5py

    path = Path(p.path).expanduser()
    if not path.is_file():
        raise HarnessError(f"PDEBench file not found: {path}; expected an HDF5 file holding {EXPECTED[p.equation]}")
    with h5py.File(path, "r") as f:
        if p.equation == "burgers":
            x, y = _time_window(_read(f, "tensor", p, 3), p)
        elif p.equation == "darcy":
            x, y = _read(f, "nu", p, 3)[:, None], _read(f, "tensor", p, 4)
        else:
            v = _read(f, "velocity", p, 5)
            h = 1.0 / v.shape[2]
            w = np.gradient(v[..., 1], h, axis=2) - np.gradient(v[..., 0], h, axis=3)
            x, y = _time_window(w.astype(np.float32), p)
    layout = pdebench_layout(p)
    size = x.shape[-1]
    if size % p.resolution:
        raise HarnessError(f"{p.path}: grid of {size} points is not a multiple of data.resolution={p.resolution}")
    stride = size // p.resolution

    def sub(a: np.ndarray, s: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a[(Ellipsis,) + (slice(None, None, s),) * layout.dim]))

    tr, te = slice(None, p.n_train), slice(p.n_train, None)
    xs, ys = sub(x, stride), sub(y, stride)
    if stride % 2:
        return PDEData(layout, xs[tr], ys[tr], xs[te], ys[te], None, None,
                       f"the file's {size}-point grid has no 2x grid of resolution {p.resolution}")
    x2, y2 = sub(x, stride // 2), sub(y, stride // 2)
    return PDEData(layout, xs[tr], ys[tr], xs[te], ys[te], x2[te], y2[te])
