"""PDEBench files as released: every layout read by its equation's name, PDEBench's split (first 10% of a
single-array file held out, last 10% of a per-sample-group file), channels in order, coordinates from the
file, the periodic label only where true, only the needed samples and snapshots read, clear errors, and
each layout run end to end from a suite."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

import published_layouts as L
from harness.config.load import load_suite
from harness.errors import ConfigError, HarnessError
from harness.families.pde.config import PDEBenchParams
from harness.families.pde.pdebench import check_pdebench, load_pdebench
from harness.plan.planner import plan
from harness.run.runner import execute_run


def arr(path: Path, key: str, index) -> torch.Tensor:
    with h5py.File(path) as f:
        return torch.from_numpy(np.asarray(f[key][index], dtype=np.float32))


@pytest.mark.parametrize("equation", ["burgers", "advection", "reaction_diffusion"])
def test_one_dimensional_equations_by_their_names_with_pdebench_split(tmp_path, equation):
    path = L.pdebench_1d(tmp_path, equation)  # 20 samples, 9 steps, 32 points
    d = load_pdebench(PDEBenchParams(path=str(path), equation=equation, resolution=8, n_train=4, n_test=2,
                                     input_steps=2, output_steps=1, time_stride=4))
    # FNODatasetSingle: test = the first int(0.1 * 20) = 2 samples, training from sample 2 on
    assert d.split.startswith("test 0:2, train 2:6 of 20 samples")
    torch.testing.assert_close(d.train_x[0], arr(path, "tensor", (2, [0, 4], slice(None, None, 4))))
    torch.testing.assert_close(d.train_y[3, 0], arr(path, "tensor", (5, 8, slice(None, None, 4))))
    torch.testing.assert_close(d.test_x_2x[1], arr(path, "tensor", (1, [0, 4], slice(None, None, 2))))
    torch.testing.assert_close(d.coordinates[(8,)][0], arr(path, "x-coordinate", slice(None, None, 4)))
    assert d.layout.grid == "periodic" and (d.layout.in_channels, d.layout.out_channels) == (2, 1)


def test_darcy_maps_nu_to_tensor_on_a_non_periodic_grid(tmp_path):
    path = L.pdebench_darcy(tmp_path)
    d = load_pdebench(PDEBenchParams(path=str(path), equation="darcy", resolution=4, n_train=3, n_test=2))
    torch.testing.assert_close(d.train_x[0, 0], arr(path, "nu", (2, slice(None, None, 2), slice(None, None, 2)))[::2, ::2])
    torch.testing.assert_close(d.test_y_2x[1, 0], arr(path, "tensor", (1, 0, slice(None, None, 2), slice(None, None, 2))))
    assert d.layout.grid == "cells" and d.layout.resolution_2x() == 8
    x, y = d.coordinates[(4, 4)]
    torch.testing.assert_close(x[:, 0], arr(path, "x-coordinate", slice(None, None, 4)))
    torch.testing.assert_close(y[0], arr(path, "y-coordinate", slice(None, None, 4)))


@pytest.mark.parametrize("dim,boundary", [(1, "periodic"), (2, "periodic"), (1, "trans")])
def test_cfd_fields_are_channels_in_order_and_periodic_only_when_named(tmp_path, dim, boundary):
    path = L.pdebench_cfd(tmp_path, dim, boundary=boundary)
    d = load_pdebench(PDEBenchParams(path=str(path), equation="cfd", resolution=8, n_train=2, n_test=2, input_steps=2,
                                     output_steps=1))
    fields = ("density", "pressure", "Vx", "Vy")[: 2 + dim]
    assert (d.layout.dim, d.layout.in_channels, d.layout.out_channels) == (dim, 2 * len(fields), len(fields))
    space = (slice(None, None, 2),) * dim
    for c, key in enumerate(fields):  # time-major: the first snapshot's fields, then the second's
        torch.testing.assert_close(d.train_x[1, c], arr(path, key, (3, 0, *space)))
        torch.testing.assert_close(d.train_x[1, len(fields) + c], arr(path, key, (3, 1, *space)))
        torch.testing.assert_close(d.train_y[1, c], arr(path, key, (3, 2, *space)))
    assert d.layout.grid == ("periodic" if boundary == "periodic" else "cells")


def test_incompressible_ns_reads_several_files_as_one_set(tmp_path):
    paths = [str(L.pdebench_ns(tmp_path, i)) for i in range(3)]  # 3 files x 4 samples
    d = load_pdebench(PDEBenchParams(path=paths, equation="navier_stokes", resolution=8, n_train=5, n_test=1,
                                     input_steps=2, output_steps=1))
    assert d.split.startswith("test 0:1, train 1:6 of 12 samples") and "files concatenated" in d.split
    v = arr(Path(paths[1]), "velocity", 0)  # sample 4 of the concatenation: the second file's first
    h = 1 / 16
    w = np.gradient(v[..., 1].numpy(), h, axis=1) - np.gradient(v[..., 0].numpy(), h, axis=2)
    torch.testing.assert_close(d.train_x[3], torch.from_numpy(w[:2, ::2, ::2]).float())  # training sample 4
    assert d.layout.grid == "cells" and not d.coordinates and "cell centres" in d.protocol


@pytest.mark.parametrize("equation", ["diffusion_reaction", "shallow_water"])
def test_per_sample_group_files_hold_out_their_last_tenth(tmp_path, equation):
    path = L.pdebench_groups(tmp_path, equation, steps=7)  # 20 groups 0000..0019, (7, 16, 16, C)
    channels = L.PDEBENCH_GROUPS[equation][1]
    d = load_pdebench(PDEBenchParams(path=str(path), equation=equation, resolution=8, n_train=3, n_test=2, input_steps=2,
                                     output_steps=2, time_stride=2))
    # FNODatasetMult: test = groups[int(20 * 0.9):] = 0018, 0019; training from 0000
    assert d.split.startswith("test 18:20, train 0:3 of 20 samples")
    data = arr(path, "0018/data", (slice(None), slice(None, None, 2), slice(None, None, 2)))  # (T, X, Y, C)
    torch.testing.assert_close(d.test_x[0], data[[0, 2]].permute(0, 3, 1, 2).reshape(2 * channels, 8, 8))  # snapshots 0, 2
    torch.testing.assert_close(d.test_y[0], data[[4, 6]].permute(0, 3, 1, 2).reshape(2 * channels, 8, 8))  # then 4, 6
    assert (d.layout.in_channels, d.layout.out_channels) == (2 * channels, 2 * channels)
    torch.testing.assert_close(d.coordinates[(8, 8)][0][:, 0], arr(path, "0000/grid/x", slice(None, None, 2)))
    assert d.layout.grid == "cells"


def test_only_the_needed_samples_and_snapshots_are_read(tmp_path, monkeypatch):
    """Every read is one sample's hyperslab at the needed time and grid strides, never a whole dataset."""
    path = L.pdebench_1d(tmp_path, "burgers", n=200, steps=9, x=32)
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, index):
        reads.append((self.name, index))
        return original(self, index)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    load_pdebench(PDEBenchParams(path=str(path), equation="burgers", resolution=8, n_train=3, n_test=2, input_steps=2,
                                 time_stride=4))
    tensor_reads = [index for name, index in reads if name == "/tensor"]
    assert len(tensor_reads) == 5 and all(isinstance(i[0], int) for i in tensor_reads)  # 3 + 2 samples of 200
    assert all(i[1] == slice(0, 9, 4) and i[2] == slice(None, None, 2) for i in tensor_reads)  # 3 snapshots, 2x grid


