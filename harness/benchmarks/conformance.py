"""GPU conformance: ``python -m harness.benchmarks.conformance [--out conformance.csv] [--timer-out timer.csv]``.

Needs CUDA and mamba_ssm. Prints and writes (CSV) the max relative error, max|a - b| / max|b|, of
mamba_ssm's kernels against our references, forward and backward, for the selective scan and SSD, and of
mamba_ssm's ``Mamba`` / ``Mamba2`` modules against ours after loading their state dict into ours (the
"special inits and layouts survive" check of the conformance rules). The GPU tests in ``tests/kernels``
assert on these numbers.

``--timer-out`` also checks the timer: every mixer's forward and forward+backward at d_model 768, L 4096,
batch 8, bf16 autocast, timed by the harness protocol (``Measurer.time``) and by
``triton.testing.do_bench`` on the very same callable; the medians should agree within 5%.

``--layers-out`` times our ``mamba``/``mamba2`` layers (short conv on causal_conv1d's kernel, and on
torch's conv) beside mamba_ssm's own ``Mamba``/``Mamba2`` at d_model 768, batch 8, L 1K/4K/16K.
"""

from __future__ import annotations

import argparse
import csv
from contextlib import nullcontext
from pathlib import Path

import torch

from harness.kernels.selective_scan import selective_scan_fn, selective_scan_ref
from harness.kernels.ssd import ssd_fn, ssd_ref


def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12)).item()


def _fwd_bwd(fn_a, fn_b, inputs: list[torch.Tensor]) -> tuple[float, float]:
    """Relative errors of outputs and of all input gradients (worst over inputs) of two functions."""
    leaves_a = [t.detach().clone().requires_grad_() for t in inputs]
    leaves_b = [t.detach().clone().requires_grad_() for t in inputs]
    out_a, out_b = fn_a(*leaves_a), fn_b(*leaves_b)
    w = torch.randn_like(out_b)
    ga = torch.autograd.grad((out_a * w).sum(), leaves_a)
    gb = torch.autograd.grad((out_b * w).sum(), leaves_b)
    return max_rel_err(out_a, out_b), max(max_rel_err(x, y) for x, y in zip(ga, gb))


def selective_scan_errors(device: str = "cuda", b: int = 2, d: int = 128, n: int = 16, l: int = 512) -> tuple[float, float]:
    g = torch.Generator(device).manual_seed(0)
    r = lambda *s: torch.randn(*s, device=device, generator=g)
    ins = [r(b, d, l), r(b, d, l) * 0.5, -torch.rand(d, n, device=device, generator=g) - 0.5, r(b, n, l), r(b, n, l), r(d), r(b, d, l), r(d) * 0.1]

    def call(fn):
        return lambda u, dt, A, B, C, D, z, db: fn(u, dt, A, B, C, D, z, db, True)

    return _fwd_bwd(call(selective_scan_fn), call(selective_scan_ref), ins)


def ssd_errors(device: str = "cuda", b: int = 2, l: int = 512, h: int = 8, p: int = 32, g_: int = 2, n: int = 32, chunk: int = 64) -> tuple[float, float]:
    g = torch.Generator(device).manual_seed(0)
    r = lambda *s: torch.randn(*s, device=device, generator=g)
    ins = [r(b, l, h, p), r(b, l, h), -torch.rand(h, device=device, generator=g) - 0.5, r(b, l, g_, n), r(b, l, g_, n), r(h), r(h) * 0.1]

    def call(fn):
        return lambda x, dt, A, B, C, D, db: fn(x, dt, A, B, C, chunk, D=D, dt_bias=db, dt_softplus=True)

    return _fwd_bwd(call(ssd_fn), call(ssd_ref), ins)


def short_conv_errors(device: str = "cuda", b: int = 2, c: int = 64, l: int = 512, k: int = 4) -> tuple[float, float]:
    """causal_conv1d's kernel vs torch's depthwise conv (padded, sliced to the causal part), with SiLU."""
    import torch.nn.functional as F

    from harness.kernels.short_conv import causal_conv1d_fn

    if causal_conv1d_fn is None:
        raise RuntimeError("causal_conv1d is not installed (pip install 'harness[gpu]')")
    g = torch.Generator(device).manual_seed(0)
    ins = [torch.randn(*s, device=device, generator=g) for s in ((b, c, l), (c, k), (c,))]

    def torch_conv(x, w, bias):
        return F.silu(F.conv1d(x, w[:, None], bias, padding=k - 1, groups=c)[..., :l])

    return _fwd_bwd(lambda x, w, bias: causal_conv1d_fn(x, w, bias, activation="silu"), torch_conv, ins)


