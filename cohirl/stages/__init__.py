"""One function per DVC stage, configured from ``params.yaml``; the notebooks call these and show.

Each stage lives in a module of its own, so that DVC reruns a stage only when the code it runs
changes (``dvc.yaml`` lists each stage's files, derived by ``cohirl wiring``):

- :mod:`cohirl.stages.common` — artefact directories, stage configs, the demonstrations and the frozen base
- :mod:`cohirl.stages.demos` — stage 1, ``run_demos_stage``
- :mod:`cohirl.stages.base` — stage 2, ``run_base_stage``; BC demo scaling, ``run_demo_scaling``
- :mod:`cohirl.stages.reward` — stage 3's reward diagnostics, ``run_reward_stage``
- :mod:`cohirl.stages.finetune` — stages 3–4, ``run_finetune_stage`` (and ``pretrained_learner``)
- :mod:`cohirl.stages.report` — stage 5, ``run_report``

Every file is written through :mod:`cohirl.io`'s atomic writers (a temporary sibling, then a rename).
The names below are importable from ``cohirl.stages`` directly; each loads only its own module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "data_dir": "cohirl.stages.common", "results_dir": "cohirl.stages.common", "run_dir": "cohirl.stages.common",
    "checkpoint_dir": "cohirl.stages.common", "EvalConfig": "cohirl.stages.common",
    "BaseStageConfig": "cohirl.stages.common", "DemoScalingConfig": "cohirl.stages.common",
    "stage_config": "cohirl.stages.common", "stage_demos": "cohirl.stages.common",
    "base_factory": "cohirl.stages.common", "evaluate_base": "cohirl.stages.common",
    "run_demos_stage": "cohirl.stages.demos",
    "run_base_stage": "cohirl.stages.base", "run_demo_scaling": "cohirl.stages.base",
    "run_reward_stage": "cohirl.stages.reward", "RewardDiagnostics": "cohirl.stages.reward",
    "run_finetune_stage": "cohirl.stages.finetune", "pretrained_learner": "cohirl.stages.finetune",
    "run_report": "cohirl.stages.report", "Report": "cohirl.stages.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cohirl.stages' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
