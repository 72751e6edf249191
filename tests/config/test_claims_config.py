"""Claims (expect:) in a suite: every mistake is a ConfigError at the offending FILE:LINE, and suite.json keeps them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config.claims import Claim
from harness.config.load import load_suite
from harness.errors import ConfigError
from harness.plan.describe import describe_suite

TASK = """suite: s
seeds: [0, 1]
variants: [mamba, gated_cnn]
tasks:
  - name: copy
    family: sequence
    dataset: selective_copy
    data: {{num_tokens: 4, vocab: 8}}
    model: {{d_model: 32, n_layers: 1}}
    sweep: {{data.seq_len: [32, 64], train.lr: [0.001, 0.003]}}
    ablate:
      base: mamba
      variants: [{{name: lti, model: {{selective: false}}}}]
    expect:
      - id: first
        claim: selection beats LTI
        source: Mamba 2312.00752 sec 4.1
        compare: {{better: mamba, worse: lti, margin: 0.05}}
{extra}"""

GOOD = """      - id: needed
        claim: SSM needed at 64
        source: MambaOut 2405.07992
        verdict: SSM needed
        at: {data.seq_len: 64}
      - id: flat
        claim: params do not grow with L
        source: x
        trend: {variant: mamba, metric: params, over: data.seq_len, shape: flat, tolerance: 1}
      - id: alt
        claim: diverges or its latency is linear
        source: x
        any_of:
          - status: {variant: lti, is: diverged, fraction: 0.5, where: {train.lr: 0.003}}
          - scaling: {variant: gated_cnn, metric: latency_ms_p50, over: data.seq_len, exponent: [0.5, 1.5]}
