"""The typer app every command module adds itself to, and the error boundary around it."""
from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from nasflow.errors import NasflowError, NasflowWarning
from nasflow.registry import UnknownNameError

if TYPE_CHECKING:  # torch: imported by the commands that run, not by --help
    from nasflow.runs.distributed import DistContext

app = typer.Typer(
    help="nasflow: declarative differentiable neural architecture search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"nasflow {version('nasflow')}")
        raise typer.Exit()


@app.callback()
def _options(
    trust_imports: bool = typer.Option(
        False, "--trust-imports",
        help="Import the Python modules a space file's `imports:` finds beside it (code that came "
             "with the file). Installed packages are always trusted. Also: NASFLOW_TRUST_IMPORTS=1."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print nasflow's version and exit."),
) -> None:
    """nasflow: declarative differentiable neural architecture search."""
    from nasflow.space.imports import set_trust_imports

    set_trust_imports(True if trust_imports else None)


def parse_sets(items: list[str] | None) -> dict[str, int]:
    """`--set channels=18 --set scale=3` -> {"channels": 18, "scale": 3}."""
    out: dict[str, int] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise NasflowError(f"--set '{item}' must look like name=value, e.g. --set channels=18")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            raise NasflowError(f"--set '{item}': value must be an integer") from None
    return out


def preset_line(used: str, task: str) -> str:
    """What the commands print when a task preset applies: which, and the others."""
    from nasflow.tasks.presets import task_presets

    others = [p for p in task_presets(task) if p != used]
    also = f"; --preset {' or '.join(others)} for the task's other settings" if others else ""
    return f"preset [bold]{used}[/] of task {task} (flags override it{also})"


class _Finished(Protocol):
    finished: bool


R = TypeVar("R", bound=_Finished)


def on_ranks(device: str, out: Path, run_in: Callable[[Path, DistContext], R]) -> R | None:
    """Run `run_in(out, ctx)` in the torchrun job if there is one (joined here: gloo on CPU,
    nccl on GPUs), else alone. Rank 0 gets the result to report; the other ranks None, or
    exit 130 when the run was stopped early, as rank 0 does after reporting."""
    from nasflow.runs import distributed

    from nasflow.runs.threads import adaptive_threads

    ctx = distributed.setup(device)
    on_cpu = not ctx.enabled and distributed.resolve_device(device).type == "cpu"
    try:
        # one thread per idle core, followed between steps, unless the user chose the count
        with adaptive_threads(_say) if on_cpu else nullcontext() as chosen:
            if chosen is not None:
                _say(f"threads: {chosen[0]} ({chosen[1]})")
            out = distributed.broadcast_object(out, ctx)  # rank 0's default name, not each rank's clock
            result = run_in(out, ctx)
    finally:
        distributed.cleanup(ctx)
    if ctx.is_main:
        return result
    if not result.finished:
        raise typer.Exit(130)
    return None


def _say(line: str) -> None:
    err_console.print(line, highlight=False)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """NasflowWarnings are said to the user as one line; the rest as Python shows them."""
    if issubclass(category, NasflowWarning):
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)  # type: ignore[arg-type]


_python_show_warning = warnings.showwarning


def run(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one clear line and exit 2, never a traceback; warnings
    meant for the user (NasflowWarning) print one line each."""
    warnings.showwarning = _show_warning
    try:
        app(args=argv)
    except (NasflowError, UnknownNameError) as exc:
        # escape: a message's own brackets ("nasflow[plot]") are text, not rich markup.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        _exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        _exit(130)
    except SystemExit as done:  # typer ends every command this way
        _exit(done.code)
    _exit(0)


def _exit(code: int | str | None) -> None:
    """Under torchrun, end the process without running C++ teardown: gloo sometimes aborts a
    worker there ("terminate called without an active exception", SIGABRT), after its run is
    finished, its files written durably and the process group destroyed (about 1 run in 40 on
    a loaded 2-core machine), and torchrun then fails the whole job. Alone, exit normally.
    (torch.distributed is in sys.modules whenever a command joined a process group; checking
    that, not importing it, keeps quick commands quick.)"""
    distributed = sys.modules.get("nasflow.runs.distributed")
    if distributed is None or not distributed.launched_by_torchrun():
        sys.exit(code)
    status = code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(code, str):
        print(code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
