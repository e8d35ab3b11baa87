"""`cohirl repro`: DVC decides and records, Ray executes; on tiny real DVC projects."""

from __future__ import annotations

import csv
import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cohirl.errors import CohirlError
from cohirl.progress import PROGRESS_ENV, progress_bar, read_progress
from cohirl.ray_stage import pack, unpack
from cohirl.repro import (StageGraph, check_authenticated, check_nodes, check_reachable, install_outputs, missing_rebuilds,
                          missing_status, Pipeline, StageInfo, progress_line, read_pipeline, repro)
from conftest import RayCluster, tool_env

DVC = str(Path(sys.executable).parent / "dvc")

# Two independent 6 s stages and one that joins them; each records when its command ran.
STAMP = "python -c \"import time,sys; a=time.time(); time.sleep(6); open(sys.argv[1],'w').write(f'{a} {time.time()}')\""
PIPELINE = {"stages": {
    "left": {"cmd": f"{STAMP} left.txt", "outs": ["left.txt"]},
    "right": {"cmd": f"{STAMP} right.txt", "outs": ["right.txt"]},
    "join": {"cmd": "cat left.txt right.txt > join.txt", "deps": ["left.txt", "right.txt"], "outs": ["join.txt"]},
}}


def _project(tmp_path: Path, pipeline: dict) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=tool_env())
    subprocess.run([DVC, "init", "-q"], cwd=root, check=True, env=tool_env())
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    return root


def test_graph_priorities_and_restriction() -> None:
    graph = StageGraph({"demos": set(), "base": {"demos"}, "scaling": {"demos"}, "ft1": {"base"},
                        "ft2": {"base"}, "report": {"ft1", "ft2", "scaling"}})
    counts = graph.downstream_counts()
    assert counts == {"demos": 5, "base": 3, "scaling": 1, "ft1": 1, "ft2": 1, "report": 0}
    assert set(graph.restricted_to(["ft1"]).upstream) == {"ft1", "base", "demos"}
    with pytest.raises(CohirlError, match="unknown stage"):
        graph.restricted_to(["nope"])


def test_missing_outputs_are_rebuilt_only_where_a_stage_that_runs_needs_them() -> None:
    def stage(name: str, deps: list[str], outs: list[str]) -> StageInfo:
        return StageInfo(name, f"make {name}", ["cohirl/x.py", *deps], outs, [])

    stages = [stage("demos", [], ["data/demos"]), stage("base", ["data/demos"], ["data/base", "rows/base.csv"]),
              stage("scaling", ["data/demos"], ["data/scaling", "rows/scaling.csv"]),
              *(stage(f"ft{i}", ["data/base/model.pt"], [f"rows/ft{i}", f"data/ckpt/ft{i}"]) for i in (1, 2)),
              stage("report", ["rows/ft1", "rows/ft2", "rows/scaling.csv"], ["rows/tables"])]
    graph = StageGraph({"demos": set(), "base": {"demos"}, "scaling": {"demos"}, "ft1": {"base"},
                        "ft2": {"base"}, "report": {"ft1", "ft2", "scaling"}})
    pipeline = Pipeline(graph, {s.name: s for s in stages})
    fresh = lambda rel: not rel.startswith("data/")  # noqa: E731 - a fresh clone: rows and code, no data
    # ft2's code changed: its base and the base's demos are rebuilt; ft1, scaling (rows in git) are not.
    assert missing_rebuilds(pipeline, {"ft2", "report"}, fresh) == {"ft2", "report", "base", "demos"}
    assert missing_rebuilds(pipeline, set(), fresh) == set()
    assert missing_rebuilds(pipeline, {"report"}, fresh) == {"report"}
    assert missing_rebuilds(pipeline, {"ft2"}, lambda rel: True) == {"ft2"}  # nothing missing, nothing added


