"""Synthetic results folders with known answers (no models: plain tables)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

VARIANTS = {  # variant -> (mixer, is_ssm)
    "mamba": ("mamba", True),
    "attention": ("attention", False),
    "gated_cnn": ("gated_cnn", False),
}


def task_entry(family, primary, hib, unit, thr, relative=False, causal=False, sweep_keys=(), extra=None):
    metrics = {primary: {"higher_is_better": hib, "unit": unit, "primary": True}}
    metrics.update(extra or {})
    return {"family": family, "causal": causal, "primary_metric": primary, "metrics": metrics,
            "verdict": {"thresholds": {primary: thr}, "relative": {primary: relative}},
            "sweep_keys": list(sweep_keys)}


def base_row(task, family, variant, seed, sweep=None, **kw):
    mixer, ssm = VARIANTS.get(variant, (variant, "mamba" in variant))
    row = dict(suite="synthetic", task=task, family=family, variant=variant, mixer=mixer, is_ssm=ssm, seed=seed,
               sweep=json.dumps(sweep or {}, sort_keys=True), status="ok", error="", params=1.0e6,
               flops_fwd=1.0e9, macs_fwd_fvcore=5.0e8, flops_train_step=3.0e9, latency_ms_p10=0.9,
               latency_ms_p50=1.0, latency_ms_p90=1.1, train_step_ms_p50=3.0, peak_mem_mb_infer=100.0,
               peak_mem_mb_train=300.0, mem_approx=False, throughput=1000.0, seq_len=196, d_model=192,
               l_over_6d=196 / (6 * 192), causal=False, train_steps=100, train_time_s=10.0, final_loss=0.5,
               backend="ref", device="cpu", gpu_name="", torch_version="2.4", cuda_version="",
               git_commit="abc123", harness_version="0.1.0", started_at="2025-01-01T00:00:00", ablation="",
               budget_mismatch=0.01)
    row["config_hash"] = f"{task}-{variant}-{seed}-{row['sweep']}"
    row.update(kw)
    return row


def write(dirpath: Path, rows, suite_tasks, csv=False) -> Path:
    dirpath = Path(dirpath)
    dirpath.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    if csv:
        df.to_csv(dirpath / "results.csv", index=False)
    else:
        df.to_parquet(dirpath / "results.parquet", index=False)
    (dirpath / "suite.json").write_text(json.dumps({"suite": "synthetic", "tasks": suite_tasks}, indent=1))
    return dirpath


def classification_rows(rng, task="cls", effect=0.0, noise=0.3, seeds=5, others=("attention", "gated_cnn"),
                        base=75.0):
    """top1 per seed; mamba = base + effect; others = base. Shared seed effect makes pairing matter."""
    rows = []
    for s in range(seeds):
        shared = rng.normal(0, 1.0)
        rows.append(base_row(task, "classification", "mamba", s, top1=base + effect + shared + rng.normal(0, noise),
                             latency_ms_p50=2.0, flops_fwd=1.2e9))
        for v in others:
            rows.append(base_row(task, "classification", v, s, top1=base + shared + rng.normal(0, noise),
                                 latency_ms_p50=1.0 if v == "gated_cnn" else 1.5, flops_fwd=1.0e9))
    return rows


def scaling_rows(rng, task="lm", cross=2048.0, sizes=(256, 512, 1024, 2048, 4096, 8192, 16384), seeds=3,
                 noise=0.05, nll_gap=0.1):
    """Latency: attention ~ L^2, mamba ~ L, equal at ``cross``. Memory: attention ~ L^2/2, mamba ~ L."""
    rows = []
    for L in sizes:
        for s in range(seeds):
            for v in ("mamba", "attention"):
                if v == "mamba":
                    lat = 1.0 * (L / cross)
                    mem = 50.0 * (L / cross)
                    nll = 2.0 + rng.normal(0, 0.01)
                else:
                    lat = 1.0 * (L / cross) ** 2
                    mem = 50.0 * (L / cross) ** 2 * 0.5
                    nll = 2.0 + nll_gap + rng.normal(0, 0.01)
                lat *= np.exp(rng.normal(0, noise))
                mem *= np.exp(rng.normal(0, noise / 5))
                rows.append(base_row(task, "sequence", v, s, {"data.seq_len": L}, latency_ms_p50=lat,
                                     latency_ms_p10=lat * 0.95, latency_ms_p90=lat * 1.05, peak_mem_mb_infer=mem,
                                     nll_bits_per_token=nll, seq_len=L, l_over_6d=L / (6 * 128), causal=True,
                                     gen_gap=0.01 * np.log2(L) * (2 if v == "attention" else 1) + rng.normal(0, 0.003)))
    return rows


def demo_results(dirpath: Path, seed: int = 0) -> Path:
    """A mixed suite exercising every report section (verdicts of all three kinds, sweeps, ablations, errors)."""
    rng = np.random.default_rng(seed)
    rows = classification_rows(rng, task="imagenet_tiny", effect=0.0, seeds=8)
    rows += scaling_rows(rng, task="lm_long", seeds=8)
    # restoration: lr grid (unequal: mamba 3 points, attention 2), 3 seeds -> inconclusive (n too small), plus
    # ablations of mambairv2, the ablation study's base (its rows say ablation: base, as harness run writes them)
    for lr, n_seeds_gain in ((1e-4, -0.05), (2e-4, 0.0), (4e-4, -0.1)):
        for s in range(3):
            rows.append(base_row("sr_x2", "restoration", "mambairv2", s, {"optim.lr": lr}, ablation="base",
                                 psnr=33.0 + n_seeds_gain + rng.normal(0, 0.3), is_ssm=True, mixer="mambairv2"))
            if lr != 4e-4:
                rows.append(base_row("sr_x2", "restoration", "swinir", s, {"optim.lr": lr},
                                     psnr=32.9 + n_seeds_gain + rng.normal(0, 0.3), is_ssm=False, mixer="attention"))
    for abl, drop in (("ase_off", 0.25), ("sgn_off", 0.12), ("prompts_T16", 0.05)):
        for s in range(3):
            rows.append(base_row("sr_x2", "restoration", abl, s, {"optim.lr": 2e-4}, ablation=abl,
                                 psnr=33.0 - drop + rng.normal(0, 0.05), is_ssm=True, mixer="mambairv2"))
    rows.append(base_row("sr_x2", "restoration", "swinir", 9, {"optim.lr": 4e-4}, status="oom",
                         error="CUDA out of memory (synthetic)", psnr=np.nan, is_ssm=False, mixer="attention"))
    rows.append(base_row("lm_long", "sequence", "attention", 7, {"data.seq_len": 32768}, status="oom",
                         error="CUDA out of memory", nll_bits_per_token=np.nan, latency_ms_p50=np.nan))
    rows.append(base_row("imagenet_tiny", "classification", "mamba", 9, status="diverged",
                         error="loss became NaN at step 12", top1=np.nan))
    tasks = {
        "imagenet_tiny": task_entry("classification", "top1", True, "%", 0.5),
        "lm_long": task_entry("sequence", "nll_bits_per_token", False, "bits/token", 0.02, causal=True,
                              sweep_keys=["data.seq_len"],
                              extra={"gen_gap": {"higher_is_better": False, "unit": "fraction", "primary": False}}),
        "sr_x2": task_entry("restoration", "psnr", True, "dB", 0.1, sweep_keys=["optim.lr"]),
    }
    return write(dirpath, rows, tasks)


def claim(cid: str, **check) -> dict:
    """One claim as suite.json stores it (``harness.config.claim_checks.claims_meta``): its id and one check."""
    return {"claim": {"id": cid, "claim": f"synthetic finding {cid}", "source": "synthetic", **check}, "metrics": {}}


def copy_rows(rng, seeds=8, mamba=0.8, lti=0.5, gated_cnn=0.13, noise=0.03, task="copy", baseline=0.125, **kw):
    """Selective-copy accuracy per seed: mamba (the ablation base), its LTI ablation and a gated CNN."""
    rows = []
    for s in range(seeds):
        shared = rng.normal(0, noise)
        for v, mean, abl in (("mamba", mamba, "base"), ("lti", lti, "lti"), ("gated_cnn", gated_cnn, "")):
            acc = float(np.clip(mean + shared + rng.normal(0, noise), 0, 1))
            rows.append(base_row(task, "sequence", v, s, accuracy=acc, ablation=abl, is_ssm=v != "gated_cnn",
                                 mixer="mamba" if v == "lti" else VARIANTS[v][0], baseline=baseline,
                                 baseline_kind="chance", **kw))
    return rows
