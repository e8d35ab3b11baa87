"""What every stage shares: the profile's artefact directories, the stage-level configs read from
``params.yaml``, the demonstrations a stage trains on, and the frozen base it composes with.

Layout of artefacts, one tree per profile ``<p>`` (paths relative to the repository root):
``data/<p>/demos/<task>`` (stage 1) → ``data/<p>/base/<task>`` + ``results/<p>/base/<task>.csv`` (stage 2)
→ ``results/<p>/runs/<task>/<method>/<seed>/`` with the run's resumable state under
``data/<p>/checkpoints/<task>/<method>/<seed>/`` (stages 3–4) → ``results/<p>/tables``,
``results/<p>/figures`` (5). ``profile=None`` everywhere means params.yaml's default profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cohirl.config import from_dict, profile_name, read_params, task_settings
from cohirl.errors import CohirlError


def data_dir(profile: str | None = None) -> Path:
    """``data/<profile>``: the profile's demonstrations, bases and demo-scaling bases (DVC-cached)."""
    return Path("data") / profile_name(read_params(), profile)


def results_dir(profile: str | None = None) -> Path:
    """``results/<profile>``: the profile's committed rows, tables and figures."""
    return Path("results") / profile_name(read_params(), profile)


def run_dir(task: str, method: str, seed: int, profile: str | None = None) -> Path:
    """``results/<p>/runs/<task>/<method>/<seed>``: one finetuning run's committed rows."""
    return results_dir(profile) / "runs" / task / method / str(seed)


def checkpoint_dir(task: str, method: str, seed: int, profile: str | None = None) -> Path:
    """``data/<p>/checkpoints/<task>/<method>/<seed>``: the run's resumable state and its final actor
    (git-ignored, apart from the rows, so the report's inputs hold only rows)."""
    return data_dir(profile) / "checkpoints" / task / method / str(seed)


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
    # Train on the first n demonstrations only (None: all). The finetuning methods use the same n, so a
    # profile can collect more demonstrations for BC demo scaling without changing the base or CSIL.
    n_demos: int | None = None
    # Any other BaseTrainConfig field, typed and checked when params.yaml is read
    # (cohirl.config.overrides_of(BaseTrainConfig)); steps and batch_size are set above, not here.
    train: Any = field(default_factory=dict)

    def __post_init__(self) -> None:
        from cohirl.config import as_overrides, set_fields
        from cohirl.policies.config import BaseTrainConfig

        train = as_overrides(BaseTrainConfig, self.train, "base.train")
        object.__setattr__(self, "train", train)
        if twice := sorted({"steps", "batch_size"} & set(set_fields(train))):
            raise CohirlError(f"base.train.{twice[0]}: set it as base.{twice[0]} (one knob, one place).")

    def train_config(self) -> Any:
        from cohirl.config import set_fields
        from cohirl.policies.config import config_for_profile

        overrides = {**set_fields(self.train), **{k: v for k, v in (("steps", self.steps), ("batch_size", self.batch_size))
                                                 if v is not None}}
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


def stage_demos(task: str, profile: str | None = None, demos_root: Path | None = None) -> Any:
    """The demonstrations the base and the finetuning methods use: ``data/<p>/demos/<task>``, its
    first ``base.n_demos`` episodes when set."""
    from cohirl.demos.dataset import load_demo_arrays

    demos = load_demo_arrays(Path(demos_root or data_dir(profile) / "demos" / task))
    n = stage_config(BaseStageConfig, "base", task, profile).n_demos
    return demos if n is None else demos.select_episodes(n)


def base_factory(task: str, base_dir: Path | None = None, replan_every: int | None = None,
                 profile: str | None = None) -> Any:
    """Picklable factory of the frozen base (deterministic sampling: zero initial diffusion noise)."""
    from cohirl.envs import get_spec
    from cohirl.policies.lerobot_base import LerobotBaseFactory

    cfg = stage_config(BaseStageConfig, "base", task, profile)
    path = Path(base_dir or data_dir(profile) / "base" / task)
    return LerobotBaseFactory(os.fspath(path), replan_every or cfg.replan_every, get_spec(task),
                              zero_noise=True, n_threads=1)


def evaluate_base(task: str, ev: EvalConfig, base_dir: Path | None = None, progress: bool = True,
                  profile: str | None = None) -> pd.DataFrame:
    from cohirl.eval.rollout import evaluate

    return evaluate(base_factory(task, base_dir, profile=profile), task, ev.n_episodes, ev.seed, workers=ev.workers,
                    method="base", progress=progress, lockstep=ev.lockstep)
