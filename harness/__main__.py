"""``python -m harness``: the CLI without its console script (e.g. a checkout on PYTHONPATH, no install)."""

from harness.cli import app

app(prog_name="harness")
