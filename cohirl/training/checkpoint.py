"""Atomic checkpoints: write to a temporary file in the same directory, then rename over the old one.

A killed process therefore leaves either the previous complete checkpoint or the new complete one,
never a half-written file that a resumed run would load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cohirl.io import load_torch, save_torch

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    return save_torch(state, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return load_torch(path, "training checkpoint", required=("env_steps",))


def rng_state(np_rng: Any) -> dict[str, Any]:
    """The loop's own RNG states (the learner saves its torch generators in its state_dict)."""
    return {"numpy": np_rng.bit_generator.state, "torch_global": torch.get_rng_state()}


def restore_rng(state: dict[str, Any], np_rng: Any) -> None:
    np_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch_global"])
