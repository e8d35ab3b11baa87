"""Project a profile's wall time on N cores / N nodes from stage costs measured on this machine.

Reads a finished pipeline run in this checkout (after `make reproduce`, i.e. `cohirl repro` on the
quick profile): `logs/repro/summary.csv` (seconds per stage), `results/runs/*/*/*/run.json`
(finetuning seconds by phase), `data/base/<task>/cohirl_base.json` (base training steps/s),
`results/demos/<task>.json` and `results/base/<task>.csv` (work done). From these it derives unit
costs on one CPU (seconds per demo frame, per base training step, per evaluation env step, per
finetuning env step, per pretraining step), then measures here, side by side, how much slower the
target profile's network sizes are (base preset, learner widths), and prices every stage of the
target profile (default: paper). The stage DAG is then list-scheduled (longest path first, one CPU
per stage: what `cohirl repro` asks Ray for) on N CPUs.

Its assumptions (``ASSUMPTIONS`` below) are printed with the table.

    .venv/bin/python benchmarks/project_wall_time.py [--target paper] [--cpus 2 16 64 256]
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from base_policy import synthetic_dataset, time_inference  # noqa: E402
from learner_speed import SIZES, ms_per_update  # noqa: E402

ASSUMPTIONS = """Assumptions: evaluation episodes run to the task horizon (an upper bound: successes end early);
an evaluation's wall time x its worker processes is its CPU time (an upper bound on 2 shared cores);
a task that was not in the measured run borrows the rates of a measured task of the same simulator;
demonstrations are as long per horizon as the measured task's; one CPU per stage (what `cohirl repro`
asks Ray for), the target's evaluation run on that CPU."""

from cohirl import _runtime  # noqa: E402
from cohirl.config import from_dict, read_params, task_settings  # noqa: E402
from cohirl.methods import build_method  # noqa: E402
from cohirl.envs import get_spec  # noqa: E402
from cohirl.stages import BaseStageConfig, DemoScalingConfig, EvalConfig  # noqa: E402
from cohirl.training.loop import FinetuneConfig, total_updates  # noqa: E402


MEASURED = "quick"  # the profile whose committed run (logs/repro/summary.csv, results/quick) gives the rates

@dataclass
class Rates:
    """Seconds on one CPU, per unit of work, for one measured task (quick-profile network sizes)."""

    demo_frame: float
    base_train_step: float
    base_eval_step: float
    ft_pretrain_step: float
    ft_eval_step: float
    ft_env_step: float  # training loop per env step, learner updates excluded
    ft_overhead: float  # per finetuning stage: kernel start, loading, writing
    reward_stage: float
    demo_frames_per_horizon: float


def _stage_seconds(summary: Path) -> dict[str, float]:
    with summary.open() as handle:
        return {row["stage"]: float(row["seconds"]) for row in csv.DictReader(handle) if row["status"] == "ran"}


def _finetune_rates(task: str, seconds: dict[str, float], quick_update_s: float, workers: int) -> dict[str, float]:
    shares: dict[str, list[float]] = {k: [] for k in ("pretrain", "eval", "env", "overhead")}
    for run_json in sorted(Path("results", MEASURED, "runs", task).glob("*/*/run.json")):
        run = json.loads(run_json.read_text())
        t, lcfg = run["timing_last_call"], run["learner"]
        stage = f"finetune-{MEASURED}@{task}-{run_json.parts[-3]}-{run_json.parts[-2]}"
        if stage not in seconds or t["train_env_steps"] == 0:
            continue
        budget, learner = SimpleNamespace(**run["finetune"]), SimpleNamespace(**lcfg)
        updates_per_step = total_updates(budget, learner) / t["train_env_steps"]
        shares["pretrain"].append(t["pretrain_s"] / (lcfg["bc_steps"] + lcfg["critic_pretrain_steps"]))
        shares["eval"].append(t["eval_s"] * workers / t["eval_env_steps"])
        shares["env"].append(t["train_s"] / t["train_env_steps"] - updates_per_step * quick_update_s)
        shares["overhead"].append(seconds[stage] - t["pretrain_s"] - t["eval_s"] - t["train_s"])
    if not shares["eval"]:
        raise SystemExit(f"no finetuning run.json with timings for {task}: run `make reproduce` first.")
    return {k: statistics.median(v) for k, v in shares.items()}


