import ast
from pathlib import Path

import harness.report

FORBIDDEN = ("torch", "harness.models", "harness.kernels", "harness.families", "harness.modules", "harness.run",
             "harness.execute")


def test_report_never_imports_models_kernels_families_or_torch():
    pkg = Path(harness.report.__file__).parent
    bad = []
    for f in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad += [f"{f.name}: {n}" for n in names if n == FORBIDDEN[0] or n.startswith(FORBIDDEN)]
    assert not bad, bad
