"""Replay ring buffer: n-step returns at episode ends, wrap-around, demo buffer, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition
from cohirl.csil.replay import DemoEpisode, ReplayBuffer, demo_buffer

GAMMA = 0.9


def _add(buffer: ReplayBuffer, t: float, reward: float = 0.0, terminated: bool = False, truncated: bool = False) -> None:
    """Step tagged by ``t``: obs = [t], next_obs = [t + 0.5]."""
    buffer.add(obs=[t], policy_action=[t], base_action=[t], action=[t], reward=reward, terminated=terminated,
               truncated=truncated, next_obs=[t + 0.5], next_base_action=[t])


def _by_start(buffer: ReplayBuffer) -> dict[float, dict[str, float]]:
    out = buffer.gather(np.arange(len(buffer)))
    return {float(out["obs"][i, 0]): {k: float(np.ravel(v[i])[0]) for k, v in out.items()} for i in range(len(buffer))}


def test_n_step_returns_stop_at_termination_truncation_and_newest_step() -> None:
    buffer = ReplayBuffer(100, 1, 1, n_step=3, gamma=GAMMA)
    _add(buffer, 0, 1.0)
    _add(buffer, 1, 2.0)
    _add(buffer, 2, 4.0, terminated=True)  # episode 1 ends in success
    _add(buffer, 10, 1.0)
    _add(buffer, 11, 1.0, truncated=True)  # episode 2 hits the horizon
    _add(buffer, 20, 1.0)
    _add(buffer, 21, 3.0)  # episode 3 still running
    s = _by_start(buffer)
    assert s[0.0]["reward"] == pytest.approx(1 + GAMMA * 2 + GAMMA**2 * 4)
    assert s[0.0]["discount"] == pytest.approx(GAMMA**3) and s[0.0]["terminated"] == 1.0
    assert s[0.0]["next_obs"] == 2.5
    assert s[1.0]["reward"] == pytest.approx(2 + GAMMA * 4) and s[1.0]["terminated"] == 1.0
    assert s[10.0]["reward"] == pytest.approx(1 + GAMMA) and s[10.0]["terminated"] == 0.0  # truncation: bootstrap
    assert s[10.0]["discount"] == pytest.approx(GAMMA**2) and s[10.0]["next_obs"] == 11.5
    assert s[20.0]["reward"] == pytest.approx(1 + GAMMA * 3) and s[20.0]["next_obs"] == 21.5  # stops at newest
    assert s[21.0]["discount"] == pytest.approx(GAMMA) and s[21.0]["terminated"] == 0.0


def test_ring_buffer_wraps_and_never_walks_into_older_data() -> None:
    buffer = ReplayBuffer(4, 1, 1, n_step=3, gamma=GAMMA)
    for t in range(6):  # keeps steps 2..5 of one long episode
        _add(buffer, float(t), reward=1.0)
    assert len(buffer) == 4
    s = _by_start(buffer)
    assert sorted(s) == [2.0, 3.0, 4.0, 5.0]
    assert s[3.0]["next_obs"] == 5.5 and s[3.0]["reward"] == pytest.approx(1 + GAMMA + GAMMA**2)
    assert s[4.0]["next_obs"] == 5.5 and s[4.0]["discount"] == pytest.approx(GAMMA**2)
    assert s[5.0]["next_obs"] == 5.5 and s[5.0]["discount"] == pytest.approx(GAMMA)


def test_state_dict_round_trip_gives_identical_samples() -> None:
    buffer = ReplayBuffer(10, 1, 1, n_step=2, gamma=GAMMA)
    for t in range(13):
        _add(buffer, float(t), reward=float(t % 3), terminated=t % 5 == 4)
    restored = ReplayBuffer(10, 1, 1, n_step=2, gamma=GAMMA)
    restored.load_state_dict(buffer.state_dict())
    a, b = buffer.sample(32, np.random.default_rng(7)), restored.sample(32, np.random.default_rng(7))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    _add(buffer, 99.0)
    _add(restored, 99.0)
    a, b = buffer.sample(32, np.random.default_rng(8)), restored.sample(32, np.random.default_rng(8))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def _episode(T: int, success: bool, seed: int) -> DemoEpisode:
    rng = np.random.default_rng(seed)
    base = rng.uniform(-0.5, 0.5, (T + 1, 2)).astype(np.float32)
    action = np.clip(base[:T] + rng.uniform(-0.05, 0.05, (T, 2)), -1, 1).astype(np.float32)
    return DemoEpisode(rng.normal(size=(T + 1, 3)).astype(np.float32), base, action, success)


def test_demo_buffer_targets_rewards_and_sarsa_fields() -> None:
    composition = Composition(mode="residual", kappa=0.1)
    episodes = [_episode(5, True, 0), _episode(4, False, 1)]
    demos = demo_buffer(episodes, composition)
    assert len(demos) == 9
    ep = episodes[0]
    np.testing.assert_allclose(demos.field("policy_action")[:5], composition.bc_targets(ep.action, ep.base_action[:5]))
    np.testing.assert_array_equal(demos.field("reward"), [0, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(demos.field("terminated"), [0, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(demos.field("truncated"), [0, 0, 0, 0, 0, 0, 0, 0, 1])
    # within the residual's reach the executed demo action is the demo action (up to rounding)
    np.testing.assert_allclose(demos.field("action")[:5], ep.action, atol=1e-6)
    np.testing.assert_allclose(demos.field("next_action")[:4], ep.action[1:], atol=1e-6)
    np.testing.assert_array_equal(demos.field("next_obs")[:5], ep.obs[1:])
    np.testing.assert_array_equal(demos.field("next_base_action")[:5], ep.base_action[1:])
    batch = demos.sample(8, np.random.default_rng(0))
    assert {"next_action", "next_policy_action", "discount"} <= set(batch)


def test_demo_rows_out_of_reach_store_the_reachable_executed_action() -> None:
    """A demo correction beyond κ is stored as the action the clipped target executes (coherence)."""
    composition = Composition(mode="residual", kappa=0.1)
    base = np.zeros((3, 1), np.float32)
    ep = DemoEpisode(np.zeros((3, 2), np.float32), base, np.array([[0.05], [0.5]], np.float32), True)
    demos = demo_buffer([ep], composition)
    np.testing.assert_allclose(demos.field("action")[:, 0], [0.05, 0.0999], atol=1e-6)
    np.testing.assert_allclose(demos.field("policy_action")[:, 0], [0.5, 0.999], atol=1e-6)
    ensemble = demo_buffer([ep], Composition(mode="ensemble", ensemble_weighting="mean"))
    np.testing.assert_allclose(ensemble.field("action")[:, 0], [0.025, 0.25], atol=1e-6)  # ½(a_b + â)


def test_bad_replay_input_raises() -> None:
    with pytest.raises(CohirlError, match="empty"):
        demo_buffer([], Composition())
    with pytest.raises(CohirlError, match="T\\+1"):
        demo_buffer([DemoEpisode(np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((3, 1)))], Composition())
    buffer = ReplayBuffer(5, 1, 1)
    with pytest.raises(CohirlError, match="empty"):
        buffer.sample(2, np.random.default_rng(0))
    with pytest.raises(CohirlError, match="shape"):
        buffer.add(obs=[0.0, 1.0], policy_action=[0], base_action=[0], action=[0], reward=0, terminated=False,
                   truncated=False, next_obs=[0], next_base_action=[0])
    with pytest.raises(CohirlError, match="NaN"):
        buffer.add(obs=[np.nan], policy_action=[0], base_action=[0], action=[0], reward=0, terminated=False,
                   truncated=False, next_obs=[0], next_base_action=[0])
    with pytest.raises(CohirlError, match="missing"):
        buffer.add(obs=[0.0])
