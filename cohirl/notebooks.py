"""Run a pipeline notebook: the jupytext ``.py`` is the source; papermill executes it on kernel
``cohirl`` and writes the executed copy (a pipeline output, never a source) under results/executed/."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cohirl.errors import CohirlError

NOTEBOOK_DIR = Path("notebooks")
EXECUTED_DIR = Path("results/executed")
KERNEL = "cohirl"


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """``["task=square", "n_demos=5"]`` -> typed values (YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise CohirlError(f"notebook parameter {pair!r} is not of the form name=value.")
        out[key] = yaml.safe_load(value)
    return out


def run_notebook(name: str, parameters: dict[str, Any], tag: str = "", output: Path | None = None,
                 kernel: str = KERNEL, cwd: Path | None = None) -> Path:
    """Execute ``notebooks/<name>.py`` with ``parameters`` injected after the ``parameters`` cell."""
    import jupytext
    import papermill as pm

    source = (cwd or Path.cwd()) / NOTEBOOK_DIR / f"{name}.py"
    if not source.exists():
        known = sorted(p.stem for p in source.parent.glob("*.py"))
        raise CohirlError(f"no notebook {source}; known notebooks: {known}.")
    out = Path(output or EXECUTED_DIR / f"{name}{'-' + tag if tag else ''}.ipynb")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_in = out.with_suffix(".src.ipynb")
    jupytext.write(jupytext.read(source), tmp_in, fmt="ipynb")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        pm.execute_notebook(str(tmp_in), str(out), parameters=parameters, kernel_name=kernel,
                            cwd=str(cwd or Path.cwd()), progress_bar=False, log_output=False)
    except pm.PapermillExecutionError as exc:
        raise CohirlError(f"notebook {name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                          f"(executed copy: {out})") from exc
    finally:
        tmp_in.unlink(missing_ok=True)
    return out
