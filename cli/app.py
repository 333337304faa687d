"""The typer app every command module adds itself to, and the error boundary around it."""
from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import typer
import typer.core
import typer.rich_utils
from rich.markup import escape

from nasflow.errors import NasflowError, NasflowWarning
from nasflow.registry import UnknownNameError
from nasflow.viz.console import PlainAwareConsole, err_console
from nasflow.viz.console import console as console  # the commands print through `from .app import console`

if TYPE_CHECKING:  # torch: imported by the commands that run, not by --help
    from nasflow.runs.distributed import DistContext

EXIT_CODES = ("Exit codes: 0 done; 2 a user error, said in one line (--debug adds its traceback); "
              "1 a bug in nasflow (a traceback); 130 interrupted.")

app = typer.Typer(
    help="nasflow: declarative differentiable neural architecture search.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion (typer, through shellingham)
)


typer.rich_utils.Console = PlainAwareConsole  # type: ignore[attr-defined,misc]  # --help's panels too


_typer_display_type = getattr(typer.core.TyperOption, "display_type_rich", None)


def _display_type(self: typer.core.TyperOption, ctx: object) -> str | None:
    """A flag takes no value: help shows `--resume`, not `--resume <bool>`."""
    if self.is_flag or self.count:
        return None
    return _typer_display_type(self, ctx)  # type: ignore[misc]


if _typer_display_type is not None:  # typer >= 0.20 prints every option's type
    typer.core.TyperOption.display_type_rich = _display_type  # type: ignore[method-assign]

_debug = False  # --debug / NASFLOW_DEBUG=1: user errors show their traceback too


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
    debug: bool = typer.Option(False, "--debug",
                               help="Show the traceback behind a one-line error. Also: NASFLOW_DEBUG=1."),
) -> None:
    """nasflow: declarative differentiable neural architecture search."""
    global _debug
    from nasflow.space.imports import set_trust_imports

    _debug = debug

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


def add_short_help(app: typer.Typer) -> None:
    """The command list shows each command's first paragraph as one line of text (typer's
    rich mode keeps a docstring's line breaks there, which wrap raggedly); idempotent."""
    for info in app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def run(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one clear line and exit 2, a traceback only with
    --debug (or NASFLOW_DEBUG=1); warnings meant for the user (NasflowWarning) print one line
    each. Exit codes: 0 done, 2 a user error, 1 a bug (Python's traceback), 130 interrupted."""
    from .examples import add_examples
    from .order import order_commands

    add_examples(app)
    add_short_help(app)
    order_commands(app)
    warnings.showwarning = _show_warning
    try:
        app(args=argv)
    except (NasflowError, UnknownNameError) as exc:
        if _debug or os.environ.get("NASFLOW_DEBUG", "") not in ("", "0"):
            err_console.print_exception()
        # escape: a message's own brackets ("nasflow[plot]") are text, not rich markup.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        _exit(2)
    except OSError as exc:  # a full disk, a read-only or forbidden folder: one line; anything else, a bug
        from nasflow.runs.durable import explain_os_error

        line = explain_os_error(exc)
        if line is None:
            raise
        if _debug or os.environ.get("NASFLOW_DEBUG", "") not in ("", "0"):
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
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