def measured_rates(task: str, seconds: dict[str, float], quick_update_s: float, workers: int) -> Rates:
    """``workers``: the measured run's evaluation processes; evaluation wall time × workers is taken as
    its CPU time (an upper bound: on 2 cores two stages' workers shared the cores)."""
    demos = json.loads(Path("results", MEASURED, "demos", f"{task}.json").read_text())
    base_meta = json.loads(Path("results", MEASURED, "base", f"{task}.json").read_text())  # with training time
    base_rows = pd.read_csv(Path("results", MEASURED, "base", f"{task}.csv"))
    base_eval_s = (seconds[f"base-{MEASURED}@{task}"] - base_meta["train_seconds"]) * workers
    ft = _finetune_rates(task, seconds, quick_update_s, workers)
    return Rates(demo_frame=seconds[f"demos-{MEASURED}@{task}"] / demos["frames"],  # failed expert attempts included
                 base_train_step=1.0 / base_meta["steps_per_second"],
                 base_eval_step=base_eval_s / base_rows.length.sum(), ft_pretrain_step=ft["pretrain"],
                 ft_eval_step=ft["eval"], ft_env_step=ft["env"], ft_overhead=ft["overhead"],
                 reward_stage=seconds[f"reward-{MEASURED}@{task}"],
                 demo_frames_per_horizon=demos["mean_length"] / get_spec(task).horizon)


# -- network-size costs measured now, side by side --------------------------------------------
def base_costs(preset: str, steps: int, workdir: Path) -> tuple[float, float]:
    """(s per training step, s per env step of inference) of a base preset, on square-shaped data."""
    from lerobot.policies.factory import make_pre_post_processors

    from base_policy import in_memory_batches, time_training
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.policies.config import config_for_profile
    from cohirl.policies.train_base import dataset_stats, make_policy, make_policy_config

    demos = load_demo_arrays(synthetic_dataset(workdir / "square_synthetic"))
    cfg = config_for_profile(preset)
    torch.manual_seed(0)
    policy_cfg = make_policy_config(cfg, demos.state.shape[1], demos.env_state.shape[1], demos.action.shape[1])
    policy = make_policy(policy_cfg)
    pre, post = make_pre_post_processors(policy_cfg, dataset_stats=dataset_stats(demos))
    step_s, _ = time_training(policy, in_memory_batches(demos, policy_cfg, pre, cfg), lambda b: b, steps)
    infer = time_inference(policy.eval(), pre, post, demos, 10, 100)
    return step_s, infer["stepper_ms"] / 1e3


def target_learner_sizes(params: dict[str, Any], profile: str, task: str) -> dict[str, Any]:
    """The target profile's learner network and batch sizes (what its finetuning updates cost)."""
    ft = _settings(params, FinetuneConfig, "finetune", task, profile)
    lcfg, _ = build_method("csil_residual", ft.learner_overrides("csil_residual"))
    return {"hetstat_features": lcfg.hetstat_features, "policy_hidden": tuple(lcfg.policy_hidden),
            "critic_hidden": tuple(lcfg.critic_hidden), "batch": lcfg.replay_batch_size}


def size_costs(target_preset: str, base_steps: int, target_sizes: dict[str, Any]) -> dict[str, float]:
    """Base and learner costs measured now; ``target_update_s`` at the target profile's own sizes."""
    with tempfile.TemporaryDirectory() as tmp:
        small_train, small_infer = base_costs("small", base_steps, Path(tmp))
        big_train, big_infer = base_costs(target_preset, base_steps, Path(tmp))
    SIZES["target"] = target_sizes
    return {"base_train_ratio": big_train / small_train, "base_infer_extra_s": big_infer - small_infer,
            "quick_update_s": ms_per_update("csil_residual", "quick", 100)[0] / 1e3,
            "target_update_s": ms_per_update("csil_residual", "target", 40)[0] / 1e3}


