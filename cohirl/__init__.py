"""cohirl: coherent inverse RL (CSIL) over a frozen behaviour model — reference reproduction."""

from cohirl import _runtime as _runtime  # noqa: F401  (sets offline env vars on import)

__version__ = "0.1.0"
