"""Composition of the small policy with the frozen base (paper.md "Over a frozen base")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition, clipped_fraction, compose_ensemble, compose_residual
from cohirl.csil.policy_heads import GaussianMLPPolicy, HetStatPolicy

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
    match = Composition(mode="ensemble", ensemble_weighting="mean", ensemble_target="match")
    assert np.allclose(match.compose(a_b, match.bc_targets(a_demo, a_b)), a_demo, atol=1e-5)
    centred = Composition(mode="ensemble", ensemble_weighting="centred")
    assert np.allclose(centred.compose(a_b, centred.bc_targets(a_demo, a_b)), a_demo, atol=1e-5)
    demo = Composition(mode="ensemble", ensemble_weighting="mean")
    assert np.allclose(demo.bc_targets(a_demo, a_b), a_demo)


@pytest.mark.parametrize("composition", [Composition(mode="residual"), Composition(mode="ensemble"),
                                         Composition(mode="ensemble", ensemble_weighting="mean")])
def test_demo_rows_store_the_executed_action_of_their_bc_target(composition: Composition) -> None:
    """Coherence: what the critic scores for a demo row is what the BC target executes."""
    a_b = _actions(scale=0.9)
    a_demo = _actions(scale=0.99)  # far from a_b: many targets are out of reach and clipped
    target = composition.bc_targets(a_demo, a_b)
    assert np.allclose(composition.demo_executed(a_b, target), composition.compose(a_b, target))


def test_centred_ensemble_at_zero_output_executes_the_base_exactly() -> None:
    a_b = torch.as_tensor(_actions(32, 4, scale=1.0))
    policy = HetStatPolicy(6, 4, hidden=(8,), n_features=16)  # mean weights start at 0
    executed = Composition(mode="ensemble").compose(a_b, policy(torch.randn(32, 6)).mode())
    assert torch.equal(executed, a_b)
    plain = Composition(mode="ensemble", ensemble_weighting="mean").compose(a_b, policy(torch.randn(32, 6)).mode())
    assert torch.allclose(plain, 0.5 * a_b)  # the plain mean halves the base action off the data


def test_precision_weights_carry_no_gradient_to_the_policy_std() -> None:
    std = torch.full((3, 2), 0.3, requires_grad=True)
    a_hat = torch.zeros(3, 2, requires_grad=True)
    executed = compose_ensemble(torch.ones(3, 2), a_hat, "precision", std, base_precision=16.0)
    executed.sum().backward()
    assert std.grad is None and a_hat.grad is not None


def test_clipped_fraction_counts_unreachable_corrections() -> None:
    a_b = np.zeros((4, 1), np.float32)
    a_demo = np.array([[0.05], [0.19], [0.3], [-0.45]], np.float32)
    assert clipped_fraction(Composition(mode="residual", kappa=0.2), a_demo, a_b) == 0.5
    assert clipped_fraction(Composition(mode="ensemble"), a_demo, a_b) == 0.0  # reach ±0.5 with spread 1


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


@pytest.mark.parametrize("composition", [Composition(mode="residual", kappa=0.2), Composition(mode="ensemble"),
                                         Composition(mode="ensemble", ensemble_weighting="mean")])
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
