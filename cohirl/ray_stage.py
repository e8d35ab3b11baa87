"""One DVC stage on a Ray worker: unpack its inputs, run its command, pack its outputs.

The driver (:mod:`cohirl.repro`) ships the project's code and the stage's data dependencies as tar
bytes and gets the stage's declared outputs back the same way, so worker nodes need no shared disk
and no checkout: only a venv built from the same lock (``make setup``) that ``ray start`` runs from.
This module is sent to the workers by value (cloudpickle), so it imports only the standard library
and ray; the stage's own command imports the shipped ``cohirl`` (``PYTHONPATH`` = the scratch copy).

Scratch directories are keyed by the stage and a digest of everything shipped, and kept until the
stage succeeds: when Ray retries a task whose worker died (``kill -9``, OOM), the retry on the same
node finds the killed attempt's checkpoints and the stage resumes from them (finetuning and base
training checkpoint atomically); a retry on another node starts the stage afresh.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from cohirl._runtime import STAGE_CPUS_ENV

SCRATCH_ENV = "COHIRL_RAY_SCRATCH"
PROGRESS_FILE = ".cohirl-progress.json"
WORKER_PID_FILE = ".cohirl-worker-pid"  # the Ray worker process running the stage (tests kill it)
EXECUTED_DIR = "results/executed"
_PR_SET_PDEATHSIG = 1


@dataclass
class StageJob:
    """What a worker needs to know about one stage (everything else travels as tar bytes)."""

    name: str
    cmd: str
    outs: list[str]
    persist: list[str] = field(default_factory=list)
    key: str = ""
    scratch: str = ""  # the driver's $COHIRL_RAY_SCRATCH (workers do not inherit the driver's environment)
    cpus: float = 1.0  # the Ray CPUs the stage holds (--cpus-per-stage): $COHIRL_STAGE_CPUS for the stage


@dataclass
class StageResult:
    name: str
    node_ip: str
    node_id: str
    seconds: float
    attempt: int
    outputs: bytes
    log: str


class StageFailed(Exception):
    """The stage's command failed on a worker: carries the node and the log's tail."""

    def __init__(self, name: str, node_ip: str, returncode: int, log_tail: str, log: str = "") -> None:
        super().__init__(name, node_ip, returncode, log_tail, log)
        self.name, self.node_ip, self.returncode, self.log_tail, self.log = name, node_ip, returncode, log_tail, log

    def __str__(self) -> str:
        return f"stage {self.name} failed on node {self.node_ip} (exit {self.returncode}):\n{self.log_tail}"


# -- tar helpers (used on both sides) ---------------------------------------------------------
def _walk(root: Path, rel: str, skip: tuple[str, ...]) -> Iterator[str]:
    path = root / rel
    if path.is_file():
        yield rel
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        if not dirnames and not filenames:  # an empty output directory is an output too
            member = os.path.relpath(dirpath, root)
            if not any(member == s or member.startswith(s.rstrip("/") + "/") for s in skip):
                yield member
        for name in sorted(filenames):
            member = os.path.relpath(os.path.join(dirpath, name), root)
            if not any(member == s or member.startswith(s.rstrip("/") + "/") for s in skip):
                yield member


def pack(root: Path, paths: Iterable[str], skip: tuple[str, ...] = ()) -> bytes:
    """A deterministic tar (sorted members, no timestamps or owners) of ``paths`` under ``root``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for rel in sorted(set(paths)):
            if not (root / rel).exists():
                continue
            for member in _walk(root, rel, skip):
                info = tar.gettarinfo(str(root / member), arcname=member)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isdir():
                    tar.addfile(info)
                    continue
                with open(root / member, "rb") as handle:
                    tar.addfile(info, handle)
    return buffer.getvalue()


def unpack(data: bytes, dest: Path, keep_existing: tuple[str, ...] = ()) -> list[str]:
    """Extract ``data`` under ``dest``; members under ``keep_existing`` paths that exist are kept."""
    names: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            top = next((k for k in keep_existing if member.name == k or member.name.startswith(k + "/")), None)
            if top is not None and (dest / top).exists():
                continue
            tar.extract(member, dest, filter="data")
            names.append(member.name)
    return names


# -- the worker side ---------------------------------------------------------------------------
def scratch_root(requested: str = "") -> Path:
    return Path(requested or os.environ.get(SCRATCH_ENV) or Path(tempfile.gettempdir()) / "cohirl-ray")


def _die_with_parent() -> None:  # the stage's command must not outlive a killed worker
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _kill_leftover(work: Path) -> None:
    """A previous attempt's processes (its worker was killed): its process group, and anything still
    running in the scratch directory (a notebook kernel starts its own session), are killed."""
    pgid_file = work / ".cohirl-pgid"
    with contextlib.suppress(ValueError, OSError, ProcessLookupError):
        os.killpg(int(pgid_file.read_text()), signal.SIGKILL)
    pgid_file.unlink(missing_ok=True)
    if not work.exists():
        return
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            if Path(os.readlink(proc / "cwd")) == work and int(proc.name) != os.getpid():
                os.kill(int(proc.name), signal.SIGKILL)


