"""Configuration of the off-policy learner shared by CSIL and the sparse-reward residual baseline.

Defaults follow /work/shared/paper.md ("CSIL in one page", confirmed against the official code);
fields marked *(ours)* are choices the paper leaves open. Step numbers refer to paper.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from cohirl.errors import CohirlError

# R_max = -0.5·log(1e-5) + log 2 ≈ 6.45: the largest per-dimension log-ratio a std floor of
# √1e-5 allows against the uniform prior (step 2).
R_MAX = -0.5 * math.log(1e-5) + math.log(2.0)
# HetStat's std at initialisation (≈ its std far from data): σ_p·tanh(√(1e-5 + ‖φ‖²)) with σ_p² = 0.75
# and ‖φ‖² = h(π/4)² for the triangle features at (near) zero phase (Λ = e^-5). ≈ 0.61.
_TRIANGLE_AT_QUARTER_PI = 1.1107207345 * math.pi / 4
HETSTAT_OFF_DATA_STD = math.sqrt(0.75) * math.tanh(math.sqrt(1e-5 + _TRIANGLE_AT_QUARTER_PI**2))

REWARD_SOURCES = ("coherent", "sparse", "coherent+sparse")
PRIORS = ("uniform", "base_gaussian")
REWARD_VARIANTS = ("positive", "nonpositive")
ACTOR_REGS = ("kl_to_bc", "entropy", "none")
KL_ESTIMATORS = ("exact", "sample")
POLICY_HEADS = ("hetstat", "mlp")
Q_REDUCTIONS = ("min", "mean")
PERIODIC_ACTIVATIONS = ("triangle", "sin")
CRITIC_STYLES = ("layernorm_relu", "acme")
CRITIC_PRETRAIN_TARGETS = ("sarsa", "mc")


@dataclass(frozen=True)
class LearnerConfig:
    """Every knob of the learner. Frozen; derive variants with ``dataclasses.replace`` / ``with_``."""

    # --- reward (steps 2, 6; "Sparse reward" bullet) ---
    reward_source: str = "coherent"  # "coherent" | "sparse" (env reward) | "coherent+sparse"
    sparse_weight: float = 1.0  # λ in r = r_coherent + λ·r_sparse *(ours)*
    prior: str = "uniform"  # "uniform" (CSIL: log p = -d·log 2) | "base_gaussian"
    prior_std: float = HETSTAT_OFF_DATA_STD  # pre-tanh std of "base_gaussian" *(ours: HetStat init std ≈ 0.61)*
    alpha: float | None = None  # reward temperature α; None -> 1/d (CSIL)
    # "positive" = CSIL's r; "nonpositive" shifts it to r ≤ 0 (for termination on success). The CSIL
    # methods (cohirl.methods.CSIL_REWARD) use "positive" with ignore_termination=True.
    reward_variant: str = "nonpositive"
    r_max: float = R_MAX
    # Shift of the "nonpositive" variant; None -> α·d·R_max, the smallest shift giving r ≤ 0
    # (paper.md's d·R_max is that bound at α = 1; at α = 1/d it would put values near -4500).
    reward_offset: float | None = None
    refine_reward: bool = True  # inverse-RL step on the reward's policy copy q_φ (step 6)
    refine_clip: float = -5.0  # the max(r, -5) in E_agent[e^(-max(r,-5)) - 1 + r]
    ignore_termination: bool = False  # True: bootstrap through success (fixed-horizon reading)
    # --- discounting / data ---
    gamma: float = 0.99
    n_step: int = 1  # >1 only with the sparse reward (a learned reward needs every step's s, a)
    utd: int = 1  # gradient updates per env step (the loop's business; stored here for records)
    demo_batch_size: int = 256
    replay_batch_size: int = 256
    replay_capacity: int = 1_000_000  # *(ours)*
    warmup_steps: int = 2_000  # env steps in the replay before learning *(ours; ResFiT 10k)*
    critic_only_updates: int = 0  # first updates skip the actor (ResFiT: 10k)
    # --- critic (steps 5, 6) ---
    n_critics: int = 2
    critic_hidden: tuple[int, ...] = (256, 256)
    # "layernorm_relu" (ResFiT) | "acme" (official CSIL: LayerNorm+tanh first layer, ELU, orthogonal).
    # Default measured (quick: 500 critic-pretraining steps, csil_residual, seed 0): ‖∇ₐQ‖ at the demo
    # actions 0.019 (square) / 0.024 (pick_place) vs "acme" 0.78 / 2.40 — the default makes the demos
    # near-stationary (the no-drop mechanism) within the budget; "acme" fits the TD targets better
    # (TD error 4.2 / 2.2 vs 19.0 / 13.6). Scripts: README "Benchmarks" / closing note.
    critic_style: str = "layernorm_relu"
    critic_target_heads: int | None = None  # None: min over all heads; k: min over k random heads
    actor_q_reduction: str = "min"  # how the actor reduces the ensemble (CSIL: min)
    grad_penalty_weight: float = 1.0  # weight of √E‖∇ₐQ‖² on demo actions (CSIL: 1, always on)
    critic_lr: float = 3e-4
    tau: float = 0.005  # Polyak rate of the target critic
    # --- actor (step 6) ---
    actor_reg: str = "kl_to_bc"  # "kl_to_bc" (β·KL(π‖q₀)) | "entropy" (SAC, fixed α) | "none"
    beta: float = 0.01  # weight of the KL to the BC policy
    entropy_alpha: float = 0.01  # SAC temperature for actor_reg="entropy" *(ours)*
    kl_estimator: str = "exact"  # "exact" pre-tanh Gaussian KL (the paper's addition) | "sample"
    actor_lr: float = 3e-4
    reward_lr: float = 1e-3  # plain SGD on q_φ
    max_grad_norm: float | None = None  # optional global clip for every optimiser *(ours)*
    # --- small policy (step 3) ---
    policy_head: str = "hetstat"  # "hetstat" | "mlp" (ablation / sparse baseline)
    policy_hidden: tuple[int, ...] = (256, 256)
    hetstat_bottleneck: int = 12
    hetstat_features: int = 256  # F (total feature count; W has F/2 columns)
    hetstat_prior_var: float = 0.75  # σ_p²
    hetstat_init_log_lengthscale: float = -5.0  # ℓ init
    hetstat_activation: str = "triangle"
    mlp_zero_init_mean: bool = False  # zero the mean layer (residual starts as the base)
    mlp_fixed_std: float | None = None  # constant pre-tanh std (TD3-style exploration)
    # --- pretraining (steps 4, 5) ---
    bc_steps: int = 25_000
    bc_lr: float = 1e-3
    bc_batch_size: int = 256
    pretrain_critic: bool = True
    critic_pretrain_steps: int = 5_000
    critic_pretrain_lr: float = 1e-4
    critic_pretrain_batch_size: int = 256
    # "sarsa": bootstrapped y = r + γQ̄(s', a'_demo) (CSIL). "mc": regress on the demos' discounted
    # returns under the reward — the same fixed point on the recorded trajectories, without
    # bootstrapping *(ours)*. At the quick budget both end equally far from it (peg_insert_side, 500
    # steps: −8.6 / −8.7 against −335): the Adam step, not the bootstrap, limits the scale.
    critic_pretrain_target: str = "sarsa"
    # Start every critic head (and its target) at the demos' mean discounted return under the reward
    # (the output bias), so pretraining fits the shape, not the scale: Adam moves the output by about
    # lr·width per step, ≈ 6 in 500 steps at lr 1e-4 against returns of order −300 *(ours)*.
    critic_value_init: bool = False

    def __post_init__(self) -> None:
        self._check_choices()
        self._check_positive()
        self._check_consistency()

    def _check_choices(self) -> None:
        choices = {
            "reward_source": REWARD_SOURCES, "prior": PRIORS, "reward_variant": REWARD_VARIANTS,
            "actor_reg": ACTOR_REGS, "kl_estimator": KL_ESTIMATORS, "policy_head": POLICY_HEADS,
            "actor_q_reduction": Q_REDUCTIONS, "hetstat_activation": PERIODIC_ACTIVATIONS,
            "critic_style": CRITIC_STYLES, "critic_pretrain_target": CRITIC_PRETRAIN_TARGETS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise CohirlError(f"LearnerConfig.{name}={getattr(self, name)!r} is unknown; use one of {allowed}.")

    def _check_positive(self) -> None:
        positive = (
            "prior_std", "r_max", "n_step", "utd", "demo_batch_size", "replay_batch_size", "replay_capacity",
            "n_critics", "critic_lr", "tau", "actor_lr", "reward_lr", "hetstat_bottleneck", "hetstat_features",
            "hetstat_prior_var", "bc_lr", "bc_batch_size", "critic_pretrain_lr", "critic_pretrain_batch_size",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise CohirlError(f"LearnerConfig.{name} must be > 0, got {getattr(self, name)}.")
        non_negative = ("sparse_weight", "warmup_steps", "critic_only_updates", "grad_penalty_weight", "beta",
                        "entropy_alpha", "bc_steps", "critic_pretrain_steps")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise CohirlError(f"LearnerConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        if not 0.0 < self.gamma < 1.0 or not 0.0 < self.tau <= 1.0:
            raise CohirlError(f"LearnerConfig: gamma must be in (0, 1) and tau in (0, 1]; got {self.gamma}, {self.tau}.")
        if self.reward_offset is not None and self.reward_offset < 0:
            raise CohirlError(f"LearnerConfig.reward_offset must be ≥ 0 or None (= α·d·R_max), got {self.reward_offset}.")
        if self.alpha is not None and self.alpha <= 0:
            raise CohirlError(f"LearnerConfig.alpha must be > 0 or None (= 1/d), got {self.alpha}.")

    def _check_consistency(self) -> None:
        if self.hetstat_features % 2:
            raise CohirlError(f"LearnerConfig.hetstat_features must be even, got {self.hetstat_features}.")
        if not self.critic_hidden or not self.policy_hidden:
            raise CohirlError("LearnerConfig: critic_hidden and policy_hidden need at least one layer.")
        if self.critic_target_heads is not None and not 1 <= self.critic_target_heads <= self.n_critics:
            raise CohirlError(
                f"LearnerConfig.critic_target_heads={self.critic_target_heads} must be in [1, n_critics="
                f"{self.n_critics}] or None (min over all heads)."
            )
        if self.uses_coherent_reward and self.n_step != 1:
            raise CohirlError(
                "LearnerConfig: n_step > 1 needs reward_source='sparse' (the learned reward is evaluated per step)."
            )
        if self.refine_reward and not self.uses_coherent_reward:
            raise CohirlError("LearnerConfig: refine_reward=True needs a coherent reward; set refine_reward=False.")
        if self.mlp_fixed_std is not None and self.mlp_fixed_std <= 0:
            raise CohirlError(f"LearnerConfig.mlp_fixed_std must be > 0 or None, got {self.mlp_fixed_std}.")

    @property
    def uses_coherent_reward(self) -> bool:
        return self.reward_source in ("coherent", "coherent+sparse")

    @property
    def needs_bc_policy(self) -> bool:
        """The learner must be built from a BC-pretrained policy (reward copy q_φ or reference q₀)."""
        return self.uses_coherent_reward or self.actor_reg == "kl_to_bc"

    def value_clip(self) -> float:
        """Upper clip of bootstrapped values (step 2).

        R_max/(1 - γ) for a positive reward. With the non-positive coherent reward every value is
        ≤ 0, so the clip is 0 (the official NCSIL clips at 0; R_max/(1 - γ) ≈ 645 never acted), plus
        the one-off sparse bonus λ for "coherent+sparse" (episodes end on success).
        """
        if self.uses_coherent_reward and self.reward_variant == "nonpositive":
            bonus = self.sparse_weight if self.reward_source == "coherent+sparse" else 0.0
            return bonus / (1.0 - self.gamma) if self.ignore_termination else bonus
        return self.r_max / (1.0 - self.gamma)

    def reward_alpha(self, action_dim: int) -> float:
        return self.alpha if self.alpha is not None else 1.0 / action_dim

    def with_(self, **overrides: Any) -> "LearnerConfig":
        """Copy with fields replaced; unknown names raise CohirlError listing the valid ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise CohirlError(f"Unknown LearnerConfig field(s) {unknown}; valid fields: {sorted(known)}.")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Named groups of learner settings. "official": google-deepmind/csil's defaults where paper.md is
