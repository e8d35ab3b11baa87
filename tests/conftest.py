"""Shared fixtures: tests make their own small data; nothing reaches the network."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from cohirl.demos.dataset import Episode  # noqa: E402
from cohirl.envs.base import TaskSpec  # noqa: E402

FAKE_SPEC = TaskSpec(name="fake", simulator="robosuite", horizon=50, action_dim=7, state_dim=5,
                     env_state_dim=3, language="do the fake thing", sim_name="Fake")


def make_episodes(n: int, seed: int = 0, spec: TaskSpec = FAKE_SPEC) -> list[Episode]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = 8 + i
        out.append(Episode(
            seed=100 + i,
            state=rng.normal(size=(t, spec.state_dim)).astype(np.float32),
            env_state=rng.normal(size=(t, spec.env_state_dim)).astype(np.float32),
            action=rng.uniform(-1, 1, (t, spec.action_dim)).astype(np.float32),
            reward=np.r_[np.zeros(t - 1), 1.0].astype(np.float32),
            done=np.r_[np.zeros(t - 1, bool), True],
            success=np.r_[np.zeros(t - 1, bool), True],
        ))
    return out


@pytest.fixture
def fake_spec() -> TaskSpec:
    return FAKE_SPEC


@pytest.fixture
def episodes() -> list[Episode]:
    return make_episodes(3)


# -- pipeline projects and a loopback Ray cluster (tests/test_pipeline_smoke.py, test_ray_cluster.py) --
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", "notebooks", "cohirl")
VENV_BIN = str(Path(sys.executable).parent)


def tool_env(**extra: str) -> dict[str, str]:
    """The environment of a pipeline command: the venv first on PATH, offline, no analytics."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    return {**env, **extra}


def run_tool(cmd: list[str], cwd: Path, **extra: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(**extra), capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def copy_project(dest: Path, profile: str = "smoke") -> Path:
    """A scratch copy of the project (a committed git repo, as a user's clone is) on ``profile``."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))
        else:
            shutil.copy(src, dest / name)
    run_tool(["git", "init", "-q"], dest)
    run_tool(["dvc", "init", "-q"], dest)
    run_tool(["cohirl", "profile", profile, "--only"], dest)
    run_tool(["git", "add", "-A"], dest)
    run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project"], dest)
    return dest


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the whole pipeline last: the smoke reference runs in the background meanwhile."""
    items.sort(key=lambda item: "smoke_reference" in getattr(item, "fixturenames", ()))


# The sweep of tests/test_sweeps.py: one experiment through DVC's queue on a copy of the reference.
SWEEP_NAME = "sweep"
SWEEP_TASK = "hammer"  # registered, named by no profile
SWEEP_SETS = (f"profiles.smoke.tasks=[pick_place,{SWEEP_TASK}]", "profiles.smoke.methods=[csil_residual]",
              "profiles.smoke.finetune.env_steps=50")


def _git(repo: Path, *args: str) -> str:
    return run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], repo)


class QueuedSweep(threading.Thread):
    """Queues the sweep on a copy of the reference (its finished stages committed as the baseline) as
    soon as the reference run has finished, and runs DVC's queue worker on it, in the background: the
    worker runs it on the core that the unit tests leave idle. ``repo()`` waits until it has run."""

    def __init__(self, reference: subprocess.Popen, source: Path, dest: Path) -> None:
        super().__init__(daemon=True)
        self.reference, self.source, self.dest = reference, source, dest
        self.error: BaseException | None = None
        self.started_queue = False
        self.copied = threading.Event()  # the baseline is committed: tests may touch the reference again

    def run(self) -> None:
        try:
            if self.reference.wait() != 0:
                raise RuntimeError("the reference run failed (see the smoke_reference fixture)")
            shutil.copytree(self.source, self.dest, symlinks=True, ignore=shutil.ignore_patterns("executed"))
            _git(self.dest, "add", "-A")
            _git(self.dest, "commit", "-qm", "baseline: the smoke pipeline run")
            self.copied.set()
            run_tool(["dvc", "exp", "run", "--queue", "-n", SWEEP_NAME, *[a for s in SWEEP_SETS for a in ("-S", s)]],
                     self.dest)
            self.started_queue = True
            # returns when the worker has run the queue (the worker holds the output pipes)
            run_tool(["dvc", "queue", "start", "-j", "1"], self.dest)
        except BaseException as exc:  # handed to the test that asks for the sweep
            self.error = exc
        finally:
            self.copied.set()

    def repo(self) -> Path:
        self.join(timeout=1800)
        if self.is_alive() or self.error is not None:
            raise AssertionError(f"queueing the sweep failed: {self.error!r}")
        return self.dest