def test_errors_name_the_file_and_what_to_do(tmp_path):
    groups = L.pdebench_groups(tmp_path, "diffusion_reaction", n=30)
    with pytest.raises(HarnessError, match=r"no dataset 'tensor' \(found 30 keys: '0000', .*'0005', \.\.\.\).*diffusion_reaction or shallow_water"):
        check_pdebench(PDEBenchParams(path=str(groups), equation="burgers", n_train=2, n_test=1))
    burgers = L.pdebench_1d(tmp_path, "burgers")
    with pytest.raises(HarnessError, match=r"20 samples, split as PDEBench does .*leave 2 for testing; data.n_test=5"):
        check_pdebench(PDEBenchParams(path=str(burgers), equation="burgers", resolution=8, n_train=2, n_test=5))
    with pytest.raises(HarnessError, match="grid of 32 points is not a multiple of data.resolution=12"):
        check_pdebench(PDEBenchParams(path=str(burgers), equation="burgers", resolution=12, n_train=2, n_test=1))
    with pytest.raises(HarnessError, match=r"9 time steps; input_steps \+ output_steps = 4 snapshots every 4 steps need 13"):
        check_pdebench(PDEBenchParams(path=str(burgers), equation="burgers", resolution=8, n_train=2, n_test=1, input_steps=3,
                                      time_stride=4))
    with pytest.raises(HarnessError, match="no dataset 'nu'"):
        check_pdebench(PDEBenchParams(path=str(burgers), equation="darcy", resolution=8, n_train=2, n_test=1))