def module_errors(kind: str, device: str = "cuda", dim: int = 64, l: int = 256) -> tuple[float, float]:
    """mamba_ssm module vs ours (impl='ref') after ``ours.load_state_dict(theirs.state_dict())``."""
    from harness.modules.registry import create_mixer

    if kind == "mamba":
        from mamba_ssm import Mamba as Theirs

        theirs, ours = Theirs(d_model=dim, d_state=16), create_mixer("mamba", dim, d_state=16, impl="ref")
    else:
        from mamba_ssm import Mamba2 as Theirs

        # use_mem_eff_path=False: its fused path runs conv, scan and out_proj as one function, unlike ours
        theirs = Theirs(d_model=dim, d_state=32, headdim=16, chunk_size=64, use_mem_eff_path=False)
        ours = create_mixer("mamba2", dim, d_state=32, headdim=16, chunk_size=64, impl="ref")
    theirs, ours = theirs.to(device), ours.to(device)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, l, dim, device=device)
    params_t, params_o = dict(theirs.named_parameters()), dict(ours.named_parameters())
    yt, yo = theirs(x), ours(x)
    w = torch.randn_like(yt)
    gt = torch.autograd.grad((yt * w).sum(), list(params_t.values()))
    go = torch.autograd.grad((yo * w).sum(), [params_o[k] for k in params_t])
    return max_rel_err(yo, yt), max(max_rel_err(a, b) for a, b in zip(go, gt))


def timer_rows(d_model: int = 768, seq_len: int = 4096, batch: int = 8) -> list[dict[str, object]]:
    """Harness p50 vs do_bench p50 for each mixer's forward and forward+backward (same callable for both)."""
    from harness.config.sections import MeasureConfig
    from harness.benchmarks.bench import SEQUENCE_DEFAULTS
    from harness.measure.latency import validate_against_do_bench
    from harness.measure.measurer import Measurer
    from harness.modules.registry import create_mixer

    device = torch.device("cuda")
    measurer = Measurer(MeasureConfig(), device)  # the suites' default protocol, bf16 autocast on CUDA
    rows = []
    print(f"\n{'mixer':10s} {'phase':16s} {'backend':16s} {'harness p50':>12s} {'do_bench p50':>12s} {'diff':>7s}", flush=True)
    for name in ("mamba", "mamba2", "attention", "gated_cnn"):
        torch.manual_seed(0)
        mixer = create_mixer(name, d_model, **SEQUENCE_DEFAULTS.get(name, {})).to(device)
        x = torch.randn(batch, seq_len, d_model, device=device)
        x_grad = x.clone().requires_grad_()
        calls = {"forward": measurer.wrap(lambda: mixer(x), inference=True),
                 "forward+backward": measurer.wrap(lambda: mixer(x_grad).float().square().mean().backward(), inference=False)}
        for phase, call in calls.items():
            r = validate_against_do_bench(call, measurer.cfg, device)
            rows.append({"mixer": name, "phase": phase, "backend": mixer.last_backend, "seq_len": seq_len, "d_model": d_model,
                         "batch": batch, **r, "within_5pct": r["rel_diff"] < 0.05})
            print(f"{name:10s} {phase:16s} {str(mixer.last_backend):16s} {r['ours_p50_ms']:10.3f}ms "
                  f"{r['do_bench_p50_ms']:10.3f}ms {r['rel_diff']:7.1%}", flush=True)
        calls = mixer = None  # free this mixer (the calls hold it) before the next one is built
        torch.cuda.empty_cache()
    return rows


LAYER_CONFIGS = {"mamba": {}, "mamba2": {"d_state": 128, "headdim": 64}}  # suites/scaling.yaml's mixers


