"""Paired, seeded, parallel evaluation of a policy on a task: one table row per episode.

Every method is evaluated on the same initial states: episode ``i`` starts from
``eval_init_seeds(seed, n)[i]``, and ``policy.reset(init_seed)`` makes stochastic policies
reproducible too. An episode therefore depends only on its seed, so the rows are identical whatever
the number of worker processes.

Workers import this module: pandas and tqdm are imported only where the parent needs them.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from cohirl.envs import CameraConfig, Task, get_spec, make_task
from cohirl.errors import CohirlError
from cohirl.policies.interfaces import Policy, PolicyFactory

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("task", "method", "run_seed", "episode", "init_seed", "success", "length", "return")
# Salt so evaluation initial states differ from the small integer seeds used to collect/train.
_EVAL_SEED_SALT = 0x5EED_E7A1


def eval_init_seeds(seed: int, n: int) -> list[int]:
    """The ``n`` initial-state seeds of an evaluation (pure; a prefix of the list for a larger ``n``).

    Values are uint32 so every simulator's seeding (including ``np.random.seed``) accepts them.
    """
    if n < 0:
        raise CohirlError(f"number of evaluation episodes must be >= 0, got {n}.")
    state = np.random.SeedSequence([int(seed), _EVAL_SEED_SALT]).generate_state(n, dtype=np.uint32)
    return [int(value) for value in state]


def check_action_dims(policy: Policy, task: Task) -> None:
    """Raise a CohirlError when the policy's action size does not match the task's."""
    if int(policy.action_dim) != task.spec.action_dim:
        raise CohirlError(
            f"policy acts in {policy.action_dim} dimensions but task {task.spec.name!r} expects "
            f"{task.spec.action_dim}. Build the policy for this task (its action_dim must be "
            f"{task.spec.action_dim}), e.g. train/load the checkpoint made for {task.spec.name!r}."
        )


def run_episode(
    task: Task, policy: Policy, init_seed: int, deterministic: bool = True, horizon: int | None = None
) -> dict[str, Any]:
    """One episode from ``task.reset(init_seed)``; stops on success, at the task horizon or at ``horizon``.

    Returns ``{"init_seed", "success", "length", "return"}`` (the return is the sum of sparse rewards)
    and whatever the policy's optional ``episode_diagnostics()`` adds (e.g. the critic's value probe).
    """
    limit = task.spec.horizon if horizon is None else min(int(horizon), task.spec.horizon)
    if limit < 1:
        raise CohirlError(f"evaluation horizon must be >= 1 step, got {horizon}.")
    obs = task.reset(init_seed)
    policy.reset(init_seed)
    total, length, success = 0.0, 0, False
    while length < limit:
        obs, reward, terminated, truncated, info = task.step(policy.act(obs, deterministic=deterministic))
        total += reward
        length += 1
        success = bool(info["success"])
        if terminated or truncated:
            break
    extra = getattr(policy, "episode_diagnostics", None)
    return {"init_seed": int(init_seed), "success": success, "length": length, "return": total,
            **(extra() if callable(extra) else {})}


def lockstep_policy(policy: Policy, n: int) -> Any:
    """``policy`` for ``n`` episodes stepped together (its ``lockstep(n)``), or a clear error."""
    make = getattr(policy, "lockstep", None)
    if make is None:
        raise CohirlError(f"{type(policy).__name__} cannot step several episodes together: evaluate it with "
                          "lockstep 1 (eval.lockstep in params.yaml).")
    return make(n)


def run_lockstep(
    tasks: Sequence[Task], policy: Any, init_seeds: Sequence[int], deterministic: bool = True,
    horizon: int | None = None,
) -> list[dict[str, Any]]:
    """``run_episode`` for several episodes at once: ``tasks[i]`` runs from ``init_seeds[i]``, all of
    them step together and ``policy`` (a lockstep policy, ``lockstep_policy``) acts for every running
    episode in one call. An episode ends as it would alone; the rows are ``run_episode``'s."""
    if len(tasks) != len(init_seeds) or not tasks:
        raise CohirlError(f"lockstep needs one task per episode: {len(tasks)} tasks, {len(init_seeds)} seeds.")
    spec = tasks[0].spec
    limit = spec.horizon if horizon is None else min(int(horizon), spec.horizon)
    if limit < 1:
        raise CohirlError(f"evaluation horizon must be >= 1 step, got {horizon}.")
    obs = [task.reset(seed) for task, seed in zip(tasks, init_seeds)]
    policy.reset(list(init_seeds))
    n = len(tasks)
    totals, lengths, successes = [0.0] * n, [0] * n, [False] * n
    running = list(range(n))
    while running:
        actions = policy.act([obs[i] for i in running], running, deterministic=deterministic)
        still = []
        for i, action in zip(running, actions):
            obs[i], reward, terminated, truncated, info = tasks[i].step(action)
            totals[i] += reward
            lengths[i] += 1
            successes[i] = bool(info["success"])
            if not (terminated or truncated or lengths[i] >= limit):
                still.append(i)
        running = still
    return [{"init_seed": int(seed), "success": successes[i], "length": lengths[i], "return": totals[i],
             **policy.episode_diagnostics(i)} for i, seed in enumerate(init_seeds)]


