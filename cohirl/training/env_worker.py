"""The acting side of the finetuning loop — the task and the frozen base — in this process or in its own.

Per env step the loop hands the executed action over (``step_async``), runs the learner's update,
then collects the transition (``step_wait``): the simulator step and the base's next action a_b(t+1).
:class:`LocalEnv` does that work inside ``step_wait``, after the update (one core, the plain serial
loop). :class:`EnvProcess` does it in a worker process while the update runs, so an env step costs
about max(simulator + base, update) instead of their sum. Both give the same transitions: the worker
builds the same task and base, and every episode starts from seeded ``reset`` calls
(``tests/test_finetune_loop.py`` compares the rows of the two).

A helper thread would not do: the simulators' Python (robosuite's controllers, Meta-World's reward)
and the learner's op dispatch hold the GIL, and a threaded loop measured the serial loop's speed.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable

import numpy as np

from cohirl.envs import make_task
from cohirl.envs.base import Obs
from cohirl.errors import CohirlError
from cohirl.policies.interfaces import BaseStepper
from cohirl.training.agent import stepper_phase


@dataclass
class Transition:
    """What one env step returns to the loop (``truncated`` already includes the episode cap)."""

    obs: Obs
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    t: int  # env steps taken in this episode
    base_action: np.ndarray  # a_b at the new observation
    phase: int  # its chunk phase (``stepper_phase``)


class LocalEnv:
    """Task and base in this process; ``step_wait`` does the step (after the caller's update)."""

    def __init__(self, task_name: str, base_factory: Callable[[], BaseStepper], episode_cap: int) -> None:
        self.task, self.base, self.episode_cap = make_task(task_name), base_factory(), episode_cap
        self._action: np.ndarray | None = None

    def reset(self, task_seed: int, base_seed: int) -> tuple[Obs, np.ndarray, int]:
        """Start an episode: (first observation, a_b at it, its chunk phase)."""
        obs = self.task.reset(task_seed)
        self.base.reset(base_seed)
        a_b = self.base.base_action(obs)
        return obs, a_b, stepper_phase(self.base)

    def step_async(self, action: np.ndarray) -> None:
        self._action = action

    def step_wait(self) -> Transition:
        if self._action is None:
            raise CohirlError("step_wait without step_async: hand the action over first.")
        action, self._action = self._action, None
        obs, reward, terminated, truncated, info = self.task.step(action)
        truncated = bool(truncated or (not terminated and self.task.t >= self.episode_cap))
        a_b = self.base.base_action(obs)
        return Transition(obs, float(reward), bool(terminated), truncated, info, int(self.task.t), a_b,
                          stepper_phase(self.base))

    def close(self) -> None:
        self.task.close()


def _serve(conn: Connection, task_name: str, factory_bytes: bytes, episode_cap: int) -> None:
    """Worker process: build a LocalEnv, then answer ("reset", seeds) and ("step", action) until "close"."""
    from cohirl._runtime import configure_torch

    configure_torch(1)
    env: LocalEnv | None = None
    try:
        env = LocalEnv(task_name, pickle.loads(factory_bytes), episode_cap)
        conn.send(("ready", None))
        while True:
            command, arg = conn.recv()
            if command == "reset":
                conn.send(("ok", env.reset(*arg)))
            elif command == "step":
                env.step_async(arg)
                conn.send(("ok", env.step_wait()))
            else:
                break
    except EOFError:  # the loop's process went away
        pass
    except BaseException as exc:  # noqa: BLE001 — reported to the loop, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        if env is not None:
            env.close()
        conn.close()


class EnvProcess:
    """Task and base in a worker process (forkserver): the step runs while the caller updates."""

    def __init__(self, task_name: str, base_factory: Callable[[], BaseStepper], episode_cap: int) -> None:
        from cohirl.eval.rollout import _pickled_factory, _worker_context

        context = _worker_context(type(base_factory).__module__)
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, name=f"cohirl-env-{task_name}", daemon=True,
                                        args=(child, task_name, _pickled_factory(base_factory), episode_cap))
        self._process.start()
        child.close()
        self.task_name, self._waiting = task_name, False
        self._receive()  # built (or its error)

    def _died(self) -> CohirlError:
        self._process.join(timeout=1)
        return CohirlError(f"The {self.task_name} env worker process died (exit code {self._process.exitcode}); "
                           "rerun the stage to resume from its last checkpoint.")

    def _send(self, message: tuple[str, Any]) -> None:
        try:
            self._conn.send(message)
        except (OSError, EOFError) as exc:  # BrokenPipeError and friends
            raise self._died() from exc

    def _receive(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (OSError, EOFError) as exc:
            raise self._died() from exc
        if status == "error":
            raise CohirlError(f"The {self.task_name} env worker failed: {value}")
        return value

    def reset(self, task_seed: int, base_seed: int) -> tuple[Obs, np.ndarray, int]:
        self._send(("reset", (task_seed, base_seed)))
        return self._receive()  # type: ignore[no-any-return]

    def step_async(self, action: np.ndarray) -> None:
        self._send(("step", action))
        self._waiting = True

    def step_wait(self) -> Transition:
        if not self._waiting:
            raise CohirlError("step_wait without step_async: hand the action over first.")
        self._waiting = False
        return self._receive()  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._process.is_alive():
            try:
                if self._waiting:
                    self._conn.recv()
                self._conn.send(("close", None))
            except (OSError, EOFError):
                pass
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._conn.close()
