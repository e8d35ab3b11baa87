"""One exception type for user-facing problems: the message names the problem and the fix."""


class CohirlError(RuntimeError):
    """Bad input or a missing/corrupt artefact. The CLI prints the message and exits non-zero."""
