"""`cohirl repro`: the DAG scheduler over `dvc repro --single-item`, on a tiny real DVC project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cohirl.errors import CohirlError
from cohirl.repro import ParallelRepro, StageGraph, read_stage_graph, repro

DVC = str(Path(sys.executable).parent / "dvc")

# Two independent 1.5 s stages and one that joins them; each records when its command ran.
STAMP = "python -c \"import time,sys; a=time.time(); time.sleep(1.5); open(sys.argv[1],'w').write(f'{a} {time.time()}')\""
PIPELINE = {"stages": {
    "left": {"cmd": f"{STAMP} left.txt", "outs": ["left.txt"]},
    "right": {"cmd": f"{STAMP} right.txt", "outs": ["right.txt"]},
    "join": {"cmd": "cat left.txt right.txt > join.txt", "deps": ["left.txt", "right.txt"], "outs": ["join.txt"]},
}}


def _project(tmp_path: Path, pipeline: dict) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run([DVC, "init", "-q"], cwd=root, check=True, env=env)
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    return root


def _interval(path: Path) -> tuple[float, float]:
    start, end = path.read_text().split()
    return float(start), float(end)


def test_graph_priorities_and_restriction() -> None:
    graph = StageGraph({"demos": set(), "base": {"demos"}, "scaling": {"demos"}, "ft1": {"base"},
                        "ft2": {"base"}, "report": {"ft1", "ft2", "scaling"}})
    counts = graph.downstream_counts()
    assert counts == {"demos": 5, "base": 3, "scaling": 1, "ft1": 1, "ft2": 1, "report": 0}
    assert set(graph.restricted_to(["ft1"]).upstream) == {"ft1", "base", "demos"}
    with pytest.raises(CohirlError, match="unknown stage"):
        graph.restricted_to(["nope"])


def test_independent_stages_run_side_by_side_and_dvc_lock_is_complete(tmp_path: Path) -> None:
    root = _project(tmp_path, PIPELINE)
    graph = read_stage_graph(root)
    assert graph.upstream == {"left": set(), "right": set(), "join": {"left", "right"}}
    repro(jobs=2, root=root, dvc=DVC)
    (l0, l1), (r0, r1) = _interval(root / "left.txt"), _interval(root / "right.txt")
    assert max(l0, r0) < min(l1, r1), "left and right should have overlapped"
    assert (root / "join.txt").read_text().count(" ") == 2
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"left", "right", "join"}
    status = subprocess.run([DVC, "status"], cwd=root, capture_output=True, text=True, check=True)
    assert "up to date" in status.stdout
    before = (root / "left.txt").read_text()
    repro(jobs=2, root=root, dvc=DVC)  # nothing changed: nothing reruns
    assert (root / "left.txt").read_text() == before


def test_one_job_runs_stages_one_after_another(tmp_path: Path) -> None:
    root = _project(tmp_path, PIPELINE)
    repro(jobs=1, root=root, dvc=DVC)
    (l0, l1), (r0, r1) = sorted([_interval(root / "left.txt"), _interval(root / "right.txt")])
    assert l1 <= r0


def test_a_failing_stage_stops_its_downstream_and_names_itself(tmp_path: Path) -> None:
    pipeline = {"stages": {**PIPELINE["stages"], "right": {"cmd": "exit 3", "outs": ["right.txt"]}}}
    root = _project(tmp_path, pipeline)
    with pytest.raises(CohirlError, match=r"\['right'\] failed"):
        repro(jobs=2, root=root, dvc=DVC)
    assert not (root / "join.txt").exists()
    assert (root / "left.txt").exists()  # the independent branch still finished
    assert "failed to reproduce 'right'" in (root / "logs" / "repro" / "right.log").read_text()


def test_bad_jobs_value_is_refused() -> None:
    with pytest.raises(CohirlError, match="--jobs"):
        ParallelRepro(StageGraph({}), jobs=0)
