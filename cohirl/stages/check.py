"""Every stage's settings of a profile, built (typed and checked) before anything runs: a typo in
``params.yaml`` fails at once, naming the key and the valid ones, not an hour into a pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cohirl.config import MATRIX_KEYS, from_dict, profile_runs, profile_section, read_params, task_settings
from cohirl.errors import CohirlError

SECTION_KEYS = ("demos", "base", "demo_scaling", "finetune", "eval")
PROFILE_KEYS = (*MATRIX_KEYS, "extra_runs", *SECTION_KEYS)


def stage_classes() -> dict[str, type]:
    """The config dataclass of each ``profiles.<p>.<section>``."""
    from cohirl.demos.pipeline import DemosConfig
    from cohirl.stages.common import BaseStageConfig, DemoScalingConfig, EvalConfig
    from cohirl.training.loop import FinetuneConfig

    return {"demos": DemosConfig, "base": BaseStageConfig, "demo_scaling": DemoScalingConfig,
            "finetune": FinetuneConfig, "eval": EvalConfig}


def check_profile(profile: str, params: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Build every stage config of ``profile`` for each of its tasks (per-task settings merged);
    returns them by task and section. Unknown sections, tasks or methods fail with one message."""
    from cohirl.envs import get_spec
    from cohirl.methods import METHODS

    params = params if params is not None else read_params()
    section = profile_section(params, profile)
    if unknown := sorted(set(section) - set(PROFILE_KEYS)):
        raise CohirlError(f"params profiles.{profile}: unknown keys {unknown}; valid: {sorted(PROFILE_KEYS)}.")
    try:
        runs = profile_runs(section)
    except CohirlError as exc:
        raise CohirlError(f"params profiles.{profile}: {exc}") from None
    if unknown := sorted({m for _, m, _ in runs} - set(METHODS)):
        raise CohirlError(f"params profiles.{profile}: unknown methods {unknown}; known: {sorted(METHODS)}.")
    built: dict[str, dict[str, Any]] = {}
    for task in section["tasks"]:
        get_spec(task)  # an unknown task names the registered ones
        built[task] = {name: from_dict(cls, task_settings(params, name, task, profile), f"profiles.{profile}.{name}")
                       for name, cls in stage_classes().items()}
        evaluation = built[task]["eval"]
        if bad := {k: getattr(evaluation, k) for k in ("n_episodes", "workers", "lockstep") if getattr(evaluation, k) < 1}:
            raise CohirlError(f"params profiles.{profile}.eval: {bad} (task {task}) must be >= 1: an evaluation needs "
                              "at least one episode, worker and lockstep slot.")
    return built


def check_params_file(path: Path) -> None:
    """Every pipeline of ``path`` (when it exists: cohirl's own project) must have settings that build,
    before any stage starts: ``cohirl repro`` checks it before submitting, and
    every stage command (``cohirl notebook``) before it runs, so that a sweep (``dvc exp run -S ...``)
    naming an unknown task, method or key stops at once with one message naming it."""
    if not path.exists():
        return
    params = read_params(path)
    for name in [params.get("profile"), *(params.get("pipelines") or [])]:
        profile_section(params, name)  # the header names profiles that exist
    for profile in params.get("pipelines") or []:  # what a sweep's -S names
        check_profile(profile, params)
