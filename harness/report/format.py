"""Number and name formatting shared by the report's tables and renderers."""

from __future__ import annotations

import re

import numpy as np

from harness.report.figures import si_number


def fmt_num(x, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return si_number(float(x)) if abs(x) >= 1e4 else str(int(x))
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return ""
        if abs(x) >= 1e4:
            return si_number(float(x))
        if x != 0 and abs(x) < 1e-3:
            return f"{x:.2e}"
        return f"{x:.{digits}g}"
    return str(x)


def fmt_mean_ci(mean, lo, hi) -> str:
    if not np.isfinite(mean):
        return ""
    if np.isfinite(lo) and np.isfinite(hi):
        return f"{fmt_num(mean)} ± {fmt_num((hi - lo) / 2, 2)}"
    return fmt_num(mean)



def slug(s: str) -> str:
    """An HTML id / file-name fragment from a task name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", s)
