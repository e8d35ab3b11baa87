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


TEMPLATES = ROOT / "cohirl" / "pipeline.yaml"
OVER = ("tasks", "runs", "profile")
DVC_HEADER = """\
# GENERATED from cohirl/pipeline.yaml (the stage templates) and params.yaml's `pipelines` by `cohirl
# profile NAME` / `cohirl wiring --write`: edit those, not this file. One DVC matrix stage per template
# and profile, over the profile's own lists (`<stage>-<profile>@<task>[-<method>-<seed>]`), writing under
# data/<profile>/ and results/<profile>/; `cohirl repro --profile NAME` (or `PROFILE=NAME make
# reproduce`) runs one profile's stages. Each stage's cohirl/ dependencies are derived from its command.
"""


def stage_bodies(templates: Path | None = None) -> dict[str, dict]:
    """The stage templates (``cohirl/pipeline.yaml``), by stage kind."""
    bodies = yaml.safe_load(Path(templates or TEMPLATES).read_text())
    for name, body in bodies.items():
        if body.get("over") not in OVER:
            raise CohirlError(f"cohirl/pipeline.yaml stage {name!r}: 'over' must be one of {list(OVER)}.")
    return bodies


def _for_profile(node: object, profile: str) -> object:
    if isinstance(node, str):
        return node.replace("${item.profile}", profile)
    if isinstance(node, list):
        return [_for_profile(v, profile) for v in node]
    if isinstance(node, dict):
        return {_for_profile(k, profile): _for_profile(v, profile) for k, v in node.items()}
    return node


def profile_groups(params: dict, profile: str) -> dict[str, tuple[str, dict[str, object] | None]]:
    """The dvc.yaml stage groups of one profile: name -> (stage kind, its ``matrix`` or None)."""
    from cohirl.config import profile_section

    section = profile_section(params, profile)
    lists = {key: f"${{profiles.{profile}.{key}}}" for key in ("tasks", "methods", "seeds")}
    groups: dict[str, tuple[str, dict[str, object] | None]] = {}
    for kind, body in stage_bodies().items():
        if body["over"] == "profile":
            groups[f"{kind}-{profile}"] = (kind, None)
        elif body["over"] == "tasks":
            groups[f"{kind}-{profile}"] = (kind, {"task": lists["tasks"]})
        else:
            groups[f"{kind}-{profile}"] = (kind, {"task": lists["tasks"], "method": lists["methods"],
                                                  "seed": lists["seeds"]})
            for i, extra in enumerate(section.get("extra_runs") or []):
                at = f"profiles.{profile}.extra_runs[{i}]"
                groups[f"{kind}-{profile}-extra{i}"] = (kind, {
                    "task": [f"${{{at}.task}}"], "method": f"${{{at}.methods}}",
                    "seed": f"${{{at}.seeds}}" if "seeds" in extra else lists["seeds"]})
    return groups


def dvc_stages(params: dict) -> dict[str, dict]:
    """dvc.yaml's ``stages``: every template for every profile in ``pipelines``, its code deps derived."""
    bodies = stage_bodies()
    derived = {kind: code_deps(body) for kind, body in bodies.items()}  # one closure walk per template
    stages: dict[str, dict] = {}
    for profile in params.get("pipelines") or []:
        for name, (kind, matrix) in profile_groups(params, profile).items():
            body = {k: v for k, v in bodies[kind].items() if k != "over"}
            body["deps"] = list(body.get("deps") or []) + derived[kind]
            stages[name] = ({"matrix": matrix} if matrix else {}) | _for_profile(body, profile)  # type: ignore[operator]
    return stages


def render_dvc_yaml(params: dict) -> str:
    text = yaml.safe_dump({"stages": dvc_stages(params)}, sort_keys=False, width=120)
    return DVC_HEADER + text + "\n" + yaml.safe_dump({"plots": dvc_plots(params)}, sort_keys=False, width=120)


def write_dvc_yaml(params: dict, dvc_yaml: Path | None = None) -> bool:
    """Write dvc.yaml as ``render_dvc_yaml`` makes it (temporary file, then rename); returns whether it changed."""
    from cohirl.io import write_text

    path = Path(dvc_yaml or ROOT / "dvc.yaml")
    text = render_dvc_yaml(params)
    if path.exists() and path.read_text() == text:
        return False
    write_text(text, path)
    return True


