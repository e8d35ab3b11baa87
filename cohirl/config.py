"""One config system: dataclasses filled from ``params.yaml``.

``params.yaml`` holds the profiles (``smoke``, ``quick``, ``paper``) and per-task overrides. The
active profile is the top-level ``profile`` key; ``tasks``/``seeds``/``methods`` at the top level
mirror the active profile so DVC's ``matrix`` can expand over them (``cohirl profile NAME`` switches
and rewrites them; a mismatch is reported with that fix).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cohirl.errors import CohirlError

T = TypeVar("T")
PARAMS_FILE = Path("params.yaml")
MATRIX_KEYS = ("tasks", "seeds", "methods")


def read_params(path: Path | None = None) -> dict[str, Any]:
    path = Path(path or os.environ.get("COHIRL_PARAMS", PARAMS_FILE))
    if not path.exists():
        raise CohirlError(f"no params file at {path.resolve()}: run from the repository root.")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CohirlError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict) or "profiles" not in params:
        raise CohirlError(f"{path} must be a mapping with a 'profiles' section.")
    return params


def profile_section(params: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """The named (or active) profile's settings."""
    name = profile or params.get("profile")
    profiles = params["profiles"]
    if name not in profiles:
        raise CohirlError(f"unknown profile {name!r}; params.yaml defines {sorted(profiles)}.")
    return dict(profiles[name])


def check_matrix_in_sync(params: dict[str, Any]) -> None:
    section = profile_section(params)
    stale = [k for k in MATRIX_KEYS if params.get(k) != section.get(k)]
    if stale:
        raise CohirlError(f"params.yaml top-level {stale} differ from profile {params['profile']!r}. "
                          f"Run `cohirl profile {params['profile']}` to sync them.")


def task_settings(params: dict[str, Any], stage: str, task: str | None = None,
                  profile: str | None = None) -> dict[str, Any]:
    """A stage's settings: the profile's section, overridden by ``task_params.<task>.<stage>``."""
    merged = copy.deepcopy(profile_section(params, profile).get(stage, {}) or {})
    overrides = ((params.get("task_params") or {}).get(task or "", {}) or {}).get(stage, {}) or {}
    return _deep_merge(merged, overrides)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types fail with the key's name."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise CohirlError(f"params {where or cls.__name__}: unknown keys {unknown}; valid: {sorted(fields)}.")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return value if value is None else _coerce(options[0], value, where)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    base = origin or hint
    if isinstance(base, type) and base is not typing.Any and not isinstance(value, base):
        raise CohirlError(f"params {where}: expected {getattr(base, '__name__', base)}, got {value!r}.")
    return value


def set_profile(name: str, path: Path | None = None) -> dict[str, Any]:
    """Switch the active profile and rewrite the matrix keys (keeps comments above `profiles:`)."""
    path = Path(path or PARAMS_FILE)
    params = read_params(path)
    section = profile_section(params, name)
    text = path.read_text()
    head, sep, tail = text.partition("\n# ---- profiles")
    if not sep:
        raise CohirlError(f"{path}: missing the '# ---- profiles' marker line that separates the header.")
    header = {"profile": name, **{k: section[k] for k in MATRIX_KEYS}}
    lines = [ln for ln in head.splitlines() if not ln.split(":")[0] in ("profile", *MATRIX_KEYS)]
    new_head = "\n".join(lines).rstrip() + "\n" + yaml.safe_dump(header, sort_keys=False, default_flow_style=None)
    path.write_text(new_head.rstrip() + "\n" + sep + tail)
    return read_params(path)
