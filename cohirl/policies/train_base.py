"""Stage 2: train the base behaviour model (lerobot Diffusion Policy or ACT) from demonstrations on CPU.

Behaviour cloning with the policy's own loss (diffusion: ε-prediction MSE; ACT: L1 + KL), trained
with AdamW, linear warm-up + cosine decay, and an exponential moving average of the weights (the EMA
weights are the ones saved and evaluated). Training windows are built once by array indexing from
``DemoArrays`` — lerobot's per-item ``delta_timestamps`` loader costs ~1.4 ms per sample, more than
the model step — with lerobot's padding rule at episode ends (indices clamped to the episode,
``action_is_pad`` marks copies). The result is written to a temporary sibling directory and renamed
into place, so an interrupted run never leaves a directory that looks like a finished base.

Resumable: every ``checkpoint_every`` steps the whole training state (weights, AdamW, schedule, EMA,
the batch stream, torch's RNG, the logged loss curve) is saved atomically beside the output
(``.<name>.ckpt/checkpoint.pt``); a rerun with the same settings and demonstrations continues from it
and saves a base byte-identical to an uninterrupted run's. A checkpoint of other settings is set
aside (``.stale``), never resumed; the checkpoint is removed once the base is in place.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from cohirl._runtime import configure_torch
from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY
from cohirl.errors import CohirlError
from cohirl.io import load_torch, save_torch
from cohirl.policies.config import BaseTrainConfig
from cohirl.policies.lerobot_base import ACTION, save_base_dir
from cohirl.progress import progress_bar

if TYPE_CHECKING:
    from cohirl.demos.dataset import DemoArrays

ACTION_IS_PAD = "action_is_pad"
TIMING_KEYS = ("train_seconds", "steps_per_second")  # in train_base's metrics, never in the saved base


# -- normalisation statistics ------------------------------------------------------------------------
def dataset_stats(demos: DemoArrays) -> dict[str, dict[str, np.ndarray]]:
    """Per-feature statistics in lerobot's ``stats.json`` format (min/max/mean/std/count/quantiles)."""
    from lerobot.datasets.compute_stats import get_feature_stats

    columns = {STATE_KEY: demos.state, ENV_STATE_KEY: demos.env_state, ACTION: demos.action}
    return {key: get_feature_stats(np.asarray(v, dtype=np.float32), axis=0, keepdims=False) for key, v in columns.items()}


# -- policy construction ---------------------------------------------------------------------------
def make_policy_config(cfg: BaseTrainConfig, state_dim: int, env_state_dim: int, action_dim: int) -> Any:
    """The lerobot config for ``cfg.policy_type`` on low-dim state + environment-state inputs."""
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature

    inputs = {STATE_KEY: PolicyFeature(FeatureType.STATE, (state_dim,)),
              ENV_STATE_KEY: PolicyFeature(FeatureType.ENV, (env_state_dim,))}
    outputs = {ACTION: PolicyFeature(FeatureType.ACTION, (action_dim,))}
    # lerobot leaves ENV features un-normalised unless the mapping names them.
    norm = {"VISUAL": NormalizationMode.MEAN_STD, "STATE": NormalizationMode.MIN_MAX,
            "ENV": NormalizationMode.MIN_MAX, "ACTION": NormalizationMode.MIN_MAX}
    common = dict(input_features=inputs, output_features=outputs, normalization_mapping=norm, device="cpu",
                  n_obs_steps=cfg.n_obs_steps, n_action_steps=cfg.n_action_steps, push_to_hub=False)
    if cfg.policy_type == "diffusion":
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

        return DiffusionConfig(
            **common, horizon=cfg.horizon, down_dims=cfg.down_dims, kernel_size=cfg.kernel_size,
            diffusion_step_embed_dim=cfg.diffusion_step_embed_dim, noise_scheduler_type=cfg.noise_scheduler,
            num_train_timesteps=cfg.num_train_timesteps, num_inference_steps=cfg.num_inference_steps,
            do_mask_loss_for_padding=cfg.mask_loss_for_padding, drop_n_last_frames=cfg.frames_dropped_at_episode_end(),
            **cfg.extra)
    from lerobot.policies.act.configuration_act import ACTConfig

    return ACTConfig(
        **{**common, "n_obs_steps": 1, "n_action_steps": min(cfg.n_action_steps, cfg.horizon)}, chunk_size=cfg.horizon, dim_model=cfg.act_dim_model, n_heads=cfg.act_n_heads,
        dim_feedforward=cfg.act_dim_feedforward, n_encoder_layers=cfg.act_n_encoder_layers,
        n_decoder_layers=cfg.act_n_decoder_layers, use_vae=cfg.act_use_vae, kl_weight=cfg.act_kl_weight,
        pretrained_backbone_weights=None, **cfg.extra)


