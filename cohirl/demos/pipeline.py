"""Stage 1 entry points: collect, write and summarise demonstrations for one task."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from cohirl.demos.collect import CollectionReport, NoiseConfig, collect_demos
from cohirl.demos.dataset import DemoArrays, check_complete, load_demo_arrays, write_dataset
from cohirl.envs import get_spec
from cohirl.errors import CohirlError


def make_demos(task: str, n_demos: int, seed: int, noise: NoiseConfig, out: Path,
               overwrite: bool = False, progress: bool = True) -> CollectionReport:
    """Collect ``n_demos`` successful expert episodes and write them as a LeRobotDataset at ``out``."""
    spec = get_spec(task)
    if Path(out).exists() and not overwrite:  # fail before spending the collection time
        raise CohirlError(f"{out} already exists. Pass --overwrite to replace it.")
    episodes, report = collect_demos(task, n_demos, seed, noise, progress=progress)
    provenance = {**report.as_dict(), "seed": seed, "attempt_seeds": report.attempt_seeds,
                  "attempt_success": report.attempt_success, "attempt_lengths": report.lengths}
    write_dataset(episodes, Path(out), spec, overwrite=overwrite, provenance=provenance)
    return report


@dataclass(frozen=True)
class DemosConfig:
    """Stage 1 settings (``params.yaml``: ``profiles.<p>.demos`` + ``task_params.<task>.demos``)."""

    n_demos: int = 50  # successful episodes kept (failures are dropped and counted)
    seed: int = 0  # drives initial states and DART noise
    noise: NoiseConfig = NoiseConfig()

    def __post_init__(self) -> None:
        if self.n_demos <= 0:
            raise CohirlError(f"demos.n_demos must be positive, got {self.n_demos}.")


def load_or_make_demos(task: str, cfg: DemosConfig, out: Path, progress: bool = True) -> DemoArrays:
    """Reuse a complete dataset made with the same settings; otherwise (re)generate it."""
    out = Path(out)
    if out.exists():
        try:
            info = check_complete(out)
            if info.get("seed") == cfg.seed and info.get("noise") == asdict(cfg.noise) \
                    and info.get("n_episodes") == cfg.n_demos:
                return load_demo_arrays(out)
        except CohirlError:
            pass  # incomplete or corrupt: regenerate below
    make_demos(task, cfg.n_demos, cfg.seed, cfg.noise, out, overwrite=True, progress=progress)
    return load_demo_arrays(out)
