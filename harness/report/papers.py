"""Paper reference numbers (``baselines/papers/*.yaml``) shown beside our results.

Schema: each YAML file holds a list of entries (or a mapping with a ``references:`` list)::

    - paper: "MambaOut: Do We Really Need Mamba for Vision?"
      arxiv: "2405.07992"
      table: "Table 1"            # where in the paper
      family: classification     # harness family name; matches every task of that family ...
      task: imagenet_tiny        # ... or one task by name (optional, wins over family)
      model: MambaOut-Tiny       # the paper's model name
      metric: top1               # a metric column of our results
      value: 82.7
      unit: "%"
      hardware: "8x A100"        # optional: where the paper measured (for cost metrics)
      note: "224px, 300 epochs"  # optional
      variant: mamba             # optional: our variant (label or mixer) the number corresponds to
      size: 16384                # optional: the size point (swept seq_len / resolution) it corresponds to

"Ours" beside a quality number is the task's best variant at its largest size. A cost (latency, memory,
FLOPs) depends on the model and size, so "ours" is shown only for an entry naming both ``variant`` and
``size``, from exactly those rows: a paper's 16K-token layer latency is never set beside a 16-token run.

Missing folder or no files: nothing is shown (silently). Entries that do not validate are skipped
with a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ValidationError

PAPER_COLUMNS = ["paper", "arxiv", "table", "family", "task", "model", "metric", "value", "unit", "hardware",
                 "note", "variant", "size", "source_file"]


class PaperRef(BaseModel):
    paper: str
    arxiv: str = ""
    table: str = ""
    family: str = ""
    task: str = ""
    model: str
    metric: str
    value: float
    unit: str = ""
    hardware: str = ""
    note: str = ""
    variant: str = ""
    size: float | None = None


def default_papers_dir() -> Path | None:
    """``./baselines/papers`` if it exists, else the one at the repository root beside ``harness/``."""
    for cand in (Path.cwd() / "baselines" / "papers", Path(__file__).resolve().parents[2] / "baselines" / "papers"):
        if cand.is_dir():
            return cand
    return None


def load_paper_refs(papers_dir: str | Path | None = None) -> pd.DataFrame:
    d = Path(papers_dir) if papers_dir is not None else default_papers_dir()
    rows = []
    if d is None or not d.is_dir():
        return pd.DataFrame(columns=PAPER_COLUMNS)
    for f in sorted(list(d.glob("*.yaml")) + list(d.glob("*.yml"))):
        try:
            data = yaml.safe_load(f.read_text())
        except yaml.YAMLError as e:
            warnings.warn(f"{f}: not valid YAML ({e}); skipped")
            continue
        if isinstance(data, dict):
            data = data.get("references") or data.get("entries") or []
        for i, entry in enumerate(data or []):
            try:
                ref = PaperRef.model_validate(entry)
            except ValidationError as e:
                warnings.warn(f"{f}: entry {i} skipped: {e.errors()[0]['msg']}")
                continue
            rows.append({**ref.model_dump(), "arxiv": str(ref.arxiv), "source_file": f.name})
    return pd.DataFrame(rows, columns=PAPER_COLUMNS)


def refs_for_task(refs: pd.DataFrame, task: str, family: str) -> pd.DataFrame:
    if refs.empty:
        return refs
    by_task = refs[refs["task"] == task]
    by_family = refs[(refs["task"] == "") & (refs["family"] == family) & (family != "")]
    return pd.concat([by_task, by_family])
