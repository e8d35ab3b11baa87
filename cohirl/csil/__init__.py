"""CSIL over a frozen base: config, networks, pure losses, pretraining and the learner.

Typical use (the env loop lives elsewhere)::

    cfg, comp = build_method("csil_ensemble")           # cohirl.methods: the named methods
    demos = demo_buffer(episodes, comp, cfg.n_step, cfg.gamma)
    learner, metrics = build_learner(cfg, comp, demos, seed)
    action, u = learner.act(obs, a_b)                 # per env step; store u in the replay
    metrics = learner.update(demos.sample(256, rng), replay.sample(256, rng))
"""

from cohirl.csil.config import R_MAX, LearnerConfig
from cohirl.csil.learner import Learner
from cohirl.csil.pretrain import bc_pretrain, build_learner, pretrain_critic

__all__ = ["R_MAX", "Learner", "LearnerConfig", "bc_pretrain", "build_learner", "pretrain_critic"]
