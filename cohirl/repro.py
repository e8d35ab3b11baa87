"""``cohirl repro``: the DVC pipeline executed by Ray (local by default, a cluster by ``RAY_ADDRESS``).

DVC stays the record and the judge: it says which stages are out of date (``dvc status``), what each
runs (the stage's command from ``dvc.yaml``), and it writes ``dvc.lock`` (``dvc commit`` of the
stage once its outputs are in place), so the result is the one a plain ``dvc repro`` gives, and a
second ``dvc repro`` reruns nothing. Ray executes the out-of-date stages as tasks (one CPU each by
default), each submitted once every stage it depends on has finished, more downstream work first.

A task receives the project's code and the stage's data dependencies as tar bytes and returns the
stage's outputs the same way (:mod:`cohirl.ray_stage`): workers need the venv, not the data or a
shared disk. Ray retries a task whose worker process died; the retry resumes from the killed
attempt's checkpoints. A stage's outputs are written (temporary path, then rename) and recorded
only after it succeeded, so a failed or interrupted stage never looks complete.

``--backend dvc`` runs plain sequential ``dvc repro`` instead: the reference the Ray path matches.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from cohirl import ray_stage
from cohirl.errors import CohirlError
from cohirl.ray_loopback import is_loopback, keep_loopback
from cohirl.ray_stage import StageFailed, StageJob, StageResult, pack, unpack

LOG_DIR = Path("logs/repro")
# What every task gets (the stage's command reads its params and runs the shipped package).
CODE_PATHS = ("cohirl", "notebooks", "params.yaml", "dvc.yaml", "pyproject.toml")
BACKENDS = ("ray", "dvc")
MAX_RETRIES = 2  # Ray's retries of a task whose worker process died (not of a failing command)


@dataclass
class StageGraph:
    """Pipeline stages (with a command) and, for each, the stages it depends on."""

    upstream: dict[str, set[str]]

    def downstream_counts(self) -> dict[str, int]:
        """How many stages (transitively) wait on each stage: the submission priority."""
        children: dict[str, set[str]] = {name: set() for name in self.upstream}
        for name, ups in self.upstream.items():
            for up in ups:
                children[up].add(name)

        def reach(name: str) -> set[str]:
            out: set[str] = set()
            for child in children[name]:
                out |= {child} | reach(child)
            return out

        return {name: len(reach(name)) for name in self.upstream}

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


@dataclass
class StageInfo:
    """One stage as DVC resolved it: command, file dependencies, outputs (``persist`` ones apart)."""

    name: str
    cmd: str
    deps: list[str]
    outs: list[str]
    persist: list[str]


@dataclass
class Pipeline:
    graph: StageGraph
    stages: dict[str, StageInfo]

    def persistent_outputs(self) -> tuple[str, ...]:
        return tuple(p for info in self.stages.values() for p in info.persist)


def _dvc_repo(root: Path) -> Any:
    from dvc.repo import Repo

    return Repo(str(root))


def read_pipeline(root: Path = Path(".")) -> Pipeline:
    """The DAG of ``dvc.yaml`` (matrix stages expanded), from DVC's own index."""
    from dvc.exceptions import DvcException

    try:  # stage addresses are relative to the working directory: read them from the root
        with contextlib.chdir(root), _dvc_repo(Path(".")) as repo:
            graph = repo.index.graph
            stages = [s for s in graph.nodes if getattr(s, "cmd", None)]
            upstream = {s.addressing: {d.addressing for d in graph.successors(s) if d.cmd} for s in stages}
            infos = {s.addressing: StageInfo(s.addressing, s.cmd if isinstance(s.cmd, str) else " && ".join(s.cmd),
                                             [str(d.def_path) for d in s.deps],
                                             [str(o.def_path) for o in s.outs],
                                             [str(o.def_path) for o in s.outs if o.persist]) for s in stages}
    except DvcException as exc:
        raise CohirlError(f"could not read the DVC pipeline at {root}: {exc}") from exc
    return Pipeline(StageGraph(upstream), infos)


