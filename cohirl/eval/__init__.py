"""Evaluation: seeded, paired, parallel rollouts and the statistics used to report them.

Names are imported on first use so that evaluation workers, which import
``cohirl.eval.rollout``, do not pay for pandas and scipy.stats.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "COLUMNS": "cohirl.eval.rollout",
    "eval_init_seeds": "cohirl.eval.rollout",
    "evaluate": "cohirl.eval.rollout",
    "run_episode": "cohirl.eval.rollout",
    "ExpertPolicy": "cohirl.eval.expert_policy",
    "expert_policy_factory": "cohirl.eval.expert_policy",
    "bootstrap_ci": "cohirl.eval.stats",
    "iqm": "cohirl.eval.stats",
    "probability_of_improvement": "cohirl.eval.stats",
    "stratified_bootstrap_iqm": "cohirl.eval.stats",
    "summarize_success": "cohirl.eval.stats",
    "wilson_interval": "cohirl.eval.stats",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cohirl.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = sorted(_EXPORTS)
