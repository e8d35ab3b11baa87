"""The finetuning loop for one (task, method, seed): CSIL and the sparse baseline share all of it.

Read top to bottom: build the demo buffer (demo actions → small-policy targets with the base's
a_b at the deployment chunk phase), pretrain (BC + critic, per method), evaluate at step 0, then
act → store → update (UTD per env step after warm-up) with periodic evaluation and checkpoints.

Resumable: checkpoints (networks, optimisers, replay, RNG states, counters, evaluation rows) are
written atomically at episode boundaries; running the same call again resumes from the last one
and produces rows identical to an uninterrupted run. A checkpoint made with other settings is
never resumed (its fingerprint differs); it is moved aside and the run starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohirl.config import as_overrides, from_dict, overrides_of, set_fields, to_record
from cohirl.csil.config import LearnerConfig, apply_preset
from cohirl.csil.diagnostics import demo_value_check
from cohirl.csil.learner import Learner
from cohirl.methods import METHODS, build_method
from cohirl.csil.pretrain import build_learner
from cohirl.demos.dataset import DemoArrays
from cohirl.envs import ENV_STATE_KEY, STATE_KEY, get_spec
from cohirl.errors import CohirlError
from cohirl.io import write_csv, write_dvclive, write_json
from cohirl.progress import progress_bar
from cohirl.eval.rollout import evaluate
from cohirl.eval.stats import wilson_interval
from cohirl.policies.base import ChunkStepper, base_actions_for_episode
from cohirl.policies.compose import Composition, clipped_fraction
from cohirl.training.agent import PolicyInputs, save_actor_snapshot, snapshot_factory
from cohirl.training.env_worker import EnvProcess, LocalEnv
from cohirl.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, restore_rng, save_checkpoint
from cohirl.csil.replay import DemoEpisode, ReplayBuffer, demo_buffer

TRAIN_SEED_OFFSET = 2_000_000_000  # training episodes never start from evaluation or demo states
LIVE_DIR = "live"  # the run's dvclive folder (``live_points``)


LearnerOverrides = overrides_of(LearnerConfig)  # any LearnerConfig field, typed; UNSET: the method's own
CompositionOverrides = overrides_of(Composition)  # any Composition field, typed
# The run-level knobs of FinetuneConfig and the learner fields each sets (one knob, one place).
RUN_LEVEL_KNOBS = {"bc_steps": ("bc_steps",), "critic_pretrain_steps": ("critic_pretrain_steps",),
                   "warmup_steps": ("warmup_steps",), "utd": ("utd",),
                   "batch_size": ("demo_batch_size", "replay_batch_size", "bc_batch_size", "critic_pretrain_batch_size")}


@dataclass(frozen=True)
class MethodOverrides:
    """``finetune.per_method.<method>``: learner and composition fields for one method only."""

    learner: LearnerOverrides = field(default_factory=LearnerOverrides)  # type: ignore[valid-type]
    composition: CompositionOverrides = field(default_factory=CompositionOverrides)  # type: ignore[valid-type]

    def __post_init__(self) -> None:
        object.__setattr__(self, "learner", as_overrides(LearnerConfig, self.learner, "per_method.learner"))
        object.__setattr__(self, "composition", as_overrides(Composition, self.composition, "per_method.composition"))


@dataclass(frozen=True)
class FinetuneConfig:
    """Budgets of one run (``params.yaml``: ``profiles.<p>.finetune``); ``learner`` overrides any
    ``LearnerConfig`` field, ``composition`` any ``Composition`` field, for every method;
    ``per_method.<method>.{learner,composition}`` for one method only (applied last).
    ``preset`` (e.g. "official": the official CSIL recipe where the paper is silent) sets a group
    of learner fields. One knob, one place: a run-level knob (``bc_steps``, ``batch_size``, ...) named
    again in ``learner``, or a preset's field named again, is an error. Every section is typed and
    checked when params.yaml is read (an unknown key names the valid ones)."""

    env_steps: int = 100_000  # the paper: 100k–450k env steps per task
    eval_every: int = 10_000
    eval_episodes: int = 50
    checkpoint_every: int = 10_000
    bc_steps: int | None = None  # None: the method's default (CSIL 25k)
    critic_pretrain_steps: int | None = None  # None: CSIL 5k
    warmup_steps: int | None = None  # env steps in replay before learning
    batch_size: int | None = None  # per half: demo batch = replay batch
    utd: int | None = None  # updates per env step
    see_base_action: bool = True  # the small policy observes a_b(t)
    see_chunk_phase: bool = True  # ... and the chunk phase (t mod k)/k (how stale a_b is)
    max_episode_steps: int | None = None  # cap below the task horizon (tiny test/smoke budgets only)
    preset: str | None = None  # a named group of learner settings (cohirl.csil.config.PRESETS)
    learner: LearnerOverrides = field(default_factory=LearnerOverrides)  # type: ignore[valid-type]
    composition: CompositionOverrides = field(default_factory=CompositionOverrides)  # type: ignore[valid-type]
    per_method: dict[str, MethodOverrides] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if min(self.env_steps, self.eval_every, self.eval_episodes, self.checkpoint_every) <= 0:
            raise CohirlError(f"finetune budgets must be positive: {self}")
        object.__setattr__(self, "learner", as_overrides(LearnerConfig, self.learner, "finetune.learner"))
        object.__setattr__(self, "composition", as_overrides(Composition, self.composition, "finetune.composition"))
        per_method = {}
        for method, section in self.per_method.items():
            if method not in METHODS:
                raise CohirlError(f"finetune.per_method names unknown method {method!r}; known: {sorted(METHODS)}.")
            per_method[method] = section if isinstance(section, MethodOverrides) else from_dict(
                MethodOverrides, section, f"finetune.per_method.{method}")
        object.__setattr__(self, "per_method", per_method)
        learner = set_fields(self.learner)
        for knob, fields in RUN_LEVEL_KNOBS.items():
            if getattr(self, knob) is not None and (twice := sorted(set(fields) & set(learner))):
                raise CohirlError(f"finetune.{knob} and finetune.learner.{twice[0]} set the same knob: keep one "
                                  f"(finetune.{knob} sets {list(fields)}).")

    def learner_overrides(self, method: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for knob, fields in RUN_LEVEL_KNOBS.items():
            if getattr(self, knob) is not None:
                out.update(dict.fromkeys(fields, getattr(self, knob)))
        out = {**out, **set_fields(self.learner), **set_fields(self._method_section(method).learner)}
        return apply_preset(self.preset, out)

    def composition_overrides(self, method: str | None = None) -> dict[str, Any]:
        return {**set_fields(self.composition), **set_fields(self._method_section(method).composition)}

    def _method_section(self, method: str | None) -> MethodOverrides:
        return self.per_method.get(method or "") or MethodOverrides()


@dataclass
class RunState:
    """Counters and rows that a checkpoint carries besides networks and replay."""

    env_steps: int = 0
    episodes: int = 0
    evals: list[dict[str, Any]] = field(default_factory=list)
    eval_episodes: list[dict[str, Any]] = field(default_factory=list)
    train_log: list[dict[str, Any]] = field(default_factory=list)
    pretrain_metrics: dict[str, float] = field(default_factory=dict)


def demo_episodes(demos: DemoArrays, base: ChunkStepper, replan_every: int, see_base: bool,
                  see_phase: bool = True) -> list[DemoEpisode]:
    """Demonstrations with a_b(t) from the frozen base at the deployment chunk phase.

    Episode i's base sampling is seeded with i, as training episode i's is (for a stochastic base
    the labels then differ between demos as its deployed actions do).
    """
    inputs = PolicyInputs(see_base, see_phase, replan_every)
    out = []
    for i, sl in enumerate(demos.episode_slices()):
        a_b = base_actions_for_episode(base.policy, demos.state[sl], demos.env_state[sl], replan_every, seed=i)
        a_b = np.concatenate([a_b, a_b[-1:]])  # final observation: repeat (terminal for successes)
        state = np.concatenate([demos.state[sl], demos.state[sl][-1:]])
        env_state = np.concatenate([demos.env_state[sl], demos.env_state[sl][-1:]])
        obs = inputs.build(state, env_state, a_b, np.arange(len(a_b)))
        out.append(DemoEpisode(obs=obs, base_action=a_b, action=demos.action[sl],
                               success=bool(demos.success[sl][-1])))
    return out


def _probe_means(rows: pd.DataFrame) -> dict[str, float]:
    """Critic at the evaluation episodes' first states vs their return under the learned reward."""
    if "q_init" not in rows:
        return {"q_eval_init": float("nan"), "mc_return_eval": float("nan")}
    return {"q_eval_init": float(rows.q_init.mean()), "mc_return_eval": float(rows.learned_return.mean())}