def check_dvc_yaml(params: dict, dvc_yaml: Path) -> None:
    """dvc.yaml's stage groups must be those of params.yaml's pipelines (cheap: no code deps derived)."""
    if not dvc_yaml.exists():
        return
    listed = set((yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {})
    wanted = {name for p in params.get("pipelines") or [] for name in profile_groups(params, p)}
    if listed != wanted:
        raise CohirlError(f"dvc.yaml's stages are not those of params.yaml's pipelines {params.get('pipelines')} "
                          f"(missing {sorted(wanted - listed)}, extra {sorted(listed - wanted)}); run "
                          f"`cohirl profile {params.get('profile')}` to regenerate it.")


def check_project(root: Path) -> None:
    """Before any stage of cohirl's own project runs: params.yaml's pipelines build (``check_params_file``)
    and dvc.yaml holds their stages."""
    from cohirl.config import read_params
    from cohirl.stages.check import check_params_file

    check_params_file(root / "params.yaml")
    if (root / "params.yaml").exists():
        check_dvc_yaml(read_params(root / "params.yaml"), root / "dvc.yaml")


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
    """The notebook and params sections a stage template uses but does not list (its code dependencies
    are derived and added when dvc.yaml is generated)."""
    closure, notebook = entry_closure(" ".join(stage["cmd"].split()))
    missing = [notebook] if notebook and not _covered(notebook, _deps(stage)) else []
    params = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
    missing += sorted(f"params profiles.${{item.profile}}.{s}" for s in closure.sections
                      if f"profiles.${{item.profile}}.{s}" not in params)
    if closure.sections and "task_params.${item.task}" not in params and "${item.task}" in stage["cmd"]:
        missing.append("params task_params.${item.task}")
    return missing


REPORT_FIGURES = ("learning_curves", "initial_drop", "demo_scaling", "critic_calibration")


def dvc_plots(params: dict) -> list:
    """dvc.yaml's top-level ``plots`` for the pipelines: each profile's report figures, and its learning
    curves as the report logs them through dvclive (``results/<p>/live/plots/metrics/<task>/<method>.tsv``,
    mean success over seeds at each evaluation, and ``seeds/<task>/<method>/seed_<s>.tsv``), one chart
    per file, so that ``dvc plots show`` and ``dvc plots diff <rev-or-exp> ...`` draw them for any
    revision or experiment, whatever tasks and methods it ran."""
    plots: list = []
    for name in params.get("pipelines") or []:
        plots += [f"results/{name}/figures/{figure}.png" for figure in REPORT_FIGURES]
        plots.append({f"results/{name}/live/plots/metrics": {"x": "step", "x_label": "env steps",
                                                              "y_label": f"success rate ({name})"}})
    return plots


def listed_plots(dvc_yaml: Path | None = None) -> list:
    return yaml.safe_load(Path(dvc_yaml or ROOT / "dvc.yaml").read_text()).get("plots") or []


def set_profile(name: str, params_file: Path, only: bool = False) -> dict:
    """Make ``name`` the default profile of ``params_file`` and add its pipeline to ``pipelines`` (or make
    it the only one); the header above the ``# ---- profiles`` marker is rewritten, its comments kept."""
    from cohirl.config import profile_section, read_params
    from cohirl.io import write_text

    params = read_params(params_file)
    profile_section(params, name)
    pipelines = [name] if only else [p for p in params.get("pipelines") or [] if p in params["profiles"]]
    if name not in pipelines:
        pipelines.append(name)
    head, sep, tail = params_file.read_text().partition("\n# ---- profiles")
    if not sep:
        raise CohirlError(f"{params_file}: missing the '# ---- profiles' marker line that separates the header.")
    lines = [ln for ln in head.splitlines() if ln.startswith("#") or not ln.strip()]
    body = yaml.safe_dump({"profile": name, "pipelines": pipelines}, sort_keys=False, default_flow_style=None)
    write_text("\n".join(lines).rstrip() + "\n" + body.rstrip() + "\n" + sep + tail, params_file)
    return read_params(params_file)
