"""Finetuning-loop and evaluation speed vs the raw simulator, measured side by side in one run.

Uses the active (or ``--profile``) profile's real finetune settings for the task: learner sizes,
batch, UTD and warm-up, and its base's re-planning period; only BC and critic pretraining are cut
short (they do not change the cost of an env step). Prints, per task:

- raw simulator steps/s (random actions; measured before and after the rest, the mean is used);
- acting-only env steps/s: simulator + frozen base + small policy + replay insertion, no updates;
- training-loop env steps/s at the profile's UTD, no evaluation inside the timed loop: in one process
  (the update, then the simulator and the base) and with the env worker process (the simulator and
  the base step while the update runs; the same rows, ``tests/test_finetune_loop.py``);
- evaluation env steps/s: mode actions, the critic's value probe, one process; one episode at a
  time and ``--lockstep`` episodes stepped together (one batched base call per re-plan);
- learner updates/s, and the loop's time shares (simulator, base, learner, other);
- the two ratios of issue 25: loop ÷ raw simulator and evaluation ÷ raw simulator, with targets
  (square ≥ 0.35 / ≥ 0.75; Meta-World ≥ 0.10 / ≥ 0.40).

Inputs: data/<profile>/demos/<task> and data/<profile>/base/<task> when they exist (after `cohirl repro`); otherwise a
few demos and a briefly trained base of the profile's base architecture under build/bench/ (the
base's per-step cost depends on its architecture, not on how long it trained).

    python benchmarks/finetune_speed.py --tasks square pick_place --steps 600
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from cohirl import _runtime
from cohirl.demos.dataset import load_demo_arrays
from cohirl.envs import get_spec, make_task
from cohirl.eval.rollout import built_tasks, evaluate
from cohirl.stages import BaseStageConfig, EvalConfig, base_factory, data_dir, stage_config
from cohirl.training.agent import save_actor_snapshot, snapshot_factory
from cohirl.training.loop import FinetuneConfig, Finetuner

TARGETS = {"robosuite": (0.35, 0.75), "metaworld": (0.10, 0.40)}  # (loop, evaluation) ÷ raw simulator


def raw_sim_speed(task_name: str, steps: int) -> float:
    task, rng = make_task(task_name), np.random.default_rng(0)
    task.reset(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = task.step(rng.uniform(-1, 1, task.spec.action_dim))
        if term or trunc:
            task.reset(int(rng.integers(1 << 30)))
    speed = steps / (time.perf_counter() - start)
    task.close()
    return speed


def timed(obj: Any, name: str, totals: dict[str, float], label: str) -> None:
    """Wrap ``obj.name`` so that its wall time accumulates in ``totals[label]``."""
    fn: Callable[..., Any] = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - start

    setattr(obj, name, wrapper)


def ensure_inputs(task: str, profile: str | None) -> tuple[Path, Path]:
    demos, base = data_dir(profile) / "demos" / task, data_dir(profile) / "base" / task
    if demos.exists() and base.exists():
        return demos, base
    work = Path("build/bench") / (profile or "active") / task
    demos, base = work / "demos", work / "base"
    if not demos.exists():
        from cohirl.demos.collect import NoiseConfig
        from cohirl.demos.pipeline import make_demos

        make_demos(task, 5, 0, NoiseConfig(), demos, progress=False)
    if not base.exists():
        from cohirl.policies.train_base import train_base

        base_cfg = stage_config(BaseStageConfig, "base", task, profile).train_config()
        train_base(load_demo_arrays(demos), dataclasses.replace(base_cfg, steps=50), base, progress=False)
    return demos, base


def bench_config(task: str, profile: str | None) -> FinetuneConfig:
    """The profile's finetune settings; the budget is set per phase by ``run_loop``."""
    cfg = stage_config(FinetuneConfig, "finetune", task, profile)
    return dataclasses.replace(cfg, eval_every=10**9, checkpoint_every=10**9, bc_steps=50, critic_pretrain_steps=10)


def run_loop(runner: Finetuner, steps: int, totals: dict[str, float]) -> float:
    """Env steps/s of ``steps`` more training env steps of ``runner`` (time spent by part in ``totals``)."""
    first = runner.state.env_steps
    runner.cfg = dataclasses.replace(runner.cfg, env_steps=first + steps)  # run_episode stops at the budget
    bar = tqdm(disable=True)
    totals.clear()
    start = time.perf_counter()
    while runner.state.env_steps < first + steps:
        runner.run_episode(bar)
    totals["loop"] = time.perf_counter() - start
    return steps / totals["loop"]


def eval_speed(factory: Any, task: str, episodes: int, horizon: int, lockstep: int) -> float:
    """Evaluation env steps/s in one process, ``lockstep`` episodes stepped together."""
    start = time.perf_counter()
    rows = evaluate(factory, task, episodes, 12345, workers=1, progress=False, horizon=horizon, lockstep=lockstep)
    return float(rows.length.sum()) / (time.perf_counter() - start)


