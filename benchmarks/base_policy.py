"""Benchmark the base stage: in-memory windowed loader vs lerobot's per-item loader, and base inference.

Prints, from one run on the same dataset and the same small diffusion config:
  - training steps/s with cohirl's in-memory windows vs ``LeRobotDataset(delta_timestamps)`` +
    ``torch.utils.data.DataLoader``, and the loader's share of each step;
  - ``ChunkStepper.base_action`` ms per env step (and per re-plan) vs lerobot's ``select_action``.

Uses ``data/quick/demos/square`` when it exists, else writes a synthetic square-shaped dataset with
``write_dataset`` into ``--workdir``. About two minutes on 2 cores with the defaults:

    .venv/bin/python benchmarks/base_policy.py [--dataset DIR] [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from cohirl._runtime import configure_torch
from cohirl.demos.dataset import DemoArrays, Episode, load_demo_arrays, write_dataset
from cohirl.envs import get_spec
from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY
from cohirl.policies.base import ChunkStepper
from cohirl.policies.config import BaseTrainConfig, small_cpu_config
from cohirl.policies.lerobot_base import LerobotChunkPolicy
from cohirl.policies.train_base import (
    build_samples,
    dataset_stats,
    make_policy,
    make_policy_config,
    shuffled_rows,
)

DEFAULT_DATASET = Path("data/quick/demos/square")


def synthetic_dataset(root: Path, n_episodes: int = 20, length: int = 160, seed: int = 0) -> Path:
    """Random-walk episodes with square's sizes (only the shapes matter for timing)."""
    if (root / "meta" / "cohirl_complete.json").exists():
        return root
    spec = get_spec("square")
    rng = np.random.default_rng(seed)

    def walk(dim: int) -> np.ndarray:
        return np.cumsum(rng.normal(scale=0.05, size=(length, dim)), axis=0).astype(np.float32)

    episodes = [Episode(seed=i, state=walk(spec.state_dim), env_state=walk(spec.env_state_dim),
                        action=np.clip(walk(spec.action_dim), -1, 1), reward=np.zeros(length, np.float32),
                        done=np.r_[np.zeros(length - 1, bool), True], success=np.zeros(length, bool))
                for i in range(n_episodes)]
    return write_dataset(episodes, root, spec, overwrite=True, provenance={"synthetic": True})


