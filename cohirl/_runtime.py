"""Process-wide settings every entry point applies before heavy imports (see shared/stack.md)."""

from __future__ import annotations

import os

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_env() -> None:
    """Never reach for the Hub or the internet at run time."""
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def configure_torch(n_threads: int | None = None) -> None:
    """Thread count and flush-denormal (a CPU run slowed 6x on subnormal floats without it)."""
    import torch

    torch.set_num_threads(n_threads or max(1, os.cpu_count() or 1))
    torch.set_flush_denormal(True)


set_offline_env()
