"""Shared fixtures: tests make their own small data; nothing reaches the network."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from cohirl.demos.dataset import Episode  # noqa: E402
from cohirl.envs.base import TaskSpec  # noqa: E402

FAKE_SPEC = TaskSpec(name="fake", simulator="robosuite", horizon=50, action_dim=7, state_dim=5,
                     env_state_dim=3, language="do the fake thing", sim_name="Fake")


def make_episodes(n: int, seed: int = 0, spec: TaskSpec = FAKE_SPEC) -> list[Episode]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = 8 + i
        out.append(Episode(
            seed=100 + i,
            state=rng.normal(size=(t, spec.state_dim)).astype(np.float32),
            env_state=rng.normal(size=(t, spec.env_state_dim)).astype(np.float32),
            action=rng.uniform(-1, 1, (t, spec.action_dim)).astype(np.float32),
            reward=np.r_[np.zeros(t - 1), 1.0].astype(np.float32),
            done=np.r_[np.zeros(t - 1, bool), True],
            success=np.r_[np.zeros(t - 1, bool), True],
        ))
    return out


@pytest.fixture
def fake_spec() -> TaskSpec:
    return FAKE_SPEC


@pytest.fixture
def episodes() -> list[Episode]:
    return make_episodes(3)
