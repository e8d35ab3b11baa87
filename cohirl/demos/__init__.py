"""Stage 1: demonstrations (expert rollouts with DART noise, LeRobotDataset I/O, HDF5 import)."""

from cohirl.demos.collect import NoiseConfig, collect_demos
from cohirl.demos.dataset import DemoArrays, Episode, load_demo_arrays, write_dataset

__all__ = ["DemoArrays", "Episode", "NoiseConfig", "collect_demos", "load_demo_arrays", "write_dataset"]
