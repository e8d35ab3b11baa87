"""Atomic writes for result files: a temporary sibling, then a rename (never a half-written file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def write_text(text: str, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json(obj: Any, path: Path, sort_keys: bool = False) -> Path:
    return write_text(json.dumps(obj, indent=2, default=str, sort_keys=sort_keys), path)


def save_torch(state: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to a temporary sibling, then a rename: a kill leaves the old file or the new one."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (disk full) leaves the previous file as it was
    return path


def load_torch(path: Path, what: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A checkpoint written by ``save_torch``; a missing, corrupt or foreign file fails with one message."""
    import torch

    from cohirl.errors import CohirlError

    path = Path(path)
    if not path.exists():
        raise CohirlError(f"no {what} at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        raise CohirlError(f"{what} {path} is corrupt ({type(exc).__name__}: {exc}). "
                          "Delete it to restart from scratch.") from exc
    if not isinstance(state, dict) or any(key not in state for key in required):
        raise CohirlError(f"{path} is not a cohirl {what}. Delete it to restart from scratch.")
    return state