def _eval_record(eval_cfg: Any) -> dict[str, Any]:
    """The evaluation settings a checkpoint is tied to; lockstep 1 (one episode at a time) is left
    out so that runs made before the option existed keep their fingerprint."""
    record = asdict(eval_cfg)
    if record.get("lockstep") == 1:
        del record["lockstep"]
    return record


def total_updates(cfg: FinetuneConfig, learner_cfg: Any) -> int:
    """Learner updates a run's budget allows: UTD per env step once the replay holds the warm-up (the
    replay as it stands when the step's action is chosen: the step's own transition is not in it yet)."""
    return max(0, cfg.env_steps - max(1, learner_cfg.warmup_steps)) * learner_cfg.utd


def demo_statistics(episodes: list[DemoEpisode], composition: Any) -> dict[str, float]:
    """How far the base is from the demonstrations (RMSE per action entry) and the share of BC
    targets the composition cannot reach (clipped)."""
    a_demo = np.concatenate([ep.action for ep in episodes])
    a_b = np.concatenate([ep.base_action[: len(ep.action)] for ep in episodes])
    return {"demo_base_rmse": float(np.sqrt(np.mean(np.square(a_demo - a_b)))),
            "bc_target_clipped_fraction": clipped_fraction(composition, a_demo, a_b)}


