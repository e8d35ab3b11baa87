"""Meta-World tasks: the Task contract, seeded initial states, horizon handling and the experts."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cohirl.envs import ENV_STATE_KEY, STATE_KEY, CameraConfig, get_spec, make_expert, make_task
from cohirl.envs.metaworld import tasks as mw
from cohirl.errors import CohirlError

TASK_NAMES = [spec.name for spec in mw.SPECS]


def _rollout(task: mw.MetaWorldTask, seed: int, actions: np.ndarray) -> list[np.ndarray]:
    """Raw observations along a fixed action sequence from ``reset(seed)``."""
    task.reset(seed)
    raws = [task.raw_obs]
    for action in actions:
        task.step(action)
        raws.append(task.raw_obs)
    return raws


def test_specs_are_registered_with_real_metaworld_names() -> None:
    from metaworld.policies import ENV_POLICY_MAP

    assert len(TASK_NAMES) == len(set(TASK_NAMES)) == 9
    for spec in mw.SPECS:
        assert get_spec(spec.name) == spec
        assert spec.sim_name in ENV_POLICY_MAP
        assert (spec.horizon, spec.action_dim, spec.state_dim, spec.env_state_dim) == (500, 4, 8, 31)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_contract(name: str) -> None:
    task = make_task(name)
    spec = task.spec
    obs = task.reset(seed=3)
    raw = task.raw_obs
    assert set(obs) == {STATE_KEY, ENV_STATE_KEY}
    assert obs[STATE_KEY].dtype == obs[ENV_STATE_KEY].dtype == np.float32
    # the split is a permutation of the raw observation: hand/gripper (now, previous) | objects, goal
    np.testing.assert_array_equal(obs[STATE_KEY], raw[[0, 1, 2, 3, 18, 19, 20, 21]].astype(np.float32))
    np.testing.assert_array_equal(obs[ENV_STATE_KEY][-3:], raw[36:39].astype(np.float32))
    rng = np.random.default_rng(0)
    for t in range(1, 6):
        obs, reward, terminated, truncated, info = task.step(rng.uniform(-1, 1, spec.action_dim))
        assert obs[STATE_KEY].shape == (spec.state_dim,)
        assert reward == float(info["success"]) and terminated == info["success"] and info["t"] == t
        assert not truncated
    # the previous-frame half of the state is the last step's current half
    last_hand = obs[STATE_KEY][:4].copy()
    obs, *_ = task.step(np.zeros(spec.action_dim))
    np.testing.assert_array_equal(obs[STATE_KEY][4:], last_hand)
    task.close()


def test_same_seed_same_state_different_seed_different_state() -> None:
    actions = np.random.default_rng(1).uniform(-1, 1, size=(25, 4))
    first, second = make_task("pick_place"), make_task("pick_place")
    reference = _rollout(first, 11, actions)
    _rollout(first, 12, actions)  # history must not leak into the next episode
    again = _rollout(first, 11, actions)
    other_instance = _rollout(second, 11, actions)
    for a, b, c in zip(reference, again, other_instance):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    starts = {tuple(np.round(first.reset(seed)[ENV_STATE_KEY], 6)) for seed in range(10)}
    assert len(starts) == 10, "every seed should give a fresh initial configuration"


def test_metaworld_truncation_does_not_interfere() -> None:
    task = make_task("pick_place")
    task.reset(0)
    for t in range(1, task.spec.horizon + 1):
        _, _, terminated, truncated, _ = task.step(np.zeros(4))
        assert not terminated
        assert truncated == (t == task.spec.horizon)
    short = make_task("pick_place", horizon=20)
    assert short.spec == dataclasses.replace(task.spec, horizon=20)
    short.reset(0)
    results = [short.step(np.zeros(4)) for _ in range(20)]
    assert results[-1][3] and not any(r[3] for r in results[:-1])


@pytest.mark.parametrize("name,seeds", [("pick_place", (0, 1, 2)), ("assembly", (5, 6))])
def test_scripted_expert_solves_seeded_episodes(name: str, seeds: tuple[int, ...]) -> None:
    task = make_task(name)
    expert = make_expert(task)
    for seed in seeds:
        obs = task.reset(seed)
        expert.reset(seed)
        terminated = truncated = False
        while not (terminated or truncated):
            action = expert.act(obs)
            assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
            obs, reward, terminated, truncated, _ = task.step(action)
        assert terminated and reward == 1.0 and task.is_success(), f"{name} seed {seed} failed"


def test_bad_inputs_raise_cohirl_errors() -> None:
    with pytest.raises(CohirlError, match="unknown Meta-World camera"):
        make_task("pick_place", cameras=CameraConfig(names=("nope",)))
    with pytest.raises(CohirlError, match="only the option 'horizon'"):
        make_task("pick_place", control_freq=20)
    with pytest.raises(CohirlError, match="Meta-World observation has shape"):
        mw.split_observation(np.zeros(7))
    with pytest.raises(CohirlError, match="seed must be >= 0"):
        make_task("pick_place").reset(-1)


def test_camera_images_in_a_fresh_process() -> None:
    """MUJOCO_GL must be chosen before MuJoCo is imported, hence a subprocess."""
    script = textwrap.dedent(
        """
        import numpy as np
        from cohirl.envs import CameraConfig, make_task
        from cohirl.errors import CohirlError
        try:
            task = make_task("pick_place", cameras=CameraConfig(names=("corner2",), height=32, width=48))
        except CohirlError as exc:
            print("NO_GL", exc)
            raise SystemExit(0)
        obs = task.reset(0)
        obs, *_ = task.step(np.zeros(4))
        image = obs["observation.images.corner2"]
        assert image.shape == (32, 48, 3) and image.dtype == np.uint8 and image.std() > 0, image.shape
        assert task.render("gripperPOV", 16, 16).shape == (16, 16, 3)
        assert task.render("corner", 600, 640).shape == (600, 640, 3)  # beyond the default framebuffer
        task.close()
        print("OK")
        """
    )
    env = {**os.environ, "MUJOCO_GL": "egl"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if done.stdout.startswith("NO_GL"):
        pytest.skip(f"no GL context on this machine: {done.stdout.strip()}")
    assert done.stdout.strip().endswith("OK")
