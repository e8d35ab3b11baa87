"""What a ``cohirl`` import statement names, read from the AST (shared by the wiring and layering tests)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHOLE = "*"  # symbol marker: the import names a module, not a symbol in it


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
