"""Stages 3–4: pretraining and online finetuning of one (task, method, seed) run, and the
pretrained learner alone (the reward diagnostics and the initial-drop check start from it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cohirl.stages.common import (EvalConfig, base_factory, checkpoint_dir, run_dir, stage_config,
                                  stage_demos)


def run_finetune_stage(task: str, method: str, seed: int, out_dir: Path | None = None,
                       demos_root: Path | None = None, base_dir: Path | None = None,
                       progress: bool = True, stop_after_steps: int | None = None,
                       profile: str | None = None) -> pd.DataFrame:
    """Stages 3–4 for one (task, method, seed): pretraining, step-0 evaluation, online finetuning."""
    from cohirl._runtime import configure_torch, env_worker_wanted
    from cohirl.training.loop import FinetuneConfig, Finetuner

    configure_torch()
    cfg = stage_config(FinetuneConfig, "finetune", task, profile)
    ev = stage_config(EvalConfig, "eval", task, profile)
    demos = stage_demos(task, profile, demos_root)
    out_dir = Path(out_dir or run_dir(task, method, seed, profile))
    checkpoints = checkpoint_dir(task, method, seed, profile) if out_dir == run_dir(task, method, seed, profile) \
        else out_dir / "checkpoints"  # a run written elsewhere (tests, scripts) keeps its state beside its rows
    runner = Finetuner(task, method, seed, cfg, demos, base_factory(task, base_dir, profile=profile), ev, out_dir,
                       progress, checkpoints, env_process=env_worker_wanted())
    return runner.run(stop_after_steps)


def pretrained_learner(task: str, method: str, seed: int = 0, progress: bool = True,
                       learner_overrides: dict[str, Any] | None = None,
                       profile: str | None = None) -> tuple[Any, Any, dict[str, float]]:
    """BC + critic pretraining only (notebook 03): (learner, demo buffer, pretraining metrics)."""
    from cohirl._runtime import configure_torch
    from cohirl.csil.pretrain import build_learner
    from cohirl.csil.replay import demo_buffer
    from cohirl.methods import build_method
    from cohirl.training.loop import FinetuneConfig, demo_episodes

    configure_torch()
    cfg = stage_config(FinetuneConfig, "finetune", task, profile)
    # built as a finetuning run of ``method`` builds it (its per-method learner and composition settings too)
    learner_cfg, composition = build_method(method, {**cfg.learner_overrides(method), **(learner_overrides or {})},
                                            cfg.composition_overrides(method))
    base = base_factory(task, profile=profile)()
    episodes = demo_episodes(stage_demos(task, profile), base, base.replan_every, cfg.see_base_action)
    demos = demo_buffer(episodes, composition, learner_cfg.n_step, learner_cfg.gamma)
    learner, metrics = build_learner(learner_cfg, composition, demos, seed, progress)
    return learner, demos, metrics
