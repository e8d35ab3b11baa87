"""Any lerobot ``PreTrainedPolicy`` (with its saved pre/post processors) as a ``ChunkPolicy``.

A base directory is what lerobot writes with ``save_pretrained`` for the policy and both processor
pipelines (``config.json``, ``model.safetensors``, ``policy_preprocessor.json``,
``policy_postprocessor.json`` + processor state files); cohirl adds ``cohirl_base.json`` with its
training record. Loading uses ``from_pretrained(<local dir>)`` only — never the Hub.

The adapter is generic over lerobot policies:

- Diffusion Policy predicts ``horizon`` actions starting at the *first* observation of its window;
  the executable chunk therefore starts at index ``n_obs_steps - 1`` (sliced off here, not in the
  stepper), and the whole remainder of the horizon is exposed so the stepper can re-plan every
  k ≤ horizon − n_obs_steps + 1 steps (lerobot's own ``n_action_steps`` is not used). Its initial
  diffusion noise is drawn per chunk from a generator seeded by ``reset(seed)`` (DDIM with η = 0 is
  then deterministic), or is all zeros with ``zero_noise=True`` (a mode-like choice).
- ACT, π0, π0.5, SmolVLA… go through ``predict_action_chunk``; their chunk starts at the current
  step. Any global-RNG sampling inside them runs under a seed drawn from the same generator.
- Camera images ``observation.images.<camera>`` and the language instruction ``task`` are passed to
  the pre-processor when the policy's config lists image features / when a language string is
  given (π0.5 tokenises ``task`` in its pre-processor). π0.5 itself cannot run here (its weights are
  on the Hub and lerobot 0.4.4 needs a patched transformers), so only the generic path covers it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cohirl.envs.base import ENV_STATE_KEY, STATE_KEY, TaskSpec
from cohirl.errors import CohirlError
from cohirl.policies.base import ChunkPolicy, ChunkStepper, ObsHistory

if TYPE_CHECKING:
    from lerobot.policies.pretrained import PreTrainedPolicy

ACTION = "action"
IMAGES_PREFIX = "observation.images"
BASE_META_FILE = "cohirl_base.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json")
_RETRAIN_HINT = "Retrain it with the base stage (`cohirl train-base --task <task>` / `dvc repro base`)."


class LerobotChunkPolicy(ChunkPolicy):
    """A frozen lerobot policy + its normalising processors behind ``predict_chunk``."""

    def __init__(self, policy: PreTrainedPolicy, preprocessor: Any, postprocessor: Any,
                 language: str | None = None, zero_noise: bool = False) -> None:
        cfg = policy.config
        self.policy = policy.eval()
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.language = language
        self.zero_noise = zero_noise
        self.policy_type = str(cfg.type)
        self.action_dim = int(cfg.output_features[ACTION].shape[0])
        self.n_obs_steps = int(cfg.n_obs_steps)
        self.obs_keys = tuple(cfg.input_features)  # state, environment state, camera images
        self._offset = self.n_obs_steps - 1 if self.policy_type == "diffusion" else 0
        raw_len = getattr(cfg, "horizon", None) if self.policy_type == "diffusion" else None
        raw_len = raw_len or getattr(cfg, "chunk_size", None) or getattr(cfg, "n_action_steps")
        self.chunk_len = int(raw_len) - self._offset
        # DDIM (η = 0) from zero initial noise draws nothing: a chunk is a function of its row alone.
        self.row_deterministic = (zero_noise and self.policy_type == "diffusion"
                                  and str(getattr(cfg, "noise_scheduler_type", "")).upper() == "DDIM")
        self._noise_rng = torch.Generator().manual_seed(0)  # initial diffusion noise, row by row
        self._global_seed_rng = torch.Generator().manual_seed(1)  # seeds for global-RNG sampling

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | Path, spec: TaskSpec | None = None, expected_action_dim: int | None = None,
                 language: str | None = None, zero_noise: bool = False) -> "LerobotChunkPolicy":
        """Load a base saved by ``save_base_dir`` (or any lerobot checkpoint dir with processors).

        ``spec`` (or ``expected_action_dim``) checks the base against the task it will drive; the
        task's language instruction is used unless ``language`` overrides it.
        """
        path = Path(path)
        _check_base_files(path)
        policy, pre, post = _load_lerobot(path)
        out = cls(policy, pre, post, language=language or (spec.language if spec else None), zero_noise=zero_noise)
        out.check_compatible(path, spec, expected_action_dim)
        return out

    def check_compatible(self, path: Path, spec: TaskSpec | None, expected_action_dim: int | None) -> None:
        """Raise if the base's action/observation sizes differ from the task's."""
        want = expected_action_dim if expected_action_dim is not None else (spec.action_dim if spec else None)
        if want is not None and want != self.action_dim:
            raise CohirlError(f"base at {path} outputs {self.action_dim}-d actions but the task expects "
                              f"{want}-d actions. Train a base on this task's demonstrations. {_RETRAIN_HINT}")
        if spec is None:
            return
        features = self.policy.config.input_features
        for key, dim in ((STATE_KEY, spec.state_dim), (ENV_STATE_KEY, spec.env_state_dim)):
            if key in features and tuple(features[key].shape) != (dim,):
                raise CohirlError(f"base at {path} expects {key} of shape {tuple(features[key].shape)} but task "
                                  f"{spec.name!r} gives ({dim},). {_RETRAIN_HINT}")

    # -- ChunkPolicy -----------------------------------------------------------------------------
    def reset(self, seed: int = 0) -> None:
        self.policy.reset()
        self._noise_rng = torch.Generator().manual_seed(int(seed))
        self._global_seed_rng = torch.Generator().manual_seed(int(seed) + 1_000_003)

    @torch.inference_mode()
    def predict_chunk(self, obs_history: ObsHistory) -> np.ndarray:
        batch_size = len(next(iter(obs_history.values())))
        batch = self.preprocessor(self._to_batch(obs_history, batch_size))
        rng_seed = int(torch.randint(0, 2**62, (1,), generator=self._global_seed_rng))
        noise = self._initial_noise(batch_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng_seed)  # any sampling that uses the global RNG is seeded too
            if self.policy_type == "diffusion":
                actions = self._sample_diffusion(batch, noise)
            else:
                actions = self.policy.predict_action_chunk(batch)
        actions = self.postprocessor(actions[:, self._offset: self._offset + self.chunk_len])
        return actions.detach().cpu().numpy().astype(np.float32)

    def _to_batch(self, obs_history: ObsHistory, batch_size: int) -> dict[str, Any]:
        missing = [k for k in self.obs_keys if k not in obs_history]
        if missing:
            raise CohirlError(f"base needs observation keys {missing}; got {sorted(obs_history)}.")
        batch: dict[str, Any] = {k: _obs_tensor(k, obs_history[k]) for k in self.obs_keys}
        if self.n_obs_steps == 1:  # single-frame policies take (B, ...) without a time axis
            batch = {k: v[:, -1] for k, v in batch.items()}
        if self.language is not None:
            batch["task"] = [self.language] * batch_size
        return batch

    def _initial_noise(self, batch_size: int) -> torch.Tensor | None:
        """Per-row noise drawn in order, so a batch of B re-plans equals B single re-plans."""
        if self.policy_type != "diffusion":
            return None
        horizon = int(self.policy.config.horizon)
        if self.zero_noise:
            return torch.zeros(batch_size, horizon, self.action_dim)
        rows = [torch.randn(horizon, self.action_dim, generator=self._noise_rng) for _ in range(batch_size)]
        return torch.stack(rows)

    def _sample_diffusion(self, batch: dict[str, Any], noise: torch.Tensor | None) -> torch.Tensor:
        """The full horizon (lerobot's ``generate_actions`` would cut it to ``n_action_steps``)."""
        model = self.policy.diffusion
        if self.policy.config.image_features:
            batch = dict(batch)
            batch["observation.images"] = torch.stack([batch[k] for k in self.policy.config.image_features], dim=-4)
        global_cond = model._prepare_global_conditioning(batch)
        return model.conditional_sample(global_cond.shape[0], global_cond=global_cond, noise=noise)


def _obs_tensor(key: str, value: np.ndarray) -> torch.Tensor:
    """Numpy observation -> float tensor; camera frames (..., H, W, C) uint8 -> (..., C, H, W) in [0, 1]."""
    tensor = torch.as_tensor(np.asarray(value))
    if key.startswith(IMAGES_PREFIX + "."):
        if tensor.dtype == torch.uint8:
            tensor = tensor.float() / 255.0
        if tensor.shape[-1] in (1, 3):
            tensor = tensor.movedim(-1, -3)
    return tensor.float()


def _check_base_files(path: Path) -> None:
    if not path.is_dir():
        raise CohirlError(f"no base policy at {path}. {_RETRAIN_HINT}")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CohirlError(f"base policy at {path} is incomplete (missing {', '.join(missing)}). "
                          f"Delete it and retrain. {_RETRAIN_HINT}")


def _load_lerobot(path: Path) -> tuple[Any, Any, Any]:
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    torch.set_flush_denormal(True)  # inference on CPU slows badly on subnormal floats
    try:
        cfg = PreTrainedConfig.from_pretrained(path, local_files_only=True)
        cfg.device = "cpu"
        policy = get_policy_class(cfg.type).from_pretrained(path, config=cfg, local_files_only=True, strict=True)
        overrides = {"device_processor": {"device": "cpu"}}
        pre, post = make_pre_post_processors(cfg, pretrained_path=str(path), preprocessor_overrides=overrides)
    except Exception as exc:  # lerobot/draccus/safetensors raise many types for damaged files
        raise CohirlError(f"base policy at {path} could not be loaded ({type(exc).__name__}: {exc}). "
                          f"The directory is corrupt or from another lerobot version. {_RETRAIN_HINT}") from exc
    return policy, pre, post


def save_base_dir(directory: Path, policy: PreTrainedPolicy, preprocessor: Any, postprocessor: Any,
                  meta: dict[str, Any]) -> None:
    """Write a loadable base into ``directory`` (the caller renames it into place atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(directory)
    preprocessor.save_pretrained(directory)
    postprocessor.save_pretrained(directory)
    (directory / BASE_META_FILE).write_text(json.dumps(meta, indent=2, default=str))


def read_base_meta(path: str | Path) -> dict[str, Any]:
    """cohirl's training record of a base (empty for a foreign lerobot checkpoint)."""
    meta = Path(path) / BASE_META_FILE
    return dict(json.loads(meta.read_text())) if meta.is_file() else {}


@dataclass(frozen=True)
class LerobotBaseFactory:
    """Picklable ``PolicyFactory``: builds the frozen base as a ``ChunkStepper`` inside a worker."""

    path: str
    replan_every: int
    spec: TaskSpec | None = None
    zero_noise: bool = False
    n_threads: int | None = None  # torch threads in the worker; None leaves the setting alone

    def __call__(self) -> ChunkStepper:
        if self.n_threads:
            torch.set_num_threads(self.n_threads)
        policy = LerobotChunkPolicy.from_dir(self.path, spec=self.spec, zero_noise=self.zero_noise)
        return ChunkStepper(policy, self.replan_every)


def load_base_stepper(path: str | Path, replan_every: int, spec: TaskSpec | None = None,
                      zero_noise: bool = False) -> ChunkStepper:
    """The frozen base at ``path`` as a stepper (``BaseStepper`` and ``Policy``)."""
    return LerobotBaseFactory(os.fspath(path), replan_every, spec, zero_noise)()
