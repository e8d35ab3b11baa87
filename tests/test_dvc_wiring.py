"""dvc.yaml must list every `cohirl` file and params section a stage uses, so DVC reruns it when they
change, and its code dependencies must be the derived ones, so that a change reruns only the stages
that run the changed code. dvc.yaml is generated (``cohirl wiring --write``) from the stage templates
in ``cohirl/pipeline.yaml`` and params.yaml's pipelines: one DVC matrix stage per template and profile,
over the profile's own lists. The derivation lives in ``cohirl.wiring``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cohirl.wiring import code_deps, dvc_stages, entry_closure, missing_inputs, render_dvc_yaml, stage_bodies


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
    stage["deps"] = [d for d in stage["deps"] if d != "notebooks/02_base_policy.py"]
    stage["params"] = [p for p in stage["params"] if p != "profiles.${item.profile}.eval"]
    assert missing_inputs(stage) == ["notebooks/02_base_policy.py", "params profiles.${item.profile}.eval"]


def test_dvc_yaml_is_the_one_generated_from_the_templates_and_pipelines() -> None:
    from cohirl.config import read_params
    from cohirl.wiring import ROOT

    assert (ROOT / "dvc.yaml").read_text() == render_dvc_yaml(read_params(ROOT / "params.yaml")), (
        "dvc.yaml differs from what cohirl/pipeline.yaml and params.yaml's pipelines make: run `cohirl wiring --write`")


def test_each_profile_gets_matrix_stages_over_its_own_lists_with_the_derived_code_deps() -> None:
    params = {"pipelines": ["p"], "profiles": {"p": {"tasks": ["square"], "methods": ["csil_residual"], "seeds": [0],
                                                     "extra_runs": [{"task": "square", "methods": ["csil_magic"]}]}}}
    stages = dvc_stages(params)
    assert set(stages) == {f"{kind}-p" for kind in _stages()} | {"finetune-p-extra0"}
    assert stages["demos-p"]["matrix"] == {"task": "${profiles.p.tasks}"}
    assert stages["finetune-p"]["matrix"] == {"task": "${profiles.p.tasks}", "method": "${profiles.p.methods}",
                                              "seed": "${profiles.p.seeds}"}
    assert stages["finetune-p-extra0"]["matrix"] == {"task": ["${profiles.p.extra_runs[0].task}"],
                                                     "method": "${profiles.p.extra_runs[0].methods}",
                                                     "seed": "${profiles.p.seeds}"}
    assert "matrix" not in stages["report-p"] and "${item.profile}" not in str(stages)
    for name, body in stages.items():
        template = _stages()[name.split("-")[0]]
        assert [d for d in body["deps"] if d.startswith("cohirl/")] == code_deps(template), name
        assert body["cmd"] == template["cmd"].replace("${item.profile}", "p")


def test_report_and_finetuning_do_not_share_their_stage_modules() -> None:
    stages = _stages()
    finetune, report = set(code_deps(stages["finetune"])), set(code_deps(stages["report"]))
    assert "cohirl/stages/report.py" not in finetune and "cohirl/stages/finetune.py" not in report
    assert not any(d.startswith(("cohirl/training", "cohirl/csil", "cohirl/envs")) for d in report)


def test_plots_are_the_pipelines_figures_and_curves() -> None:
    from cohirl.config import read_params
    from cohirl.wiring import dvc_plots, listed_plots

    plots = listed_plots()
    assert plots == dvc_plots(read_params()), "run `cohirl wiring --write`"
    curves = {key: props for entry in plots if isinstance(entry, dict) for key, props in entry.items()}
    # a folder: any task, any method, without regenerating dvc.yaml
    assert set(curves) == {"results/quick/live/plots/metrics", "results/effect/live/plots/metrics"}
    assert curves["results/effect/live/plots/metrics"]["x"] == "step"


def test_dvc_plots_diff_draws_two_revisions_of_the_curves_the_report_logs(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    import pandas as pd
    import yaml

    from cohirl.report.live import write_live
    from cohirl.wiring import write_dvc_yaml

    dvc = str(Path(sys.executable).parent / "dvc")
    params = {"pipelines": ["p"], "profiles": {"p": {"tasks": ["square"], "methods": ["csil_residual", "sparse_residual"],
                                                     "seeds": [0, 1]}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))  # dvc.yaml's matrices read it
    assert write_dvc_yaml(params, tmp_path / "dvc.yaml") and not write_dvc_yaml(params, tmp_path / "dvc.yaml")

    def evals(late: float) -> pd.DataFrame:
        return pd.DataFrame([{"task": "square", "method": m, "seed": s, "env_steps": t, "success_rate": r + 0.1 * s}
                             for m, rates in (("csil_residual", (0.5, late)), ("sparse_residual", (0.5, 0.2)))
                             for s in (0, 1) for t, r in zip((0, 600), rates)])

    runs = {"square": ["csil_residual", "sparse_residual"]}
    live = tmp_path / "results/p/live"
    write_live(evals(0.6), runs, live)
    first = {p.relative_to(live): p.read_bytes() for p in sorted(live.rglob("*")) if p.is_file()}
    write_live(evals(0.6), runs, live)  # the same rows: the same bytes (no timestamps)
    assert {p.relative_to(live): p.read_bytes() for p in sorted(live.rglob("*")) if p.is_file()} == first
    assert json.loads((live / "metrics.json").read_text()) == {
        "square": {"csil_residual": 0.65, "sparse_residual": 0.25}, "step": 600,
        "seeds": {"square": {"csil_residual": {"seed_0": 0.6, "seed_1": 0.7},
                             "sparse_residual": {"seed_0": 0.2, "seed_1": 0.3}}}}
    run = dict(cwd=tmp_path, check=True, capture_output=True, text=True)
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"]):
        subprocess.run(cmd, **run)
    write_live(evals(0.8), runs, live)
    out = json.loads(subprocess.run([dvc, "plots", "diff", "HEAD", "--json"], **run).stdout)
    assert not [e for e in out.get("errors") or [] if "/live/" in e["name"]], out["errors"]  # (no figures here)
    final = {(path.split("metrics/", 1)[1], v["rev"]): float(v[Path(path).stem])  # y: the file's value column
             for path, charts in out["data"].items() if "/live/" in path
             for v in charts[0]["content"]["data"]["values"] if v["step"] == "600"}
    assert final == {("square/csil_residual.tsv", "HEAD"): pytest.approx(0.65),
                     ("square/csil_residual.tsv", "workspace"): pytest.approx(0.85),
                     ("square/sparse_residual.tsv", "HEAD"): pytest.approx(0.25),
                     ("square/sparse_residual.tsv", "workspace"): pytest.approx(0.25),
                     ("seeds/square/csil_residual/seed_1.tsv", "HEAD"): pytest.approx(0.7),
                     ("seeds/square/csil_residual/seed_1.tsv", "workspace"): pytest.approx(0.9),
                     ("seeds/square/csil_residual/seed_0.tsv", "HEAD"): pytest.approx(0.6),
                     ("seeds/square/csil_residual/seed_0.tsv", "workspace"): pytest.approx(0.8),
                     ("seeds/square/sparse_residual/seed_0.tsv", "HEAD"): pytest.approx(0.2),
                     ("seeds/square/sparse_residual/seed_0.tsv", "workspace"): pytest.approx(0.2),
                     ("seeds/square/sparse_residual/seed_1.tsv", "HEAD"): pytest.approx(0.3),
                     ("seeds/square/sparse_residual/seed_1.tsv", "workspace"): pytest.approx(0.3)}


def test_dvclive_points_round_trip_and_skip_non_finite_values(tmp_path: Path) -> None:
    from cohirl.io import read_dvclive, write_dvclive

    points = [("train/loss", 5, 1.5), ("train/loss", 9, 0.5), ("train/q", 9, float("nan")), ("eval/success", 0, 0.25)]
    out = write_dvclive(points, tmp_path / "live")
    table = read_dvclive(out, "train")
    assert list(table.step) == [5, 9] and list(table.loss) == [1.5, 0.5] and "q" not in table
    assert json.loads((out / "metrics.json").read_text()) == {"train": {"loss": 0.5}, "eval": {"success": 0.25},
                                                               "step": 9}
    assert not list(tmp_path.glob(".*tmp"))  # written beside, renamed into place
    with pytest.raises(FileNotFoundError, match="no dvclive metrics"):
        read_dvclive(out, "critic")
