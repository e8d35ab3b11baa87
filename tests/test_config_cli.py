"""params.yaml profiles, the config system, the CLI's error handling, and notebook hygiene."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cohirl.cli import main
from cohirl.config import (check_matrix_in_sync, from_dict, profile_section, read_params, set_profile,
                           task_settings)
from cohirl.envs import get_spec
from cohirl.errors import CohirlError
from cohirl.stages import BaseStageConfig, DemoScalingConfig, EvalConfig
from cohirl.training.loop import FinetuneConfig

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"base": BaseStageConfig, "demo_scaling": DemoScalingConfig, "eval": EvalConfig,
          "finetune": FinetuneConfig}


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_every_profile_builds_every_stage_config(profile: str) -> None:
    params = read_params(ROOT / "params.yaml")
    for task in profile_section(params, profile)["tasks"]:
        get_spec(task)  # registered
        assert task in params["task_params"], f"task_params lacks {task} (DVC stages depend on it)"
        for stage, cls in STAGES.items():
            from_dict(cls, task_settings(params, stage, task, profile), stage)


def test_active_profile_matrix_is_in_sync() -> None:
    check_matrix_in_sync(read_params(ROOT / "params.yaml"))


@dataclass(frozen=True)
class _Cfg:
    n: int = 1
    rate: float = 0.5
    names: tuple[str, ...] = ()


def test_from_dict_rejects_malformed_params() -> None:
    assert from_dict(_Cfg, {"n": 3, "rate": 1, "names": ["a"]}) == _Cfg(3, 1.0, ("a",))
    with pytest.raises(CohirlError, match="unknown keys \\['nn'\\]"):
        from_dict(_Cfg, {"nn": 3})
    with pytest.raises(CohirlError, match="expected int"):
        from_dict(_Cfg, {"n": "three"})


def test_set_profile_rewrites_the_matrix_keys(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    params = set_profile("smoke", path)
    assert params["profile"] == "smoke" and params["tasks"] == params["profiles"]["smoke"]["tasks"]
    check_matrix_in_sync(params)
    assert "# ---- profiles" in path.read_text()
    with pytest.raises(CohirlError, match="unknown profile"):
        set_profile("huge", path)


def test_cli_errors_name_the_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demos", "--task", "no_such_task", "--n", "2", "--out", "/tmp/x"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'no_such_task'" in err and "square" in err
    assert main(["demos", "--task", "lift", "--n", "0", "--out", "/tmp/cohirl-never"]) == 2
    assert "n_demos must be a positive" in capsys.readouterr().err
    assert not Path("/tmp/cohirl-never").exists()


def test_cli_tasks_lists_the_registry() -> None:
    out = subprocess.run([sys.executable, "-m", "cohirl.cli", "tasks"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    for name in ("square", "nut_assembly", "lift", "can", "stack", "pick_place", "assembly"):
        assert name in out


@pytest.mark.parametrize("py", sorted((ROOT / "notebooks").glob("*.py")), ids=lambda p: p.stem)
def test_notebooks_are_paired_stripped_and_parameterised(py: Path) -> None:
    import jupytext

    nb_path = py.with_suffix(".ipynb")
    assert nb_path.exists(), f"{nb_path} missing: run `make notebooks` (jupytext --sync)"
    nb = json.loads(nb_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs not stripped"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    from_py = [c.source for c in jupytext.read(py).cells]
    assert from_py == ["".join(c["source"]) for c in nb["cells"]], f"{nb_path.name} out of sync with {py.name}"