def make_policy(policy_cfg: Any) -> Any:
    from lerobot.policies.factory import get_policy_class

    return get_policy_class(policy_cfg.type)(policy_cfg)


# -- in-memory windowed samples --------------------------------------------------------------------
@dataclass
class WindowedSamples:
    """All (observation window, action chunk) training samples as index arrays into normalised columns.

    Sample i uses frames ``obs_index[i]`` for the observation window and ``action_index[i]`` for the
    action chunk; indices outside the episode are clamped to its first/last frame and, for actions,
    flagged in ``action_is_pad`` — lerobot's ``delta_timestamps`` padding rule.
    """

    columns: dict[str, torch.Tensor]  # key -> (N, dim) normalised float32
    obs_index: torch.Tensor  # (M, n_obs) int64
    action_index: torch.Tensor  # (M, horizon) int64
    action_is_pad: torch.Tensor  # (M, horizon) bool
    squeeze_obs_time: bool  # single-frame policies (ACT) take (B, dim)

    def __len__(self) -> int:
        return int(self.obs_index.shape[0])

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        obs_idx = self.obs_index[rows]
        out = {key: self.columns[key][obs_idx] for key in (STATE_KEY, ENV_STATE_KEY)}
        if self.squeeze_obs_time:
            out = {key: value[:, -1] for key, value in out.items()}
        out[ACTION] = self.columns[ACTION][self.action_index[rows]]
        out[ACTION_IS_PAD] = self.action_is_pad[rows]
        return out


