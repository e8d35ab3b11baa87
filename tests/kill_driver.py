"""Runs one pipeline stage in forked children and kills them with SIGKILL at given delays (test helper).

    python kill_driver.py demos:0.7,0.3,0.9 base:0.3,2.4,3.3 ...   (in a smoke-profile project)

The heavy imports happen once, here, before any fork, so each attempt starts working at once and a
delay lands inside the stage's work rather than in Python's start-up. Each child runs the stage's
entry point as ``dvc repro`` would (the same function its notebook calls); the parent kills it after
the delay, unless it finished first. A last child runs the stage to the end. Stages run in the order
given, each on the outputs of the ones before. Prints one JSON line per stage: for each delay,
whether the child was killed and the output files that existed right after; then the same for the
last run, with its duration.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

TASK, METHOD, SEED, PROFILE = "pick_place", "csil_residual", 0, "smoke"
# A delay written "<s>c" counts from the attempt's first (re)write of the stage's checkpoint instead
# of its start: finetuning's first two kills land after its first and after its mid-run checkpoint
# (each attempt resumes from the one before), so a resume that lost state would show in its rows.
CLOCK_FILE = {"finetune": "data/smoke/checkpoints/pick_place/csil_residual/0/checkpoint.pt"}
OUTPUTS = {  # the stage's declared outputs (dvc.yaml), as globs under the project
    "demos": ("data/smoke/demos/pick_place/**/*", "results/smoke/demos/pick_place.json"),
    "base": ("data/smoke/base/pick_place/**/*", "results/smoke/base/pick_place.csv"),
    "finetune": ("results/smoke/runs/pick_place/csil_residual/0/*.csv",
                 "results/smoke/runs/pick_place/csil_residual/0/live/**/*"),
}


def stage_function(stage: str) -> Callable[[], object]:
    from cohirl._runtime import configure_torch
    from cohirl.stages import run_base_stage, run_demos_stage, run_finetune_stage

    configure_torch(1)
    return {
        "demos": lambda: run_demos_stage(TASK, profile=PROFILE, progress=False),
        "base": lambda: run_base_stage(TASK, profile=PROFILE, progress=False),
        "finetune": lambda: run_finetune_stage(TASK, METHOD, SEED, profile=PROFILE, progress=False),
    }[stage]


def existing_outputs(stage: str) -> list[str]:
    return sorted(str(p) for pattern in OUTPUTS[stage] for p in Path(".").glob(pattern) if p.is_file())


def _mtime(path: str | None) -> int | None:
    try:
        return os.stat(path).st_mtime_ns if path else None
    except FileNotFoundError:
        return None


def attempt(run: Callable[[], object], delay: float | None, clock_file: str | None = None) -> bool:
    """Run the stage in a forked child; SIGKILL it ``delay`` s after its start (or after the first
    rewrite of ``clock_file``). True if it was killed."""
    before = _mtime(clock_file)
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            run()
        except BaseException as exc:  # noqa: BLE001
            print(f"stage failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    deadline = None if delay is None or clock_file else time.monotonic() + delay
    while True:
        if delay is not None and deadline is None and _mtime(clock_file) != before:
            deadline = time.monotonic() + delay
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"the stage failed (exit {os.waitstatus_to_exitcode(status)})")
            return False
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return True
        time.sleep(0.01)


def main() -> None:
    """``<stage>:<delay>,<delay>,...`` arguments, run in order (one JSON line per stage)."""
    for arg in sys.argv[1:]:
        stage, _, delays = arg.partition(":")
        run = stage_function(stage)
        report = []
        for token in filter(None, delays.split(",")):
            clock = CLOCK_FILE[stage] if token.endswith("c") else None
            killed = attempt(run, float(token.rstrip("c")), clock)
            report.append({"delay": token, "killed": killed, "outputs": existing_outputs(stage)})
        start = time.monotonic()
        attempt(run, None)
        report.append({"delay": None, "killed": False, "outputs": existing_outputs(stage),
                       "last_run_s": round(time.monotonic() - start, 2)})
        print(json.dumps({"stage": stage, "attempts": report}), flush=True)


if __name__ == "__main__":
    main()
