"""Atomic writes for result files: a temporary sibling, then a rename (never a half-written file)."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable
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


def write_dvclive(points: Iterable[tuple[str, int, float]], out: Path) -> Path:
    """Log ``(metric name, step, value)`` points with dvclive into ``out``: one
    ``plots/metrics/<name>.tsv`` per metric (``step`` and the value, in the order given; no timestamps,
    so the same points give the same bytes) and ``metrics.json`` (each metric's last value, and the
    largest step). Non-finite values are left out. Written beside ``out``, then renamed into place."""
    from dvclive import Live

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    last = 0
    with Live(dir=str(tmp), save_dvc_exp=False, dvcyaml=False, report=None) as live:
        for name, step, value in points:
            if math.isfinite(value):
                live.step, last = step, max(last, step)
                live.log_metric(name, value)
        live.step = last
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


def read_dvclive(out: Path, prefix: str) -> pd.DataFrame:
    """The metrics ``write_live`` wrote under ``out/plots/metrics/<prefix>/``, one column each, joined
    on ``step`` (NaN where a metric was not logged at a step)."""
    folder = Path(out) / "plots" / "metrics" / prefix
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"no dvclive metrics under {folder}: run the stage that writes them")
    table = pd.concat([pd.read_csv(f, sep="\t").set_index("step") for f in files], axis=1)
    return table.sort_index().reset_index()


_ARRAY_KEY = "__ndarray__"


def _plain(obj: Any) -> Any:
    """``obj`` with every numpy array as a tensor tagged ``{_ARRAY_KEY: tensor}``: what ``torch.load``
    reads with ``weights_only=True`` (tensors, numbers, strings and plain containers), nothing pickled."""
    import numpy as np
    import torch

    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("an object array cannot be saved as data")
        return {_ARRAY_KEY: torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return type(obj)((key, _plain(value)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(value) for value in obj)
    return obj


def _unplain(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1 and _ARRAY_KEY in obj:
            return obj[_ARRAY_KEY].numpy()
        return type(obj)((key, _unplain(value)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unplain(value) for value in obj)
    return obj


def save_torch(state: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to a temporary sibling, then a rename: a kill leaves the old file or the new one.
    Numpy arrays travel as tensors, so that ``load_torch`` never needs to unpickle an object."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(_plain(state), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (disk full) leaves the previous file as it was
    return path


def load_torch(path: Path, what: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A checkpoint written by ``save_torch``; a missing, corrupt or foreign file fails with one message.

    Read with ``weights_only=True``: a file that carries pickled Python objects (which could run code
    while being read) is refused, never executed."""
    import pickle

    import torch

    from cohirl.errors import CohirlError

    path = Path(path)
    if not path.exists():
        raise CohirlError(f"no {what} at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise CohirlError(f"{what} {path} holds pickled Python objects, not only tensors and plain data: "
                              "refused, since reading it could run code. cohirl never writes such a file; "
                              "use a checkpoint made by cohirl (or delete this one to restart).") from None
        raise CohirlError(f"{what} {path} is corrupt (UnpicklingError: {exc}). "
                          "Delete it to restart from scratch.") from exc
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        raise CohirlError(f"{what} {path} is corrupt ({type(exc).__name__}: {exc}). "
                          "Delete it to restart from scratch.") from exc
    if not isinstance(state, dict) or any(key not in state for key in required):
        raise CohirlError(f"{path} is not a cohirl {what}. Delete it to restart from scratch.")
    return _unplain(state)