# -- pricing the target profile's stages ------------------------------------------------------
def _settings(params: dict[str, Any], cls: type, stage: str, task: str, profile: str | None) -> Any:
    return from_dict(cls, task_settings(params, stage, task, profile), stage)


def price_task(params: dict[str, Any], profile: str, task: str, r: Rates, size: dict[str, float]) -> dict[str, float]:
    """Projected seconds of each stage of ``task`` in ``profile`` (finetune: per method, per run)."""
    horizon, extra = get_spec(task).horizon, size["base_infer_extra_s"]
    ev = _settings(params, EvalConfig, "eval", task, profile)
    base = _settings(params, BaseStageConfig, "base", task, profile).train_config()
    scaling = _settings(params, DemoScalingConfig, "demo_scaling", task, profile)
    n_demos = task_settings(params, "demos", task, profile).get("n_demos", 100)
    base_step, eval_step = r.base_train_step * size["base_train_ratio"], r.base_eval_step + extra
    cost = {"demos": n_demos * r.demo_frames_per_horizon * horizon * r.demo_frame,
            "base": base.steps * base_step + ev.n_episodes * horizon * eval_step,
            "demo_scaling": sum((scaling.steps or base.steps) * base_step + scaling.eval_episodes * horizon * eval_step
                                for _ in scaling.n_demos),
            "reward": r.reward_stage}
    ft = _settings(params, FinetuneConfig, "finetune", task, profile)
    update_ratio = size["target_update_s"] / size["quick_update_s"]
    section = params["profiles"][profile]
    methods = list(section["methods"]) + [m for extra in section.get("extra_runs") or [] if extra["task"] == task
                                          for m in extra["methods"] if m not in section["methods"]]
    for method in methods:
        lcfg, _ = build_method(method, ft.learner_overrides(method), ft.composition_overrides(method))
        cap = min(ft.max_episode_steps or horizon, horizon)
        evals = ft.env_steps // ft.eval_every + 1
        cost[f"finetune:{method}"] = (
            r.ft_overhead + (lcfg.bc_steps + lcfg.critic_pretrain_steps) * r.ft_pretrain_step * update_ratio
            + ft.env_steps * (r.ft_env_step + extra) + total_updates(ft, lcfg) * size["target_update_s"]
            + evals * ft.eval_episodes * cap * (r.ft_eval_step + extra))
    return cost


def stage_dag(costs: dict[str, dict[str, float]], seeds: int, report_s: float) -> dict[str, tuple[float, list[str]]]:
    """name -> (seconds, upstream names): the shape of dvc.yaml's matrix."""
    dag: dict[str, tuple[float, list[str]]] = {}
    for task, c in costs.items():
        dag[f"demos@{task}"] = (c["demos"], [])
        for kind in ("base", "demo_scaling"):
            dag[f"{kind}@{task}"] = (c[kind], [f"demos@{task}"])
        dag[f"reward@{task}"] = (c["reward"], [f"base@{task}"])
        for key in (k for k in c if k.startswith("finetune:")):
            for seed in range(seeds):
                dag[f"finetune@{task}-{key.split(':')[1]}-{seed}"] = (c[key], [f"base@{task}"])
    dag["report"] = (report_s, [n for n in dag if not n.startswith(("demos", "reward"))])
    return dag


