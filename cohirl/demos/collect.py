"""Expert demonstrations with DART-style noise injection.

DART (Laskey et al. 2017): the *executed* action is the expert's action plus Gaussian noise, while
the *recorded label* is the expert's clean action at the state actually visited. The data therefore
shows how to recover from small mistakes, which behaviour cloning from clean scripted data lacks.
Timing jitter (``hold_prob``): with that probability the previous executed action is repeated
instead, a hesitation that desynchronises the expert's timing from the recorded labels' rhythm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cohirl.demos.dataset import Episode
from cohirl.envs import ENV_STATE_KEY, STATE_KEY, Task, TaskSpec, make_expert, make_task
from cohirl.errors import CohirlError
from cohirl.progress import progress_bar

DEMO_SEED_OFFSET = 1_000_000_000  # demo initial states never coincide with evaluation seeds


@dataclass(frozen=True)
class NoiseConfig:
    """DART noise on the executed action (in normalised action units)."""

    pos_sigma: float = 0.0  # translation inputs
    rot_sigma: float = 0.0  # rotation inputs (robosuite OSC only)
    hold_prob: float = 0.0  # timing jitter: repeat the previous executed action

    def __post_init__(self) -> None:
        if min(self.pos_sigma, self.rot_sigma) < 0 or not 0 <= self.hold_prob < 1:
            raise CohirlError(f"invalid noise {self}: sigmas must be >= 0 and hold_prob in [0, 1).")

    def sigma_vector(self, spec: TaskSpec) -> np.ndarray:
        """Per-dimension std; the gripper dimension (last) is never perturbed."""
        sigma = np.zeros(spec.action_dim)
        if spec.action_dim == 7:  # robosuite OSC_POSE: dx dy dz, droll dpitch dyaw, gripper
            sigma[:3], sigma[3:6] = self.pos_sigma, self.rot_sigma
        else:  # metaworld: dx dy dz, gripper
            sigma[: spec.action_dim - 1] = self.pos_sigma
        return sigma


@dataclass
class CollectionReport:
    """What happened while collecting: every attempt, successful or not."""

    task: str
    noise: NoiseConfig
    attempts: int = 0
    successes: int = 0
    lengths: list[int] = field(default_factory=list)
    attempt_seeds: list[int] = field(default_factory=list)
    attempt_success: list[bool] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.successes / max(1, self.attempts)

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "attempts": self.attempts, "successes": self.successes,
                "expert_success_rate": self.success_rate, "noise": vars(self.noise)}


def demo_seed(seed: int, i: int) -> int:
    """Initial-state seed of the i-th demo attempt of a collection run."""
    return DEMO_SEED_OFFSET + seed * 100_000 + i


def rollout_expert(task: Task, init_seed: int, noise: NoiseConfig, rng: np.random.Generator) -> Episode:
    """One expert episode with noisy execution and clean labels."""
    expert = make_expert(task)
    obs = task.reset(init_seed)
    expert.reset(init_seed)
    sigma = noise.sigma_vector(task.spec)
    rows: dict[str, list[Any]] = {k: [] for k in ("state", "env_state", "action", "reward", "done", "success")}
    executed = np.zeros(task.spec.action_dim)
    done = False
    while not done:
        label = np.clip(np.asarray(expert.act(obs), dtype=np.float64), -1.0, 1.0)
        hesitate = task.t > 0 and rng.random() < noise.hold_prob  # keep the previous command
        if not hesitate:
            executed = np.clip(label + rng.normal(size=label.shape) * sigma, -1.0, 1.0)
        rows["state"].append(obs[STATE_KEY])
        rows["env_state"].append(obs[ENV_STATE_KEY])
        rows["action"].append(label.astype(np.float32))
        obs, reward, terminated, truncated, info = task.step(executed)
        done = terminated or truncated
        rows["reward"].append(reward)
        rows["done"].append(done)
        rows["success"].append(info["success"])
    return Episode(seed=init_seed, state=np.stack(rows["state"]), env_state=np.stack(rows["env_state"]),
                   action=np.stack(rows["action"]), reward=np.asarray(rows["reward"], np.float32),
                   done=np.asarray(rows["done"], bool), success=np.asarray(rows["success"], bool))


def collect_demos(task_name: str, n_demos: int, seed: int = 0, noise: NoiseConfig | None = None,
                  max_attempts: int | None = None, progress: bool = True,
                  ) -> tuple[list[Episode], CollectionReport]:
    """Roll out the expert until ``n_demos`` successful episodes are recorded (failures dropped)."""
    if n_demos <= 0:
        raise CohirlError(f"n_demos must be a positive number of episodes, got {n_demos}.")
    noise = noise or NoiseConfig()
    max_attempts = max_attempts or 3 * n_demos + 10
    task = make_task(task_name)
    report, kept = CollectionReport(task_name, noise), []
    bar = progress_bar(total=n_demos, desc="successful demos", disable=not progress)
    try:
        while len(kept) < n_demos and report.attempts < max_attempts:
            init_seed = demo_seed(seed, report.attempts)
            ep = rollout_expert(task, init_seed, noise, np.random.default_rng([seed, report.attempts]))
            ok = bool(ep.success[-1])
            report.attempts += 1
            report.attempt_seeds.append(init_seed)
            report.attempt_success.append(ok)
            report.lengths.append(len(ep))
            if ok:
                report.successes += 1
                kept.append(ep)
                bar.update(1)
            bar.set_postfix(expert_success=f"{report.success_rate:.2f}")
    finally:
        bar.close()
        task.close()
    if len(kept) < n_demos:
        raise CohirlError(f"{task_name}: only {len(kept)}/{n_demos} successful demos in {max_attempts} "
                          f"attempts (expert success {report.success_rate:.0%}); lower the noise {noise}.")
    return kept, report
