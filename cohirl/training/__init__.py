"""Training utilities independent of simulators (replay buffers)."""

from cohirl.training.replay import DemoEpisode, ReplayBuffer, demo_buffer

__all__ = ["DemoEpisode", "ReplayBuffer", "demo_buffer"]