# silent (BC and critic-pretraining budgets, network and batch sizes, one critic head of acme's
# LayerNormMLP style: LayerNorm + tanh on the first layer, ELU, orthogonal init).
PRESETS: dict[str, dict[str, Any]] = {
    "official": {
        "bc_steps": 25_000, "bc_lr": 1e-3, "bc_batch_size": 256,
        "critic_pretrain_steps": 5_000, "critic_pretrain_lr": 1e-4, "critic_pretrain_batch_size": 256,
        "policy_hidden": (256, 256), "hetstat_features": 256, "critic_hidden": (256, 256), "n_critics": 1,
        "critic_style": "acme",
        "demo_batch_size": 256, "replay_batch_size": 256,
    },
}


def apply_preset(name: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of preset ``name``; a preset key given again is an error (one knob, one place)."""
    if name is None:
        return dict(overrides)
    if name not in PRESETS:
        raise CohirlError(f"Unknown learner preset {name!r}; known presets: {sorted(PRESETS)}.")
    clash = sorted(set(PRESETS[name]) & set(overrides))
    if clash:
        raise CohirlError(f"finetune sets {clash} and preset {name!r} sets them too: remove them from params.yaml "
                          f"(finetune.batch_size sets all four batch sizes) or drop the preset.")
    return {**PRESETS[name], **overrides}
