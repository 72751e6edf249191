"""The family contract over the registry, as timm's tests parametrize over its models: every family x
variant at the family's ``tiny`` config validates as a suite, plans, builds, runs a forward on its example
inputs, trains a step, evaluates to declared metrics, and its row says ``is_ssm`` exactly when the model
holds an SSM. A new variant is one registration in its family's table (the last test)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from harness.config.load import load_suite
from harness.families import FAMILIES
from harness.families.restoration.assm import ASSM
from harness.families.theory.model import SelectiveSSMClassifier
from harness.families.variants import VariantSpec
from harness.modules.registry import MIXERS, is_ssm
from harness.plan.planner import plan
from harness.run.runner import build_experiment, execute_run, make_context, spec_columns
from harness.run.train import train

CPU = torch.device("cpu")
# what an SSM is, for checking a row against the model: the registered SSM mixers, and the families' own
SSM_MODULES = (*(MIXERS.get(n) for n in MIXERS.names() if is_ssm(n)), ASSM, SelectiveSSMClassifier)
CASES = [(family, use) for family in FAMILIES.names() for use in FAMILIES.get(family).variants]


def tiny_suite(path: Path, families: list[str]) -> Path:
    """One task per family at its tiny config, with every variant it has; one step of training."""
    tasks = []
    for name in families:
        fam = FAMILIES.get(name)
        variants = [{"name": use, "model": fam.tiny.variants.get(use, {})} for use in fam.variants]
        tasks.append({"name": name, "family": name, "dataset": fam.tiny.dataset, "data": fam.tiny.data,
                      "model": fam.tiny.model, "variants": variants})
    suite = {"suite": "tiny", "train": {"steps": 1, "batch_size": 2, "eval_batch_size": 8, "warmup_steps": 0},
             "measure": {"flops": False, "latency": False, "memory": False, "batch_size": 2}, "tasks": tasks}
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("contract")
    specs = plan(load_suite(tiny_suite(folder / "tiny.yaml", FAMILIES.names())), device="cpu")
    return {(s.run.family, s.run.use): s for s in specs}, folder / "cache"


@pytest.mark.parametrize("family,use", CASES, ids=[f"{f}/{u}" for f, u in CASES])
def test_every_variant_keeps_the_contract(planned, family, use):
    specs, cache = planned
    spec = specs[(family, use)]
    fam = FAMILIES.get(family)()
    ctx = make_context(spec.run, fam, CPU, cache)
    exp = build_experiment(fam, ctx)
    outputs = exp.model(*fam.example_inputs(ctx, 2, exp.data))
    assert all(torch.isfinite(o.float()).all() for o in (outputs if isinstance(outputs, tuple) else (outputs,)))
    result = train(exp, spec.run.train, CPU)
    assert result.steps == 1 and math.isfinite(result.final_loss)
    exp.model.eval()
    with torch.no_grad():
        metrics = exp.evaluate()
    assert set(metrics) <= set(type(fam).metrics)
    assert any(type(fam).metrics[m].primary and not math.isnan(v) for m, v in metrics.items())
    extras = exp.row_extras()
    assert extras["seq_len"] > 0 and extras["d_model"] > 0
    holds_ssm = any(isinstance(m, SSM_MODULES) for m in exp.model.modules())
    assert spec_columns(spec.run, spec.run_id)["is_ssm"] == holds_ssm


def test_a_new_variant_is_one_registration(tmp_path):
    """One ``register`` call: the variant validates, plans, runs, lists and is an SSM by what it contains."""
    from typer.testing import CliRunner

    from harness import cli

    table = FAMILIES.get("sequence").variants
    table.register(VariantSpec("mamba_d4", mixer="mamba", options=table["mamba"].options, defaults={"d_state": 4}))
    try:
        path = tiny_suite(tmp_path / "s.yaml", ["sequence"])
        (spec,) = plan(load_suite(path), only="*/mamba_d4", device="cpu")
        assert spec.run.model["d_state"] == 4  # the table's default, under the tiny config's d_state: 4
        row = execute_run(spec.run, spec.run_id, tmp_path / "cache")
        assert row["status"] == "ok", row["error"]
        assert (row["mixer"], row["is_ssm"]) == ("mamba_d4", True) and "accuracy" in row
        assert "mamba_d4" in CliRunner().invoke(cli.app, ["list", "variants"]).output
    finally:
        table.unregister("mamba_d4")
    assert "mamba_d4" not in table