def profile_stages(profile: str, root: Path = Path(".")) -> list[str]:
    """The ``dvc.yaml`` stage names of one profile's pipeline (``<stage>-<profile>[-extra<i>][@...]``)."""
    from cohirl.config import read_params
    from cohirl.wiring import profile_groups

    params = read_params(root / "params.yaml")
    if profile not in (params.get("pipelines") or []):
        raise CohirlError(f"profile {profile!r} has no pipeline in dvc.yaml (params.yaml pipelines: "
                          f"{params.get('pipelines')}); run `cohirl profile {profile}` first.")
    groups = set(profile_groups(params, profile))
    return [name for name in read_pipeline(root).stages if name.split("@", 1)[0] in groups]


def _write_lock(lock: dict, path: Path) -> None:
    """``dvc.lock`` in DVC's own YAML layout (so that a rewrite shows only what changed in a diff),
    written beside it and renamed into place."""
    from dvc.utils.serialize import dumps_yaml

    from cohirl.io import write_text

    write_text(dumps_yaml(lock), path)


def rename_lock_entries(root: Path, stages: dict[str, StageInfo] | None = None) -> dict[str, str]:
    """Carry ``dvc.lock`` entries over a stage rename: an entry whose stage ``dvc.yaml`` no longer defines
    takes the name of the defined stage that runs the same command and has no entry (DVC would
    otherwise rerun it, and ``prune_lock`` drop the old one). ``stages``: the pipeline's, when already
    read. Returns {old: new}."""
    import yaml

    path = root / "dvc.lock"
    if not path.exists():
        return {}
    lock = yaml.safe_load(path.read_text()) or {}
    entries = lock.get("stages") or {}
    stages = stages if stages is not None else read_pipeline(root).stages
    by_cmd = {info.cmd: name for name, info in stages.items() if name not in entries}
    renamed = {old: by_cmd[entry.get("cmd")] for old, entry in entries.items()
               if old not in stages and entry.get("cmd") in by_cmd}
    if renamed:
        lock["stages"] = {renamed.get(k, k): v for k, v in entries.items()}
        _write_lock(lock, path)
    return renamed


def read_stage_graph(root: Path = Path(".")) -> StageGraph:
    return read_pipeline(root).graph


def out_of_date(root: Path, names: Sequence[str]) -> set[str]:
    """The stages among ``names`` that ``dvc status`` reports as changed."""
    with contextlib.chdir(root), _dvc_repo(Path(".")) as repo:
        return set(repo.status(targets=list(names))) & set(names)


def missing_status(root: Path, names: Sequence[str]) -> tuple[set[str], set[str]]:
    """Among ``names``: the stages DVC would rerun even with missing data allowed (``dvc repro
    --allow-missing``: a changed command, parameter or present dependency), and, of the others, those
    whose outputs are not on this machine (a fresh clone without the DVC cache: bases, checkpoints)."""
    wanted, changed, missing = set(names), set(), set()
    with contextlib.chdir(root), _dvc_repo(Path(".")) as repo, repo.lock:
        graph = repo.index.graph
        for stage in graph.nodes:
            if stage.addressing not in wanted:
                continue
            if stage.changed(allow_missing=True, upstream=list(graph.successors(stage))):
                changed.add(stage.addressing)
            elif stage.changed_outs():
                missing.add(stage.addressing)
    return changed, missing


def missing_rebuilds(pipeline: Pipeline, changed: set[str], exists: Callable[[str], bool]) -> set[str]:
    """The stages to run when missing outputs are allowed: the changed ones, and the producer of every
    dependency of a stage to run that is not on this machine (transitively). DVC's ``--allow-missing``
    would skip those producers and fail on the absent files; deterministic stages rebuild them to the
    hashes ``dvc.lock`` holds."""
    producers = [(out, name) for name, info in pipeline.stages.items() for out in info.outs]
    run, todo = set(changed), list(changed)
    while todo:
        for dep in pipeline.stages[todo.pop()].deps:
            if exists(dep):
                continue
            for out, producer in producers:
                if producer not in run and (_under(dep, (out,)) or _under(out, (dep,))):
                    run.add(producer)
                    todo.append(producer)
    return run


