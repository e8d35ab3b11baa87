"""dvc.yaml must list every `cohirl` file and params section a stage uses, so DVC reruns it when they
change, and its code dependencies must be the derived ones (``cohirl wiring --write``), so that a
change reruns only the stages that run the changed code. The derivation lives in ``cohirl.wiring``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cohirl.wiring import code_deps, entry_closure, listed_code_deps, missing_inputs, stage_bodies, write_code_deps


def _stages() -> dict[str, dict]:
    return stage_bodies()


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_lists_every_file_and_params_section_it_uses(name: str) -> None:
    missing = missing_inputs(_stages()[name])
    assert not missing, f"dvc.yaml stage {name!r} uses {missing} but does not list them: add them to its deps/params"


def test_closure_is_by_function_not_by_module() -> None:
    base, _ = entry_closure("cohirl notebook 02_base_policy")
    assert {"cohirl/stages/base.py", "cohirl/policies/train_base.py", "cohirl/demos/dataset.py"} <= base.files
    assert not {"cohirl/stages/finetune.py", "cohirl/stages/report.py"} & base.files  # a module per stage
    assert "cohirl/envs/robosuite/tasks.py" in base.files  # named as a string by the task registry
    assert not any(f.startswith(("cohirl/training/", "cohirl/csil/")) for f in base.files)
    assert {"base", "eval"} <= base.sections and "finetune" not in base.sections
    finetune, _ = entry_closure("cohirl notebook 04_finetune")
    assert "cohirl/training/loop.py" in finetune.files and "finetune" in finetune.sections


def test_a_dropped_dependency_or_params_section_is_found() -> None:
    stage = dict(_stages()["base"])
    stage["deps"] = [d for d in stage["deps"] if d != "cohirl/stages/base.py"]
    stage["params"] = [p for p in stage["params"] if p != "profiles.${item.profile}.eval"]
    assert missing_inputs(stage) == ["cohirl/stages/base.py", "params profiles.${item.profile}.eval"]


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_code_dependencies_are_the_derived_ones(name: str) -> None:
    stage = _stages()[name]
    assert listed_code_deps(stage) == code_deps(stage), (
        f"dvc.yaml stage {name!r} lists other code dependencies than it runs: run `cohirl wiring --write`")


def test_report_and_finetuning_do_not_share_their_stage_modules() -> None:
    stages = _stages()
    finetune, report = set(code_deps(stages["finetune"])), set(code_deps(stages["report"]))
    assert "cohirl/stages/report.py" not in finetune and "cohirl/stages/finetune.py" not in report
    assert not any(d.startswith(("cohirl/training", "cohirl/csil", "cohirl/envs")) for d in report)


def test_writing_the_derived_dependencies_keeps_everything_else(tmp_path: Path) -> None:
    from cohirl.wiring import ROOT

    text = (ROOT / "dvc.yaml").read_text()
    drifted = text.replace("      - cohirl/stages/report.py\n", "", 1).replace(
        "      - cohirl/report\n", "      - cohirl/report\n      - cohirl/repro.py\n", 1)
    path = tmp_path / "dvc.yaml"
    path.write_text(drifted)
    assert write_code_deps(path) == ["report"]
    assert path.read_text() == text  # comments, order and every other line as they were
    assert write_code_deps(path) == []