def time_training(policy: Any, batches: Iterator[dict[str, Any]], prepare: Callable[[Any], Any],
                  steps: int) -> tuple[float, float]:
    """(seconds per step, loader seconds per step) over ``steps`` steps after one warm-up step."""
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    policy.train()
    loader_s, total_s = 0.0, 0.0
    for step in range(steps + 1):
        start = time.perf_counter()
        batch = prepare(next(batches))
        fetched = time.perf_counter()
        loss, _ = policy.forward(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step pays one-off costs (worker start, allocator warm-up)
            loader_s += fetched - start
            total_s += time.perf_counter() - start
    return total_s / steps, loader_s / steps


def in_memory_batches(demos: DemoArrays, policy_cfg: Any, pre: Any, cfg: BaseTrainConfig) -> Iterator[dict[str, Any]]:
    samples = build_samples(demos, policy_cfg, pre, cfg.frames_dropped_at_episode_end())
    for rows in shuffled_rows(len(samples), cfg.batch_size, torch.Generator().manual_seed(0)):
        yield samples.batch(rows)


def lerobot_batches(demos: DemoArrays, policy_cfg: Any, cfg: BaseTrainConfig, workers: int) -> Iterator[dict[str, Any]]:
    """lerobot's own path: per-item windows via ``delta_timestamps``, batched by a DataLoader."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    fps = demos.fps
    obs_dt = [i / fps for i in policy_cfg.observation_delta_indices]
    delta = {STATE_KEY: obs_dt, ENV_STATE_KEY: obs_dt, "action": [i / fps for i in policy_cfg.action_delta_indices]}
    dataset = LeRobotDataset(demos.repo_id, root=demos.root, delta_timestamps=delta)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=workers > 0)
    while True:
        yield from loader


def time_inference(policy: Any, pre: Any, post: Any, demos: DemoArrays, replan_every: int,
                   n_steps: int) -> dict[str, float]:
    """ms per env step for the cohirl stepper and for lerobot's ``select_action`` (+ processors)."""
    frames = [{STATE_KEY: demos.state[t], ENV_STATE_KEY: demos.env_state[t]} for t in range(n_steps)]
    stepper = ChunkStepper(LerobotChunkPolicy(policy, pre, post), replan_every)
    stepper.reset(0)
    start = time.perf_counter()
    for obs in frames:
        stepper.base_action(obs)
    stepper_s = time.perf_counter() - start
    policy.reset()
    start = time.perf_counter()
    with torch.inference_mode():
        for obs in frames:
            batch = pre({k: torch.from_numpy(v) for k, v in obs.items()})
            post(policy.select_action(batch))
    select_s = time.perf_counter() - start
    return {"stepper_ms": 1e3 * stepper_s / n_steps, "replan_ms": 1e3 * stepper_s / stepper.n_replans,
            "select_action_ms": 1e3 * select_s / n_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=None, help="dataset root (default: data/quick/demos/square)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cohirl_bench_base"))
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per loader")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for lerobot's loader")
    parser.add_argument("--env-steps", type=int, default=150, help="env steps for the inference timing")
    parser.add_argument("--replan-every", type=int, default=10)
    args = parser.parse_args()

    configure_torch(args.threads)
    root = args.dataset or (DEFAULT_DATASET if DEFAULT_DATASET.exists() else None)
    root = root or synthetic_dataset(args.workdir / "square_synthetic")
    t0 = time.perf_counter()
    demos = load_demo_arrays(root)
    load_s = time.perf_counter() - t0
    cfg = small_cpu_config(batch_size=args.batch)
    torch.manual_seed(0)
    policy_cfg = make_policy_config(cfg, demos.state.shape[1], demos.env_state.shape[1], demos.action.shape[1])
    policy = make_policy(policy_cfg)
    from lerobot.policies.factory import make_pre_post_processors

    pre, post = make_pre_post_processors(policy_cfg, dataset_stats=dataset_stats(demos))
    t0 = time.perf_counter()
    memory = in_memory_batches(demos, policy_cfg, pre, cfg)
    next(memory)
    build_s = time.perf_counter() - t0
    mem_step, mem_load = time_training(policy, memory, lambda b: b, args.steps)
    ler_step, ler_load = time_training(policy, lerobot_batches(demos, policy_cfg, cfg, args.workers), pre, args.steps)
    infer = time_inference(policy.eval(), pre, post, demos, args.replan_every, min(args.env_steps, len(demos.action)))
    _report(args, root, demos, load_s, build_s, (mem_step, mem_load), (ler_step, ler_load), infer)


def _report(args: argparse.Namespace, root: Path, demos: DemoArrays, load_s: float, build_s: float,
            memory: tuple[float, float], lerobot: tuple[float, float], infer: dict[str, float]) -> None:
    print(f"\ndataset {root}: {demos.n_episodes} episodes, {len(demos.action)} frames "
          f"(load_demo_arrays {load_s:.2f} s, window build {build_s:.2f} s); torch threads {torch.get_num_threads()}")
    print(f"small diffusion config, batch {args.batch}, {args.steps} timed steps each")
    print(f"{'loader':<34}{'steps/s':>9}{'ms/step':>9}{'loader ms':>11}{'loader share':>14}")
    for name, (step, load) in (("in-memory windows (cohirl)", memory),
                               (f"LeRobotDataset+DataLoader (w={args.workers})", lerobot)):
        print(f"{name:<34}{1 / step:>9.1f}{1e3 * step:>9.1f}{1e3 * load:>11.2f}{load / step:>13.1%}")
    print(f"\ninference over {min(args.env_steps, len(demos.action))} env steps, re-plan every {args.replan_every}:")
    print(f"  ChunkStepper.base_action  {infer['stepper_ms']:.2f} ms/env step ({infer['replan_ms']:.1f} ms per re-plan)")
    print(f"  lerobot select_action     {infer['select_action_ms']:.2f} ms/env step "
          "(re-plans every n_action_steps=8, incl. pre/post-processing)")


if __name__ == "__main__":
    main()
