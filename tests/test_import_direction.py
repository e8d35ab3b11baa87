"""Imports run one way: envs → demos → policies → eval → csil → baselines → methods → training → stages/report.

Every ``cohirl`` import, module-level or inside a function, may only reach a layer at or below its
own. ``eval`` (seeded rollouts of any policy factory, statistics) sits below the agents because
the training loop evaluates through it; it must never import the agents or the loop. ``report``
reads result rows only: no simulator, no policy. The entry points (CLI, notebooks runner, the Ray
executor) sit on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cohirl.wiring import ROOT, import_targets

LAYERS = (
    ("cohirl", "cohirl._runtime", "cohirl.errors", "cohirl.progress", "cohirl.config", "cohirl.io"),
    ("cohirl.envs",),
    ("cohirl.demos",),
    ("cohirl.policies",),
    ("cohirl.eval",),
    ("cohirl.csil",),
    ("cohirl.baselines",),
    ("cohirl.methods",),
    ("cohirl.training",),
    ("cohirl.stages", "cohirl.initial_drop", "cohirl.report"),
    ("cohirl.cli", "cohirl.notebooks", "cohirl.repro", "cohirl.ray_stage", "cohirl.ray_loopback", "cohirl.wiring"),
)
REPORT_MAY_IMPORT = {"cohirl", "cohirl.errors", "cohirl.io", "cohirl.eval.stats"}  # and cohirl.report itself


def layer_of(module: str) -> int:
    best = max(((len(prefix), i) for i, names in enumerate(LAYERS) for prefix in names
                if module == prefix or module.startswith(prefix + ".")), default=None)
    if best is None or (best[0] == len("cohirl") and module != "cohirl"):
        raise AssertionError(f"{module} is in no layer of {Path(__file__).name}: add it to LAYERS")
    return best[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def cohirl_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``cohirl`` import in ``path``, wherever it sits."""
    current, is_pkg = module_name(path), path.name == "__init__.py"
    return [(node.lineno, module) for node in ast.walk(ast.parse(path.read_text()))
            for module, _ in import_targets(node, current, is_pkg).values()]


SOURCES = sorted((ROOT / "cohirl").rglob("*.py"))


def upward(me: str, imports: list[tuple[int, str]]) -> list[str]:
    return [f"line {line}: {target} (layer {layer_of(target)})" for line, target in imports
            if layer_of(target) > layer_of(me)]


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_imports_point_down(path: Path) -> None:
    me = module_name(path)
    found = upward(me, cohirl_imports(path))
    assert not found, f"{me} (layer {layer_of(me)}) imports upward: {found}; move the code or the import"


def test_report_reads_rows_only() -> None:
    bad = [f"{p.relative_to(ROOT)}:{line} {t}" for p in (ROOT / "cohirl/report").rglob("*.py")
           for line, t in cohirl_imports(p) if t not in REPORT_MAY_IMPORT and not t.startswith("cohirl.report")]
    assert not bad, f"cohirl/report must not reach simulators or policies: {bad}"


def test_an_upward_import_is_found() -> None:
    # the cycle this layout removed: the sparse baseline builder imported by the CSIL package
    assert upward("cohirl.csil.methods", [(35, "cohirl.baselines.sparse_residual")]) == [
        "line 35: cohirl.baselines.sparse_residual (layer 6)"]
    assert upward("cohirl.training.loop", [(1, "cohirl.csil.replay"), (2, "cohirl.eval.rollout")]) == []
    function_level = {t for _, t in cohirl_imports(ROOT / "cohirl/stages/finetune.py")}
    assert "cohirl.training.loop" in function_level  # imported inside run_finetune_stage
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("cohirl.newthing")
