"""Importing a robomimic low-dim HDF5 file as robomimic's ``dataset_states_to_obs.py`` writes it:
filter keys, observations replayed from the simulator states, and a base trained on the import."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from cohirl.demos.dataset import load_demo_arrays
from cohirl.demos.hdf5_import import import_hdf5, read_hdf5_episodes
from cohirl.envs import ENV_STATE_KEY, STATE_KEY, get_spec, make_task
from cohirl.envs.robosuite.sim import refresh_observations
from cohirl.errors import CohirlError

LOW_DIM_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")


@pytest.fixture(scope="module")
def square_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """Three short square episodes recorded in this repository's simulator, written in robomimic's
    layout (data/demo_i/{actions, rewards, dones, states, obs/*}, data attrs env_args/total, demo
    attrs num_samples/model_file, mask/{train, valid}); returns the file and the task's own
    observations before each action, per demo, with the kinematics recomputed at that state (as
    robomimic's script reads them), and what ``step()`` returned there (its site positions lag
    MuJoCo's last integration step: ~3e-4 apart)."""
    path = tmp_path_factory.mktemp("robomimic") / "square_low_dim.hdf5"
    task = make_task("square")
    rng = np.random.default_rng(0)
    seen: dict[str, list[np.ndarray]] = {"state": [], "env_state": [], "stepped": []}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        total = 0
        for i in range(3):
            obs = task.reset(100 + i)
            states, low_dim, task_state, task_env, stepped, actions = [], {k: [] for k in LOW_DIM_KEYS}, [], [], [], []
            for _ in range(5 + i):
                states.append(task.env.sim.get_state().flatten())
                raw = refresh_observations(task.env)
                for key in LOW_DIM_KEYS:
                    low_dim[key].append(raw["object-state"] if key == "object" else raw[key])
                stepped.append(obs[STATE_KEY])
                fresh = task.set_sim_state(task.get_sim_state())  # kinematics recomputed at this state
                task_state.append(fresh[STATE_KEY])
                task_env.append(fresh[ENV_STATE_KEY])
                actions.append(rng.uniform(-0.5, 0.5, 7))
                obs, *_ = task.step(actions[-1])
            g = data.create_group(f"demo_{i}")
            t = len(actions)
            g.attrs["num_samples"] = t
            g.attrs["model_file"] = "<mujoco model=\"square\"/>"
            g["actions"], g["states"] = np.array(actions), np.array(states)
            g["rewards"], g["dones"] = np.r_[np.zeros(t - 1), 1.0], np.r_[np.zeros(t - 1), 1].astype(np.int64)
            for key, values in low_dim.items():
                g[f"obs/{key}"] = np.array(values)
            seen["state"].append(np.array(task_state))
            seen["stepped"].append(np.array(stepped))
            seen["env_state"].append(np.array(task_env))
            total += t
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps({"env_name": "NutAssemblySquare", "type": 1,
                                             "env_kwargs": {"robots": ["Panda"], "control_freq": 20}})
        f["mask/train"] = np.array([b"demo_0", b"demo_2"])
        f["mask/valid"] = np.array([b"demo_1"])
    task.close()
    return path, seen


def test_a_filter_key_selects_its_demos(square_file: tuple[Path, dict]) -> None:
    path, _ = square_file
    everything, env_args = read_hdf5_episodes(path)
    train, _ = read_hdf5_episodes(path, filter_key="train")
    valid, _ = read_hdf5_episodes(path, filter_key="valid")
    assert [len(e) for e in everything] == [5, 6, 7] and env_args["env_name"] == "NutAssemblySquare"
    assert [len(e) for e in train] == [5, 7] and [len(e) for e in valid] == [6]
    assert [e.seed for e in train] == [0, 2]  # the demo's own index
    with pytest.raises(CohirlError, match=r"no filter key 'test'.*\['train', 'valid'\]"):
        read_hdf5_episodes(path, filter_key="test")


def test_observations_replayed_from_states_are_the_tasks_own(square_file: tuple[Path, dict], tmp_path: Path) -> None:
    path, seen = square_file
    root = import_hdf5(path, tmp_path / "square", get_spec("square"), filter_key="train", from_states=True)
    arrays = load_demo_arrays(root)
    spec = get_spec("square")
    assert arrays.n_episodes == 2 and arrays.state.shape[1] == spec.state_dim
    assert arrays.env_state.shape[1] == spec.env_state_dim
    for sl, i in zip(arrays.episode_slices(), (0, 2)):
        np.testing.assert_allclose(arrays.state[sl], seen["state"][i], atol=1e-6)
        np.testing.assert_allclose(arrays.env_state[sl], seen["env_state"][i], atol=1e-6)
        np.testing.assert_allclose(arrays.state[sl], seen["stepped"][i], atol=2e-3)  # what the policy sees running
    assert arrays.provenance["filter_key"] == "train"
    assert arrays.provenance["observations"] == "replayed from states"


def test_low_dim_keys_map_onto_a_smaller_state(square_file: tuple[Path, dict], tmp_path: Path) -> None:
    path, seen = square_file
    arrays = load_demo_arrays(import_hdf5(path, tmp_path / "keys", get_spec("square"), filter_key="valid"))
    assert arrays.state.shape[1] == 3 + 4 + 2 and arrays.env_state.shape[1] == 14
    with h5py.File(path) as f:
        g = f["data/demo_1/obs"]
        np.testing.assert_allclose(arrays.state, np.concatenate([g[k][()] for k in LOW_DIM_KEYS[:3]], 1), rtol=1e-6)
        np.testing.assert_allclose(arrays.env_state, g["object"][()], rtol=1e-6)
    assert np.abs(arrays.env_state - seen["env_state"][1]).max() < 5e-3  # the task's object-state, read as it ran


def test_states_of_another_model_are_refused(square_file: tuple[Path, dict], tmp_path: Path) -> None:
    path, _ = square_file
    other = tmp_path / "other.hdf5"
    with h5py.File(path) as src, h5py.File(other, "w") as dst:
        src.copy("data", dst)
        del dst["data/demo_0/states"]
        dst["data/demo_0/states"] = np.zeros((5, 12))
    with pytest.raises(CohirlError, match="recorded with another model"):
        import_hdf5(other, tmp_path / "out", get_spec("square"), from_states=True)
    assert not (tmp_path / "out").exists()


def test_an_imported_dataset_trains_and_evaluates_a_base_through_the_stage(
        square_file: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cohirl.config import read_params
    from cohirl.stages.base import run_base_stage

    path, _ = square_file
    demos = import_hdf5(path, tmp_path / "square", get_spec("square"), from_states=True)
    params = read_params()
    smoke = params["profiles"]["smoke"]
    smoke["eval"] = {**smoke["eval"], "n_episodes": 1, "lockstep": 1}
    params["task_params"]["square"].pop("base", None)  # square's own 10k-step budget: the smoke one here
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(params))  # JSON is YAML
    monkeypatch.setenv("COHIRL_PARAMS", str(params_file))
    summary = run_base_stage("square", demos_root=demos, out_dir=tmp_path / "base", results_csv=tmp_path / "base.csv",
                             progress=False, profile="smoke")
    assert summary["steps"] == smoke["base"]["steps"] and summary["n_episodes"] == 1
    assert (tmp_path / "base.csv").exists() and any((tmp_path / "base").iterdir())
