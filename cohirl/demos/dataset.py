"""Demonstrations as a finalized lerobot 0.4.4 ``LeRobotDataset``, and fast in-memory arrays.

Writing goes to a temporary sibling directory that is renamed into place only after
``finalize()`` and a completion marker, so a crash never leaves a directory a later stage could
mistake for a complete dataset. Reading checks the marker and the lerobot metadata first.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, TaskSpec
from cohirl.errors import CohirlError

COMPLETE_MARKER = "meta/cohirl_complete.json"
_SCALARS = ("next.reward", "next.done", "next.success", "episode_seed")


@dataclass
class Episode:
    """One recorded episode: per-frame arrays of equal length T."""

    seed: int
    state: np.ndarray  # (T, state_dim) float32
    env_state: np.ndarray  # (T, env_state_dim) float32
    action: np.ndarray  # (T, action_dim) float32, the expert's clean label
    reward: np.ndarray  # (T,) float32 sparse reward after the step
    done: np.ndarray  # (T,) bool, episode ended after the step
    success: np.ndarray  # (T,) bool, success after the step

    def __len__(self) -> int:
        return int(self.action.shape[0])


@dataclass
class DemoArrays:
    """All frames of a dataset as numpy arrays (loaded once; windows are built by indexing)."""

    task: str
    repo_id: str
    root: Path
    fps: int
    state: np.ndarray
    env_state: np.ndarray
    action: np.ndarray
    episode_index: np.ndarray
    frame_index: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    success: np.ndarray
    episode_seeds: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_episodes(self) -> int:
        return int(self.episode_seeds.shape[0])

    def episode_slices(self) -> list[slice]:
        """Frame ranges of each episode, in episode order."""
        starts = np.flatnonzero(np.r_[True, np.diff(self.episode_index) != 0])
        ends = np.r_[starts[1:], len(self.episode_index)]
        return [slice(int(s), int(e)) for s, e in zip(starts, ends)]

    def select_episodes(self, n: int) -> "DemoArrays":
        """The first ``n`` episodes (for demo-scaling experiments)."""
        if not 0 < n <= self.n_episodes:
            raise CohirlError(f"asked for {n} episodes but {self.root} holds {self.n_episodes}.")
        mask = self.episode_index < np.sort(np.unique(self.episode_index))[n - 1] + 1
        fields = ("state", "env_state", "action", "episode_index", "frame_index", "reward", "done", "success")
        sub = {k: getattr(self, k)[mask] for k in fields}
        return DemoArrays(self.task, self.repo_id, self.root, self.fps, **sub,
                          episode_seeds=self.episode_seeds[:n], provenance=self.provenance)


def dataset_features(spec: TaskSpec) -> dict[str, dict[str, Any]]:
    """lerobot feature schema for a task (float32 vectors, scalar flags as shape (1,))."""

    def vec(dim: int, prefix: str) -> dict[str, Any]:
        return {"dtype": "float32", "shape": (dim,), "names": [f"{prefix}_{i}" for i in range(dim)]}

    return {
        STATE_KEY: vec(spec.state_dim, "state"),
        ENV_STATE_KEY: vec(spec.env_state_dim, "env"),
        "action": vec(spec.action_dim, "a"),
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
        "next.done": {"dtype": "bool", "shape": (1,), "names": None},
        "next.success": {"dtype": "bool", "shape": (1,), "names": None},
        "episode_seed": {"dtype": "int64", "shape": (1,), "names": None},
    }


def write_dataset(
    episodes: Sequence[Episode],
    root: Path,
    spec: TaskSpec,
    repo_id: str | None = None,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``episodes`` as a finalized LeRobotDataset at ``root`` (atomically)."""
    import datasets
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    datasets.disable_progress_bars()  # one "Map" bar per episode otherwise
    root = Path(root)
    if not episodes:
        raise CohirlError(f"no episodes to write to {root}: the expert produced no successful episode.")
    if root.exists() and not overwrite:
        raise CohirlError(f"{root} already exists. Pass overwrite=True (CLI: --overwrite) to replace it.")
    repo_id = repo_id or f"cohirl/{spec.name}"
    tmp = root.with_name(f".{root.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    ds = LeRobotDataset.create(repo_id, fps=spec.fps, features=dataset_features(spec), root=tmp,
                               robot_type=spec.simulator, use_videos=False)
    for episode in episodes:
        _add_episode(ds, episode, spec)
    ds.finalize()
    _rewrite_stats(tmp)
    marker = {"task": spec.name, "repo_id": repo_id, "n_episodes": len(episodes),
              "n_frames": int(sum(len(e) for e in episodes)), **(provenance or {})}
    (tmp / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2, default=str))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def _rewrite_stats(root: Path) -> None:
    """Recompute ``meta/stats.json`` over all frames in float64 and write it with sorted keys.

    lerobot aggregates per-episode statistics in an order (and with bool/float types) that varies
    between runs, so identical episodes gave differently hashed datasets and DVC saw a changed output.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lerobot.datasets.compute_stats import get_feature_stats
    from lerobot.datasets.utils import serialize_dict

    stats_path = root / "meta" / "stats.json"
    keys = sorted(json.loads(stats_path.read_text()))
    table = pa.concat_tables([pq.read_table(f) for f in sorted((root / "data").rglob("*.parquet"))])
    stats = {}
    for key in keys:
        column = np.asarray(table.column(key).to_pylist(), dtype=np.float64)
        stats[key] = get_feature_stats(column.reshape(len(column), -1), axis=0, keepdims=False)
    stats_path.write_text(json.dumps(serialize_dict(stats), indent=4, sort_keys=True))


def _add_episode(ds: Any, ep: Episode, spec: TaskSpec) -> None:
    for t in range(len(ep)):
        ds.add_frame({
            STATE_KEY: ep.state[t].astype(np.float32),
            ENV_STATE_KEY: ep.env_state[t].astype(np.float32),
            "action": ep.action[t].astype(np.float32),
            "next.reward": np.array([ep.reward[t]], dtype=np.float32),
            "next.done": np.array([ep.done[t]], dtype=bool),
            "next.success": np.array([ep.success[t]], dtype=bool),
            "episode_seed": np.array([ep.seed], dtype=np.int64),
            "task": spec.language,
        })
    ds.save_episode()


def check_complete(root: Path) -> dict[str, Any]:
    """Raise a clear error unless ``root`` holds a dataset that cohirl finished writing."""
    root = Path(root)
    if not root.exists():
        raise CohirlError(f"no dataset at {root}. Generate it with `cohirl demos --task <task>` "
                          "(or `dvc repro demos`), or import one with `cohirl import-hdf5`.")
    marker = root / COMPLETE_MARKER
    if not marker.exists() or not (root / "meta" / "info.json").exists():
        raise CohirlError(f"dataset at {root} is incomplete (not finalized: a crash while writing?). "
                          "Delete it and regenerate it with `cohirl demos ... --overwrite`.")
    try:
        return dict(json.loads(marker.read_text()))
    except json.JSONDecodeError as exc:
        raise CohirlError(f"dataset marker {marker} is corrupt ({exc}). Regenerate the dataset.") from exc


def load_demo_arrays(root: Path) -> DemoArrays:
    """Load every frame of a finished dataset as numpy arrays, offline."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    info = check_complete(root)
    try:
        ds = LeRobotDataset(info["repo_id"], root=root)
        cols = ds.hf_dataset.with_format("numpy")[:]  # one table read; per-column access iterates rows
        data = {k: np.asarray(cols[k]) for k in (STATE_KEY, ENV_STATE_KEY, "action", "episode_index",
                                                  "frame_index", *_SCALARS)}
    except Exception as exc:  # lerobot raises many types for damaged files
        raise CohirlError(f"could not read the dataset at {root}: {exc}. Regenerate it.") from exc
    order = np.lexsort((data["frame_index"], data["episode_index"]))
    data = {k: v[order] for k, v in data.items()}
    first = np.r_[True, np.diff(data["episode_index"]) != 0]
    return DemoArrays(
        task=str(info["task"]), repo_id=str(info["repo_id"]), root=root, fps=int(ds.fps),
        state=data[STATE_KEY].astype(np.float32), env_state=data[ENV_STATE_KEY].astype(np.float32),
        action=data["action"].astype(np.float32),
        episode_index=data["episode_index"].reshape(-1).astype(np.int64),
        frame_index=data["frame_index"].reshape(-1).astype(np.int64),
        reward=data["next.reward"].reshape(-1).astype(np.float32),
        done=data["next.done"].reshape(-1).astype(bool),
        success=data["next.success"].reshape(-1).astype(bool),
        episode_seeds=data["episode_seed"].reshape(-1)[first].astype(np.int64),
        provenance=info,
    )
