"""Training configuration of the frozen base behaviour model (stage 2).

The paper's base is π0.5, a vision-language-action model that is only finetuned by others and then
frozen. Its weights cannot be run here, so stage 2 trains a lerobot chunking policy (Diffusion Policy
by default, ACT as an alternative) from the demonstrations on CPU, and freezes it. Everything
downstream only sees the ``ChunkPolicy`` / ``BaseStepper`` interfaces, so a π0.5 checkpoint saved
by lerobot drops in through ``cohirl.policies.lerobot_base`` without changes here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from cohirl.errors import CohirlError

PolicyType = Literal["diffusion", "act"]


@dataclass(frozen=True)
class BaseTrainConfig:
    """Hyper-parameters of one base training run. Defaults = the small CPU profile."""

    policy_type: PolicyType = "diffusion"
    # -- optimisation ----------------------------------------------------------------------------
    # Measured on square (25 DART demos, 1 thread, 20 paired episodes): the 32/64/128 U-Net at lr 3e-4
    # trains at ~14 steps/s and was at 5/20 after 5k steps (of a 10k cosine run); ACT (dim 128)
    # trained at ~6 steps/s and was 0/20 at 2.5k and 5k steps; the 64/128/256 U-Net at lr 1e-4 was
    # 0/20 after 3k steps.
    steps: int = 5000  # gradient steps
    batch_size: int = 64
    lr: float = 3e-4  # AdamW peak learning rate (lerobot's diffusion default 1e-4 is slow for the small U-Net)
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-6
    grad_clip_norm: float = 10.0  # lerobot's default
    warmup_steps: int = 200  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.0
    # EMA of weights: the trial run saw success jump between checkpoints without it. The decay is
    # warmed up as min(ema_decay, (1 + step) / (10 + step)); 0 disables EMA.
    ema_decay: float = 0.995
    # -- model -----------------------------------------------------------------------------------
    n_obs_steps: int = 2
    horizon: int = 16  # diffusion: must be a multiple of 2 ** len(down_dims)
    n_action_steps: int = 8  # lerobot's own select_action() only; cohirl re-plans every k steps
    down_dims: tuple[int, ...] = (32, 64, 128)  # 1.5 M parameters
    kernel_size: int = 5
    diffusion_step_embed_dim: int = 128
    noise_scheduler: Literal["DDPM", "DDIM"] = "DDIM"
    num_train_timesteps: int = 100
    num_inference_steps: int = 10  # DDIM steps at inference
    mask_loss_for_padding: bool = False  # lerobot/original Diffusion Policy default
    # ACT only
    act_dim_model: int = 256
    act_n_heads: int = 8
    act_dim_feedforward: int = 1024
    act_n_encoder_layers: int = 2
    act_n_decoder_layers: int = 1
    act_use_vae: bool = True
    act_kl_weight: float = 10.0
    # -- data ------------------------------------------------------------------------------------
    # Frames too close to an episode end are not used as window starts (lerobot's EpisodeAwareSampler);
    # None = lerobot's rule (diffusion: horizon - n_action_steps - n_obs_steps + 1, ACT: 0).
    drop_n_last_frames: int | None = None
    # -- run -------------------------------------------------------------------------------------
    n_threads: int | None = None  # torch threads; None = 1 (see cohirl._runtime.configure_torch)
    log_every: int = 50  # loss-curve logging period (steps)
    extra: dict[str, Any] = field(default_factory=dict)  # forwarded to the lerobot policy config

    def __post_init__(self) -> None:
        if self.policy_type not in ("diffusion", "act"):
            raise CohirlError(f"unknown base policy type {self.policy_type!r}; use 'diffusion' or 'act'.")
        if self.policy_type == "diffusion" and self.horizon % (2 ** len(self.down_dims)) != 0:
            raise CohirlError(
                f"diffusion horizon {self.horizon} is not a multiple of 2^len(down_dims) = "
                f"{2 ** len(self.down_dims)}; pick e.g. horizon={2 ** len(self.down_dims) * 2}."
            )
        if self.steps < 1 or self.batch_size < 1 or not 0.0 <= self.ema_decay < 1.0:
            raise CohirlError(f"bad base training budget: steps={self.steps}, batch={self.batch_size}, "
                              f"ema_decay={self.ema_decay} (need steps, batch >= 1 and 0 <= ema_decay < 1).")

    @property
    def chunk_len(self) -> int:
        """Executable actions per prediction, counted from the current observation onward."""
        return self.horizon - self.n_obs_steps + 1 if self.policy_type == "diffusion" else self.horizon

    def frames_dropped_at_episode_end(self) -> int:
        if self.drop_n_last_frames is not None:
            return self.drop_n_last_frames
        if self.policy_type == "diffusion":
            return max(0, self.horizon - self.n_action_steps - self.n_obs_steps + 1)
        return 0

    def replace(self, **changes: Any) -> "BaseTrainConfig":
        return dataclasses.replace(self, **changes)


def small_cpu_config(**overrides: Any) -> BaseTrainConfig:
    """A few minutes of CPU training: 1.5 M-parameter U-Net (32/64/128), horizon 16, DDIM 10."""
    return BaseTrainConfig(**overrides)


def large_config(**overrides: Any) -> BaseTrainConfig:
    """The original low-dim Diffusion Policy scale (256/512/1024, batch 256); needs a GPU to be quick."""
    defaults: dict[str, Any] = dict(
        steps=50_000, batch_size=256, down_dims=(256, 512, 1024), lr=1e-4, warmup_steps=500,
        ema_decay=0.999, log_every=200,
    )
    return BaseTrainConfig(**{**defaults, **overrides})


PROFILES = {"small": small_cpu_config, "large": large_config}


def config_for_profile(profile: str, **overrides: Any) -> BaseTrainConfig:
    if profile not in PROFILES:
        raise CohirlError(f"unknown base training profile {profile!r}; choose one of {sorted(PROFILES)}.")
    return PROFILES[profile](**overrides)