def bench_task(task: str, method: str, profile: str | None, steps: int, eval_episodes: int,
               lockstep: int) -> dict[str, Any]:
    demos_root, base_dir = ensure_inputs(task, profile)
    out = Path("build/bench/runs") / task / method
    runner = Finetuner(task, method, 0, bench_config(task, profile), load_demo_arrays(demos_root),
                       base_factory(task, base_dir), EvalConfig(1, 0, 1), out, progress=False)
    runner.evaluate_now = lambda: {"success_rate": float("nan")}  # type: ignore[method-assign]
    runner.setup()
    assert runner.learner is not None
    totals: dict[str, float] = defaultdict(float)
    timed(runner.make_env().task, "step", totals, "simulator")  # type: ignore[union-attr]
    timed(runner.base, "base_action", totals, "base")
    timed(runner.learner, "update", totals, "learner")
    raw_before = raw_sim_speed(task, 1000)

    runner.sample_batches = lambda: []  # type: ignore[method-assign]
    acting = run_loop(runner, max(runner.learner_cfg.warmup_steps, steps // 2), totals)  # fills the warm-up
    del runner.sample_batches
    updates_before = runner.learner.num_updates
    loop = run_loop(runner, steps, totals)
    shares = {k: totals[k] / totals["loop"] for k in ("simulator", "base", "learner")}
    updates_per_s = (runner.learner.num_updates - updates_before) / max(totals["learner"], 1e-9)
    runner.close()
    runner.env_process = True
    runner.make_env()  # the worker's start (building the task and the base: seconds) is not timed
    overlapped = run_loop(runner, steps, totals)
    overlapped_shares = {"learner": totals["learner"] / totals["loop"]}
    runner.close()

    snapshot = save_actor_snapshot(runner.learner, out / "actor_bench.pt", runner.inputs, value_probe=True)
    start = time.perf_counter()  # an evaluation builds its tasks once per process, later ones reuse them
    built_tasks(task, None, lockstep)
    build_s = time.perf_counter() - start
    evaluation = {n: eval_speed(snapshot_factory(runner.base_factory, snapshot), task, eval_episodes,
                                runner.episode_cap, n) for n in (1, lockstep)}
    raw = (raw_before + raw_sim_speed(task, 1000)) / 2
    cfg = runner.learner_cfg
    return {"raw": raw, "acting": acting, "loop": loop, "overlapped": overlapped, "eval": evaluation,
            "build_s": build_s, "overlapped_shares": overlapped_shares,
            "updates_per_s": updates_per_s,
            "utd": cfg.utd, "batch": cfg.replay_batch_size, "hidden": cfg.critic_hidden,
            "features": cfg.hetstat_features, **{f"share_{k}": v for k, v in shares.items()},
            "share_other": 1 - sum(shares.values())}


def report(task: str, method: str, r: dict[str, Any]) -> None:
    loop_target, eval_target = TARGETS.get(get_spec(task).simulator, (float("nan"), float("nan")))
    print(f"\n{task} ({get_spec(task).simulator}), {method}: learner {r['hidden']} networks, HetStat F {r['features']}, "
          f"batch {r['batch']}+{r['batch']}, UTD {r['utd']}")
    print(f"  raw simulator        {r['raw']:8.1f} steps/s")
    print(f"  acting only          {r['acting']:8.1f} env steps/s   ÷ raw {r['acting'] / r['raw']:.3f}")
    print(f"  training loop, 1 process  {r['loop']:8.1f} env steps/s   ÷ raw {r['loop'] / r['raw']:.3f}")
    print(f"  training loop, env worker {r['overlapped']:8.1f} env steps/s   ÷ raw {r['overlapped'] / r['raw']:.3f} "
          f"(target >= {loop_target}; simulator + base in a second process beside the update)")
    for n, speed in r["eval"].items():
        label = "evaluation" if n == 1 else f"evaluation lockstep {n}"
        print(f"  {label:<20} {speed:8.1f} env steps/s   ÷ raw {speed / r['raw']:.3f} (target >= {eval_target})")
    print(f"  (evaluation tasks built once per process: {r['build_s']:.1f} s; the rates above reuse them)")
    print(f"  learner              {r['updates_per_s']:8.1f} updates/s")
    print("  1-process loop shares " + ", ".join(f"{k} {r[f'share_{k}']:.0%}"
                                               for k in ("simulator", "base", "learner", "other")))
    print(f"  env-worker loop: the learner busy {r['overlapped_shares']['learner']:.0%} of its wall time")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["square", "pick_place"])
    p.add_argument("--method", default="csil_residual")
    p.add_argument("--profile", default=None, help="whose finetune settings (default: the active profile)")
    p.add_argument("--steps", type=int, default=600, help="timed training-loop env steps after the warm-up")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--lockstep", type=int, default=10, help="evaluation episodes stepped together (vs 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (stages use 1)")
    args = p.parse_args()
    _runtime.set_offline_env()
    _runtime.configure_torch(args.threads)
    for task in args.tasks:
        report(task, args.method,
               bench_task(task, args.method, args.profile, args.steps, args.eval_episodes, args.lockstep))


if __name__ == "__main__":
    main()
