"""Stage 3's diagnostics of the coherent reward after BC + critic pretraining (notebook 03)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cohirl.io import write_csv
from cohirl.stages.common import results_dir
from cohirl.stages.finetune import pretrained_learner

# ---------------------------------------------------------------- stage 3: the reward's diagnostics
REWARD_SCALES = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)  # perturbation std in the small policy's action space
REWARD_SHIFTS = (0, 1, 3, 10, 30, 100)  # state shift in standard deviations


@dataclass
class RewardDiagnostics:
    """Notebook 03's three checks of the coherent reward after BC + critic pretraining."""

    metrics: dict[str, float]  # pretraining metrics
    perturbation: pd.DataFrame  # mean reward vs perturbation of the demonstrated action
    far_from_data: pd.DataFrame  # max |r| vs state shift, HetStat and an MLP head
    action_gradients: dict[str, float]  # median ‖∇ₐQ‖ at demo and at random actions
    summary: pd.DataFrame  # the rows written to results/reward/<task>.csv


def run_reward_stage(task: str, method: str = "csil_residual", seed: int = 0, out_csv: Path | None = None,
                     progress: bool = True, profile: str | None = None) -> RewardDiagnostics:
    """Pretrain (BC + critic) and measure the coherent reward: peak at the demonstrated action,
    reversion far from the data (vs an MLP head), stationary demo actions; writes the summary rows."""
    import numpy as np

    from cohirl.csil.diagnostics import action_gradient_norms, reward_far_from_data, reward_vs_perturbation

    learner, demos, metrics = pretrained_learner(task, method, seed, progress, profile=profile)
    mlp_learner, _, _ = pretrained_learner(task, method, seed, progress, profile=profile,
                                           learner_overrides={"policy_head": "mlp", "pretrain_critic": False})
    batch = demos.sample(512, np.random.default_rng(seed))  # demonstration transitions
    pert = reward_vs_perturbation(learner, batch, list(REWARD_SCALES))
    far = reward_far_from_data(learner, batch, list(REWARD_SHIFTS)).assign(head="hetstat")
    far_mlp = reward_far_from_data(mlp_learner, batch, list(REWARD_SHIFTS)).assign(head="mlp")
    far_all = pd.concat([far, far_mlp])
    grads = action_gradient_norms(learner, batch)
    summary = pd.concat([pert.assign(kind="perturbation"), far_all.assign(kind="far_from_data")])
    summary = summary.assign(task=task, method=method, seed=seed, grad_demo=grads["demo"], grad_random=grads["random"])
    write_csv(summary, Path(out_csv or results_dir(profile) / "reward" / f"{task}.csv"))
    return RewardDiagnostics(metrics, pert, far_all, grads, summary)
