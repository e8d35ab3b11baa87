"""params.yaml profiles, the config system, the CLI's error handling, and notebook hygiene."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cohirl.cli import main
from cohirl.config import (from_dict, profile_section, read_params,
                           task_settings)
from cohirl.errors import CohirlError
from cohirl.stages import BaseStageConfig, DemoScalingConfig, EvalConfig
from cohirl.stages.check import check_profile
from cohirl.training.loop import FinetuneConfig

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"base": BaseStageConfig, "demo_scaling": DemoScalingConfig, "eval": EvalConfig,
          "finetune": FinetuneConfig}


@pytest.mark.parametrize("profile", ["smoke", "quick", "effect", "paper"])
def test_every_profile_builds_every_stage_config(profile: str) -> None:
    params = read_params(ROOT / "params.yaml")
    built = check_profile(profile, params)
    assert set(built) == set(profile_section(params, profile)["tasks"])
    for task, sections in built.items():
        assert task in params["task_params"], f"task_params lacks {task} (DVC stages depend on it)"
        assert {type(sections[s]) for s in STAGES} == set(STAGES.values())


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["finetune"].setdefault("learner", {}).update(bc_stepz=1), r"finetune.learner: unknown keys \['bc_stepz'\]"),
    (lambda p: p["finetune"].setdefault("learner", {}).update(critic_hidden="wide"), r"critic_hidden: expected tuple"),
    (lambda p: p["finetune"].setdefault("composition", {}).update(kapa=0.1), r"finetune.composition: unknown keys"),
    (lambda p: p["finetune"].setdefault("per_method", {}).update(sparse_residual={"lerner": {}}),
     r"per_method.sparse_residual: unknown keys \['lerner'\]; valid: \['composition', 'learner'\]"),
    (lambda p: p["finetune"].update(bc_steps=10, learner={**p["finetune"].get("learner", {}), "bc_steps": 20}),
     "set the same knob"),
    (lambda p: p["base"].setdefault("train", {}).update(steps=5), r"base.train.steps: set it as base.steps"),
    (lambda p: p["base"].setdefault("train", {}).update(down_dim=[8]), r"base.train: unknown keys \['down_dim'\]"),
    (lambda p: p.update(finetun={}), r"profiles.quick: unknown keys \['finetun'\]"),
    (lambda p: p.update(methods=["csil_magic"]), r"unknown methods \['csil_magic'\]"),
])
def test_a_malformed_section_fails_when_params_are_read(edit: Any, message: str) -> None:
    params = read_params(ROOT / "params.yaml")
    edit(params["profiles"]["quick"])
    with pytest.raises(CohirlError, match=message):
        check_profile("quick", params)


def test_per_task_settings_override_one_task_of_one_profile() -> None:
    params = read_params(ROOT / "params.yaml")
    effect = {t: task_settings(params, "finetune", t, "effect") for t in ("square", "peg_insert_side")}
    assert effect["square"]["env_steps"] < effect["peg_insert_side"]["env_steps"] == 20000
    assert "per_task" not in effect["square"]
    assert task_settings(params, "finetune", "square", "quick")["env_steps"] == 600  # other profiles untouched
    assert task_settings(params, "demos", "peg_insert_side", "effect")["n_demos"] == 200
    assert task_settings(params, "demos", "stick_pull", "effect")["n_demos"] == 25
    params["profiles"]["effect"]["finetune"]["per_task"]["sqare"] = {}
    with pytest.raises(CohirlError, match="unknown tasks \\['sqare'\\]"):
        task_settings(params, "finetune", "square", "effect")


def test_dvc_yaml_has_the_stages_of_params_pipelines() -> None:
    from cohirl.wiring import check_dvc_yaml

    check_dvc_yaml(read_params(ROOT / "params.yaml"), ROOT / "dvc.yaml")


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


def test_set_profile_adds_a_pipeline_beside_the_others(tmp_path: Path) -> None:
    from cohirl.wiring import check_dvc_yaml, profile_groups, set_profile, write_dvc_yaml

    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = read_params(path)
    write_dvc_yaml(before, tmp_path / "dvc.yaml")
    params = set_profile("smoke", path)
    assert params["profile"] == "smoke" and params["pipelines"] == [*before["pipelines"], "smoke"]
    assert {k: v for k, v in params.items() if k not in ("profile", "pipelines")} == \
        {k: v for k, v in before.items() if k not in ("profile", "pipelines")}
    with pytest.raises(CohirlError, match="cohirl profile smoke"):  # dvc.yaml not regenerated yet
        check_dvc_yaml(params, tmp_path / "dvc.yaml")
    write_dvc_yaml(params, tmp_path / "dvc.yaml")
    check_dvc_yaml(params, tmp_path / "dvc.yaml")
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    for name in before["pipelines"]:  # the other pipelines' stages are kept as they were
        old = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
        assert {k: stages[k] for k in profile_groups(before, name)} == {k: old[k] for k in profile_groups(before, name)}
    assert stages["demos-smoke"]["matrix"] == {"task": "${profiles.smoke.tasks}"}
    text = path.read_text()
    assert "# ---- profiles" in text and text.index("pipelines:") < text.index("# ---- profiles")
    assert set_profile("smoke", path, only=True)["pipelines"] == ["smoke"]
    with pytest.raises(CohirlError, match="unknown profile"):
        set_profile("huge", path)


def test_extra_runs_add_ablations_on_one_task_and_repeats_are_refused(tmp_path: Path) -> None:
    from cohirl.config import profile_runs
    from cohirl.stages.check import check_profile

    params = read_params(ROOT / "params.yaml")
    section = params["profiles"]["smoke"]
    section["extra_runs"] = [{"task": section["tasks"][0], "methods": ["csil_residual_no_refine"], "seeds": [0, 1]}]
    assert {("pick_place", "csil_residual_no_refine", 0), ("pick_place", "csil_residual_no_refine", 1)} <= \
        set(profile_runs(section))
    check_profile("smoke", params)
    section["extra_runs"] = [{"task": "pick_place", "methods": ["csil_residual"]}]  # already in methods: two stages
    with pytest.raises(CohirlError, match="repeats runs of the profile's methods \\['csil_residual'\\]"):
        profile_runs(section)  # the report and dvc.yaml read the same list: it never holds a run twice
    with pytest.raises(CohirlError, match="profiles.smoke: extra_runs\\[0\\] repeats runs of the profile's "
                                          "methods \\['csil_residual'\\]"):
        check_profile("smoke", params)
    section["extra_runs"] = [{"task": "square", "methods": ["csil_residual_no_refine"]}]
    with pytest.raises(CohirlError, match="not one of the profile's tasks"):
        check_profile("smoke", params)


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


def test_each_profile_has_its_own_stages_and_paths() -> None:
    from cohirl.repro import profile_stages

    params = read_params(ROOT / "params.yaml")
    names = {p: profile_stages(p, ROOT) for p in params["pipelines"]}
    for profile, stages in names.items():
        section = profile_section(params, profile)
        assert f"report-{profile}" in stages
        assert {f"demos-{profile}@{t}" for t in section["tasks"]} <= set(stages)
        assert all(s.split("@")[0].split("-")[1] == profile for s in stages)
    assert not set.intersection(*map(set, names.values())) if len(names) > 1 else True
    dvc = (ROOT / "dvc.yaml").read_text()
    assert all(f"data/{p}/" in dvc and f"results/{p}/" in dvc for p in names)
    with pytest.raises(CohirlError, match="cohirl profile smoke"):
        profile_stages("smoke", ROOT)  # defined, but its pipeline is not in dvc.yaml


@pytest.mark.parametrize("change, named", [
    (("profiles", "quick", "methods", ["csil_residual", "csil_magic"]), "unknown methods ['csil_magic']"),
    (("profiles", "quick", "tasks", ["square", "sqaure"]), "sqaure"),
    (("profiles", "quick", "finetune", "env_step", 5), "unknown keys ['env_step']"),
])
def test_a_bad_sweep_stops_at_the_first_stage_command_naming_what_is_wrong(tmp_path: Path, change: tuple,
                                                                           named: str) -> None:
    """What `dvc exp run -S <key>=<value>` writes into params.yaml, then a stage command as dvc.yaml runs it."""
    import subprocess
    import sys

    import yaml

    from conftest import tool_env

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    *keys, last, value = change
    node = params
    for key in keys:
        node = node[key]
    node[last] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "cohirl.cli", "notebook", "05_results", "--tag", "quick",
                           "-p", "profile=quick"], cwd=tmp_path, capture_output=True, text=True, env=tool_env(),
                          timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert named in proc.stderr and proc.stderr.count("\n") <= 3, proc.stderr
    assert not (tmp_path / "results").exists()  # nothing ran, nothing half-written


def test_every_registered_task_has_a_task_params_entry() -> None:
    # Each stage lists `task_params.<task>` among its DVC params, and DVC refuses a missing key: an entry
    # (`{}` for the defaults) is what lets any registered task be named in a profile or a sweep.
    from cohirl.envs import list_tasks

    entries = read_params(ROOT / "params.yaml")["task_params"]
    assert sorted(t.name for t in list_tasks() if t.name not in entries) == [], "add `<task>: {}` under task_params"
    assert entries["hammer"] == {}
