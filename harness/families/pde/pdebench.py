"""Real data: PDEBench HDF5 files (Takamoto et al., arXiv 2210.07182) read from a user path with h5py.

Nothing is downloaded; point ``data.path`` at a file of PDEBench's release, or a list of files of one
equation (their samples concatenated in order, e.g. the incompressible NS release's many
``ns_incom_inhom_2d_512-<i>.h5``). Two layouts, with PDEBench's key names (``pdebench/data_gen``):

- one array per field, the first axis the sample (``FNODatasetSingle``): ``tensor`` (N, T, X) of the 1-D
  equations (Burgers, advection, reaction-diffusion) with ``x-coordinate`` (X,) and ``t-coordinate``;
  Darcy's ``nu`` (N, X, Y) -> ``tensor`` (N, 1, X, Y) with ``x-/y-coordinate``; the compressible CFD
  fields ``density``, ``pressure``, ``Vx`` (and ``Vy`` in 2-D), each (N, T, X[, Y]), with coordinates; the
  incompressible NS ``velocity`` (N, T, X, Y, 2), turned into vorticity dv_y/dx - dv_x/dy with
  second-order central differences on the unit domain (its files hold no coordinates).
- one group per sample (``FNODatasetMult``): ``0000/data`` (T, X, Y, C) with ``0000/grid/{x,y,t}``:
  2-D diffusion-reaction (C = 2: u, v) and shallow water (C = 1: h).

The split is PDEBench's (``pdebench/models/fno/utils.py``, ``test_ratio = 0.1``): single-array files hold
out their *first* 10% of samples for testing and train on the rest; per-sample-group files hold out the
*last* 10% of their sorted groups. ``n_test`` / ``n_train`` take the first samples of each part. Several
files: the split applies to their concatenation (PDEBench's loaders read one file).

Time-dependent data: the input is ``input_steps`` snapshots taken every ``time_stride`` steps from the
start, the target the ``output_steps`` snapshots after them, fields stacked as channels (time-major).
PDEBench's FNO instead rolls out autoregressively from ``initial_step`` = 10 snapshots: our task is the
one-shot map, recorded in the row's ``data_protocol``. The grid is subsampled by an integer stride to
``resolution`` points per side; the 2x test set exists when that stride is even. Coordinates come from
the file (subsampled alike) and the models take them as input channels; the grid is labelled periodic
only where the equation's boundary is (the 1-D equations; CFD files named ``*periodic*``).

Only what a run uses is read: each sample's needed snapshots at the needed stride (h5py hyperslabs), one
sample at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from harness.errors import DataError
from harness.families.pde.config import PDEBenchParams
from harness.families.pde.data import Layout, PDEData

TEST_RATIO = 0.1  # PDEBench's test_ratio (FNODatasetSingle / FNODatasetMult default and every shipped config)


@dataclass(frozen=True)
class Equation:
    """How one PDEBench equation's files are laid out."""

    files: str  # the release's file names, for messages
    layout: Literal["arrays", "groups"]
    dim: int | None  # None: from the file (CFD is 1-D or 2-D)
    fields: tuple[str, ...]  # array keys, one channel each ("arrays"); the group's data channels ("groups")
    periodic: bool | None  # None: from the file name (CFD's *_periodic_* vs *_trans_*)
    time: bool = True  # False: Darcy, the map nu -> tensor


EQUATIONS = {
    "burgers": Equation("1D_Burgers_Sols_Nu<nu>.hdf5", "arrays", 1, ("tensor",), True),
    "advection": Equation("1D_Advection_Sols_beta<beta>.hdf5", "arrays", 1, ("tensor",), True),
    "reaction_diffusion": Equation("ReacDiff_Nu<nu>_Rho<rho>.hdf5 (1-D)", "arrays", 1, ("tensor",), True),
    "darcy": Equation("2D_DarcyFlow_beta<beta>_Train.hdf5", "arrays", 2, ("nu", "tensor"), False, time=False),
    "navier_stokes": Equation("ns_incom_inhom_2d_512-<i>.h5", "arrays", 2, ("velocity",), False),
    "cfd": Equation("1D_CFD_*_Train.hdf5 or 2D_CFD_*_Train.hdf5", "arrays", None, ("density", "pressure", "Vx", "Vy"), None),
    "diffusion_reaction": Equation("2D_diff-react_NA_NA.h5", "groups", 2, ("u", "v"), False),
    "shallow_water": Equation("2D_rdb_NA_NA.h5", "groups", 2, ("h",), False),
}
COORDINATES = ("x-coordinate", "y-coordinate")  # single-array files; groups: <sample>/grid/x, grid/y


