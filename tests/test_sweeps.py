"""Sweeps the DVC way (issue 28), on one small pipeline: a copy of the smoke reference, its finished
stages committed as the baseline. Two experiments go through DVC's queue, `dvc exp run --queue -S`
then `dvc queue start`: one names a registered task that no profile names (its whole chain runs and
the report speaks of it alone), one changes a budget and the method list (only finetuning and the
report rerun). `dvc exp show` lists both with their changed params and metrics; `dvc plots diff`
draws an experiment's learning curve beside the baseline's; an unknown task stops before any stage
runs."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_tool, tool_env

NEW_TASK = "hammer"  # registered, named by no profile
SWEEPS = {
    "new-task": [f"profiles.smoke.tasks=[{NEW_TASK}]", "profiles.smoke.methods=[csil_residual]"],
    "short": ["profiles.smoke.methods=[csil_residual]", "profiles.smoke.finetune.env_steps=50"],
}


def _git(repo: Path, *args: str) -> str:
    return run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], repo)


def _json(repo: Path, *args: str) -> dict | list:
    proc = subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True, env=tool_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _show(repo: Path, rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def swept(smoke_reference: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    repo = tmp_path_factory.mktemp("sweeps") / "project"
    shutil.copytree(smoke_reference, repo, symlinks=True, ignore=shutil.ignore_patterns("executed"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "baseline: the smoke pipeline run")
    for name, sets in SWEEPS.items():
        run_tool(["dvc", "exp", "run", "--queue", "-n", name, *[a for s in sets for a in ("-S", s)]], repo)
    run_tool(["dvc", "queue", "start", "-j", "1"], repo)
    deadline = time.time() + 900
    while "Queued" in (status := run_tool(["dvc", "queue", "status"], repo)) or "Running" in status:
        assert time.time() < deadline, status
        time.sleep(5)
    assert status.count("Success") == len(SWEEPS), status + run_tool(["dvc", "queue", "logs", "new-task"], repo)
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


def test_exp_show_lists_each_experiment_with_its_params_and_final_success(swept: tuple[Path, dict]) -> None:
    _, exps = swept
    assert set(SWEEPS) <= set(exps)
    assert _params(exps["new-task"])["tasks"] == [NEW_TASK]
    assert _params(exps["short"])["finetune"]["env_steps"] == 50
    assert set(_metrics(exps["new-task"])) == {f"{NEW_TASK}/csil_residual"}
    assert set(_metrics(exps["short"])) == {"pick_place/csil_residual"}
    assert all(0.0 <= v <= 1.0 for e in SWEEPS for v in _metrics(exps[e]).values())


def test_a_task_no_profile_names_runs_its_whole_chain_and_the_report_names_it_alone(swept: tuple[Path, dict]) -> None:
    repo, exps = swept
    rev = exps["new-task"]["rev"]
    lock = _show(repo, rev, "dvc.lock")
    for stage in ("demos", "base", "demo_scaling", "reward"):
        assert f"{stage}-smoke@{NEW_TASK}:" in lock, stage
    assert f"finetune-smoke@{NEW_TASK}-csil_residual-0:" in lock
    evals = pd.read_csv(io.StringIO(_show(repo, rev, f"results/smoke/runs/{NEW_TASK}/csil_residual/0/evals.csv")))
    assert set(evals.task) == {NEW_TASK} and sorted(evals.env_steps.unique()) == [0, 50, 100]
    for table in ("main_table.csv", "claims.csv", "demos_equivalent.csv"):
        text = _show(repo, rev, f"results/smoke/tables/{table}")
        assert NEW_TASK in text and "pick_place" not in text, table


def test_a_budget_sweep_reruns_finetuning_and_report_only(swept: tuple[Path, dict]) -> None:
    repo, exps = swept
    rev = exps["short"]["rev"]
    evals = pd.read_csv(io.StringIO(_show(repo, rev, "results/smoke/runs/pick_place/csil_residual/0/evals.csv")))
    assert sorted(evals.env_steps.unique()) == [0, 50]
    for path in ("results/smoke/base/pick_place.csv", "results/smoke/demo_scaling/pick_place.csv"):
        assert _show(repo, rev, path) == (repo / path).read_text(), path  # upstream rows: the baseline's


def test_plots_diff_draws_an_experiments_curve_beside_the_baseline(swept: tuple[Path, dict]) -> None:
    repo, _ = swept
    out = _json(repo, "plots", "diff", "HEAD", "short", "--json")
    assert not [e for e in out.get("errors") or [] if "/live/" in e["name"]], out["errors"]
    values = out["data"]["results/smoke/live/plots/metrics/pick_place/csil_residual.tsv"][0]["content"]["data"]["values"]
    steps = {(v["rev"], int(v["step"])) for v in values}
    assert {("HEAD", 100), ("short", 50)} <= steps and ("short", 100) not in steps


def test_an_unknown_task_in_a_sweep_stops_before_any_stage_runs(swept: tuple[Path, dict]) -> None:
    repo, _ = swept
    proc = subprocess.run(["dvc", "exp", "run", "-S", "profiles.smoke.tasks=[pick_place,hamer]"], cwd=repo,
                          capture_output=True, text=True, env=tool_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "hamer" in out, out
    assert "Running stage" not in out, out
