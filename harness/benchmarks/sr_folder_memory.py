"""Peak resident memory of reading a DIV2K-sized paired SR folder: every pair decoded up front (the loader
before it read lazily) against the lazy ``FolderPairs`` (file headers up front, pairs decoded as crops need
them, at most ``FolderPairs.CACHE_BYTES`` kept).

    python -m harness.benchmarks.sr_folder_memory --root /tmp/div2k-bench            # 800 2K images, as DIV2K
    python -m harness.benchmarks.sr_folder_memory --root /tmp/div2k-bench --n 120    # a shorter run

The folder is generated once in DIV2K's layout (``DIV2K_train_HR/0001.png``, ``DIV2K_train_LR_bicubic/X2/
0001x2.png``; smooth random images, fast PNG compression) and reused. Each mode runs in a fresh interpreter
and reports its peak RSS (``ru_maxrss``) and the RSS after imports, so the difference is the data's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

MODES = ("eager", "lazy")


def generate(root: Path, n: int, width: int, height: int, scale: int) -> None:
    """DIV2K's train split layout, ``n`` HR images of ``width`` x ``height`` and their bicubic LR images."""
    hr_dir, lr_dir = root / "DIV2K_train_HR", root / "DIV2K_train_LR_bicubic" / f"X{scale}"
    hr_dir.mkdir(parents=True, exist_ok=True)
    lr_dir.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    for i in range(1, n + 1):
        if (lr_dir / f"{i:04d}x{scale}.png").exists():
            continue
        rng = np.random.default_rng(i)
        a, b = rng.random(2) * 6
        rgb = np.stack([np.sin(6 * xx + a), np.cos(5 * yy + b), np.sin(4 * (xx + yy) + a * b)], -1)
        hr = Image.fromarray(((rgb * 0.5 + 0.5) * 255).astype(np.uint8))
        hr.save(hr_dir / f"{i:04d}.png", compress_level=1)
        hr.resize((width // scale, height // scale), Image.BICUBIC).save(lr_dir / f"{i:04d}x{scale}.png", compress_level=1)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(mode: str, root: Path, steps: int, batch: int, patch: int) -> dict:
    """One mode in this interpreter: build the training set, draw ``steps`` batches, report the peaks."""
    from harness.families.restoration.config import FolderData
    from harness.families.restoration.data import RestorationSet

    base = peak_rss_mib()
    params = FolderData(train_path=str(root), test_path=str(root), degradation="sr_x2", patch_size=patch, eval_size=None)
    data = RestorationSet(params, seed=0)
    held = []
    if mode == "eager":  # every pair decoded and kept, crops taken from memory: what the loader did before
        held = [data.train.pair(i) for i in range(len(data.train))]
        data.train.pair = held.__getitem__
    after_open = peak_rss_mib()
    for step in range(steps):
        data.train_batch(step, batch)
    return {"mode": mode, "images": len(data.train), "rss_after_imports_mib": round(base, 1),
            "peak_after_open_mib": round(after_open, 1), "peak_after_batches_mib": round(peak_rss_mib(), 1),
            "held_pairs": len(held), "steps": steps, "batch": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="folder for the generated DIV2K layout (reused)")
    parser.add_argument("--n", type=int, default=800, help="images (DIV2K's training set: 800)")
    parser.add_argument("--width", type=int, default=2040)
    parser.add_argument("--height", type=int, default=1356)
    parser.add_argument("--steps", type=int, default=20, help="training batches drawn after opening")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--measure", choices=MODES, help=argparse.SUPPRESS)  # one mode, in a child interpreter
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.root, args.steps, args.batch, args.patch)))
        return
    generate(args.root, args.n, args.width, args.height, scale=2)
    rows = []
    for mode in MODES:
        out = subprocess.run([sys.executable, "-m", "harness.benchmarks.sr_folder_memory", "--root", str(args.root),
                              "--measure", mode, "--steps", str(args.steps), "--batch", str(args.batch),
                              "--patch", str(args.patch)], check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'mode':6} {'images':>6} {'RSS after imports':>18} {'peak after open':>16} {'peak after batches':>19}  (MiB)")
    for r in rows:
        print(f"{r['mode']:6} {r['images']:>6} {r['rss_after_imports_mib']:>18} {r['peak_after_open_mib']:>16} "
              f"{r['peak_after_batches_mib']:>19}")


if __name__ == "__main__":
    main()
