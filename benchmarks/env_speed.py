"""Simulator speed per registered task: environment steps per second under uniform random actions.

Usage: ``python benchmarks/env_speed.py [--steps 500] [--tasks pick_place assembly ...]``.
Only ``step`` is timed: resets (at the start and whenever an episode ends) are excluded. Two rates
are printed: per wall-clock second, and per CPU second of this process (robust to other processes
competing for the cores on a shared machine).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cohirl.envs import Task, TaskSpec, list_tasks, make_task


def steps_per_second(task: Task, n_steps: int, seed: int) -> tuple[float, float]:
    """Random-action steps per (wall-clock, CPU) second of ``task``, reset time excluded."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(n_steps, task.spec.action_dim))
    task.reset(seed)
    wall = cpu = 0.0
    for episode_seed, action in enumerate(actions, start=seed + 1):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        _, _, terminated, truncated, _ = task.step(action)
        wall += time.perf_counter() - wall_start
        cpu += time.process_time() - cpu_start
        if terminated or truncated:
            task.reset(episode_seed)
    return n_steps / wall, n_steps / max(cpu, 1e-9)


def _selected(specs: list[TaskSpec], names: list[str] | None) -> list[TaskSpec]:
    if not names:
        return specs
    by_name = {spec.name: spec for spec in specs}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}; registered: {sorted(by_name)}")
    return [by_name[name] for name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="timed steps per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", help="task names (default: every registered task)")
    args = parser.parse_args()
    print(f"{'task':<22} {'simulator':<10} {'steps/s':>9} {'steps/cpu-s':>12}")
    for spec in _selected(list_tasks(), args.tasks):
        task = make_task(spec.name)
        try:
            wall_rate, cpu_rate = steps_per_second(task, args.steps, args.seed)
        finally:
            task.close()
        print(f"{spec.name:<22} {spec.simulator:<10} {wall_rate:>9.0f} {cpu_rate:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
