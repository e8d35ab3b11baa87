"""One function per DVC stage, configured from ``params.yaml``; the notebooks call these and plot.

Layout of artefacts (paths relative to the repository root):
``data/demos/<task>`` (stage 1) → ``data/base/<task>`` + ``results/base/<task>.csv`` (stage 2) →
``results/runs/<task>/<method>/<seed>/`` (stages 3–4) → ``results/tables``, ``results/figures`` (5).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cohirl.config import from_dict, read_params, task_settings
from cohirl.errors import CohirlError
from cohirl.io import write_csv

DEMOS_DIR, BASE_DIR, RESULTS_DIR = Path("data/demos"), Path("data/base"), Path("results")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol shared by every method (paired: same seed -> same initial states)."""

    n_episodes: int = 50  # the paper: 50 episodes per evaluation
    seed: int = 12345  # initial-state seed shared by all methods
    workers: int = 1  # parallel episode workers (rows do not depend on it)
    # Episodes stepped together in one process, with one batched base re-plan and small-policy
    # forward per step for all of them (cohirl.eval.rollout.run_lockstep); 1 = one at a time.
    # Rows depend on it only through the rounding of batched arithmetic, not on workers.
    lockstep: int = 1


@dataclass(frozen=True)
class BaseStageConfig:
    """Stage 2: which lerobot chunking policy, trained how, re-planning every k steps."""

    preset: str = "small"  # cohirl.policies.config.PROFILES: "small" (CPU) | "large"
    steps: int | None = None  # override of the preset's gradient steps
    batch_size: int | None = None
    replan_every: int = 10  # k: the paper's pi0.5 re-plans a chunk every 10 env steps
    seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)  # any other BaseTrainConfig field

    def train_config(self) -> Any:
        from cohirl.policies.config import config_for_profile

        overrides = {**self.train, **{k: v for k, v in (("steps", self.steps), ("batch_size", self.batch_size))
                                      if v is not None}}
        for key in ("down_dims", "betas"):
            if key in overrides:
                overrides[key] = tuple(overrides[key])
        return config_for_profile(self.preset, **overrides)


DEMO_SCALING_COLUMNS = ["task", "n_demos", "train_steps", "n_episodes", "successes", "success_rate", "ci_low",
                        "ci_high"]


@dataclass(frozen=True)
class DemoScalingConfig:
    n_demos: tuple[int, ...] = (10, 25, 50, 100, 200)  # empty: the stage writes a header-only table
    steps: int | None = None  # training steps per base (None: the base stage's)
    eval_episodes: int = 50


def stage_config(cls: type, stage: str, task: str | None = None, profile: str | None = None) -> Any:
    return from_dict(cls, task_settings(read_params(), stage, task, profile), stage)


def base_factory(task: str, base_dir: Path | None = None, replan_every: int | None = None) -> Any:
    """Picklable factory of the frozen base (deterministic sampling: zero initial diffusion noise)."""
    from cohirl.envs import get_spec
    from cohirl.policies.lerobot_base import LerobotBaseFactory

    cfg = stage_config(BaseStageConfig, "base", task)
    path = Path(base_dir or BASE_DIR / task)
    return LerobotBaseFactory(os.fspath(path), replan_every or cfg.replan_every, get_spec(task),
                              zero_noise=True, n_threads=1)


def evaluate_base(task: str, ev: EvalConfig, base_dir: Path | None = None, progress: bool = True) -> pd.DataFrame:
    from cohirl.eval.rollout import evaluate

    return evaluate(base_factory(task, base_dir), task, ev.n_episodes, ev.seed, workers=ev.workers,
                    method="base", progress=progress, lockstep=ev.lockstep)


