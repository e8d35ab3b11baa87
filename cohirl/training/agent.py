"""The deployed agent: frozen base stepper + small policy, composed (residual or ensemble).

``ComposedPolicy`` is what evaluation runs; ``ComposedPolicyFactory`` is its picklable recipe (base
directory + a saved actor snapshot), so evaluation workers can rebuild it in their own process.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cohirl.csil.config import LearnerConfig
from cohirl.csil.learner import Learner
from cohirl.csil.networks import make_policy
from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, Obs
from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition
from cohirl.policies.interfaces import BaseStepper
from cohirl.csil.policy_heads import SmallPolicy
from cohirl.io import load_torch
from cohirl.training.checkpoint import save_checkpoint


@dataclass(frozen=True)
class PolicyInputs:
    """What the small policy observes: [state, environment_state(, a_b)(, chunk phase)] (raw).

    The chunk phase is (t mod k)/k for the base action's step t and re-planning period k: the
    correction a chunk needs grows with its staleness, which a_b alone does not show.
    """

    see_base: bool = True
    see_phase: bool = True
    replan_every: int = 10

    def build(self, state: np.ndarray, env_state: np.ndarray, base_action: np.ndarray,
              step: int | np.ndarray) -> np.ndarray:
        """One observation ([D], ``step`` an int) or an episode's ([T, D], ``step`` its indices)."""
        parts = [state, env_state]
        if self.see_base:
            parts.append(base_action)
        if self.see_phase:
            phase = (np.asarray(step) % self.replan_every) / float(self.replan_every)
            parts.append(np.asarray(phase, dtype=np.float32)[..., None])
        return np.concatenate(parts, axis=-1).astype(np.float32)


def stepper_phase(base: BaseStepper) -> int:
    """Step index of the base action just returned by ``base.base_action`` (its chunk phase source)."""
    return int(getattr(base, "t")) - 1


def save_actor_snapshot(learner: Learner, path: Path, inputs: PolicyInputs, value_probe: bool = False) -> Path:
    """What acting needs: the actor's weights, its config, the composition and its inputs; with
    ``value_probe`` also the whole learner, so evaluation episodes can report the critic's value at
    their first state and their return under the learned reward (``ValueProbe``)."""
    snapshot = {"actor": learner.actor.state_dict(), "config": learner.cfg.to_dict(),
                "composition": asdict(learner.composition), "obs_dim": learner.obs_dim,
                "action_dim": learner.action_dim, "inputs": asdict(inputs), "env_steps": 0,
                "learner": learner.state_dict() if value_probe and learner.cfg.uses_coherent_reward else None}
    return save_checkpoint(snapshot, path)


class ValueProbe:
    """Per evaluation episode: the critic's Q(s₀, a₀) and the discounted return Σγᵗ r_φ(s_t, u_t) under
    the learned reward of the snapshot (the Monte-Carlo value the critic should predict)."""

    def __init__(self, learner: Learner) -> None:
        self.learner, self.gamma = learner, learner.cfg.gamma
        self.reset()

    def reset(self) -> None:
        self.q_init, self.learned_return, self.discount = float("nan"), 0.0, 1.0

    @torch.no_grad()
    def observe(self, x: torch.Tensor, small: torch.Tensor, base: torch.Tensor, executed: torch.Tensor) -> None:
        if self.discount == 1.0:
            self.q_init = float(self.learner.critic(x, executed).min(dim=0).values[0])
        reward = self.learner.coherent_reward(x, small.clamp(-1 + 1e-6, 1 - 1e-6), base)
        self.learned_return += self.discount * float(reward[0])
        self.discount *= self.gamma

    def summary(self) -> dict[str, float]:
        return {"q_init": self.q_init, "learned_return": self.learned_return}


def load_actor(path: Path) -> tuple[SmallPolicy, Composition, PolicyInputs]:
    actor, composition, inputs, _ = load_snapshot(path)
    return actor, composition, inputs


def load_snapshot(path: Path) -> tuple[SmallPolicy, Composition, PolicyInputs, ValueProbe | None]:
    snap = load_torch(path, "actor snapshot", required=("actor", "config", "composition", "inputs"))
    cfg_dict = dict(snap["config"])
    for key in ("critic_hidden", "policy_hidden"):
        cfg_dict[key] = tuple(cfg_dict[key])
    actor = make_policy(LearnerConfig(**cfg_dict), int(snap["obs_dim"]), int(snap["action_dim"]))
    actor.load_state_dict(snap["actor"])
    actor.eval()
    probe = ValueProbe(Learner.from_state_dict(snap["learner"])) if snap.get("learner") is not None else None
    return actor, Composition(**snap["composition"]), PolicyInputs(**snap["inputs"]), probe


