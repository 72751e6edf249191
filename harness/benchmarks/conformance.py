"""Conformance on the GPU, and the device script of the H100 baselines.

    python -m harness.benchmarks.conformance [--out conformance.csv] [--layers-out layers.csv]
        [--timer-out timer.csv] [--device cuda] [--lengths 1024,4096,16384] [--d-model 768] [--batch-size 8]
        [--deadline EPOCH_SECONDS]

``--out``: the max relative error, max|a - b| / max|b|, forward and backward (worst input or parameter
gradient), of mamba_ssm's and causal_conv1d's kernels against our references, of mamba_ssm's ``Mamba`` /
``Mamba2`` against ours after loading their state dict into ours (special inits and layouts survive), and
of our mixers on mamba_ssm's fused functions against their reference path. A check this machine cannot
run (no CUDA, mamba_ssm or causal_conv1d missing) is a row saying ``unavailable: ...``. The GPU tests in
``tests/kernels`` and ``tests/modules`` assert on these numbers.

``--layers-out``: our Mamba / Mamba-2 layers beside mamba_ssm's modules, forward and train step
(``harness.benchmarks.layers``). ``--timer-out`` (CUDA): every mixer's forward and forward+backward at
d_model 768, L 4096, batch 8, bf16 autocast, timed by the harness protocol and by
``triton.testing.do_bench`` on the very same callable; the medians should agree within 5%.

One process; layers first (the figures), then the checks (the non-Triton ones first: Triton compiles and
autotunes its kernels on first use), then the timer. Each CSV is rewritten after every row, so a run cut
short keeps what it finished; ``--deadline`` (default: ``HARNESS_DEADLINE``) skips what would start later.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from harness.kernels import fused_path, short_conv
from harness.kernels.selective_scan import selective_scan_fn, selective_scan_ref
from harness.kernels.ssd import ssd_fn, ssd_ref
from harness.modules.registry import create_mixer


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

    g = torch.Generator(device).manual_seed(0)
    ins = [torch.randn(*s, device=device, generator=g) for s in ((b, c, l), (c, k), (c,))]

    def torch_conv(x, w, bias):
        return F.silu(F.conv1d(x, w[:, None], bias, padding=k - 1, groups=c)[..., :l])

    return _fwd_bwd(lambda x, w, bias: short_conv.causal_conv1d_fn(x, w, bias, activation="silu"), torch_conv, ins)


# Mamba-2 at (headdim 32, d_state 32, chunk 64), ssd_errors' shape: Triton autotunes once for both
MODULE_CONFIGS: dict[str, dict[str, Any]] = {"mamba": {"d_state": 16},
                                             "mamba2": {"d_state": 32, "headdim": 32, "chunk_size": 64}}


def _pair_errors(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Output and worst parameter-gradient error of ``a`` against ``b`` (parameters matched by name)."""
    params_a, params_b = dict(a.named_parameters()), dict(b.named_parameters())
    ya, yb = a(x), b(x)
    w = torch.randn_like(yb)
    ga = torch.autograd.grad((ya * w).sum(), [params_a[k] for k in params_b])
    gb = torch.autograd.grad((yb * w).sum(), list(params_b.values()))
    return max_rel_err(ya, yb), max(max_rel_err(u, v) for u, v in zip(ga, gb))


def module_errors(kind: str, device: str = "cuda", dim: int = 64, l: int = 256) -> tuple[float, float]:
    """mamba_ssm module vs ours (impl='ref') after ``ours.load_state_dict(theirs.state_dict())``."""
    import mamba_ssm

    torch.manual_seed(0)
    kw = MODULE_CONFIGS[kind]
    if kind == "mamba":
        theirs = mamba_ssm.Mamba(d_model=dim, **kw)
    else:  # use_mem_eff_path=False: their unfused path (their fused one is ours too: fused_path_errors)
        theirs = mamba_ssm.Mamba2(d_model=dim, **kw, use_mem_eff_path=False)
    ours = create_mixer(kind, dim, **kw, impl="ref")
    theirs, ours = theirs.to(device), ours.to(device)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return _pair_errors(ours, theirs, torch.randn(2, l, dim, device=device))


def fused_path_errors(kind: str, device: str = "cuda", dim: int = 64, l: int = 256) -> tuple[float, float]:
    """Our mixer on mamba_ssm's fused function vs the same mixer's reference path (same state dict)."""
    torch.manual_seed(0)
    fused = create_mixer(kind, dim, **MODULE_CONFIGS[kind]).to(device)
    ref = create_mixer(kind, dim, **MODULE_CONFIGS[kind], impl="ref").to(device)
    ref.load_state_dict(fused.state_dict(), strict=True)
    errors = _pair_errors(fused, ref, torch.randn(2, l, dim, device=device))
    if fused.last_backend != fused_path.FUSED_PATH_BACKEND:
        raise RuntimeError(f"the fused path did not run: {fused.last_backend}")
    return errors


def timer_rows(d_model: int = 768, seq_len: int = 4096, batch: int = 8) -> list[dict[str, object]]:
    """Harness p50 vs do_bench p50 for each mixer's forward and forward+backward (same callable for both)."""
    from harness.benchmarks.bench import SEQUENCE_DEFAULTS
    from harness.config.sections import MeasureConfig
    from harness.measure.latency import validate_against_do_bench
    from harness.measure.measurer import Measurer

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


