"""Checkpoints and snapshots are data, not code: they load with ``weights_only=True``; a file carrying
a pickled object is refused with one message naming it, and the object never runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cohirl.csil.config import LearnerConfig
from cohirl.csil.learner import Learner
from cohirl.csil.networks import make_policy
from cohirl.errors import CohirlError
from cohirl.io import load_torch, save_torch
from cohirl.policies.compose import Composition
from cohirl.training.agent import PolicyInputs, load_actor, save_actor_snapshot
from cohirl.training.checkpoint import load_checkpoint


class CodeOnLoad:
    """Unpickling this creates the directory ``marker``: a stand-in for any code a shared file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return os.mkdir, (self.marker,)


def plant(path: Path, marker: Path, **fields: object) -> Path:
    """A file laid out like a cohirl checkpoint, with one pickled object inside."""
    torch.save({**fields, "payload": CodeOnLoad(marker)}, path)
    assert torch.load(path, weights_only=False) is not None and marker.exists()  # it does run when trusted
    marker.rmdir()
    return path


def test_arrays_rng_states_and_containers_round_trip_as_data(tmp_path: Path) -> None:
    legacy = np.random.RandomState(3).get_state()  # a tuple holding a uint32 array
    state = {"replay": {"obs": np.arange(12, dtype=np.float32).reshape(3, 4), "done": np.array([True, False]),
                        "idx": np.arange(5, dtype=np.int64)[::2]},  # a non-contiguous view
             "rng": np.random.default_rng(7).bit_generator.state, "legacy": legacy, "count": np.int64(4),
             "torch_rng": torch.get_rng_state(), "steps": [1, 2, (3, "x")]}
    loaded = load_torch(save_torch(state, tmp_path / "c.pt"), "checkpoint")
    for key, array in state["replay"].items():
        assert loaded["replay"][key].dtype == array.dtype and np.array_equal(loaded["replay"][key], array)
    assert loaded["rng"] == state["rng"] and loaded["count"] == 4 and loaded["steps"] == [1, 2, (3, "x")]
    assert loaded["legacy"][0] == "MT19937" and np.array_equal(loaded["legacy"][1], legacy[1])
    assert torch.equal(loaded["torch_rng"], state["torch_rng"])
    restored = np.random.RandomState()
    restored.set_state(loaded["legacy"])
    assert restored.randint(1 << 30) == np.random.RandomState(3).randint(1 << 30)


def test_a_checkpoint_carrying_a_pickled_object_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = plant(tmp_path / "checkpoint.pt", marker, env_steps=100)
    with pytest.raises(CohirlError, match=r"checkpoint.pt holds pickled Python objects.*refused.*could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_snapshot_carrying_a_pickled_object_is_refused_and_a_genuine_one_loads(tmp_path: Path) -> None:
    cfg = LearnerConfig(hetstat_features=16, policy_hidden=(16, 16), critic_hidden=(16, 16))
    learner = Learner(cfg, Composition(), obs_dim=6, action_dim=2, seed=0, bc_policy=make_policy(cfg, 6, 2))
    genuine = save_actor_snapshot(learner, tmp_path / "actor_eval.pt", PolicyInputs(), value_probe=True)
    actor, composition, inputs = load_actor(genuine)
    assert inputs == PolicyInputs() and composition == learner.composition
    for name, tensor in learner.actor.state_dict().items():
        assert torch.equal(actor.state_dict()[name], tensor), name
    snap = torch.load(genuine, weights_only=True)  # a genuine snapshot is plain data
    marker = tmp_path / "ran"
    planted = plant(tmp_path / "shared.pt", marker, **snap)
    with pytest.raises(CohirlError, match=r"actor snapshot .*shared.pt holds pickled Python objects"):
        load_actor(planted)
    assert not marker.exists()
