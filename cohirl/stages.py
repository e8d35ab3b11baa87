"""One function per DVC stage, configured from ``params.yaml``; the notebooks call these and plot.

Layout of artefacts, one tree per profile ``<p>`` (paths relative to the repository root):
``data/<p>/demos/<task>`` (stage 1) → ``data/<p>/base/<task>`` + ``results/<p>/base/<task>.csv`` (stage 2)
→ ``results/<p>/runs/<task>/<method>/<seed>/`` (stages 3–4) → ``results/<p>/tables``,
``results/<p>/figures`` (5). ``profile=None`` everywhere means params.yaml's default profile.
Every file is written through :mod:`cohirl.io`'s atomic writers (a temporary sibling, then a rename).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cohirl.config import from_dict, profile_name, profile_section, read_params, task_settings
from cohirl.errors import CohirlError
from cohirl.io import write_csv, write_json, write_text



def data_dir(profile: str | None = None) -> Path:
    """``data/<profile>``: the profile's demonstrations, bases and demo-scaling bases (DVC-cached)."""
    return Path("data") / profile_name(read_params(), profile)


def results_dir(profile: str | None = None) -> Path:
    """``results/<profile>``: the profile's committed rows, tables and figures."""
    return Path("results") / profile_name(read_params(), profile)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol shared by every method (paired: same seed -> same initial states)."""

    n_episodes: int = 50  # the paper: 50 episodes per evaluation
    seed: int = 12345  # initial-state seed shared by all methods
    workers: int = 1  # parallel episode workers (rows do not depend on it)
    # Episodes stepped together in one process, with one batched base re-plan and small-policy
    # forward per step for all of them (cohirl.eval.rollout.run_lockstep); 1 = one at a time.
    # Rows depend on it only through the rounding of batched arithmetic, not on workers.
    lockstep: int = 1


@dataclass(frozen=True)
class BaseStageConfig:
    """Stage 2: which lerobot chunking policy, trained how, re-planning every k steps."""

    preset: str = "small"  # cohirl.policies.config.PROFILES: "small" (CPU) | "large"
    steps: int | None = None  # override of the preset's gradient steps
    batch_size: int | None = None
    replan_every: int = 10  # k: the paper's pi0.5 re-plans a chunk every 10 env steps
    seed: int = 0
    # Train on the first n demonstrations only (None: all). The finetuning methods use the same n, so a
    # profile can collect more demonstrations for BC demo scaling without changing the base or CSIL.
    n_demos: int | None = None
    train: dict[str, Any] = field(default_factory=dict)  # any other BaseTrainConfig field

    def train_config(self) -> Any:
        from cohirl.policies.config import config_for_profile

        overrides = {**self.train, **{k: v for k, v in (("steps", self.steps), ("batch_size", self.batch_size))
                                      if v is not None}}
        for key in ("down_dims", "betas"):
            if key in overrides:
                overrides[key] = tuple(overrides[key])
        return config_for_profile(self.preset, **overrides)


DEMO_SCALING_COLUMNS = ["task", "n_demos", "train_steps", "n_episodes", "successes", "success_rate", "ci_low",
                        "ci_high"]


@dataclass(frozen=True)
class DemoScalingConfig:
    n_demos: tuple[int, ...] = (10, 25, 50, 100, 200)  # empty: the stage writes a header-only table
    steps: int | None = None  # training steps per base (None: the base stage's)
    eval_episodes: int = 50


def stage_config(cls: type, stage: str, task: str | None = None, profile: str | None = None) -> Any:
    return from_dict(cls, task_settings(read_params(), stage, task, profile), stage)


def stage_demos(task: str, profile: str | None = None, demos_root: Path | None = None) -> Any:
    """The demonstrations the base and the finetuning methods use: ``data/<p>/demos/<task>``, its
    first ``base.n_demos`` episodes when set."""
    from cohirl.demos.dataset import load_demo_arrays

    demos = load_demo_arrays(Path(demos_root or data_dir(profile) / "demos" / task))
    n = stage_config(BaseStageConfig, "base", task, profile).n_demos
    return demos if n is None else demos.select_episodes(n)


def base_factory(task: str, base_dir: Path | None = None, replan_every: int | None = None,
                 profile: str | None = None) -> Any:
    """Picklable factory of the frozen base (deterministic sampling: zero initial diffusion noise)."""
    from cohirl.envs import get_spec
    from cohirl.policies.lerobot_base import LerobotBaseFactory

    cfg = stage_config(BaseStageConfig, "base", task, profile)
    path = Path(base_dir or data_dir(profile) / "base" / task)
    return LerobotBaseFactory(os.fspath(path), replan_every or cfg.replan_every, get_spec(task),
                              zero_noise=True, n_threads=1)


def evaluate_base(task: str, ev: EvalConfig, base_dir: Path | None = None, progress: bool = True,
                  profile: str | None = None) -> pd.DataFrame:
    from cohirl.eval.rollout import evaluate

    return evaluate(base_factory(task, base_dir, profile=profile), task, ev.n_episodes, ev.seed, workers=ev.workers,
                    method="base", progress=progress, lockstep=ev.lockstep)


def run_base_stage(task: str, demos_root: Path | None = None, out_dir: Path | None = None,
                   results_csv: Path | None = None, progress: bool = True,
                   profile: str | None = None) -> dict[str, Any]:
    """Train the base on the task's demonstrations, save it, and evaluate it on the paired seeds."""
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.policies.train_base import train_base

    cfg = stage_config(BaseStageConfig, "base", task, profile)
    ev = stage_config(EvalConfig, "eval", task, profile)
    out_dir = Path(out_dir or data_dir(profile) / "base" / task)
    demos = stage_demos(task, profile, demos_root)
    metrics = train_base(demos, cfg.train_config(), out_dir, seed=cfg.seed, progress=progress)
    rows = evaluate_base(task, ev, out_dir, progress, profile)
    csv = write_csv(rows, Path(results_csv or results_dir(profile) / "base" / f"{task}.csv"))
    summary = {**{k: v for k, v in metrics.items() if k != "ema_policy"}, "success_rate": float(rows.success.mean()),
               "n_episodes": len(rows)}
    write_json(summary, csv.with_suffix(".json"))  # with the training time, which the base itself leaves out
    return summary


