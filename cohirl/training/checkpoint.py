"""Atomic checkpoints: write to a temporary file in the same directory, then rename over the old one.

A killed process therefore leaves either the previous complete checkpoint or the new complete one,
never a half-written file that a resumed run would load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cohirl.errors import CohirlError

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CohirlError(f"no checkpoint at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        raise CohirlError(f"checkpoint {path} is corrupt ({type(exc).__name__}: {exc}). "
                          "Delete it to restart the run from scratch.") from exc
    if not isinstance(state, dict) or "env_steps" not in state:
        raise CohirlError(f"checkpoint {path} is not a cohirl training checkpoint. Delete it to restart.")
    return state


def rng_state(np_rng: Any) -> dict[str, Any]:
    """The loop's own RNG states (the learner saves its torch generators in its state_dict)."""
    return {"numpy": np_rng.bit_generator.state, "torch_global": torch.get_rng_state()}


def restore_rng(state: dict[str, Any], np_rng: Any) -> None:
    np_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch_global"])
