"""``cohirl repro --jobs N``: ``dvc repro`` with independent stages run side by side.

DVC runs a pipeline's stages one after another, and documents running independent ones in parallel
by launching ``dvc repro`` several times. This module does that from the DAG: a stage is launched
(as ``dvc --wait-for-lock repro --single-item <stage>``) once every stage it depends on has finished,
at most ``jobs`` at a time, stages with more downstream work first. DVC itself still decides whether
a stage is out of date, hashes, and writes ``dvc.lock`` (under its repository lock), so the result is
the one a plain ``dvc repro`` gives; a final ``dvc repro`` checks that nothing is left to run.

Each process uses one torch thread (``cohirl._runtime.configure_torch``), so results do not depend
on how many stages share the machine.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cohirl.errors import CohirlError

LOG_DIR = Path("logs/repro")


@dataclass
class StageGraph:
    """Pipeline stages (with a command) and, for each, the stages it depends on."""

    upstream: dict[str, set[str]]

    def downstream_counts(self) -> dict[str, int]:
        """How many stages (transitively) wait on each stage: the scheduling priority."""
        children: dict[str, set[str]] = {name: set() for name in self.upstream}
        for name, ups in self.upstream.items():
            for up in ups:
                children[up].add(name)
        counts: dict[str, int] = {}

        def reach(name: str) -> set[str]:
            out: set[str] = set()
            for child in children[name]:
                out |= {child} | reach(child)
            return out

        for name in self.upstream:
            counts[name] = len(reach(name))
        return counts

    def restricted_to(self, targets: Sequence[str]) -> "StageGraph":
        """The targets and everything they (transitively) depend on."""
        unknown = [t for t in targets if t not in self.upstream]
        if unknown:
            raise CohirlError(f"unknown stage(s) {unknown}; `dvc stage list` shows the pipeline's stages.")
        keep: set[str] = set()
        todo = list(targets)
        while todo:
            name = todo.pop()
            if name not in keep:
                keep.add(name)
                todo.extend(self.upstream[name])
        return StageGraph({n: set(u) for n, u in self.upstream.items() if n in keep})


def read_stage_graph(root: Path = Path(".")) -> StageGraph:
    """The DAG of ``dvc.yaml`` (matrix stages expanded), from DVC's own index."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:  # stage addresses are relative to the working directory: read them from the root
        with contextlib.chdir(root), Repo(".") as repo:
            graph = repo.index.graph
            upstream = {stage.addressing: {dep.addressing for dep in graph.successors(stage) if dep.cmd}
                        for stage in graph.nodes if getattr(stage, "cmd", None)}
    except DvcException as exc:
        raise CohirlError(f"could not read the DVC pipeline at {root}: {exc}") from exc
    return StageGraph(upstream)


@dataclass
class _Running:
    name: str
    proc: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.monotonic)


class ParallelRepro:
    """Launches ready stages, at most ``jobs`` at once; stops launching after the first failure."""

    def __init__(self, graph: StageGraph, jobs: int, force: bool = False, log_dir: Path = LOG_DIR,
                 dvc: str = "dvc", poll_s: float = 0.5, cwd: Path = Path(".")) -> None:
        if jobs < 1:
            raise CohirlError(f"--jobs must be >= 1 (got {jobs}).")
        self.graph, self.jobs, self.force, self.dvc, self.poll_s, self.cwd = graph, jobs, force, dvc, poll_s, cwd
        self.log_dir = log_dir
        self.priority = graph.downstream_counts()
        self.done: set[str] = set()
        self.failed: list[str] = []
        self.running: list[_Running] = []

    def run(self) -> bool:
        """Run every stage of the graph; True when all succeeded."""
        pending = set(self.graph.upstream)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        while pending or self.running:
            while not self.failed and len(self.running) < self.jobs and (ready := self._ready(pending)):
                pending.discard(ready)
                self._launch(ready)
            if self.failed and not self.running:
                break
            time.sleep(self.poll_s)
            self._reap(start)
        return not self.failed

    def _ready(self, pending: set[str]) -> str | None:
        ready = [n for n in pending if self.graph.upstream[n] <= self.done]
        return min(ready, key=lambda n: (-self.priority[n], n)) if ready else None

    def _launch(self, name: str) -> None:
        cmd = [self.dvc, "--wait-for-lock", "repro", "--single-item", *(["--force"] if self.force else []), name]
        log = self.log_dir / f"{name.replace('/', '_')}.log"
        with log.open("w") as handle:
            proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=self.cwd)
        self.running.append(_Running(name, proc, log))
        print(f"[start] {name}", flush=True)

    def _reap(self, start: float) -> None:
        for job in [j for j in self.running if j.proc.poll() is not None]:
            self.running.remove(job)
            took, total = time.monotonic() - job.started, time.monotonic() - start
            if job.proc.returncode == 0:
                self.done.add(job.name)
                skipped = "didn't change" in job.log.read_text(errors="replace")
                state = "up to date" if skipped else f"done in {took / 60:.1f} min"
                print(f"[{total / 60:5.1f} min] {job.name}: {state} ({len(self.done)}/{len(self.graph.upstream)})",
                      flush=True)
            else:
                self.failed.append(job.name)
                tail = "\n".join(job.log.read_text(errors="replace").splitlines()[-25:])
                print(f"[{total / 60:5.1f} min] {job.name}: FAILED (exit {job.proc.returncode}); log {job.log}:\n"
                      f"{tail}", file=sys.stderr, flush=True)


def repro(targets: Sequence[str] = (), jobs: int | None = None, force: bool = False, root: Path = Path("."),
          dvc: str = "dvc") -> None:
    """Reproduce the pipeline (or ``targets`` and their upstream) with ``jobs`` stages at a time."""
    graph = read_stage_graph(root)
    if targets:
        graph = graph.restricted_to(targets)
    jobs = jobs or max(1, os.cpu_count() or 1)
    print(f"cohirl repro: {len(graph.upstream)} stages, {jobs} at a time (logs in {LOG_DIR}/)", flush=True)
    runner = ParallelRepro(graph, jobs, force=force, log_dir=root / LOG_DIR, dvc=dvc, cwd=root)
    if not runner.run():
        raise CohirlError(f"stage(s) {runner.failed} failed (logs above and in {LOG_DIR}/); fix the cause and "
                          "rerun: finished stages are kept and skipped.")
    check = subprocess.run([dvc, "repro", *targets], cwd=root, capture_output=True, text=True)
    if check.returncode != 0:
        raise CohirlError(f"the final `dvc repro` check failed:\n{check.stdout[-2000:]}{check.stderr[-2000:]}")
    ran = [line for line in check.stdout.splitlines() if line.startswith("Running stage")]
    print(f"cohirl repro: {len(graph.upstream)} stages done; final `dvc repro` check ran {len(ran)} more", flush=True)
