"""Reading the committed result rows of one profile, ``results/<profile>/`` (the only input of the
results notebook). Functions take that directory.

Layout (written by the pipeline stages):
- ``base/<task>.csv`` — per-episode rows of the frozen base (method ``base``).
- ``runs/<task>/<method>/<seed>/evals.csv`` — one row per evaluation during finetuning
  (``env_steps`` 0 is right after pretraining, i.e. the BC-small level of that method).
- ``demo_scaling/<task>.csv`` — BC base success per number of demonstrations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Sequence

import pandas as pd

from cohirl.errors import CohirlError

EVAL_COLUMNS = ("task", "method", "seed", "env_steps", "n_episodes", "successes", "success_rate")


def load_evals(results: Path, methods: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None,
               runs: Collection[tuple[str, str, int]] | None = None) -> pd.DataFrame:
    """Finetuning evaluation rows (of ``tasks``/``seeds`` when given, and of exactly the (task, method,
    seed) ``runs`` when given: rows of runs a sweep dropped, or of another profile, may lie beside
    them); checks every (task, method) has the same seeds — all of ``seeds`` when given."""
    files = sorted(Path(results, "runs").glob("*/*/*/evals.csv"))
    if not files:
        raise CohirlError(f"no finetuning results under {results}/runs: run `cohirl repro --profile <profile>` first.")
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    missing_cols = sorted(set(EVAL_COLUMNS) - set(df.columns))
    if missing_cols:
        raise CohirlError(f"evaluation rows lack columns {missing_cols}; rerun the finetune stage.")
    if runs is not None:
        wanted = {(str(t), str(m), int(s)) for t, m, s in runs}
        keys = list(zip(df.task.astype(str), df.method.astype(str), df.seed.astype(int)))
        if absent := sorted(wanted - set(keys)):
            raise CohirlError(f"no evaluation rows for the runs {absent} under {results}/runs; run their finetune "
                              "stages (dvc repro) before the report.")
        df = df[[key in wanted for key in keys]]
    if tasks is not None:
        df = df[df.task.isin(tasks)]
    if seeds is not None:
        df = df[df.seed.isin(seeds)]
        for (task, method), rows in df.groupby(["task", "method"]):
            if absent := sorted(set(seeds) - set(rows.seed)):
                raise CohirlError(f"results for {task}/{method} are missing seeds {absent}; run their "
                                  "finetune stages (dvc repro) before the report.")
    check_complete_grid(df, methods)
    return df


def check_complete_grid(df: pd.DataFrame, methods: Sequence[str] | None) -> None:
    """Refuse rows that miss a method or whose methods were run on different seeds."""
    for task, rows in df.groupby("task"):
        present = set(rows.method)
        absent = sorted(set(methods or present) - present)
        if absent:
            raise CohirlError(f"results for task {task!r} are missing methods {absent}; "
                              "run their finetune stages (dvc repro) before the report.")
        seeds = {m: tuple(sorted(r.seed.unique())) for m, r in rows.groupby("method")}
        if len(set(seeds.values())) > 1:
            raise CohirlError(f"task {task!r}: methods were run on different seeds {seeds}; "
                              "paired comparisons need the same seeds for every method.")


def load_base(results: Path, tasks: Sequence[str]) -> pd.DataFrame:
    """Per-episode rows of the frozen base for ``tasks``."""
    frames = []
    for task in tasks:
        path = Path(results, "base", f"{task}.csv")
        if not path.exists():
            raise CohirlError(f"no base evaluation at {path}: run `dvc repro base` first.")
        frames.append(pd.read_csv(path))
    return pd.concat(frames, ignore_index=True)


def load_demo_scaling(results: Path, task: str) -> pd.DataFrame | None:
    """The task's BC demo-scaling curve; None when the stage has not run or measured no point
    (a profile may switch it off with ``demo_scaling.n_demos: []``)."""
    path = Path(results, "demo_scaling", f"{task}.csv")
    if not path.exists():
        return None
    curve = pd.read_csv(path)
    return curve if len(curve) else None


def final_rows(evals: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each run (the primary number: no best-of-training selection)."""
    idx = evals.groupby(["task", "method", "seed"]).env_steps.idxmax()
    return evals.loc[idx].reset_index(drop=True)


def best_rows(evals: pd.DataFrame) -> pd.DataFrame:
    """Best evaluation of each run — a labelled secondary column only (it is optimistically biased)."""
    idx = evals.groupby(["task", "method", "seed"]).success_rate.idxmax()
    return evals.loc[idx].reset_index(drop=True)