def run_demo_scaling(task: str, work_dir: Path | None = None, results_csv: Path | None = None,
                     progress: bool = True, profile: str | None = None) -> pd.DataFrame:
    """BC base trained on the first N demonstrations for each N, evaluated on the paired seeds."""
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.eval.stats import wilson_interval
    from cohirl.policies.train_base import train_base

    cfg = stage_config(BaseStageConfig, "base", task, profile)
    sc = stage_config(DemoScalingConfig, "demo_scaling", task, profile)
    ev = stage_config(EvalConfig, "eval", task, profile)
    demos_root = data_dir(profile) / "demos" / task
    work_dir = Path(work_dir or data_dir(profile) / "demo_scaling" / task)
    demos = load_demo_arrays(demos_root)
    train_cfg = cfg.train_config()
    if sc.steps is not None:
        train_cfg = train_cfg.replace(steps=sc.steps)
    rows = []
    for n in sc.n_demos:
        if n > demos.n_episodes:
            raise CohirlError(f"demo_scaling asks for {n} demos but {demos_root} has {demos.n_episodes}; "
                              "raise demos.n_demos or lower demo_scaling.n_demos in params.yaml.")
        base_dir = Path(work_dir) / f"n{n}"
        train_base(demos.select_episodes(n), train_cfg, base_dir, seed=cfg.seed, progress=progress)
        episodes = evaluate_base(task, EvalConfig(sc.eval_episodes, ev.seed, ev.workers, ev.lockstep), base_dir,
                                 progress, profile)
        k = int(episodes.success.sum())
        low, high = wilson_interval(k, len(episodes))
        rows.append({"task": task, "n_demos": n, "train_steps": train_cfg.steps, "n_episodes": len(episodes),
                     "successes": k, "success_rate": k / len(episodes), "ci_low": low, "ci_high": high})
    Path(work_dir).mkdir(parents=True, exist_ok=True)  # the stage's output, also when n_demos is empty
    table = pd.DataFrame(rows, columns=DEMO_SCALING_COLUMNS)
    write_csv(table, Path(results_csv or results_dir(profile) / "demo_scaling" / f"{task}.csv"))
    return table


