"""Baselines built on the shared learner (the sparse-reward residual recipe)."""

from cohirl.baselines.sparse_residual import sparse_residual_composition, sparse_residual_config

__all__ = ["sparse_residual_composition", "sparse_residual_config"]
