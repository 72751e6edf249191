"""Every shipped classification and dense task trains every parameter, and the vision families refuse
degenerate sizes: a last backbone stage of 1x1 (a mixer over one token) and FCOS levels of 1x1.

Found by audit: at 96 px the FCOS P7 level was 1x1, where FCOSHead's GroupNorm(32, 32) makes its output
constant, so ``extra_blocks.p7`` never trained yet counted in params and budget matching; at 32 px the
4-stage backbone's last stage was 1x1 (the SSM's ``A_log`` got exactly zero gradient).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.config.load import load_suite
from harness.config.run_config import RunConfig
from harness.families import FAMILIES
from harness.families.base import RunContext
from harness.families.dense.model import extra_levels
from harness.families.vision.config import VisionModelParams
from harness.families.vision.model import build_backbone, check_resolution
from harness.plan.planner import plan
from harness.run.runner import make_context
from harness.run.runner import build_experiment

ROOT = Path(__file__).resolve().parents[2]


def _shipped_vision_configs() -> dict[str, dict]:
    """One config per distinct (family, dataset, variant, resolution, model) over every shipped suite."""
    configs: dict[str, dict] = {}
    seen = set()
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        for spec in plan(load_suite(path), seeds=[0]):
            c = spec.config
            if c["family"] not in ("classification", "dense"):
                continue
            key = json.dumps([c["family"], c["dataset"], c["use"], c["data"]["resolution"], c["model"]], sort_keys=True)
            if key not in seen:
                seen.add(key)
                configs[f"{path.stem}:{c['task']}/{c['variant']}@{c['data']['resolution']}"] = c
    return configs


SHIPPED = _shipped_vision_configs()


def test_shipped_vision_tasks_found():
    tasks = {name.split("/")[0] for name in SHIPPED}
    # quick.yaml's vision_digits builds the same model as claims.yaml's mambaout_digits (first by file name)
    assert {"claims:mambaout_digits", "vision:digits", "vision:shapes_detection", "standard:shapes_detection_128"} <= tasks


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_task_trains_every_parameter(name, tmp_path):
    """The shipped model size, one real batch of 2: every parameter gets a non-zero gradient."""
    config = SHIPPED[name]
    fam = FAMILIES.get(config["family"])()
    ctx = make_context(RunConfig.from_json(config), fam, torch.device("cpu"), tmp_path)
    small = {k: v for k, v in {"n_train": 4, "n_val": 2}.items() if k in type(ctx.data).model_fields}
    ctx = replace(ctx, data=ctx.data.model_copy(update=small), train_batch_size=2)
    torch.manual_seed(0)
    exp = build_experiment(fam, ctx)
    exp.model.train()
    exp.loss(exp.train_batch(0)).backward()
    dead = [n for n, p in exp.model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, f"{name}: parameters that never train: {dead}"


def test_last_stage_of_one_token_is_refused(tmp_path):
    four = dict(depths=[1, 1, 1, 1], dims=[16, 16, 32, 32], head_dim=16)
    with pytest.raises(ValueError, match=r"1x1 grid.*>= 33 for 4 stages"):
        check_resolution(VisionModelParams(**four), 32)
    check_resolution(VisionModelParams(**four), 33)  # ceil(33 / 32) = 2: a 2x2 last stage
    check_resolution(VisionModelParams(depths=[1, 1, 1], dims=[16, 16, 32], head_dim=16), 32)
    with pytest.raises(ValueError, match="patch_size 16"):
        check_resolution(VisionModelParams(**four, layout="isotropic", patch_size=16), 16)
    for family, dataset, data, extra in [
        ("classification", "digits", {"resolution": 32}, {}),
        ("dense", "shapes", {"resolution": 32, "n_train": 2, "n_val": 2}, {"head": "detection"}),
    ]:
        fam = FAMILIES.get(family)()
        ctx = RunContext(
            task=dataset, variant="mamba", use="mamba", dataset=dataset, data=fam.datasets[dataset].params(**data),
            model=fam.ModelParams(**four, **extra), seed=0, device=torch.device("cpu"), cache_dir=tmp_path,
            train_batch_size=2, eval_batch_size=2,
        )
        with pytest.raises(ValueError, match="1x1 grid"):  # the spine checks before budget matching: fails at once
            fam.check_config(ctx.use, ctx.data, ctx.model)
        with pytest.raises(ValueError, match="1x1 grid"):
            build_experiment(fam, ctx)


@pytest.mark.parametrize("resolution,levels", [(64, 0), (96, 1), (100, 1), (128, 1), (192, 2), (256, 2), (800, 2)])
def test_fcos_extra_levels_are_at_least_2x2(resolution, levels):
    """P5 is resolution/32 (padded to a multiple of 32); P6, P7 halve it, rounding up; 1x1 ones are left out."""
    backbone = build_backbone("gated_cnn", VisionModelParams(depths=[1, 1, 1, 1], dims=[16, 16, 32, 32]))
    assert extra_levels(backbone, resolution) == levels
