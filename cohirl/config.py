"""One config system: dataclasses filled from ``params.yaml``.

``params.yaml`` holds the profiles (``smoke``, ``quick``, ``effect``, ``paper``) and per-task
overrides. Its header is generated (``cohirl profile NAME``, ``cohirl.wiring.set_profile``):
``profile`` is the default profile of commands run without one; ``pipelines`` lists the profiles whose
stages ``dvc.yaml`` holds side by side (one DVC ``matrix`` stage per template and profile, over the
profile's own tasks/methods/seeds), each writing under ``data/<profile>/`` and ``results/<profile>/``,
so that switching profiles never touches another profile's rows or ``dvc.lock`` entries.
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


def profile_name(params: dict[str, Any], profile: str | None = None) -> str:
    """``profile`` checked against params.yaml's profiles, or the default (header) profile."""
    name = profile or params.get("profile")
    profile_section(params, name)
    return str(name)


def profile_runs(section: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(task, method, seed) of a profile: tasks × methods × seeds, plus ``extra_runs`` (e.g. ablations
    on one task: ``[{task: t, methods: [...]}]``, over the profile's seeds unless it names its own)."""
    runs = [(t, m, int(s)) for t in section["tasks"] for m in section["methods"] for s in section["seeds"]]
    for i, extra in enumerate(section.get("extra_runs") or []):
        if extra.get("task") not in section["tasks"]:
            raise CohirlError(f"extra_runs task {extra.get('task')!r} is not one of the profile's tasks "
                              f"{section['tasks']}: add it to tasks or fix the name.")
        added = [(extra["task"], m, int(s)) for m in extra["methods"] for s in extra.get("seeds", section["seeds"])]
        if twice := sorted({m for t, m, s in added if (t, m, s) in runs}):
            raise CohirlError(f"extra_runs[{i}] repeats runs of the profile's methods {twice} on "
                              f"{extra['task']!r}: list only methods not in methods (one stage per run).")
        runs += added
    return runs


def task_settings(params: dict[str, Any], stage: str, task: str | None = None,
                  profile: str | None = None) -> dict[str, Any]:
    """A stage's settings: the profile's section, overridden by ``task_params.<task>.<stage>`` (every
    profile), then by the section's own ``per_task.<task>`` (this profile only, e.g. a smaller budget
    on a slow simulator)."""
    merged = copy.deepcopy(profile_section(params, profile).get(stage, {}) or {})
    per_task = merged.pop("per_task", None) or {}
    unknown = sorted(set(per_task) - set(params.get("task_params") or {}))
    if unknown:
        raise CohirlError(f"params {stage}.per_task names unknown tasks {unknown}; use task names from task_params.")
    overrides = ((params.get("task_params") or {}).get(task or "", {}) or {}).get(stage, {}) or {}
    return _deep_merge(_deep_merge(merged, copy.deepcopy(overrides)), copy.deepcopy(per_task.get(task or "", {}) or {}))


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


class _Unset:
    """A field an overrides dataclass leaves as its target's default (``None`` can be a real value)."""

    _instance: "_Unset | None" = None

    def __new__(cls) -> "_Unset":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __deepcopy__(self, memo: dict[int, Any]) -> "_Unset":
        return self

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
_OVERRIDES: dict[type, type] = {}


def overrides_of(cls: type) -> type:
    """A frozen dataclass with ``cls``'s fields, each typed as in ``cls`` and ``UNSET`` by default: the
    typed form of a ``params.yaml`` section that overrides some fields of ``cls`` (``set_fields``
    gives them back as a mapping). Unknown keys fail when params are read, naming the valid ones."""
    if cls not in _OVERRIDES:
        hints = typing.get_type_hints(cls)
        fields = [(f.name, hints[f.name], dataclasses.field(default=UNSET)) for f in dataclasses.fields(cls)]
        made = dataclasses.make_dataclass(f"{cls.__name__}Overrides", fields, frozen=True,
                                          namespace={"__doc__": f"Fields of {cls.__name__} to override (UNSET: keep)."})
        made.__module__ = cls.__module__
        made.target = cls  # type: ignore[attr-defined]
        _OVERRIDES[cls] = made
    return _OVERRIDES[cls]


def set_fields(overrides: Any) -> dict[str, Any]:
    """The fields an overrides dataclass (``overrides_of``) sets, as a mapping."""
    return {f.name: getattr(overrides, f.name) for f in dataclasses.fields(overrides)
            if getattr(overrides, f.name) is not UNSET}


def to_record(config: Any) -> Any:
    """A config dataclass as plain data (dicts, lists, scalars), leaving out the fields an overrides
    dataclass does not set: what run records and checkpoint fingerprints store."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_record(getattr(config, f.name)) for f in dataclasses.fields(config)
                if getattr(config, f.name) is not UNSET}
    if isinstance(config, dict):
        return {k: to_record(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_record(v) for v in config]
    return config


def as_overrides(cls: type, value: Any, where: str) -> Any:
    """``value`` (a mapping, or already ``overrides_of(cls)``) as ``overrides_of(cls)``."""
    kind = overrides_of(cls)
    return value if isinstance(value, kind) else from_dict(kind, value, where)


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
    if dataclasses.is_dataclass(hint) and isinstance(value, dict | type(None)):
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return value if value is None else _coerce(options[0], value, where)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin is dict and isinstance(value, dict):
        _, value_hint = typing.get_args(hint) or (Any, Any)
        return {k: _coerce(value_hint, v, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    base = origin or hint
    if isinstance(base, type) and base is not typing.Any and not isinstance(value, base):
        raise CohirlError(f"params {where}: expected {getattr(base, '__name__', base)}, got {value!r}.")
    return value
