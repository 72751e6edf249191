"""Reference-vs-loop speed of the CPU scans: ``python -m harness.kernels.benchmark [--threads 1 ...]``.

A benchmark, not a test. For the selective scan it times the chunked reference (``selective_scan_ref``,
analytic backward) against the per-step loop it replaces (``selective_scan_loop``, autograd backward),
forward only (no_grad) and forward+backward (grads of every input), at L = 256, 1024, 4096 (b=1, d=64,
n=16) and at tiny training shapes. Candidates run interleaved in one process (round-robin, so machine load
hits both alike); it prints the median and the [min, max] spread of the repeats and the speedup of medians.
The SSD row (Mamba-2) is forward only, as before.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from harness.kernels.selective_scan import selective_scan_loop, selective_scan_ref
from harness.kernels.ssd import ssd_loop, ssd_ref


def _interleaved(fns: dict, repeats: int) -> dict:
    for f in fns.values():
        f()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()}


def _ss_inputs(b: int, d: int, n: int, l: int) -> dict:
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return dict(
        u=r(b, d, l), delta=r(b, d, l), A=-torch.rand(d, n, generator=g) - 0.5, B=r(b, n, l), C=r(b, n, l),
        D=r(d), z=r(b, d, l), delta_bias=r(d),
    )


def _forward(fn, ins, **kw):
    def run():
        with torch.no_grad():
            fn(**ins, delta_softplus=True, **kw)
    return run


def _fwd_bwd(fn, ins, **kw):
    leaves = {k: v.detach().requires_grad_() for k, v in ins.items()}

    def run():
        out = fn(**leaves, delta_softplus=True, **kw)
        torch.autograd.grad(out.sum(), list(leaves.values()))
    return run


def _fmt(m):
    med, lo, hi = m
    return f"{med * 1e3:9.2f}ms [{lo * 1e3:.1f}-{hi * 1e3:.1f}]"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: leave as is)")
    ap.add_argument("--seqlens", type=str, default="256,1024,4096", help="L for b=1 d=64 n=16")
    ap.add_argument("--tiny", type=str, default="8,64,16,64;16,128,16,128", help="b,d,n,L training shapes")
    ap.add_argument("--chunk", type=int, default=0, help="reference chunk size (0: automatic)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-backward", action="store_true")
    ap.add_argument("--ssd", action="store_true", help="also the SSD (Mamba-2) forward row")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [(1, 64, 16, int(l)) for l in args.seqlens.split(",") if l]
    shapes += [tuple(int(x) for x in s.split(",")) for s in args.tiny.split(";") if s]
    chunk = args.chunk or None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), chunk {chunk or 'auto'}, "
          f"D, z, delta_bias, softplus on; median [min-max] of {args.repeats} interleaved repeats")
    print(f"{'selective_scan (b, d, n, L)':28s} {'pass':8s} {'loop':>24s} {'reference':>24s} {'speedup':>8s}")
    for b, d, n, l in shapes:
        ins = _ss_inputs(b, d, n, l)
        fns = {
            ("fwd", "loop"): _forward(selective_scan_loop, ins),
            ("fwd", "ref"): _forward(selective_scan_ref, ins, chunk_size=chunk),
        }
        if not args.no_backward:
            fns[("fwd+bwd", "loop")] = _fwd_bwd(selective_scan_loop, ins)
            fns[("fwd+bwd", "ref")] = _fwd_bwd(selective_scan_ref, ins, chunk_size=chunk)
        # the loop's autograd backward at long L takes seconds per call: fewer repeats there
        res = _interleaved(fns, args.repeats if l <= 1024 else max(3, args.repeats // 2))
        for pas in ("fwd", "fwd+bwd"):
            if (pas, "ref") in res:
                lp, rf = res[(pas, "loop")], res[(pas, "ref")]
                print(f"{str((b, d, n, l)):28s} {pas:8s} {_fmt(lp):>24s} {_fmt(rf):>24s} {lp[0] / rf[0]:7.1f}x",
                      flush=True)
    if args.ssd:
        b, d, n, l, h = 1, 64, 16, 4096, 4
        x, dt = torch.randn(b, l, h, d // h), torch.randn(b, l, h)
        Bs, Cs, Ah = torch.randn(b, l, 1, n), torch.randn(b, l, 1, n), -torch.rand(h) - 0.5
        with torch.no_grad():
            res = _interleaved({
                "loop": lambda: ssd_loop(x, F.softplus(dt), Ah, Bs, Cs, D=Ah),
                "ref": lambda: ssd_ref(x, dt, Ah, Bs, Cs, 64, D=Ah, dt_softplus=True),
            }, args.repeats)
        print(f"{f'ssd b={b} h={h} p={d // h} n={n} L={l}':28s} {'fwd':8s} {_fmt(res['loop']):>24s} "
              f"{_fmt(res['ref']):>24s} {res['loop'][0] / res['ref'][0]:7.1f}x")


if __name__ == "__main__":
    main()
