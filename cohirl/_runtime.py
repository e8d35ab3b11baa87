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
    """Thread count and flush-denormal (a CPU run slowed 6x on subnormal floats without it).

    One thread unless asked otherwise: results then do not depend on the machine's core count, and
    the cores are used by processes instead (``cohirl repro --jobs``, evaluation workers). On 2 cores
    a second thread sped base training up 1.01x, a second process 2.00x (benchmarks/parallel_training.py).
    """
    import torch

    torch.set_num_threads(n_threads or 1)
    torch.set_flush_denormal(True)


set_offline_env()
