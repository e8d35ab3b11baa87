"""Measure scripted-expert success on registered tasks, clean and under DART-style action noise.

Every episode ``i`` resets the task with seed ``seed + i``. With noise ``sigma`` the executed action is
``clip(expert_action + N(0, diag(s)^2))`` where ``s`` is ``sigma`` on the position inputs (the first
three dimensions), ``rotation_ratio * sigma`` on any rotation inputs between them and the gripper, and
0 on the gripper (the last dimension) -- the perturbation the demonstration collector applies.

Usage::

    python scripts/measure_experts.py --tasks lift square --episodes 100 --noise 0 0.3
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np

from cohirl.envs import Expert, Task, list_tasks, make_expert, make_task

DART_SIGMA = 0.3  # position-input noise of the demonstration collector (shared/stack.md)
ROTATION_RATIO = 2.0 / 3.0  # rotation inputs get 0.2 when position gets 0.3


@dataclass(frozen=True)
class Measurement:
    task: str
    noise: float
    episodes: int
    successes: int
    mean_length: float  # steps per episode, failures counted at the horizon
    mean_success_length: float  # steps per successful episode (nan when none succeeded)
    steps_per_second: float

    @property
    def rate(self) -> float:
        return self.successes / self.episodes


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % at z = 1.96)."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def noise_scale(action_dim: int, sigma: float, rotation_ratio: float = ROTATION_RATIO) -> np.ndarray:
    """Per-dimension noise std: position dims, then rotation dims, gripper (last) unperturbed."""
    scale = np.full(action_dim, sigma * rotation_ratio)
    scale[: min(3, action_dim - 1)] = sigma
    scale[-1] = 0.0
    return scale


def measure(task_name: str, n_episodes: int, seed: int, noise: float) -> Measurement:
    """Run ``n_episodes`` seeded expert episodes with action noise ``noise`` and count successes."""
    task = make_task(task_name)
    expert = make_expert(task)
    scale = noise_scale(task.spec.action_dim, noise)
    successes, lengths, success_lengths = 0, [], []
    start = time.perf_counter()
    try:
        for episode in range(n_episodes):
            success, length = _run_episode(task, expert, seed + episode, scale)
            successes += int(success)
            lengths.append(length)
            if success:
                success_lengths.append(length)
    finally:
        task.close()
    elapsed = time.perf_counter() - start
    return Measurement(
        task=task_name,
        noise=noise,
        episodes=n_episodes,
        successes=successes,
        mean_length=float(np.mean(lengths)) if lengths else math.nan,
        mean_success_length=float(np.mean(success_lengths)) if success_lengths else math.nan,
        steps_per_second=sum(lengths) / max(elapsed, 1e-9),
    )


def _run_episode(task: Task, expert: Expert, seed: int, scale: np.ndarray) -> tuple[bool, int]:
    rng = np.random.default_rng(seed)  # noise stream of this episode, independent of the simulator's
    obs = task.reset(seed)
    expert.reset(seed)
    while True:
        action = expert.act(obs)
        executed = np.clip(action + rng.normal(size=action.shape) * scale, -1.0, 1.0)
        obs, _, terminated, truncated, info = task.step(executed)
        if terminated or truncated:
            return bool(info["success"]), int(info["t"])


def format_table(rows: list[Measurement]) -> str:
    header = f"{'task':<14}{'noise':>6}{'success':>10}{'rate':>7}{'wilson 95%':>16}{'len':>7}{'len(ok)':>9}{'steps/s':>9}"
    lines = [header, "-" * len(header)]
    for row in rows:
        low, high = wilson_interval(row.successes, row.episodes)
        lines.append(
            f"{row.task:<14}{row.noise:>6.2f}{f'{row.successes}/{row.episodes}':>10}{row.rate:>7.2f}"
            f"{f'[{low:.2f}, {high:.2f}]':>16}{row.mean_length:>7.0f}{row.mean_success_length:>9.0f}"
            f"{row.steps_per_second:>9.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="task names (default: every registered task)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, DART_SIGMA], help="position-input sigmas")
    args = parser.parse_args(argv)
    names = args.tasks or [spec.name for spec in list_tasks()]
    rows = []
    for name in names:
        for sigma in args.noise:
            rows.append(measure(name, args.episodes, args.seed, sigma))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_table(rows))


if __name__ == "__main__":
    main()
