"""Bring your own model: the example plugin package installed (entry points) and run end to end, broken
plugins as rows, ``validate`` catching them, and the plugin API's errors and labels in process.

The example is installed as pip installs it (``pip install --target``: a dist-info with its entry point)
into a folder only the subprocesses see, so the session's own registries never hold its mixers; the
in-process tests register a mixer of their own and take it out again.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
import torch
from pydantic import Field
from torch import nn

from harness.config.load import load_suite
from harness.errors import ConfigError
from harness.families import FAMILIES, Params
from harness.modules.contract import MixerContractError, MixerSpec
from harness.modules.registry import MIXERS, create_mixer, register_mixer
from harness.plan.planner import plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-mixer"
D, L, B_MEASURE, LAYERS = 16, 16, 2, 1

SUITE = f"""suite: plugin_tiny
seeds: [0]
train: {{steps: 3, batch_size: 8, eval_batch_size: 32, warmup_steps: 1}}
measure: {{batch_size: {B_MEASURE}, warmup_iters: 1, warmup_s: 0.0, min_iters: 2, min_time_s: 0.0, max_iters: 3, cpu_threads: 1}}
tasks:
  - name: recall
    family: sequence
    dataset: mqar
    data: {{seq_len: {L}, num_kv: 2, key_vocab: 8, value_vocab: 8, n_eval: 16}}
    model: {{d_model: {D}, n_layers: {LAYERS}, d_state: 4, n_heads: 2}}
    variants:
      - mamba
      - lstm
      - fftconv
      - {{name: mamba_lstm, use: hybrid, model: {{n_layers: 2, pattern: [mamba, lstm]}}}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed by pip into a folder of its own (built from a copy: no build/ left in
    the repository)."""
    tmp = tmp_path_factory.mktemp("plugin")
    shutil.copytree(EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(tmp / "site"), str(tmp / "src")], check=True, capture_output=True)
    return tmp / "site"


def harness(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HARNESS_CACHE": str(cwd / "cache"), "COLUMNS": "250"}
    return subprocess.run([str(Path(sys.executable).with_name("harness")), *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


def test_example_plugin_runs_beside_the_builtins(site: Path, tmp_path: Path) -> None:
    listed = harness(site, "list", "variants", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    argen = next(line for line in listed.stdout.splitlines() if line.startswith("argen"))
    # the package each plugin came from; argen decodes: only a mixer with init_state/step is its variant
    assert "lstm (plugin: harness-plugin-mixer 0.1.0 (harness_plugin_mixer.mixers))" in argen and "fftconv" not in argen

    (tmp_path / "s.yaml").write_text(SUITE)
    ran = harness(site, "run", "s.yaml", "--out", "out", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    df = pd.read_parquet(tmp_path / "out" / "results.parquet").set_index("variant")
    assert (df["status"] == "ok").all(), df["error"].to_dict()
    # labels: is_ssm from the mixers each variant contains, whatever route it came by
    assert df.loc["lstm", ["mixer", "mixers", "is_ssm"]].tolist() == ["lstm", "lstm", False]
    assert df.loc["mamba_lstm", ["mixer", "mixers", "is_ssm"]].tolist() == ["hybrid", "mamba+lstm", True]
    assert df.loc["lstm", "plugins"] == "harness_plugin_mixer.mixers" and df.loc["mamba", "plugins"] == ""
    assert df.loc["lstm", "backend"] == "plugin:lstm" and df.loc["mamba_lstm", "backend"] == "plugin:lstm+reference"
    # FLOPs: the LSTM's gate products (2 x tokens x its 8 D x D weights) are in the count; the whole model
    # without them (embedding, head) is far below that, so a silent zero for the LSTM fails here
    tokens = int(df.loc["lstm", "measure_batch"]) * L
    assert df.loc["lstm", "flops_fwd"] >= 2 * tokens * 8 * D * D * LAYERS
    assert df.loc["lstm", "flops_skipped"] == ""
    # the FFTs are counted by FlopCounterMode's formulas here; fvcore has none, and says so
    assert "flop_counter:" not in df.loc["fftconv", "flops_skipped"]
    assert "fvcore:aten::fft_rfft" in df.loc["fftconv", "flops_skipped"]
    assert df.loc["fftconv", "flops_fwd"] > 0

    report = harness(site, "report", "out", "--format", "md", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    # the plugin variants are compared in the verdict, each named with its score against its trivial baseline
    verdict = (tmp_path / "out" / "report.md").read_text()
    assert re.search(r"\blstm \d", verdict) and re.search(r"\bfftconv \d", verdict)


def test_broken_plugins_become_rows_and_validate_catches_them(site: Path, tmp_path: Path) -> None:
    # time limits generous for a loaded 2-core machine: the worker's start-up (torch import) counts against --plugin-timeout,
    # and in a full CI run a 30 s limit once stopped the cuda_only run before its device check
    validated = harness(site, "validate", str(EXAMPLE / "broken.yaml"), "--timeout", "10", cwd=tmp_path)
    assert validated.returncode == 2
    err = " ".join(validated.stderr.split())
    assert "broken.yaml:10: variant 'wrong_shape' of task 'mqar'" in err
    assert "returned shape (2, 1, 32) for input (2, 16, 32)" in err
    assert "variant 'raises'" in err and "RuntimeError: this mixer always fails" in err
    assert "variant 'hangs'" in err and "no result after 10 s" in err
    assert "cuda_only" in validated.stdout and ("skipped" in validated.stdout) != torch.cuda.is_available()

    ran = harness(site, "run", str(EXAMPLE / "broken.yaml"), "--out", "out", "--plugin-timeout", "90", "--jobs", "2",
                  cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr[-3000:]  # the suite finished; exit 1 says runs ended error
    df = pd.read_parquet(tmp_path / "out" / "results.parquet").set_index("variant")
    assert df.loc["attention", "status"] == "ok"
    error = df["error"].fillna("")
    assert df.loc["raises", "status"] == "error" and "this mixer always fails" in error["raises"]
    assert "MixerContractError: mixer 'wrong_shape' returned shape (8, 1, 16)" in error["wrong_shape"]
    assert error["hangs"].startswith("timed out after 90 s (plugin code: harness_plugin_mixer.broken)")
    if not torch.cuda.is_available():
        assert "mixer 'cuda_only' runs on cuda only" in error["cuda_only"]


def test_plugin_module_that_fails_to_import_is_a_file_line_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "bad_plugin_mod.py").write_text("raise ValueError('boom at import')\n")
    for module, expected in (("bad_plugin_mod", "ValueError: boom at import"),
                             ("no_such_plugin_mod", "ModuleNotFoundError")):
        path = tmp_path / "s.yaml"
        path.write_text(f"suite: s\nplugins:\n  - harness\n  - {module}\n" + SUITE.split("\n", 1)[1])
        with pytest.raises(ConfigError) as err:
            load_suite(path)
        assert f"s.yaml:4: plugins: plugin module {module!r} failed to import: {expected}" in str(err.value)
    path.write_text("suite: s\nplugins: ['os; import sys']\n" + SUITE.split("\n", 1)[1])
    with pytest.raises(ConfigError, match=r"s.yaml:2"):  # not a module name: refused before any import
        load_suite(path)


class Flip(nn.Module):
    """A test mixer: reverses the tokens (not causal, so no causal family may hold it)."""

    def __init__(self, dim: int, wrong: bool = False):
        super().__init__()
        self.proj, self.wrong = nn.Linear(dim, dim), wrong

    def forward(self, x: torch.Tensor, shape=None) -> torch.Tensor:
        return self.proj(x.flip(1))[:, :1] if self.wrong else self.proj(x.flip(1))


@pytest.fixture
def flip():
    spec = register_mixer(MixerSpec("test_flip", Flip, is_ssm=True, causal="never"))
    yield spec
    MIXERS.remove("test_flip")


def test_registered_mixer_is_a_variant_where_it_fits(flip: MixerSpec) -> None:
    vision, sequence, argen = (FAMILIES.get(n).variants for n in ("classification", "sequence", "argen"))
    assert "test_flip" in vision and vision["test_flip"].is_ssm(None)  # the user's declaration
    assert MIXERS.source("test_flip") == __name__
    assert "test_flip" not in sequence and "not causal" in sequence.unfit("test_flip")
    assert "test_flip" not in argen and "not causal" in argen.unfit("test_flip")


def test_a_plugin_name_never_replaces_a_builtin() -> None:
    with pytest.raises(ValueError, match=r"mixer 'mamba' is already registered by harness \(built in\); plugin module "
                                         + __name__.replace(".", r"\.")):
        register_mixer(MixerSpec("mamba", Flip, is_ssm=False, causal="never"))


def test_contract_breach_names_the_mixer(flip: MixerSpec) -> None:
    x = torch.randn(2, 6, 8)
    assert create_mixer("test_flip", 8)(x).shape == x.shape
    with pytest.raises(MixerContractError, match=r"mixer 'test_flip' returned shape \(2, 1, 8\) for input \(2, 6, 8\)"):
        create_mixer("test_flip", 8, wrong=True)(x)


def test_hybrid_is_ssm_only_with_an_ssm_in_its_pattern(flip: MixerSpec) -> None:
    fam = FAMILIES.get("sequence")
    params = fam.ModelParams
    assert fam.is_ssm("hybrid", params(pattern=["mamba", "attention"]))
    assert not fam.is_ssm("hybrid", params(pattern=["attention", "gated_cnn"]))
    assert fam.is_ssm("hybrid", params(pattern=["attention", "test_flip"]))  # a plugin's declared is_ssm counts


class ParityData(Params):
    seq_len: int = Field(12, ge=2)
    n_eval: int = Field(16, ge=1)
    vocab_size: int = 2
    n_outputs: int = 2


def parity(p: ParityData, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Bits and their running parity (a registered dataset in the sequence family's ``dataset_contract``)."""
    bits = torch.randint(0, 2, (n, p.seq_len), generator=gen)
    return bits, bits.cumsum(1) % 2


def test_a_registered_dataset_validates_plans_and_trains(tmp_path: Path) -> None:
    from harness.extend import DatasetSpec, register_dataset
    from harness.run.runner import build_experiment, make_context
    from harness.run.train import train

    fam_cls = FAMILIES.get("sequence")
    register_dataset("sequence", "test_parity", DatasetSpec(ParityData, "running parity of bits", load=parity))
    try:
        assert fam_cls.datasets["test_parity"].source == __name__
        path = tmp_path / "s.yaml"
        path.write_text(SUITE.replace("mqar", "test_parity").replace("{seq_len: 16, num_kv: 2, key_vocab: 8, value_vocab: 8, n_eval: 16}",
                                                                     "{seq_len: 12}")
                        .split("    variants:")[0] + "    variants: [gated_cnn]\n")
        spec, = plan(load_suite(path), device="cpu")
        fam = fam_cls()
        exp = build_experiment(fam, make_context(spec.run, fam, torch.device("cpu"), tmp_path / "cache"))
        tokens, targets = exp.data
        assert tokens.shape == (16, 12) and torch.equal(targets, tokens.cumsum(1) % 2)
        assert train(exp, spec.run.train, torch.device("cpu")).steps == 3
        with pytest.raises(ValueError, match="dataset 'test_parity' of family 'sequence' is already registered by plugin module"):
            register_dataset("sequence", "test_parity", DatasetSpec(ParityData, "again", load=parity))
        with pytest.raises(ValueError, match="family 'pde' takes no registered datasets"):
            register_dataset("pde", "test_parity", DatasetSpec(ParityData, "x", load=parity))
    finally:
        del fam_cls.datasets["test_parity"]


class PrefixMean(nn.Module):
    """A test mixer that decodes: each token becomes a projection of the mean of the tokens so far (causal),
    or of all tokens; ``step`` keeps the running sum."""

    def __init__(self, dim: int, causal: bool = False):
        super().__init__()
        self.proj, self.causal = nn.Linear(dim, dim), causal

    def forward(self, x: torch.Tensor, shape=None) -> torch.Tensor:
        count = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)[:, None]
        mean = x.cumsum(1) / count if self.causal else x.mean(1, keepdim=True).expand_as(x)
        return self.proj(mean)

    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype):
        return torch.zeros(batch_size, self.proj.in_features, device=device, dtype=dtype), 0

    def step(self, x_t: torch.Tensor, state):
        total, n = state
        total = total + x_t
        return self.proj(total / (n + 1)), (total, n + 1)


