"""Long-budget stability runs: does a finetuning run's improvement hold to its final checkpoint?

Controlled runs for the README's "Stability over long budgets": the active profile's finetune
settings (quick by default) with longer budgets and one named change at a time (``VARIANTS``), on
demos and a base made by ``scripts/scan_base_regime.py`` (``--work``, default build/base_scan).
Each run writes evals.csv / episodes.csv / train_log.csv / run.json under
``results/stability/<profile>/<task>/<variant>/<method>/<seed>/`` (resumable: rerunning continues
from the run's checkpoint), and one summary row per run to ``.../summary.csv``.

    python scripts/scan_base_regime.py --tasks peg_insert_side
    python scripts/stability_runs.py --task peg_insert_side --variants baseline pretrain_5k \\
        --methods csil_residual --seeds 0 --env-steps 12000 --eval-every 6000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohirl import _runtime

# One change at a time against the non-positive reward with termination on success (the CSIL
# methods' reward before the stability fix, "nonpositive" = NONPOSITIVE below); "defaults" = the
# method as cohirl.methods builds it now.
NONPOSITIVE: dict[str, Any] = {"reward_variant": "nonpositive", "ignore_termination": False}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "baseline": NONPOSITIVE,
    **{name: {**NONPOSITIVE, **change} for name, change in {
        "pretrain_5k": {"critic_pretrain_steps": 5000},
        "mc_pretrain": {"critic_pretrain_target": "mc"},
        "value_init": {"critic_value_init": True},
        "gamma_0.98": {"gamma": 0.98},
        "no_refine": {"refine_reward": False},
        "tau_0.02": {"tau": 0.02},
        "critic_lr_1e-4": {"critic_lr": 1e-4},
        "penalty_10": {"grad_penalty_weight": 10.0},
        "beta_1": {"beta": 1.0},
    }.items()},
    "positive_fixed_horizon": {"reward_variant": "positive", "ignore_termination": True},
    "positive_plus_sparse": {"reward_variant": "positive", "ignore_termination": True,
                             "reward_source": "coherent+sparse"},
}


def run_one(task: str, variant: str, method: str, seed: int, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    from cohirl.config import as_overrides, set_fields
    from cohirl.csil.config import LearnerConfig
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.stages import EvalConfig, base_factory, stage_config
    from cohirl.training.loop import FinetuneConfig, Finetuner

    cfg = stage_config(FinetuneConfig, "finetune", task, args.profile)
    overrides = {**VARIANTS[variant], **dict(_parse_set(s) for s in args.set)}
    cfg = dataclasses.replace(cfg, env_steps=args.env_steps, eval_every=args.eval_every,
                              eval_episodes=args.eval_episodes, checkpoint_every=args.eval_every,
                              learner=as_overrides(LearnerConfig, {**set_fields(cfg.learner), **overrides},
                                                   "stability_runs --set"))
    ev = EvalConfig(args.eval_episodes, stage_config(EvalConfig, "eval", task, args.profile).seed, args.eval_workers,
                    args.eval_lockstep)
    work = args.work / task
    runner = Finetuner(task, method, seed, cfg, load_demo_arrays(work / "demos"), base_factory(task, work / "base"),
                       ev, out_dir, progress=args.progress)
    evals = runner.run()
    return summarise(task, variant, method, seed, evals, pd.DataFrame(runner.state.train_log),
                     runner.state.pretrain_metrics, args.base_successes)


def summarise(task: str, variant: str, method: str, seed: int, evals: pd.DataFrame, log: pd.DataFrame,
              pretrain: dict[str, float], base_successes: int | None) -> dict[str, Any]:
    """One row: successes at every evaluation point (final first) and the critic's drift."""
    last = log.dropna(subset=["q_mean"]).tail(5) if "q_mean" in log else pd.DataFrame()
    row: dict[str, Any] = {
        "task": task, "variant": variant, "method": method, "seed": seed,
        "final_successes": int(evals.successes.iloc[-1]), "n_episodes": int(evals.n_episodes.iloc[-1]),
        "base_successes": base_successes,
        "curve": " ".join(str(int(k)) for k in evals.successes),
        "pretrain_q_demo": pretrain.get("pretrain_q_demo", np.nan),
        "pretrain_mc_demo": pretrain.get("pretrain_mc_demo", np.nan),
        "final_q_demo": float(evals.q_demo.iloc[-1]) if "q_demo" in evals else np.nan,
        "final_mc_demo": float(evals.mc_demo.iloc[-1]) if "mc_demo" in evals else np.nan,
    }
    for key in ("q_mean", "critic_td", "critic_grad_penalty", "actor_reg", "policy_std", "reward_demo", "reward_agent"):
        row[f"end_{key}"] = float(last[key].mean()) if key in last else np.nan
    return row


