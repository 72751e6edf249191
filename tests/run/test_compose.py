"""The spine composes every run alike: it checks the config before anything is built, and the model's
initialisation depends on the run's seed alone (not on what budget matching or data loading drew)."""

from __future__ import annotations

import pytest
import torch

from harness.families import FAMILIES, RunContext
from harness.run.runner import build_experiment


def _ctx(tmp_path, family: str, use: str, dataset: str, data: dict, model: dict) -> RunContext:
    fam = FAMILIES.get(family)
    return RunContext(task="t", variant=use, use=use, dataset=dataset, data=fam.datasets[dataset].params(**data),
                      model=fam.ModelParams(**{**fam.variant_defaults(use), **model}), seed=3,
                      device=torch.device("cpu"), cache_dir=tmp_path, train_batch_size=4, eval_batch_size=8)


CASES = [  # the two families that used to build their model from wherever the RNG stood
    ("sequence", "attention", "majority", {"seq_len": 8, "n_eval": 8}, {"d_model": 16, "n_layers": 1}),
    ("theory", "softmax_attention", "majority", {"seq_len": 8, "n_train": 8, "n_test": 8}, {"d_model": 8}),
]


@pytest.mark.parametrize("family,use,dataset,data,model", CASES)
def test_the_model_init_depends_on_the_seed_alone(tmp_path, family, use, dataset, data, model):
    ctx = _ctx(tmp_path, family, use, dataset, data, model)
    fresh = build_experiment(FAMILIES.get(family)(), ctx).model.state_dict()
    torch.manual_seed(123)
    FAMILIES.get(family)().build_model(ctx.with_model(d_model=2 * model["d_model"]))  # as budget matching's trials do
    torch.rand(1000)
    after_trials = build_experiment(FAMILIES.get(family)(), ctx).model.state_dict()  # the data comes from the cache now
    assert all(torch.equal(fresh[k], after_trials[k]) for k in fresh)


def test_the_config_is_checked_before_data_is_loaded(tmp_path, monkeypatch):
    fam = FAMILIES.get("sequence")()
    ctx = _ctx(tmp_path, "sequence", "hybrid", "majority", {"seq_len": 8}, {"d_model": 16})
    monkeypatch.setattr(type(fam), "load_data", lambda self, c: pytest.fail("data loaded before the check"))
    with pytest.raises(ValueError, match="variant 'hybrid' needs model.pattern"):
        build_experiment(fam, ctx)
