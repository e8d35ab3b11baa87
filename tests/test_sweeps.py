"""Sweeps the DVC way (issue 28), on one small pipeline: a copy of the smoke reference, its finished
stages committed as the baseline. One experiment goes through DVC's queue (`dvc exp run --queue -S`,
then `dvc queue start`; conftest queues it as soon as the reference has finished, so that it runs
beside the other tests): it adds a registered task that no profile names, drops methods and shortens
the finetuning budget. The new task's whole chain runs; the baseline task reruns finetuning and the
report only (its upstream lock entries and rows are the baseline's). `dvc exp show` lists the
experiment with its changed params and metrics; `dvc plots diff` draws its learning curve beside the
baseline's; an unknown task stops before any stage runs."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import SWEEP_NAME as EXP, SWEEP_TASK as NEW_TASK, run_tool, tool_env


def _json(repo: Path, *args: str) -> dict | list:
    proc = subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True, env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _show(repo: Path, rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def swept(queued_sweep: Path) -> tuple[Path, dict[str, dict]]:
    """The sweep, queued by conftest as soon as the reference finished, once DVC's worker has run it."""
    repo = queued_sweep
    deadline = time.time() + 900
    while "Queued" in (status := run_tool(["dvc", "queue", "status"], repo)) or "Running" in status:
        assert time.time() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 1, status + run_tool(["dvc", "queue", "logs", EXP], repo)
    shown = _json(repo, "exp", "show", "--json")
    exps = {e["name"]: e for base in shown for run in base.get("experiments") or [] for e in run["revs"]}
    return repo, exps


def _metrics(exp: dict) -> dict[str, float]:
    """The report's dvclive summary, as ``task/method`` -> final success (mean over seeds)."""
    data = exp["data"]["metrics"]["results/smoke/live/metrics.json"]["data"]
    return {f"{task}/{method}": v for task, row in data.items() if task not in ("step", "seeds")
            for method, v in row.items()}


def _params(exp: dict) -> dict:
    return exp["data"]["params"]["params.yaml"]["data"]["profiles"]["smoke"]


def test_exp_show_lists_the_experiment_with_its_params_and_final_success(swept: tuple[Path, dict]) -> None:
    _, exps = swept
    params = _params(exps[EXP])
    assert params["tasks"] == ["pick_place", NEW_TASK] and params["finetune"]["env_steps"] == 50
    assert set(_metrics(exps[EXP])) == {"pick_place/csil_residual", f"{NEW_TASK}/csil_residual"}
    assert all(0.0 <= v <= 1.0 for v in _metrics(exps[EXP]).values())


def test_a_task_no_profile_names_runs_its_whole_chain_and_the_report_names_it(swept: tuple[Path, dict]) -> None:
    repo, exps = swept
    rev = exps[EXP]["rev"]
    lock = _show(repo, rev, "dvc.lock")
    for stage in ("demos", "base", "demo_scaling", "reward"):
        assert f"{stage}-smoke@{NEW_TASK}:" in lock, stage
    assert f"finetune-smoke@{NEW_TASK}-csil_residual-0:" in lock
    evals = pd.read_csv(io.StringIO(_show(repo, rev, f"results/smoke/runs/{NEW_TASK}/csil_residual/0/evals.csv")))
    assert set(evals.task) == {NEW_TASK} and sorted(evals.env_steps.unique()) == [0, 50]
    for table in ("main_table.csv", "claims.csv", "demos_equivalent.csv"):
        text = _show(repo, rev, f"results/smoke/tables/{table}")
        assert NEW_TASK in text and "pick_place" in text, table
    assert "csil_ensemble" not in _show(repo, rev, "results/smoke/tables/main_table.csv")  # dropped methods


def test_a_budget_change_reruns_finetuning_and_report_only(swept: tuple[Path, dict]) -> None:
    repo, exps = swept
    rev = exps[EXP]["rev"]
    evals = pd.read_csv(io.StringIO(_show(repo, rev, "results/smoke/runs/pick_place/csil_residual/0/evals.csv")))
    assert sorted(evals.env_steps.unique()) == [0, 50]
    base_lock, exp_lock = (yaml.safe_load(_show(repo, r, "dvc.lock"))["stages"] for r in ("HEAD", rev))
    for stage in ("demos", "base", "demo_scaling"):  # upstream of finetuning: not rerun
        assert exp_lock[f"{stage}-smoke@pick_place"] == base_lock[f"{stage}-smoke@pick_place"], stage
    # the reward diagnostics read the whole finetune section (learner, BC and critic pretraining), so the
    # budget change reruns them, but their rows do not depend on the budget
    assert exp_lock["reward-smoke@pick_place"]["outs"] == base_lock["reward-smoke@pick_place"]["outs"]
    for path in ("results/smoke/base/pick_place.csv", "results/smoke/demo_scaling/pick_place.csv"):
        assert _show(repo, rev, path) == (repo / path).read_text(), path  # upstream rows: the baseline's


def test_plots_diff_draws_an_experiments_curve_beside_the_baseline(swept: tuple[Path, dict]) -> None:
    repo, _ = swept
    out = _json(repo, "plots", "diff", "HEAD", EXP, "--json")
    assert not [e for e in out.get("errors") or [] if "/live/" in e["name"]], out["errors"]
    values = out["data"]["results/smoke/live/plots/metrics/pick_place/csil_residual.tsv"][0]["content"]["data"]["values"]
    steps = {(v["rev"], int(v["step"])) for v in values}
    assert {("HEAD", 100), (EXP, 50)} <= steps and (EXP, 100) not in steps
def test_an_unknown_task_in_a_sweep_stops_before_any_stage_runs(swept: tuple[Path, dict]) -> None:
    repo, _ = swept
    proc = subprocess.run(["dvc", "exp", "run", "-S", "profiles.smoke.tasks=[pick_place,hamer]"], cwd=repo,
                          capture_output=True, text=True, env=tool_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "hamer" in out, out
    assert "Running stage" not in out, out