def _parse_set(text: str) -> tuple[str, Any]:
    import yaml

    key, _, value = text.partition("=")
    if not key or not _:
        raise SystemExit(f"--set takes KEY=VALUE (a LearnerConfig field), got {text!r}")
    return key, yaml.safe_load(value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True)
    p.add_argument("--variants", nargs="+", default=["baseline"],
                   help=f"runs: one of {sorted(VARIANTS)}; --figures: any variant directory (tags included)")
    p.add_argument("--methods", nargs="+", default=["csil_residual"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--profile", default="quick", help="whose finetune/eval settings to start from")
    p.add_argument("--env-steps", type=int, default=20000)
    p.add_argument("--eval-every", type=int, default=4000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--eval-workers", type=int, default=1)
    p.add_argument("--eval-lockstep", type=int, default=1,
                   help="evaluation episodes stepped together (one batched base call per re-plan)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="extra LearnerConfig override on top of the variant (label it with --tag)")
    p.add_argument("--tag", default="", help="suffix of the variant's directory name when --set is used")
    p.add_argument("--base-successes", type=int, default=None, help="the base's successes on the same states")
    p.add_argument("--work", type=Path, default=Path("build/base_scan"))
    p.add_argument("--out", type=Path, default=Path("results/stability"))
    p.add_argument("--progress", action="store_true")
    p.add_argument("--figures", action="store_true",
                   help="no runs: evaluate the base on the same states once (cached) and draw the variants' "
                        "learning curves and critic calibration under <out>/<profile>/figures/")
    args = p.parse_args()
    _runtime.set_offline_env()
    _runtime.configure_torch(1)
    if args.figures:
        draw_figures(args)
        return
    from cohirl.io import write_json

    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)} (tag a --set run with --tag)")
    out_root = args.out / args.profile / args.task
    for variant in args.variants:
        for method in args.methods:
            for seed in args.seeds:
                label = f"{variant}{args.tag}"
                run_dir = out_root / label / method / str(seed)
                row = {**run_one(args.task, variant, method, seed, args, run_dir), "variant": label,
                       "overrides": json.dumps({**VARIANTS[variant], **dict(_parse_set(s) for s in args.set)}),
                       "env_steps": args.env_steps}
                write_json(row, run_dir / "summary_row.json")
                collect(out_root)
                print(pd.DataFrame([row]).to_string(index=False), flush=True)


def draw_figures(args: argparse.Namespace) -> None:
    """Success vs env steps per variant (mean over seeds, 95 % bootstrap band; dashed: the base on the
    same evaluation states) and the critic's value vs its Monte-Carlo return, for ``--variants``."""
    from cohirl.io import write_csv
    from cohirl.report.figures import critic_calibration, learning_curves, save_figure
    from cohirl.stages import EvalConfig, evaluate_base, stage_config

    out_root = args.out / args.profile / args.task
    base_csv = out_root / "base_episodes.csv"
    if not base_csv.exists():
        ev = EvalConfig(args.eval_episodes, stage_config(EvalConfig, "eval", args.task, args.profile).seed, 1)
        write_csv(evaluate_base(args.task, ev, args.work / args.task / "base", progress=False), base_csv)
    base = pd.read_csv(base_csv)
    for variant in args.variants:
        files = sorted((out_root / variant).glob("*/*/evals.csv"))
        if not files:
            raise SystemExit(f"no finished runs of variant {variant!r} under {out_root}")
        evals = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        methods = sorted(evals.method.unique())
        fig = learning_curves(evals, base, methods, title=f"{args.task}: {variant} ({args.profile} settings)")
        save_figure(fig, args.out / args.profile / "figures", f"{args.task}_{variant}_success")
        save_figure(critic_calibration(evals, methods), args.out / args.profile / "figures",
                    f"{args.task}_{variant}_critic")


def collect(out_root: Path) -> pd.DataFrame:
    """summary.csv from every finished run's summary_row.json under ``out_root`` (runs may run side by side)."""
    from cohirl.io import write_csv

    rows = [json.loads(path.read_text()) for path in sorted(out_root.glob("*/*/*/summary_row.json"))]
    table = pd.DataFrame(rows).sort_values(["variant", "method", "seed"], kind="stable")
    write_csv(table, out_root / "summary.csv")
    return table


if __name__ == "__main__":
    main()
