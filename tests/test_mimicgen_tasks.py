"""MimicGen-style tasks: contract, seeding, success predicates (incl. near misses), experts."""

from __future__ import annotations

import numpy as np
import pytest

from cohirl.envs import ENV_STATE_KEY, STATE_KEY, get_spec, make_expert, make_task
from cohirl.envs.mimicgen import coffee as cf
from cohirl.envs.mimicgen import drawer as dr
from cohirl.envs.mimicgen import threading_env as th
from cohirl.envs.mimicgen.objects import yaw_quat
from cohirl.envs.mimicgen.tasks import SPECS, MimicGenTask
from cohirl.errors import CohirlError

TASKS = ("coffee", "mug_cleanup", "threading", "hammer_cleanup")
_CACHE: dict[str, MimicGenTask] = {}


def task_for(name: str) -> MimicGenTask:
    """One D0 instance per task for the whole module (construction is the slow part)."""
    if name not in _CACHE:
        task = make_task(name)
        assert isinstance(task, MimicGenTask)
        _CACHE[name] = task
    return _CACHE[name]


def place(task: MimicGenTask, obj: str, pos: np.ndarray, yaw: float = 0.0) -> None:
    """Teleport a free object (qpos) and recompute the derived quantities."""
    env = task.env
    joint = next(o for o in env.free_objects if o.name == obj).joints[0]
    env.sim.data.set_joint_qpos(joint, np.concatenate([pos, yaw_quat(yaw)]))
    env.sim.forward()


def set_joint(task: MimicGenTask, joint: str, value: float) -> None:
    task.env.set_joint_pos(joint, value)
    task.env.sim.forward()


def test_registry_lists_the_four_tasks_with_static_specs() -> None:
    assert tuple(spec.name for spec in SPECS) == TASKS
    for spec in SPECS:
        assert get_spec(spec.name) == spec
        assert spec.action_dim == 7 and spec.state_dim == 43 and spec.fps == 20
        assert 400 <= spec.horizon <= 500


@pytest.mark.parametrize("name", TASKS)
def test_reset_and_step_contract(name: str) -> None:
    task = task_for(name)
    obs = task.reset(0)
    for key, dim in ((STATE_KEY, task.spec.state_dim), (ENV_STATE_KEY, task.spec.env_state_dim)):
        assert obs[key].shape == (dim,) and obs[key].dtype == np.float32
    assert not task.is_success()
    obs, reward, terminated, truncated, info = task.step(np.zeros(7))
    assert reward == 0.0 and not terminated and not truncated and info == {"success": False, "t": 1}
    with pytest.raises(CohirlError, match="dimensions"):
        task.step(np.zeros(6))


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_initial_state_and_different_seed_differs(name: str) -> None:
    task = task_for(name)
    first = task.reset(11)[ENV_STATE_KEY]
    task.step(np.ones(7))
    again = task.reset(11)[ENV_STATE_KEY]
    other = task.reset(12)[ENV_STATE_KEY]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_seeding_leaves_the_callers_numpy_rng_alone() -> None:
    task = task_for("threading")
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    task.reset(3)
    assert np.random.rand() == expected


def test_d1_moves_the_fixture_and_d0_does_not() -> None:
    narrow = task_for("threading")
    wide = make_task("threading", distribution="D1")
    fixture = slice(7, 14)  # tripod pose
    d0 = [narrow.reset(seed)[ENV_STATE_KEY][fixture] for seed in (1, 2)]
    d1 = [wide.reset(seed)[ENV_STATE_KEY][fixture] for seed in (1, 2)]
    np.testing.assert_array_equal(d0[0], d0[1])
    assert not np.allclose(d1[0], d1[1])
    wide.close()


def test_unknown_distribution_and_option_are_rejected() -> None:
    with pytest.raises(CohirlError, match="D0, D1"):
        make_task("coffee", distribution="D2")
    with pytest.raises(CohirlError, match="unknown task option"):
        make_task("coffee", width="D1")