def commit_stage(root: Path, name: str) -> None:
    """Record a finished stage in ``dvc.lock`` (and its cached outputs in the DVC cache)."""
    with contextlib.chdir(root), _dvc_repo(Path(".")) as repo:
        repo.commit(name, force=True)


def prune_lock(root: Path, stages: Sequence[str]) -> list[str]:
    """Drop ``dvc.lock`` entries of stages that ``dvc.yaml`` no longer defines (DVC keeps them: a
    renamed or removed stage would otherwise linger with stale hashes). Returns the dropped names."""
    import yaml

    path = root / "dvc.lock"
    if not path.exists():
        return []
    lock = yaml.safe_load(path.read_text()) or {}
    entries = lock.get("stages") or {}
    stale = sorted(set(entries) - set(stages))
    if stale:
        lock["stages"] = {k: v for k, v in entries.items() if k not in stale}
        _write_lock(lock, path)
    return stale


# -- connecting to Ray ----------------------------------------------------------------------------
def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """``host:port`` (or ``ray://host:port``) must accept a TCP connection, else one clear error."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise CohirlError(f"RAY_ADDRESS={address!r} is not of the form host:port (e.g. 127.0.0.1:6379).")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise CohirlError(f"RAY_ADDRESS={address} is unreachable ({exc}): start the head there with "
                          "`ray start --head --port <port>`, or unset RAY_ADDRESS to run on a local Ray "
                          "instance.") from exc


def check_authenticated(address: str, allow_unauthenticated: bool = False) -> None:
    """A cluster is joined with Ray's token authentication on, unless the user says it is closed."""
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if not address or mode == "token" or allow_unauthenticated:
        return
    raise CohirlError(
        f"RAY_ADDRESS={address} would be joined without token authentication (RAY_AUTH_MODE="
        f"{mode or 'unset'}): anyone who can reach that cluster's ports can run code on it. Start every node "
        "and run cohirl repro with RAY_AUTH_MODE=token and the same token (make one with `ray get-auth-token "
        "--generate`, share it as ~/.ray/auth_token or via RAY_AUTH_TOKEN_PATH; README 'Security'), or pass "
        "--allow-unauthenticated for a cluster no one else can reach.")


def connect(jobs: int) -> bool:
    """Join the cluster at ``$RAY_ADDRESS`` or start a local instance with ``jobs`` CPUs, listening and
    advertised on 127.0.0.1 only (a local run has no reason to be reachable from the network).

    The caller has checked the cluster's authentication (``check_authenticated``).
    Returns whether a local instance was started (and must be shut down afterwards)."""
    import ray

    address = os.environ.get("RAY_ADDRESS", "").strip()
    ray.cloudpickle.register_pickle_by_value(ray_stage)
    if address:
        check_reachable(address)
        if is_loopback(address.split("://", 1)[-1].rpartition(":")[0]):
            keep_loopback()
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError) as exc:
            raise CohirlError(f"could not join the Ray cluster at RAY_ADDRESS={address}: {exc}") from exc
        return False
    keep_loopback()
    ray.init(address="local", num_cpus=jobs, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _node_ip_address="127.0.0.1")
    return True


def check_nodes(probes: list[dict[str, Any]], local: dict[str, Any]) -> None:
    """Every node must run the driver's Python with the driver's packages (the same lock)."""
    for probe in probes:
        where = f"node {probe['node_ip']} (id {probe['node_id'][:12]}, python {probe['executable']})"
        if probe["python"] != local["python"]:
            raise CohirlError(f"{where} runs Python {probe['python']}, the driver {local['python']}: start "
                              "every node with `.venv/bin/ray start ...` from a venv built by `make setup`.")
        missing = sorted(set(local["packages"]) - set(probe["packages"]))
        if missing:
            raise CohirlError(f"{where} lacks the driver's packages ({len(missing)} differ, e.g. {missing[:4]}): "
                              "build the venv there with `make setup` from the same commit and start the "
                              "node with `.venv/bin/ray start --address ...`.")


