"""Figures for the report (matplotlib/seaborn, Agg backend). Every function returns a Figure.

Conventions: one colour per variant across all figures (:func:`palette`), circles for SSM variants and
squares for no-SSM ones, units on every axis, legends outside the plotting area (no text labels inside
the axes that could overlap).
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter  # noqa: E402

from harness.report.load import COST_COLUMNS  # noqa: E402
from harness.report.stats import mean_ci  # noqa: E402

DPI = 100
WIDTH = 11.0  # inches


def _theme():
    sns.set_theme(style="whitegrid", context="notebook", font_scale=1.0)
    plt.rcParams.update({"axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9.5,
                         "xtick.labelsize": 9.5, "ytick.labelsize": 9.5, "figure.dpi": DPI})


def _ci(values):
    """Error bars = the report's 95% CI of the mean (t for n < 10, bootstrap otherwise), as in the tables."""
    _, _, lo, hi, _ = mean_ci(values)
    return (lo, hi) if np.isfinite(lo) else (np.nan, np.nan)


def palette(variants) -> dict[str, tuple]:
    vs = sorted(set(map(str, variants)))
    colors = sns.color_palette("tab10" if len(vs) <= 10 else "husl", len(vs))
    return dict(zip(vs, colors))


def axis_label(col: str, unit: str | None = None) -> str:
    if col in COST_COLUMNS:
        name, u = COST_COLUMNS[col]
        unit = u if unit is None else unit
    else:
        name = col.replace("_", " ")
    return f"{name} ({unit})" if unit else name


def si_number(x, _pos=None) -> str:
    ax = abs(x)
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if ax >= div:
            v = x / div
            return f"{v:.3g}{suf}"
    return f"{x:.3g}"


