"""PDE family: solvers against exact solutions and invariants, data determinism and caching, PDEBench's
metrics, every operator at two resolutions, and training that lowers the loss."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config.load import load_suite
from harness.config.sections import TrainConfig
from harness.families import FAMILIES, RunContext
from harness.families.pde import data as D
from harness.families.pde import metrics as M
from harness.families.pde import solvers as S
from harness.families.pde.config import BurgersParams, DarcyParams, NavierStokesParams, PDEModelParams
from harness.modules.registry import backends_of
from harness.plan.planner import plan
from harness.run.train import train
from harness.run.runner import build_experiment

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = dict(width=8, n_layers=1, n_heads=2, d_state=4, n_modes=4, kernel_size=3)
TINY_BURGERS = BurgersParams(resolution=16, n_train=24, n_test=8)
TINY_DARCY = DarcyParams(resolution=5, n_train=4, n_test=4, refine=1)



@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One generated-data cache for the training tests (each dataset is solved once)."""
    return tmp_path_factory.mktemp("pde_cache")


def context(tmp_path, use: str, dataset: str = "burgers", data=TINY_BURGERS, seed: int = 0, **model) -> RunContext:
    return RunContext(
        task="pde_test", variant=use, use=use, dataset=dataset, data=data,
        model=PDEModelParams(**{**TINY_MODEL, **model}), seed=seed, device=torch.device("cpu"),
        cache_dir=tmp_path, train_batch_size=8, eval_batch_size=16,
    )


# ---- solvers ----------------------------------------------------------------------------------------

def test_burgers_small_single_mode_decays_like_the_heat_equation():
    n, k, nu, t = 64, 3, 0.1, 0.3
    x = torch.arange(n, dtype=torch.float64) / n
    u0 = 1e-8 * torch.sin(2 * math.pi * k * x)[None]
    u = S.burgers_1d(u0, nu, t, cfl=0.5)
    torch.testing.assert_close(u, u0 * math.exp(-nu * (2 * math.pi * k) ** 2 * t), rtol=1e-6, atol=1e-15)


def test_burgers_conserves_the_mean_and_obeys_the_maximum_principle():
    u0 = S.gaussian_random_field(4, 128, 1, 2.0, 5.0, 25.0, torch.Generator().manual_seed(1)) + 0.2
    u = S.burgers_1d(u0, 0.05, 0.5, cfl=0.5)
    torch.testing.assert_close(u.mean(-1), u0.mean(-1), rtol=0, atol=1e-12)
    assert (u.abs().amax(-1) <= u0.abs().amax(-1) + 1e-9).all()


def test_darcy_solution_satisfies_its_discrete_system():
    rng = np.random.default_rng(0)
    a = np.where(rng.standard_normal((17, 17)) > 0, 12.0, 3.0)
    u = S.darcy_2d(a, 1.0)
    residual = S.darcy_matrix(a) @ u[1:-1, 1:-1].ravel() - 1.0
    assert np.abs(residual).max() < 1e-9
    assert np.all(u[[0, -1], :] == 0) and np.all(u[:, [0, -1]] == 0) and u.min() > -1e-12


def test_darcy_constant_coefficient_matches_the_analytic_poisson_solution_to_second_order():
    errors = []
    for n in (17, 33):
        x = np.linspace(0, 1, n)
        exact = np.sin(math.pi * x)[:, None] * np.sin(math.pi * x)[None, :]
        u = S.darcy_2d(np.ones((n, n)), 2 * math.pi**2 * exact)  # -Laplace exact = 2 pi^2 exact
        errors.append(np.abs(u - exact).max())
    assert errors[1] < 2e-3
    assert 3.5 < errors[0] / errors[1] < 4.5  # halving h quarters the error


def test_navier_stokes_conserves_mean_vorticity_with_forcing():
    w0 = S.gaussian_random_field(2, 16, 2, 2.5, 7.0, 7.0**1.5, torch.Generator().manual_seed(0)) + 0.3
    w = S.navier_stokes_2d(w0, D.ns_forcing(16, 0.1), 1e-3, 1e-2, 0.1, 3)
    torch.testing.assert_close(w.mean((-2, -1)), torch.full((2, 3), 0.3, dtype=torch.float64), rtol=0, atol=1e-12)
    assert not torch.allclose(w[:, -1], w0)  # it did evolve


def test_navier_stokes_taylor_green_mode_decays_exactly():
    # sin(2 pi kx x) sin(2 pi ky y) is a steady Euler flow (w is a function of psi), so only viscosity acts.
    n, nu, kx, ky, t = 16, 1e-2, 2, 1, 0.2
    x = torch.arange(n, dtype=torch.float64) / n
    w0 = torch.sin(2 * math.pi * kx * x)[:, None] * torch.sin(2 * math.pi * ky * x)[None, :]
    w = S.navier_stokes_2d(w0[None], torch.zeros(n, n, dtype=torch.float64), nu, 1e-3, t, 1)
    decay = math.exp(-nu * 4 * math.pi**2 * (kx**2 + ky**2) * t)
    torch.testing.assert_close(w[0, 0], w0 * decay, rtol=0, atol=1e-7)


