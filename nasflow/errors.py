"""Errors nasflow raises for user input: one clear message naming the thing and the fix."""
from __future__ import annotations


class NasflowError(Exception):
    """Base of every error caused by user input (files, options, checkpoints)."""


class SpaceError(NasflowError, ValueError):
    """A space file (or a space built in Python) is malformed or inconsistent.

    `where` is "file:line" when the space came from YAML and the line is known.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class CheckpointError(NasflowError, ValueError):
    """A checkpoint or model directory does not fit the architecture it is loaded into."""


class RunError(NasflowError, RuntimeError):
    """A run directory is missing, incomplete or from another configuration."""


class NasflowWarning(UserWarning):
    """Something the user should know that does not stop the run (e.g. input images skipped);
    the CLI prints it as one 'warning:' line."""
