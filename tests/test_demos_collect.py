"""Expert collection with DART noise on a real (fast) task: determinism, labels, seeds, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cohirl.demos.collect import NoiseConfig, collect_demos, demo_seed
from cohirl.envs import get_spec
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
    clean, _ = collect_demos(TASK, 1, seed=0, progress=False)
    noisy, _ = collect_demos(TASK, 1, seed=0, noise=NoiseConfig(pos_sigma=0.3), progress=False)
    assert clean[0].seed == noisy[0].seed  # same initial state
    n = min(len(clean[0]), len(noisy[0]))
    assert not np.allclose(clean[0].state[1:n], noisy[0].state[1:n])  # noise moved the robot
    for ep in (clean[0], noisy[0]):  # labels are the expert's own clipped actions, never noise-sized
        assert np.all(np.abs(ep.action) <= 1.0)


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