def window_indices(episode_slices: list[slice], obs_offsets: np.ndarray, action_offsets: np.ndarray,
                   drop_last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global frame indices of every sample's obs window and action chunk, and the action pad mask."""
    obs, act, pad = [], [], []
    for sl in episode_slices:
        length = sl.stop - sl.start
        starts = np.arange(max(1, length - drop_last))
        act_local = starts[:, None] + action_offsets[None, :]
        obs.append(sl.start + np.clip(starts[:, None] + obs_offsets[None, :], 0, length - 1))
        act.append(sl.start + np.clip(act_local, 0, length - 1))
        pad.append((act_local < 0) | (act_local >= length))
    return np.concatenate(obs), np.concatenate(act), np.concatenate(pad)


def build_samples(demos: DemoArrays, policy_cfg: Any, preprocessor: Any, drop_last: int) -> WindowedSamples:
    """Normalise every column once with the policy's own pre-processor, then index windows."""
    raw = {STATE_KEY: demos.state, ENV_STATE_KEY: demos.env_state, ACTION: demos.action}
    normalised = preprocessor({k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in raw.items()})
    columns = {k: normalised[k].float().contiguous() for k in raw}
    obs_offsets = np.asarray(policy_cfg.observation_delta_indices or [0])
    action_offsets = np.asarray(policy_cfg.action_delta_indices)
    obs, act, pad = window_indices(demos.episode_slices(), obs_offsets, action_offsets, drop_last)
    return WindowedSamples(columns, torch.as_tensor(obs), torch.as_tensor(act), torch.as_tensor(pad),
                           squeeze_obs_time=policy_cfg.observation_delta_indices is None)


class ShuffledRows:
    """Endless stream of batches: successive random permutations (epochs), cut into batches; its
    state (generator and the rest of the current permutation) is saved with a checkpoint."""

    def __init__(self, n_samples: int, batch_size: int, seed: int) -> None:
        self.n_samples, self.batch_size = n_samples, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.buffer = torch.empty(0, dtype=torch.long)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        while len(self.buffer) < self.batch_size:
            self.buffer = torch.cat([self.buffer, torch.randperm(self.n_samples, generator=self.generator)])
        rows, self.buffer = self.buffer[: self.batch_size], self.buffer[self.batch_size:]
        return rows

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state(), "buffer": self.buffer.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self.buffer = state["buffer"].clone()


def shuffled_rows(n_samples: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless stream of batches drawn with ``generator`` (see ``ShuffledRows``)."""
    stream = ShuffledRows(n_samples, batch_size, 0)
    stream.generator = generator
    return stream


# -- optimisation helpers --------------------------------------------------------------------------
def lr_multiplier(step: int, cfg: BaseTrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``cfg.min_lr_ratio`` at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WeightEma:
    """Exponential moving average of a module's parameters (buffers copied), with decay warm-up."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        ema_params = list(self.module.parameters())
        torch._foreach_lerp_(ema_params, list(module.parameters()), weight)
        for ema_buf, buf in zip(self.module.buffers(), module.buffers()):
            ema_buf.copy_(buf)


# -- the training run ------------------------------------------------------------------------------
def train_base(demos: DemoArrays, cfg: BaseTrainConfig, out_dir: Path, seed: int = 0,
               progress: bool = True, checkpoint_every: int = 500,
               stop_after_steps: int | None = None) -> dict[str, Any] | None:
    """Train a base on ``demos`` and save it (EMA weights + processors) at ``out_dir`` atomically.

    Resumes from the checkpoint beside ``out_dir`` when one of the same settings exists (module
    docstring). ``stop_after_steps`` ends the call after that many steps with a checkpoint saved and
    returns None (what a killed run leaves). Returns the run's metrics (final loss, steps/s,
    parameter count, samples, seconds).
    """
    from lerobot.policies.factory import make_pre_post_processors

    out_dir = Path(out_dir)
    _check_demos(demos, cfg)
    configure_torch(cfg.n_threads)
    torch.manual_seed(seed)
    policy_cfg = make_policy_config(cfg, demos.state.shape[1], demos.env_state.shape[1], demos.action.shape[1])
    policy = make_policy(policy_cfg)
    pre, post = make_pre_post_processors(policy_cfg, dataset_stats=dataset_stats(demos))
    samples = build_samples(demos, policy_cfg, pre, cfg.frames_dropped_at_episode_end())
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    run = _ResumableRun(checkpoint_path(out_dir), training_fingerprint(demos, cfg, seed), checkpoint_every)
    loop_metrics = _optimise(policy, samples, cfg, seed, tmp, progress, run, stop_after_steps)
    if loop_metrics is None:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    to_save = loop_metrics.pop("ema_policy", None) or policy
    metrics = {**loop_metrics, "n_params": sum(p.numel() for p in policy.parameters()), "n_samples": len(samples),
               "n_episodes": demos.n_episodes, "n_frames": int(len(demos.action))}
    # The saved base holds no timing (train_seconds, steps_per_second are returned only): a base rebuilt
    # from the same demonstrations and seed is byte-identical, so DVC records the same hash.
    untimed = {k: v for k, v in metrics.items() if k not in TIMING_KEYS}
    meta = {"task": demos.task, "dataset_root": str(demos.root), "repo_id": demos.repo_id, "seed": seed,
            "config": asdict(cfg), "metrics": untimed, "chunk_len": cfg.chunk_len, "ema_weights": cfg.ema_decay > 0}
    save_base_dir(tmp, to_save, pre, post, meta)
    _replace_dir(tmp, out_dir)
    shutil.rmtree(run.path.parent, ignore_errors=True)  # the base is in place: its checkpoint is spent
    return metrics


def checkpoint_path(out_dir: Path) -> Path:
    """Where the training state of the base saved at ``out_dir`` is checkpointed (a hidden sibling)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.ckpt") / "checkpoint.pt"


def training_fingerprint(demos: DemoArrays, cfg: BaseTrainConfig, seed: int) -> str:
    """What a resumed run must share with the one that saved the checkpoint: settings, seed, data."""
    digest = hashlib.sha256(json.dumps({"config": asdict(cfg), "seed": seed}, sort_keys=True, default=str).encode())
    for column in (demos.state, demos.env_state, demos.action, demos.episode_index):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class _ResumableRun:
    """Where and how often the gradient loop checkpoints, and the fingerprint it is tied to."""

    path: Path
    fingerprint: str
    every: int
    saved: dict[str, Any] = field(default_factory=dict)

    def load(self) -> dict[str, Any] | None:
        """The checkpoint's state when it matches; a mismatching one is set aside (never resumed)."""
        if not self.path.exists():
            return None
        state = load_torch(self.path, "base training checkpoint", required=("fingerprint", "step"))
        if state["fingerprint"] != self.fingerprint:
            self.path.rename(self.path.with_suffix(".stale"))
            print(f"base checkpoint {self.path} was made with other settings or data: set aside, training "
                  "from the start.", flush=True)
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        save_torch({**state, "fingerprint": self.fingerprint}, self.path)


def _check_demos(demos: DemoArrays, cfg: BaseTrainConfig) -> None:
    n = len(demos.action)
    if n == 0 or len(demos.state) != n or len(demos.env_state) != n or len(demos.episode_index) != n:
        raise CohirlError(f"demonstrations at {demos.root} are empty or misaligned "
                          f"(state {len(demos.state)}, env_state {len(demos.env_state)}, action {n} frames). "
                          "Regenerate them with `cohirl demos`.")
    if not all(np.isfinite(a).all() for a in (demos.state, demos.env_state, demos.action)):
        raise CohirlError(f"demonstrations at {demos.root} contain NaN/inf values. Regenerate them.")


def _optimise(policy: Any, samples: WindowedSamples, cfg: BaseTrainConfig, seed: int, log_dir: Path,
              progress: bool, run: _ResumableRun | None = None,
              stop_after_steps: int | None = None) -> dict[str, Any] | None:
    """The gradient loop: AdamW + warm-up/cosine LR + EMA; logs the loss curve into ``log_dir``;
    checkpoints through ``run`` (resuming from it first). None: stopped at ``stop_after_steps``."""
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_multiplier(s, cfg))
    ema = WeightEma(policy, cfg.ema_decay) if cfg.ema_decay > 0 else None
    rows = ShuffledRows(len(samples), cfg.batch_size, seed + 1)
    losses: list[float] = []
    logged: list[tuple[int, float, float]] = []
    first, elapsed = 0, 0.0
    resumed = run.load() if run is not None else None
    if resumed is not None:
        policy.load_state_dict(resumed["policy"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        if ema is not None:
            ema.module.load_state_dict(resumed["ema"])
        rows.load_state_dict(resumed["rows"])
        torch.set_rng_state(resumed["torch_rng"])
        first, elapsed = int(resumed["step"]), float(resumed["seconds"])
        losses, logged = list(resumed["losses"]), [tuple(r) for r in resumed["logged"]]
        print(f"resuming base training from its checkpoint at step {first}/{cfg.steps}", flush=True)
    logger = _LossLogger(log_dir)
    for row in logged:
        logger.log(*row)
    policy.train()
    start = time.perf_counter() - elapsed
    bar = progress_bar(total=cfg.steps, initial=first, desc="base training steps", disable=not progress,
                       mininterval=2.0)
    for step in range(first, cfg.steps):
        loss = _train_step(policy, samples.batch(next(rows)), optimizer, params, cfg.grad_clip_norm)
        scheduler.step()
        if ema is not None:
            ema.update(policy, step)
        losses.append(loss)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            window = float(np.mean(losses[-cfg.log_every:]))
            logged.append((step + 1, window, scheduler.get_last_lr()[0]))
            logger.log(*logged[-1])
            bar.set_postfix(loss=f"{window:.4f}", refresh=False)
        bar.update(1)
        stopping = stop_after_steps is not None and step + 1 == stop_after_steps
        if run is not None and step + 1 < cfg.steps and ((step + 1) % run.every == 0 or stopping):
            run.save({"step": step + 1, "seconds": time.perf_counter() - start, "policy": policy.state_dict(),
                      "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                      "ema": ema.module.state_dict() if ema is not None else None, "rows": rows.state_dict(),
                      "torch_rng": torch.get_rng_state(), "losses": losses, "logged": logged})
        if stopping:
            bar.close()
            logger.close()
            return None
    bar.close()
    seconds = time.perf_counter() - start
    logger.close()
    policy.eval()
    return {"final_loss": float(np.mean(losses[-min(len(losses), 100):])), "steps": cfg.steps,
            "train_seconds": seconds, "steps_per_second": cfg.steps / seconds,
            "ema_policy": ema.module if ema is not None else None}


def _train_step(policy: Any, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                params: list[torch.nn.Parameter], grad_clip_norm: float) -> float:
    loss, _ = policy.forward(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip_norm)
    optimizer.step()
    return float(loss.detach())


class _LossLogger:
    """Loss curve as ``loss.csv`` (always) and a dvclive run (``dvclive/``) when dvclive imports."""

    def __init__(self, log_dir: Path) -> None:
        self._file = (log_dir / "loss.csv").open("w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(["step", "loss", "lr"])
        try:
            from dvclive import Live

            self._live: Any = Live(dir=str(log_dir / "dvclive"), save_dvc_exp=False, dvcyaml=None)
        except Exception:  # dvclive is optional: it needs no repo, but tolerate any setup problem
            self._live = None

    def log(self, step: int, loss: float, lr: float) -> None:
        self._csv.writerow([step, f"{loss:.6f}", f"{lr:.3e}"])
        self._file.flush()  # the curve is readable while a long run goes on
        if self._live is not None:
            self._live.step = step
            self._live.log_metric("train/loss", loss)
            self._live.log_metric("train/lr", lr)

    def close(self) -> None:
        self._file.close()
        if self._live is not None:
            self._live.end()


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` into place; an old ``out_dir`` is removed only after that succeeds."""
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
