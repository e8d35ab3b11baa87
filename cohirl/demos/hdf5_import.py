"""Import robomimic / MimicGen HDF5 demonstrations into cohirl's LeRobotDataset format.

robomimic layout: ``data/demo_<i>/{obs/<key>, actions, rewards, dones, states}`` with the
environment's construction arguments as JSON in ``data.attrs["env_args"]``. Observation keys are
mapped onto ``observation.state`` (robot) and ``observation.environment_state`` (objects) by two
configurable key lists; the defaults follow robomimic's low-dim observation names.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cohirl.demos.dataset import Episode, write_dataset
from cohirl.envs.base import TaskSpec
from cohirl.errors import CohirlError

DEFAULT_STATE_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
DEFAULT_ENV_STATE_KEYS = ("object",)


def _demo_names(data: Any) -> list[str]:
    names = [k for k in data.keys() if re.fullmatch(r"demo_\d+", k)]
    return sorted(names, key=lambda k: int(k.split("_")[1]))


def _concat(obs: Any, keys: Sequence[str], demo: str, path: Path) -> np.ndarray:
    missing = [k for k in keys if k not in obs]
    if missing:
        raise CohirlError(f"{path}: {demo}/obs lacks {missing}; it has {sorted(obs.keys())}. "
                          "Pass the right --state-keys/--env-state-keys mapping.")
    return np.concatenate([obs[k][()].astype(np.float32).reshape(len(obs[keys[0]]), -1) for k in keys], 1)


def read_hdf5_episodes(path: Path, state_keys: Sequence[str] = DEFAULT_STATE_KEYS,
                       env_state_keys: Sequence[str] = DEFAULT_ENV_STATE_KEYS,
                       ) -> tuple[list[Episode], dict[str, Any]]:
    """Episodes and ``env_args`` from a robomimic-style file (clear errors for other layouts)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise CohirlError(f"no HDF5 file at {path}. Put robomimic/MimicGen files under data/raw/.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CohirlError(f"{path} is not a readable HDF5 file ({exc}).") from exc
    with f:
        if "data" not in f:
            raise CohirlError(f"{path} has no 'data' group: not a robomimic/MimicGen dataset "
                              f"(top-level keys: {sorted(f.keys())}).")
        data = f["data"]
        env_args = json.loads(data.attrs.get("env_args", "{}"))
        episodes = [_read_demo(data[name], name, i, path, state_keys, env_state_keys)
                    for i, name in enumerate(_demo_names(data))]
    if not episodes:
        raise CohirlError(f"{path}: 'data' holds no demo_<i> groups.")
    return episodes, env_args


def _read_demo(g: Any, name: str, index: int, path: Path, state_keys: Sequence[str],
               env_state_keys: Sequence[str]) -> Episode:
    actions = g["actions"][()].astype(np.float32)
    t = len(actions)
    rewards = g["rewards"][()].astype(np.float32) if "rewards" in g else np.zeros(t, np.float32)
    dones = g["dones"][()].astype(bool) if "dones" in g else np.r_[np.zeros(t - 1, bool), True]
    if np.abs(actions).max(initial=0.0) > 1.0 + 1e-6:
        raise CohirlError(f"{path}:{name} has actions outside [-1, 1]; normalise them before import.")
    return Episode(seed=index, state=_concat(g["obs"], state_keys, name, path),
                   env_state=_concat(g["obs"], env_state_keys, name, path), action=actions,
                   reward=rewards, done=dones, success=rewards > 0)


def import_hdf5(path: Path, out_root: Path, spec: TaskSpec,
                state_keys: Sequence[str] = DEFAULT_STATE_KEYS,
                env_state_keys: Sequence[str] = DEFAULT_ENV_STATE_KEYS, overwrite: bool = False) -> Path:
    """Convert one HDF5 file into a finalized LeRobotDataset under ``out_root``."""
    episodes, env_args = read_hdf5_episodes(path, state_keys, env_state_keys)
    first = episodes[0]
    if first.action.shape[1] != spec.action_dim:
        raise CohirlError(f"{path}: actions are {first.action.shape[1]}-d but task {spec.name} "
                          f"expects {spec.action_dim}-d.")
    spec = dataclasses.replace(spec, state_dim=first.state.shape[1], env_state_dim=first.env_state.shape[1])
    provenance = {"source": str(path), "env_args": env_args, "state_keys": list(state_keys),
                  "env_state_keys": list(env_state_keys)}
    return write_dataset(episodes, out_root, spec, overwrite=overwrite, provenance=provenance)
