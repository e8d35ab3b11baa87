"""LeRobotDataset round trip, atomic writes, incomplete-dataset detection, HDF5 import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from cohirl.demos.dataset import COMPLETE_MARKER, load_demo_arrays, write_dataset
from cohirl.demos.hdf5_import import import_hdf5, read_hdf5_episodes
from cohirl.errors import CohirlError


def test_round_trip_preserves_every_frame(tmp_path: Path, episodes, fake_spec) -> None:
    root = write_dataset(episodes, tmp_path / "ds", fake_spec, provenance={"seed": 7})
    arrays = load_demo_arrays(root)
    assert arrays.n_episodes == 3
    assert arrays.task == "fake" and arrays.provenance["seed"] == 7
    np.testing.assert_array_equal(arrays.episode_seeds, [100, 101, 102])
    for ep, sl in zip(episodes, arrays.episode_slices()):
        np.testing.assert_array_equal(arrays.action[sl], ep.action)
        np.testing.assert_array_equal(arrays.state[sl], ep.state)
        np.testing.assert_array_equal(arrays.env_state[sl], ep.env_state)
        np.testing.assert_array_equal(arrays.success[sl], ep.success)
    assert arrays.select_episodes(2).n_episodes == 2
    assert len(arrays.select_episodes(2).action) == len(episodes[0]) + len(episodes[1])


def test_dataset_loads_with_plain_lerobot_offline(tmp_path: Path, episodes, fake_spec) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = write_dataset(episodes, tmp_path / "ds", fake_spec, repo_id="cohirl/fake")
    ds = LeRobotDataset("cohirl/fake", root=root)
    assert ds.num_episodes == 3 and ds.num_frames == sum(len(e) for e in episodes)
    item = ds[0]
    assert tuple(item["observation.state"].shape) == (fake_spec.state_dim,)
    assert item["task"] == fake_spec.language


def test_same_episodes_give_byte_identical_files(tmp_path: Path, episodes, fake_spec) -> None:
    # DVC hashes the dataset directory: lerobot's own stats.json varied in key order and float
    # rounding between identical runs, which made every `dvc repro` see a changed output.
    first = write_dataset(episodes, tmp_path / "a", fake_spec)
    second = write_dataset(episodes, tmp_path / "b", fake_spec)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    stats = json.loads((first / "meta" / "stats.json").read_text())
    assert list(stats) == sorted(stats)  # independent of the process's string-hash seed
    assert all(isinstance(v, float) for v in stats["next.done"]["max"])  # never bool in one run, float in another
    actions = np.concatenate([e.action for e in episodes]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(axis=0), rtol=1e-6)
    assert stats["action"]["count"] == [len(actions)]


def test_refuses_to_overwrite_without_flag(tmp_path: Path, episodes, fake_spec) -> None:
    root = write_dataset(episodes, tmp_path / "ds", fake_spec)
    with pytest.raises(CohirlError, match="overwrite"):
        write_dataset(episodes, root, fake_spec)
    write_dataset(episodes[:1], root, fake_spec, overwrite=True)
    assert load_demo_arrays(root).n_episodes == 1


def test_unfinalized_dataset_is_detected_not_read(tmp_path: Path, episodes, fake_spec) -> None:
    root = write_dataset(episodes, tmp_path / "ds", fake_spec)
    (root / COMPLETE_MARKER).unlink()  # what a crash before the end of writing leaves
    with pytest.raises(CohirlError, match="incomplete"):
        load_demo_arrays(root)
    with pytest.raises(CohirlError, match="no dataset"):
        load_demo_arrays(tmp_path / "missing")


def test_corrupt_data_files_give_a_clear_error(tmp_path: Path, episodes, fake_spec) -> None:
    root = write_dataset(episodes, tmp_path / "ds", fake_spec)
    shutil.rmtree(root / "data")
    with pytest.raises(CohirlError, match="could not read"):
        load_demo_arrays(root)


def test_no_temporary_directory_is_left_behind(tmp_path: Path, episodes, fake_spec) -> None:
    write_dataset(episodes, tmp_path / "ds", fake_spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    with pytest.raises(CohirlError, match="no episodes"):
        write_dataset([], tmp_path / "empty", fake_spec)
    assert not (tmp_path / "empty").exists()


def _write_robomimic(path: Path, n: int = 2, with_data: bool = True) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        if not with_data:
            f.create_group("mask")
            return
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "NutAssemblySquare", "type": 1})
        for i in range(n):
            t = 6 + i
            g = data.create_group(f"demo_{i}")
            g["actions"] = rng.uniform(-1, 1, (t, 7))
            g["rewards"] = np.r_[np.zeros(t - 1), 1.0]
            g["dones"] = np.r_[np.zeros(t - 1), 1]
            g["states"] = rng.normal(size=(t, 30))
            g["obs/robot0_eef_pos"] = rng.normal(size=(t, 3))
            g["obs/robot0_eef_quat"] = rng.normal(size=(t, 4))
            g["obs/robot0_gripper_qpos"] = rng.normal(size=(t, 2))
            g["obs/object"] = rng.normal(size=(t, 14))


def test_hdf5_import_round_trip(tmp_path: Path, fake_spec) -> None:
    src = tmp_path / "square.hdf5"
    _write_robomimic(src)
    episodes, env_args = read_hdf5_episodes(src)
    assert env_args["env_name"] == "NutAssemblySquare" and len(episodes) == 2
    root = import_hdf5(src, tmp_path / "imported", fake_spec)
    arrays = load_demo_arrays(root)
    assert arrays.state.shape[1] == 9 and arrays.env_state.shape[1] == 14
    with h5py.File(src) as f:
        np.testing.assert_allclose(arrays.action[: 6], f["data/demo_0/actions"][()], rtol=1e-6)
    assert arrays.provenance["env_args"]["env_name"] == "NutAssemblySquare"


def test_hdf5_without_data_group_or_keys_is_rejected(tmp_path: Path, fake_spec) -> None:
    bad = tmp_path / "bad.hdf5"
    _write_robomimic(bad, with_data=False)
    with pytest.raises(CohirlError, match="no 'data' group"):
        read_hdf5_episodes(bad)
    good = tmp_path / "good.hdf5"
    _write_robomimic(good)
    with pytest.raises(CohirlError, match="lacks"):
        read_hdf5_episodes(good, state_keys=("robot0_joint_pos",))
    with pytest.raises(CohirlError, match="no HDF5 file"):
        read_hdf5_episodes(tmp_path / "nope.hdf5")