"""

CASES = {  # name: (claims appended to the task, marker on the expected line, expected fragment)
    "unknown_variant": ("      - id: x\n        claim: c\n        source: s\n        compare: {better: mamab, worse: lti}\n",
                        "better: mamab", "compare.better: unknown variant 'mamab' in task 'copy' (did you mean 'mamba'?)"),
    "unknown_metric": ("      - id: x\n        claim: c\n        source: s\n        compare:\n          better: mamba\n"
                       "          worse: lti\n          metric: acuracy\n",
                       "metric: acuracy", "compare.metric: unknown metric 'acuracy' for family 'sequence' (did you mean 'accuracy'?)"),
    "unknown_sweep_key": ("      - id: x\n        claim: c\n        source: s\n        trend:\n          variant: mamba\n"
                          "          over: data.seqlen\n          shape: increasing\n",
                          "over: data.seqlen", "trend.over: 'data.seqlen' is not a sweep key of task 'copy' (did you mean 'data.seq_len'?)"),
    "two_checks": ("      - id: x\n        claim: c\n        source: s\n        verdict: SSM needed\n"
                   "        compare: {better: mamba, worse: lti}\n",
                   "- id: x", "a claim has exactly one check (verdict, compare, trend, status, scaling, any_of); this one has verdict and compare"),
    "no_check": ("      - id: x\n        claim: c\n        source: s\n", "- id: x", "this one has none"),
    "duplicate_id": ("      - id: first\n        claim: c\n        source: s\n        verdict: SSM needed\n",
                     "- id: first\n        claim: c", "duplicate claim id 'first' (first at "),
    "where_value": ("      - id: x\n        claim: c\n        source: s\n        compare:\n          better: mamba\n"
                    "          worse: lti\n          where: {data.seq_len: 48}\n",
                    "where: {data.seq_len: 48}", "no sweep point of task 'copy' has data.seq_len = 48 (its values: 32, 64)"),
    "where_key": ("      - id: x\n        claim: c\n        source: s\n        status:\n          variant: mamba\n"
                  "          is: oom\n          where: {train.learning_rate: 0.001}\n",
                  "where: {train.learning_rate", "'train.learning_rate' is not a sweep key of task 'copy'"),
    "at_value": ("      - id: x\n        claim: c\n        source: s\n        verdict: SSM needed\n        at: {data.seq_len: 128}\n",
                 "at: {data.seq_len: 128}", "at: no sweep point of task 'copy' has data.seq_len = 128"),
    "where_is_over": ("      - id: x\n        claim: c\n        source: s\n        scaling:\n          variant: mamba\n"
                      "          metric: latency_ms_p50\n          over: data.seq_len\n          exponent: [0.5, 1.5]\n"
                      "          where: {data.seq_len: 32}\n",
                      "where: {data.seq_len: 32}", "'data.seq_len' is the swept key the check reads"),
    "unknown_key": ("      - id: x\n        claim: c\n        source: s\n        compre: {better: mamba, worse: lti}\n",
                    "compre:", "unknown key 'compre' in tasks.expect (did you mean 'compare'?)"),
    "at_without_verdict": ("      - id: x\n        claim: c\n        source: s\n        compare: {better: mamba, worse: lti}\n"
                           "        at: {data.seq_len: 32}\n", "- id: x", "at: names the size point of a verdict check"),
    "flat_needs_tolerance": ("      - id: x\n        claim: c\n        source: s\n        trend: {variant: mamba, over: data.seq_len, shape: flat}\n",
                             "shape: flat", "shape flat needs tolerance > 0"),
    "exponent_order": ("      - id: x\n        claim: c\n        source: s\n        scaling: {variant: mamba, over: data.seq_len, exponent: [2, 1]}\n",
                       "exponent: [2, 1]", "exponent [2.0, 1.0] must be [LO, HI] with LO < HI"),
    "bad_status": ("      - id: x\n        claim: c\n        source: s\n        status: {variant: mamba, is: crashed}\n",
                   "is: crashed", "Input should be 'ok', 'diverged' or 'oom'"),
    "any_of_alternative": ("      - id: x\n        claim: c\n        source: s\n        any_of:\n          - verdict: SSM needed\n"
                           "          - trend: {variant: gcnn, over: data.seq_len, shape: increasing}\n",
                           "variant: gcnn", "trend.variant: unknown variant 'gcnn' in task 'copy' (did you mean 'gated_cnn'?)"),
}


def _line(text: str, marker: str) -> int:
    return text[: text.index(marker)].count("\n") + 1


@pytest.mark.parametrize("case", sorted(CASES))
def test_claim_errors_are_located(case: str, tmp_path: Path) -> None:
    extra, marker, fragment = CASES[case]
    text = TASK.format(extra=extra)
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert fragment in info.value.message, info.value.message
    assert info.value.line == _line(text, marker), str(info.value)


def test_good_claims_load_and_suite_json_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(TASK.format(extra=GOOD))
    suite = load_suite(path)
    claims = suite.tasks[0].entry.expect
    assert [c.id for c in claims] == ["first", "needed", "flat", "alt"]
    assert [c.kind for c in claims] == ["compare", "verdict", "trend", "any_of"]
    stored = json.loads(json.dumps(describe_suite(suite).to_json()))["tasks"]["copy"]["claims"]
    assert [Claim.model_validate(s["claim"]) for s in stored] == list(claims)  # read back as written
    assert stored[2]["metrics"] == {"params": {"higher_is_better": False, "unit": ""}}
    assert stored[3]["metrics"]["latency_ms_p50"]["higher_is_better"] is False
    assert stored[3]["claim"]["any_of"][0]["status"]["is"] == "diverged"


def test_claims_do_not_change_run_ids(tmp_path: Path) -> None:
    from harness.plan.planner import plan

    with_claims, without = tmp_path / "a.yaml", tmp_path / "b.yaml"
    with_claims.write_text(TASK.format(extra=GOOD))
    text = TASK.format(extra="")
    without.write_text(text[: text.index("    expect:")])
    assert [s.run_id for s in plan(load_suite(with_claims))] == [s.run_id for s in plan(load_suite(without))]


def test_family_columns_are_claimable(tmp_path: Path) -> None:
    """A column a family declares beyond its metrics (AR decode costs) may be named, with its direction."""
    path = tmp_path / "suite.yaml"
    path.write_text("suite: s\nvariants: [aim, transformer]\ntasks:\n  - name: gen\n    family: argen\n    dataset: digits\n"
                    "    model: {d_model: 32, depth: 1, decode_batch_sizes: [1]}\n    sweep: {model.decode_len: [64, 256]}\n"
                    "    expect:\n      - id: aim-decode\n        claim: constant per-token decode cost\n        source: AiM 2408.12245\n"
                    "        scaling: {variant: aim, metric: decode_ms_per_token_b1, over: model.decode_len, exponent: [-0.2, 0.2]}\n")
    meta = describe_suite(load_suite(path)).to_json()
    assert meta["tasks"]["gen"]["claims"][0]["metrics"] == {"decode_ms_per_token_b1": {"higher_is_better": False, "unit": "ms"}}


def test_cli_validate_exit_2_at_the_claim_line(tmp_path: Path) -> None:
    extra, marker, fragment = CASES["where_value"]
    text = TASK.format(extra=extra)
    (tmp_path / "suite.yaml").write_text(text)
    proc = subprocess.run([str(Path(sys.executable).with_name("harness")), "validate", "suite.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "HARNESS_CACHE": str(tmp_path / "cache")})
    out = " ".join((proc.stderr + proc.stdout).split())
    assert proc.returncode == 2 and "Traceback" not in out
    assert f"suite.yaml:{_line(text, marker)}: copy.expect: compare.where: no sweep point" in out