SLOTTED = [name for name in FAMILIES.names() if FAMILIES.get(name).variants.slot is not None]


@pytest.fixture
def prefix_mean():
    spec = register_mixer(MixerSpec("test_prefix_mean", PrefixMean, is_ssm=False, causal="option", decode=True))
    yield spec
    MIXERS.remove("test_prefix_mean")


@pytest.mark.parametrize("family", SLOTTED)
def test_a_registered_mixer_runs_in_every_family_that_swaps_a_mixer(prefix_mean, family: str, tmp_path: Path) -> None:
    """The family's tiny task with the plugin mixer as its variant: it validates, plans, is built into the
    family's skeleton (made causal where the family is), trains a step, evaluates, and its row says is_ssm
    False."""
    from harness.run.runner import build_experiment, make_context, spec_columns
    from harness.run.train import train

    fam_cls = FAMILIES.get(family)
    suite = {"suite": "slot", "train": {"steps": 1, "batch_size": 2, "eval_batch_size": 4, "warmup_steps": 0},
             "measure": {"flops": False, "latency": False, "memory": False, "batch_size": 2},
             "tasks": [{"name": family, "family": family, "dataset": fam_cls.tiny.dataset, "data": fam_cls.tiny.data,
                        "model": fam_cls.tiny.model, "variants": ["test_prefix_mean"]}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    spec, = plan(load_suite(tmp_path / "s.yaml"), device="cpu")
    fam = fam_cls()
    exp = build_experiment(fam, make_context(spec.run, fam, torch.device("cpu"), tmp_path / "cache"))
    placed = [m for m in exp.model.modules() if isinstance(m, PrefixMean)]
    assert placed and all(m.causal == bool(fam_cls.causal) for m in placed)
    assert train(exp, spec.run.train, torch.device("cpu")).steps == 1
    exp.model.eval()
    with torch.no_grad():  # argen samples here, token by token through the mixer's init_state/step
        metrics = exp.evaluate()
    assert any(fam_cls.metrics[m].primary and math.isfinite(v) for m, v in metrics.items())
    columns = spec_columns(spec.run, spec.run_id)
    assert (columns["mixer"], columns["is_ssm"], columns["plugins"]) == ("test_prefix_mean", False, __name__)
