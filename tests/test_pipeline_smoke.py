"""The smoke profile end to end: `cohirl repro --jobs 2` (the README's path: `dvc repro` with
independent stages side by side) runs every notebook through papermill in a scratch copy of the
project; a plain second `dvc repro` then does nothing; a task parameter invalidates only that task."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COPY = ("dvc.yaml", "params.yaml", ".dvcignore", "notebooks", "cohirl")


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("smoke") / "project"
    repo.mkdir()
    for name in COPY:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name)
    _run(["git", "init", "-q"], repo)
    _run(["dvc", "init", "-q"], repo)
    _run(["cohirl", "profile", "smoke"], repo)
    _run(["cohirl", "repro", "--jobs", "2"], repo)
    return repo


def test_smoke_chain_produces_every_artefact(smoke_repo: Path) -> None:
    results = smoke_repo / "results"
    assert (smoke_repo / "data/demos/pick_place/meta/cohirl_complete.json").exists()
    assert (smoke_repo / "data/base/pick_place/model.safetensors").exists()
    evals = pd.concat(pd.read_csv(p) for p in results.glob("runs/pick_place/*/0/evals.csv"))
    assert set(evals.method) == {"csil_ensemble", "csil_residual", "sparse_residual"}
    assert sorted(evals.env_steps.unique()) == [0, 50, 100]
    for name in ("main_table.csv", "main_table.md", "main_table.tex", "claims.csv", "aggregates.csv"):
        assert (results / "tables" / name).exists(), name
    assert (results / "figures/paper/learning_curves.png").exists()
    metrics = json.loads((results / "metrics.json").read_text())
    assert set(metrics) == {f"pick_place/{m}" for m in evals.method.unique()}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert list((results / "executed").glob("05_results.ipynb"))


def test_second_repro_reruns_nothing(smoke_repo: Path) -> None:
    out = _run(["dvc", "repro"], smoke_repo)
    assert "Running stage" not in out
    assert "up to date" in _run(["dvc", "status"], smoke_repo)


def test_task_parameter_invalidates_only_that_task(smoke_repo: Path) -> None:
    params_path = smoke_repo / "params.yaml"
    original = params_path.read_text()
    try:
        params = yaml.safe_load(original)
        params["task_params"]["square"]["demos"]["noise"]["pos_sigma"] = 0.25  # square is not in smoke
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        assert "up to date" in _run(["dvc", "status"], smoke_repo)
        params["task_params"]["pick_place"]["demos"]["noise"]["pos_sigma"] = 0.25
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
        status = _run(["dvc", "status"], smoke_repo)
        assert "demos@pick_place" in status and re.search(r"modified:\s+task_params\.pick_place", status)
        assert "report" not in status  # downstream only through its inputs, once they change
    finally:
        params_path.write_text(original)
