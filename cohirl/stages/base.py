"""Stage 2, the frozen base (``run_base_stage``), and BC demo scaling beside it (``run_demo_scaling``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cohirl.errors import CohirlError
from cohirl.io import write_csv, write_json
from cohirl.stages.common import (DEMO_SCALING_COLUMNS, BaseStageConfig, DemoScalingConfig, EvalConfig, data_dir,
                                  evaluate_base, results_dir, stage_config, stage_demos)


def run_base_stage(task: str, demos_root: Path | None = None, out_dir: Path | None = None,
                   results_csv: Path | None = None, progress: bool = True,
                   profile: str | None = None) -> dict[str, Any]:
    """Train the base on the task's demonstrations, save it, and evaluate it on the paired seeds."""
    from cohirl.policies.train_base import train_base

    cfg = stage_config(BaseStageConfig, "base", task, profile)
    ev = stage_config(EvalConfig, "eval", task, profile)
    out_dir = Path(out_dir or data_dir(profile) / "base" / task)
    demos = stage_demos(task, profile, demos_root)
    metrics = train_base(demos, cfg.train_config(), out_dir, seed=cfg.seed, progress=progress)
    rows = evaluate_base(task, ev, out_dir, progress, profile)
    csv = write_csv(rows, Path(results_csv or results_dir(profile) / "base" / f"{task}.csv"))
    summary = {**{k: v for k, v in metrics.items() if k != "ema_policy"}, "success_rate": float(rows.success.mean()),
               "n_episodes": len(rows)}
    write_json(summary, csv.with_suffix(".json"))  # with the training time, which the base itself leaves out
    return summary


def run_demo_scaling(task: str, work_dir: Path | None = None, results_csv: Path | None = None,
                     progress: bool = True, profile: str | None = None) -> pd.DataFrame:
    """BC base trained on the first N demonstrations for each N, evaluated on the paired seeds."""
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.eval.stats import wilson_interval
    from cohirl.policies.train_base import train_base

    cfg = stage_config(BaseStageConfig, "base", task, profile)
    sc = stage_config(DemoScalingConfig, "demo_scaling", task, profile)
    ev = stage_config(EvalConfig, "eval", task, profile)
    demos_root = data_dir(profile) / "demos" / task
    work_dir = Path(work_dir or data_dir(profile) / "demo_scaling" / task)
    demos = load_demo_arrays(demos_root)
    train_cfg = cfg.train_config()
    if sc.steps is not None:
        train_cfg = train_cfg.replace(steps=sc.steps)
    rows = []
    for n in sc.n_demos:
        if n > demos.n_episodes:
            raise CohirlError(f"demo_scaling asks for {n} demos but {demos_root} has {demos.n_episodes}; "
                              "raise demos.n_demos or lower demo_scaling.n_demos in params.yaml.")
        base_dir = Path(work_dir) / f"n{n}"
        train_base(demos.select_episodes(n), train_cfg, base_dir, seed=cfg.seed, progress=progress)
        episodes = evaluate_base(task, EvalConfig(sc.eval_episodes, ev.seed, ev.workers, ev.lockstep), base_dir,
                                 progress, profile)
        k = int(episodes.success.sum())
        low, high = wilson_interval(k, len(episodes))
        rows.append({"task": task, "n_demos": n, "train_steps": train_cfg.steps, "n_episodes": len(episodes),
                     "successes": k, "success_rate": k / len(episodes), "ci_low": low, "ci_high": high})
    Path(work_dir).mkdir(parents=True, exist_ok=True)  # the stage's output, also when n_demos is empty
    table = pd.DataFrame(rows, columns=DEMO_SCALING_COLUMNS)
    write_csv(table, Path(results_csv or results_dir(profile) / "demo_scaling" / f"{task}.csv"))
    return table
