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


class HookError(NasflowError, TypeError):
    """A user's hook (an op's cost function, a task's `benchmark`, a strategy's relaxation, a
    regularizer, ...) returned a value of the wrong kind. One line: the hook, the expected type
    and what came back; raised where the value enters the engine (nasflow.errors.check_return)."""


def shown(value: object) -> str:
    """What came back, for a message: its type and a short repr."""
    import reprlib

    return f"{type(value).__name__} {reprlib.repr(value)}"


def hook_error(hook: str, expected: str, value: object, fix: str = "") -> HookError:
    """The one error for `hook` returning `value` where `expected` (words) was due."""
    return HookError(f"{hook} returned {shown(value)}; expected {expected}" + (f" ({fix})" if fix else ""))


def check_return(hook: str, value: object, types: type | tuple[type, ...], expected: str = "") -> object:
    """`value` when it is an instance of `types` (bool is not an int here), else one HookError
    naming `hook`, the expected type (`expected`, or the types' names) and what came back."""
    wanted = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in wanted and any(t in (int, float) for t in wanted):
        ok = False
    else:
        ok = isinstance(value, wanted)
    if not ok:
        raise hook_error(hook, expected or " or ".join(t.__name__ for t in wanted), value)
    return value
