"""Which ``cohirl`` files and ``params.yaml`` sections each DVC stage uses, derived from its command,
so that ``dvc.yaml`` lists exactly what makes a stage rerun (``cohirl wiring --write`` rewrites each
stage's code dependencies; ``tests/test_dvc_wiring.py`` fails when they drift).

Each stage's closure is derived statically from its command: the notebook it executes (`cohirl
notebook NAME`) or the CLI subcommand's function (`cohirl demo-scaling` -> `cmd_demo_scaling`).
The walk is by symbol, not by module: importing a module runs its module-level code (so its file
counts, and so do the module-level imports it makes), but a function's own imports and calls count
only when that function is reached from the entry point. Module names written as strings count as
imports where the code holding them is reached (the task registry); a package's lazy exports
(``cohirl.stages``' and ``cohirl.eval``'s ``__getattr__`` tables) resolve to the module named for the
symbol imported. Files are what DVC hashes, so each stage has a module of its own under
``cohirl/stages/``.

The dispatcher (``cohirl/cli.py``), the notebook runner (``cohirl/notebooks.py``) and the package's
``__init__`` start a stage but do not shape its results, so they are not listed (listing them would
rerun every stage whenever a subcommand is added).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from cohirl.errors import CohirlError

ROOT = Path(__file__).resolve().parents[1]
WHOLE = "*"  # symbol marker: the import names a module, not a symbol in it
IMPORT = ""  # symbol marker: only a module's module-level code
NOT_REQUIRED = {"cohirl/cli.py", "cohirl/notebooks.py", "cohirl/__init__.py"}
SECTION_READERS = {"stage_config": 1, "task_settings": 1}  # function -> index of its section argument


def module_file(module: str) -> Path | None:
    path = ROOT / module.replace(".", "/")
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def resolve_from(node: ast.ImportFrom, current: str, is_pkg: bool) -> str:
    """The absolute module of ``from <node> import ...`` written in module ``current``."""
    if not node.level:
        return node.module or ""
    parts = current.split(".")[: len(current.split(".")) - node.level + (1 if is_pkg else 0)]
    return ".".join(parts + ([node.module] if node.module else []))


def import_targets(node: ast.AST, current: str, is_pkg: bool) -> dict[str, tuple[str, str]]:
    """Local name -> (module, symbol) for an import statement's ``cohirl`` names (symbol WHOLE: a module)."""
    out: dict[str, tuple[str, str]] = {}
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.name.split(".")[0] == "cohirl":
                out[a.asname or a.name.split(".")[0]] = (a.name, WHOLE)
    elif isinstance(node, ast.ImportFrom):
        base = resolve_from(node, current, is_pkg)
        if base.split(".")[0] == "cohirl":
            for a in node.names:
                sub = f"{base}.{a.name}"
                out[a.asname or a.name] = (sub, WHOLE) if module_file(sub) else (base, a.name)
    return out


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


def stage_bodies(dvc_yaml: Path | None = None) -> dict[str, dict]:
    """dvc.yaml's stage bodies (the ``do`` of a ``foreach`` stage)."""
    return stage_bodies_from_text(Path(dvc_yaml or ROOT / "dvc.yaml").read_text())


def stage_bodies_from_text(text: str) -> dict[str, dict]:
    return {name: body.get("do", body) for name, body in yaml.safe_load(text)["stages"].items()}


