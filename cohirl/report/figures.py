"""The paper's figures from result rows: learning curves, the initial-drop view, demo scaling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cohirl.eval.stats import bootstrap_ci
from cohirl.report.tables import base_levels

COLORS = {"csil_ensemble": "tab:blue", "csil_residual": "tab:green", "sparse_residual": "tab:red"}


def curve_band(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean success per env_steps with a 95 % bootstrap band over seeds."""
    out = []
    for steps, r in rows.groupby("env_steps"):
        mean, low, high = bootstrap_ci(r.success_rate.to_numpy(), n_boot=2000, seed=0)
        out.append({"env_steps": steps, "mean": mean, "low": low, "high": high, "n": len(r)})
    return pd.DataFrame(out)


def _plot_task(ax: Axes, evals: pd.DataFrame, base_level: float, methods: Sequence[str],
               max_fraction: float = 1.0) -> None:
    budget = evals.env_steps.max()
    for method in methods:
        band = curve_band(evals[evals.method == method])
        band = band[band.env_steps <= budget * max_fraction + 1e-9]
        color = COLORS.get(method)
        for _, run in evals[(evals.method == method) & (evals.env_steps <= budget * max_fraction + 1e-9)].groupby("seed"):
            run = run.sort_values("env_steps")  # each seed's own curve, thin: the band hides how runs differ
            ax.plot(run.env_steps, run.success_rate, lw=0.6, alpha=0.35, color=color)
        ax.plot(band.env_steps, band["mean"], marker="o", ms=3, label=method, color=color)
        ax.fill_between(band.env_steps, band.low, band.high, alpha=0.2, color=color)
        ax.scatter([0], band["mean"].iloc[:1], marker="*", s=90, color=color, zorder=5)
    ax.axhline(base_level, color="black", ls="--", lw=1, label="base (frozen)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("env steps")
    ax.grid(alpha=0.3)


def learning_curves(evals: pd.DataFrame, base: pd.DataFrame, methods: Sequence[str],
                    max_fraction: float = 1.0, title: str = "") -> Figure:
    """One panel per task: mean success vs env steps, bootstrap band over seeds, each seed as a thin line;
    stars = BC-small; dashed = the frozen base."""
    tasks = sorted(evals.task.unique())
    levels = base_levels(base).set_index("task")["mean"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        _plot_task(ax, evals[evals.task == task], float(levels[task]), methods, max_fraction)
        n_seeds = evals[evals.task == task].seed.nunique()
        ax.set_title(f"{task} ({n_seeds} seeds)")
    axes[0][0].set_ylabel("success rate")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


CALIBRATION_COLUMNS = ("q_demo", "mc_demo", "q_eval_init", "mc_return_eval")


def critic_calibration(evals: pd.DataFrame, methods: Sequence[str]) -> Figure:
    """Has the critic settled? One panel per task: the critic's value (solid) against the Monte-Carlo
    return it should predict (dashed) under the learned reward, at the demo states (mean over every
    demo step) and at the evaluation episodes' first states, mean over seeds, per evaluation point.
    Methods without a learned reward (or rows from before the diagnostic) are left out."""
    methods = [m for m in methods if m in set(evals.method)]
    rows = evals.dropna(subset=[c for c in CALIBRATION_COLUMNS if c in evals]) if set(
        CALIBRATION_COLUMNS) <= set(evals.columns) else evals.iloc[0:0]
    rows = rows[rows.method.isin(methods)]
    tasks = sorted(evals.task.unique())
    fig, axes = plt.subplots(2, len(tasks), figsize=(5 * len(tasks), 6.4), squeeze=False, sharex="col")
    for col, task in enumerate(tasks):
        for row, (q_col, mc_col, where) in enumerate((("q_demo", "mc_demo", "demo states"),
                                                      ("q_eval_init", "mc_return_eval", "evaluation starts"))):
            ax = axes[row][col]
            for method in methods:
                r = rows[(rows.task == task) & (rows.method == method)]
                if r.empty:
                    continue
                mean = r.groupby("env_steps")[[q_col, mc_col]].mean()
                color = COLORS.get(method)
                ax.plot(mean.index, mean[q_col], marker="o", ms=3, color=color, label=f"{method}: critic Q")
                ax.plot(mean.index, mean[mc_col], ls="--", color=color, label=f"{method}: MC return")
            ax.set_title(f"{task}: {where}")
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("env steps")
        axes[0][col].set_ylabel("value (learned reward)")
    if rows.empty:
        axes[0][0].text(0.5, 0.5, "no rows with the critic diagnostic", ha="center", va="center",
                        transform=axes[0][0].transAxes)
    else:
        axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def demo_scaling_plot(curves: dict[str, pd.DataFrame], note: str = "") -> Figure:
    """BC success vs demonstrations per task; with no curve, a figure that says why (``note``)."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    if not curves:
        ax.text(0.5, 0.5, note or "no demo-scaling curve measured", ha="center", va="center", wrap=True,
                transform=ax.transAxes)
        ax.set(title="RL or more demonstrations? BC demo scaling", xticks=[], yticks=[])
        return fig
    for task, c in curves.items():
        c = c.sort_values("n_demos")
        ax.errorbar(c.n_demos, c.success_rate, yerr=[c.success_rate - c.ci_low, c.ci_high - c.success_rate],
                    marker="o", capsize=3, label=task)
    ax.set(xscale="log", xlabel="demonstrations", ylabel="BC base success", ylim=(-0.02, 1.02),
           title="RL or more demonstrations? BC demo scaling")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, out_dir: Path, name: str) -> None:
    """``<name>.png`` and ``.pdf`` under ``out_dir``, each written to a temporary sibling, then renamed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):  # no creation date in the PDF: same rows -> byte-identical figures
        metadata = {"CreationDate": None} if ext == "pdf" else None
        tmp = out_dir / f".{name}.{ext}.tmp"
        fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=metadata)
        os.replace(tmp, out_dir / f"{name}.{ext}")
