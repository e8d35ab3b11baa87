"""The deployed agent: frozen base stepper + small policy, composed (residual or ensemble).

``ComposedPolicy`` is what evaluation runs; ``ComposedPolicyFactory`` is its picklable recipe (base
directory + a saved actor snapshot), so evaluation workers can rebuild it in their own process.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cohirl.csil.config import LearnerConfig
from cohirl.csil.learner import Learner
from cohirl.csil.networks import make_policy
from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, Obs
from cohirl.errors import CohirlError
from cohirl.policies.compose import Composition
from cohirl.policies.interfaces import BaseStepper
from cohirl.policies.small import SmallPolicy
from cohirl.training.checkpoint import save_checkpoint


def policy_input(state: np.ndarray, env_state: np.ndarray, base_action: np.ndarray, see_base: bool) -> np.ndarray:
    """The small policy's observation: [state, environment_state(, a_b)] (raw; networks normalise)."""
    parts = [state, env_state, base_action] if see_base else [state, env_state]
    return np.concatenate(parts, axis=-1).astype(np.float32)


def save_actor_snapshot(learner: Learner, path: Path, see_base: bool) -> Path:
    """Only what acting needs: the actor's weights, its config and the composition."""
    snapshot = {"actor": learner.actor.state_dict(), "config": learner.cfg.to_dict(),
                "composition": asdict(learner.composition), "obs_dim": learner.obs_dim,
                "action_dim": learner.action_dim, "see_base": see_base, "env_steps": 0}
    return save_checkpoint(snapshot, path)


def load_actor(path: Path) -> tuple[SmallPolicy, Composition, bool]:
    snap = torch.load(path, map_location="cpu", weights_only=False)
    cfg_dict = dict(snap["config"])
    for key in ("critic_hidden", "policy_hidden"):
        cfg_dict[key] = tuple(cfg_dict[key])
    actor = make_policy(LearnerConfig(**cfg_dict), int(snap["obs_dim"]), int(snap["action_dim"]))
    actor.load_state_dict(snap["actor"])
    actor.eval()
    return actor, Composition(**snap["composition"]), bool(snap["see_base"])


class ComposedPolicy:
    """a = compose(a_b(t), small policy(s, a_b)); mode actions when ``deterministic``."""

    def __init__(self, base: BaseStepper, actor: SmallPolicy, composition: Composition, see_base: bool,
                 sample_seed: int = 0) -> None:
        if actor.action_dim != base.action_dim:
            raise CohirlError(f"small policy acts in {actor.action_dim}-d but the base in {base.action_dim}-d.")
        self.base, self.actor, self.composition, self.see_base = base, actor, composition, see_base
        self.action_dim = base.action_dim
        self._generator = torch.Generator().manual_seed(sample_seed)

    def reset(self, seed: int) -> None:
        self.base.reset(seed)
        self._generator.manual_seed(seed)

    @torch.no_grad()
    def act(self, obs: Obs, deterministic: bool = True) -> np.ndarray:
        a_b = np.asarray(self.base.base_action(obs), dtype=np.float32)
        x = torch.as_tensor(policy_input(obs[STATE_KEY], obs[ENV_STATE_KEY], a_b, self.see_base))[None]
        dist = self.actor(x)
        small = dist.mode() if deterministic else torch.tanh(dist.rsample_pre_tanh(self._generator))
        executed = self.composition.compose(torch.as_tensor(a_b)[None], small, dist.std)
        return executed[0].numpy().astype(np.float32)


@dataclass(frozen=True)
class ComposedPolicyFactory:
    """Picklable: ``base_factory`` (e.g. ``LerobotBaseFactory``) + path of an actor snapshot."""

    base_factory: Any
    snapshot: str

    def __call__(self) -> ComposedPolicy:
        actor, composition, see_base = load_actor(Path(self.snapshot))
        return ComposedPolicy(self.base_factory(), actor, composition, see_base)


def snapshot_factory(base_factory: Any, path: Path) -> ComposedPolicyFactory:
    return ComposedPolicyFactory(base_factory, os.fspath(path))
