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


STAGE_CPUS_ENV = "COHIRL_STAGE_CPUS"  # CPUs a stage may use (set by `cohirl repro` from --cpus-per-stage)
ENV_PROCESS_ENV = "COHIRL_ENV_PROCESS"  # "1"/"0": force the finetuning env worker process on/off


def env_worker_wanted() -> bool:
    """Step the finetuning task and base in a second process (``cohirl.training.env_worker``)?

    Only where a second core is the stage's to use: ``$COHIRL_ENV_PROCESS`` if set, else whether the
    stage has ≥ 2 CPUs (``$COHIRL_STAGE_CPUS`` under ``cohirl repro``, where stages run side by side;
    the machine's core count under a plain ``dvc repro`` or a notebook, which run one stage at a time).
    The rows are the same either way; only the wall time changes.
    """
    forced = os.environ.get(ENV_PROCESS_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        from cohirl.errors import CohirlError

        raise CohirlError(f"${ENV_PROCESS_ENV}={forced!r}: use 1 (env worker process) or 0 (one process).")
    cpus = os.environ.get(STAGE_CPUS_ENV, "").strip()
    return (float(cpus) if cpus else float(os.cpu_count() or 1)) >= 2


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