def list_schedule(dag: dict[str, tuple[float, list[str]]], cpus: int) -> float:
    """Makespan of greedy list scheduling on ``cpus`` slots, longest remaining path first."""
    down: dict[str, list[str]] = {n: [] for n in dag}
    for name, (_, ups) in dag.items():
        for up in ups:
            down[up].append(name)
    tail: dict[str, float] = {}

    def path(n: str) -> float:
        if n not in tail:
            tail[n] = dag[n][0] + max((path(d) for d in down[n]), default=0.0)
        return tail[n]

    waiting = {n: len(ups) for n, (_, ups) in dag.items()}
    ready = [(-path(n), n) for n, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    now, free = 0.0, cpus
    while ready or running:
        while ready and free:
            _, n = heapq.heappop(ready)
            heapq.heappush(running, (now + dag[n][0], n))
            free -= 1
        now, done = heapq.heappop(running)
        free += 1
        for d in down[done]:
            waiting[d] -= 1
            if waiting[d] == 0:
                heapq.heappush(ready, (-path(d), d))
    return now


def _rates_for(task: str, measured: dict[str, Rates]) -> tuple[Rates, str]:
    if task in measured:
        return measured[task], task
    simulator = get_spec(task).simulator
    proxy = next((t for t in measured if get_spec(t).simulator == simulator), next(iter(measured)))
    return measured[proxy], proxy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="paper", help="the profile to project (params.yaml)")
    p.add_argument("--cpus", type=int, nargs="+", default=[2, 16, 64, 128, 256, 512])
    p.add_argument("--cpus-per-node", type=int, default=16)
    p.add_argument("--base-steps", type=int, default=5, help="timed base training steps per preset")
    p.add_argument("--measured-wall-s", type=float, default=None,
                   help="the measured run's wall time, to check the scheduler model against it")
    args = p.parse_args()
    _runtime.configure_torch(1)
    params = read_params()
    seconds = _stage_seconds(Path("logs/repro/summary.csv"))
    target_cfg = params["profiles"][args.target]
    size = size_costs(target_cfg["base"].get("preset", "small"), args.base_steps,
                      target_learner_sizes(params, args.target, target_cfg["tasks"][0]))
    measured = {t: measured_rates(t, seconds, size["quick_update_s"], _settings(params, EvalConfig, "eval", t, None).workers)
                for t in params["profiles"][MEASURED]["tasks"]}
    _print_rates(measured, size, seconds, args)
    costs = {}
    for task in target_cfg["tasks"]:
        rates, proxy = _rates_for(task, measured)
        costs[task] = price_task(params, args.target, task, rates, size)
        print(f"{task:<15} rates from {proxy:<12} " + "  ".join(f"{k} {v / 3600:.2f} h" for k, v in costs[task].items()))
    full = stage_dag(costs, len(target_cfg["seeds"]), seconds.get(f"report-{MEASURED}", 60.0))
    elsewhere = {n: (0.0, ups) if n.startswith(("base@", "demo_scaling@")) else (c, ups) for n, (c, ups) in full.items()}
    print(ASSUMPTIONS)
    for label, dag in (("every stage on CPUs", full), ("bases and demo scaling trained elsewhere (GPU)", elsewhere)):
        total = sum(c for c, _ in dag.values())
        print(f"\n{args.target}, {label}: {len(dag)} stages, {total / 3600:.0f} CPU-hours; critical path "
              f"{list_schedule(dag, 10**6) / 3600:.1f} h")
        print(f"| CPUs | nodes of {args.cpus_per_node} | projected wall time |\n|---|---|---|")
        for cpus in args.cpus:
            print(f"| {cpus} | {max(1, cpus // args.cpus_per_node)} | {list_schedule(dag, cpus) / 3600:.1f} h |")


def _print_rates(measured: dict[str, Rates], size: dict[str, float], seconds: dict[str, float],
                 args: argparse.Namespace) -> None:
    for task, r in measured.items():
        print(f"{task}: " + ", ".join(f"{k} {v:.4g}" for k, v in vars(r).items()))
    print("sizes: " + ", ".join(f"{k} {v:.4g}" for k, v in size.items()))
    if args.measured_wall_s:  # the scheduler model on the measured run's own DAG and stage times
        from cohirl.repro import read_stage_graph

        graph = read_stage_graph(Path("."))
        dag = {n: (seconds.get(n, 0.0), sorted(graph.upstream[n])) for n in graph.upstream}
        print(f"measured run: {len(seconds)} stages, {sum(seconds.values()):.0f} stage-seconds; wall "
              f"{args.measured_wall_s:.0f} s; the model schedules it in {list_schedule(dag, 2):.0f} s on 2 CPUs")

if __name__ == "__main__":
    main()