def run_finetune_stage(task: str, method: str, seed: int, out_dir: Path | None = None,
                       demos_root: Path | None = None, base_dir: Path | None = None,
                       progress: bool = True, stop_after_steps: int | None = None,
                       profile: str | None = None) -> pd.DataFrame:
    """Stages 3–4 for one (task, method, seed): pretraining, step-0 evaluation, online finetuning."""
    from cohirl._runtime import configure_torch
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.training.loop import FinetuneConfig, Finetuner

    configure_torch()
    cfg = stage_config(FinetuneConfig, "finetune", task, profile)
    ev = stage_config(EvalConfig, "eval", task, profile)
    demos = stage_demos(task, profile, demos_root)
    out_dir = Path(out_dir or results_dir(profile) / "runs" / task / method / str(seed))
    runner = Finetuner(task, method, seed, cfg, demos, base_factory(task, base_dir, profile=profile), ev, out_dir,
                       progress)
    return runner.run(stop_after_steps)


def pretrained_learner(task: str, method: str, seed: int = 0, progress: bool = True,
                       learner_overrides: dict[str, Any] | None = None,
                       profile: str | None = None) -> tuple[Any, Any, dict[str, float]]:
    """BC + critic pretraining only (notebook 03): (learner, demo buffer, pretraining metrics)."""
    from cohirl.methods import build_method
    from cohirl.csil.pretrain import build_learner
    from cohirl.demos.dataset import load_demo_arrays
    from cohirl.training.loop import FinetuneConfig, demo_episodes
    from cohirl.csil.replay import demo_buffer
    from cohirl._runtime import configure_torch

    configure_torch()
    cfg = stage_config(FinetuneConfig, "finetune", task, profile)
    learner_cfg, composition = build_method(method, {**cfg.learner_overrides(), **(learner_overrides or {})},
                                            cfg.composition)
    base = base_factory(task, profile=profile)()
    episodes = demo_episodes(stage_demos(task, profile), base, base.replan_every, cfg.see_base_action)
    demos = demo_buffer(episodes, composition, learner_cfg.n_step, learner_cfg.gamma)
    learner, metrics = build_learner(learner_cfg, composition, demos, seed, progress)
    return learner, demos, metrics





# ---------------------------------------------------------------- stage 3: the reward's diagnostics
REWARD_SCALES = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)  # perturbation std in the small policy's action space
REWARD_SHIFTS = (0, 1, 3, 10, 30, 100)  # state shift in standard deviations


@dataclass
class RewardDiagnostics:
    """Notebook 03's three checks of the coherent reward after BC + critic pretraining."""

    metrics: dict[str, float]  # pretraining metrics
    perturbation: pd.DataFrame  # mean reward vs perturbation of the demonstrated action
    far_from_data: pd.DataFrame  # max |r| vs state shift, HetStat and an MLP head
    action_gradients: dict[str, float]  # median ‖∇ₐQ‖ at demo and at random actions
    summary: pd.DataFrame  # the rows written to results/reward/<task>.csv


def run_reward_stage(task: str, method: str = "csil_residual", seed: int = 0, out_csv: Path | None = None,
                     progress: bool = True, profile: str | None = None) -> RewardDiagnostics:
    """Pretrain (BC + critic) and measure the coherent reward: peak at the demonstrated action,
    reversion far from the data (vs an MLP head), stationary demo actions; writes the summary rows."""
    import numpy as np

    from cohirl.csil.diagnostics import action_gradient_norms, reward_far_from_data, reward_vs_perturbation

    learner, demos, metrics = pretrained_learner(task, method, seed, progress, profile=profile)
    mlp_learner, _, _ = pretrained_learner(task, method, seed, progress, profile=profile,
                                           learner_overrides={"policy_head": "mlp", "pretrain_critic": False})
    batch = demos.sample(512, np.random.default_rng(seed))  # demonstration transitions
    pert = reward_vs_perturbation(learner, batch, list(REWARD_SCALES))
    far = reward_far_from_data(learner, batch, list(REWARD_SHIFTS)).assign(head="hetstat")
    far_mlp = reward_far_from_data(mlp_learner, batch, list(REWARD_SHIFTS)).assign(head="mlp")
    far_all = pd.concat([far, far_mlp])
    grads = action_gradient_norms(learner, batch)
    summary = pd.concat([pert.assign(kind="perturbation"), far_all.assign(kind="far_from_data")])
    summary = summary.assign(task=task, method=method, seed=seed, grad_demo=grads["demo"], grad_random=grads["random"])
    write_csv(summary, Path(out_csv or results_dir(profile) / "reward" / f"{task}.csv"))
    return RewardDiagnostics(metrics, pert, far_all, grads, summary)

