"""Contract, seeding and expert checks for the robosuite tasks (small horizons, a few seeds)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from cohirl.envs import ENV_STATE_KEY, STATE_KEY, CameraConfig, get_spec, make_expert, make_task
from cohirl.envs.robosuite.tasks import SPECS, RobosuiteTask
from cohirl.errors import CohirlError

TASKS = [spec.name for spec in SPECS]
EEF_POS = slice(28, 31)  # robot0_eef_pos inside robot0_proprio-state (after 4 x 7 joint entries)


@pytest.fixture(scope="module", params=TASKS)
def short_task(request: pytest.FixtureRequest) -> Iterator[RobosuiteTask]:
    task = make_task(request.param, horizon=3)
    yield task
    task.close()


@pytest.fixture(scope="module")
def lift() -> Iterator[RobosuiteTask]:
    task = make_task("lift")
    yield task
    task.close()


@pytest.fixture(scope="module")
def square() -> Iterator[RobosuiteTask]:
    task = make_task("square")
    yield task
    task.close()


def test_specs_are_registered_with_expected_horizons() -> None:
    horizons = {name: get_spec(name).horizon for name in TASKS}
    assert horizons == {"square": 400, "nut_assembly": 800, "lift": 200, "can": 400, "stack": 300}
    assert all(get_spec(name).action_dim == 7 and get_spec(name).language for name in TASKS)


def test_task_contract(short_task: RobosuiteTask) -> None:
    spec = short_task.spec
    obs = short_task.reset(0)
    assert obs[STATE_KEY].shape == (spec.state_dim,) and obs[STATE_KEY].dtype == np.float32
    assert obs[ENV_STATE_KEY].shape == (spec.env_state_dim,) and obs[ENV_STATE_KEY].dtype == np.float32
    with pytest.raises(CohirlError, match="dimensions"):
        short_task.step(np.zeros(spec.action_dim + 1))
    results = [short_task.step(np.zeros(spec.action_dim)) for _ in range(spec.horizon)]
    assert [r[1] for r in results] == [0.0] * spec.horizon  # nothing happens while standing still
    assert [(r[2], r[3]) for r in results] == [(False, False)] * (spec.horizon - 1) + [(False, True)]
    assert results[-1][4] == {"success": False, "t": spec.horizon}
    with pytest.raises(CohirlError, match="reset"):
        short_task.step(np.zeros(spec.action_dim))


def test_same_seed_same_state_and_other_seed_differs(square: RobosuiteTask) -> None:
    first = square.reset(7)
    state = square.get_sim_state()
    for _ in range(3):
        square.step(np.array([1.0, -1.0, 0.5, 0.2, 0.0, 0.3, 1.0]))
    again = square.reset(7)
    np.testing.assert_array_equal(square.get_sim_state(), state)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    other = square.reset(8)
    assert not np.allclose(other[ENV_STATE_KEY], first[ENV_STATE_KEY])


def test_fresh_instances_agree_and_global_rng_is_untouched(lift: RobosuiteTask) -> None:
    lift.reset(0)
    lift.step(np.ones(7))  # a used instance must still reproduce a fresh one's reset
    np.random.seed(123)
    expected_draw = np.random.rand()
    np.random.seed(123)
    a, b = lift, make_task("lift")
    obs_a, obs_b = a.reset(3), b.reset(3)
    assert np.random.rand() == expected_draw  # construction and reset restore the caller's RNG
    np.testing.assert_array_equal(obs_a[ENV_STATE_KEY], obs_b[ENV_STATE_KEY])
    np.testing.assert_array_equal(obs_a[STATE_KEY], obs_b[STATE_KEY])
    b.close()


def test_first_observation_has_relative_entries(square: RobosuiteTask) -> None:
    obs = square.reset(0)
    nut_to_eef = obs[ENV_STATE_KEY][:7]  # [nut->eef pos (3), nut->eef quat (4), nut pos, nut quat]
    assert np.linalg.norm(nut_to_eef[:3]) > 0.05 and abs(np.linalg.norm(nut_to_eef[3:]) - 1.0) < 1e-4
    restored = square.set_sim_state(square.get_sim_state())  # recomputed from scratch
    np.testing.assert_allclose(obs[ENV_STATE_KEY], restored[ENV_STATE_KEY], atol=1e-6)


def test_observations_describe_the_current_state(lift: RobosuiteTask) -> None:
    task = lift
    obs = task.reset(0)
    for _ in range(3):
        obs, *_ = task.step(np.array([1.0, 0.5, -0.5, 0.0, 0.0, 0.0, -1.0]))
    eef = task.env.sim.data.site_xpos[task.env.robots[0].eef_site_id["right"]]
    np.testing.assert_allclose(obs[STATE_KEY][EEF_POS], eef, atol=1e-6)
    cube_pos, gripper_to_cube = obs[ENV_STATE_KEY][:3], obs[ENV_STATE_KEY][7:10]
    np.testing.assert_allclose(gripper_to_cube, cube_pos - eef, atol=1e-6)


def test_sim_state_roundtrip_replays_identically(square: RobosuiteTask) -> None:
    square.reset(2)
    square.step(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))  # the gripper command ramp is state too
    start = square.get_sim_state()
    actions = [np.array([0.5, 0.2, -0.3, 0.0, 0.1, 0.0, -1.0]), np.array([0.0, -0.4, 0.2, 0.3, 0.0, 0.0, 1.0])]
    after = [square.step(action)[0] for action in actions]
    square.set_sim_state(start)
    replay = [square.step(action)[0] for action in actions]
    np.testing.assert_allclose(after[-1][STATE_KEY], replay[-1][STATE_KEY], atol=1e-6)
    np.testing.assert_allclose(after[-1][ENV_STATE_KEY], replay[-1][ENV_STATE_KEY], atol=1e-6)
    with pytest.raises(CohirlError, match="shape"):
        square.set_sim_state(start[:-1])


def test_bad_options_are_rejected() -> None:
    with pytest.raises(CohirlError, match="horizon"):
        make_task("lift", horizon=0)
    with pytest.raises(CohirlError, match="unknown task option"):
        make_task("lift", frame_skip=2)


def test_camera_images() -> None:
    try:
        task = make_task("lift", cameras=CameraConfig(names=("agentview",), height=24, width=32))
    except CohirlError as exc:  # no GL context on this machine: the error must say so
        assert "OpenGL" in str(exc)
        pytest.skip(str(exc))
    obs = task.reset(0)
    image = obs["observation.images.agentview"]
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8 and image.std() > 0
    assert task.render("agentview", 16, 20).shape == (16, 20, 3)
    with pytest.raises(CohirlError, match="unknown camera"):
        task.render("no_such_camera")
    task.close()


def _run_expert(task: RobosuiteTask, seed: int, sigma: float = 0.0) -> tuple[bool, int]:
    expert = make_expert(task)
    rng = np.random.default_rng(seed)
    obs = task.reset(seed)
    expert.reset(seed)
    scale = np.array([sigma] * 3 + [sigma * 2 / 3] * 3 + [0.0])
    while True:
        obs, reward, terminated, truncated, info = task.step(np.clip(expert.act(obs) + rng.normal(size=7) * scale, -1, 1))
        if terminated or truncated:
            assert reward == float(info["success"])
            return bool(info["success"]), task.t


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lift_expert_succeeds(lift: RobosuiteTask, seed: int) -> None:
    assert _run_expert(lift, seed)[0]
    assert _run_expert(lift, seed, sigma=0.3)[0]  # recovers under DART-style noise


def test_square_expert_succeeds(square: RobosuiteTask) -> None:
    success, steps = _run_expert(square, 5)
    assert success and steps < 250
