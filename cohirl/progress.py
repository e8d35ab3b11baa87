"""Progress bars that a stage executor can read from outside the process (and the notebook kernel).

Every long loop uses :func:`progress_bar` (a ``tqdm``). When ``$COHIRL_PROGRESS_FILE`` is set (the
Ray executor of ``cohirl repro`` sets it per stage), the bar's state is also mirrored there as one
JSON object, rewritten atomically at most once a second: ``{"phase", "done", "total", "time"}``. The
mirror counts even when the bar itself is disabled, and it never changes what the loop computes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

PROGRESS_ENV = "COHIRL_PROGRESS_FILE"
MIN_INTERVAL_S = 1.0


class _MirroredBar(tqdm):  # type: ignore[misc]
    """A tqdm whose count is also written to ``path`` (throttled), disabled or not."""

    def __init__(self, *args: Any, mirror_path: Path, phase: str, **kwargs: Any) -> None:
        self._mirror = (Path(mirror_path), phase, float("-inf"))
        self._mirror_n = int(kwargs.get("initial", 0) or 0)
        super().__init__(*args, **kwargs)
        self._write_mirror(force=True)

    def update(self, n: float | None = 1) -> bool | None:
        self._mirror_n += int(n or 0)
        self._write_mirror()
        return super().update(n)

    def close(self) -> None:
        self._write_mirror(force=True)
        super().close()

    def _write_mirror(self, force: bool = False) -> None:
        path, phase, last = self._mirror
        now = time.time()
        if not force and now - last < MIN_INTERVAL_S:
            return
        self._mirror = (path, phase, now)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps({"phase": phase, "done": self._mirror_n, "total": self.total, "time": now}))
            os.replace(tmp, path)
        except OSError:  # progress is advisory: never fail a stage over it
            tmp.unlink(missing_ok=True)


def progress_bar(*, total: int | None, desc: str, disable: bool = False, initial: int = 0,
                 mininterval: float = 0.1) -> tqdm:
    """``tqdm(total=..., desc=...)``, mirrored to ``$COHIRL_PROGRESS_FILE`` when that is set."""
    kwargs = dict(total=total, desc=desc, disable=disable, initial=initial, mininterval=mininterval)
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return tqdm(**kwargs)
    return _MirroredBar(mirror_path=Path(path), phase=desc, **kwargs)


def read_progress(path: Path) -> dict[str, Any] | None:
    """The last mirrored state at ``path`` (None when there is none yet or it is unreadable)."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None
