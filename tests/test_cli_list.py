"""``harness list datasets --verbose``: every dataset's ``data:`` keys, with type, default and meaning, the one
place they are documented besides the schema itself."""

from __future__ import annotations

from typer.testing import CliRunner

from harness import cli
from harness.families import FAMILIES


def test_list_datasets_verbose_documents_every_data_key():
    out = CliRunner().invoke(cli.app, ["list", "datasets", "--verbose"]).output
    lines = out.splitlines()
    assert "    path: str = required  folder holding train/<class>/* and val/<class>/* images" in lines
    assert any(line.startswith("    augment: bool = True  timm's training transform") for line in lines)
    assert any(line.startswith("    tokenizer.checkpoint: str | None = None") for line in lines)  # nested sections, dotted
    assert any("shallow_water" in line and line.startswith("    equation: Literal[") for line in lines)
    for name in FAMILIES.names():  # every key of every dataset, under that dataset's heading
        for ds, spec in FAMILIES.get(name).datasets.items():
            start = lines.index(next(line for line in lines if line.startswith(f"{name}/{ds}: ")))
            block = []
            for line in lines[start + 1:]:
                if not line.startswith("    "):
                    break
                block.append(line.split(":")[0].strip())
            top = {key.split(".")[0] for key in block}
            assert top == set(spec.params.model_fields), (name, ds)
    assert "    path:" not in CliRunner().invoke(cli.app, ["list", "datasets"]).output  # terse without --verbose
