"""``cohirl`` command line: one subcommand per pipeline stage (the notebooks call the same library)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from cohirl import _runtime
from cohirl.errors import CohirlError

Handler = Callable[[argparse.Namespace], None]


def cmd_tasks(args: argparse.Namespace) -> None:
    from cohirl.envs import PAPER_SUITE, list_tasks

    header = f"{'task':<16} {'simulator':<10} {'horizon':>7} {'action':>6} {'state':>5} {'env_state':>9}  paper"
    print(header)
    print("-" * len(header))
    for s in sorted(list_tasks(), key=lambda s: (s.simulator, s.name)):
        paper = "yes" if s.name in PAPER_SUITE else ""
        print(f"{s.name:<16} {s.simulator:<10} {s.horizon:>7} {s.action_dim:>6} {s.state_dim:>5} "
              f"{s.env_state_dim:>9}  {paper}")


def _check_writable(out: Path) -> None:
    """Fail before the work, not after it: ``out``'s nearest existing parent must be a writable directory."""
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise CohirlError(f"cannot write {out}: {parent} is not a writable directory. Pass --out under a "
                          "directory you can write to.")


def cmd_demos(args: argparse.Namespace) -> None:
    from cohirl.demos.pipeline import make_demos

    from cohirl.demos.collect import NoiseConfig

    noise = NoiseConfig(pos_sigma=args.noise_pos, rot_sigma=args.noise_rot, hold_prob=args.hold_prob)
    if args.out is None:
        from cohirl.stages import data_dir

        args.out = data_dir() / "demos" / args.task
    out = args.out
    _check_writable(out)
    report = make_demos(args.task, args.n, args.seed, noise, out, overwrite=args.overwrite)
    print(f"wrote {args.n} demos to {out}; expert success {report.successes}/{report.attempts}")


def cmd_import_hdf5(args: argparse.Namespace) -> None:
    from cohirl.demos.hdf5_import import import_hdf5
    from cohirl.envs import get_spec

    _check_writable(args.out)
    out = import_hdf5(args.path, args.out, get_spec(args.task), tuple(args.state_keys),
                      tuple(args.env_state_keys), overwrite=args.overwrite, filter_key=args.filter_key,
                      from_states=args.from_states)
    print(f"imported {args.path} -> {out}")


def cmd_profile(args: argparse.Namespace) -> None:
    from cohirl.config import profile_section
    from cohirl.stages.check import check_profile
    from cohirl.wiring import set_profile, write_dvc_yaml

    check_profile(args.name)  # before params.yaml is rewritten: a profile that does not build is refused
    params = set_profile(args.name, Path("params.yaml"), only=args.only)
    if Path("dvc.yaml").exists():  # beside params.yaml: the pipelines' stages and plots, regenerated
        write_dvc_yaml(params, Path("dvc.yaml"))
        from cohirl.repro import rename_lock_entries

        for old, new in rename_lock_entries(Path(".")).items():
            print(f"dvc.lock: {old} -> {new}")
    section = profile_section(params, args.name)
    print(f"profile {args.name} (default): tasks={section['tasks']} seeds={section['seeds']} "
          f"methods={section['methods']}; pipelines in dvc.yaml: {params['pipelines']}")


def cmd_wiring(args: argparse.Namespace) -> None:
    from cohirl.config import read_params
    from cohirl.wiring import ROOT, missing_inputs, render_dvc_yaml, stage_bodies, write_dvc_yaml

    params = read_params(ROOT / "params.yaml")
    if args.write:
        print("dvc.yaml: regenerated" if write_dvc_yaml(params) else "dvc.yaml: up to date")
        from cohirl.repro import rename_lock_entries

        for old, new in rename_lock_entries(ROOT).items():
            print(f"dvc.lock: {old} -> {new}")
    missing = {name: m for name, b in stage_bodies().items() if (m := missing_inputs(b))}
    if missing:
        raise CohirlError(f"cohirl/pipeline.yaml: stages use inputs they do not list: {missing}; add them to "
                          "their deps/params.")
    if (ROOT / "dvc.yaml").read_text() != render_dvc_yaml(params):
        raise CohirlError("dvc.yaml differs from what cohirl/pipeline.yaml and params.yaml's pipelines make (code "
                          "dependencies, stages or plots); run `cohirl wiring --write`.")
    print("dvc.yaml lists what every stage runs.")


def cmd_notebook(args: argparse.Namespace) -> None:
    from cohirl.notebooks import parse_parameters, run_notebook

    from cohirl.wiring import check_project

    check_project(Path("."))  # a bad sweep stops at its first stage, naming what is wrong
    out = run_notebook(args.name, parse_parameters(args.param), tag=args.tag, output=args.output)
    print(f"executed {args.name} -> {out}")


# Unknown names fail before any data is looked for (else the first error is a missing dataset).
def _check_task(task: str) -> None:
    from cohirl.envs import get_spec

    get_spec(task)


def _check_method(method: str) -> None:
    from cohirl.methods import build_method

    build_method(method)


def cmd_demo_scaling(args: argparse.Namespace) -> None:
    from cohirl.stages import run_demo_scaling

    _check_task(args.task)
    table = run_demo_scaling(args.task, args.work_dir, profile=args.profile)
    print(table.to_string(index=False))


def cmd_finetune(args: argparse.Namespace) -> None:
    from cohirl.stages import run_finetune_stage

    _check_task(args.task)
    _check_method(args.method)
    evals = run_finetune_stage(args.task, args.method, args.seed, profile=args.profile)
    print(evals[["env_steps", "success_rate", "ci_low", "ci_high"]].to_string(index=False))


