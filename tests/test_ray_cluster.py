"""The smoke pipeline on a real two-node Ray cluster on loopback, with a worker killed mid-stage.

`cohirl repro` (RAY_ADDRESS = the loopback head) must spread the stages over both nodes, survive a
`kill -9` of the worker running a finetuning stage (Ray retries the task; the run resumes from its
checkpoint), and leave rows byte-identical to the sequential `dvc repro` reference, with a dvc.lock
that a second `dvc repro` and a second `cohirl repro` find up to date."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cohirl.ray_stage import SCRATCH_ENV, WORKER_PID_FILE
from conftest import RayCluster, copy_project, run_tool, tool_env

# Result files that must be byte-identical (run.json holds a wall time; checkpoints hold RNG states).
ROWS = ("results/smoke/runs/**/evals.csv", "results/smoke/runs/**/episodes.csv", "results/smoke/runs/**/live/**/*.*",
        "results/smoke/base/*.csv", "results/smoke/demo_scaling/*.csv", "results/smoke/reward/*.csv",
        "results/smoke/demos/*.json", "results/smoke/tables/*", "results/smoke/live/**/*.*")


def _kill_a_finetuning_worker(scratch: Path, driver: subprocess.Popen, timeout_s: float = 600) -> str:
    """Wait for a finetuning stage's first checkpoint in its scratch copy, then kill -9 its worker."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and driver.poll() is None:
        for ckpt in sorted(scratch.glob("finetune-*/data/*/checkpoints/*/*/*/checkpoint.pt")):
            work = ckpt.parents[6]
            pid = int((work / WORKER_PID_FILE).read_text())
            os.kill(pid, signal.SIGKILL)
            return work.name
        time.sleep(0.1)
    raise AssertionError("no finetuning checkpoint appeared before the pipeline ended")


BASE_DIRS = ("data/smoke/base", "data/smoke/demo_scaling")
TIMED = ("run.json", "/base/pick_place.json")  # wall times, base training time (and checkpoints: RNG states)


def _lock_outs(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for s in lock["stages"].values() for o in s.get("outs", [])
            if not o["path"].endswith(TIMED) and "/checkpoints/" not in o["path"]}


def _base_files(repo: Path) -> dict[str, object]:
    """Every file of the trained bases (they hold no timing: byte for byte)."""
    return {str(p.relative_to(repo)): p.read_bytes()
            for d in BASE_DIRS for p in sorted((repo / d).rglob("*")) if p.is_file()}


def test_smoke_on_two_loopback_nodes_survives_a_killed_worker_and_matches_dvc_repro(
        smoke_reference: Path, loopback_ray_cluster: RayCluster, tmp_path: Path) -> None:
    repo = copy_project(tmp_path / "project")
    scratch = tmp_path / "scratch"
    env = loopback_ray_cluster.env(**{SCRATCH_ENV: str(scratch)})  # token authentication on
    driver = subprocess.Popen([sys.executable, "-m", "cohirl.cli", "repro"], cwd=repo, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = _kill_a_finetuning_worker(scratch, driver)
    output, _ = driver.communicate(timeout=900)
    assert driver.returncode == 0, output[-4000:]

    with (repo / "logs/repro/summary.csv").open() as handle:
        summary = {row["stage"]: row for row in csv.DictReader(handle)}
    ran = [row for row in summary.values() if row["status"] == "ran"]
    assert len(ran) == len(summary) == 8
    assert {row["node_ip"] for row in ran} == {"127.0.0.1"}
    assert len({row["node_id"] for row in ran}) == 2, "the stages should have used both nodes"
    stage = next(name for name in summary if killed.startswith(name.replace("@", "_")))
    assert summary[stage]["attempt"] == "2", (killed, summary[stage])
    executed = repo / "results/executed" / f"04_finetune-smoke-{stage.split('@', 1)[1]}.ipynb"
    assert "from its checkpoint at env step" in executed.read_text(), "the retried run should have resumed"

    for pattern in ROWS:
        ours = sorted(p.relative_to(repo) for p in repo.glob(pattern))
        assert ours == sorted(p.relative_to(smoke_reference) for p in smoke_reference.glob(pattern)), pattern
        for rel in ours:
            assert (repo / rel).read_bytes() == (smoke_reference / rel).read_bytes(), rel
    assert _lock_outs(repo) == _lock_outs(smoke_reference)
    assert _base_files(repo) == _base_files(smoke_reference)
    assert "Running stage" not in run_tool(["dvc", "repro"], repo)
    again = run_tool([sys.executable, "-m", "cohirl.cli", "repro"], repo, RAY_ADDRESS=loopback_ray_cluster.address,
                     **loopback_ray_cluster.auth)
    assert "submitted" not in again and again.count("up to date") >= 8
