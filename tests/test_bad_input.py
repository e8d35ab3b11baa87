"""Bad input through the CLI: one message naming the problem and the fix, exit 2, nothing half-written.

Each case runs ``cohirl.cli.main`` in a scratch project (a copy of params.yaml on the smoke profile,
no data), so the error must come before any stage writes its output.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cohirl.cli import main

ROOT = Path(__file__).resolve().parents[1]
FINETUNE = ["finetune", "--task", "pick_place", "--method", "csil_residual"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COHIRL_PARAMS", raising=False)
    assert main(["profile", "smoke"]) == 0
    return tmp_path


def _edit(project: Path, change: Callable[[dict], None]) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    change(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2, f"cohirl {' '.join(argv)} did not fail with exit 2"
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, f"{needle!r} not in the message: {err}"
    assert err.count("cohirl: error:") == 1 and "Traceback" not in err
    return err


def _no_outputs(project: Path) -> None:
    made = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and p.name != "params.yaml")
    assert not made, f"a failed command left files behind: {made}"


def test_unknown_task(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["finetune", "--task", "sqaure", "--method", "csil_residual"], capsys, "unknown task 'sqaure'",
           "cohirl tasks")
    _no_outputs(project)


def test_unknown_method(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["finetune", "--task", "pick_place", "--method", "csil_residul"], capsys, "csil_residul",
           "csil_residual")
    _no_outputs(project)


def test_unknown_profile(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["profile", "huge"], capsys, "unknown profile 'huge'", "quick")
    assert yaml.safe_load((project / "params.yaml").read_text())["profile"] == "smoke"


def test_params_that_are_not_yaml(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "params.yaml").write_text("profile: smoke\nprofiles: {smoke: [\n")
    _fails(FINETUNE, capsys, "params.yaml is not valid YAML")


@pytest.mark.parametrize("key,value,needles", [
    ("env_steps", "many", ("finetune", "env_steps", "expected int")),
    ("env_stepz", 100, ("unknown keys ['env_stepz']",)),
    ("env_steps", -5, ("env_steps", "-5")),
    ("eval_episodes", 0, ("must be positive", "eval_episodes=0")),
], ids=["wrong-type", "unknown-key", "negative-budget", "zero-eval-episodes"])
def test_malformed_finetune_params(project: Path, capsys: pytest.CaptureFixture[str], key: str, value: object,
                                   needles: tuple[str, ...]) -> None:
    _edit(project, lambda p: p["profiles"]["smoke"]["finetune"].__setitem__(key, value))
    _fails(FINETUNE, capsys, *needles)
    _no_outputs(project)


def test_missing_demonstrations(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(FINETUNE, capsys, "data/smoke/demos/pick_place",
           "dvc repro")
    _no_outputs(project)


def test_missing_demonstrations_for_demo_scaling(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["demo-scaling", "--task", "pick_place"], capsys, "data/smoke/demos/pick_place", "dvc repro")
    _no_outputs(project)


def _robomimic_file(path: Path, action_dim: int = 7, with_data: bool = True) -> Path:
    """A robomimic low-dim layout: data/demo_i/{actions, rewards, dones, states, obs/*}."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        if not with_data:
            f.create_group("mask")
            return path
        for i in range(2):
            g = f.create_group(f"data/demo_{i}")
            g["actions"] = rng.uniform(-1, 1, (6, action_dim))
            g["rewards"], g["dones"] = np.r_[np.zeros(5), 1.0], np.r_[np.zeros(5), 1]
            g["states"] = rng.normal(size=(6, 30))
            for key, dim in (("robot0_eef_pos", 3), ("robot0_eef_quat", 4), ("robot0_gripper_qpos", 2), ("object", 14)):
                g[f"obs/{key}"] = rng.normal(size=(6, dim))
    return path


@pytest.mark.parametrize("make,extra,needles", [
    (lambda p: p, [], ("no HDF5 file at", "data/raw")),
    (lambda p: _robomimic_file(p, with_data=False), [], ("has no 'data' group", "['mask']")),
    (lambda p: _robomimic_file(p, action_dim=5), [], ("actions are 5-d", "square expects 7-d")),
    (lambda p: _robomimic_file(p), ["--state-keys", "robot0_joint_pos"], ("lacks ['robot0_joint_pos']",
                                                                         "--state-keys")),
], ids=["missing-file", "no-data-group", "wrong-action-size", "obs-keys-mismatch"])
def test_bad_hdf5_import(project: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path],
                         extra: list[str], needles: tuple[str, ...]) -> None:
    src = make(project / "in.hdf5")
    _fails(["import-hdf5", str(src), "--task", "square", "--out", "data/demos/square", *extra], capsys, *needles)
    assert not (project / "data").exists(), "a failed import left a dataset directory"


def test_incomplete_demonstration_dataset(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "data/smoke/demos/pick_place/meta").mkdir(parents=True)  # a crash before the dataset was finalized
    _fails(FINETUNE, capsys, "incomplete",
           "data/smoke/demos/pick_place", "--overwrite")


def test_missing_dataset_root_is_local_even_without_hf_hub_offline(project: Path, capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    attempts: list[object] = []

    def no_network(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    _fails(FINETUNE, capsys, "no dataset at data/smoke/demos/pick_place")
    assert os.environ["HF_HUB_OFFLINE"] == "1", "the CLI entry point must switch the Hub off itself"
    assert not attempts, f"a missing local dataset reached for the network: {attempts}"


@pytest.mark.parametrize("command", [["demos", "--task", "pick_place", "--n", "1"],
                                     ["import-hdf5", "in.hdf5", "--task", "square"]], ids=["demos", "import-hdf5"])
def test_an_output_location_that_cannot_be_written(project: Path, capsys: pytest.CaptureFixture[str],
                                                    command: list[str]) -> None:
    # (Tests run as root here, so a read-only mode would not stop a write: a file in the way does.)
    _robomimic_file(project / "in.hdf5")
    (project / "results").write_text("a file where a directory is needed\n")
    _fails([*command, "--out", "results/demos"], capsys, "cannot write results/demos", "not a writable directory",
           "--out")
    assert (project / "results").read_text().startswith("a file")


def test_a_write_error_during_a_command_is_one_message(project: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import cohirl.wiring

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device", "params.yaml")

    monkeypatch.setattr(cohirl.wiring, "set_profile", disk_full)
    _fails(["profile", "quick"], capsys, "could not access params.yaml", "No space left on device", "free disk space")


def test_zero_evaluation_episodes_stop_the_stage_notebooks_before_they_run(project: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _edit(project, lambda p: p["profiles"]["smoke"]["eval"].__setitem__("n_episodes", 0))
    _fails(["notebook", "02_base_policy", "--tag", "smoke-pick_place", "-p", "task=pick_place", "-p", "profile=smoke"],
           capsys, "profiles.smoke.eval", "n_episodes", ">= 1")
    _no_outputs(project)


def test_nan_in_demonstration_actions_is_named_before_training(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from cohirl.demos.dataset import write_dataset
    from cohirl.envs import get_spec
    from conftest import make_episodes

    spec = get_spec("pick_place")
    episodes = make_episodes(4, spec=spec)
    episodes[1].action[3, 0] = np.nan
    write_dataset(episodes, project / "data/smoke/demos/pick_place", spec, provenance={"seed": 0})
    _fails(["demo-scaling", "--task", "pick_place"], capsys, "NaN", "demonstration")
    assert not (project / "data/smoke/demo_scaling").exists() and not (project / "results").exists()