# name -> (function of the device, what it needs); the ones without Triton kernels first
CHECKS: dict[str, tuple[Callable[[str], tuple[float, float]], tuple[str, ...]]] = {
    "selective_scan kernel vs ref": (selective_scan_errors, ("CUDA", "mamba_ssm")),
    "causal_conv1d kernel vs torch conv": (short_conv_errors, ("CUDA", "causal_conv1d")),
    "mamba_ssm.Mamba -> ours": (lambda dev: module_errors("mamba", dev), ("CUDA", "mamba_ssm")),
    "ours mamba: fused path vs ref": (lambda dev: fused_path_errors("mamba", dev), ("CUDA", "mamba_ssm", "causal_conv1d")),
    "ssd kernel vs ref": (ssd_errors, ("CUDA", "mamba_ssm")),
    "mamba_ssm.Mamba2 -> ours": (lambda dev: module_errors("mamba2", dev), ("CUDA", "mamba_ssm")),
    "ours mamba2: fused path vs ref": (lambda dev: fused_path_errors("mamba2", dev), ("CUDA", "mamba_ssm", "causal_conv1d")),
}


def missing(device: torch.device, needs: Iterable[str]) -> list[str]:
    """What of ``needs`` (CUDA, mamba_ssm, causal_conv1d) this machine lacks for a check on ``device``."""
    have = {"CUDA": device.type == "cuda" and torch.cuda.is_available(),
            "mamba_ssm": selective_scan_fn is not None and ssd_fn is not None,
            "causal_conv1d": short_conv.causal_conv1d_fn is not None}
    return [n for n in needs if not have[n]]


def check_rows(device: torch.device | str = "cuda", deadline: float | None = None) -> Iterator[dict[str, object]]:
    """Every check, printed as it finishes; one that cannot run or raises is a row saying why, not a crash."""
    device = torch.device(device)
    print(f"{'check':34s} {'fwd max rel err':>16s} {'bwd max rel err':>16s}", flush=True)
    for name, (fn, needs) in CHECKS.items():
        row: dict[str, object] = {"check": name, "fwd_max_rel_err": None, "bwd_max_rel_err": None, "error": ""}
        lacking = missing(device, needs)
        if lacking:
            row["error"] = f"unavailable: needs {', '.join(lacking)}"
        elif deadline is not None and time.time() > deadline:
            row["error"] = "skipped: deadline"
        else:
            try:
                row["fwd_max_rel_err"], row["bwd_max_rel_err"] = fn(str(device))
            except Exception as exc:  # noqa: BLE001 - report every check
                row["error"] = f"{type(exc).__name__}: {exc}"
        shown = row["error"] or f"{row['fwd_max_rel_err']:16.2e} {row['bwd_max_rel_err']:16.2e}"
        print(f"{name:34s} {shown}", flush=True)
        yield row


def _write_csv(rows: list[dict[str, object]], path: Path) -> None:
    """Write ``rows`` to ``path`` whole (a temporary file renamed over it): readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _collect(rows: Iterable[dict[str, Any]], path: Path,
             show: Callable[[dict[str, Any]], None] = lambda row: None) -> list[dict[str, Any]]:
    """Consume ``rows``, rewriting ``path`` after each one (a run cut short keeps what it finished)."""
    done: list[dict[str, Any]] = []
    for row in rows:
        done.append(row)
        _write_csv(done, path)
        show(row)
    return done


def _ms(v: Any, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


LAYER_HEADER = (f"{'layer':34s} {'L':>6s} {'backend':34s} {'fwd p50 ms':>10s} {'train p50 ms':>12s} {'fwd/theirs':>10s} "
                f"{'train/theirs':>12s}  status")


def _show_layer(r: dict[str, Any]) -> None:
    print(f"{r['kind'] + ' ' + r['layer']:34.34s} {r['seq_len']:6d} {str(r['backend'] or ''):34.34s} "
          f"{_ms(r['latency_ms_p50']):>10s} {_ms(r['train_step_ms_p50']):>12s} {_ms(r['latency_ratio'], 2):>10s} "
          f"{_ms(r['train_step_ratio'], 2):>12s}  {r['status']}", flush=True)


def _positive_ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    from harness.benchmarks.layers import LENGTHS, layer_rows

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="CSV path for the kernel and module checks")
    ap.add_argument("--layers-out", type=Path, help="also time our mamba/mamba2 layers beside mamba_ssm's; CSV path")
    ap.add_argument("--timer-out", type=Path, help="also compare the harness timer with do_bench (CUDA); CSV path")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu: a dry run, mamba_ssm's rows unavailable")
    ap.add_argument("--lengths", type=_positive_ints, default=LENGTHS, help="layer sequence lengths, comma-separated")
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--deadline", type=float, default=float(os.environ.get("HARNESS_DEADLINE") or 0) or None,
                    help="seconds since the epoch after which nothing new starts (default: HARNESS_DEADLINE)")
    args = ap.parse_args(argv)
    if args.out is None and args.timer_out is None and args.layers_out is None:
        ap.error("nothing to do: give --out (kernel checks), --layers-out (layer timing), --timer-out (timer check)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but CUDA is not available here (use --device cpu for a dry run)")
    if args.timer_out and device.type != "cuda":
        ap.error("--timer-out needs --device cuda (triton.testing.do_bench is GPU-only)")
    if min(args.d_model, args.batch_size) < 1:
        ap.error("--d-model and --batch-size must be positive")
    start = time.time()
    if args.layers_out:
        print(LAYER_HEADER, flush=True)
        _collect(layer_rows(device, args.d_model, args.batch_size, args.lengths, deadline=args.deadline),
                 args.layers_out, _show_layer)
        print(flush=True)
    if args.out:
        _collect(check_rows(device, args.deadline), args.out)
    if args.timer_out:
        _write_csv(timer_rows(), args.timer_out)
    print(f"\ndone in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
