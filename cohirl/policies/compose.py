"""Composing the small policy's output with the frozen base action (paper.md, "Over a frozen base").

Two readings, both ours to parameterise:

* **residual**: a = clip(a_b + κ·δ, -1, 1), δ ∈ (-1, 1)^d from the small policy; BC target
  (a_demo - a_b)/κ. With a zero-mean residual and mode actions, a = a_b exactly.
* **ensemble** (the paper's main variant): a = ½(a_b + â) ("mean", default) or a
  precision-weighted mean that defers to the base where the small policy is uncertain
  ("precision"). BC target: a_demo ("demo", default: π_θ clones the demos) or 2·a_demo - a_b
  ("match": fitted so that the plain mean reproduces the demo).

Works on numpy arrays and torch tensors alike (same type out as in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from cohirl.errors import CohirlError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

COMPOSITION_MODES = ("residual", "ensemble")
ENSEMBLE_WEIGHTINGS = ("mean", "precision")
ENSEMBLE_TARGETS = ("demo", "match")


def _clip(x: ArrayT, low: float, high: float) -> ArrayT:
    if isinstance(x, torch.Tensor):
        return x.clamp(low, high)
    return np.clip(x, low, high)


def compose_residual(a_b: ArrayT, delta: ArrayT, kappa: float) -> ArrayT:
    """a = clip(a_b + κ·δ, -1, 1) (residual composition; κ > 0)."""
    if kappa <= 0:
        raise CohirlError(f"Residual scale kappa must be > 0, got {kappa}. ResFiT uses 0.1–0.2.")
    return _clip(a_b + kappa * delta, -1.0, 1.0)


def compose_ensemble(
    a_b: ArrayT,
    a_hat: ArrayT,
    weighting: str = "mean",
    policy_std: ArrayT | None = None,
    base_precision: float = 16.0,
) -> ArrayT:
    """Ensemble composition of base action and small-policy action.

    ``"mean"``: ½(a_b + â). ``"precision"``: (p_b·a_b + p_θ·â)/(p_b + p_θ) per dimension with
    p_θ = 1/σ² from the small policy's pre-tanh std ``policy_std`` and p_b = ``base_precision``
    (our choice: 16, i.e. a base std of 0.25).
    """
    if weighting == "mean":
        return 0.5 * (a_b + a_hat)
    if weighting != "precision":
        raise CohirlError(f"Unknown ensemble weighting {weighting!r}; use one of {ENSEMBLE_WEIGHTINGS}.")
    if policy_std is None:
        raise CohirlError("Precision-weighted ensemble needs the small policy's std (policy_std).")
    policy_precision = 1.0 / (policy_std * policy_std)
    weight_base = base_precision / (base_precision + policy_precision)
    return weight_base * a_b + (1.0 - weight_base) * a_hat


@dataclass(frozen=True)
class Composition:
    """How the executed action is built from a_b and the small policy's output (all options ours).

    Attributes:
        mode: "residual" | "ensemble" (the paper's main variant is "ensemble").
        kappa: residual scale κ > 0 (ResFiT: 0.1–0.2); unused by "ensemble".
        ensemble_weighting: "mean" (default) | "precision".
        ensemble_target: "demo" (default) | "match" — the small policy's BC target.
        base_precision: p_b of the precision-weighted mean (our choice 16 = 1/0.25²).
        target_eps: BC targets are clipped into (-1 + eps, 1 - eps) so atanh stays finite.
    """

    mode: str = "ensemble"
    kappa: float = 0.1
    ensemble_weighting: str = "mean"
    ensemble_target: str = "demo"
    base_precision: float = 16.0
    target_eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.mode not in COMPOSITION_MODES:
            raise CohirlError(f"Unknown composition mode {self.mode!r}; use one of {COMPOSITION_MODES}.")
        if self.kappa <= 0:
            raise CohirlError(f"Residual scale kappa must be > 0, got {self.kappa}. ResFiT uses 0.1–0.2.")
        if self.ensemble_weighting not in ENSEMBLE_WEIGHTINGS:
            raise CohirlError(
                f"Unknown ensemble_weighting {self.ensemble_weighting!r}; use one of {ENSEMBLE_WEIGHTINGS}."
            )
        if self.ensemble_target not in ENSEMBLE_TARGETS:
            raise CohirlError(f"Unknown ensemble_target {self.ensemble_target!r}; use one of {ENSEMBLE_TARGETS}.")
        if self.base_precision <= 0 or not 0 < self.target_eps < 0.5:
            raise CohirlError("Composition: base_precision must be > 0 and target_eps in (0, 0.5).")

    def compose(self, a_b: ArrayT, policy_action: ArrayT, policy_std: ArrayT | None = None) -> ArrayT:
        """Executed action from the base action and the small policy's action (in (-1, 1)^d)."""
        if self.mode == "residual":
            return compose_residual(a_b, policy_action, self.kappa)
        return compose_ensemble(a_b, policy_action, self.ensemble_weighting, policy_std, self.base_precision)

    def bc_targets(self, a_demo: ArrayT, a_b: ArrayT) -> ArrayT:
        """Small-policy BC targets from demo actions and the base's actions on the demo states."""
        if self.mode == "residual":
            raw = (a_demo - a_b) / self.kappa
        elif self.ensemble_target == "match":
            raw = 2.0 * a_demo - a_b
        else:
            raw = a_demo
        return _clip(raw, -1.0 + self.target_eps, 1.0 - self.target_eps)

    def base_equivalent(self, a_b: ArrayT) -> ArrayT:
        """The small-policy output that reproduces a_b: δ = 0 (residual), â = a_b (ensemble).

        The centre of the "base_gaussian" prior (paper.md: the residual's off-data limit).
        """
        if self.mode == "residual":
            return a_b * 0.0
        return _clip(a_b, -1.0 + self.target_eps, 1.0 - self.target_eps)