# ---------------------------------------------------------------- stage 1: demonstrations
def run_demos_stage(task: str, out_root: Path | None = None, summary_dir: Path | None = None,
                    n_demos: int | None = None, profile: str | None = None, progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """Collect (or reuse) the task's demonstrations and write their summary ``<summary_dir>/<task>.json``.

    Returns (the demonstrations as arrays, the summary: expert success over all attempts with its
    Wilson interval, frames, mean length, noise)."""
    from cohirl.demos.pipeline import DemosConfig, load_or_make_demos
    from cohirl.eval.stats import wilson_interval

    settings = task_settings(read_params(), "demos", task, profile)
    if n_demos is not None:
        settings["n_demos"] = int(n_demos)
    cfg = from_dict(DemosConfig, settings, "demos")
    demos = load_or_make_demos(task, cfg, Path(out_root or data_dir(profile) / "demos") / task, progress=progress)
    attempts, successes = demos.provenance["attempts"], demos.provenance["successes"]
    low, high = wilson_interval(successes, attempts)
    lengths = [s.stop - s.start for s in demos.episode_slices()]
    summary = {"task": task, "n_demos": demos.n_episodes, "frames": int(len(demos.action)),
               "expert_attempts": attempts, "expert_successes": successes,
               "expert_success_rate": successes / attempts, "wilson_low": low, "wilson_high": high,
               "mean_length": float(sum(lengths) / len(lengths)), "noise": asdict(cfg.noise)}
    write_json(summary, Path(summary_dir or results_dir(profile) / "demos") / f"{task}.json")
    return demos, summary


# ---------------------------------------------------------------- stage 5: report
@dataclass
class Report:
    """What stage 5 wrote: the tables (also under ``out_tables``) and the figures (under ``out_figures``)."""

    tasks: list[str]
    methods: list[str]
    evals: pd.DataFrame
    main: pd.DataFrame
    initial_drop: pd.DataFrame
    aggregates: pd.DataFrame
    improvement: pd.DataFrame
    demos_equivalent: pd.DataFrame
    claims: pd.DataFrame
    headline: dict[str, float]
    figures: dict[str, Any] = field(default_factory=dict)
    demo_scaling_note: str = ""
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)  # per task: vs base, vs the sparse baseline
    effect_claims: pd.DataFrame = field(default_factory=pd.DataFrame)  # the paper's targets, held or not
    ablations: pd.DataFrame = field(default_factory=pd.DataFrame)  # ablation final - full method final