def _prepare(job: StageJob, work: Path, code: bytes, data: bytes, resume: bytes) -> int:
    """Unpack code and data into ``work`` (keeping a killed attempt's persistent outputs)."""
    _kill_leftover(work)
    attempts = work / ".cohirl-attempts"
    attempt = int(attempts.read_text()) + 1 if attempts.exists() else 1
    work.mkdir(parents=True, exist_ok=True)
    attempts.write_text(str(attempt))
    (work / WORKER_PID_FILE).write_text(str(os.getpid()))
    for out in job.outs:
        if out not in job.persist:
            target = work / out
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    unpack(code, work)
    unpack(data, work)
    unpack(resume, work, keep_existing=tuple(job.persist))
    return attempt


def venv_first(path: str) -> str:
    """``PATH`` with this interpreter's venv first: ``dvc`` and the stages' ``cohirl`` come from it."""
    bin_dir = os.path.dirname(sys.executable)
    return path if path.split(os.pathsep)[0] == bin_dir else os.pathsep.join([bin_dir, *filter(None, [path])])


def _stage_env(work: Path, cpus: float = 1.0) -> dict[str, str]:
    env = dict(os.environ)
    env[STAGE_CPUS_ENV] = f"{cpus:g}"
    env["PYTHONPATH"] = os.pathsep.join([str(work), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = venv_first(env.get("PATH", ""))
    env["COHIRL_PROGRESS_FILE"] = str(work / PROGRESS_FILE)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled", DVC_NO_ANALYTICS="1")
    return env


def _report_progress(board: Any, name: str, path: Path, proc: subprocess.Popen) -> None:
    last = None
    while proc.poll() is None:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            state = None
        if state and state != last and board is not None:
            board.update.remote(name, state)
            last = state
        time.sleep(1.0)


def _run_command(job: StageJob, work: Path, board: Any) -> tuple[int, str, float]:
    log_path = work / ".cohirl-stage.log"
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(job.cmd, shell=True, cwd=work, env=_stage_env(work, job.cpus), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        (work / ".cohirl-pgid").write_text(str(proc.pid))
        reporter = threading.Thread(target=_report_progress, args=(board, job.name, work / PROGRESS_FILE, proc),
                                    daemon=True)
        reporter.start()
        returncode = proc.wait()
    (work / ".cohirl-pgid").unlink(missing_ok=True)
    return returncode, log_path.read_text(errors="replace"), time.monotonic() - start


def _collect(job: StageJob, work: Path) -> bytes:
    """The declared outputs, plus the executed notebook copies (nothing else under results/ is shipped)."""
    missing = [out for out in job.outs if not (work / out).exists()]
    if missing:
        raise FileNotFoundError(f"stage {job.name} ran but did not produce {missing}")
    executed = sorted(os.path.relpath(p, work) for p in (work / EXECUTED_DIR).glob("*.ipynb")
                      if not p.name.endswith(".src.ipynb"))
    return pack(work, [*job.outs, *executed])


def execute_stage(job: StageJob, code: bytes, data: bytes, resume: bytes, board: Any = None) -> StageResult:
    """The Ray task: run one stage in a scratch copy; return its outputs (raise StageFailed).

    ``resume`` holds the driver's copy of the stage's persistent outputs (checkpoints); a killed
    attempt's newer ones in the scratch copy are kept."""
    import ray

    node_ip, node_id = ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()
    work = scratch_root(job.scratch) / f"{job.name.replace('/', '_').replace('@', '_')}-{job.key[:16]}"
    with _locked(work.parent / f"{work.name}.lock"):
        attempt = _prepare(job, work, code, data, resume)
        if board is not None:
            board.started.remote(job.name, node_ip, os.getpid(), attempt)
        returncode, log, seconds = _run_command(job, work, board)
        header = f"# cohirl repro: {job.name} on node {node_ip} (attempt {attempt})\n"
        if returncode != 0:
            tail = "\n".join(log.splitlines()[-25:])
            raise StageFailed(job.name, node_ip, returncode, tail, header + log)
        try:
            outputs = _collect(job, work)
        except FileNotFoundError as exc:
            raise StageFailed(job.name, node_ip, returncode, str(exc), header + log + f"\n{exc}\n") from None
        shutil.rmtree(work)
    return StageResult(job.name, node_ip, node_id, seconds, attempt, outputs, header + log)


def probe_node() -> dict[str, Any]:
    """What a node runs: its Python and the packages installed beside it (the preflight check)."""
    import importlib.metadata
    import platform

    import ray

    packages = sorted({f"{d.metadata['Name'].lower()}=={d.version}" for d in importlib.metadata.distributions()
                       if d.metadata["Name"] and d.metadata["Name"].lower() != "cohirl"})
    return {"node_ip": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id(),
            "python": platform.python_version(), "executable": sys.executable, "packages": packages}
