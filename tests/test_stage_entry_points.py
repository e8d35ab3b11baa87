"""Every stage has one entry point in the library (``cohirl.stages.run_*``) writing through the
atomic writers of ``cohirl.io``; notebooks call it, then show — they write no file themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from cohirl import io, stages

ROOT = Path(__file__).resolve().parents[1]
WRITES = re.compile(r"\.to_csv\(|\.to_parquet\(|\.write_text\(|\.write_bytes\(|\.savefig\(|json\.dump\(|"
                    r"torch\.save\(|open\([^)]*['\"][wa]b?['\"]")


@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "notebooks").glob("*.py")))
def test_notebooks_write_no_file_themselves(notebook: str) -> None:
    source = (ROOT / "notebooks" / notebook).read_text()
    hits = [line.strip() for line in source.splitlines() if WRITES.search(line)]
    assert not hits, f"{notebook} writes files directly ({hits}); call a cohirl.stages.run_* function instead"


@pytest.mark.parametrize("notebook, entry", [("01_demonstrations", "run_demos_stage"), ("02_base_policy", "run_base_stage"),
                                             ("04_finetune", "run_finetune_stage"), ("05_results", "run_report")])
def test_each_stage_notebook_calls_its_library_entry_point(notebook: str, entry: str) -> None:
    assert hasattr(stages, entry)
    assert f"{entry}(" in (ROOT / "notebooks" / f"{notebook}.py").read_text()


def test_atomic_writers_leave_no_temporary_and_replace_whole_files(tmp_path: Path) -> None:
    io.write_text("a\n", tmp_path / "x.md")
    io.write_json({"b": 1, "a": 2}, tmp_path / "m.json", sort_keys=True)
    io.write_csv(pd.DataFrame({"k": [1, 2]}), tmp_path / "t.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "t.csv", "x.md"]
    assert list(json.loads((tmp_path / "m.json").read_text())) == ["a", "b"]
    assert (tmp_path / "t.csv").read_text() == "k\n1\n2\n"


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = io.write_text("old\n", tmp_path / "claims.md")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(io.os, "replace", fail)
    with pytest.raises(OSError):
        io.write_text("new\n", target)
    assert target.read_text() == "old\n"