def _expected(equation: str) -> str:
    eq = EQUATIONS[equation]
    if eq.layout == "groups":
        return (f"PDEBench's {eq.files}: one group per sample, '0000/data' (T, X, Y, {len(eq.fields)}) with "
                "'0000/grid/x', 'grid/y', 'grid/t'")
    if equation == "darcy":
        return f"PDEBench's {eq.files}: 'nu' (N, X, Y) and 'tensor' (N, 1, X, Y), with 'x-coordinate', 'y-coordinate'"
    if equation == "navier_stokes":
        return f"PDEBench's {eq.files}: 'velocity' (N, T, X, Y, 2)"
    if equation == "cfd":
        return f"PDEBench's {eq.files}: 'density', 'pressure', 'Vx' (and 'Vy' in 2-D), each (N, T, X[, Y]), with coordinates"
    return f"PDEBench's {eq.files}: 'tensor' (N, T, X) with 'x-coordinate' (X,)"


def paths(p: PDEBenchParams) -> list[Path]:
    return [Path(f).expanduser() for f in ((p.path,) if isinstance(p.path, str) else p.path)]


class PDEBenchFile:
    """One file's samples: counts, grid, time steps and coordinates from its metadata; ``read`` returns one
    sample's ``(input, target)`` at a grid stride, only the needed snapshots read."""

    def __init__(self, path: Path, equation: str):
        import h5py

        self.path, self.equation, self.eq = path, equation, EQUATIONS[equation]
        if not path.is_file():
            raise DataError(f"PDEBench file not found: {path}; expected {_expected(equation)}")
        try:
            self.file = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"{path} is not a readable HDF5 file ({exc}); expected {_expected(equation)}") from None
        self._describe()

    def close(self) -> None:
        self.file.close()

    def _fail(self, what: str) -> DataError:
        return DataError(f"{self.path}: {what}; expected {_expected(self.equation)}")

    def _describe(self) -> None:
        f = self.file
        if self.eq.layout == "groups":
            self.keys = sorted(k for k in f.keys() if hasattr(f[k], "keys"))
            if not self.keys or "data" not in f[self.keys[0]]:
                raise self._fail(f"no per-sample groups holding 'data' (found {self._listing()})")
            data = f[self.keys[0]]["data"]
            if data.ndim != 4 or data.shape[-1] != len(self.eq.fields):
                raise self._fail(f"'{self.keys[0]}/data' has shape {data.shape}")
            self.n, self.steps, grid, self.channels = len(self.keys), data.shape[0], data.shape[1:3], data.shape[-1]
            self.dim = 2
            grid_group = f[self.keys[0]].get("grid")
            self.coords = [np.asarray(grid_group[a], dtype=np.float32) for a in "xy"] if grid_group is not None and all(a in grid_group for a in "xy") else None
        else:
            fields = self._array_fields()
            shapes = {k: f[k].shape for k in fields}
            first = shapes[fields[0]]
            self.n = first[0]
            if self.equation == "darcy":
                if len(shapes["nu"]) != 3 or shapes["tensor"] != (first[0], 1, *first[1:]):
                    raise self._fail(f"'nu' has shape {shapes['nu']}, 'tensor' {shapes['tensor']}")
                self.steps, grid, self.dim = 1, first[1:], 2
            elif self.equation == "navier_stokes":
                if len(first) != 5 or first[-1] != 2:
                    raise self._fail(f"'velocity' has shape {first}")
                self.steps, grid, self.dim = first[1], first[2:4], 2
            else:
                dim = self.eq.dim or len(first) - 2
                if len(first) != dim + 2 or dim not in (1, 2) or any(s != first for s in shapes.values()):
                    raise self._fail(f"fields of shapes {shapes}")
                self.steps, grid, self.dim = first[1], first[2:], dim
            self.channels = 1 if self.equation in ("darcy", "navier_stokes") else len(fields)
            self.fields = fields
            present = [k for k in COORDINATES[: self.dim] if k in f]
            self.coords = [np.asarray(f[k], dtype=np.float32) for k in present] if len(present) == self.dim else None
        if len(set(grid)) != 1:
            raise self._fail(f"a {'x'.join(map(str, grid))} grid (only square grids are read)")
        self.size = grid[0]
        if self.coords is not None and any(len(c) != self.size for c in self.coords):
            raise self._fail(f"coordinates of lengths {[len(c) for c in self.coords]} for a grid of {self.size} points")
        if self.eq.periodic is None:
            self.periodic = "periodic" in self.path.name
        else:
            self.periodic = self.eq.periodic

    def _listing(self) -> str:
        keys = sorted(self.file.keys())
        return f"{len(keys)} keys: {', '.join(repr(k) for k in keys[:6])}{', ...' if len(keys) > 6 else ''}"

    def _array_fields(self) -> tuple[str, ...]:
        f = self.file
        wanted = self.eq.fields
        if self.equation == "cfd":  # 1-D files hold no Vy
            dim = f["density"].ndim - 2 if "density" in f else 0
            wanted = wanted[: 2 + dim]
        missing = [k for k in wanted if k not in f]
        if missing:
            hint = ""
            if all(hasattr(f[k], "keys") for k in list(f.keys())[:3]) and len(f.keys()):
                hint = " (this file holds one group per sample: equation diffusion_reaction or shallow_water reads those)"
            raise self._fail(f"no dataset {', '.join(repr(k) for k in missing)} (found {self._listing()}){hint}")
        return wanted

    def read(self, i: int, frames: slice, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``i``: ``(input, target)`` as ``(C, *grid)`` float32 at every ``stride``-th grid point; time
        series read the snapshots ``frames`` (input and target stacked, ``(T', C, *grid)``)."""
        f, space = self.file, (slice(None, None, stride),) * self.dim
        if self.equation == "darcy":
            return (np.asarray(f["nu"][(i, *space)], np.float32)[None],
                    np.asarray(f["tensor"][(i, 0, *space)], np.float32)[None])
        if self.eq.layout == "groups":
            u = np.asarray(f[self.keys[i]]["data"][(frames, *space)], np.float32)  # (T', X, Y, C)
            return np.moveaxis(u, -1, 1), None
        if self.equation == "navier_stokes":  # vorticity on the file's grid, then subsampled
            v = np.asarray(f["velocity"][i, frames], np.float32)  # (T', X, Y, 2)
            h = 1.0 / v.shape[1]
            w = np.gradient(v[..., 1], h, axis=1) - np.gradient(v[..., 0], h, axis=2)
            return w[(slice(None), *space)][:, None].astype(np.float32), None
        return np.stack([np.asarray(f[k][(i, frames, *space)], np.float32) for k in self.fields], axis=1), None


class PDEBenchSource:
    """The files of a task, their samples concatenated, and PDEBench's split of them."""

    def __init__(self, p: PDEBenchParams):
        self.p, self.eq = p, EQUATIONS[p.equation]
        self.files: list[PDEBenchFile] = []
        try:
            for path in paths(p):
                self.files.append(PDEBenchFile(path, p.equation))
            self._check()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> "PDEBenchSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check(self) -> None:
        first, p = self.files[0], self.p
        for f in self.files[1:]:
            if (f.size, f.steps, f.channels, f.dim) != (first.size, first.steps, first.channels, first.dim):
                raise DataError(f"{f.path} holds a {f.size}-point grid, {f.steps} steps, {f.channels} channels; "
                                f"{first.path} {first.size}, {first.steps}, {first.channels}: the files of one task must agree")
        self.n = sum(f.n for f in self.files)
        self.size, self.dim, self.channels, self.periodic = first.size, first.dim, first.channels, first.periodic
        if self.size % p.resolution:
            raise DataError(f"{first.path}: its grid of {self.size} points is not a multiple of data.resolution={p.resolution}; "
                            f"use a divisor of {self.size}", ("resolution",))
        held = int(self.n * TEST_RATIO)
        if self.eq.layout == "groups":  # FNODatasetMult: the last 10% of the sorted groups
            cut = int(self.n * (1 - TEST_RATIO))
            self.test_range, self.train_range = (cut, self.n), (0, cut)
            rule = "FNODatasetMult: the last 10% of the sorted sample groups held out"
        else:  # FNODatasetSingle: the first 10%
            self.test_range, self.train_range = (0, held), (held, self.n)
            rule = "FNODatasetSingle: the first 10% of the samples held out"
        for name, (lo, hi), key in (("n_test", self.test_range, "n_test"), ("n_train", self.train_range, "n_train")):
            if getattr(p, key) > hi - lo:
                raise DataError(f"{first.path}: {self.n} samples, split as PDEBench does ({rule}) leave {hi - lo} for "
                                f"{'testing' if key == 'n_test' else 'training'}; data.{name}={getattr(p, key)} exceeds it",
                                (key,))
        self.rule = rule
        if self.eq.time:
            need = (p.input_steps + p.output_steps - 1) * p.time_stride + 1
            if need > self.steps:
                raise DataError(f"{first.path}: {self.steps} time steps; input_steps + output_steps = "
                                f"{p.input_steps + p.output_steps} snapshots every {p.time_stride} steps need {need}",
                                ("input_steps",))

    @property
    def steps(self) -> int:
        return self.files[0].steps

    def _locate(self, index: int) -> tuple[PDEBenchFile, int]:
        for f in self.files:
            if index < f.n:
                return f, index
            index -= f.n
        raise IndexError(index)

    def read(self, indices: range, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the samples ``indices`` at grid stride ``stride``: ``(n, C_in, *grid)``, ``(n, C_out, *grid)``."""
        p = self.p
        need = p.input_steps + p.output_steps
        frames = slice(0, (need - 1) * p.time_stride + 1, p.time_stride)
        xs, ys = [], []
        for index in indices:
            f, local = self._locate(index)
            a, b = f.read(local, frames, stride)
            if b is None:  # a time series (T', C, *grid): the first input_steps snapshots in, the rest out
                a, b = a[: p.input_steps].reshape(-1, *a.shape[2:]), a[p.input_steps : need].reshape(-1, *a.shape[2:])
            xs.append(a)
            ys.append(b)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def coordinates(self, stride: int) -> torch.Tensor | None:
        """``(dim, *grid)`` coordinates at grid stride ``stride`` from the first file, or None if it holds none."""
        coords = self.files[0].coords
        if coords is None:
            return None
        axes = [torch.from_numpy(c[::stride].copy()) for c in coords]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def pdebench_layout(p: PDEBenchParams) -> Layout:
    """The operator's view of the task (the first file's metadata only)."""
    with PDEBenchSource(p) as source:
        c = source.channels
        c_in, c_out = (1, 1) if not source.eq.time else (p.input_steps * c, p.output_steps * c)
        return Layout(source.dim, c_in, c_out, "periodic" if source.periodic else "cells", p.resolution)


def check_pdebench(p: PDEBenchParams) -> None:
    """Open every file (metadata), check the split and the window, and read the first sample's first snapshot."""
    with PDEBenchSource(p) as source:
        source.read(range(source.train_range[0], source.train_range[0] + 1), source.size // p.resolution)


def load_pdebench(p: PDEBenchParams) -> PDEData:
    """Read the run's samples (PDEBench's split), windowed and subsampled, as float32 tensors on the CPU."""
    layout = pdebench_layout(p)
    with PDEBenchSource(p) as source:
        stride = source.size // p.resolution
        test = range(source.test_range[0], source.test_range[0] + p.n_test)
        train = range(source.train_range[0], source.train_range[0] + p.n_train)
        fine = stride // 2 if stride % 2 == 0 else stride  # the 2x grid when there is one, else the training grid
        (x_tr, y_tr), (x_te, y_te) = source.read(train, fine), source.read(test, fine)
        coords = {res: source.coordinates(step) for res, step in ((p.resolution, stride), (2 * p.resolution, fine))}
        split = (f"test {test.start}:{test.stop}, train {train.start}:{train.stop} of {source.n} samples "
                 f"({source.rule}{'; files concatenated' if len(source.files) > 1 else ''})")
    where = "from the file" if coords[p.resolution] is not None else "cell centres of the unit square (the file holds none)"
    protocol = (f"PDEBench {p.equation}: {split}; coordinates {where}; "
                + (f"{p.input_steps} snapshots -> the next {p.output_steps} every {p.time_stride} steps "
                   "(PDEBench's FNO rolls out from 10)" if EQUATIONS[p.equation].time else "nu -> tensor"))
    grids = {tuple(c.shape[1:]): c for c in coords.values() if c is not None}
    if fine == stride:
        return PDEData(layout, x_tr, y_tr, x_te, y_te, None, None,
                       f"the file's {source.size}-point grid has no 2x grid of resolution {p.resolution}",
                       coordinates=grids, protocol=protocol, split=split)
    sub = (slice(None), slice(None)) + (slice(None, None, 2),) * layout.dim
    return PDEData(layout, x_tr[sub].contiguous(), y_tr[sub].contiguous(), x_te[sub].contiguous(), y_te[sub].contiguous(),
                   x_te, y_te, coordinates=grids, protocol=protocol, split=split)

