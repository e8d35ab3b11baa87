"""The frozen base: chunk stepping phase, offline a_b targets, tiny lerobot training, loading errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cohirl.demos.dataset import DemoArrays
from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, TaskSpec
from cohirl.errors import CohirlError
from cohirl.policies.base import ChunkPolicy, ChunkStepper, base_actions_for_episode
from cohirl.policies.config import BaseTrainConfig
from cohirl.policies.interfaces import BaseStepper, Policy
from cohirl.policies.lerobot_base import LerobotChunkPolicy, read_base_meta
from cohirl.policies.train_base import WeightEma, lr_multiplier, train_base, window_indices


class FakeChunkPolicy(ChunkPolicy):
    """Chunk row b, element i = [planned-at frame, i, first frame of the window, call number]."""

    def __init__(self, chunk_len: int = 5, n_obs_steps: int = 2) -> None:
        self.action_dim, self.chunk_len, self.n_obs_steps = 4, chunk_len, n_obs_steps
        self.calls = 0

    def reset(self, seed: int = 0) -> None:
        self.calls = 0

    def predict_chunk(self, obs_history: dict[str, np.ndarray]) -> np.ndarray:
        state = obs_history[STATE_KEY]  # (B, n_obs, 1) holding frame numbers
        assert state.shape[1] == self.n_obs_steps and ENV_STATE_KEY in obs_history
        self.calls += 1
        out = np.zeros((state.shape[0], self.chunk_len, self.action_dim), np.float32)
        out[:, :, 0] = state[:, -1, :1]
        out[:, :, 1] = np.arange(self.chunk_len)
        out[:, :, 2] = state[:, 0, :1]
        out[:, :, 3] = self.calls
        return out


def _frames(n: int) -> tuple[np.ndarray, np.ndarray]:
    states = np.arange(n, dtype=np.float32)[:, None]
    return states, np.zeros((n, 2), np.float32)


def _obs(states: np.ndarray, env: np.ndarray, t: int) -> dict[str, np.ndarray]:
    return {STATE_KEY: states[t], ENV_STATE_KEY: env[t]}


def test_stepper_replans_exactly_every_k_steps_and_returns_the_chunk_element() -> None:
    policy, k = FakeChunkPolicy(chunk_len=5), 3
    stepper = ChunkStepper(policy, replan_every=k)
    assert isinstance(stepper, BaseStepper) and isinstance(stepper, Policy)
    states, env = _frames(11)
    stepper.reset(seed=0)
    actions = np.stack([stepper.base_action(_obs(states, env, t)) for t in range(11)])
    t = np.arange(11)
    assert policy.calls == 4  # t = 0, 3, 6, 9
    np.testing.assert_array_equal(actions[:, 0], (t // k) * k)  # planned at the last re-plan step
    np.testing.assert_array_equal(actions[:, 1], t % k)  # a_b(t) = chunk[t mod k]
    np.testing.assert_array_equal(actions[:, 3], t // k + 1)
    # history of 2: the first window repeats frame 0, later ones start one frame back
    np.testing.assert_array_equal(actions[:, 2], np.maximum((t // k) * k - 1, 0))
    stepper.reset(seed=0)
    assert stepper.act(_obs(states, env, 0))[3] == 1  # reset clears the chunk and the history


@pytest.mark.parametrize("k", [0, 6])
def test_stepper_rejects_replan_period_outside_the_chunk(k: int) -> None:
    with pytest.raises(CohirlError, match="replan_every"):
        ChunkStepper(FakeChunkPolicy(chunk_len=5), replan_every=k)


def test_base_actions_for_episode_uses_the_deployment_phase() -> None:
    states, env = _frames(13)
    stepper = ChunkStepper(FakeChunkPolicy(chunk_len=5, n_obs_steps=3), replan_every=4)
    stepper.reset(0)
    online = np.stack([stepper.base_action(_obs(states, env, t)) for t in range(13)])
    offline = base_actions_for_episode(FakeChunkPolicy(chunk_len=5, n_obs_steps=3), states, env, replan_every=4)
    assert offline.shape == (13, 4)
    np.testing.assert_array_equal(offline[:, :3], online[:, :3])  # same phase, element and window
    with pytest.raises(CohirlError, match="replan_every"):
        base_actions_for_episode(FakeChunkPolicy(chunk_len=5), states, env, replan_every=6)


def test_window_indices_pad_like_lerobot() -> None:
    obs, act, pad = window_indices([slice(0, 4), slice(4, 9)], np.array([-1, 0]), np.array([-1, 0, 1, 2]), drop_last=1)
    assert obs.shape == (3 + 4, 2) and act.shape == pad.shape == (7, 4)
    np.testing.assert_array_equal(obs[0], [0, 0])  # clamped to the episode's first frame
    np.testing.assert_array_equal(act[0], [0, 0, 1, 2])
    np.testing.assert_array_equal(pad[0], [True, False, False, False])
    np.testing.assert_array_equal(act[2], [1, 2, 3, 3])  # last action repeated...
    np.testing.assert_array_equal(pad[2], [False, False, False, True])  # ...and marked as padding
    np.testing.assert_array_equal(obs[3], [4, 4])  # second episode never reads the first one


def test_lr_schedule_and_weight_ema() -> None:
    cfg = BaseTrainConfig(steps=100, warmup_steps=10)
    assert lr_multiplier(0, cfg) == pytest.approx(0.1) and lr_multiplier(9, cfg) == pytest.approx(1.0)
    assert lr_multiplier(55, cfg) == pytest.approx(0.5) and lr_multiplier(100, cfg) == pytest.approx(0.0)
    import torch

    net = torch.nn.Linear(1, 1, bias=False)
    ema = WeightEma(net, decay=0.9)
    with torch.no_grad():
        net.weight.fill_(1.0)
        ema.module.weight.fill_(0.0)
    ema.update(net, step=1000)
    assert float(ema.module.weight) == pytest.approx(0.1)


def _toy_demos(n_episodes: int = 3, length: int = 24, seed: int = 0) -> DemoArrays:
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    return DemoArrays(
        task="toy", repo_id="cohirl/toy", root=Path("toy"), fps=20,
        state=rng.normal(size=(n, 5)).astype(np.float32), env_state=rng.normal(size=(n, 4)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        episode_index=np.repeat(np.arange(n_episodes), length), frame_index=np.tile(np.arange(length), n_episodes),
        reward=np.zeros(n, np.float32), done=np.zeros(n, bool), success=np.zeros(n, bool),
        episode_seeds=np.arange(n_episodes))


TINY = dict(steps=6, batch_size=8, down_dims=(8, 16), horizon=8, n_action_steps=4, diffusion_step_embed_dim=8,
            warmup_steps=2, log_every=3, num_inference_steps=3, n_threads=1)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoArrays]:
    demos = _toy_demos()
    out = tmp_path_factory.mktemp("bases") / "diffusion"
    metrics = train_base(demos, BaseTrainConfig(**TINY), out, seed=0, progress=False)
    assert metrics["steps"] == 6 and np.isfinite(metrics["final_loss"])
    return out, demos


def test_tiny_diffusion_base_saves_reloads_and_predicts_deterministically(tiny_base: tuple[Path, DemoArrays]) -> None:
    path, demos = tiny_base
    assert not any(p.name.startswith(".") for p in path.parent.iterdir())  # no temp dir left behind
    assert (path / "loss.csv").read_text().count("\n") == 3 and read_base_meta(path)["seed"] == 0
    policy = LerobotChunkPolicy.from_dir(path, expected_action_dim=3)
    assert (policy.chunk_len, policy.n_obs_steps, policy.action_dim) == (7, 2, 3)
    history = {STATE_KEY: demos.state[:4].reshape(2, 2, 5), ENV_STATE_KEY: demos.env_state[:4].reshape(2, 2, 4)}
    policy.reset(seed=1)
    first = policy.predict_chunk(history)
    policy.reset(seed=1)
    np.testing.assert_array_equal(policy.predict_chunk(history), first)
    policy.reset(seed=2)
    assert first.shape == (2, 7, 3) and not np.allclose(policy.predict_chunk(history), first)
    stepper = ChunkStepper(policy, replan_every=5)
    stepper.reset(seed=4)
    online = np.stack([stepper.base_action(_obs(demos.state, demos.env_state, t)) for t in range(24)])
    offline = base_actions_for_episode(policy, demos.state[:24], demos.env_state[:24], replan_every=5, seed=4)
    np.testing.assert_allclose(offline, online, atol=1e-5)


def test_tiny_act_base_trains_and_reloads(tmp_path: Path) -> None:
    cfg = BaseTrainConfig(policy_type="act", steps=3, batch_size=4, horizon=6, act_dim_model=16, act_n_heads=2,
                          act_dim_feedforward=16, log_every=1, warmup_steps=1, n_threads=1)
    train_base(_toy_demos(n_episodes=2, length=10), cfg, tmp_path / "act", seed=0, progress=False)
    policy = LerobotChunkPolicy.from_dir(tmp_path / "act", expected_action_dim=3)
    chunk = policy.predict_chunk({STATE_KEY: np.zeros((1, 1, 5), np.float32), ENV_STATE_KEY: np.zeros((1, 1, 4), np.float32)})
    assert chunk.shape == (1, 6, 3) and np.isfinite(chunk).all()


def test_missing_or_corrupt_base_names_the_path(tiny_base: tuple[Path, DemoArrays], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(CohirlError, match="nowhere.*[Rr]etrain"):
        LerobotChunkPolicy.from_dir(missing)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_base[0], broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CohirlError, match="broken.*could not be loaded"):
        LerobotChunkPolicy.from_dir(broken)
    (broken / "policy_preprocessor.json").unlink()
    with pytest.raises(CohirlError, match="policy_preprocessor.json"):
        LerobotChunkPolicy.from_dir(broken)


def test_action_size_mismatch_names_both_sizes(tiny_base: tuple[Path, DemoArrays]) -> None:
    with pytest.raises(CohirlError, match=r"3-d actions.*7-d actions"):
        LerobotChunkPolicy.from_dir(tiny_base[0], expected_action_dim=7)
    spec = TaskSpec(name="toy", simulator="none", horizon=10, action_dim=3, state_dim=5, env_state_dim=9,
                    language="do it", sim_name="toy")
    with pytest.raises(CohirlError, match=r"environment_state.*\(4,\).*\(9,\)"):
        LerobotChunkPolicy.from_dir(tiny_base[0], spec=spec)


def test_training_is_deterministic_by_seed(tiny_base: tuple[Path, DemoArrays], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    train_base(tiny_base[1], BaseTrainConfig(**TINY), tmp_path / "again", seed=0, progress=False)
    first, again = load_file(tiny_base[0] / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert first.keys() == again.keys() and all(bool((first[k] == again[k]).all()) for k in first)


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stop_at, every", [(2, 100), (4, 3)], ids=["killed-before-any-period", "periodic"])
def test_a_resumed_base_is_byte_identical_to_an_uninterrupted_one(tiny_base: tuple[Path, DemoArrays], tmp_path: Path,
                                                                  stop_at: int, every: int) -> None:
    from cohirl.policies.train_base import checkpoint_path

    out = tmp_path / "resumed"
    assert train_base(tiny_base[1], BaseTrainConfig(**TINY), out, seed=0, progress=False, checkpoint_every=every,
                      stop_after_steps=stop_at) is None
    assert not out.exists() and checkpoint_path(out).exists()  # nothing under the final name yet
    metrics = train_base(tiny_base[1], BaseTrainConfig(**TINY), out, seed=0, progress=False, checkpoint_every=every)
    assert metrics is not None and metrics["steps"] == TINY["steps"]
    assert _files(out) == _files(tiny_base[0])  # weights, processors, meta, the loss curve
    assert not checkpoint_path(out).parent.exists()  # spent once the base is in place


def test_a_checkpoint_of_other_settings_or_a_corrupt_one_is_never_resumed(tiny_base: tuple[Path, DemoArrays],
                                                                         tmp_path: Path) -> None:
    from cohirl.policies.train_base import checkpoint_path

    out = tmp_path / "base"
    train_base(tiny_base[1], BaseTrainConfig(**{**TINY, "lr": 1e-3}), out, seed=0, progress=False,
               stop_after_steps=3)
    metrics = train_base(tiny_base[1], BaseTrainConfig(**TINY), out, seed=0, progress=False)
    assert metrics is not None and _files(out) == _files(tiny_base[0])  # trained from the start
    train_base(tiny_base[1], BaseTrainConfig(**TINY), tmp_path / "cut", seed=0, progress=False, stop_after_steps=3)
    ckpt = checkpoint_path(tmp_path / "cut")
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated, as by a full disk
    with pytest.raises(CohirlError, match=r"base training checkpoint .* is corrupt.*Delete it"):
        train_base(tiny_base[1], BaseTrainConfig(**TINY), tmp_path / "cut", seed=0, progress=False)
