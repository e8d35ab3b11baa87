"""One parametric off-policy learner for CSIL over a frozen base and the sparse residual baseline.

Holds the actor π_θ, the critic ensemble and its Polyak target, the reward's policy copy q_φ
and the frozen BC reference q₀ (paper.md step 6). CSIL builds it from the BC-pretrained policy
(actor = q_φ = q₀ = copies of it); the sparse baseline from a fresh zero-mean residual actor.

Batches are mappings of arrays/tensors with the keys of :mod:`cohirl.csil.replay`
(``obs, policy_action, base_action, action, reward, discount, terminated, next_obs,
next_base_action``). Observations are raw: every network normalises with its own copy of the
observation normaliser. All randomness inside ``update``/``act`` comes from two seeded
``torch.Generator`` s, saved in ``state_dict`` (same seed + same batches -> identical updates).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from cohirl.csil import losses
from cohirl.csil.config import LearnerConfig
from cohirl.csil.networks import CriticEnsemble, make_critic, make_policy, polyak_update
from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition
from cohirl.csil.policy_heads import ObsNormalizer, SmallPolicy, TanhNormal

Batch = Mapping[str, np.ndarray | torch.Tensor]
BATCH_KEYS = ("obs", "policy_action", "base_action", "action", "reward", "discount", "terminated",
              "next_obs", "next_base_action")


def _as_float_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x.float() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float32)


def to_tensors(batch: Batch, gamma: float, keys: tuple[str, ...] = BATCH_KEYS) -> dict[str, torch.Tensor]:
    """float32 tensors for ``keys``; a missing ``discount`` means one-step transitions (γ)."""
    missing = [k for k in keys if k not in batch and k != "discount"]
    if missing:
        raise CohirlError(f"Batch is missing {missing}; build it with cohirl.csil.replay.ReplayBuffer.sample.")
    out = {k: _as_float_tensor(batch[k]) for k in keys if k in batch}
    if "discount" in keys and "discount" not in out:
        out["discount"] = torch.full_like(out["reward"], gamma)
    return out


def concat_batches(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    if second is None:
        return first
    return {k: torch.cat([first[k], second[k]], dim=0) for k in first}


@dataclasses.dataclass(frozen=True)
class _PolicyViews:
    """The actor's distribution π(·|s) and the frozen reference q₀(·|s) (None without a KL) at one set of rows."""

    pi: TanhNormal
    ref: TanhNormal | None


def _frozen_copy(module: nn.Module) -> nn.Module:
    clone = copy.deepcopy(module)
    clone.requires_grad_(False)
    return clone


