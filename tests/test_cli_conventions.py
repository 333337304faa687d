"""The command line follows the ecosystem's conventions (issue 27): help shows no `<bool>`
for flags and ends with an example the CLI accepts; a user error is one line and exit code 2,
its traceback only with --debug; output into a pipe carries no colour codes and no progress
bars."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import typer
from rich.console import Console
from typer.testing import CliRunner

from nasflow.cli.examples import EXAMPLES
from nasflow.cli.main import app

from test_readme import check_call, nasflow_calls

runner = CliRunner()
COMMANDS = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_flags_show_no_type_in_help() -> None:
    assert "<bool>" not in _help()
    for command in COMMANDS:
        assert "<bool>" not in _help(command), command


def test_every_command_help_ends_with_an_example_the_cli_accepts() -> None:
    assert set(COMMANDS) <= set(EXAMPLES), f"commands without an example: {set(COMMANDS) - set(EXAMPLES)}"
    for command in COMMANDS:
        text = _help(command)
        assert f"Example: {EXAMPLES[command]}" in " ".join(text.split()), command
        (args,) = nasflow_calls(EXAMPLES[command])
        assert args[0] == command
        check_call(args, f"{command}'s example")


def test_top_level_help_says_the_exit_codes() -> None:
    text = " ".join(_help().split())
    assert "Exit codes: 0 done; 2 a user error" in text and "1 a bug" in text


def _nasflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nasflow.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200", **env})


def test_a_user_error_is_one_line_exit_2_and_its_traceback_only_with_debug(tmp_path) -> None:
    missing = str(tmp_path / "no-such-space.yaml")
    plain = _nasflow("validate", missing)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().startswith("error:") and len(plain.stderr.strip().splitlines()) == 1
    for done in (_nasflow("--debug", "validate", missing), _nasflow("validate", missing, NASFLOW_DEBUG="1")):
        assert done.returncode == 2 and "Traceback" in done.stderr and "error:" in done.stderr


def test_output_into_a_pipe_has_no_colour_codes(tmp_path) -> None:
    from pathlib import Path

    space = Path(__file__).resolve().parents[1] / "spaces" / "dlsr" / "space.yaml"
    done = _nasflow("validate", str(space))
    assert done.returncode == 0 and "\x1b[" not in done.stdout + done.stderr


def test_progress_bars_only_on_a_terminal() -> None:
    from nasflow.cli.search_view import RichReporter
    from nasflow.cli.train_view import TrainReporter

    for terminal in (False, True):
        for reporter in (RichReporter(Console(file=io.StringIO(), force_terminal=terminal)),
                         TrainReporter(Console(file=io.StringIO(), force_terminal=terminal))):
            if isinstance(reporter, RichReporter):
                reporter.start(0, 4, 2)
            else:
                reporter.start(0, 4)
            try:
                assert reporter.progress is not None and reporter.progress.disable is (not terminal)
            finally:
                reporter.stop()