def test_gaussian_random_field_is_deterministic_per_seed_and_zero_mean():
    def draw(seed: int) -> torch.Tensor:
        return S.gaussian_random_field(3, 32, 2, 2.0, 3.0, 1.0, torch.Generator().manual_seed(seed))

    torch.testing.assert_close(draw(0), draw(0), rtol=0, atol=0)
    assert not torch.allclose(draw(0), draw(1))
    assert draw(0).mean((-2, -1)).abs().max() < 1e-12


# ---- data -------------------------------------------------------------------------------------------

def test_generated_data_two_resolutions_and_determinism(tmp_path):
    a = D.load_generated("burgers", TINY_BURGERS, tmp_path / "a", torch.device("cpu"))
    b = D.load_generated("burgers", TINY_BURGERS, tmp_path / "b", torch.device("cpu"))
    torch.testing.assert_close(a.train_y, b.train_y, rtol=0, atol=0)
    assert a.train_x.shape == (24, 1, 16) and a.test_x_2x.shape == (8, 1, 32)
    torch.testing.assert_close(a.test_y_2x[..., ::2], a.test_y, rtol=0, atol=0)  # same samples, both grids
    other = D.load_generated("burgers", TINY_BURGERS.model_copy(update={"data_seed": 1}), tmp_path, torch.device("cpu"))
    assert not torch.allclose(other.train_x, a.train_x)

    darcy = D.load_generated("darcy", TINY_DARCY, tmp_path, torch.device("cpu"))
    assert darcy.train_x.shape == (4, 1, 5, 5) and darcy.test_x_2x.shape == (4, 1, 9, 9)
    assert set(darcy.train_x.unique().tolist()) <= {3.0, 12.0} and (darcy.train_y[..., 0, :] == 0).all()


