"""Stage 1: the task's demonstrations and their summary."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from cohirl.config import from_dict, read_params, task_settings
from cohirl.io import write_json
from cohirl.stages.common import data_dir, results_dir

# ---------------------------------------------------------------- stage 1: demonstrations
def run_demos_stage(task: str, out_root: Path | None = None, summary_dir: Path | None = None,
                    n_demos: int | None = None, profile: str | None = None, progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """Collect (or reuse) the task's demonstrations and write their summary ``<summary_dir>/<task>.json``.

    Returns (the demonstrations as arrays, the summary: expert success over all attempts with its
    Wilson interval, frames, mean length, noise)."""
    from cohirl.demos.pipeline import DemosConfig, load_or_make_demos
    from cohirl.eval.stats import wilson_interval

    settings = task_settings(read_params(), "demos", task, profile)
    if n_demos is not None:
        settings["n_demos"] = int(n_demos)
    cfg = from_dict(DemosConfig, settings, "demos")
    demos = load_or_make_demos(task, cfg, Path(out_root or data_dir(profile) / "demos") / task, progress=progress)
    attempts, successes = demos.provenance["attempts"], demos.provenance["successes"]
    low, high = wilson_interval(successes, attempts)
    lengths = [s.stop - s.start for s in demos.episode_slices()]
    summary = {"task": task, "n_demos": demos.n_episodes, "frames": int(len(demos.action)),
               "expert_attempts": attempts, "expert_successes": successes,
               "expert_success_rate": successes / attempts, "wilson_low": low, "wilson_high": high,
               "mean_length": float(sum(lengths) / len(lengths)), "noise": asdict(cfg.noise)}
    write_json(summary, Path(summary_dir or results_dir(profile) / "demos") / f"{task}.json")
    return demos, summary