def run_report(rows_dir: Path | None = None, out_tables: Path | None = None, out_figures: Path | None = None,
               profile: str | None = None) -> Report:
    """Tables, figures, claims and ``metrics.json`` from the result rows of the profile (``results/<p>``)."""
    import matplotlib.pyplot as plt

    from cohirl.report import figures, results, tables

    params = read_params()
    name = profile_name(params, profile)
    section = profile_section(params, name)
    rows = Path(rows_dir or results_dir(name))
    out_t, out_f = Path(out_tables or rows / "tables"), Path(out_figures or rows / "figures")
    tasks, methods = list(section["tasks"]), list(section["methods"])
    evals = results.load_evals(rows, methods=methods, tasks=tasks, seeds=section["seeds"])
    base = results.load_base(rows, tasks)
    figs: dict[str, Any] = {}

    def save(fig: Any, name: str) -> None:
        figures.save_figure(fig, out_f, name)
        plt.close(fig)  # kept for display (the notebook shows it once, where it explains it)
        figs[name] = fig

    save(figures.learning_curves(evals, base, methods), "learning_curves")
    main = tables.main_table(evals, base, methods)
    write_csv(main, out_t / "main_table.csv")
    wide = tables.format_cells(main)
    write_text(wide.to_markdown() + "\n", out_t / "main_table.md")
    write_text(wide.to_latex(), out_t / "main_table.tex")

    drop = tables.initial_drop(evals, base, fraction=0.2)
    write_csv(drop, out_t / "initial_drop.csv")
    save(figures.learning_curves(evals, base, methods, max_fraction=0.2, title="first 20 % of the budget"),
         "initial_drop")

    agg, poi = tables.aggregates(evals, methods), tables.improvement_probabilities(evals)
    write_csv(agg, out_t / "aggregates.csv")
    write_csv(poi, out_t / "probability_of_improvement.csv")

    curves = {t: c for t in tasks if (c := results.load_demo_scaling(rows, t)) is not None}
    final = results.final_rows(evals).groupby(["task", "method"]).success_rate.mean().reset_index()
    final["demos_needed_by_bc"] = [tables.demos_needed(curves[r.task], r.success_rate) if r.task in curves
                                   else float("nan") for r in final.itertuples()]
    write_csv(final, out_t / "demos_equivalent.csv")
    note = (f"demo scaling not measured in profile {name!r} "
            "(its demo_scaling.n_demos is empty in params.yaml)")
    save(figures.demo_scaling_plot(curves, note), "demo_scaling")
    save(figures.critic_calibration(evals, [m for m in methods if m.startswith("csil")]), "critic_calibration")

    csil = [m for m in methods if m.startswith("csil")]
    claim_rows = pd.concat([tables.claims(evals, base, m) for m in csil])
    write_csv(claim_rows, out_t / "claims.csv")
    effects = pd.concat([tables.task_effects(evals, base, m) for m in csil], ignore_index=True)
    effect_claims = pd.concat([tables.effect_claims(effects[effects.method == m]) for m in csil], ignore_index=True)
    ablations = pd.concat([tables.ablation_effects(evals, m, _ablations_of(m, evals, methods)) for m in csil],
                          ignore_index=True)
    write_csv(effects, out_t / "effects.csv")
    write_csv(effect_claims, out_t / "effect_claims.csv")
    write_csv(ablations, out_t / "ablations.csv")
    write_text(_claims_markdown(name, claim_rows, effects, effect_claims, ablations, final), out_t / "claims.md")
    headline = {f"{r.task}/{r.method}": round(float(r.success_rate), 4) for r in final.itertuples()}
    write_json(headline, rows / "metrics.json", sort_keys=True)
    return Report(tasks, methods, evals, main, drop, agg, poi, final, claim_rows, headline, figs,
                  "" if curves else note, effects, effect_claims, ablations)


def _ablations_of(method: str, evals: pd.DataFrame, methods: list[str]) -> list[str]:
    """Runs beyond the profile's methods named ``<method>_<change>`` (``extra_runs``), for the longest
    listed ``<method>`` prefix."""
    extra = sorted(set(evals.method) - set(methods))
    return [a for a in extra if max((m for m in methods if a.startswith(m + "_")), key=len, default=None) == method]


def _claims_markdown(profile: str, claims: pd.DataFrame, effects: pd.DataFrame, effect_claims: pd.DataFrame,
                     ablations: pd.DataFrame, demos_equivalent: pd.DataFrame) -> str:
    """claims.md: every claim with its evidence, computed from the rows (final checkpoint first)."""
    def table(df: pd.DataFrame) -> str:
        return df.to_markdown(index=False, floatfmt=".3f") if len(df) else "(none in this profile)"

    return "\n\n".join([
        f"# Claims checked on profile `{profile}` (final checkpoint; bootstrap 95 % over seeds)",
        "## The paper's targets\n\n" + table(effect_claims),
        "## Per task: CSIL vs the base on the same states, vs the sparse baseline at equal env steps\n\n"
        + table(effects),
        "## Ablations (ablation final - full method final)\n\n" + table(ablations),
        "## Demonstrations BC needs to match each method's final success\n\n" + table(demos_equivalent),
        "## Earlier claim checks (scaled to this suite)\n\n" + table(claims),
    ]) + "\n"
