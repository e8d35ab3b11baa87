"""Composing the small policy's output with the frozen base action (paper.md, "Over a frozen base").

Two readings, both ours to parameterise:

* **residual**: a = clip(a_b + κ·δ, -1, 1), δ ∈ (-1, 1)^d from the small policy; BC target
  (a_demo - a_b)/κ. With a zero-mean residual and mode actions, a = a_b exactly.
* **ensemble** (the paper's main variant): a = ½(a_b + â). Three readings of â:
  - ``"centred"`` (default): the small policy proposes â = a_b + s·δ, δ ∈ (-1, 1)^d, with spread
    s = ``ensemble_spread`` (1.0), so a = clip(a_b + ½s·δ). At δ = 0 (a zero-initialised or
    off-data HetStat mean) it executes a_b exactly, and on the data it applies the demonstrated
    correction: the only reading that starts at the base by construction. BC target
    (a_demo - a_b)/(½s).
  - ``"mean"``: â is a full action, a = ½(a_b + â). A weakly fitted â injects half of its BC error
    into every action, and off-data (HetStat mean → 0) it halves the base action.
  - ``"precision"``: precision-weighted mean that defers to the base where the small policy is
    uncertain (the policy's std enters without gradient, so the actor cannot hand control to the
    base by inflating σ).
  For "mean" and "precision" the BC target is a_demo ("demo") or 2·a_demo - a_b ("match": fitted
  so that the plain mean reproduces the demo).

Coherence: the reward is defined on the small policy's output u, the critic on the executed
action compose(a_b, u). Demonstration rows therefore store the *executed* version of their BC
target (``demo_executed``), so the BC policy's executed action is where the reward peaks and where
critic pretraining makes Q stationary (paper.md step 5).

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
ENSEMBLE_WEIGHTINGS = ("centred", "mean", "precision")
DEFAULT_KAPPA = 0.2  # one residual scale for every method (ResFiT: 0.1–0.2; see Composition.kappa)
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
    spread: float = 1.0,
) -> ArrayT:
    """Ensemble composition of base action and small-policy output.

    ``"centred"``: â = a_b + spread·δ (``a_hat`` is δ), a = clip(½(a_b + â)) = clip(a_b + ½spread·δ).
    ``"mean"``: ½(a_b + â). ``"precision"``: (p_b·a_b + p_θ·â)/(p_b + p_θ) per dimension with
    p_θ = 1/σ² from the small policy's pre-tanh std ``policy_std`` and p_b = ``base_precision``
    (our choice: 16, i.e. a base std of 0.25).
    """
    if weighting == "centred":  # a residual of scale ½·spread in the ensemble's coordinates
        return compose_residual(a_b, a_hat, 0.5 * spread)
    if weighting == "mean":
        return 0.5 * (a_b + a_hat)
    if weighting != "precision":
        raise CohirlError(f"Unknown ensemble weighting {weighting!r}; use one of {ENSEMBLE_WEIGHTINGS}.")
    if policy_std is None:
        raise CohirlError("Precision-weighted ensemble needs the small policy's std (policy_std).")
    if isinstance(policy_std, torch.Tensor):
        policy_std = policy_std.detach()  # no path for the actor to defer to the base by inflating σ
    policy_precision = 1.0 / (policy_std * policy_std)
    weight_base = base_precision / (base_precision + policy_precision)
    return weight_base * a_b + (1.0 - weight_base) * a_hat


@dataclass(frozen=True)
class Composition:
    """How the executed action is built from a_b and the small policy's output (all options ours).

    Attributes:
        mode: "residual" | "ensemble" (the paper's main variant is "ensemble").
        kappa: residual scale κ > 0 (ResFiT: 0.1–0.2); unused by "ensemble". One default for CSIL
            and the sparse baseline, so the comparison does not hinge on it.
        ensemble_weighting: "centred" (default) | "mean" | "precision" (module docstring).
        ensemble_spread: s of the "centred" ensemble: â = a_b + s·δ (1.0: the proposal may move a
            full action unit from the base, so the executed correction is up to ±0.5).
        ensemble_target: "demo" (default) | "match" — BC target of "mean"/"precision".
        base_precision: p_b of the precision-weighted mean (our choice 16 = 1/0.25²).
        target_eps: BC targets are clipped into (-1 + eps, 1 - eps) so atanh stays finite.
    """

    mode: str = "ensemble"
    kappa: float = DEFAULT_KAPPA
    ensemble_weighting: str = "centred"
    ensemble_spread: float = 1.0
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
        if self.ensemble_spread <= 0:
            raise CohirlError(f"Composition.ensemble_spread must be > 0, got {self.ensemble_spread}.")
        if self.base_precision <= 0 or not 0 < self.target_eps < 0.5:
            raise CohirlError("Composition: base_precision must be > 0 and target_eps in (0, 0.5).")

    @property
    def correction_scale(self) -> float | None:
        """c of the compositions a = clip(a_b + c·δ) (residual: κ, centred ensemble: ½s); else None."""
        if self.mode == "residual":
            return self.kappa
        if self.ensemble_weighting == "centred":
            return 0.5 * self.ensemble_spread
        return None

    def compose(self, a_b: ArrayT, policy_action: ArrayT, policy_std: ArrayT | None = None) -> ArrayT:
        """Executed action from the base action and the small policy's action (in (-1, 1)^d)."""
        if self.mode == "residual":
            return compose_residual(a_b, policy_action, self.kappa)
        return compose_ensemble(a_b, policy_action, self.ensemble_weighting, policy_std, self.base_precision,
                                self.ensemble_spread)

    @property
    def uses_policy_std(self) -> bool:
        """The executed action depends on the small policy's std (precision-weighted ensemble)."""
        return self.mode == "ensemble" and self.ensemble_weighting == "precision"

    def demo_executed(self, a_b: ArrayT, policy_action: ArrayT, policy_std: ArrayT | None = None) -> ArrayT:
        """The executed action of a demonstration row whose small-policy output is its BC target.

        What the critic scores for that row (coherence, module docstring). The precision-weighted
        mean needs the policy's std: without it (before BC) the confident limit, the small policy's
        action, is used; ``cohirl.csil.pretrain.build_learner`` relabels with the BC policy's std.
        """
        if self.uses_policy_std and policy_std is None:
            return policy_action
        return self.compose(a_b, policy_action, policy_std)

    def raw_targets(self, a_demo: ArrayT, a_b: ArrayT) -> ArrayT:
        """The small-policy output that would execute a_demo exactly (may leave (-1, 1))."""
        scale = self.correction_scale
        if scale is not None:
            return (a_demo - a_b) / scale
        return 2.0 * a_demo - a_b if self.ensemble_target == "match" else a_demo

    def bc_targets(self, a_demo: ArrayT, a_b: ArrayT) -> ArrayT:
        """Small-policy BC targets from demo actions and the base's actions on the demo states.

        ``raw_targets`` clipped into (-1 + eps, 1 - eps): a correction beyond the composition's
        reach is cut to the largest one the small policy can output (``clipped_fraction``).
        """
        return _clip(self.raw_targets(a_demo, a_b), -1.0 + self.target_eps, 1.0 - self.target_eps)

    def base_equivalent(self, a_b: ArrayT) -> ArrayT:
        """The small-policy output that reproduces a_b: δ = 0 (residual, centred ensemble), â = a_b.

        The centre of the "base_gaussian" prior (paper.md: the residual's off-data limit).
        """
        if self.correction_scale is not None:
            return a_b * 0.0
        return _clip(a_b, -1.0 + self.target_eps, 1.0 - self.target_eps)


def clipped_fraction(composition: Composition, a_demo: np.ndarray, a_b: np.ndarray) -> float:
    """Share of demo action entries whose BC target lies outside the small policy's range."""
    raw = composition.raw_targets(np.asarray(a_demo), np.asarray(a_b))
    return float(np.mean(np.abs(raw) >= 1.0 - composition.target_eps))