def write_suite(tmp_path: Path, data: dict, name: str = "pdebench") -> Path:
    suite = {"suite": name, "seeds": [0], "variants": ["fno", "mno"],
             "train": {"steps": 1, "batch_size": 2, "eval_batch_size": 4, "warmup_steps": 0},
             "measure": {"flops": False, "latency": False, "memory": False, "batch_size": 2},
             "tasks": [{"name": "flow", "family": "pde", "dataset": "pdebench", "data": data,
                        "model": {"width": 8, "n_layers": 1, "n_modes": 2, "d_state": 4}}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


LAYOUTS = {
    "burgers": lambda d: L.pdebench_1d(d, "burgers"),
    "advection": lambda d: L.pdebench_1d(d, "advection"),
    "reaction_diffusion": lambda d: L.pdebench_1d(d, "reaction_diffusion"),
    "darcy": L.pdebench_darcy,
    "navier_stokes": lambda d: [str(L.pdebench_ns(d, i)) for i in range(3)],
    "cfd": lambda d: L.pdebench_cfd(d, 2),
    "diffusion_reaction": lambda d: L.pdebench_groups(d, "diffusion_reaction"),
    "shallow_water": lambda d: L.pdebench_groups(d, "shallow_water"),
}


@pytest.mark.parametrize("equation", list(LAYOUTS))
def test_each_layout_validates_and_runs_end_to_end(tmp_path, equation):
    path = LAYOUTS[equation](tmp_path)
    data = {"path": path if isinstance(path, list) else str(path), "equation": equation, "resolution": 4, "n_train": 4,
            "n_test": 1}
    specs = plan(load_suite(write_suite(tmp_path, data)), device="cpu")
    rows = [execute_run(s.run, s.run_id, tmp_path / "cache") for s in specs]
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert row["split"].startswith("test ") and row["grid"] in ("periodic", "cells") and row["rel_l2"] > 0
        assert row["results_version"].endswith(".1")


def test_validation_reports_bad_data_at_the_path_line(tmp_path):
    groups = L.pdebench_groups(tmp_path, "shallow_water")
    path = write_suite(tmp_path, {"path": str(groups), "equation": "burgers", "resolution": 8, "n_train": 2, "n_test": 1})
    with pytest.raises(ConfigError, match=r"pdebench.yaml:\d+: flow.data: .*2D_rdb_NA_NA.h5: no dataset 'tensor'") as err:
        load_suite(path)
    assert "path:" in path.read_text().splitlines()[err.value.line - 1]
