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


def test_plots_are_the_pipelines_figures_and_curves() -> None:
    from cohirl.config import read_params
    from cohirl.wiring import dvc_plots, listed_plots

    plots = listed_plots()
    assert plots == dvc_plots(read_params()), "run `cohirl wiring --write`"
    curves = {key: props for entry in plots if isinstance(entry, dict) for key, props in entry.items()}
    assert curves["results/effect/curves/peg_insert_side.csv"]["y"] == [  # the ablations run on this task only
        "csil_ensemble", "csil_residual", "sparse_residual", "csil_residual_no_critic_pretrain",
        "csil_residual_no_refine"]
    assert curves["results/effect/curves/square.csv"]["y"] == ["csil_ensemble", "csil_residual", "sparse_residual"]


def test_dvc_plots_diff_draws_two_revisions_of_the_curves_the_report_writes(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    import pandas as pd
    import yaml

    from cohirl.report.tables import curves_wide
    from cohirl.wiring import write_plots

    dvc = str(Path(sys.executable).parent / "dvc")
    params = {"pipelines": ["p"], "profiles": {"p": {"tasks": ["square"], "methods": ["csil_residual", "sparse_residual"],
                                                     "seeds": [0, 1]}}}
    (tmp_path / "dvc.yaml").write_text("stages: {}\n\nplots:\n- placeholder.png\n")
    assert write_plots(params, tmp_path / "dvc.yaml") and not write_plots(params, tmp_path / "dvc.yaml")
    assert yaml.safe_load((tmp_path / "dvc.yaml").read_text())["plots"][-1]["results/p/curves/square.csv"]["y"] == [
        "csil_residual", "sparse_residual"]

    def evals(late: float) -> pd.DataFrame:
        return pd.DataFrame([{"task": "square", "method": m, "seed": s, "env_steps": t, "success_rate": r + 0.1 * s}
                             for m, rates in (("csil_residual", (0.5, late)), ("sparse_residual", (0.5, 0.2)))
                             for s in (0, 1) for t, r in zip((0, 600), rates)])

    curve = tmp_path / "results/p/curves/square.csv"
    curve.parent.mkdir(parents=True)
    curves_wide(evals(0.6), "square", ["csil_residual", "sparse_residual"]).to_csv(curve, index=False)
    run = dict(cwd=tmp_path, check=True, capture_output=True, text=True)
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"]):
        subprocess.run(cmd, **run)
    curves_wide(evals(0.8), "square", ["csil_residual", "sparse_residual"]).to_csv(curve, index=False)
    out = json.loads(subprocess.run([dvc, "plots", "diff", "HEAD", "--json"], **run).stdout)
    values = out["data"]["results/p/curves/square.csv"][0]["content"]["data"]["values"]
    final = {(v["rev"], v["field"]): float(v["dvc_inferred_y_value"]) for v in values if v["env_steps"] == "600"}
    assert final == {("HEAD", "csil_residual"): pytest.approx(0.65), ("workspace", "csil_residual"): pytest.approx(0.85),
                     ("HEAD", "sparse_residual"): pytest.approx(0.25), ("workspace", "sparse_residual"): pytest.approx(0.25)}
