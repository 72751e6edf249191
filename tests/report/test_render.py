import re

import numpy as np
import pytest

from harness.report import build_report, cli_report
from harness.report.html import md_to_html

import synthetic


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    papers = d / "papers"
    papers.mkdir()
    (papers / "mambaout.yaml").write_text(
        "- paper: 'MambaOut: Do We Really Need Mamba for Vision?'\n  arxiv: '2405.07992'\n  table: Table 1\n"
        "  family: classification\n  model: MambaOut-Tiny\n  metric: top1\n  value: 82.7\n  unit: '%'\n"
        "- {paper: broken entry}\n")
    res = synthetic.demo_results(d / "results")
    with pytest.warns(UserWarning, match="entry 1 skipped"):
        html_path = build_report(res, fmt="html", papers_dir=papers, n_boot=40)
    return res, html_path


def test_html_is_self_contained_with_sections(demo):
    _res, path = demo
    text = path.read_text()
    assert path.name == "report.html"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "<script" not in text and "@import" not in text
    assert text.count('src="data:image/png;base64,') >= 5
    for section in ("Verdicts", "How the verdict is decided", "Task: imagenet_tiny", "Task: lm_long",
                    "Task: sr_x2", "Paired comparisons", "Equal tuning budget", "Scaling with seq_len",
                    "Quality vs cost", "Ablations", "Run status", "Provenance", "Paper reference numbers"):
        assert section in text, section
    for verdict in ("SSM needed", "SSM not needed", "inconclusive"):
        assert verdict in text
    assert "OOM" in text and "DIVERGED" in text
    assert "MambaOut-Tiny" in text and "82.7" in text
    assert "becomes cheaper than" in text


def test_markdown_with_png_files_and_baseline_via_cli(tmp_path):
    import io

    from rich.console import Console

    tasks = {"cls": synthetic.task_entry("classification", "top1", True, "%", 0.5)}
    old_rows = synthetic.classification_rows(np.random.default_rng(0), seeds=3)
    base = synthetic.write(tmp_path / "base", old_rows, tasks)
    new_rows = [dict(r, latency_ms_p50=r["latency_ms_p50"] * 2) for r in old_rows]
    res = synthetic.write(tmp_path / "r", new_rows, tasks, csv=True)
    out = tmp_path / "out" / "rep.md"
    buf = io.StringIO()
    code = cli_report(res, format="md", out=out, baseline=base, papers_dir=tmp_path / "none",
                      console=Console(file=buf, width=200))
    assert code == 0
    printed = buf.getvalue()
    assert "Does this task need an SSM?" in printed and "regressions" in printed and str(out) in printed
    text = out.read_text()
    assert "## Verdicts" in text and "| task |" in text and "## Comparison with baseline" in text
    assert "REGRESSION" in text
    imgs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert imgs and all((out.parent / i).is_file() for i in imgs)
    assert "Paper reference numbers" not in text  # no papers folder: skipped silently


def test_baseline_section_names_unlike_conditions(tmp_path):
    tasks = {"cls": synthetic.task_entry("classification", "top1", True, "%", 0.5)}
    old_rows = synthetic.classification_rows(np.random.default_rng(0), seeds=3)
    base = synthetic.write(tmp_path / "base", old_rows, tasks)
    new_rows = [dict(r, latency_ms_p50=r["latency_ms_p50"] * 2, backend="mamba_ssm-cuda" if r["variant"] == "mamba" else r["backend"])
                for r in old_rows]
    res = synthetic.write(tmp_path / "r", new_rows, tasks)
    text = build_report(res, fmt="md", out=tmp_path / "rep.md", baseline=base, papers_dir=tmp_path / "none").read_text()
    section = text.split("## Comparison with baseline")[1]
    assert "3 matched runs were measured under different conditions" in section
    assert "| conditions |" in section and "backend: ref -> mamba_ssm-cuda" in section


def test_minimal_folder_without_suite_json(tmp_path):
    import pandas as pd

    rows = synthetic.classification_rows(np.random.default_rng(1), seeds=3)
    df = pd.DataFrame(rows)
    df["is_ssm"] = df["is_ssm"].map({True: "True", False: "False"})
    (tmp_path / "r").mkdir()
    df.drop(columns=["ablation", "config_hash"]).to_csv(tmp_path / "r" / "results.csv", index=False)
    from harness.report.load import load_results
    from harness.report.verdict import task_verdicts

    d, suite = load_results(tmp_path / "r")
    assert suite.task("cls").primary_metric == "top1" and d["is_ssm"].sum() == 3
    assert task_verdicts(d, suite)[0].verdict in ("SSM needed", "SSM not needed", "inconclusive")


def test_cli_report_exit_codes(tmp_path, demo):
    res, _ = demo
    assert cli_report(tmp_path / "missing") == 2
    assert cli_report(res, format="pdf") == 2


