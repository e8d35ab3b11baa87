"""BC pretraining (paper.md step 4), critic pretraining (step 5) and the one-call learner builder."""

from __future__ import annotations

import copy
import numpy as np
import torch

from cohirl.csil import losses
from cohirl.csil.config import LearnerConfig
from cohirl.csil.diagnostics import demo_value_check_inputs, discounted_returns
from cohirl.csil.learner import Learner, to_tensors
from cohirl.csil.networks import make_policy
from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition
from cohirl.csil.policy_heads import ObsNormalizer, SmallPolicy
from cohirl.progress import progress_bar
from cohirl.csil.replay import DEMO_EXTRAS, ReplayBuffer

_SARSA_KEYS = ("obs", "policy_action", "base_action", "action", "reward", "discount", "terminated",
               "next_obs", "next_base_action", "next_action")


def _check_bc_data(policy: SmallPolicy, obs: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> None:
    if len(obs) == 0:
        raise CohirlError("BC pretraining got an empty demonstration set; generate or load demos first.")
    if len(obs) != len(targets):
        raise CohirlError(f"BC pretraining: {len(obs)} observations but {len(targets)} targets.")
    if tuple(obs.shape[1:]) != (policy.obs_dim,) or tuple(targets.shape[1:]) != (policy.action_dim,):
        raise CohirlError(
            f"BC pretraining: obs {tuple(obs.shape)} / targets {tuple(targets.shape)} do not match the policy "
            f"({policy.obs_dim} -> {policy.action_dim})."
        )


def bc_pretrain(
    policy: SmallPolicy,
    obs: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    cfg: LearnerConfig,
    seed: int,
    progress: bool = False,
    steps: int | None = None,
) -> dict[str, float]:
    """Fit ``policy`` in place with the faithful loss (step 4): Adam ``cfg.bc_lr``, ``cfg.bc_steps``
    steps (or ``steps``) of batch ``cfg.bc_batch_size``. ``targets`` = Composition.bc_targets.

    Returns the mean metrics of the last 100 steps (``bc_loss``, ``bc_mse``, ``bc_nll``).
    """
    _check_bc_data(policy, obs, targets)
    x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.bc_lr)
    n_steps = cfg.bc_steps if steps is None else steps
    history: list[dict[str, float]] = []
    bar = progress_bar(total=n_steps, desc="BC pretraining", disable=not progress)
    for step in range(n_steps):
        index = torch.randint(0, len(x), (cfg.bc_batch_size,), generator=generator)
        loss, metrics = losses.faithful_bc_loss(policy(x[index], faithful=True), y[index])
        if not torch.isfinite(loss):
            raise CohirlError(f"Non-finite BC loss at step {step}: check the demo targets (clipped into (-1, 1)?).")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history = [*history[-99:], {"bc_loss": float(loss.detach()), **metrics}]
        bar.update(1)
    bar.close()
    return {k: float(np.mean([h[k] for h in history])) for k in history[0]} if history else {}


def pretrain_critic(
    learner: Learner,
    demos: ReplayBuffer,
    seed: int,
    progress: bool = False,
    steps: int | None = None,
) -> dict[str, float]:
    """Policy evaluation of the demonstrations with the learner's reward (step 5).

    ``cfg.critic_pretrain_target`` "sarsa": y = r(s, u) + γ(1 - done)·min_i Q̄_i(s', a'_demo) (clipped
    at the value clip); "mc": y = the demos' discounted return under the reward at the start of
    pretraining (the SARSA fixed point on the recorded trajectories). Plus the penalty √E‖∇ₐQ‖² at
    the demonstrated actions; Adam ``cfg.critic_pretrain_lr``, Polyak τ. At the end the target
    critic is set equal to the critic (as CSIL does).
    """
    cfg = learner.cfg
    if set(DEMO_EXTRAS) - set(demos.extras):
        raise CohirlError("pretrain_critic needs the demonstration buffer (cohirl.csil.replay.demo_buffer).")
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(learner.critic.parameters(), lr=cfg.critic_pretrain_lr)
    n_steps = cfg.critic_pretrain_steps if steps is None else steps
    mc = cfg.critic_pretrain_target == "mc"
    returns = demo_returns(learner, demos) if mc or cfg.critic_value_init else None
    if cfg.critic_value_init:
        with torch.no_grad():
            learner.critic.net[-1].bias.fill_(float(returns.mean()))  # type: ignore[union-attr]
        learner.critic_target.load_state_dict(learner.critic.state_dict())
    targets = returns if mc else None
    history: list[dict[str, float]] = []
    bar = progress_bar(total=n_steps, desc="critic pretraining", disable=not progress)
    for _ in range(n_steps):
        index = rng.integers(0, len(demos), size=cfg.critic_pretrain_batch_size)
        b = to_tensors(demos.gather(index), cfg.gamma, _SARSA_KEYS)
        target = sarsa_target(learner, b) if targets is None else targets[torch.as_tensor(index)]
        metrics = learner.critic_step(b, target, len(target), optimizer, name="critic_pretrain")
        history = [*history[-99:], metrics]
        bar.update(1)
    bar.close()
    learner.critic_target.load_state_dict(learner.critic.state_dict())
    return {k: float(np.mean([h[k] for h in history])) for k in history[0]} if history else {}