class ComposedPolicy:
    """a = compose(a_b(t), small policy(s, a_b, phase)); mode actions when ``deterministic``."""

    def __init__(self, base: BaseStepper, actor: SmallPolicy, composition: Composition, inputs: PolicyInputs,
                 sample_seed: int = 0, probe: ValueProbe | None = None) -> None:
        if actor.action_dim != base.action_dim:
            raise CohirlError(f"small policy acts in {actor.action_dim}-d but the base in {base.action_dim}-d.")
        if inputs.replan_every != base.replan_every:
            raise CohirlError(f"the small policy was trained with replan_every={inputs.replan_every} but the base "
                              f"re-plans every {base.replan_every} steps: use the run's base settings.")
        self.base, self.actor, self.composition, self.inputs = base, actor, composition, inputs
        self.last_base_action: np.ndarray | None = None  # a_b of the latest act() (diagnostics)
        self.action_dim = base.action_dim
        self._generator = torch.Generator().manual_seed(sample_seed)
        self.probe = probe

    def reset(self, seed: int) -> None:
        self.base.reset(seed)
        self._generator.manual_seed(seed)
        if self.probe is not None:
            self.probe.reset()

    def episode_diagnostics(self) -> dict[str, float]:
        """Columns the evaluation adds to this episode's row (none without a value probe)."""
        return self.probe.summary() if self.probe is not None else {}

    def lockstep(self, n: int) -> "LockstepComposedPolicy":
        """The same policy for ``n`` episodes stepped together (``cohirl.eval.rollout`` lockstep)."""
        lockstep_base = getattr(self.base, "lockstep", None)
        if lockstep_base is None:
            raise CohirlError(f"the base {type(self.base).__name__} cannot step episodes in lockstep: use lockstep 1.")
        probe = self.probe.learner if self.probe is not None else None
        return LockstepComposedPolicy(lockstep_base(n), self.actor, self.composition, self.inputs, probe)

    @torch.no_grad()
    def act(self, obs: Obs, deterministic: bool = True) -> np.ndarray:
        a_b = np.asarray(self.base.base_action(obs), dtype=np.float32)
        self.last_base_action = a_b
        x = torch.as_tensor(self.inputs.build(obs[STATE_KEY], obs[ENV_STATE_KEY], a_b, stepper_phase(self.base)))[None]
        dist = self.actor(x)
        small = dist.mode() if deterministic else torch.tanh(dist.rsample_pre_tanh(self._generator))
        base = torch.as_tensor(a_b)[None]
        executed = self.composition.compose(base, small, dist.std)
        if self.probe is not None:
            self.probe.observe(x, small, base, executed)
        return executed[0].numpy().astype(np.float32)


class LockstepComposedPolicy:
    """``ComposedPolicy`` over ``n`` episodes stepped together: one base call per re-plan and one
    small-policy (and value-probe) forward per step for every running episode. Mode actions only
    (evaluation); per episode the same columns as ``ComposedPolicy`` (``episode_diagnostics``)."""

    def __init__(self, base: Any, actor: SmallPolicy, composition: Composition, inputs: PolicyInputs,
                 probe_learner: Learner | None = None) -> None:
        self.base, self.actor, self.composition, self.inputs = base, actor, composition, inputs
        self.action_dim, self.n = base.action_dim, base.n
        self.learner = probe_learner
        self.reset([0] * self.n)

    def reset(self, seeds: Sequence[int]) -> None:
        self.base.reset(seeds)
        self.q_init = np.full(self.n, np.nan)
        self.learned_return, self.discount = np.zeros(self.n), 1.0

    def episode_diagnostics(self, row: int) -> dict[str, float]:
        if self.learner is None:
            return {}
        return {"q_init": float(self.q_init[row]), "learned_return": float(self.learned_return[row])}

    @torch.no_grad()
    def act(self, obs: Sequence[Obs], rows: Sequence[int], deterministic: bool = True) -> np.ndarray:
        """Executed actions (len(rows), action_dim) of the running rows; ``obs[i]`` is row ``rows[i]``'s."""
        if not deterministic:
            raise CohirlError("lockstep evaluation runs mode actions only (deterministic=True).")
        rows = list(rows)
        a_b = self.base.base_actions(obs, rows)
        step = np.full(len(rows), self.base.t - 1)
        x = torch.as_tensor(self.inputs.build(np.stack([o[STATE_KEY] for o in obs]),
                                              np.stack([o[ENV_STATE_KEY] for o in obs]), a_b, step))
        dist = self.actor(x)
        small = dist.mode()
        base = torch.as_tensor(a_b)
        executed = self.composition.compose(base, small, dist.std)
        if self.learner is not None:
            self._observe(rows, x, small, base, executed)
        return executed.numpy().astype(np.float32)

    def _observe(self, rows: list[int], x: torch.Tensor, small: torch.Tensor, base: torch.Tensor,
                 executed: torch.Tensor) -> None:
        """``ValueProbe.observe`` for every running row (all rows share the step, hence γᵗ)."""
        assert self.learner is not None
        if self.discount == 1.0:
            self.q_init[rows] = self.learner.critic(x, executed).min(dim=0).values.double().numpy()
        reward = self.learner.coherent_reward(x, small.clamp(-1 + 1e-6, 1 - 1e-6), base)
        self.learned_return[rows] += self.discount * reward.double().numpy()
        self.discount *= self.learner.cfg.gamma


@dataclass(frozen=True)
class ComposedPolicyFactory:
    """Picklable: ``base_factory`` (e.g. ``LerobotBaseFactory``) + path of an actor snapshot."""

    base_factory: Any
    snapshot: str

    def __call__(self) -> ComposedPolicy:
        actor, composition, inputs, probe = load_snapshot(Path(self.snapshot))
        return ComposedPolicy(self.base_factory(), actor, composition, inputs, probe=probe)


def snapshot_factory(base_factory: Any, path: Path) -> ComposedPolicyFactory:
    return ComposedPolicyFactory(base_factory, os.fspath(path))