def cmd_repro(args: argparse.Namespace) -> None:
    from cohirl.repro import repro

    targets = list(args.targets)
    profile = args.profile
    if not targets and not profile and Path("params.yaml").exists():  # cohirl's own pipeline: the default profile
        from cohirl.config import read_params

        profile = read_params()["profile"]
    if profile:
        from cohirl.repro import profile_stages

        targets += profile_stages(profile)
    repro(targets, jobs=args.jobs, force=args.force, backend=args.backend, cpus_per_stage=args.cpus_per_stage,
          allow_unauthenticated=args.allow_unauthenticated, allow_missing=args.allow_missing)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cohirl", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("tasks", help="list registered tasks").set_defaults(fn=cmd_tasks)

    d = sub.add_parser("demos", help="collect expert demonstrations into a LeRobotDataset")
    d.add_argument("--task", required=True)
    d.add_argument("--n", type=int, default=50, help="successful episodes to keep")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--noise-pos", type=float, default=0.0, help="DART sigma on translation inputs")
    d.add_argument("--noise-rot", type=float, default=0.0, help="DART sigma on rotation inputs")
    d.add_argument("--hold-prob", type=float, default=0.0, help="timing jitter: repeat previous action")
    d.add_argument("--out", type=Path, default=None, help="dataset root (default data/demos/<task>)")
    d.add_argument("--overwrite", action="store_true")
    d.set_defaults(fn=cmd_demos)

    h = sub.add_parser("import-hdf5", help="import a robomimic/MimicGen HDF5 file")
    h.add_argument("path", type=Path)
    h.add_argument("--task", required=True, help="registered task the demos belong to")
    h.add_argument("--out", type=Path, required=True)
    h.add_argument("--state-keys", nargs="+", default=["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"])
    h.add_argument("--env-state-keys", nargs="+", default=["object"])
    h.add_argument("--filter-key", default=None, help="import only the demos of mask/<key> (e.g. train, valid)")
    h.add_argument("--from-states", action="store_true", help="replay each frame's MuJoCo state in the task's "
                   "simulator and record its own observations (the layout evaluation uses)")
    h.add_argument("--overwrite", action="store_true")
    h.set_defaults(fn=cmd_import_hdf5)

    nb = sub.add_parser("notebook", help="execute a pipeline notebook with papermill (kernel cohirl)")
    nb.add_argument("name", help="notebook stem, e.g. 01_demonstrations")
    nb.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    nb.add_argument("--tag", default="", help="suffix of the executed copy's name")
    nb.add_argument("--output", type=Path, default=None)
    nb.set_defaults(fn=cmd_notebook)

    ds = sub.add_parser("demo-scaling", help="BC base success vs number of demonstrations")
    ds.add_argument("--task", required=True)
    ds.add_argument("--work-dir", type=Path, default=None, help="where the per-N bases go "
                    "(default data/<profile>/demo_scaling/<task>)")
    ds.add_argument("--profile", default=None, help="params.yaml profile (default: its default profile)")
    ds.set_defaults(fn=cmd_demo_scaling)

    ft = sub.add_parser("finetune", help="one (task, method, seed) finetuning run (resumable)")
    ft.add_argument("--task", required=True)
    ft.add_argument("--method", required=True)
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--profile", default=None, help="params.yaml profile (default: its default profile)")
    ft.set_defaults(fn=cmd_finetune)

    rp = sub.add_parser("repro", help="the DVC pipeline on Ray (local, or the cluster at $RAY_ADDRESS)")
    rp.add_argument("targets", nargs="*", help="stages to reproduce with their upstream (default: the default "
                    "profile's pipeline)")
    rp.add_argument("--profile", default=None,
                    help="reproduce this profile's stages only (its pipeline must be in params.yaml's pipelines)")
    rp.add_argument("-j", "--jobs", type=int, default=None,
                    help="CPUs of the local Ray instance (default: CPU cores); on a cluster: stages in flight")
    rp.add_argument("-f", "--force", action="store_true", help="rerun stages even if up to date")
    rp.add_argument("--backend", choices=["ray", "dvc"], default="ray",
                    help="ray (default): stages as Ray tasks; dvc: plain sequential `dvc repro`")
    rp.add_argument("--cpus-per-stage", type=float, default=1.0, help="Ray CPUs each stage task asks for")
    rp.add_argument("--allow-unauthenticated", action="store_true",
                    help="join $RAY_ADDRESS although RAY_AUTH_MODE is not 'token' (a cluster no one else can reach)")
    rp.add_argument("--allow-missing", action="store_true",
                    help="do not rerun a stage only because its outputs are not on this machine (a fresh clone), "
                    "except those a stage that runs needs (rebuilt to the hashes dvc.lock holds): resumes a "
                    "profile run made in parts")
    rp.set_defaults(fn=cmd_repro)

    wi = sub.add_parser("wiring", help="check (or --write) each DVC stage's code dependencies against what it runs")
    wi.add_argument("--write", action="store_true", help="rewrite the cohirl/ deps of every stage in dvc.yaml")
    wi.set_defaults(fn=cmd_wiring)

    pr = sub.add_parser("profile", help="make a profile the default and add its pipeline to dvc.yaml's stages")
    pr.add_argument("name", help="smoke | quick | effect | paper")
    pr.add_argument("--only", action="store_true", help="keep only this profile's pipeline in dvc.yaml")
    pr.set_defaults(fn=cmd_profile)
    return p


def main(argv: list[str] | None = None) -> int:
    _runtime.set_offline_env()
    args = _parser().parse_args(argv)
    try:
        args.fn(args)
    except CohirlError as exc:
        print(f"cohirl: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write or read the checks above could not foresee (disk full, permissions)
        where = f" {exc.filename}" if exc.filename else ""
        print(f"cohirl: error: could not access{where}: {exc.strerror or exc}. Check the path, its "
              "permissions and the free disk space, then rerun.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
