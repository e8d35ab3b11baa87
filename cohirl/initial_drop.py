"""The initial-drop check: each method's step-0 policy (right after BC + critic pretraining)
against the frozen base, on the same paired evaluation states (issue: "no initial drop").

The step-0 policy is built exactly as a finetuning run builds it (``cohirl.stages.pretrained_learner``
with the profile's finetune settings), then evaluated with the profile's evaluation seed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohirl.eval.rollout import evaluate
from cohirl.eval.stats import wilson_interval
from cohirl.training.agent import ComposedPolicy, PolicyInputs, save_actor_snapshot, snapshot_factory

STEP0_COLUMNS = ["task", "method", "n_episodes", "successes", "success_rate", "ci_low", "ci_high",
                 "base_successes", "both", "only_method", "only_base", "mean_abs_action_change"]


def action_change_on_base_rollout(policy: ComposedPolicy, task: Any, seed: int, steps: int = 200) -> float:
    """Mean |composed - base| per action entry along one rollout of the composed policy."""
    obs = task.reset(seed)
    policy.reset(seed)
    changes = []
    for _ in range(steps):
        executed = policy.act(obs)
        changes.append(np.abs(executed - policy.last_base_action).mean())
        obs, _, terminated, truncated, _ = task.step(executed)
        if terminated or truncated:
            break
    return float(np.mean(changes))


def step0_row(task: str, method: str, base_rows: pd.DataFrame, workers: int = 2, seed: int = 0,
              learner_overrides: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """One method's step-0 success on the base's evaluation states, with paired counts."""
    from cohirl.envs import make_task
    from cohirl.stages import EvalConfig, base_factory, pretrained_learner, stage_config
    from cohirl.training.loop import FinetuneConfig

    ev = stage_config(EvalConfig, "eval", task)
    cfg = stage_config(FinetuneConfig, "finetune", task)
    learner, _, _ = pretrained_learner(task, method, seed, progress, learner_overrides)
    factory = base_factory(task)
    inputs = PolicyInputs(cfg.see_base_action, cfg.see_chunk_phase, factory.replan_every)
    with tempfile.TemporaryDirectory() as tmp:
        snap = save_actor_snapshot(learner, Path(tmp) / "step0.pt", inputs)
        rows = evaluate(snapshot_factory(factory, snap), task, len(base_rows), ev.seed, workers=workers,
                        method=method, progress=progress, lockstep=ev.lockstep)
        change = action_change_on_base_rollout(snapshot_factory(factory, snap)(), make_task(task),
                                               int(base_rows.init_seed.iloc[0]))
    if list(rows.init_seed) != list(base_rows.init_seed):
        raise ValueError("step-0 and base rows were evaluated on different initial states")
    ours, base = rows.success.to_numpy(bool), base_rows.success.to_numpy(bool)
    k, n = int(ours.sum()), len(ours)
    low, high = wilson_interval(k, n)
    return {"task": task, "method": method, "n_episodes": n, "successes": k, "success_rate": k / n,
            "ci_low": low, "ci_high": high, "base_successes": int(base.sum()), "both": int((ours & base).sum()),
            "only_method": int((ours & ~base).sum()), "only_base": int((~ours & base).sum()),
            "mean_abs_action_change": change}