Batches = list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]


class Finetuner:
    """One (task, method, seed) run. ``run()`` does everything; the pieces are methods for tests.

    ``env_process``: step the task and the frozen base in a worker process while the learner
    updates (:class:`cohirl.training.env_worker.EnvProcess`; needs a second free core to pay off) or
    in this process after the update (False). The rows are the same either way.
    """

    def __init__(self, task: str, method: str, seed: int, cfg: FinetuneConfig, demos: DemoArrays,
                 base_factory: Any, eval_cfg: Any, out_dir: Path, progress: bool = True,
                 checkpoint_dir: Path | None = None, env_process: bool = False) -> None:
        self.task_name, self.method, self.seed, self.cfg = task, method, seed, cfg
        self.base_factory, self.eval_cfg, self.out_dir, self.progress = base_factory, eval_cfg, Path(out_dir), progress
        # Resumable state (networks, optimisers, replay, RNG) apart from the rows: large, never committed.
        self.checkpoint_dir = Path(checkpoint_dir or self.out_dir / "checkpoints")
        self.learner_cfg, self.composition = build_method(method, cfg.learner_overrides(method),
                                                          cfg.composition_overrides(method))
        self.base: ChunkStepper = base_factory()
        if self.base.action_dim != demos.action.shape[1]:
            raise CohirlError(f"base acts in {self.base.action_dim}-d but the demonstrations of {task} are "
                              f"{demos.action.shape[1]}-d: retrain the base on this task's demos.")
        self.inputs = PolicyInputs(cfg.see_base_action, cfg.see_chunk_phase, self.base.replan_every)
        episodes = demo_episodes(demos, self.base, self.base.replan_every, cfg.see_base_action, cfg.see_chunk_phase)
        self.demos = demo_buffer(episodes, self.composition, self.learner_cfg.n_step, self.learner_cfg.gamma)
        self.demo_stats = demo_statistics(episodes, self.composition)
        self._check_actor_phase()
        self.replay = ReplayBuffer(min(self.learner_cfg.replay_capacity, cfg.env_steps), self.demos.obs_dim,
                                   self.demos.action_dim, self.learner_cfg.n_step, self.learner_cfg.gamma)
        self.rng = np.random.default_rng(seed)
        horizon = get_spec(task).horizon
        self.episode_cap = min(cfg.max_episode_steps or horizon, horizon)
        self.env_process = env_process
        self.env: LocalEnv | EnvProcess | None = None  # built by the first training episode
        self.state = RunState()
        self.learner: Learner | None = None
        # Seconds and work of this call, by phase (run.json; read by benchmarks/project_wall_time.py).
        self.timing: dict[str, float] = {"pretrain_s": 0.0, "eval_s": 0.0, "eval_env_steps": 0, "train_s": 0.0,
                                         "train_env_steps": 0}

    # -- setup ---------------------------------------------------------------------------------
    def total_updates(self) -> int:
        return total_updates(self.cfg, self.learner_cfg)

    def _check_actor_phase(self) -> None:
        only_critic, total = self.learner_cfg.critic_only_updates, self.total_updates()
        if only_critic > 0 and only_critic >= total:
            raise CohirlError(
                f"{self.method}: critic_only_updates={only_critic} ≥ the run's {total} learner updates "
                f"(env_steps {self.cfg.env_steps}, warmup {self.learner_cfg.warmup_steps}, UTD {self.learner_cfg.utd}): "
                "the actor would never be trained. Lower finetune.per_method.<method>.learner.critic_only_updates "
                "or raise env_steps.")

    def fingerprint(self) -> str:
        base_labels = hashlib.sha256(np.ascontiguousarray(self.demos.field("base_action")).tobytes()).hexdigest()
        record = {"task": self.task_name, "method": self.method, "seed": self.seed, "cfg": to_record(self.cfg),
                  "learner": self.learner_cfg.to_dict(), "composition": asdict(self.composition),
                  "eval": _eval_record(self.eval_cfg), "demos": int(len(self.demos)),
                  "base": {"replan_every": self.base.replan_every, "demo_labels_sha256": base_labels}}
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_dir / CHECKPOINT_NAME

    def setup(self) -> None:
        """Resume from a matching checkpoint, or pretrain and evaluate step 0."""
        if self.checkpoint_path.exists():
            ckpt = load_checkpoint(self.checkpoint_path)
            if ckpt.get("fingerprint") == self.fingerprint():
                self._restore(ckpt)
                print(f"resuming {self.task_name}/{self.method}/seed {self.seed} from its checkpoint at env step "
                      f"{self.state.env_steps}", flush=True)
                return
            self.checkpoint_path.rename(self.checkpoint_path.with_suffix(".stale"))
        start = time.perf_counter()
        self.learner, metrics = build_learner(self.learner_cfg, self.composition, self.demos, self.seed, self.progress)
        self.timing["pretrain_s"] += time.perf_counter() - start
        self.state.pretrain_metrics = {**self.demo_stats, **metrics, **self._pretrain_value_check()}
        self.evaluate_now()
        self.save()

    def _pretrain_value_check(self) -> dict[str, float]:
        """Has critic pretraining reached its SARSA fixed point? Logged, and a warning when not."""
        assert self.learner is not None
        check = {f"pretrain_{k}": v for k, v in demo_value_check(self.learner, self.demos).items()}
        pretrained = self.learner_cfg.pretrain_critic and self.learner_cfg.critic_pretrain_steps > 0
        if pretrained and not check["pretrain_critic_settled"]:
            print(f"warning: {self.task_name}/{self.method}/seed {self.seed}: the critic has not settled after "
                  f"{self.learner_cfg.critic_pretrain_steps} pretraining steps: mean Q at the demo states "
                  f"{check['pretrain_q_demo']:.1f} vs their return {check['pretrain_mc_demo']:.1f} under the "
                  "learned reward (run.json pretrain.pretrain_critic_settled = 0). Online TD targets will keep "
                  "moving: see the README's 'Stability over long budgets' (more steps alone barely move the scale).",
                  flush=True)
        return check

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.learner = Learner.from_state_dict(ckpt["learner"])
        self.replay.load_state_dict(ckpt["replay"])
        restore_rng(ckpt["rng"], self.rng)
        self.state = RunState(**ckpt["run"])

    def save(self) -> None:
        assert self.learner is not None
        save_checkpoint({"fingerprint": self.fingerprint(), "env_steps": self.state.env_steps,
                         "learner": self.learner.state_dict(), "replay": self.replay.state_dict(),
                         "rng": rng_state(self.rng),
                         "run": asdict(self.state)}, self.checkpoint_path)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate_now(self) -> dict[str, Any]:
        assert self.learner is not None
        path = save_actor_snapshot(self.learner, self.checkpoint_dir / "actor_eval.pt", self.inputs,
                                   value_probe=True)
        ev, start = self.eval_cfg, time.perf_counter()
        rows = evaluate(snapshot_factory(self.base_factory, path), self.task_name, self.cfg.eval_episodes,
                        ev.seed, workers=ev.workers, method=self.method, run_seed=self.seed,
                        progress=False, horizon=self.episode_cap, lockstep=getattr(ev, "lockstep", 1))
        rows["env_steps"] = self.state.env_steps
        self.timing["eval_s"] += time.perf_counter() - start
        self.timing["eval_env_steps"] += int(rows.length.sum())
        k, n = int(rows.success.sum()), len(rows)
        low, high = wilson_interval(k, n)
        row = {"task": self.task_name, "method": self.method, "seed": self.seed,
               "env_steps": self.state.env_steps, "n_episodes": n, "successes": k, "success_rate": k / n,
               "ci_low": low, "ci_high": high, "mean_return": float(rows["return"].mean()),
               "mean_length": float(rows.length.mean()), "mean_learned_reward": self._mean_learned_reward(),
               **demo_value_check(self.learner, self.demos), **_probe_means(rows)}
        self.state.evals.append(row)
        self.state.eval_episodes.extend(rows.to_dict("records"))
        return row

    def _mean_learned_reward(self) -> float:
        """Mean learned reward on (up to) 1024 recent replay transitions (demos before any replay)."""
        assert self.learner is not None
        if not self.learner_cfg.uses_coherent_reward:
            return float("nan")
        source = self.replay if len(self.replay) else self.demos
        batch = source.gather(np.arange(max(0, len(source) - 1024), len(source)))
        return float(self.learner.reward(batch).mean())

    # -- interaction ---------------------------------------------------------------------------
    def make_env(self) -> LocalEnv | EnvProcess:
        if self.env is None:
            self.env = (EnvProcess(self.task_name, self.base_factory, self.episode_cap) if self.env_process
                        else LocalEnv(self.task_name, lambda: self.base, self.episode_cap))
        return self.env

    def run_episode(self, bar: Any) -> None:
        """One training episode: act, update (beside the env step with ``env_process``), store;
        evaluations fall wherever their step is."""
        assert self.learner is not None
        env = self.make_env()
        obs, a_b, phase = env.reset(TRAIN_SEED_OFFSET + self.seed * 1_000_000 + self.state.episodes,
                                    self.state.episodes)
        x = self.inputs.build(obs[STATE_KEY], obs[ENV_STATE_KEY], a_b, phase)
        done, ret, metrics, length, success = False, 0.0, {}, 0, False
        while not done and self.state.env_steps < self.cfg.env_steps:
            executed, u = self.learner.act(x, a_b, deterministic=False)
            batches = self.sample_batches()  # from the replay as it stands: this step's transition is not in it
            env.step_async(executed)
            metrics = self.update(batches, self.state.env_steps + 1) or metrics
            step = env.step_wait()
            done, length, success = step.terminated or step.truncated, step.t, bool(step.info["success"])
            next_x = self.inputs.build(step.obs[STATE_KEY], step.obs[ENV_STATE_KEY], step.base_action, step.phase)
            cut = not done and self.state.env_steps + 1 >= self.cfg.env_steps  # budget ends mid-episode
            self.replay.add(obs=x, policy_action=u, base_action=a_b, action=executed, reward=step.reward,
                            terminated=step.terminated, truncated=step.truncated or cut, next_obs=next_x,
                            next_base_action=step.base_action)
            x, a_b, ret = next_x, step.base_action, ret + step.reward
            self.state.env_steps += 1
            bar.update(1)
            if self.state.env_steps % self.cfg.eval_every == 0 or self.state.env_steps == self.cfg.env_steps:
                last = self.evaluate_now()
                bar.set_postfix(success=f"{last['success_rate']:.2f}", refresh=False)
        self.state.episodes += 1
        self.state.train_log.append({"env_steps": self.state.env_steps, "episode": self.state.episodes,
                                     "return": ret, "success": success, "length": length,
                                     **{k: float(v) for k, v in metrics.items()}})

    def sample_batches(self) -> Batches:
        """``utd`` (demo, replay) batch pairs, or none while the replay holds less than the warm-up."""
        cfg = self.learner_cfg
        if len(self.replay) < max(1, cfg.warmup_steps):
            return []
        return [(self.demos.sample(cfg.demo_batch_size, self.rng), self.replay.sample(cfg.replay_batch_size, self.rng))
                for _ in range(cfg.utd)]

    def update(self, batches: Batches, step: int) -> dict[str, float]:
        """Learner updates on half-demo / half-replay ``batches`` during env step ``step``."""
        assert self.learner is not None
        metrics: dict[str, float] = {}
        for demo_batch, replay_batch in batches:
            try:
                metrics = self.learner.update(demo_batch, replay_batch)
            except CohirlError as exc:
                raise CohirlError(f"{self.task_name}/{self.method}/seed {self.seed}: training diverged at env "
                                  f"step {step}: {exc}. The last good checkpoint is "
                                  f"{self.checkpoint_path}.") from exc
        return metrics

    def close(self) -> None:
        """Stop the env worker (a finished or failed ``run`` does this itself)."""
        if self.env is not None:
            self.env.close()
            self.env = None

    # -- the whole run -------------------------------------------------------------------------
    def run(self, stop_after_steps: int | None = None) -> pd.DataFrame:
        """Train to the budget (or until ``stop_after_steps``, to simulate a kill in tests)."""
        start = time.perf_counter()
        self.setup()
        first_step, loop_start, eval_before = self.state.env_steps, time.perf_counter(), self.timing["eval_s"]
        next_ckpt = (self.state.env_steps // self.cfg.checkpoint_every + 1) * self.cfg.checkpoint_every
        bar = progress_bar(total=self.cfg.env_steps, initial=self.state.env_steps, disable=not self.progress,
                           desc="finetune env steps", mininterval=2.0)
        try:
            while self.state.env_steps < self.cfg.env_steps:
                self.run_episode(bar)
                if self.state.env_steps >= next_ckpt or self.state.env_steps >= self.cfg.env_steps:
                    self.save()
                    next_ckpt = (self.state.env_steps // self.cfg.checkpoint_every + 1) * self.cfg.checkpoint_every
                if stop_after_steps is not None and self.state.env_steps >= stop_after_steps:
                    break
        finally:
            self.close()
            bar.close()
        self.timing["train_s"] = time.perf_counter() - loop_start - (self.timing["eval_s"] - eval_before)
        self.timing["train_env_steps"] = self.state.env_steps - first_step
        self.write_results(time.perf_counter() - start)
        return pd.DataFrame(self.state.evals)

    def write_results(self, wall_s: float) -> None:
        write_csv(pd.DataFrame(self.state.evals), self.out_dir / "evals.csv")
        write_csv(pd.DataFrame(self.state.eval_episodes), self.out_dir / "episodes.csv")
        write_dvclive(live_points(self.state.train_log, self.state.evals), self.out_dir / LIVE_DIR)
        write_json({"fingerprint": self.fingerprint(), "wall_s_last_call": wall_s, "timing_last_call": self.timing,
                    "pretrain": self.state.pretrain_metrics, "learner": self.learner_cfg.to_dict(),
                    "composition": asdict(self.composition), "finetune": to_record(self.cfg)},
                   self.out_dir / "run.json")


def live_points(train_log: list[dict[str, Any]], evals: list[dict[str, Any]]) -> list[tuple[str, int, float]]:
    """A run's metrics as dvclive points at step = env steps: ``train/<key>`` per training episode
    (return, success, length, the last learner update's losses and statistics) and ``eval/<key>`` per
    evaluation (the numeric columns of ``evals.csv``). The episode rows stay CSV for the statistics."""
    skip = {"env_steps", "task", "method", "seed"}
    return [(f"{prefix}/{key}", int(row["env_steps"]), float(value))
            for prefix, rows in (("train", train_log), ("eval", evals)) for row in rows
            for key, value in row.items()
            if key not in skip and isinstance(value, (bool, int, float, np.number))]
