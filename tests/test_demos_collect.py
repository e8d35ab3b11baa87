"""Expert collection with DART noise on a real (fast) task: determinism, labels, seeds, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cohirl.demos.collect import NoiseConfig, collect_demos, demo_seed, rollout_expert
from cohirl.envs import get_spec, make_task
from cohirl.errors import CohirlError
from cohirl.eval.rollout import eval_init_seeds

TASK = "pick_place"


def test_same_seed_same_demos_and_only_successes_kept() -> None:
    noise = NoiseConfig(pos_sigma=0.3)
    a, report = collect_demos(TASK, 2, seed=3, noise=noise, progress=False)
    b, _ = collect_demos(TASK, 2, seed=3, noise=noise, progress=False)
    assert len(a) == 2 and all(ep.success[-1] and ep.done[-1] for ep in a)
    for x, y in zip(a, b):
        assert x.seed == y.seed
        np.testing.assert_array_equal(x.action, y.action)
        np.testing.assert_array_equal(x.state, y.state)
    assert report.attempts >= 2 and report.successes == 2
    assert report.attempt_seeds[0] == demo_seed(3, 0)


def test_dart_noise_changes_visited_states_but_labels_stay_clean() -> None:
    task = make_task(TASK)
    clean = rollout_expert(task, 5, NoiseConfig(), np.random.default_rng(0))
    noisy = rollout_expert(task, 5, NoiseConfig(pos_sigma=0.3), np.random.default_rng(0))
    np.testing.assert_array_equal(clean.state[0], noisy.state[0])  # same initial state
    n = min(len(clean), len(noisy))
    assert not np.allclose(clean.state[1:n], noisy.state[1:n])  # the noise moved the robot
    replay = make_task(TASK)  # executing the recorded labels reproduces the clean episode, not the noisy one
    replay.reset(5)
    for t in range(5):
        obs, *_ = replay.step(noisy.action[t])
    assert not np.allclose(obs["observation.state"], noisy.state[5])


def test_demo_seeds_never_collide_with_evaluation_seeds() -> None:
    demo = {demo_seed(s, i) for s in range(3) for i in range(200)}
    assert not demo & set(eval_init_seeds(12345, 500))


def test_noise_layout_and_bad_inputs() -> None:
    sigma = NoiseConfig(pos_sigma=0.3, rot_sigma=0.2).sigma_vector(get_spec("square"))
    np.testing.assert_allclose(sigma, [0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.0])
    np.testing.assert_allclose(NoiseConfig(pos_sigma=0.3).sigma_vector(get_spec(TASK)), [0.3, 0.3, 0.3, 0.0])
    with pytest.raises(CohirlError, match="n_demos"):
        collect_demos(TASK, 0)
    with pytest.raises(CohirlError, match="invalid noise"):
        NoiseConfig(pos_sigma=-1.0)
    with pytest.raises(CohirlError, match="unknown task"):
        collect_demos("no_such_task", 1)
