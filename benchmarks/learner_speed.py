"""Learner updates per second on synthetic batches, at the quick and the paper profiles' sizes.

One torch thread (as every stage runs). Prints ms per ``Learner.update`` for CSIL (coherent reward,
refinement, KL actor) and the sparse residual baseline, and the aten calls per update that
``torch.profiler`` records (every ``aten::`` event, nested ones included: the dispatch work). With
``--sections``, also where an update's time goes: ms per update in each phase of ``Learner.update``
(the policy forwards at s and s', the reward's log q_φ, the TD target, the critic step, the reward
refinement, the actor step), timed by wrapping the learner's methods over the same updates. Compare two versions of the code by running
it on each (the numbers depend on the machine's load: run nothing else beside it).

    python benchmarks/learner_speed.py --updates 200
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import torch

from cohirl import _runtime
from cohirl.methods import build_method
from cohirl.csil.pretrain import build_learner
from cohirl.csil.replay import DemoEpisode, demo_buffer
from finetune_speed import timed  # wraps a method to add up its wall time

SIZES = {
    "quick": {"hetstat_features": 64, "policy_hidden": (128, 128), "critic_hidden": (128, 128), "batch": 64},
    "paper": {"hetstat_features": 256, "policy_hidden": (256, 256), "critic_hidden": (256, 256), "batch": 256},
}


def synthetic_demos(obs_dim: int, action_dim: int, composition: object, frames: int = 4000) -> object:
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(frames // 100):
        obs = rng.normal(size=(101, obs_dim)).astype(np.float32)
        base = np.tanh(rng.normal(size=(101, action_dim))).astype(np.float32) * 0.5
        action = np.clip(base[:-1] + 0.1 * rng.normal(size=(100, action_dim)), -1, 1).astype(np.float32)
        episodes.append(DemoEpisode(obs, base, action, success=True))
    return demo_buffer(episodes, composition)


SECTIONS = ("_policies_at", "_reward_log_q", "td_target", "critic_step", "_reward_step", "_actor_step")


def ms_per_update(method: str, size: str, updates: int, obs_dim: int = 61, action_dim: int = 7,
                  sections: dict[str, float] | None = None) -> tuple[float, float]:
    """(ms per update, aten calls per update) on synthetic batches at the named sizes; ``sections``,
    when given, receives the ms per update spent in each of ``SECTIONS``."""
    s = SIZES[size]
    overrides = {k: v for k, v in s.items() if k != "batch"}
    overrides.update(demo_batch_size=s["batch"], replay_batch_size=s["batch"], bc_steps=0, pretrain_critic=False,
                     critic_only_updates=0, utd=1)
    cfg, composition = build_method(method, overrides)
    demos = synthetic_demos(obs_dim, action_dim, composition)
    learner, _ = build_learner(cfg, composition, demos, seed=0)
    rng = np.random.default_rng(1)
    batches = [(demos.sample(s["batch"], rng), demos.sample(s["batch"], rng)) for _ in range(updates + 10)]
    for demo_batch, replay_batch in batches[:10]:  # warm-up
        learner.update(demo_batch, replay_batch)
    totals: dict[str, float] = defaultdict(float)
    if sections is not None:
        for name in SECTIONS:
            timed(learner, name, totals, name)
    start = time.perf_counter()
    for demo_batch, replay_batch in batches[10:]:
        learner.update(demo_batch, replay_batch)
    ms = 1000 * (time.perf_counter() - start) / updates
    if sections is not None:
        sections.update({name: 1000 * totals[name] / updates for name in SECTIONS})
    return ms, aten_calls_per_update(learner, batches[:5])


def aten_calls_per_update(learner: object, batches: list[tuple[object, object]]) -> float:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for demo_batch, replay_batch in batches:
            learner.update(demo_batch, replay_batch)  # type: ignore[attr-defined]
    return sum(1 for event in prof.events() if event.name.startswith("aten::")) / len(batches)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--sizes", nargs="+", default=["quick", "paper"])
    p.add_argument("--methods", nargs="+", default=["csil_residual", "csil_ensemble", "sparse_residual"])
    p.add_argument("--sections", action="store_true", help="also print ms per update in each phase of the update")
    args = p.parse_args()
    _runtime.configure_torch(1)
    for size in args.sizes:
        for method in args.methods:
            sections: dict[str, float] | None = {} if args.sections else None
            ms, calls = ms_per_update(method, size, args.updates if size == "quick" else max(20, args.updates // 5),
                                      sections=sections)
            print(f"{size:6s} {method:18s} {ms:7.1f} ms/update  {1000 / ms:6.1f} updates/s  "
                  f"{calls:6.0f} aten calls/update", flush=True)
            if sections:
                print("       " + "  ".join(f"{name.strip('_')} {t:.2f}" for name, t in sections.items() if t > 0)
                      + f"  (ms per update; the rest {ms - sum(sections.values()):.2f})", flush=True)


if __name__ == "__main__":
    main()