def set_cost_xscale(ax, values, label: str) -> None:
    """Log x axis with SI tick labels when the values span >= 1 decade, else a linear axis (no crowded
    minor log labels); the axis label says which."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() >= 10:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(si_number))
        ax.set_xlabel(label + " (log scale)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(si_number))
        ax.set_xlabel(label)


def _size_fmt(x, _pos=None) -> str:
    """Sizes (sequence length, resolution) as plain integers: 1024, 16384 (SI only from 1e6)."""
    return si_number(x) if abs(x) >= 1e6 else (f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}")


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _fig_legend(fig, axes, title=None):
    """One legend for the whole figure, right of the panels (labels merged from all axes)."""
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    _legend_outside(fig, handles, labels, title=title)


def _layout(fig, n_panels: int):
    """Fixed margins (cheaper than tight_layout; savefig(bbox_inches='tight') trims the rest)."""
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.86, wspace=0.28 if n_panels > 1 else 0.2)


def _legend_outside(ax_or_fig, handles=None, labels=None, title=None):
    target = ax_or_fig
    if handles is None:
        handles, labels = target.get_legend_handles_labels()
    # deduplicate, keep order
    seen, h2, l2 = set(), [], []
    for h, lab in zip(handles, labels):
        if lab not in seen and not lab.startswith("_"):
            seen.add(lab)
            h2.append(h)
            l2.append(lab)
    if isinstance(target, plt.Figure):
        target.legend(h2, l2, loc="center left", bbox_to_anchor=(1.0, 0.5), title=title, frameon=False)
    else:
        target.legend(h2, l2, loc="upper left", bbox_to_anchor=(1.02, 1.0), title=title, frameon=False,
                      borderaxespad=0)


def _pareto_front(x, y, higher_is_better: bool):
    """Indices of non-dominated points (lower x is better; y direction per metric), sorted by x."""
    order = np.argsort(x)
    front, best = [], -np.inf
    for i in order:
        v = y[i] if higher_is_better else -y[i]
        if v > best:
            front.append(i)
            best = v
    return front


def pareto_figure(points: pd.DataFrame, metric: str, unit: str, higher_is_better: bool,
                  colors: dict, title: str, x_cols=("flops_fwd", "latency_ms_p50")):
    """Quality vs cost. ``points``: one row per variant with ``variant, is_ssm, y, y_lo, y_hi`` and cost columns."""
    _theme()
    xs = [c for c in x_cols if c in points.columns and points[c].notna().any()]
    if not xs or points.empty:
        return None
    fig, axes = plt.subplots(1, len(xs), figsize=(WIDTH, 4.2), squeeze=False)
    for ax, xc in zip(axes[0], xs):
        p = points[points[xc].notna() & points["y"].notna()]
        for r in p.itertuples():
            yerr = None
            if np.isfinite(r.y_lo) and np.isfinite(r.y_hi):
                yerr = [[r.y - r.y_lo], [r.y_hi - r.y]]
            ax.errorbar(getattr(r, xc), r.y, yerr=yerr, fmt="o" if r.is_ssm else "s", ms=8, capsize=4,
                        color=colors.get(r.variant), label=f"{r.variant}{' (SSM)' if r.is_ssm else ''}")
        if len(p) >= 2 and p[xc].nunique() >= 2:
            fi = _pareto_front(p[xc].to_numpy(float), p["y"].to_numpy(float), higher_is_better)
            if len(fi) >= 2:
                fp = p.iloc[fi]
                ax.step(fp[xc], fp["y"], where="post", color="0.5", ls="--", lw=1, label="Pareto front")
        set_cost_xscale(ax, p[xc], axis_label(xc))
        ax.set_ylabel(axis_label(metric, unit) + (" ↑ better" if higher_is_better else " ↓ better"))
        ax.margins(x=0.25, y=0.15)
    _fig_legend(fig, axes[0])
    fig.suptitle(title)
    _layout(fig, len(xs))
    return fig


def scaling_figure(data: pd.DataFrame, fits: dict, crossovers: pd.DataFrame, task: str, size_key: str,
                   metrics, colors: dict):
    """Cost vs size on log-log axes: points (mean, error bars min-max over runs), fitted curves, crossovers."""
    _theme()
    metrics = [m for m in metrics if m in data.columns and data[m].notna().any()]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH, 4.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for var, g in data.groupby("variant", sort=True):
            agg = g.groupby("size")[m].agg(["mean", "min", "max"]).dropna()
            if agg.empty:
                continue
            c = colors.get(var)
            ssm = bool(g["is_ssm"].iloc[0])
            ax.errorbar(agg.index, agg["mean"], yerr=[agg["mean"] - agg["min"], agg["max"] - agg["mean"]],
                        fmt="o" if ssm else "s", color=c, ms=5, capsize=3, label=var, ls="none")
            f = fits.get((task, m, var))
            if f is not None:
                xx = np.geomspace(f.xmin, f.xmax, 100)
                ax.plot(xx, f.predict(xx), color=c, lw=1.5, alpha=0.8,
                        label=f"_{var} fit")
        cr = crossovers[(crossovers["task"] == task) & (crossovers["metric"] == m)
                        & (crossovers["status"] == "crossover")] if len(crossovers) else crossovers
        marks = []
        for r in cr.itertuples():
            ax.axvline(r.crossover, color="k", ls=":", lw=1.2, label="crossover (band: 95% CI)")
            if np.isfinite(r.ci_low) and np.isfinite(r.ci_high):
                ax.axvspan(r.ci_low, r.ci_high, color="0.6", alpha=0.15, lw=0)
            marks.append(f"{r.variant_a} = {r.variant_b} at {r.crossover:.4g}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_size_fmt))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{size_key} (log scale)")
        ax.set_ylabel(axis_label(m) + " (log scale)")
        ax.set_title(axis_label(m).split(" (")[0] + (f"\n{'; '.join(marks[:2])}" if marks else
                                                      "\nno crossover in range"), fontsize=10.5)
    _fig_legend(fig, axes[0])
    fig.suptitle(f"{task}: scaling (points: runs, min-max; lines: log-log fits)", y=1.02)
    _layout(fig, len(metrics))
    return fig


def sweep_line_figure(data: pd.DataFrame, task: str, size_key: str, metrics: list[tuple[str, str, bool]],
                      colors: dict):
    """Metric vs swept size (e.g. generalisation gap vs T): one line per variant, 95% CI bars over seeds."""
    _theme()
    metrics = [t for t in metrics if t[0] in data.columns and data[t[0]].notna().any()]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH, 4.2), squeeze=False)
    for ax, (m, unit, hib) in zip(axes[0], metrics):
        sns.lineplot(data=data, x="size", y=m, hue="variant", palette=colors, marker="o",
                     err_style="bars", errorbar=_ci, err_kws={"capsize": 3}, ax=ax,
                     hue_order=sorted(data["variant"].unique()))
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(_size_fmt))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"{size_key} (log scale)")
        ax.set_ylabel(axis_label(m, unit) + (" ↑ better" if hib else " ↓ better"))
    _fig_legend(fig, axes[0], title="variant")
    fig.suptitle(f"{task}: metric vs {size_key} (error bars: 95% CI over seeds)")
    _layout(fig, len(metrics))
    return fig


def ablation_figure(data: pd.DataFrame, task: str, metric: str, unit: str, higher_is_better: bool,
                    colors: dict):
    """Bar chart of an ablation: metric per ablation setting (x) and variant (hue), 95% CI over seeds."""
    _theme()
    if data.empty or metric not in data.columns:
        return None
    names = sorted(data["ablation"].unique())
    width = max(6.0, min(WIDTH, 1.2 * len(names) * max(1, data["variant"].nunique()) + 3))
    fig, ax = plt.subplots(figsize=(width, 4.2))
    sns.barplot(data=data, x="ablation", y=metric, hue="variant", palette=colors, errorbar=_ci,
                capsize=0.1, ax=ax, order=names, hue_order=sorted(data["variant"].unique()))
    ax.set_xlabel("ablation")
    ax.set_ylabel(axis_label(metric, unit) + (" ↑ better" if higher_is_better else " ↓ better"))
    # zoom on the bars' tops when they differ little (e.g. PSNR), keeping every error bar in view
    ys = [y for ln in ax.lines for y in np.asarray(ln.get_ydata(), dtype=float) if np.isfinite(y)]
    ys += [p.get_height() for p in ax.patches if np.isfinite(p.get_height()) and p.get_height() != 0]
    if ys:
        lo, hi = min(ys), max(ys)
        if lo > 0 and (hi - lo) < 0.3 * hi:
            pad = max(hi - lo, 1e-9 * abs(hi))
            ax.set_ylim(lo - 0.3 * pad, hi + 0.15 * pad)
    if max(len(n) for n in names) * len(names) > 60:
        plt.setp(ax.get_xticklabels(), rotation=25, ha="right")
    _legend_outside(ax, title="variant")
    ax.set_title(f"{task}: ablations (error bars: 95% CI over seeds)")
    _layout(fig, 1)
    return fig