def preflight(timeout_s: float = 120.0) -> list[dict[str, Any]]:
    """Probe each alive node (a zero-CPU task pinned to it) and check its environment."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(ray_stage.probe_node)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote():
            n for n in nodes}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    if late:
        ips = [refs[r]["NodeManagerAddress"] for r in late]
        raise CohirlError(f"Ray node(s) {ips} did not answer a probe within {timeout_s:.0f} s: is their venv "
                          "complete (`make setup`) and `ray start` running from it?")
    try:
        probes = ray.get(ready)
    except Exception as exc:  # the probe itself failed on a node: its Python lacks what ray_stage needs
        raise CohirlError(f"a Ray node could not run the environment probe: {exc}") from exc
    check_nodes(probes, ray_stage.probe_node())
    return probes


# -- progress on the driver ------------------------------------------------------------------
class ProgressBoard:
    """A Ray actor the tasks report to: where each stage runs and how far it is."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, Any]] = {}

    def started(self, name: str, node_ip: str, pid: int, attempt: int) -> None:
        self.stages[name] = {"node_ip": node_ip, "pid": pid, "attempt": attempt, "since": time.time(),
                             "state": None, "first": {}}

    def update(self, name: str, state: dict[str, Any]) -> None:
        entry = self.stages.setdefault(name, {"first": {}})
        entry["state"] = state
        entry["first"].setdefault(state.get("phase"), state)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.stages


def progress_line(name: str, entry: dict[str, Any], now: float) -> str:
    """``stage [node] phase done/total · elapsed · ETA`` (ETA from the phase's own rate so far)."""
    head = f"  {name} [{entry.get('node_ip', '?')}{', retry ' + str(entry['attempt'] - 1) if entry.get('attempt', 1) > 1 else ''}]"
    elapsed = f"{(now - entry.get('since', now)) / 60:.1f} min"
    state = entry.get("state")
    if not state or not state.get("total"):
        return f"{head} starting · {elapsed}"
    done, total = state["done"], state["total"]
    first = entry["first"].get(state["phase"], state)
    rate = (done - first["done"]) / max(1e-9, state["time"] - first["time"])
    eta = f"ETA {(total - done) / rate / 60:.1f} min" if rate > 0 and done < total else "ETA ?"
    return f"{head} {state['phase']} {done}/{total} · {elapsed} · {eta}"


