"""Composition of the small policy with the frozen base (paper.md "Over a frozen base")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition, compose_ensemble, compose_residual
from cohirl.policies.small import GaussianMLPPolicy, HetStatPolicy

torch.set_num_threads(1)
RNG = np.random.default_rng(0)


def _actions(n: int = 50, d: int = 4, scale: float = 0.9) -> np.ndarray:
    return RNG.uniform(-scale, scale, (n, d)).astype(np.float32)


@pytest.mark.parametrize("policy", [HetStatPolicy(6, 4, hidden=(8,), n_features=16),
                                    GaussianMLPPolicy(6, 4, hidden=(8,), zero_init_mean=True)])
def test_zero_initialised_residual_with_mode_actions_executes_the_base_exactly(policy: torch.nn.Module) -> None:
    a_b = torch.as_tensor(_actions(32, 4, scale=1.0))
    a_b[0] = torch.tensor([1.0, -1.0, 0.999, -0.123456])
    composition = Composition(mode="residual", kappa=0.1)
    executed = composition.compose(a_b, policy(torch.randn(32, 6)).mode())
    assert torch.equal(executed, a_b)


def test_residual_is_clipped_and_scaled() -> None:
    a_b = np.array([[0.95, -0.5]], np.float32)
    delta = np.array([[1.0, -0.5]], np.float32)
    assert np.allclose(compose_residual(a_b, delta, 0.2), [[1.0, -0.6]])


def test_bc_targets_invert_the_composition_within_range() -> None:
    a_b = _actions(scale=0.5)
    a_demo = np.clip(a_b + RNG.uniform(-0.08, 0.08, a_b.shape), -1, 1).astype(np.float32)
    residual = Composition(mode="residual", kappa=0.1)
    assert np.allclose(residual.compose(a_b, residual.bc_targets(a_demo, a_b)), a_demo, atol=1e-5)
    match = Composition(mode="ensemble", ensemble_target="match")
    assert np.allclose(match.compose(a_b, match.bc_targets(a_demo, a_b)), a_demo, atol=1e-5)
    demo = Composition(mode="ensemble")
    assert np.allclose(demo.bc_targets(a_demo, a_b), a_demo)


def test_bc_targets_are_clipped_inside_the_open_interval() -> None:
    residual = Composition(mode="residual", kappa=0.1, target_eps=1e-3)
    targets = residual.bc_targets(np.array([[1.0, -1.0]], np.float32), np.zeros((1, 2), np.float32))
    assert np.allclose(targets, [[0.999, -0.999]])
    t = residual.bc_targets(torch.tensor([[0.05]]), torch.tensor([[0.0]]))
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.tensor([[0.5]]))


def test_plain_mean_and_precision_weighting() -> None:
    a_b, a_hat = np.full((1, 2), 0.8, np.float32), np.full((1, 2), -0.4, np.float32)
    assert np.allclose(compose_ensemble(a_b, a_hat), 0.2)
    uncertain = compose_ensemble(a_b, a_hat, "precision", np.full((1, 2), 5.0, np.float32), base_precision=16.0)
    confident = compose_ensemble(a_b, a_hat, "precision", np.full((1, 2), 0.01, np.float32), base_precision=16.0)
    assert np.all(np.abs(uncertain - a_b) < 0.01)  # off-data: defers to the base
    assert np.all(np.abs(confident - a_hat) < 0.01)  # on-data: follows the small policy
    with pytest.raises(CohirlError, match="policy_std"):
        compose_ensemble(a_b, a_hat, "precision")


@pytest.mark.parametrize("composition", [Composition(mode="residual", kappa=0.2), Composition(mode="ensemble")])
def test_base_equivalent_reproduces_the_base(composition: Composition) -> None:
    a_b = torch.as_tensor(_actions(scale=0.99))
    assert torch.allclose(composition.compose(a_b, composition.base_equivalent(a_b)), a_b, atol=1e-6)


def test_bad_composition_parameters_raise() -> None:
    for kappa in (0.0, -0.1):
        with pytest.raises(CohirlError, match="kappa"):
            Composition(mode="residual", kappa=kappa)
        with pytest.raises(CohirlError, match="kappa"):
            compose_residual(np.zeros(2), np.zeros(2), kappa)
    with pytest.raises(CohirlError, match="composition mode"):
        Composition(mode="sum")
    with pytest.raises(CohirlError, match="ensemble_weighting"):
        Composition(ensemble_weighting="median")
    with pytest.raises(CohirlError, match="ensemble_target"):
        Composition(ensemble_target="base")