# -- worker processes ----------------------------------------------------------------------------
# Each worker builds the task and the policy once (lazily, so that errors such as an action-size
# mismatch reach the caller as the original exception) and then runs whichever episodes it is sent.
_WORKER: dict[str, Any] = {}


def _init_worker(factory_bytes: bytes, task_name: str, cameras: CameraConfig | None, torch_threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(torch_threads)
    if cameras is not None and cameras.names:
        os.environ.setdefault("MUJOCO_GL", "egl")  # before any simulator imports MuJoCo
    _WORKER.update(factory_bytes=factory_bytes, task_name=task_name, cameras=cameras, torch_threads=torch_threads)


def _worker_state() -> tuple[Task, Policy]:
    if "task" not in _WORKER:
        task = make_task(_WORKER["task_name"], _WORKER["cameras"])
        policy = pickle.loads(_WORKER["factory_bytes"])()
        check_action_dims(policy, task)
        if "torch" in sys.modules:
            from cohirl._runtime import configure_torch

            configure_torch(_WORKER["torch_threads"])
        _WORKER.update(task=task, policy=policy)
    return _WORKER["task"], _WORKER["policy"]


def _worker_episode(episode: int, init_seed: int, deterministic: bool, horizon: int | None) -> dict[str, Any]:
    task, policy = _worker_state()
    return {"episode": episode, **run_episode(task, policy, init_seed, deterministic, horizon)}


def _worker_group(group: list[tuple[int, int]], deterministic: bool, horizon: int | None) -> list[dict[str, Any]]:
    task, policy = _worker_state()
    tasks = _WORKER.setdefault("lockstep_tasks", [task])
    tasks.extend(make_task(_WORKER["task_name"], _WORKER["cameras"]) for _ in range(len(group) - len(tasks)))
    key = ("lockstep_policy", len(group))
    if key not in _WORKER:
        _WORKER[key] = lockstep_policy(policy, len(group))
    return _group_rows(group, run_lockstep(tasks[: len(group)], _WORKER[key], [s for _, s in group],
                                           deterministic, horizon))


def _group_rows(group: list[tuple[int, int]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"episode": episode, **row} for (episode, _), row in zip(group, rows)]


# -- evaluation ----------------------------------------------------------------------------------
# Tasks built by in-process evaluations, kept for the process's later evaluations of the same task:
# building one costs ~0.65 s on Meta-World (its benchmark constructor resets the env ~50 times), as
# much as 500 env steps, and a finetuning run evaluates every few thousand steps. An episode depends
# only on its initial-state seed (``Task.reset(seed)``), never on what the task ran before.
_BUILT_TASKS: dict[tuple[str, str], list[Task]] = {}


def built_tasks(task_name: str, cameras: CameraConfig | None, n: int) -> list[Task]:
    """``n`` built instances of ``task_name`` (with ``cameras``), reused across evaluation calls."""
    pool = _BUILT_TASKS.setdefault((task_name, repr(cameras)), [])
    pool.extend(make_task(task_name, cameras) for _ in range(n - len(pool)))
    return pool[:n]


def _pickled_factory(policy_factory: PolicyFactory) -> bytes:
    try:
        return pickle.dumps(policy_factory)
    except Exception as exc:
        raise CohirlError(
            f"policy_factory {policy_factory!r} cannot be pickled for worker processes ({exc}). "
            "Pass a module-level function, a functools.partial of one, or a dataclass instance "
            "(not a lambda or closure), or use workers=1."
        ) from exc


def _run_in_process(policy_factory: PolicyFactory, task_name: str, cameras: CameraConfig | None,
                    jobs: list[tuple[int, int]], deterministic: bool, horizon: int | None,
                    bar: Any) -> list[dict[str, Any]]:
    task = built_tasks(task_name, cameras, 1)[0]
    policy = policy_factory()
    check_action_dims(policy, task)
    rows = []
    for episode, init_seed in jobs:
        rows.append({"episode": episode, **run_episode(task, policy, init_seed, deterministic, horizon)})
        _advance(bar, rows)
    return rows


def _run_lockstep_in_process(policy_factory: PolicyFactory, task_name: str, cameras: CameraConfig | None,
                             groups: list[list[tuple[int, int]]], deterministic: bool, horizon: int | None,
                             bar: Any) -> list[dict[str, Any]]:
    tasks = built_tasks(task_name, cameras, max(len(g) for g in groups))
    policy = policy_factory()
    check_action_dims(policy, tasks[0])
    policies: dict[int, Any] = {}
    rows: list[dict[str, Any]] = []
    for group in groups:
        if len(group) not in policies:
            policies[len(group)] = lockstep_policy(policy, len(group))
        seeds = [seed for _, seed in group]
        for row in _group_rows(group, run_lockstep(tasks[: len(group)], policies[len(group)], seeds,
                                                   deterministic, horizon)):
            rows.append(row)
            _advance(bar, rows)
    return rows


def _run_in_pool(policy_factory: PolicyFactory, task_name: str, cameras: CameraConfig | None,
                 jobs: list[tuple[int, int]], workers: int, deterministic: bool, horizon: int | None,
                 bar: Any, groups: list[list[tuple[int, int]]] | None = None) -> list[dict[str, Any]]:
    torch_threads = 1  # rows must not depend on the machine; cores go to workers
    initargs = (_pickled_factory(policy_factory), task_name, cameras, torch_threads)
    context = _worker_context(type(policy_factory).__module__)
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
        futures: list[Future[Any]] = (
            [pool.submit(_worker_group, group, deterministic, horizon) for group in groups] if groups else
            [pool.submit(_worker_episode, episode, init_seed, deterministic, horizon) for episode, init_seed in jobs]
        )
        try:
            for future in as_completed(futures):
                for row in (future.result() if groups else [future.result()]):
                    rows.append(row)
                    _advance(bar, rows)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return rows


# Imported once by the forkserver so that each worker forks with them loaded (a missing one is skipped),
# with the policy factory's own module: the base's for a base evaluation, the composed policy's for
# finetuning (a base stage does not import the finetuning code).
FORKSERVER_PRELOAD = ("cohirl.eval.rollout", "torch", "cohirl.policies.lerobot_base",
                      "lerobot.policies.diffusion.modeling_diffusion")


def _worker_context(factory_module: str) -> multiprocessing.context.BaseContext:
    """Forkserver: workers fork from a clean server process, never from a parent holding torch threads."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports torch and the policy code once, so each worker forks without paying for
    # them (~5 s per worker per evaluation otherwise). Simulators are not preloaded: MuJoCo fixes
    # its GL backend (MUJOCO_GL) when first imported.
    own = [factory_module] if factory_module.startswith("cohirl.") else []
    context.set_forkserver_preload([*FORKSERVER_PRELOAD, *own])
    return context


def _advance(bar: Any, rows: list[dict[str, Any]]) -> None:
    successes = sum(row["success"] for row in rows)
    bar.update(1)
    bar.set_postfix(success=f"{successes}/{len(rows)} ({successes / len(rows):.0%})", refresh=False)


def evaluate(
    policy_factory: PolicyFactory,
    task: str,
    n_episodes: int,
    seed: int,
    workers: int = 1,
    method: str = "",
    run_seed: int = 0,
    deterministic: bool = True,
    progress: bool = True,
    horizon: int | None = None,
    cameras: CameraConfig | None = None,
    lockstep: int = 1,
) -> pd.DataFrame:
    """Evaluate ``policy_factory()`` on ``n_episodes`` seeded initial states of ``task``.

    ``seed`` picks the initial states (share it across methods for a paired comparison);
    ``method`` and ``run_seed`` only label the rows. ``workers=1`` runs in this process; more runs
    the episodes in that many fresh worker processes (forkserver, else spawn), each building the
    task and ``policy_factory()`` once (the factory must then be picklable).
    ``horizon`` caps episodes below the task's own horizon; ``cameras`` adds image observations.
    ``lockstep`` > 1 steps groups of that many consecutive episodes together (``run_lockstep``: one
    base re-plan and one small-policy forward for the whole group); a group is the unit of work of a
    worker, so the rows do not depend on ``workers``. They equal lockstep 1's up to the rounding of
    batched arithmetic (the same episodes, the same mode actions).
    Returns one row per episode with the columns ``COLUMNS``, sorted by episode.
    """
    from cohirl.progress import progress_bar

    spec = get_spec(task)
    if workers < 1:
        raise CohirlError(f"workers must be >= 1, got {workers}.")
    if lockstep < 1:
        raise CohirlError(f"lockstep (episodes stepped together) must be >= 1, got {lockstep}.")
    jobs = list(enumerate(eval_init_seeds(seed, n_episodes)))
    groups = [jobs[i: i + lockstep] for i in range(0, len(jobs), lockstep)] if lockstep > 1 and jobs else None
    bar = progress_bar(total=n_episodes, desc=f"eval {method or 'policy'} episodes", disable=not progress)
    try:
        if groups and (workers == 1 or len(groups) == 1):
            rows = _run_lockstep_in_process(policy_factory, spec.name, cameras, groups, deterministic, horizon, bar)
        elif groups:
            rows = _run_in_pool(policy_factory, spec.name, cameras, jobs, min(workers, len(groups)), deterministic,
                                horizon, bar, groups)
        elif workers == 1 or n_episodes <= 1:
            rows = _run_in_process(policy_factory, spec.name, cameras, jobs, deterministic, horizon, bar)
        else:
            workers = min(workers, n_episodes)
            rows = _run_in_pool(policy_factory, spec.name, cameras, jobs, workers, deterministic, horizon, bar)
    finally:
        bar.close()
    return _episode_table(rows, spec.name, method, run_seed)


def _episode_table(rows: list[dict[str, Any]], task: str, method: str, run_seed: int) -> pd.DataFrame:
    import pandas as pd

    base_columns = ["episode", "init_seed", "success", "length", "return"]
    extra = sorted({key for row in rows for key in row} - set(base_columns))  # from episode_diagnostics()
    table = pd.DataFrame(rows, columns=[*base_columns, *extra])
    table = table.sort_values("episode", kind="stable").reset_index(drop=True)
    table.insert(0, "task", task)
    table.insert(1, "method", method)
    table.insert(2, "run_seed", int(run_seed))
    return table.astype(
        {"run_seed": "int64", "episode": "int64", "init_seed": "int64", "success": "bool",
         "length": "int64", "return": "float64", **{key: "float64" for key in extra}}
    )[[*COLUMNS, *extra]]