def layer_rows(d_model: int = 768, batch: int = 8, lengths: tuple[int, ...] = (1024, 4096, 16384)) -> list[dict[str, object]]:
    """Forward p50 of our mamba/mamba2 layers (conv on causal_conv1d, and on torch's conv) beside
    mamba_ssm's own ``Mamba``/``Mamba2`` (fused path) at the same sizes, under the harness protocol.

    Tells how much of a gap between our layers and mamba_ssm's the short conv explains.
    """
    import mamba_ssm

    from harness.config.sections import MeasureConfig
    from harness.kernels.short_conv import torch_conv_only
    from harness.measure.measurer import Measurer
    from harness.modules.registry import create_mixer

    device = torch.device("cuda")
    measurer = Measurer(MeasureConfig(), device)
    rows = []
    print(f"\n{'layer':28s} {'L':>6s} {'backend':34s} {'p50 ms':>8s} {'p10-p90 ms':>14s}", flush=True)
    for name, kw in LAYER_CONFIGS.items():
        theirs_cls = mamba_ssm.Mamba if name == "mamba" else mamba_ssm.Mamba2
        for l in lengths:
            torch.manual_seed(0)
            x = torch.randn(batch, l, d_model, device=device)
            ours = create_mixer(name, d_model, **kw).to(device)
            layers = [(f"ours {name}", ours, nullcontext), (f"ours {name}, torch conv", ours, torch_conv_only),
                      (f"mamba_ssm.{theirs_cls.__name__}", theirs_cls(d_model=d_model, **kw).to(device), nullcontext)]
            for label, layer, ctx in layers:
                def call(layer=layer, ctx=ctx):
                    with ctx():
                        return layer(x)

                try:
                    t = measurer.time(call, inference=True)
                    backend = getattr(layer, "last_backend", None) or "mamba_ssm"
                    row = {"layer": label, "seq_len": l, "d_model": d_model, "batch": batch, "backend": backend,
                           "p50_ms": t.p50_ms, "p10_ms": t.p10_ms, "p90_ms": t.p90_ms, "error": ""}
                except Exception as exc:  # noqa: BLE001 - an OOM or a missing kernel is a row
                    row = {"layer": label, "seq_len": l, "d_model": d_model, "batch": batch, "backend": "",
                           "p50_ms": None, "p10_ms": None, "p90_ms": None, "error": f"{type(exc).__name__}: {exc}"}
                rows.append(row)
                spread = "" if row["p50_ms"] is None else f"{row['p10_ms']:.3f}-{row['p90_ms']:.3f}"
                shown = row["error"][:40] if row["error"] else f"{row['p50_ms']:8.3f}"
                print(f"{label:28s} {l:6d} {row['backend']:34s} {shown:>8s} {spread:>14s}", flush=True)
            layers = ours = None
            torch.cuda.empty_cache()
    return rows


def _write_csv(rows: list[dict[str, object]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


CHECKS = {
    "selective_scan kernel vs ref": selective_scan_errors,
    "ssd kernel vs ref": ssd_errors,
    "mamba_ssm.Mamba -> ours": lambda: module_errors("mamba"),
    "mamba_ssm.Mamba2 -> ours": lambda: module_errors("mamba2"),
    "causal_conv1d kernel vs torch conv": short_conv_errors,
}


def run() -> list[dict[str, object]]:
    """Every check, printed as it finishes; a check that raises is a row with its error, not a crash."""
    rows = []
    print(f"{'check':32s} {'fwd max rel err':>16s} {'bwd max rel err':>16s}", flush=True)
    for name, fn in CHECKS.items():
        try:
            fwd, bwd = fn()
            rows.append({"check": name, "fwd_max_rel_err": fwd, "bwd_max_rel_err": bwd, "error": ""})
            print(f"{name:32s} {fwd:16.2e} {bwd:16.2e}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report every check
            rows.append({"check": name, "fwd_max_rel_err": None, "bwd_max_rel_err": None, "error": f"{type(exc).__name__}: {exc}"})
            print(f"{name:32s} error: {type(exc).__name__}: {exc}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="CSV path for the kernel and module checks")
    ap.add_argument("--timer-out", type=Path, help="also compare the harness timer with do_bench; CSV path")
    ap.add_argument("--layers-out", type=Path, help="also time our mamba/mamba2 layers beside mamba_ssm's; CSV path")
    args = ap.parse_args(argv)
    if args.out is None and args.timer_out is None and args.layers_out is None:
        ap.error("nothing to do: give --out (kernel checks), --timer-out (timer check), --layers-out (layer timing)")
    if not torch.cuda.is_available() or selective_scan_fn is None or ssd_fn is None:
        raise SystemExit("conformance needs CUDA and mamba_ssm (pip install 'harness[gpu]')")
    if args.out:
        _write_csv(run(), args.out)
    if args.timer_out:
        _write_csv(timer_rows(), args.timer_out)
    if args.layers_out:
        _write_csv(layer_rows(), args.layers_out)


if __name__ == "__main__":
    main()
