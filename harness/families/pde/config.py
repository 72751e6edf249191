"""The ``data:`` and ``model:`` schemas of the pde family (field names are the YAML keys): the generated
sets (Burgers, Darcy, Navier-Stokes), PDEBench files, and the operators' ``model:`` block."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.families.base import Params, user_path


class BurgersParams(Params):
    """Burgers 1-D, u(0) -> u(final_time) (FNO Sec. 5.1; viscosity 0.1 and 0.01 in the issue)."""

    resolution: int = Field(64, ge=4, description="training grid points (periodic); the 2x test grid has twice")
    viscosity: float = Field(0.1, gt=0)
    final_time: float = Field(1.0, gt=0, description="FNO maps u(0) to u(1)")
    n_train: int = Field(128, ge=1)
    n_test: int = Field(32, ge=1)
    refine: int = Field(2, ge=1, description="solver grid points = refine x the 2x grid")
    cfl: float = Field(0.5, gt=0, le=1, description="advective CFL number of the IF-RK4 time step")
    grf_sigma: float = Field(
        25.0, gt=0, description="u0 ~ N(0, sigma^2 (-Laplace + tau^2)^-alpha); FNO: 625 (-Laplace + 25)^-2"
    )
    grf_tau: float = Field(5.0, gt=0)
    grf_alpha: float = Field(2.0, gt=0)
    data_seed: int = Field(0, description="fixes the samples; the run seed only changes init and batches")
    test_2x: bool = Field(True, description="also solve on the 2x grid for rel_l2_2x (off: cheaper big sweeps)")


class DarcyParams(Params):
    """Darcy 2-D, permeability a -> pressure u (FNO Sec. 5.2: a in {12, 3} from a thresholded GRF, f = 1)."""

    resolution: int = Field(32, ge=3, description="grid points per side incl. both walls; the 2x grid has 2n-1")
    n_train: int = Field(128, ge=1)
    n_test: int = Field(32, ge=1)
    refine: int = Field(2, ge=1, description="solver grid spacing = the 2x grid's / refine")
    a_high: float = Field(12.0, gt=0, description="permeability where the GRF is >= 0")
    a_low: float = Field(3.0, gt=0, description="permeability where the GRF is < 0")
    forcing: float = Field(1.0, description="constant source f")
    grf_tau: float = Field(3.0, gt=0, description="GRF (-Laplace + tau^2)^-alpha; FNO: (-L+9)^-2")
    grf_alpha: float = Field(2.0, gt=0)
    data_seed: int = 0
    test_2x: bool = True


class NavierStokesParams(Params):
    """Navier-Stokes 2-D vorticity: ``input_steps`` snapshots -> the next ``output_steps`` (FNO Sec. 5.3)."""

    resolution: int = Field(32, ge=4, description="training grid points per side (periodic)")
    viscosity: float = Field(1e-3, gt=0)
    n_train: int = Field(128, ge=1)
    n_test: int = Field(32, ge=1)
    input_steps: int = Field(10, ge=1, description="FNO: 10 snapshots in")
    output_steps: int = Field(1, ge=1, description="snapshots predicted at once (output channels)")
    record_every: float = Field(1.0, gt=0, description="time between snapshots (FNO: 1)")
    dt: float = Field(1e-3, gt=0, description="solver step (FNO: 1e-4 on 256^2; scale with the solver grid)")
    refine: int = Field(1, ge=1, description="solver grid points = refine x the 2x grid")
    forcing_amplitude: float = Field(0.1, description="f = A (sin 2pi(x+y) + cos 2pi(x+y)), FNO: 0.1")
    grf_sigma: float = Field(7.0**1.5, gt=0, description="w0 ~ N(0, sigma^2 (-Laplace + tau^2)^-alpha); FNO: 7^1.5")
    grf_tau: float = Field(7.0, gt=0)
    grf_alpha: float = Field(2.5, gt=0)
    data_seed: int = 0
    test_2x: bool = True


class PDEBenchParams(Params):
    """PDEBench files as released (``pdebench.py``): which equation they hold names the layout."""

    path: str | tuple[str, ...] = user_path("file", "a PDEBench HDF5 file on this machine, or a list of files of one "
                                            "equation (samples concatenated in order)")
    equation: Literal["burgers", "advection", "reaction_diffusion", "darcy", "navier_stokes", "cfd",
                      "diffusion_reaction", "shallow_water"] = Field(
        description="burgers, advection, reaction_diffusion (1-D 'tensor'), darcy ('nu' -> 'tensor'), navier_stokes "
                    "(incompressible 'velocity' -> vorticity), cfd ('density', 'pressure', 'Vx'[, 'Vy']), "
                    "diffusion_reaction and shallow_water (2-D, one group per sample)")
    resolution: int = Field(64, ge=2, description="training grid points per side; must divide the file's")
    n_train: int = Field(128, ge=1, description="the first n_train samples of PDEBench's training part")
    n_test: int = Field(32, ge=1, description="the first n_test samples of PDEBench's test part (10% held out)")
    input_steps: int = Field(1, ge=1, description="time-dependent files: snapshots in")
    output_steps: int = Field(1, ge=1, description="time-dependent files: snapshots out")
    time_stride: int = Field(1, ge=1, description="time-dependent files: steps between used snapshots")


class PDEModelParams(Params):
    width: int = Field(32, ge=1, description="channels of every layer (FNO's hidden_channels)")
    n_layers: int = Field(4, ge=1, description="mixer blocks / FNO layers")
    mlp_ratio: float = Field(2.0, ge=0, description="MLP after each mixer (not used by fno)")
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    projection_ratio: float = Field(2.0, gt=0, description="hidden width of the projection MLP / width")
    n_heads: int = Field(4, ge=1, description="softmax and galerkin heads")
    d_state: int = Field(16, ge=1, description="mno state size")
    expand: int = Field(2, ge=1, description="mno inner width / width")
    scan: Literal["auto", "raster", "bidirectional", "cross4"] = Field(
        "auto", description="mno scan order; auto = bidirectional on 1-D grids, cross4 on 2-D (Cheng et al.)"
    )
    kernel_size: int = Field(7, ge=1, description="gated_cnn depthwise kernel (odd)")
    n_modes: int = Field(12, ge=1, description="fno Fourier modes kept per axis")