def _deps(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def code_files(stage: dict) -> set[str]:
    """The ``cohirl`` files a stage's command runs (the notebook apart)."""
    closure, _ = entry_closure(" ".join(stage["cmd"].split()))
    return closure.files - NOT_REQUIRED


def code_deps(stage: dict) -> list[str]:
    """``code_files`` as dvc.yaml lists them: a folder whose every ``.py`` file is used, else the files."""
    files = code_files(stage)
    out: set[str] = set(files)
    folders = sorted({str(Path(f).parent) for f in files} - {"cohirl"}, key=lambda d: -d.count("/"))
    for folder in folders:  # deepest first, so a complete package absorbs its complete subpackages
        inside = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py")}
        if inside and inside <= files:
            out = {p for p in out if not _covered(p, [folder])} | {folder}
    return sorted(out, key=lambda p: (p.count("/") == 1, p))


def missing_inputs(stage: dict) -> list[str]:
    """Files and params sections a stage uses that its dvc.yaml entry does not list."""
    closure, notebook = entry_closure(" ".join(stage["cmd"].split()))
    deps = _deps(stage)
    files = closure.files - NOT_REQUIRED | ({notebook} if notebook else set())
    missing = sorted(p for p in files if not _covered(p, deps))
    params = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
    missing += sorted(f"params profiles.${{item.profile}}.{s}" for s in closure.sections
                      if f"profiles.${{item.profile}}.{s}" not in params)
    if closure.sections and "task_params.${item.task}" not in params and "${item.task}" in stage["cmd"]:
        missing.append("params task_params.${item.task}")
    return missing


def listed_code_deps(stage: dict) -> list[str]:
    return [d for d in _deps(stage) if d.startswith("cohirl/")]


STAGE_LINE = re.compile(r"^  (\w+):\s*$")
CODE_DEP_LINE = re.compile(r"^(\s+)- cohirl/\S+\s*$")


REPORT_FIGURES = ("learning_curves", "initial_drop", "demo_scaling", "critic_calibration")


def dvc_plots(params: dict) -> list:
    """dvc.yaml's top-level ``plots`` for the pipelines: each profile's report figures, and per task its
    learning curves as data (``results/<p>/curves/<task>.csv``, written by the report: mean success
    over seeds per method at each evaluation), so that ``dvc plots show`` and ``dvc plots diff <rev>
    ...`` draw them for any revision or experiment."""
    from cohirl.config import profile_section
    from cohirl.stages.report import methods_by_task

    plots: list = []
    for name in params.get("pipelines") or []:
        plots += [f"results/{name}/figures/{figure}.png" for figure in REPORT_FIGURES]
        for task, methods in methods_by_task(profile_section(params, name)).items():
            plots.append({f"results/{name}/curves/{task}.csv": {
                "x": "env_steps", "y": methods, "title": f"{name} / {task}: success rate (mean over seeds)",
                "x_label": "env steps", "y_label": "success rate"}})
    return plots


def listed_plots(dvc_yaml: Path | None = None) -> list:
    return yaml.safe_load(Path(dvc_yaml or ROOT / "dvc.yaml").read_text()).get("plots") or []


def write_plots(params: dict, dvc_yaml: Path | None = None) -> bool:
    """Replace dvc.yaml's top-level ``plots`` (its last section) by ``cohirl.config.dvc_plots``; returns
    whether it changed."""
    path = Path(dvc_yaml or ROOT / "dvc.yaml")
    plots = dvc_plots(params)
    if listed_plots(path) == plots:
        return False
    head, sep, _ = path.read_text().partition("\nplots:\n")
    if not sep:
        raise CohirlError(f"{path}: its top-level 'plots:' section must come last (it is generated).")
    body = yaml.safe_dump({"plots": plots}, sort_keys=False, width=120)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(head + "\n" + body)
    tmp.replace(path)
    return True


def write_code_deps(dvc_yaml: Path | None = None) -> list[str]:
    """Rewrite each stage's ``cohirl/`` dependencies in dvc.yaml as ``code_deps`` derives them, in
    place of the ones listed (comments and everything else untouched); returns the stages changed."""
    path = Path(dvc_yaml or ROOT / "dvc.yaml")
    bodies = stage_bodies(path)
    lines, out, changed = path.read_text().splitlines(keepends=True), [], []
    stage, written = None, False
    for line in lines:
        if (m := STAGE_LINE.match(line)) and m.group(1) in bodies:
            stage, written = m.group(1), False
        dep = CODE_DEP_LINE.match(line)
        if dep and stage is not None:
            if not written:
                out += [f"{dep.group(1)}- {d}\n" for d in code_deps(bodies[stage])]
                written = True
            continue
        out.append(line)
    for name, body in stage_bodies_from_text("".join(out)).items():
        if listed_code_deps(body) != listed_code_deps(bodies[name]):
            changed.append(name)
    if changed:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(out))
        tmp.replace(path)
    return changed