def test_pack_is_deterministic_skips_and_keeps_existing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d" / "ckpt").mkdir(parents=True)
    (src / "d" / "a.txt").write_text("a")
    (src / "d" / "ckpt" / "c.pt").write_text("new")
    first = pack(src, ["d", "missing"], skip=("d/ckpt",))
    os.utime(src / "d" / "a.txt", (1, 1))  # timestamps do not enter the tar
    assert pack(src, ["d"], skip=("d/ckpt",)) == first
    dest = tmp_path / "dest"
    assert unpack(first, dest) == ["d/a.txt"]
    (dest / "d" / "ckpt").mkdir()
    (dest / "d" / "ckpt" / "c.pt").write_text("killed attempt's")
    unpack(pack(src, ["d"]), dest, keep_existing=("d/ckpt",))
    assert (dest / "d" / "ckpt" / "c.pt").read_text() == "killed attempt's"


def test_an_empty_output_directory_travels(tmp_path: Path) -> None:
    (tmp_path / "src" / "data" / "demo_scaling" / "pick_place").mkdir(parents=True)  # n_demos: []
    names = unpack(pack(tmp_path / "src", ["data/demo_scaling/pick_place"]), tmp_path / "dest")
    assert names == ["data/demo_scaling/pick_place"]
    assert (tmp_path / "dest" / "data" / "demo_scaling" / "pick_place").is_dir()


def test_install_outputs_replaces_old_outputs_whole(tmp_path: Path) -> None:
    work, root = tmp_path / "work", tmp_path / "root"
    (work / "out").mkdir(parents=True)
    (work / "out" / "new.csv").write_text("new")
    (root / "out").mkdir(parents=True)
    (root / "out" / "stale.csv").write_text("stale")
    install_outputs(root, pack(work, ["out"]), ["out"])
    assert sorted(p.name for p in (root / "out").iterdir()) == ["new.csv"]
    assert not (root / ".cohirl-repro-staging").exists()


def test_progress_is_mirrored_even_when_the_bar_is_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, str(tmp_path / "p.json"))
    bar = progress_bar(total=7, desc="finetune env steps", disable=True, initial=2)
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert read_progress(tmp_path / "p.json") == {**read_progress(tmp_path / "p.json"), "phase": "finetune env steps",
                                                  "done": 7, "total": 7}
    entry = {"node_ip": "10.0.0.2", "attempt": 2, "since": 0.0, "state": {"phase": "x", "done": 50, "total": 100,
                                                                         "time": 60.0},
             "first": {"x": {"phase": "x", "done": 0, "total": 100, "time": 0.0}}}
    line = progress_line("finetune@sq", entry, now=120.0)
    assert "finetune@sq [10.0.0.2, retry 1] x 50/100" in line and "ETA 1.0 min" in line


def test_node_check_names_the_node_and_the_fix() -> None:
    local = {"python": "3.11.7", "packages": ["torch==2.10.0", "ray==2.60.0"], "node_ip": "127.0.0.1",
             "node_id": "a" * 20, "executable": "/v/bin/python"}
    check_nodes([local], local)
    bare = {**local, "packages": ["ray==2.60.0"], "node_ip": "10.1.2.3", "executable": "/usr/bin/python3"}
    with pytest.raises(CohirlError, match=r"node 10\.1\.2\.3 .*lacks the driver's packages.*torch==2.10.0.*make setup"):
        check_nodes([local, bare], local)
    with pytest.raises(CohirlError, match=r"node 10\.1\.2\.3 .*Python 3\.12"):
        check_nodes([{**local, "python": "3.12.1", "node_ip": "10.1.2.3"}], local)


def test_unreachable_ray_address_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CohirlError, match="not of the form host:port"):
        check_reachable("nohost")
    root = _project(tmp_path, PIPELINE)
    proc = subprocess.run([sys.executable, "-m", "cohirl.cli", "repro", "--allow-unauthenticated"], cwd=root,
                          capture_output=True, text=True, env=tool_env(RAY_ADDRESS="127.0.0.1:9"), timeout=120)
    assert proc.returncode == 2
    assert "RAY_ADDRESS=127.0.0.1:9 is unreachable" in proc.stderr and "ray start --head" in proc.stderr
    assert not (root / "dvc.lock").exists() and not (root / "left.txt").exists()


