"""dvc.yaml must list every `cohirl` file and params section a stage uses, so DVC reruns it when they change.

Each stage's closure is derived statically from its command: the notebook it executes (`cohirl
notebook NAME`) or the CLI subcommand's function (`cohirl demo-scaling` -> `cmd_demo_scaling`).
The walk is by symbol, not by module: importing a module runs its module-level code (so its file
counts, and so do the module-level imports it makes), but a function's own imports and calls count
only when that function is reached from the entry point. That keeps `cohirl/stages.py`, which holds
every stage's entry function, from dragging the finetuning code into the base stage. Module names
written as strings count as imports where the code holding them is reached (the task registry);
a package's lazy exports (`cohirl.eval`'s `__getattr__` table) resolve to the module named for
the symbol imported.

The dispatcher (`cohirl/cli.py`), the notebook runner (`cohirl/notebooks.py`) and the package's
`__init__` start a stage but do not shape its results, so they are not required (listing them would
rerun every stage whenever a subcommand is added).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from cohirl_imports import ROOT, WHOLE, import_targets, module_file

NOT_REQUIRED = {"cohirl/cli.py", "cohirl/notebooks.py", "cohirl/__init__.py"}
SECTION_READERS = {"stage_config": 1, "task_settings": 1}  # function -> index of its section argument
IMPORT = ""  # symbol marker: only a module's module-level code (WHOLE: everything in it)


@dataclass
class Module:
    name: str
    file: Path
    top: list[ast.stmt]  # module-level statements that run on import (defs excluded)
    defs: dict[str, ast.AST] = field(default_factory=dict)
    bindings: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (module, symbol)


@cache
def load_module(name: str) -> Module | None:
    path = module_file(name)
    if path is None:
        return None
    return _index(name, path, ast.parse(path.read_text()))


def _index(name: str, path: Path, tree: ast.Module) -> Module:
    mod = Module(name, path, [])
    is_pkg = path.name == "__init__.py"
    for stmt in tree.body:
        if _is_main_guard(stmt):  # runs as a script only, never on import
            continue
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            mod.defs[stmt.name] = stmt
            continue
        mod.top.append(stmt)
        mod.bindings.update(import_targets(stmt, name, is_pkg))
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            mod.defs.update({t.id: stmt for t in targets if isinstance(t, ast.Name)})
    return mod


def _is_main_guard(stmt: ast.stmt) -> bool:
    test = stmt.test if isinstance(stmt, ast.If) else None
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"


def _lazy_export(mod: Module, symbol: str) -> str | None:
    """The module a package's ``__getattr__`` table names for ``symbol`` (``{"name": "cohirl.x"}``)."""
    for stmt in mod.top:
        value = getattr(stmt, "value", None)
        if isinstance(value, ast.Dict):
            for key, target in zip(value.keys, value.values):
                if isinstance(key, ast.Constant) and key.value == symbol and isinstance(target, ast.Constant):
                    return str(target.value)
    return None


@dataclass
class Closure:
    """What a stage's entry point reaches: files and the params sections it reads."""

    files: set[str] = field(default_factory=set)
    sections: set[str] = field(default_factory=set)
    seen: set[tuple[str, str]] = field(default_factory=set)
    todo: list[tuple[str, str]] = field(default_factory=list)

    def add(self, module: str, symbol: str) -> None:
        if (module, symbol) not in self.seen:
            self.seen.add((module, symbol))
            self.todo.append((module, symbol))

    def walk(self, node: ast.AST, mod: Module, strings: bool = True) -> None:
        """Record what running ``node`` (a statement, function or class of ``mod``) reaches.

        ``strings=False`` for module-level code run on import: a module name held in a constant
        imports nothing until a function that uses it is reached, and an imported name counts
        where it is used. A function's own imports count as used."""
        is_pkg = mod.file.name == "__init__.py"
        for sub in ast.walk(node):
            if isinstance(sub, (ast.Import, ast.ImportFrom)):  # on import: binds; a name counts where used
                for module, symbol in import_targets(sub, mod.name, is_pkg).values():
                    self.add(module, symbol if strings else IMPORT)
            elif isinstance(sub, ast.Name) and sub.id in mod.defs:
                if strings or not isinstance(mod.defs[sub.id], (ast.Assign, ast.AnnAssign)):
                    self.add(mod.name, sub.id)  # (a module-level constant used on import ran already)
            elif isinstance(sub, ast.Name) and sub.id in mod.bindings:
                self.add(*mod.bindings[sub.id])
            elif strings and isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.startswith("cohirl."):
                if module_file(sub.value):
                    self.add(sub.value, WHOLE)
            elif isinstance(sub, ast.Call):
                self._section(sub)

    def _section(self, call: ast.Call) -> None:
        name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
        index = SECTION_READERS.get(name)
        if index is not None and len(call.args) > index and isinstance(call.args[index], ast.Constant):
            self.sections.add(str(call.args[index].value))

    def run(self) -> Closure:
        while self.todo:
            module, symbol = self.todo.pop()
            self._visit(module, symbol)
        return self

    def _visit(self, module: str, symbol: str) -> None:
        mod = load_module(module)
        if mod is None:
            return
        parts = module.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            self.add(".".join(parts[:i]), IMPORT)
        rel = str(mod.file.relative_to(ROOT))
        if rel not in self.files:
            self.files.add(rel)
            for stmt in mod.top:
                self.walk(stmt, mod, strings=False)
        if symbol == WHOLE:
            for node in mod.defs.values():
                self.walk(node, mod)
        elif symbol in mod.defs:
            self.walk(mod.defs[symbol], mod)
        elif symbol in mod.bindings:  # a name re-exported by a package's __init__
            self.add(*mod.bindings[symbol])
        elif symbol not in (WHOLE, IMPORT) and "__getattr__" in mod.defs:
            lazy = _lazy_export(mod, symbol)
            self.add(lazy, symbol) if lazy else self.walk(mod.defs["__getattr__"], mod)


