"""Can the off-policy learner improve a policy at all? A one-step residual-correction problem.

The base is off by ``offset`` (in units of the residual scale κ) in every action dimension, and an
action succeeds when it is within ``tol``·κ of the target in every dimension, so the base never
succeeds and the residual must learn δ = −offset from the sparse reward (plus demonstration rows, as
the finetuning loop gives). Runs the learner of a registered method (``cohirl.methods``) with
the given overrides and prints the deterministic success on fixed evaluation states over training.

    python scripts/learner_sanity.py --method sparse_residual --steps 3000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from cohirl.csil.learner import Learner
from cohirl.csil.replay import ReplayBuffer
from cohirl.methods import build_method

OBS_DIM, ACTION_DIM = 4, 2
# The quick profile's learner sizes, one update per env step, a short warm-up and critic-only phase.
QUICK_OVERRIDES = {"warmup_steps": 200, "critic_only_updates": 200, "utd": 1, "n_step": 1, "demo_batch_size": 64,
                   "replay_batch_size": 64, "hetstat_features": 64, "policy_hidden": (128, 128),
                   "critic_hidden": (128, 128)}


class Bandit:
    def __init__(self, kappa: float, offset: float, tol: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=(OBS_DIM, ACTION_DIM)).astype(np.float32) / 2
        self.kappa, self.offset, self.tol = kappa, offset, tol

    def target(self, s: np.ndarray) -> np.ndarray:
        return 0.5 * np.tanh(s @ self.w)

    def base(self, s: np.ndarray) -> np.ndarray:
        sign = np.where(s[..., :ACTION_DIM] >= 0, 1.0, -1.0).astype(np.float32)
        return self.target(s) + self.offset * self.kappa * sign

    def success(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        return (np.abs(a - self.target(s)) < self.tol * self.kappa).all(axis=-1)


def run(method: str, steps: int, seed: int, offset: float, tol: float, overrides: dict, eval_every: int) -> list:
    cfg, composition = build_method(method, overrides)
    torch.manual_seed(seed)
    env = Bandit(composition.kappa, offset, tol, seed)
    learner = Learner(cfg, composition, OBS_DIM, ACTION_DIM, seed=seed)
    rng = np.random.default_rng(seed + 1)
    demos, replay = (ReplayBuffer(max(steps, 1000), OBS_DIM, ACTION_DIM, gamma=cfg.gamma) for _ in range(2))
    for s in rng.uniform(-1, 1, size=(500, OBS_DIM)).astype(np.float32):
        a_b, a = env.base(s), env.target(s)
        demos.add(obs=s, policy_action=np.clip((a - a_b) / composition.kappa, -0.999, 0.999), base_action=a_b,
                  action=a, reward=1.0, terminated=True, truncated=False, next_obs=s, next_base_action=a_b)
    eval_states = rng.uniform(-1, 1, size=(200, OBS_DIM)).astype(np.float32)
    curve = []
    for step in range(steps + 1):
        if step % eval_every == 0:
            executed, _ = learner.act(eval_states, env.base(eval_states), deterministic=True)
            curve.append((step, float(env.success(eval_states, executed).mean())))
            print(f"{method} step {step:6d}: success {curve[-1][1]:.2f}", flush=True)
        s = rng.uniform(-1, 1, size=OBS_DIM).astype(np.float32)
        a_b = env.base(s)
        executed, u = learner.act(s, a_b)
        r = float(env.success(s, executed))
        replay.add(obs=s, policy_action=u, base_action=a_b, action=executed, reward=r, terminated=True,
                   truncated=False, next_obs=s, next_base_action=a_b)
        if len(replay) >= cfg.warmup_steps:
            for _ in range(cfg.utd):
                learner.update(demos.sample(cfg.demo_batch_size, rng), replay.sample(cfg.replay_batch_size, rng))
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--method", default="sparse_residual")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--offset", type=float, default=0.5, help="base error per dimension, in units of κ")
    p.add_argument("--tol", type=float, default=0.25, help="success tolerance per dimension, in units of κ")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = p.parse_args()
    import yaml

    overrides: dict = dict(QUICK_OVERRIDES)
    for text in args.set:
        key, _, value = text.partition("=")
        overrides[key] = float(value) if "e-" in value else yaml.safe_load(value)  # YAML 1.1 reads 3e-4 as text
    torch.set_num_threads(1)
    run(args.method, args.steps, args.seed, args.offset, args.tol, overrides, args.eval_every)


if __name__ == "__main__":
    main()
