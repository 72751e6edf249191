"""Reference-vs-loop speed of the CPU scans: ``python -m harness.kernels.benchmark [--seqlen 4096 ...]``.

A benchmark, not a test: prints the median time (torch.utils.benchmark, several runs) of the chunked
parallel references and of the per-step loops they replace, forward only, and the speedup.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from harness.kernels.selective_scan import selective_scan_loop, selective_scan_ref
from harness.kernels.ssd import ssd_loop, ssd_ref


def _median(fn, min_run_time: float) -> float:
    with torch.no_grad():
        fn()  # warm-up
        return Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dim", type=int, default=64, help="d_inner (channels of the selective scan)")
    ap.add_argument("--dstate", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4, help="SSD heads (headdim = dim / heads)")
    ap.add_argument("--min-run-time", type=float, default=2.0)
    args = ap.parse_args(argv)
    b, d, n, l = args.batch, args.dim, args.dstate, args.seqlen
    torch.manual_seed(0)
    u, z = torch.randn(b, d, l), torch.randn(b, d, l)
    delta, A = torch.randn(b, d, l), -torch.rand(d, n) - 0.5
    B, C, D, bias = torch.randn(b, n, l), torch.randn(b, n, l), torch.randn(d), torch.randn(d)
    kw = dict(D=D, z=z, delta_bias=bias, delta_softplus=True)
    h = args.heads
    x, dt = torch.randn(b, l, h, d // h), torch.randn(b, l, h)
    Bs, Cs, Ah = torch.randn(b, l, 1, n), torch.randn(b, l, 1, n), -torch.rand(h) - 0.5
    rows = [
        (f"selective_scan b={b} d={d} n={args.dstate} L={l}",
         lambda: selective_scan_ref(u, delta, A, B, C, chunk_size=args.chunk, **kw),
         lambda: selective_scan_loop(u, delta, A, B, C, **kw)),
        (f"ssd b={b} h={h} p={d // h} n={n} L={l}",
         lambda: ssd_ref(x, dt, Ah, Bs, Cs, args.chunk, D=Ah, dt_softplus=True),
         lambda: ssd_loop(x, F.softplus(dt), Ah, Bs, Cs, D=Ah)),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, chunk {args.chunk}, forward only")
    print(f"{'op':44s} {'reference':>12s} {'loop':>12s} {'speedup':>8s}")
    for name, ref, loop in rows:
        t_ref, t_loop = _median(ref, args.min_run_time), _median(loop, args.min_run_time)
        print(f"{name:44s} {t_ref * 1e3:10.2f}ms {t_loop * 1e3:10.2f}ms {t_loop / t_ref:7.1f}x")


if __name__ == "__main__":
    main()