def entry_closure(cmd: str) -> tuple[Closure, str]:
    """The closure of a stage's command, and the notebook it runs ('' for a CLI subcommand)."""
    closure = Closure()
    notebook = re.match(r"cohirl notebook (\S+)", cmd)
    if notebook:
        path = ROOT / "notebooks" / f"{notebook.group(1)}.py"
        mod = _index("notebook", path, ast.parse(path.read_text()))
        for stmt in mod.top:
            closure.walk(stmt, mod)
        return closure.run(), str(path.relative_to(ROOT))
    sub = re.match(r"cohirl ([\w-]+)", cmd)
    assert sub, f"unrecognised stage command {cmd!r}"
    cli = load_module("cohirl.cli")
    assert cli is not None
    closure.add("cohirl.cli", f"cmd_{sub.group(1).replace('-', '_')}")
    assert f"cmd_{sub.group(1).replace('-', '_')}" in cli.defs, f"no CLI function for {cmd!r}"
    return closure.run(), ""


def _stages() -> dict[str, dict]:
    """dvc.yaml's stage bodies (the ``do`` of a ``foreach`` stage)."""
    return {name: body.get("do", body) for name, body in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def missing_inputs(stage: dict) -> list[str]:
    """Files and params sections a stage uses that its dvc.yaml entry does not list."""
    closure, notebook = entry_closure(" ".join(stage["cmd"].split()))
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    files = closure.files - NOT_REQUIRED | ({notebook} if notebook else set())
    missing = sorted(p for p in files if not _covered(p, deps))
    params = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
    missing += sorted(f"params profiles.${{item.profile}}.{s}" for s in closure.sections
                      if f"profiles.${{item.profile}}.{s}" not in params)
    if closure.sections and "task_params.${item.task}" not in params and "${item.task}" in stage["cmd"]:
        missing.append("params task_params.${item.task}")
    return missing


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_lists_every_file_and_params_section_it_uses(name: str) -> None:
    missing = missing_inputs(_stages()[name])
    assert not missing, f"dvc.yaml stage {name!r} uses {missing} but does not list them: add them to its deps/params"


def test_closure_is_by_function_not_by_module() -> None:
    base, _ = entry_closure("cohirl notebook 02_base_policy")
    assert {"cohirl/stages.py", "cohirl/policies/train_base.py", "cohirl/demos/dataset.py"} <= base.files
    assert "cohirl/envs/robosuite/tasks.py" in base.files  # named as a string by the task registry
    assert not any(f.startswith(("cohirl/training/", "cohirl/csil/")) for f in base.files)
    assert {"base", "eval"} <= base.sections and "finetune" not in base.sections
    finetune, _ = entry_closure("cohirl notebook 04_finetune")
    assert "cohirl/training/loop.py" in finetune.files and "finetune" in finetune.sections


def test_a_dropped_dependency_or_params_section_is_found() -> None:
    stage = dict(_stages()["base"])
    stage["deps"] = [d for d in stage["deps"] if d != "cohirl/stages.py"]
    stage["params"] = [p for p in stage["params"] if p != "profiles.${item.profile}.eval"]
    assert missing_inputs(stage) == ["cohirl/stages.py", "params profiles.${item.profile}.eval"]
