"""Typed exceptions for errors a user can cause.

Every message is one sentence naming the offending value and what was expected; the CLI prints it
and exits with status 2, never a traceback.
"""


class AekitError(Exception):
    """Base class of every user-facing aekit error."""


class ConfigError(AekitError, ValueError):
    """An unknown option, a wrong type or an out-of-range value in a config."""


class DataError(AekitError, ValueError):
    """A missing, malformed or unusable data set or array."""


class ChecksumError(DataError):
    """A downloaded or local file whose checksum does not match the published one."""


class CheckpointError(AekitError):
    """A missing, corrupt, truncated or incompatible saved model or trainer state."""


class TrainingError(AekitError, RuntimeError):
    """Training could not go on (for example a non-finite loss)."""