class Learner:
    """Critic / reward-refinement / actor updates with KL-to-BC, entropy or no regularisation."""

    def __init__(
        self,
        cfg: LearnerConfig,
        composition: Composition,
        obs_dim: int,
        action_dim: int,
        seed: int,
        bc_policy: SmallPolicy | None = None,
        normalizer: ObsNormalizer | None = None,
    ) -> None:
        """``bc_policy`` (BC-pretrained, required when ``cfg.needs_bc_policy``) initialises the
        actor, q_φ and q₀; otherwise a fresh actor is built (``normalizer`` fitted on demo obs)."""
        if cfg.needs_bc_policy and bc_policy is None:
            raise CohirlError(
                f"reward_source={cfg.reward_source!r} / actor_reg={cfg.actor_reg!r} need a BC-pretrained policy: "
                "run cohirl.csil.pretrain.bc_pretrain first and pass bc_policy=..."
            )
        self.cfg, self.composition = cfg, composition
        self.obs_dim, self.action_dim, self.seed = obs_dim, action_dim, seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor: SmallPolicy = copy.deepcopy(bc_policy) if bc_policy else make_policy(cfg, obs_dim, action_dim, normalizer)
            critic_norm = copy.deepcopy(self.actor.obs_normalizer)
            self.critic: CriticEnsemble = make_critic(cfg, obs_dim, action_dim, critic_norm)
        self.critic_target = _frozen_copy(self.critic)
        self.reward_policy: SmallPolicy | None = copy.deepcopy(bc_policy) if cfg.uses_coherent_reward else None
        self.reference: SmallPolicy | None = _frozen_copy(bc_policy) if bc_policy is not None else None  # type: ignore[assignment]
        # foreach: one multi-tensor kernel per optimiser op instead of one per parameter (same arithmetic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, foreach=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, foreach=True)
        self.reward_opt = (torch.optim.SGD(self.reward_policy.parameters(), lr=cfg.reward_lr, foreach=True)
                           if self.reward_policy is not None else None)
        self.update_generator = torch.Generator().manual_seed(2 * seed + 1)
        self.act_generator = torch.Generator().manual_seed(2 * seed + 2)
        self.num_updates = 0

    # ------------------------------------------------------------------ reward (step 2)
    def log_prior(self, policy_action: torch.Tensor, base_action: torch.Tensor) -> torch.Tensor:
        """log p(u | s): uniform on [-1, 1]^d, or a tanh-Gaussian at the base's equivalent output."""
        if self.cfg.prior == "uniform":
            return losses.uniform_log_prior(policy_action)
        center = self.composition.base_equivalent(base_action)
        return losses.base_gaussian_log_prior(policy_action, center, self.cfg.prior_std)

    def coherent_reward(
        self, obs: torch.Tensor, policy_action: torch.Tensor, base_action: torch.Tensor, variant: str | None = None
    ) -> torch.Tensor:
        """r_φ(s, u) = α(log q_φ(u|s) - log p(u|s)) [- offset]; differentiable w.r.t. q_φ."""
        return self._coherent_from_log_q(self._reward_log_q(obs, policy_action), policy_action, base_action, variant)

    def _reward_log_q(self, obs: torch.Tensor, policy_action: torch.Tensor) -> torch.Tensor:
        if self.reward_policy is None:
            raise CohirlError("This learner has no learned reward (reward_source='sparse').")
        return self.reward_policy(obs).log_prob(policy_action)

    def _coherent_from_log_q(
        self, log_q: torch.Tensor, policy_action: torch.Tensor, base_action: torch.Tensor, variant: str | None
    ) -> torch.Tensor:
        return losses.coherent_reward(
            log_q, self.log_prior(policy_action, base_action), self.cfg.reward_alpha(self.action_dim),
            self.action_dim, variant or self.cfg.reward_variant, self.cfg.r_max, self.cfg.reward_offset,
        )

    @torch.no_grad()
    def reward(self, batch: Batch) -> torch.Tensor:
        """The (stop-gradient) reward the critic regresses on, for a batch [B]."""
        b = to_tensors(batch, self.cfg.gamma)
        log_q = self._reward_log_q(b["obs"], b["policy_action"]) if self.cfg.uses_coherent_reward else None
        return self._critic_reward(b, log_q)

    def _critic_reward(self, b: dict[str, torch.Tensor], log_q: torch.Tensor | None) -> torch.Tensor:
        """Reward of the TD target from a precomputed log q_φ(u|s) (None for the sparse reward)."""
        if log_q is None:
            return b["reward"]
        r = self._coherent_from_log_q(log_q.detach(), b["policy_action"], b["base_action"], None)
        return r + self.cfg.sparse_weight * b["reward"] if self.cfg.reward_source == "coherent+sparse" else r

    # ------------------------------------------------------------------ policy helpers
    def _executed(self, dist: TanhNormal, base_action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre-tanh sample u ~ dist, executed action compose(a_b, tanh u)), with gradients."""
        u = dist.rsample_pre_tanh(self.update_generator)
        return u, self.composition.compose(base_action, torch.tanh(u), dist.std)

    def _regulariser(self, dist: TanhNormal, u: torch.Tensor, ref: TanhNormal | None) -> torch.Tensor:
        """β·KL(π‖q₀) (exact or sampled), α_ent·log π, or 0 — per state [B]; ``ref`` is q₀(·|s)."""
        cfg = self.cfg
        if cfg.actor_reg == "none":
            return torch.zeros(u.shape[0])
        log_pi = dist.log_prob_from_pre_tanh(u)
        if cfg.actor_reg == "entropy":
            return cfg.entropy_alpha * log_pi
        if ref is None:
            raise CohirlError("actor_reg='kl_to_bc' needs the BC reference policy q₀.")
        if cfg.kl_estimator == "exact":
            return cfg.beta * losses.gaussian_kl(dist.mean, dist.std, ref.mean, ref.std)
        return cfg.beta * (log_pi - ref.log_prob_from_pre_tanh(u))

    def _policies_at(self, b: dict[str, torch.Tensor], actor_step: bool) -> tuple[_PolicyViews, _PolicyViews | None]:
        """π and q₀ at s' (no gradient) and, for an actor step, at s (π with gradient).

        The actor does not change between the TD target and the actor step, so these serve both:
        one q₀ forward over [s'; s], and π at s' without a graph beside π at s with one (a single
        π forward over [s'; s] would carry the s' rows through the actor's backward: 1.15x slower
        per update at the paper's sizes, the same at quick's).
        """
        n = b["next_obs"].shape[0]
        with torch.no_grad():
            pi_next = self.actor(b["next_obs"])
        ref = None
        if self.cfg.actor_reg == "kl_to_bc" and self.reference is not None:
            with torch.no_grad():
                ref = self.reference(torch.cat([b["next_obs"], b["obs"]]) if actor_step else b["next_obs"])
        nxt = _PolicyViews(pi_next, ref.rows(0, n) if ref is not None else None)
        if not actor_step:
            return nxt, None
        return nxt, _PolicyViews(self.actor(b["obs"]), ref.rows(n, 2 * n) if ref is not None else None)

    def _target_heads(self) -> torch.Tensor | None:
        k = self.cfg.critic_target_heads
        if k is None:
            return None
        return torch.randperm(self.cfg.n_critics, generator=self.update_generator)[:k]

    # ------------------------------------------------------------------ update steps
    def _apply(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, name: str, module: nn.Module) -> None:
        if not torch.isfinite(loss):
            raise CohirlError(
                f"Non-finite {name} loss ({float(loss)}) at update {self.num_updates}: check the batch for NaN/inf "
                "and lower the learning rates; resume from the last checkpoint."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(module.parameters(), self.cfg.max_grad_norm)
        optimizer.step()

    def td_target(self, b: dict[str, torch.Tensor], reward: torch.Tensor, nxt: _PolicyViews | None = None) -> torch.Tensor:
        """y = r + γ^k(1 - done)·min(Q̄(s', a') - reg(s'), R_max/(1-γ)), a' ~ π (step 6).

        ``nxt``: π and q₀ at s' when the caller already has them (``update`` does)."""
        with torch.no_grad():
            nxt = nxt or self._policies_at(b, actor_step=False)[0]
            u, next_exec = self._executed(nxt.pi, b["next_base_action"])
            next_q = losses.reduce_heads(self.critic_target(b["next_obs"], next_exec), "min", self._target_heads())
            reg = self._regulariser(nxt.pi, u, nxt.ref)
            done = torch.zeros_like(b["terminated"]) if self.cfg.ignore_termination else b["terminated"]
            return losses.soft_td_target(reward, b["discount"], done, next_q, reg, self.cfg.value_clip())

    def critic_step(
        self, b: dict[str, torch.Tensor], target: torch.Tensor, n_demo: int,
        optimizer: torch.optim.Optimizer | None = None, name: str = "critic",
    ) -> dict[str, float]:
        """Regress every head on ``target`` with the action-gradient penalty on the first ``n_demo``
        rows (the demonstrated actions), then Polyak-update the target critic."""
        penalise = self.cfg.grad_penalty_weight > 0 and n_demo > 0
        actions = b["action"].unsqueeze(0).expand(self.cfg.n_critics, -1, -1).clone().requires_grad_(penalise)
        q = self.critic(b["obs"], actions)
        grads = None
        if penalise:
            grads = torch.autograd.grad(q[:, :n_demo].sum(), actions, create_graph=True)[0][:, :n_demo]
        loss, metrics = losses.critic_loss(q, target, grads, self.cfg.grad_penalty_weight)
        self._apply(optimizer or self.critic_opt, loss, name, self.critic)
        polyak_update(self.critic_target, self.critic, self.cfg.tau)
        return metrics

    def _reward_step(self, b: dict[str, torch.Tensor], log_q: torch.Tensor, n_demo: int) -> dict[str, float]:
        """Inverse-RL refinement of q_φ on the un-shifted ("positive") reward (step 6)."""
        assert self.reward_opt is not None
        r = self._coherent_from_log_q(log_q, b["policy_action"], b["base_action"], "positive")
        loss, metrics = losses.reward_refinement_loss(r[:n_demo], r[n_demo:], self.cfg.refine_clip)
        self._apply(self.reward_opt, loss, "reward", self.reward_policy)  # type: ignore[arg-type]
        return metrics

    def _actor_step(self, b: dict[str, torch.Tensor], here: _PolicyViews) -> dict[str, float]:
        u, executed = self._executed(here.pi, b["base_action"])
        self.critic.requires_grad_(False)  # the actor loss differentiates through Q only w.r.t. a
        try:
            q = losses.reduce_heads(self.critic(b["obs"], executed), self.cfg.actor_q_reduction)
            loss, metrics = losses.actor_loss(q, self._regulariser(here.pi, u, here.ref))
            self._apply(self.actor_opt, loss, "actor", self.actor)
        finally:
            self.critic.requires_grad_(True)
        metrics["policy_std"] = float(here.pi.std.detach().mean())
        return metrics

    def update(self, demo_batch: Batch, replay_batch: Batch | None) -> dict[str, float]:
        """One gradient step of critic, reward refinement (if enabled and replay is given), actor.

        The actor is skipped for the first ``cfg.critic_only_updates`` updates. Raises
        CohirlError naming the loss and the update index if any loss is NaN/inf.
        """
        demo = to_tensors(demo_batch, self.cfg.gamma)
        b = concat_batches(demo, to_tensors(replay_batch, self.cfg.gamma) if replay_batch is not None else None)
        n_demo = demo["obs"].shape[0]
        refine = self.cfg.refine_reward and replay_batch is not None
        actor_step = self.num_updates >= self.cfg.critic_only_updates
        nxt, here = self._policies_at(b, actor_step)
        log_q = None
        if self.cfg.uses_coherent_reward:  # one q_φ pass serves the TD reward and the refinement
            with torch.set_grad_enabled(refine):
                log_q = self._reward_log_q(b["obs"], b["policy_action"])
        metrics = self.critic_step(b, self.td_target(b, self._critic_reward(b, log_q), nxt), n_demo)
        if refine:
            metrics.update(self._reward_step(b, log_q, n_demo))  # type: ignore[arg-type]
        if here is not None:
            metrics.update(self._actor_step(b, here))
        self.num_updates += 1
        metrics["updates"] = float(self.num_updates)
        return metrics

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(
        self, obs: np.ndarray | torch.Tensor, base_action: np.ndarray | torch.Tensor, deterministic: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(executed action, small-policy action u) for one observation [D] or a batch [B, D].

        ``deterministic`` uses the mode tanh(μ) (evaluation); otherwise u ~ π with the learner's
        acting generator. Store u as ``policy_action`` in the replay.
        """
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        base_t = torch.as_tensor(np.asarray(base_action), dtype=torch.float32)
        single = obs_t.ndim == 1
        if single:
            obs_t, base_t = obs_t.unsqueeze(0), base_t.unsqueeze(0)
        dist = self.actor(obs_t)
        small = dist.mode() if deterministic else torch.tanh(dist.rsample_pre_tanh(self.act_generator))
        executed = self.composition.compose(base_t, small, dist.std)
        if single:
            executed, small = executed[0], small[0]
        return executed.numpy().astype(np.float32), small.numpy().astype(np.float32)

    # ------------------------------------------------------------------ checkpoints
    def _modules(self) -> dict[str, nn.Module | torch.optim.Optimizer | None]:
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                "reward_policy": self.reward_policy, "reference": self.reference, "actor_opt": self.actor_opt,
                "critic_opt": self.critic_opt, "reward_opt": self.reward_opt}

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, generators and counters: loading it resumes bit-exactly."""
        state: dict[str, Any] = {k: (m.state_dict() if m is not None else None) for k, m in self._modules().items()}
        state.update(
            update_generator=self.update_generator.get_state(), act_generator=self.act_generator.get_state(),
            num_updates=self.num_updates, config=self.cfg.to_dict(), composition=dataclasses.asdict(self.composition),
            obs_dim=self.obs_dim, action_dim=self.action_dim, seed=self.seed,
        )
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, module in self._modules().items():
            if (module is None) != (state.get(key) is None):
                raise CohirlError(f"Checkpoint and learner disagree on {key!r}: was it saved with another method?")
            if module is not None:
                module.load_state_dict(state[key])
        self.update_generator.set_state(state["update_generator"])
        self.act_generator.set_state(state["act_generator"])
        self.num_updates = int(state["num_updates"])

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "Learner":
        """Rebuild a learner (config, composition, shapes) from ``state_dict()`` output alone."""
        cfg_dict = dict(state["config"])
        for key in ("critic_hidden", "policy_hidden"):
            cfg_dict[key] = tuple(cfg_dict[key])
        cfg = LearnerConfig(**cfg_dict)
        obs_dim, action_dim = int(state["obs_dim"]), int(state["action_dim"])
        placeholder = make_policy(cfg, obs_dim, action_dim) if cfg.needs_bc_policy else None
        learner = cls(cfg, Composition(**state["composition"]), obs_dim, action_dim, int(state["seed"]), placeholder)
        learner.load_state_dict(state)
        return learner