# -- success predicates -------------------------------------------------------------------------------
def drawer_inside(task: MimicGenTask) -> np.ndarray:
    """World point in the middle of the (closed) drawer, just above its floor."""
    pos, rot = task.env.drawer_frame()
    return pos + rot @ np.array([0.0, 0.0, 0.04])


@pytest.mark.parametrize("name", ["mug_cleanup", "hammer_cleanup"])
def test_drawer_success_and_near_misses(name: str) -> None:
    task = task_for(name)
    task.reset(0)
    obj = task.env.target.name
    start = task.env.body_pose(obj)[:3]
    set_joint(task, dr.SLIDE_JOINT, 0.0)
    assert not task.is_success()  # drawer closed, object still on the table
    place(task, obj, drawer_inside(task), yaw=np.pi / 2)
    assert task.is_success()
    set_joint(task, dr.SLIDE_JOINT, 0.1)
    assert not task.is_success()  # object in the drawer but the drawer is open
    set_joint(task, dr.SLIDE_JOINT, 0.0)
    place(task, obj, drawer_inside(task) + np.array([0.0, 0.0, 0.1]))
    assert not task.is_success()  # on top of the cabinet, above the drawer
    place(task, obj, start)
    assert not task.is_success()


def needle_through(task: MimicGenTask, along: float, side: float) -> None:
    """Needle along the ring axis, tip ``along`` past the ring centre, shifted ``side`` sideways."""
    env = task.env
    rot = env.sim.data.body_xmat[env.body_ids["tripod"]].reshape(3, 3)
    tip = env.sim.data.body_xpos[env.body_ids["tripod"]] + rot @ (th.RING_CENTER + np.array([along, side, 0.0]))
    yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
    place(task, "needle", tip - rot @ th.NEEDLE_TIP, yaw=yaw)


def test_threading_success_and_near_misses() -> None:
    task = task_for("threading")
    task.reset(0)
    assert not task.is_success()
    needle_through(task, along=0.03, side=0.0)
    assert task.is_success()
    needle_through(task, along=0.03, side=0.035)
    assert not task.is_success()  # beside the ring
    needle_through(task, along=-0.02, side=0.0)
    assert not task.is_success()  # lined up but the tip stops short of the ring
    needle_through(task, along=0.003, side=0.0)
    assert not task.is_success()  # tip only just at the ring plane


def test_coffee_success_and_near_misses() -> None:
    task = task_for("coffee")
    task.reset(0)
    env = task.env
    in_holder = env.sim.data.body_xpos[env.body_ids["machine"]] + np.array(
        [0.0, 0.0, cf.HOLDER_FLOOR_Z + cf.POD_HALF_HEIGHT]
    )
    set_joint(task, cf.LID_JOINT, 0.0)
    assert not task.is_success()  # lid closed without the pod
    place(task, "pod", in_holder)
    assert task.is_success()
    set_joint(task, cf.LID_JOINT, 0.5)
    assert not task.is_success()  # pod in, lid still open
    set_joint(task, cf.LID_JOINT, 0.0)
    place(task, "pod", in_holder + np.array([0.0, 0.0, 0.07]))
    assert not task.is_success()  # pod on top of the closed lid
    place(task, "pod", in_holder + np.array([0.03, 0.0, 0.0]))
    assert not task.is_success()  # off the holder's axis


# -- experts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TASKS)
def test_expert_succeeds_on_a_seed(name: str) -> None:
    task = task_for(name)
    expert = make_expert(task)
    obs = task.reset(7)
    expert.reset(7)
    for _ in range(task.spec.horizon):
        action = expert.act(obs)
        assert action.shape == (7,) and np.all(np.abs(action) <= 1.0)
        obs, reward, terminated, truncated, info = task.step(action)
        if terminated or truncated:
            break
    assert info["success"] and reward == 1.0