def run_base_stage(task: str, demos_root: Path | None = None, out_dir: Path | None = None,
                   results_csv: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train the base on the task's demonstrations, save it, and evaluate it on the paired seeds."""
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.policies.train_base import train_base

    cfg = stage_config(BaseStageConfig, "base", task)
    ev = stage_config(EvalConfig, "eval", task)
    out_dir = Path(out_dir or BASE_DIR / task)
    demos = load_demo_arrays(Path(demos_root or DEMOS_DIR / task))
    metrics = train_base(demos, cfg.train_config(), out_dir, seed=cfg.seed, progress=progress)
    rows = evaluate_base(task, ev, out_dir, progress)
    write_csv(rows, Path(results_csv or RESULTS_DIR / "base" / f"{task}.csv"))
    return {**metrics, "success_rate": float(rows.success.mean()), "n_episodes": len(rows)}


def run_demo_scaling(task: str, work_dir: Path, results_csv: Path | None = None,
                     progress: bool = True) -> pd.DataFrame:
    """BC base trained on the first N demonstrations for each N, evaluated on the paired seeds."""
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.eval.stats import wilson_interval
    from cohirl.policies.train_base import train_base

    cfg = stage_config(BaseStageConfig, "base", task)
    sc = stage_config(DemoScalingConfig, "demo_scaling", task)
    ev = stage_config(EvalConfig, "eval", task)
    demos = load_demo_arrays(DEMOS_DIR / task)
    train_cfg = cfg.train_config()
    if sc.steps is not None:
        train_cfg = train_cfg.replace(steps=sc.steps)
    rows = []
    for n in sc.n_demos:
        if n > demos.n_episodes:
            raise CohirlError(f"demo_scaling asks for {n} demos but data/demos/{task} has {demos.n_episodes}; "
                              "raise demos.n_demos or lower demo_scaling.n_demos in params.yaml.")
        base_dir = Path(work_dir) / f"n{n}"
        train_base(demos.select_episodes(n), train_cfg, base_dir, seed=cfg.seed, progress=progress)
        episodes = evaluate_base(task, EvalConfig(sc.eval_episodes, ev.seed, ev.workers, ev.lockstep), base_dir, progress)
        k = int(episodes.success.sum())
        low, high = wilson_interval(k, len(episodes))
        rows.append({"task": task, "n_demos": n, "train_steps": train_cfg.steps, "n_episodes": len(episodes),
                     "successes": k, "success_rate": k / len(episodes), "ci_low": low, "ci_high": high})
    Path(work_dir).mkdir(parents=True, exist_ok=True)  # the stage's output, also when n_demos is empty
    table = pd.DataFrame(rows, columns=DEMO_SCALING_COLUMNS)
    write_csv(table, Path(results_csv or RESULTS_DIR / "demo_scaling" / f"{task}.csv"))
    return table


def run_finetune_stage(task: str, method: str, seed: int, out_dir: Path | None = None,
                       demos_root: Path | None = None, base_dir: Path | None = None,
                       progress: bool = True, stop_after_steps: int | None = None) -> pd.DataFrame:
    """Stages 3–4 for one (task, method, seed): pretraining, step-0 evaluation, online finetuning."""
    from cohirl._runtime import configure_torch
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.training.loop import FinetuneConfig, Finetuner

    configure_torch()
    cfg = stage_config(FinetuneConfig, "finetune", task)
    ev = stage_config(EvalConfig, "eval", task)
    demos = load_demo_arrays(Path(demos_root or DEMOS_DIR / task))
    out_dir = Path(out_dir or RESULTS_DIR / "runs" / task / method / str(seed))
    runner = Finetuner(task, method, seed, cfg, demos, base_factory(task, base_dir), ev, out_dir, progress)
    return runner.run(stop_after_steps)


def pretrained_learner(task: str, method: str, seed: int = 0, progress: bool = True,
                       learner_overrides: dict[str, Any] | None = None) -> tuple[Any, Any, dict[str, float]]:
    """BC + critic pretraining only (notebook 03): (learner, demo buffer, pretraining metrics)."""
    from cohirl.methods import build_method
    from cohirl.csil.pretrain import build_learner
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.training.loop import FinetuneConfig, demo_episodes
    from cohirl.csil.replay import demo_buffer
    from cohirl._runtime import configure_torch

    configure_torch()
    cfg = stage_config(FinetuneConfig, "finetune", task)
    learner_cfg, composition = build_method(method, {**cfg.learner_overrides(), **(learner_overrides or {})},
                                            cfg.composition)
    base = base_factory(task)()
    episodes = demo_episodes(load_demo_arrays(DEMOS_DIR / task), base, base.replan_every, cfg.see_base_action)
    demos = demo_buffer(episodes, composition, learner_cfg.n_step, learner_cfg.gamma)
    learner, metrics = build_learner(learner_cfg, composition, demos, seed, progress)
    return learner, demos, metrics


__all__ = ["BaseStageConfig", "DemoScalingConfig", "EvalConfig", "evaluate_base",
           "pretrained_learner", "run_base_stage", "run_demo_scaling", "run_finetune_stage", "stage_config"]
