"""Exceptions raised by `rerender` for bad input.

Each subclasses the matching builtin so callers can catch either (`except ValueError` keeps working), and
each message names the argument, the bad value and what is valid. The CLI turns them into one-line errors
with exit code 2; anything else is a runtime failure (exit code 1), `ServiceUnavailableError` included.
"""

from __future__ import annotations

__all__ = [
    "RerenderError",
    "ConfigError",
    "InputNotFoundError",
    "WeightsNotFoundError",
    "VideoReadError",
    "OutputPathError",
    "DiskFullError",
    "FlowInputError",
    "CheckpointError",
    "MissingDependencyError",
    "CancelledError",
    "ServiceUnavailableError",
]


class RerenderError(Exception):
    """Base class of every user-facing error raised by `rerender`."""


class ConfigError(RerenderError, ValueError):
    """An option has an unknown name, a wrong type or a value outside its valid range."""


class InputNotFoundError(RerenderError, FileNotFoundError):
    """A file or folder the user named does not exist, or holds nothing usable."""


class WeightsNotFoundError(InputNotFoundError):
    """Model weights are neither on this machine nor downloadable now (offline); the message says how to fetch them."""


class VideoReadError(RerenderError, ValueError):
    """A file exists but cannot be decoded as a video or an image sequence."""


class OutputPathError(RerenderError, ValueError):
    """An output path cannot be written: missing or read-only folder, or equal to an input."""


class DiskFullError(RerenderError, OSError):
    """The disk filled up while writing a file; the message names the folder, its free space and the space needed.

    An `OSError` with `errno` ENOSPC and `filename` the file being written (not an FFmpeg URL), so code that
    handles a full disk as an `OSError` keeps working.
    """

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


class FlowInputError(RerenderError, ValueError):
    """Frames, flows or masks with the wrong shape, dtype, range, channel order or size."""


class CheckpointError(RerenderError, ValueError):
    """A checkpoint file that cannot be read, or that holds the weights of a different model."""


class MissingDependencyError(RerenderError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


class CancelledError(RerenderError, InterruptedError):
    """A run was stopped through its `cancel` event; finished work stays in the workspace, so rerunning resumes."""


class ServiceUnavailableError(RerenderError, ConnectionError):
    """A service the run needs (the model hub, a Ray cluster) cannot be reached or failed mid-transfer.

    A run-time failure, not bad input: the same command may work later (the CLI exits with 1, not 2)."""
