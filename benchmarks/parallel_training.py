"""Why `cohirl repro --jobs N` uses processes, not threads: base-training throughput three ways.

Measured side by side in one run on the same dataset and the small diffusion config:
  1. one process, 1 torch thread;
  2. one process, N torch threads;
  3. N processes at once, 1 torch thread each (what `cohirl repro --jobs N` does with N stages).
Prints the aggregate gradient steps/s of each and their ratio to (1).

    .venv/bin/python benchmarks/parallel_training.py [--dataset data/quick/demos/pick_place] [--steps 300] [--n 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

DEFAULT_DATASET = Path("data/quick/demos/pick_place")


def train_once(dataset: str, steps: int, threads: int, out: str) -> float:
    """Gradient steps/s of one small-config base training run (ignores the saving time)."""
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.policies.config import small_cpu_config
    from cohirl.policies.train_base import train_base

    metrics = train_base(load_demo_arrays(Path(dataset)), small_cpu_config(steps=steps, n_threads=threads),
                         Path(out), progress=False)
    return float(metrics["steps_per_second"])


def _worker(args: tuple[str, int, str]) -> float:
    dataset, steps, out = args
    return train_once(dataset, steps, 1, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="a dataset written by `cohirl demos`")
    parser.add_argument("--steps", type=int, default=300, help="gradient steps per run")
    parser.add_argument("--n", type=int, default=os.cpu_count() or 2, help="threads / processes to compare")
    args = parser.parse_args()
    if not args.dataset.exists():
        raise SystemExit(f"no dataset at {args.dataset}: run `dvc repro demos@pick_place` "
                         "(or `cohirl demos --task pick_place --n 25`) first, or pass --dataset.")
    with tempfile.TemporaryDirectory() as tmp:
        one = train_once(str(args.dataset), args.steps, 1, f"{tmp}/t1")
        threads = train_once(str(args.dataset), args.steps, args.n, f"{tmp}/tn")
        start = time.perf_counter()
        with mp.get_context("spawn").Pool(args.n) as pool:
            per_process = pool.map(_worker, [(str(args.dataset), args.steps, f"{tmp}/p{i}") for i in range(args.n)])
        wall = time.perf_counter() - start
    procs = sum(per_process)
    print(f"dataset {args.dataset}, small diffusion config, {args.steps} steps per run, {os.cpu_count()} cores")
    print(f"{'setting':<34}{'steps/s (total)':>16}{'vs 1 thread':>13}")
    print(f"{'1 process x 1 thread':<34}{one:>16.1f}{1.0:>13.2f}")
    print(f"{f'1 process x {args.n} threads':<34}{threads:>16.1f}{threads / one:>13.2f}")
    print(f"{f'{args.n} processes x 1 thread':<34}{procs:>16.1f}{procs / one:>13.2f}"
          f"   (per process {', '.join(f'{p:.1f}' for p in per_process)}; pool wall {wall:.0f} s incl. start-up)")


if __name__ == "__main__":
    main()