def demo_returns(learner: Learner, demos: ReplayBuffer) -> torch.Tensor:
    """Discounted return of every demo step under the learner's current reward, clipped like values."""
    reward, ended = demo_value_check_inputs(learner, demos)
    returns = discounted_returns(reward, ended, learner.cfg.gamma)
    return torch.as_tensor(np.minimum(returns, learner.cfg.value_clip()), dtype=torch.float32)


@torch.no_grad()
def sarsa_target(learner: Learner, b: dict[str, torch.Tensor]) -> torch.Tensor:
    """r + γ^k(1 - done)·min(min_i Q̄_i(s', a'_demo), R_max/(1-γ)) on demo transitions."""
    next_q = losses.reduce_heads(learner.critic_target(b["next_obs"], b["next_action"]), "min")
    done = torch.zeros_like(b["terminated"]) if learner.cfg.ignore_termination else b["terminated"]
    reward = learner.reward(b)
    return losses.soft_td_target(reward, b["discount"], done, next_q, torch.zeros_like(next_q),
                                 learner.cfg.value_clip())


@torch.no_grad()
def relabel_demo_executed(demos: ReplayBuffer, composition: Composition, policy: SmallPolicy) -> None:
    """Executed demo actions with the BC policy's std, for compositions that weigh by it."""
    for obs_key, base_key, target_key, action_key in (("obs", "base_action", "policy_action", "action"),
                                                      ("next_obs", "next_base_action", "next_policy_action",
                                                       "next_action")):
        std = policy(torch.as_tensor(demos.field(obs_key))).std
        executed = composition.demo_executed(torch.as_tensor(demos.field(base_key)),
                                             torch.as_tensor(demos.field(target_key)), std)
        demos.set_field(action_key, executed.numpy())


def build_learner(
    cfg: LearnerConfig,
    composition: Composition,
    demos: ReplayBuffer,
    seed: int,
    progress: bool = False,
) -> tuple[Learner, dict[str, float]]:
    """Everything before online learning, for any method.

    Fits the observation normaliser on the demo observations; if the method needs a BC policy
    (CSIL) builds it with ``cfg.policy_head``, runs ``bc_pretrain`` on (obs, bc targets) and
    builds the learner from it; otherwise (sparse baseline) builds a fresh actor. Runs
    ``pretrain_critic`` when ``cfg.pretrain_critic``. Returns (learner, metrics).
    """
    obs = demos.field("obs")
    normalizer = ObsNormalizer.from_array(obs)
    metrics: dict[str, float] = {}
    bc_policy = None
    if cfg.needs_bc_policy:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            bc_policy = make_policy(cfg, demos.obs_dim, demos.action_dim, copy.deepcopy(normalizer))
        metrics.update(bc_pretrain(bc_policy, obs, demos.field("policy_action"), cfg, seed, progress))
        if composition.uses_policy_std:
            relabel_demo_executed(demos, composition, bc_policy)
    learner = Learner(cfg, composition, demos.obs_dim, demos.action_dim, seed, bc_policy, normalizer)
    if cfg.pretrain_critic:
        metrics.update({f"pretrain_{k}": v for k, v in pretrain_critic(learner, demos, seed, progress).items()})
    return learner, metrics

