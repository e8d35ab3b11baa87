"""Import robomimic / MimicGen HDF5 demonstrations into cohirl's LeRobotDataset format.

robomimic layout (as ``dataset_states_to_obs.py`` writes it): ``data/demo_<i>/{obs/<key>, actions,
rewards, dones, states}`` with the environment's construction arguments as JSON in
``data.attrs["env_args"]`` and filter keys under ``mask/<key>`` (arrays of demo names, e.g. ``train``,
``valid``, ``20_percent``). A filter key selects its demos.

Observations come one of two ways:
- ``from_states=True``: each frame's flat MuJoCo state (``states``) is set in this repository's own
  simulator task and the task's observation read back, so the imported dataset has exactly the
  observation layout the task produces at evaluation (the way robomimic's own script re-extracts
  observations). The file must come from the same MuJoCo model layout (its qpos/qvel sizes are checked).
- otherwise, observation keys are mapped onto ``observation.state`` (robot) and
  ``observation.environment_state`` (objects) by two configurable key lists (defaults: robomimic's
  low-dim names); such a dataset trains a base, but evaluating it needs a task whose observation has
  the same layout.
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


def filtered_demo_names(f: Any, path: Path, filter_key: str | None) -> list[str]:
    """The file's ``demo_<i>`` groups in index order, those of ``mask/<filter_key>`` when given."""
    names = _demo_names(f["data"])
    if filter_key is None:
        return names
    masks = f["mask"] if "mask" in f else {}
    if filter_key not in masks:
        raise CohirlError(f"{path} has no filter key {filter_key!r}; its filter keys are {sorted(masks.keys())} "
                          "(robomimic's mask/ group). Drop --filter-key to import every demo.")
    chosen = {n.decode() if isinstance(n, bytes) else str(n) for n in masks[filter_key][()]}
    if unknown := sorted(chosen - set(names)):
        raise CohirlError(f"{path}: mask/{filter_key} names demos the file lacks: {unknown[:5]}.")
    return [n for n in names if n in chosen]


def read_hdf5_episodes(path: Path, state_keys: Sequence[str] = DEFAULT_STATE_KEYS,
                       env_state_keys: Sequence[str] = DEFAULT_ENV_STATE_KEYS, filter_key: str | None = None,
                       from_states: Any = None) -> tuple[list[Episode], dict[str, Any]]:
    """Episodes and ``env_args`` from a robomimic-style file (clear errors for other layouts).

    ``from_states``: a task (``cohirl.envs.make_task``) whose observations replace the file's, read
    back after setting each frame's ``states`` (see the module docstring)."""
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
        names = filtered_demo_names(f, path, filter_key)
        episodes = [_read_demo(data[name], name, int(name.split("_")[1]), path, state_keys, env_state_keys,
                               from_states) for name in names]
    if not episodes:
        raise CohirlError(f"{path}: 'data' holds no demo_<i> groups" + (f" in mask/{filter_key}." if filter_key else "."))
    return episodes, env_args


def _read_demo(g: Any, name: str, index: int, path: Path, state_keys: Sequence[str],
               env_state_keys: Sequence[str], task: Any = None) -> Episode:
    actions = g["actions"][()].astype(np.float32)
    t = len(actions)
    rewards = g["rewards"][()].astype(np.float32) if "rewards" in g else np.zeros(t, np.float32)
    dones = g["dones"][()].astype(bool) if "dones" in g else np.r_[np.zeros(t - 1, bool), True]
    if np.abs(actions).max(initial=0.0) > 1.0 + 1e-6:
        raise CohirlError(f"{path}:{name} has actions outside [-1, 1]; normalise them before import.")
    if not np.isfinite(actions).all() or not np.isfinite(rewards).all():
        raise CohirlError(f"{path}:{name} has NaN/inf actions or rewards; fix or drop that demo before import.")
    if task is not None:
        if "states" not in g:
            raise CohirlError(f"{path}:{name} has no 'states' to replay; import with observation keys instead.")
        state, env_state = observations_from_states(task, g["states"][()], f"{path}:{name}")
    else:
        state, env_state = _concat(g["obs"], state_keys, name, path), _concat(g["obs"], env_state_keys, name, path)
    if len(state) != t:
        raise CohirlError(f"{path}:{name} has {len(state)} observations for {t} actions.")
    return Episode(seed=index, state=state, env_state=env_state, action=actions, reward=rewards, done=dones,
                   success=rewards > 0)


def observations_from_states(task: Any, states: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(observation.state, observation.environment_state) of ``task`` at each flat MuJoCo state
    (time, qpos, qvel) of ``states``, as the task observes them."""
    from cohirl.envs import ENV_STATE_KEY, STATE_KEY

    if not hasattr(task, "set_sim_state"):
        raise CohirlError(f"task {task.spec.name} cannot set simulator states; import with observation keys instead.")
    task.reset(0)
    full = task.get_sim_state().size
    states = np.asarray(states, dtype=np.float64).reshape(len(states), -1)
    extra = full - states.shape[1]  # the task's own trailer after MuJoCo's state (the gripper's command ramp)
    if extra < 0 or extra > 2:
        raise CohirlError(f"{where}: states are {states.shape[1]}-d but task {task.spec.name}'s MuJoCo state is "
                          f"{full - max(extra, 0)}-d (time, qpos, qvel): recorded with another model; import with "
                          "observation keys instead.")
    obs = [task.set_sim_state(np.r_[s, np.zeros(extra)]) for s in states]
    return (np.stack([o[STATE_KEY] for o in obs]).astype(np.float32),
            np.stack([o[ENV_STATE_KEY] for o in obs]).astype(np.float32))


def import_hdf5(path: Path, out_root: Path, spec: TaskSpec,
                state_keys: Sequence[str] = DEFAULT_STATE_KEYS,
                env_state_keys: Sequence[str] = DEFAULT_ENV_STATE_KEYS, overwrite: bool = False,
                filter_key: str | None = None, from_states: bool = False) -> Path:
    """Convert one HDF5 file into a finalized LeRobotDataset under ``out_root`` (the demos of
    ``mask/<filter_key>`` only, when given; observations replayed from ``states`` in the task's own
    simulator with ``from_states``)."""
    task = None
    if from_states:
        from cohirl.envs import make_task

        task = make_task(spec.name)
    try:
        episodes, env_args = read_hdf5_episodes(path, state_keys, env_state_keys, filter_key, task)
    finally:
        if task is not None:
            task.close()
    first = episodes[0]
    if first.action.shape[1] != spec.action_dim:
        raise CohirlError(f"{path}: actions are {first.action.shape[1]}-d but task {spec.name} "
                          f"expects {spec.action_dim}-d.")
    spec = dataclasses.replace(spec, state_dim=first.state.shape[1], env_state_dim=first.env_state.shape[1])
    provenance = {"source": str(path), "env_args": env_args, "filter_key": filter_key,
                  "observations": "replayed from states" if from_states else "mapped from keys",
                  "state_keys": [] if from_states else list(state_keys),
                  "env_state_keys": [] if from_states else list(env_state_keys)}
    return write_dataset(episodes, out_root, spec, overwrite=overwrite, provenance=provenance)