def test_cache_hit_returns_identical_data_without_solving(tmp_path, monkeypatch):
    first = D.load_generated("burgers", TINY_BURGERS, tmp_path, torch.device("cpu"))
    assert D.cache_path(tmp_path, "burgers", TINY_BURGERS).exists()

    def no_solve(*_):
        raise AssertionError("the cache was not used")

    monkeypatch.setitem(D.GENERATORS, "burgers", (BurgersParams, no_solve, 1, "periodic"))
    again = D.load_generated("burgers", TINY_BURGERS, tmp_path, torch.device("cpu"))
    for x, y in zip((first.train_x, first.test_y_2x), (again.train_x, again.test_y_2x)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_navier_stokes_dataset_windows_snapshots(tmp_path):
    p = NavierStokesParams(resolution=8, n_train=2, n_test=1, input_steps=2, output_steps=1, dt=0.01,
                             record_every=0.1)
    d = D.load_generated("navier_stokes", p, tmp_path, torch.device("cpu"))
    assert d.train_x.shape == (2, 2, 8, 8) and d.train_y.shape == (2, 1, 8, 8) and d.test_x_2x.shape == (1, 2, 16, 16)


# ---- metrics ----------------------------------------------------------------------------------------

def test_fourier_band_errors_follow_pdebench_bins():
    n = 64
    x = torch.arange(n, dtype=torch.float64) / n
    true = torch.zeros(2, 1, n, dtype=torch.float64)
    for k, band in ((2, "fourier_low"), (7, "fourier_mid"), (20, "fourier_high")):
        bands = M.fourier_band_errors(true + torch.cos(2 * math.pi * k * x), true, dim=1)
        assert all(v < 1e-12 * bands[band] for name, v in bands.items() if name != band)
    grid = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    x16 = torch.arange(16, dtype=torch.float64) / 16
    bands = M.fourier_band_errors(grid + torch.cos(2 * math.pi * 5 * x16)[:, None], grid, dim=2)
    assert bands["fourier_low"] < 1e-12 * bands["fourier_mid"] and math.isnan(bands["fourier_high"])


def test_relative_errors():
    true = torch.randn(4, 2, 8, 8)
    assert M.relative_l2(true, true, 2) == 0 and M.nrmse(true, true) == 0
    assert M.relative_l2(2 * true, true, 2) == pytest.approx(1.0, rel=1e-5)
    assert M.max_error(true + 0.5, true) == pytest.approx(0.5)


# ---- operators and training -------------------------------------------------------------------------

@pytest.mark.parametrize("use", ["mno", "galerkin", "softmax", "fno", "gated_cnn"])
@pytest.mark.parametrize("dataset,data", [("burgers", TINY_BURGERS), ("darcy", TINY_DARCY)])
def test_every_operator_runs_forward_backward_at_two_resolutions(tmp_path, use, dataset, data):
    family = FAMILIES.get("pde")()
    ctx = context(tmp_path, use, dataset, data)
    model = family.build_model(ctx)
    (x,) = family.example_inputs(ctx, 2)
    lay = model.layout
    for res in (lay.resolution, lay.resolution_2x()):
        xr = torch.randn((2, lay.in_channels) + lay.shape(res))
        y = model(xr)
        assert y.shape == (2, lay.out_channels) + lay.shape(res)
        y.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert x.shape == (2, lay.in_channels) + lay.shape()


@pytest.mark.parametrize("use", ["mno", "galerkin", "fno"])
def test_training_lowers_the_loss_and_evaluates_both_resolutions(shared_cache, use):
    family = FAMILIES.get("pde")()
    ctx = context(shared_cache, use, width=16)
    exp = build_experiment(family, ctx)
    with torch.no_grad():
        before = float(exp.loss(exp.train_batch(0)))
    result = train(exp, TrainConfig(steps=15, lr=5e-3, warmup_steps=2), ctx.device)
    with torch.no_grad():
        assert float(exp.loss(exp.train_batch(0))) < before and result.final_loss < result.losses[0]
    metrics = exp.evaluate()
    assert set(metrics) == set(family.metrics)
    assert backends_of(exp.model) == {"mno": "reference", "galerkin": "torch-matmul", "fno": "neuralop-fno"}[use]
    assert all(math.isfinite(metrics[k]) for k in ("rel_l2", "rel_l2_2x", "nrmse", "max_error", "fourier_low"))
    extras = exp.row_extras()
    assert extras["seq_len"] == 16 and extras["d_model"] == 16 and extras["resolution_2x"] == 32
    assert extras.get("scan") == ("bidirectional" if use == "mno" else None)
    assert family.example_inputs(ctx, 20, exp.data)[0].shape == (20, 1, 16)


def test_runs_are_deterministic_per_seed(shared_cache):
    family = FAMILIES.get("pde")()
    runs = []
    for _ in range(2):
        exp = build_experiment(family, context(shared_cache, "galerkin"))
        train(exp, TrainConfig(steps=3, warmup_steps=0), torch.device("cpu"))
        runs.append(exp.evaluate()["rel_l2"])
    assert runs[0] == runs[1]


def test_without_the_2x_set_rel_l2_2x_is_nan_with_a_reason(tmp_path):
    family = FAMILIES.get("pde")()
    exp = build_experiment(family, context(tmp_path, "fno", data=TINY_BURGERS.model_copy(update={"test_2x": False})))
    assert exp.data.train_x.shape == (24, 1, 16)
    assert math.isnan(exp.evaluate()["rel_l2_2x"])
    assert exp.row_extras()["rel_l2_2x_note"] == "data.test_2x is off" and exp.row_extras()["resolution_2x"] is None


def test_suites_validate_and_a_resolution_sweep_plans(tmp_path):
    suite = load_suite(ROOT / "suites" / "pde.yaml")
    assert {v.name for t in suite.tasks for v in t.variants} == set(FAMILIES.get("pde").variants)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "suite: pde_gpu\nseeds: [0]\nvariants: [mno, softmax, galerkin, fno]\ntasks:\n"
        "  - name: darcy_scaling\n    family: pde\n    dataset: darcy\n    train: {steps: 0}\n"
        "    data: {n_train: 8, n_test: 8, test_2x: false, refine: 1}\n"
        "    sweep: {data.resolution: [64, 128, 256]}\n"
    )
    specs = plan(load_suite(sweep))
    assert sorted({s.config["data"]["resolution"] for s in specs}) == [64, 128, 256] and len(specs) == 12


@pytest.mark.gpu
def test_gpu_generation_matches_cpu_and_operators_run_under_bf16_autocast(tmp_path):
    cpu = D.load_generated("burgers", TINY_BURGERS, tmp_path / "cpu", torch.device("cpu"))
    gpu = D.load_generated("burgers", TINY_BURGERS, tmp_path / "gpu", torch.device("cuda"))
    torch.testing.assert_close(gpu.test_y_2x, cpu.test_y_2x, rtol=1e-5, atol=1e-6)
    family = FAMILIES.get("pde")()
    for use in family.variants:
        model = family.build_model(context(tmp_path, use, "darcy", TINY_DARCY)).cuda()
        x = torch.randn(2, 1, 64, 64, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = model(x)
        y.float().square().mean().backward()
        assert y.shape == (2, 1, 64, 64) and torch.isfinite(y.float()).all()


def test_fno_runs_in_fp32_under_bf16_autocast_and_says_so(tmp_path):
    """No FFT library transforms bf16 (cuFFT, pocketfft): the FNO leaves autocast and records it."""
    model = FAMILIES.get("pde")().build_model(context(tmp_path, "fno", "darcy", TINY_DARCY))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(torch.randn(2, 1, 16, 16))
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert backends_of(model) == "neuralop-fno-fp32"
