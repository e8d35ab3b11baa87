"""Which tasks put the small CPU base in a given success regime? (sizes the `effect` profile)

For each task: DART demos (σ_pos 0.3), the quick profile's base recipe (small U-Net, `--steps`),
and a paired evaluation of `--episodes` episodes with the quick profile's evaluation seed. Writes
one row per task to `--out` (and prints it). Work files go to `--work` (default build/base_scan).

    python scripts/scan_base_regime.py --tasks hammer peg_insert_side stick_pull --out results/base_scan/quick.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from cohirl import _runtime


def scan_task(task: str, n_demos: int, steps: int, episodes: int, work: Path, seed: int) -> dict[str, object]:
    from cohirl.demos.collect import NoiseConfig
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.demos.pipeline import make_demos
    from cohirl.eval.stats import wilson_interval
    from cohirl.policies.config import small_cpu_config
    from cohirl.policies.train_base import train_base
    from cohirl.stages import EvalConfig, evaluate_base

    start = time.perf_counter()
    demos_dir, base_dir = work / task / "demos", work / task / "base"
    if not demos_dir.exists():
        make_demos(task, n_demos, 0, NoiseConfig(pos_sigma=0.3), demos_dir, progress=False)
    if not base_dir.exists():
        train_base(load_demo_arrays(demos_dir), small_cpu_config(steps=steps), base_dir, seed=0, progress=False)
    rows = evaluate_base(task, EvalConfig(episodes, seed, 1), base_dir, progress=False)
    k = int(rows.success.sum())
    low, high = wilson_interval(k, len(rows))
    return {"task": task, "n_demos": n_demos, "base_steps": steps, "n_episodes": len(rows), "successes": k,
            "success_rate": k / len(rows), "ci_low": low, "ci_high": high,
            "mean_length": float(rows.length.mean()), "minutes": (time.perf_counter() - start) / 60}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--demos", type=int, default=25)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=12345, help="evaluation seed (the profiles' eval.seed)")
    p.add_argument("--work", type=Path, default=Path("build/base_scan"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    _runtime.set_offline_env()
    _runtime.configure_torch(1)
    rows = []
    for task in args.tasks:
        rows.append(scan_task(task, args.demos, args.steps, args.episodes, args.work, args.seed))
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    if args.out:
        from cohirl.io import write_csv

        write_csv(pd.DataFrame(rows), args.out)


if __name__ == "__main__":
    main()