@pytest.mark.parametrize("mode", ["", "disabled"])
def test_a_cluster_without_token_authentication_is_refused_unless_the_user_says_so(tmp_path: Path, mode: str) -> None:
    root = _project(tmp_path, PIPELINE)
    env = {**tool_env(RAY_ADDRESS="127.0.0.1:9"), "RAY_AUTH_MODE": mode}
    proc = subprocess.run([sys.executable, "-m", "cohirl.cli", "repro"], cwd=root, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"without token authentication (RAY_AUTH_MODE={mode or 'unset'})" in proc.stderr
    assert "RAY_AUTH_MODE=token" in proc.stderr and "--allow-unauthenticated" in proc.stderr
    assert "unreachable" not in proc.stderr  # refused before anything is contacted
    assert not (root / "dvc.lock").exists() and not (root / "left.txt").exists()
    with pytest.raises(CohirlError, match="is unreachable"):  # the flag lets it through to the next check
        connect_env = {**env, "RAY_AUTH_MODE": mode}
        with pytest.MonkeyPatch.context() as mp:
            for key, value in connect_env.items():
                mp.setenv(key, value)
            check_authenticated("127.0.0.1:9", allow_unauthenticated=True)
            check_reachable("127.0.0.1:9")


def test_a_token_cluster_refuses_a_driver_without_its_token(tmp_path: Path, loopback_ray_cluster: RayCluster) -> None:
    root = _project(tmp_path, PIPELINE)
    env = {**loopback_ray_cluster.env(), "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "cohirl.cli", "repro", "--allow-unauthenticated"], cwd=root,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"could not join the Ray cluster at RAY_ADDRESS={loopback_ray_cluster.address}" in proc.stderr
    assert not (root / "left.txt").exists()


def _listening_addresses_while_running(proc: subprocess.Popen) -> set[tuple[str, str]]:
    """(process name, address) of every listening socket of ``proc``'s descendants, polled until it exits."""
    import psutil

    seen: set[tuple[str, str]] = set()
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            pids = {child.pid: child.name() for child in parent.children(recursive=True)}
        except psutil.Error:
            pids = {}
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
                seen.add((pids[conn.pid], conn.laddr.ip))
        time.sleep(0.5)
    return seen


# Each stage announces itself in a shared folder and waits (up to 90 s) for the other: side by side they
# meet whatever the workers' start-up latency; one after the other, the first one finds itself alone.
MEET = ("python -c \"import pathlib,sys,time; d=pathlib.Path(sys.argv[1]); me,other=sys.argv[2:4]; "
        "(d/me).touch(); t=time.time()+90\n"
        "while not (d/other).exists() and time.time()<t: time.sleep(0.2)\n"
        "open(me+'.txt','w').write(me+(' met '+other if (d/other).exists() else ' alone'))\" {barrier} {me} {other}")


def _meeting_pipeline(barrier: Path) -> dict:
    meet = {me: {"cmd": MEET.format(barrier=barrier, me=me, other=other), "outs": [f"{me}.txt"]}
            for me, other in (("left", "right"), ("right", "left"))}
    return {"stages": {**meet, "join": PIPELINE["stages"]["join"]}}


def test_local_ray_instance_runs_independent_stages_side_by_side(tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    root = _project(tmp_path, _meeting_pipeline(barrier))
    # As in a fresh clone: a .dvc-tracked directory whose data was never pulled (no stage uses it).
    (root / "raw.dvc").write_text("outs:\n- md5: c453d4fbbf760f883823524fd07614f9.dir\n  path: raw\n")
    pipeline = read_pipeline(root)
    assert pipeline.graph.upstream == {"left": set(), "right": set(), "join": {"left", "right"}}
    assert pipeline.stages["join"].deps == ["left.txt", "right.txt"]
    # A CLI process of its own: one Ray driver per process, as `cohirl repro` runs (RAY_ADDRESS unset).
    cli = subprocess.Popen([sys.executable, "-m", "cohirl.cli", "repro", "--jobs", "2"], cwd=root, text=True,
                           env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    listening = _listening_addresses_while_running(cli)
    out, err = cli.communicate(timeout=300)
    cli = subprocess.CompletedProcess(cli.args, cli.returncode, out, err)
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    # The local instance (GCS server, raylet, workers, agents) listens on loopback only: nothing of it is
    # reachable from another interface (README 'Security').
    names = {name for name, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening
    assert all(ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback for _, ip in listening), listening
    assert "on a local Ray instance" in cli.stdout and "reports the pipeline up to date" in cli.stdout
    assert (root / "left.txt").read_text() == "left met right", "left and right should have run side by side"
    assert (root / "right.txt").read_text() == "right met left"
    assert (root / "join.txt").read_text() == "left met rightright met left"
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"left", "right", "join"}
    status = subprocess.run([DVC, "status", "dvc.yaml"], cwd=root, capture_output=True, text=True, check=True)
    assert "up to date" in status.stdout
    rerun = subprocess.run([DVC, "repro"], cwd=root, capture_output=True, text=True, check=True)
    assert "Running stage" not in rerun.stdout


def test_failing_stage_names_itself_and_its_node_and_records_nothing(tmp_path: Path, loopback_ray_cluster: RayCluster,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = {"stages": {**PIPELINE["stages"],
                           "right": {"cmd": "echo boom >&2; touch right.txt; exit 3", "outs": ["right.txt"]},
                           "silent": {"cmd": "true", "outs": ["never.txt"]}}}
    root = _project(tmp_path, pipeline)
    for key, value in loopback_ray_cluster.env().items():
        if key.startswith("RAY_"):
            monkeypatch.setenv(key, value)
    with pytest.raises(CohirlError, match=r"stage\(s\) \['right', 'silent'\] failed"):
        repro(root=root, dvc=DVC)
    log = (root / "logs/repro/right.log").read_text()
    assert "boom" in log and "on node 127.0.0.1" in log
    assert "did not produce ['never.txt']" in (root / "logs/repro/silent.log").read_text()
    assert not (root / "right.txt").exists() and not (root / "join.txt").exists()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"left"}  # only the stage that succeeded is recorded


def test_dvc_backend_runs_without_the_venv_on_path(tmp_path: Path) -> None:
    # `.venv/bin/cohirl repro` with the venv not activated: dvc and the stages' tools come from the venv.
    root = _project(tmp_path, {"stages": {"one": {"cmd": "dvc version > one.txt", "outs": ["one.txt"]}}})
    bare = tool_env(PATH="/usr/bin:/bin")
    cli = subprocess.run([sys.executable, "-m", "cohirl.cli", "repro", "--backend", "dvc"], cwd=root,
                         capture_output=True, text=True, env=bare, timeout=300)
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    assert "DVC version" in (root / "one.txt").read_text()
    assert set(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == {"one"}


def test_lock_entries_of_stages_no_longer_defined_are_dropped(tmp_path: Path) -> None:
    from cohirl.repro import prune_lock

    lock = {"schema": "2.0", "stages": {"demos@quick-square": {"cmd": "a"}, "demos@square": {"cmd": "old"}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    before = (tmp_path / "dvc.lock").read_text()
    assert prune_lock(tmp_path, ["demos@quick-square", "demos@square"]) == []
    assert (tmp_path / "dvc.lock").read_text() == before  # nothing stale: untouched
    assert prune_lock(tmp_path, ["demos@quick-square", "report@quick"]) == ["demos@square"]
    kept = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert kept == {"schema": "2.0", "stages": {"demos@quick-square": {"cmd": "a"}}}
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_renamed_stage_keeps_its_lock_entry_and_dvc_reruns_nothing(tmp_path: Path) -> None:
    # foreach stages `make@p-<x>` became matrix stages `make-p@<x>`: same commands, deps and outputs.
    from cohirl.repro import rename_lock_entries

    cmd = "python -c \"import sys; open(sys.argv[1], 'w').write(sys.argv[1])\" out-${item.x}"
    root = _project(tmp_path, {"stages": {"make": {"foreach": {"p-a": {"x": "a"}, "p-b": {"x": "b"}},
                                                   "do": {"cmd": cmd, "outs": ["out-${item.x}"]}}}})
    subprocess.run(["dvc", "repro", "-q"], cwd=root, check=True, env=tool_env())
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    lock["gone@p-c"] = {"cmd": "echo c"}  # a stage removed, not renamed: left for prune_lock
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": lock}, sort_keys=False))
    (root / "params.yaml").write_text("xs: [a, b]\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"make-p": {
        "matrix": {"x": "${xs}"}, "cmd": cmd, "outs": ["out-${item.x}"]}}}))
    assert rename_lock_entries(root) == {"make@p-a": "make-p@a", "make@p-b": "make-p@b"}
    assert set(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == {"make-p@a", "make-p@b", "gone@p-c"}
    assert rename_lock_entries(root) == {}
    status = subprocess.run(["dvc", "status", "make-p"], cwd=root, capture_output=True, text=True, env=tool_env())
    assert "up to date" in status.stdout, status.stdout + status.stderr


WRITE = "python -c \"import sys; open(sys.argv[1], 'w').write(' '.join(sys.argv[2:]))\""
FRESH_MACHINE = {"stages": {  # cached outputs (demos, base) and persistent checkpoints are not in git
    "demos": {"cmd": f"{WRITE} demos.txt demos", "outs": ["demos.txt"]},
    "base": {"cmd": "cat demos.txt > base.txt", "deps": ["demos.txt"], "outs": ["base.txt"]},
    **{f"run_{x}": {"cmd": f"cat base.txt > rows_{x}.txt && mkdir -p ckpt_{x} && {WRITE} ckpt_{x}/last {x}",
                    "deps": ["base.txt"], "outs": [{f"rows_{x}.txt": {"cache": False}},
                                                   {f"ckpt_{x}": {"cache": False, "persist": True}}]} for x in "ab"},
    "other": {"cmd": f"{WRITE} other.txt other", "outs": ["other.txt"]},
    "report": {"cmd": "cat rows_a.txt rows_b.txt > report.txt", "deps": ["rows_a.txt", "rows_b.txt"],
               "outs": [{"report.txt": {"cache": False}}]},
}}


def test_allow_missing_resumes_a_run_in_parts_on_a_fresh_machine(tmp_path: Path, loopback_ray_cluster: RayCluster,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path, FRESH_MACHINE)
    subprocess.run([DVC, "repro", "-q"], cwd=root, check=True, env=tool_env())
    locked = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    # A fresh clone: rows and the lock are in git; cached outputs, DVC cache and checkpoints are not.
    for rel in ("demos.txt", "base.txt", "other.txt", "ckpt_a", "ckpt_b", ".dvc/cache"):
        subprocess.run(["rm", "-rf", rel], cwd=root, check=True)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())
    stages["stages"]["run_b"]["cmd"] += " && echo v2 >> rows_b.txt"  # run_b's code changed since
    (root / "dvc.yaml").write_text(yaml.safe_dump(stages))
    names = list(FRESH_MACHINE["stages"])
    assert missing_status(root, names) == ({"run_b"}, {"demos", "base", "run_a", "other"})
    with pytest.raises(CohirlError, match="needs the ray backend"):
        repro(root=root, dvc=DVC, backend="dvc", allow_missing=True)
    for key, value in loopback_ray_cluster.env().items():
        if key.startswith("RAY_"):
            monkeypatch.setenv(key, value)
    repro(root=root, dvc=DVC, allow_missing=True)
    with (root / "logs/repro/summary.csv").open() as handle:
        status = {row["stage"]: row["status"] for row in csv.DictReader(handle)}
    assert status == {"demos": "ran", "base": "ran", "run_b": "ran", "report": "ran",
                      "run_a": "up to date", "other": "up to date"}
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert lock["base"]["outs"] == locked["base"]["outs"]  # rebuilt to the hash the lock held
    assert lock["run_a"] == locked["run_a"] and not (root / "ckpt_a").exists() and not (root / "other.txt").exists()
    assert (root / "report.txt").read_text() == "demosdemosv2\n"
    assert missing_status(root, names) == (set(), {"run_a", "other"})
