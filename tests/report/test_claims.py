"""Claims on synthetic result tables with planted effects: every check kind gives each of reproduced,
contradicted and undecided where the data say so; claims and verdicts never move each other."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import synthetic
from harness.report import claims as C
from harness.report.load import normalize, parse_suite
from harness.report.sequential import proportion_test
from harness.report.verdict import task_verdicts, verdict_table

R, X, U = C.REPRODUCED, C.CONTRADICTED, C.UNDECIDED
THEORY_EXTRA = {"gen_gap": {"higher_is_better": False, "unit": "fraction", "primary": False}}


def _evaluate(rows, claims, entry=None, task="copy", more_tasks=None):
    entry = dict(entry or synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02))
    entry["claims"] = [synthetic.claim(f"c{i}", **c) if "claim" not in c else c for i, c in enumerate(claims)]
    suite = parse_suite({"suite": "s", "tasks": {task: entry, **(more_tasks or {})}})
    return C.evaluate_claims(normalize(pd.DataFrame(rows), suite), suite)


def _one(rows, check, **kw):
    (r,) = _evaluate(rows, [check], **kw)
    return r


def _copy(seeds=8, **kw):
    return synthetic.copy_rows(np.random.default_rng(0), seeds=seeds, **kw)


# ------------------------------------------------------------------------------------------------ compare
@pytest.mark.parametrize("check, seeds, outcome", [
    ({"better": "mamba", "worse": "lti", "margin": 0.1}, 8, R),           # planted +0.3 > 0.1
    ({"better": "lti", "worse": "mamba", "margin": -0.02}, 8, X),         # "lti within 0.02 of mamba": 0.3 behind
    ({"better": "mamba", "worse": "lti", "margin": 0.3}, 8, U),           # the effect sits on the margin
    ({"better": "mamba", "worse": "lti", "margin": 0.1}, 3, U),           # n too small
])
def test_compare(check, seeds, outcome):
    r = _one(_copy(seeds), {"compare": check})
    assert r.outcome == outcome, r.check
    c = r.check
    assert c.test == "signed-rank" and c.n == seeds
    sign = 1 if check["better"] == "mamba" else -1
    assert abs(c.estimate - sign * 0.3) < 0.05 and c.ci_low < c.estimate < c.ci_high
    if outcome == U and seeds == 3:
        assert "n too small" in c.advice and c.seeds_needed == 5
        (item,) = C.claim_open_items([r])
        assert item.claim == "c0" and item.variants == ("lti", "mamba") and item.seeds_needed == 5 and item.n == 3
        assert item.describe().startswith("claim c0: copy: seeds for lti, mamba (n=3; about 5 seeds)")
    if outcome == U and seeds == 8:
        assert "more seeds will not help" in c.advice
        (item,) = C.claim_open_items([r])
        assert item.variants == () and "more seeds will not help" in item.describe()


def test_compare_follows_the_metric_direction_and_takes_costs():
    rows = _copy()  # latency_ms_p50 1.0 for every variant; make mamba slower
    for row in rows:
        row["latency_ms_p50"] = (2.0 if row["variant"] == "mamba" else 1.0) + 0.01 * row["seed"] * (row["variant"] == "mamba")
    assert _one(rows, {"compare": {"better": "gated_cnn", "worse": "mamba", "metric": "latency_ms_p50", "margin": 0.5}}).outcome == R
    assert _one(rows, {"compare": {"better": "mamba", "worse": "gated_cnn", "metric": "latency_ms_p50"}}).outcome == X


def test_compare_must_hold_at_every_size_point():
    rng = np.random.default_rng(4)
    rows = []
    for L, gap in ((16, 0.3), (64, 0.3), (256, -0.1)):  # mamba ahead at two sizes, behind at the third
        for row in synthetic.copy_rows(rng, mamba=0.5 + gap, lti=0.5):
            row["sweep"] = f'{{"data.seq_len": {L}}}'
            rows.append(row)
    entry = synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02, sweep_keys=["data.seq_len"])
    everywhere = {"compare": {"better": "mamba", "worse": "lti", "margin": 0.05}}
    r = _one(rows, everywhere, entry=entry)
    assert r.outcome == X and "failing of 3 cells" in r.check.evidence and "seq_len=256" in r.check.evidence
    at_64 = {"compare": {"better": "mamba", "worse": "lti", "margin": 0.05, "where": {"data.seq_len": 64}}}
    assert _one(rows, at_64, entry=entry).outcome == R


def test_an_ablation_base_kept_in_another_task_is_found():
    """include_base: false: the ablation rows name their base and the task holding its runs."""
    rows = []
    for row in _copy():
        if row["variant"] == "mamba":
            rows.append({**row, "task": "main", "ablation": ""})
        elif row["variant"] == "lti":
            rows.append({**row, "ablation_base": "mamba", "ablation_base_task": "main"})
    entry = synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)
    r = _one(rows, {"compare": {"better": "mamba", "worse": "lti", "margin": 0.1}},
             more_tasks={"main": synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)}, entry=entry)
    assert r.outcome == R and r.check.n == 8


# -------------------------------------------------------------------------------------------------- trend
def _sweep_rows(metric, value, seeds=8, lengths=(64, 128, 256, 512, 1024), variant="ssm", sweep=None, **kw):
    """``metric = value(L, seed, rng)`` for each seed and sequence length (plus the fixed ``sweep`` keys)."""
    rng = np.random.default_rng(1)
    kw.setdefault("is_ssm", True)
    return [synthetic.base_row("gap", "theory", variant, s, {"data.seq_len": L, **(sweep or {})},
                               **{metric: value(L, s, rng)}, **kw) for s in range(seeds) for L in lengths]


def _theory_entry():
    return synthetic.task_entry("theory", "test_acc", True, "fraction", 0.02, sweep_keys=["data.seq_len"],
                                extra=THEORY_EXTRA)


@pytest.mark.parametrize("slope, shape, tolerance, outcome", [
    (0.02, "increasing", 0.005, R),
    (0.02, "decreasing", 0.005, X),
    (0.02, "flat", 0.005, X),    # the slope's CI lies outside ±tolerance
    (0.0, "flat", 0.005, R),
    (0.0, "increasing", 0.0, U),  # no slope: neither shown above 0 nor below it
    (0.005, "flat", 0.005, U),   # exactly at the tolerance
])
def test_trend_per_doubling(slope, shape, tolerance, outcome):
    rows = _sweep_rows("gen_gap", lambda L, s, rng: 0.05 + slope * np.log2(L) + rng.normal(0, 0.002))
    check = {"trend": {"variant": "ssm", "metric": "gen_gap", "over": "data.seq_len", "shape": shape,
                       "tolerance": tolerance}}
    r = _one(rows, check, entry=_theory_entry(), task="gap")
    assert r.outcome == outcome, r.check
    assert abs(r.check.estimate - slope) < 0.002 and r.check.n == 8 and r.check.test == "signed-rank"
    assert "per doubling of data.seq_len" in r.check.evidence


def test_trend_on_a_linear_scale_and_a_factor_label():
    """scale: linear reads the slope per unit; a studied factor (variant label ssm[s_A=...]) answers to ssm + where."""
    rows = []
    for s_a, slope in ((-0.1, 0.0), (0.1, 1e-4)):
        rows += _sweep_rows("gen_gap", lambda L, s, rng: 0.01 + slope * L + rng.normal(0, 1e-4), sweep={"model.s_A": s_a})
    entry = _theory_entry()
    entry["factor_keys"] = ["model.s_A"]
    grows = {"trend": {"variant": "ssm", "metric": "gen_gap", "over": "data.seq_len", "shape": "increasing",
                       "tolerance": 5e-5, "scale": "linear", "where": {"model.s_A": 0.1}}}
    flat = {"trend": {"variant": "ssm", "metric": "gen_gap", "over": "data.seq_len", "shape": "flat",
                      "tolerance": 5e-5, "scale": "linear", "where": {"model.s_A": -0.1}}}
    r_grow, r_flat = _evaluate(rows, [grows, flat], entry=entry, task="gap")
    assert (r_grow.outcome, r_flat.outcome) == (R, R)
    assert "per unit of data.seq_len" in r_grow.check.evidence


def test_trend_with_one_point_per_seed_asks_for_a_wider_sweep():
    rows = _sweep_rows("gen_gap", lambda L, s, rng: 0.05, lengths=(64,))
    r = _one(rows, {"trend": {"variant": "ssm", "metric": "gen_gap", "over": "data.seq_len", "shape": "flat",
                              "tolerance": 0.01}}, entry=_theory_entry(), task="gap")
    assert r.outcome == U and "a wider sweep" in r.check.advice
    (item,) = C.claim_open_items([r])
    assert item.variants == () and "wider sweep" in item.why


# ------------------------------------------------------------------------------------------------ scaling
@pytest.mark.parametrize("exponent, bounds, outcome", [
    (1.0, (0.8, 1.2), R),
    (1.0, (1.5, 2.5), X),
    (1.2, (0.8, 1.2), U),  # on the bound
])
def test_scaling_over_seeds(exponent, bounds, outcome):
    rows = _sweep_rows("latency_ms_p50", lambda L, s, rng: 1e-3 * L ** exponent * np.exp(rng.normal(0, 0.02)),
                       variant="gated_cnn", is_ssm=False)
    r = _one(rows, {"scaling": {"variant": "gated_cnn", "metric": "latency_ms_p50", "over": "data.seq_len",
                                "exponent": list(bounds)}}, entry=_theory_entry(), task="gap")
    assert r.outcome == outcome and abs(r.check.estimate - exponent) < 0.02 and r.check.test == "signed-rank"


def test_scaling_of_a_cost_timed_on_one_seed_regresses_over_its_points():
    """measure.latency_seeds: [0]: one series; the exponent's test is the regression's t over its points."""
    def lat(L, s, rng):
        return 1e-3 * L * np.exp(rng.normal(0, 0.01)) if s == 0 else np.nan
    rows = _sweep_rows("latency_ms_p50", lat, variant="gated_cnn", is_ssm=False)
    check = {"scaling": {"variant": "gated_cnn", "metric": "latency_ms_p50", "over": "data.seq_len",
                         "exponent": [0.9, 1.1]}}
    r = _one(rows, check, entry=_theory_entry(), task="gap")
    assert r.outcome == R and r.check.test == "OLS t (one seed, 5 points)" and r.check.n == 5
    rows3 = _sweep_rows("latency_ms_p50", lambda L, s, rng: 1e-3 * L * np.exp(rng.normal(0, 0.3)) if s == 0 else np.nan,
                        variant="gated_cnn", is_ssm=False, lengths=(64, 128, 256))
    r3 = _one(rows3, check, entry=_theory_entry(), task="gap")
    assert r3.outcome == U and "wider or denser sweep of data.seq_len" in r3.check.advice and r3.check.seeds_needed is None


# ------------------------------------------------------------------------------------------------- status
def _status_rows(statuses, variant="ssm"):
    return [synthetic.base_row("gap", "theory", variant, s, {"model.s_A": 0.1}, status=st, test_acc=np.nan,
                               is_ssm=True) for s, st in enumerate(statuses)]


@pytest.mark.parametrize("statuses, fraction, outcome", [
    (["diverged"] * 8, 1.0, R),
    (["diverged"] * 7 + ["ok"], 1.0, X),       # one seed that trained contradicts "every seed diverges"
    (["diverged"] * 3, 1.0, U),                # all diverged, but 3 seeds cannot tell (2^-3 > 0.05)
    (["diverged"] * 8 + ["error"] * 3, 1.0, R),  # errors say nothing about the model: left out
    (["diverged"] * 8, 0.5, R),
    (["ok"] * 7 + ["diverged"], 0.5, X),       # P(X <= 1 | 8, 1/2) = 0.035
    (["ok", "diverged"] * 4, 0.5, U),
])
def test_status(statuses, fraction, outcome):
    entry = _theory_entry()
    entry["factor_keys"] = ["model.s_A"]
    r = _one(_status_rows(statuses), {"status": {"variant": "ssm", "is": "diverged", "fraction": fraction,
                                                 "where": {"model.s_A": 0.1}}}, entry=entry, task="gap")
    assert r.outcome == outcome, r.check
    if "error" in statuses:
        assert "3 runs ended in error and are left out" in r.check.evidence
    if statuses == ["diverged"] * 3:
        assert r.check.seeds_needed == 5 and "every seed so far (3) shows it" in r.check.advice


# ------------------------------------------------------------------------------------------------ verdict
@pytest.mark.parametrize("claimed, seeds, outcome", [
    ("SSM needed", 8, R), ("SSM not needed", 8, X), ("SSM needed", 3, U),
])
def test_verdict(claimed, seeds, outcome):
    r = _one(_copy(seeds), {"verdict": claimed})
    assert r.outcome == outcome, r.check
    assert "mamba ahead of gated_cnn" in r.check.evidence
    if outcome == U:
        assert r.check.seeds_needed and r.check.open and "mamba" in r.check.open[0][1]


def test_verdict_at_one_size_point():
    rng = np.random.default_rng(5)
    rows = []
    for L, gcnn in ((16, 0.8), (64, 0.13)):  # the gated CNN keeps up at 16 tokens, not at 64
        for row in synthetic.copy_rows(rng, mamba=0.8, gated_cnn=gcnn, noise=0.01):
            rows.append({**row, "sweep": f'{{"data.seq_len": {L}}}'})
    entry = synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.05, sweep_keys=["data.seq_len"])
    checks = [{"verdict": "SSM not needed", "at": {"data.seq_len": 16}}, {"verdict": "SSM needed", "at": {"data.seq_len": 64}},
              {"verdict": "SSM needed"}, {"verdict": "SSM not needed"}]
    assert [r.outcome for r in _evaluate(rows, checks, entry=entry)] == [R, R, R, X]


# ------------------------------------------------------------------------------------------------- any_of
@pytest.mark.parametrize("alternatives, outcome", [
    ([{"status": {"variant": "mamba", "is": "diverged"}}, {"compare": {"better": "mamba", "worse": "lti", "margin": 0.1}}], R),
    ([{"status": {"variant": "mamba", "is": "diverged"}}, {"compare": {"better": "lti", "worse": "mamba"}}], X),
    ([{"status": {"variant": "mamba", "is": "diverged"}}, {"compare": {"better": "mamba", "worse": "lti", "margin": 0.3}}], U),
])
def test_any_of(alternatives, outcome):
    r = _one(_copy(), {"any_of": alternatives})
    assert r.outcome == outcome
    assert r.check.evidence.startswith("alternative ")


# ----------------------------------------------------------------------------------- their own family
def _with_claims(dirpath, claims):
    rng = np.random.default_rng(7)
    path = synthetic.demo_results(dirpath)
    rows = pd.read_parquet(path / "results.parquet").to_dict("records") + synthetic.copy_rows(rng)
    entry = synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)
    entry["claims"] = claims
    tasks = {**json.loads((path / "suite.json").read_text())["tasks"], "copy": entry}
    return synthetic.write(path, rows, tasks)


def test_verdicts_are_identical_with_and_without_claims(tmp_path):
    from harness.report.load import load_results

    claims = [synthetic.claim("a", verdict="SSM not needed"), synthetic.claim("b", compare={"better": "lti", "worse": "mamba"}),
              synthetic.claim("c", status={"variant": "mamba", "is": "oom"})]
    without = verdict_table(task_verdicts(*load_results(_with_claims(tmp_path / "a", []))))
    df, suite = load_results(_with_claims(tmp_path / "b", claims))
    assert len(C.evaluate_claims(df, suite)) == 3
    pd.testing.assert_frame_equal(verdict_table(task_verdicts(df, suite)), without)


def test_the_verdicts_tests_never_change_a_claims_outcome(tmp_path):
    """More tasks (more comparisons in the verdicts' Holm family) leave every claim's p-values as they were."""
    from harness.report.load import load_results

    claims = [synthetic.claim("needed", verdict="SSM needed"), synthetic.claim("sel", compare={"better": "mamba", "worse": "lti", "margin": 0.1})]
    rows = synthetic.copy_rows(np.random.default_rng(7))
    entry = synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)
    entry["claims"] = claims
    alone = C.claims_table(C.evaluate_claims(*load_results(synthetic.write(tmp_path / "alone", rows, {"copy": entry}))))
    crowded = C.claims_table(C.evaluate_claims(*load_results(_with_claims(tmp_path / "crowded", claims))))
    pd.testing.assert_frame_equal(alone, crowded)
    assert list(alone["outcome"]) == [R, R]


def test_claims_are_holm_corrected_among_themselves():
    sel = {"compare": {"better": "mamba", "worse": "lti", "margin": 0.1}}
    (alone,) = _evaluate(_copy(), [sel])
    crowd = _evaluate(_copy(), [sel] + [{"compare": {"better": "mamba", "worse": "lti", "margin": 0.3}}] * 15)
    assert alone.outcome == R and alone.p_repro_holm == alone.check.p_repro == 2 ** -8
    assert crowd[0].check.p_repro == alone.check.p_repro and crowd[0].p_repro_holm == 16 * 2 ** -8
    assert crowd[0].outcome == U  # 16 claims: 2^-8 x 16 > 0.05


def test_claims_without_runs_are_undecided_and_say_so():
    r = _one([r for r in _copy() if r["variant"] != "lti"], {"compare": {"better": "mamba", "worse": "lti"}})
    assert r.outcome == U and "run the suite" in r.check.advice


# ---------------------------------------------------------------------------------------- error rates
def test_status_tests_hold_their_error_rate_at_the_boundary():
    """Simulated: at the fraction itself, "more than f" and "less than f" are each wrongly found at most alpha of
    the time (exact binomial, with and without a look added); "every seed" is reproduced at most alpha of the
    time when only half the seeds show the status."""
    from harness.report.sequential import SequentialDesign

    rng = np.random.default_rng(11)
    sims, alpha = 2000, 0.05
    se2 = 2 * np.sqrt(alpha * (1 - alpha) / sims)
    for f, n, design in ((0.3, 10, None), (0.5, 8, SequentialDesign(12, 4))):
        hits = rng.random((sims, 12)) < f
        looks = np.r_[np.zeros(n, int), np.ones(12 - n, int)] if design else None
        m = 12 if design else n
        tests = [proportion_test(h[:m], f, looks, design) for h in hits]
        assert np.mean([t.p_above < alpha for t in tests]) <= alpha + se2
        assert np.mean([t.p_below < alpha for t in tests]) <= alpha + se2
    half = rng.random((sims, 6)) < 0.5
    every = [proportion_test(h, 0.5) for h in half]
    assert np.mean([t.k == t.n and t.p_above < alpha for t in every]) <= alpha + se2


# ------------------------------------------------------------------------------------------------- the CLI
def _folder(tmp_path, claims):
    entry = synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)
    entry["claims"] = [synthetic.claim(f"c{i}", **c) for i, c in enumerate(claims)]
    return synthetic.write(tmp_path, _copy(), {"copy": entry})


REPRO = {"compare": {"better": "mamba", "worse": "lti", "margin": 0.1}}
CONTRA = {"compare": {"better": "lti", "worse": "mamba"}}
UNDEC = {"compare": {"better": "mamba", "worse": "lti", "margin": 0.3}}


@pytest.mark.parametrize("claims, fail_on, code", [
    ([REPRO, UNDEC], None, 0), ([REPRO, UNDEC], "contradicted", 0), ([REPRO, UNDEC], "undecided", 1),
    ([REPRO, CONTRA], "contradicted", 1), ([REPRO, CONTRA], "undecided", 1), ([REPRO], "undecided", 0),
])
def test_cli_exit_codes_and_claims_csv(tmp_path, claims, fail_on, code):
    from rich.console import Console

    from harness.report.cli import cli_claims

    d = _folder(tmp_path, claims)
    console = Console(record=True, width=200)
    assert cli_claims(d, fail_on=fail_on, console=console) == code
    table = pd.read_csv(d / "claims.csv")
    assert list(table.columns) == C.CLAIM_COLUMNS and len(table) == len(claims)
    assert table["outcome"].iloc[0] == R
    text = console.export_text()
    assert "c0" in text and "signed-rank, n=8" in text and "claims.csv" in text


def test_cli_through_typer(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    d = _folder(tmp_path, [REPRO, CONTRA])
    run = CliRunner().invoke
    assert run(app, ["claims", str(d)]).exit_code == 0
    assert run(app, ["claims", str(d), "--fail-on", "contradicted"]).exit_code == 1
    assert run(app, ["claims", str(d), "--fail-on", "sometimes"]).exit_code == 2
    assert run(app, ["claims", str(tmp_path / "nowhere")]).exit_code == 2


def test_cli_without_claims_says_so(tmp_path):
    from rich.console import Console

    from harness.report.cli import cli_claims

    d = synthetic.write(tmp_path, _copy(), {"copy": synthetic.task_entry("sequence", "accuracy", True, "fraction", 0.02)})
    console = Console(record=True)
    assert cli_claims(d, fail_on="undecided", console=console) == 0
    assert "no claims" in console.export_text() and not (d / "claims.csv").exists()


def test_report_has_a_claims_section_after_the_verdicts(tmp_path):
    from harness.report.render import build_report

    d = _folder(tmp_path, [REPRO, CONTRA, UNDEC])
    html = build_report(d, fmt="html").read_text()
    assert html.index('id="verdicts"') < html.index('id="claims"') < html.index('id="rule"')
    assert '<span class="badge contradicted">contradicted</span>' in html and 'href="#task-copy"' in html
    md = build_report(d, fmt="md").read_text()
    assert "## Claims" in md and "1 of 3 claims reproduced" in md


def test_reading_claims_imports_no_model_code():
    """The report reads claims from suite.json with the schema alone: no torch, families or models."""
    import subprocess
    import sys

    code = ("import sys, harness.report.claims, harness.report.cli; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('harness.families', 'harness.models'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_flat_and_band_checks_hold_their_error_rate_at_the_bounds():
    """Simulated per-seed slopes (normal and bimodal) exactly at a bound of the band: "within" is wrongly
    reproduced, and at the centre "outside" wrongly contradicted, at most alpha of the time."""
    from harness.report.claim_checks import _band
    from harness.report.sequential import threshold_test

    class Slopes:
        def __init__(self, values):
            self.values = values

        def pvalues(self, margin):
            t = threshold_test(self.values, margin)
            return t.p_above, t.p_below

    rng = np.random.default_rng(3)
    sims, alpha, n = 1500, 0.05, 8
    se2 = 2 * np.sqrt(alpha * (1 - alpha) / sims)
    for draw in (lambda: rng.normal(0, 1, n), lambda: rng.choice([-1.0, 1.0], n) + rng.normal(0, 0.05, n)):
        at_bound = [_band(Slopes(1.0 + draw()), -1.0, 1.0) for _ in range(sims)]
        assert np.mean([r < alpha for r, _ in at_bound]) <= alpha + se2
        centred = [_band(Slopes(draw()), -0.0, 1e-9) for _ in range(sims)]  # a band of width 0 at the true centre
        assert np.mean([c < alpha for _, c in centred]) <= alpha + se2