class ProgressPrinter:
    """Redraws the running stages' lines on a terminal; prints them every ``every_s`` otherwise."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.tty, self.every_s, self.drawn, self.last = sys.stdout.isatty(), every_s, 0, 0.0

    def show(self, lines: list[str]) -> None:
        now = time.monotonic()
        if self.tty:
            sys.stdout.write("\x1b[1A\x1b[2K" * self.drawn + "".join(f"{line}\n" for line in lines))
            sys.stdout.flush()
            self.drawn = len(lines)
        elif lines and now - self.last >= self.every_s:
            print("\n".join(lines), flush=True)
            self.last = now

    def clear(self) -> None:
        if self.tty and self.drawn:
            sys.stdout.write("\x1b[1A\x1b[2K" * self.drawn)
            self.drawn = 0


# -- the executor ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    name: str
    status: str  # ran | up to date | failed
    node_ip: str = ""
    node_id: str = ""
    attempt: int = 0
    seconds: float = 0.0


@dataclass
class RayRepro:
    """Submits out-of-date stages as Ray tasks in dependency order; writes and commits their outputs."""

    pipeline: Pipeline
    root: Path
    force: bool = False
    max_in_flight: int | None = None
    cpus_per_stage: float = 1.0
    log_dir: Path = LOG_DIR
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    stale: dict[str, bool] = field(default_factory=dict)  # dvc status, asked once per stage when it is ready
    allow_missing: bool = False  # outputs absent here are no reason to run a stage (see missing_rebuilds)
    rebuild: set[str] = field(default_factory=set)  # with allow_missing: stages with missing outputs that others need

    def run(self) -> bool:
        import ray

        self.board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        self.task = ray.remote(num_cpus=self.cpus_per_stage, max_retries=MAX_RETRIES,
                               retry_exceptions=False)(ray_stage.execute_stage)
        self.code = ray.put(pack(self.root, CODE_PATHS))
        self.code_digest = hashlib.sha256(ray.get(self.code)).hexdigest()
        (self.root / self.log_dir).mkdir(parents=True, exist_ok=True)
        graph, priority = self.pipeline.graph, self.pipeline.graph.downstream_counts()
        pending, running, printer, start = set(graph.upstream), {}, ProgressPrinter(), time.monotonic()
        while pending or running:
            if not self.failed:
                self._submit_ready(pending, running, priority)
            if not running:
                break
            finished, _ = ray.wait(list(running), num_returns=1, timeout=2.0)
            for ref in finished:
                printer.clear()
                self._finish(running.pop(ref), ref, start)
            printer.show(self._lines(running))
        printer.clear()
        self._write_summary()
        return not self.failed and not pending

    @property
    def failed(self) -> list[str]:
        return sorted(o.name for o in self.outcomes.values() if o.status == "failed")

    def _submit_ready(self, pending: set[str], running: dict[Any, str], priority: dict[str, int]) -> None:
        """Submit every stage whose upstream is done; an up-to-date stage may unlock more at once."""
        checked: set[str] = set()
        while True:
            done = {n for n, o in self.outcomes.items() if o.status != "failed"}
            ready = [n for n in pending if self.pipeline.graph.upstream[n] <= done and n not in checked]
            if not ready:
                return
            unknown = [n for n in ready if n not in self.stale]
            found = set(unknown) if self.force or not unknown else self._out_of_date(unknown)
            self.stale.update({n: n in found for n in unknown})
            for name in sorted(ready, key=lambda n: (-priority[n], n)):
                checked.add(name)
                if self.max_in_flight and len(running) >= self.max_in_flight and self.stale[name]:
                    continue
                pending.discard(name)
                if not self.stale[name]:
                    self.outcomes[name] = Outcome(name, "up to date")
                    print(f"[{name}] up to date", flush=True)
                    continue
                running[self._submit(name)] = name
                print(f"[{name}] submitted", flush=True)

    def _out_of_date(self, names: list[str]) -> set[str]:
        if not self.allow_missing:
            return out_of_date(self.root, names)
        return ({n for n in names if n in self.rebuild}
                | missing_status(self.root, [n for n in names if n not in self.rebuild])[0])

    def _submit(self, name: str) -> Any:
        import ray

        info = self.pipeline.stages[name]
        others = tuple(p for p in self.pipeline.persistent_outputs() if p not in info.persist)
        data_deps = [d for d in info.deps if not _under(d, CODE_PATHS)]
        data = pack(self.root, data_deps, skip=others)
        key = hashlib.sha256("\0".join([name, info.cmd, self.code_digest,
                                        hashlib.sha256(data).hexdigest()]).encode()).hexdigest()
        resume = pack(self.root, info.persist, skip=others)  # checkpoints the driver holds: not in the key
        job = StageJob(name, info.cmd, info.outs, info.persist, key, os.environ.get(ray_stage.SCRATCH_ENV, ""),
                       self.cpus_per_stage)
        return self.task.remote(job, self.code, ray.put(data), ray.put(resume), self.board)

    def _finish(self, name: str, ref: Any, start: float) -> None:
        import ray

        log = self.root / self.log_dir / f"{name.replace('/', '_')}.log"
        total = f"{(time.monotonic() - start) / 60:5.1f} min"
        try:
            result: StageResult = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one named error below
            failure = _failure(exc)
            node = failure.node_ip if failure else self._node_of(name)
            log.write_text(failure.log if failure else f"{type(exc).__name__}: {exc}\n")
            tail = failure.log_tail if failure else str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
            self.outcomes[name] = Outcome(name, "failed", node)
            print(f"[{total}] {name}: FAILED on node {node}; log {log}:\n{tail}", file=sys.stderr, flush=True)
            return
        try:
            install_outputs(self.root, result.outputs, self.pipeline.stages[name].outs)
            commit_stage(self.root, name)
        except Exception as exc:  # noqa: BLE001 - e.g. an output that did not come back
            log.write_text(result.log + f"\nrecording the stage failed: {type(exc).__name__}: {exc}\n")
            self.outcomes[name] = Outcome(name, "failed", result.node_ip, result.node_id, result.attempt, result.seconds)
            print(f"[{total}] {name}: ran on node {result.node_ip} but could not be recorded: {exc}", file=sys.stderr,
                  flush=True)
            return
        log.write_text(result.log)
        self.outcomes[name] = Outcome(name, "ran", result.node_ip, result.node_id, result.attempt, result.seconds)
        retry = f", attempt {result.attempt}" if result.attempt > 1 else ""
        print(f"[{total}] {name}: done in {result.seconds / 60:.1f} min on {result.node_ip}{retry} "
              f"({len(self.outcomes)}/{len(self.pipeline.graph.upstream)})", flush=True)

    def _node_of(self, name: str) -> str:
        import ray

        with contextlib.suppress(Exception):
            return str(ray.get(self.board.snapshot.remote(), timeout=10).get(name, {}).get("node_ip", "unknown"))
        return "unknown"

    def _lines(self, running: dict[Any, str]) -> list[str]:
        import ray

        try:
            board = ray.get(self.board.snapshot.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - progress is advisory
            return []
        now = time.time()
        return [progress_line(name, board[name], now) for name in sorted(running.values()) if name in board]

    def _write_summary(self) -> None:
        path = self.root / self.log_dir / "summary.csv"
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["stage", "status", "node_ip", "node_id", "attempt", "seconds"])
            for o in sorted(self.outcomes.values(), key=lambda o: o.name):
                writer.writerow([o.name, o.status, o.node_ip, o.node_id, o.attempt, f"{o.seconds:.1f}"])
        os.replace(tmp, path)


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _failure(exc: BaseException) -> StageFailed | None:
    """The StageFailed inside a RayTaskError (Ray wraps the task's exception)."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, StageFailed):
        return exc
    return cause if isinstance(cause, StageFailed) else None


def install_outputs(root: Path, outputs: bytes, outs: Sequence[str]) -> None:
    """Put a finished stage's outputs in place: unpack beside the project, then rename over the old."""
    staging = root / ".cohirl-repro-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        names = unpack(outputs, staging)
        tops = sorted({*outs, *(n for n in names if _under(n, (ray_stage.EXECUTED_DIR,)))})
        for rel in tops:
            src, dst = staging / rel, root / rel
            if not src.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            elif dst.exists() or dst.is_symlink():
                dst.unlink()
            os.replace(src, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- entry point ------------------------------------------------------------------------------
def repro(targets: Sequence[str] = (), jobs: int | None = None, force: bool = False, root: Path = Path("."),
          backend: str = "ray", dvc: str = "dvc", cpus_per_stage: float = 1.0,
          allow_unauthenticated: bool = False, allow_missing: bool = False) -> None:
    """Reproduce the pipeline (or ``targets`` and their upstream) on ``backend``. ``allow_missing``: a
    stage whose only change is outputs absent from this machine is not rerun, unless a stage that runs
    needs them (``missing_rebuilds``): how a profile run made in parts resumes on a fresh machine."""
    os.environ["PATH"] = ray_stage.venv_first(os.environ.get("PATH", ""))  # the venv, activated or not
    if backend not in BACKENDS:
        raise CohirlError(f"unknown backend {backend!r}; choose one of {BACKENDS}.")
    if jobs is not None and jobs < 1:
        raise CohirlError(f"--jobs must be >= 1 (got {jobs}).")
    if backend == "ray":
        check_authenticated(os.environ.get("RAY_ADDRESS", "").strip(), allow_unauthenticated)
    from cohirl.wiring import check_project

    check_project(root)  # cohirl's own pipeline: settings that build, dvc.yaml of its pipelines
    own = (root / "params.yaml").exists()
    if backend == "dvc":
        if allow_missing:
            raise CohirlError("--allow-missing needs the ray backend: `dvc repro --allow-missing` skips a stage "
                              "whose outputs are missing even when a stage that runs needs them.")
        if own:
            rename_lock_entries(root)
        return _dvc_repro(targets, force, root, dvc)
    full = pipeline = read_pipeline(root)
    if own:  # lock entries of renamed stages carried over before anything is pruned
        rename_lock_entries(root, full.stages)
    if targets:
        graph = pipeline.graph.restricted_to(targets)
        pipeline = Pipeline(graph, {n: pipeline.stages[n] for n in graph.upstream})
    local = connect(jobs or max(1, os.cpu_count() or 1))
    try:
        nodes = preflight()
        where = "a local Ray instance" if local else f"the Ray cluster at {os.environ['RAY_ADDRESS']}"
        print(f"cohirl repro: {len(pipeline.graph.upstream)} stages on {where} ({len(nodes)} node(s)); "
              f"logs in {LOG_DIR}/", flush=True)
        runner = RayRepro(pipeline, root, force, max_in_flight=None if local else jobs, cpus_per_stage=cpus_per_stage,
                          allow_missing=allow_missing and not force)
        if runner.allow_missing:
            changed, _ = missing_status(root, list(pipeline.graph.upstream))
            runner.rebuild = missing_rebuilds(pipeline, changed, lambda rel: (root / rel).exists())
        ok = runner.run()
    finally:
        import ray

        ray.shutdown()
    if stale := prune_lock(root, list(full.stages)):
        print(f"cohirl repro: dropped {len(stale)} dvc.lock entries of stages dvc.yaml no longer defines", flush=True)
    if not ok:
        raise CohirlError(f"stage(s) {runner.failed} failed (logs above and in {LOG_DIR}/); fix the cause and "
                          "rerun: finished stages are recorded and skipped.")
    if runner.allow_missing:
        _final_check_missing(list(pipeline.graph.upstream), root)
    else:
        _final_check(targets, root, dvc)


def _dvc_repro(targets: Sequence[str], force: bool, root: Path, dvc: str) -> None:
    proc = subprocess.run([dvc, "repro", *(["--force"] if force else []), *targets], cwd=root)
    if proc.returncode != 0:
        raise CohirlError(f"`dvc repro` failed (exit {proc.returncode}); its output is above.")


def _final_check(targets: Sequence[str], root: Path, dvc: str) -> None:
    """After the Ray run, ``dvc status`` of the pipeline must find nothing left to run.

    Only ``dvc.yaml``'s stages: a ``.dvc`` file's data that a fresh clone has not pulled (``data.dvc``)
    is no stage of the run and does not make it incomplete."""
    check = subprocess.run([dvc, "status", *(targets or ["dvc.yaml"])], cwd=root, capture_output=True, text=True)
    if check.returncode != 0 or "up to date" not in check.stdout:
        raise CohirlError(f"after the Ray run `dvc status` still reports changes:\n{check.stdout[-2000:]}"
                          f"{check.stderr[-2000:]}")
    print("cohirl repro: done; `dvc status` reports the pipeline up to date", flush=True)


def _final_check_missing(names: Sequence[str], root: Path) -> None:
    """With missing outputs allowed: nothing may be left to rerun but outputs that are not on this machine."""
    changed, missing = missing_status(root, names)
    if changed:
        raise CohirlError(f"after the Ray run DVC still reports changes beyond missing outputs: {sorted(changed)}")
    absent = f"; {len(missing)} stage(s) up to date with outputs not on this machine" if missing else ""
    print(f"cohirl repro: done; DVC reports nothing to rerun (missing outputs allowed{absent})", flush=True)