def _cli(*args):
    from typer.testing import CliRunner

    from harness import cli
    return CliRunner().invoke(cli.app, [str(a) for a in args])


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_unwritable_out_is_refused_before_anything_is_written(tmp_path, demo, fmt):
    res, _ = demo
    (tmp_path / "afile").write_text("x")
    (tmp_path / "emptydir").mkdir()
    for out, says in ((tmp_path / "afile" / "x.html", "is a file, not a folder"),
                      (tmp_path / "emptydir", "is a folder; --out takes a file path")):
        result = _cli("report", res, "--format", fmt, "--out", out)
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "emptydir"]  # no emptydir_files/ either
    assert not any((tmp_path / "emptydir").iterdir())


def test_corrupt_results_folder_is_named_not_a_traceback(tmp_path, demo):
    import pandas as pd

    res, _ = demo
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "results.parquet").write_text("x\n")
    (tmp_path / "empty").mkdir()
    pd.DataFrame().to_parquet(tmp_path / "empty" / "results.parquet")
    badjson = synthetic.write(tmp_path / "badjson", synthetic.classification_rows(np.random.default_rng(0), seeds=2),
                              {})
    (badjson / "suite.json").write_text("{bad")
    for folder, file, says in (("garbage", "results.parquet", "not a harness results table"),
                               ("empty", "results.parquet", "not a harness results table (no task column)"),
                               ("badjson", "suite.json", "not a harness suite.json")):
        path = str(tmp_path / folder / file)
        for args in (["show", tmp_path / folder], ["report", tmp_path / folder, "--out", tmp_path / "r.html"],
                     ["report", res, "--baseline", tmp_path / folder, "--out", tmp_path / "r.html"],
                     ["compare", res, tmp_path / folder]):
            result = _cli(*args)
            if args[0] == "show" and folder == "badjson":
                assert result.exit_code == 0  # show needs the table only
                continue
            out = result.output.replace("\n", "")
            assert result.exit_code == 2 and path in out and says in out and "Traceback" not in out, (args, result.output)
    assert not (tmp_path / "r.html").exists()


def test_md_to_html_renders_the_rule_and_escapes_html():
    h = md_to_html("### T\n\nsome **bold** and `a<b>`\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n<script>x</script>\n")
    assert "<h3>T</h3>" in h and "<strong>bold</strong>" in h and "<code>a&lt;b&gt;</code>" in h
    assert "<li>a</li>" in h and "<td>1</td>" in h and "<th>x</th>" in h
    assert "<script>" not in h  # raw HTML in the rule text is escaped, never passed through


def test_paper_costs_sit_beside_the_same_variant_and_size_only(tmp_path):
    """A paper's layer latency at L=4096 is set beside our mamba at 4096, never beside whichever variant is
    fastest at another length; a cost entry without variant and size is marked not comparable."""
    rows = synthetic.scaling_rows(np.random.default_rng(0), cross=2048.0, noise=0.0)
    tasks = {"lm": synthetic.task_entry("sequence", "nll_bits_per_token", False, "bits", 0.05, causal=True,
                                        sweep_keys=["data.seq_len"])}
    res = synthetic.write(tmp_path / "r", rows, tasks)
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "eff.yaml").write_text(
        "- {paper: P, family: sequence, model: 'mamba L=4K', metric: latency_ms_p50, value: 1.5, unit: ms, variant: mamba, size: 4096}\n"
        "- {paper: P, family: sequence, model: 'a kernel', metric: latency_ms_p50, value: 0.1, unit: ms}\n"
        "- {paper: P, family: sequence, model: 'a model', metric: nll_bits_per_token, value: 1.9, unit: bits}\n")
    text = build_report(res, fmt="md", out=tmp_path / "rep.md", papers_dir=papers).read_text()
    table = text.split("### Paper reference numbers")[1]
    assert "| mamba L=4K | latency_ms_p50 | 1.5 ms | 2 (mamba) |" in table  # mamba ~ L / 2048 ms
    assert "| a kernel | latency_ms_p50 | 0.1 ms | not comparable" in table
    assert "| a model | nll_bits_per_token | 1.9 bits | 2" in table and "(mamba) |" in table  # quality: best variant


def test_ablation_table_gives_each_ablation_its_paired_difference_from_the_base(tmp_path):
    """An ablation's effect is read against its base (the rows with ablation: base) seed by seed, at the base's
    hyper-parameters: the table's difference is the mean of per-seed differences (the synthetic ase_off costs
    0.25 dB); with 3 seeds no ablation is decided ("n too small"), and each has a one-line summary."""
    import pandas as pd

    res = synthetic.demo_results(tmp_path / "r")
    text = build_report(res, fmt="md", papers_dir=tmp_path / "none", n_boot=40).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| ase_off |"))
    df = pd.read_parquet(res / "results.parquet")
    sr = df[(df["task"] == "sr_x2") & (df["sweep"].str.contains("0.0002"))]
    base = sr[sr["ablation"] == "base"].set_index("seed")["psnr"]
    ase_off = sr[sr["ablation"] == "ase_off"].set_index("seed")["psnr"]
    expected = (ase_off - base).mean()
    assert -0.6 < expected < 0.1
    assert row.startswith(f"| ase_off | mambairv2 | 3 | {expected:.4g} | [") and "| n too small | 1.00x |" in row, row
    assert "- ase_off vs mambairv2: 0.259 dB worse than mambairv2" in text and "with 3 seeds the smallest possible p" in text
