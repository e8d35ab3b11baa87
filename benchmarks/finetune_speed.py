"""Training-loop speed vs the raw simulator, measured side by side in one run.

Prints: raw simulator steps/s (random actions), training-loop env steps/s at UTD 1, their ratio
(target >= 0.5 on square), learner updates/s, and the share of loop time spent in the simulator,
the frozen base and the learner. Uses data/demos/<task> and data/base/<task> when they exist
(after `dvc repro base`); otherwise it collects a few demos and trains a tiny base first.

    python benchmarks/finetune_speed.py --task square --steps 600
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from cohirl import _runtime
from cohirl.demos.dataset import load_demo_arrays
from cohirl.envs import make_task
from cohirl.stages import EvalConfig, base_factory
from cohirl.training.loop import FinetuneConfig, Finetuner


def raw_sim_speed(task_name: str, steps: int) -> float:
    task, rng = make_task(task_name), np.random.default_rng(0)
    task.reset(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = task.step(rng.uniform(-1, 1, task.spec.action_dim))
        if term or trunc:
            task.reset(int(rng.integers(1 << 30)))
    return steps / (time.perf_counter() - start)


def timed(obj: Any, name: str, totals: dict[str, float], label: str) -> None:
    fn: Callable[..., Any] = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - start

    setattr(obj, name, wrapper)


def ensure_inputs(task: str) -> tuple[Path, Path]:
    demos, base = Path("data/demos") / task, Path("data/base") / task
    if not demos.exists():
        from cohirl.demos.collect import NoiseConfig
        from cohirl.demos.pipeline import make_demos

        make_demos(task, 5, 0, NoiseConfig(), demos)
    if not base.exists():
        from cohirl.policies.config import small_cpu_config
        from cohirl.policies.train_base import train_base

        train_base(load_demo_arrays(demos), small_cpu_config(steps=50), base)
    return demos, base


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--task", default="square")
    p.add_argument("--method", default="csil_residual")
    p.add_argument("--steps", type=int, default=600, help="env steps of the loop after warm-up")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = p.parse_args()
    _runtime.configure_torch(args.threads)
    demos_root, base_dir = ensure_inputs(args.task)
    warmup = 100
    cfg = FinetuneConfig(env_steps=warmup + args.steps, eval_every=10**9, eval_episodes=1,
                         checkpoint_every=10**9, bc_steps=50, critic_pretrain_steps=10, warmup_steps=warmup,
                         batch_size=args.batch, utd=1, learner={"hetstat_features": 64})
    runner = Finetuner(args.task, args.method, 0, cfg, load_demo_arrays(demos_root),
                       base_factory(args.task, base_dir), EvalConfig(1, 0, 1), Path("/tmp/cohirl-bench"), False)
    runner.setup()
    totals: dict[str, float] = defaultdict(float)
    timed(runner.task, "step", totals, "simulator")
    timed(runner.base, "base_action", totals, "base policy")
    timed(runner.learner, "update", totals, "learner")
    bar, start = tqdm(disable=True), time.perf_counter()
    while runner.state.env_steps < cfg.env_steps:
        runner.run_episode(bar)
    loop_s = time.perf_counter() - start
    loop_speed = runner.state.env_steps / loop_s
    sim_speed = raw_sim_speed(args.task, 1000)
    updates = runner.learner.num_updates
    print(f"task {args.task}, method {args.method}, batch {args.batch}+{args.batch}, UTD 1")
    print(f"raw simulator          {sim_speed:8.1f} steps/s")
    print(f"training loop          {loop_speed:8.1f} env steps/s   ratio {loop_speed / sim_speed:.3f} (target >= 0.5)")
    print(f"learner                {updates / totals['learner']:8.1f} updates/s ({updates} updates)")
    for label in ("simulator", "base policy", "learner"):
        print(f"  share {label:<14} {totals[label] / loop_s:6.1%}")
    print(f"  share {'other':<14} {1 - sum(totals.values()) / loop_s:6.1%}")


if __name__ == "__main__":
    main()