@dataclass(frozen=True)
class ReferenceRun:
    repo: Path
    proc: subprocess.Popen
    log: Path
    sweep: QueuedSweep | None


def _selected(request: pytest.FixtureRequest, fixture: str) -> bool:
    return any(fixture in getattr(item, "fixturenames", ()) for item in request.session.items)


@pytest.fixture(scope="session", autouse=True)
def _smoke_reference_run(request: pytest.FixtureRequest,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRun | None]:
    """Starts the reference run at the session's start when a selected test needs it (it takes minutes
    on one core; the unit tests use the other meanwhile), and the sweep right after it when a selected
    test needs that."""
    if not _selected(request, "smoke_reference"):
        yield None
        return
    repo = copy_project(tmp_path_factory.mktemp("smoke") / "project")
    log = repo.parent / "reference.log"
    with log.open("w") as handle:
        proc = subprocess.Popen(["cohirl", "repro", "--backend", "dvc"], cwd=repo, env=tool_env(), stdout=handle,
                                stderr=subprocess.STDOUT)
    sweep = None
    if _selected(request, "swept"):
        sweep = QueuedSweep(proc, repo, tmp_path_factory.mktemp("sweeps") / "project")
        sweep.start()
    yield ReferenceRun(repo, proc, log, sweep)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if sweep is not None and sweep.started_queue:  # a worker left running by a failed test
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=sweep.dest, env=tool_env(), capture_output=True)


@pytest.fixture(scope="session")
def smoke_reference(_smoke_reference_run: ReferenceRun) -> Path:
    """The smoke profile run by plain sequential ``dvc repro``: the reference every executor matches."""
    run = _smoke_reference_run
    assert run.proc.wait(timeout=1800) == 0, f"reference `dvc repro` failed:\n{run.log.read_text()[-4000:]}"
    if run.sweep is not None:  # some tests change the reference for a moment: copy it for the sweep first
        run.sweep.copied.wait(timeout=600)
    return run.repo


@pytest.fixture(scope="session")
def queued_sweep(_smoke_reference_run: ReferenceRun, smoke_reference: Path) -> Path:
    """The copy of the reference on which DVC's queue has run the sweep experiment."""
    assert _smoke_reference_run.sweep is not None, "request the `swept` fixture to have the sweep queued"
    return _smoke_reference_run.sweep.repo()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"ray node exited early:\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"ray node did not start in {timeout_s:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass(frozen=True)
class RayCluster:
    address: str
    auth: dict[str, str]  # RAY_AUTH_MODE=token and the token's file: what a driver needs to join

    def env(self, **extra: str) -> dict[str, str]:
        return tool_env(RAY_ADDRESS=self.address, **self.auth, **extra)


@pytest.fixture(scope="session")
def loopback_ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A real two-node Ray cluster on 127.0.0.1 (``ray start --head`` + ``ray start --address``), one
    CPU per node, with token authentication (README 'Security': a token made once, shared by every node
    and driver through RAY_AUTH_TOKEN_PATH); stops both nodes (SIGTERM to the blocking starts)."""
    logs, port = tmp_path_factory.mktemp("ray-nodes"), _free_port()
    token = logs / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    cluster = RayCluster(f"127.0.0.1:{port}", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    start = [sys.executable, "-m", "cohirl.ray_loopback", "start", "--block", "--num-cpus", "1",
             "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    nodes: list[subprocess.Popen] = []
    try:
        for name, args in (("head", ["--head", "--port", str(port), "--include-dashboard", "false"]),
                           ("worker", ["--address", cluster.address])):
            log = logs / f"{name}.log"
            with log.open("w") as handle:
                nodes.append(subprocess.Popen([*start, *args], stdout=handle, stderr=subprocess.STDOUT,
                                              env=tool_env(**cluster.auth), start_new_session=True))
            _wait_for(log, "Ray runtime started", nodes[-1])
        yield cluster
    finally:
        for proc in reversed(nodes):
            proc.send_signal(signal.SIGTERM)
        for proc in nodes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
