"""The smoke profile end to end by plain sequential `dvc repro` (`cohirl repro --backend dvc`, the
reference the Ray executor is held to in test_ray_cluster.py): every notebook runs through papermill
in a scratch copy of the project; a second `dvc repro` then does nothing; a task parameter
invalidates only that task."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import run_tool


@pytest.fixture(scope="module")
def smoke_repo(smoke_reference: Path) -> Path:
    return smoke_reference


def _run(cmd: list[str], cwd: Path) -> str:
    return run_tool(cmd, cwd)


def test_smoke_chain_produces_every_artefact(smoke_repo: Path) -> None:
    results = smoke_repo / "results/smoke"
    assert (smoke_repo / "data/smoke/demos/pick_place/meta/cohirl_complete.json").exists()
    assert (smoke_repo / "data/smoke/base/pick_place/model.safetensors").exists()
    evals = pd.concat(pd.read_csv(p) for p in results.glob("runs/pick_place/*/0/evals.csv"))
    assert set(evals.method) == {"csil_ensemble", "csil_residual", "sparse_residual"}
    assert sorted(evals.env_steps.unique()) == [0, 50, 100]
    for name in ("main_table.csv", "main_table.md", "main_table.tex", "claims.csv", "aggregates.csv"):
        assert (results / "tables" / name).exists(), name
    assert (results / "figures/learning_curves.png").exists()
    metrics = json.loads((results / "live/metrics.json").read_text())  # dvclive's summary: final, mean over seeds
    assert set(metrics["pick_place"]) == set(evals.method.unique()) and metrics["step"] == 100
    assert all(0.0 <= v <= 1.0 for v in metrics["pick_place"].values())
    final = evals[evals.env_steps == 100].groupby("method").success_rate.mean()
    assert metrics["pick_place"] == pytest.approx(final.to_dict())
    assert (results / "live/plots/metrics/pick_place/csil_residual.tsv").read_text().splitlines()[0] == \
        "step\tcsil_residual"
    assert list((smoke_repo / "results/executed").glob("05_results*.ipynb"))


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
        assert "demos-smoke@pick_place" in status and re.search(r"modified:\s+task_params\.pick_place", status)
        assert "report" not in status  # downstream only through its inputs, once they change
    finally:
        params_path.write_text(original)
