"""The command line follows the ecosystem's conventions (issue 27): help shows no `<bool>`
for flags and ends with an example the CLI accepts; a user error is one line and exit code 2,
its traceback only with --debug; output into a pipe (or with NO_COLOR set) carries no colour
codes, no box-drawing and no progress bars; shell completion installs and answers."""
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


BOX_DRAWING = set(range(0x2500, 0x2580)) | set(range(0x2580, 0x25A0))  # box and block characters


def _plain(text: str) -> bool:
    return "\x1b[" not in text and not any(ord(c) in BOX_DRAWING for c in text)


def _on_a_terminal(*args: str, **env: str) -> str:
    """stdout and stderr of `nasflow ARGS` run on a pseudo-terminal, as a user's shell runs it."""
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "nasflow.cli.main", *args], stdout=follower,
                              stderr=follower, timeout=120, env={**os.environ, "COLUMNS": "120", **env})
    finally:
        os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert done.returncode == 0
    return b"".join(chunks).decode()


def test_tables_are_plain_into_a_pipe_and_with_no_color() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    piped = subprocess.run([sys.executable, "-m", "nasflow.cli.main", "cost", "dlsr/dlsr-s", "--totals"],
                           capture_output=True, text=True, timeout=120, env={**env, "COLUMNS": "120"})
    assert piped.returncode == 0 and "56,268" in piped.stdout and "| total" in piped.stdout
    assert _plain(piped.stdout + piped.stderr), piped.stdout
    help_text = subprocess.run([sys.executable, "-m", "nasflow.cli.main", "validate", "--help"],
                               capture_output=True, text=True, timeout=120, env=env).stdout
    assert "Options" in help_text and _plain(help_text)
    saved = {k: os.environ.pop(k) for k in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE") if k in os.environ}
    try:
        styled = _on_a_terminal("cost", "dlsr/dlsr-s", "--totals")
        assert "56,268" in styled and not _plain(styled)  # a terminal gets the styled table
        plain = _on_a_terminal("cost", "dlsr/dlsr-s", "--totals", NO_COLOR="1")
        assert "56,268" in plain and _plain(plain), plain
    finally:
        os.environ.update(saved)


def test_the_sr_commands_print_plain_into_a_pipe_and_with_no_color(tmp_path) -> None:
    """The DLSR package's own commands (upscale, compare) print through the CLI's console:
    into a pipe, and on a terminal with NO_COLOR, no ANSI codes and no box-drawing."""
    from pathlib import Path

    import numpy as np
    import pytest
    from PIL import Image

    from nasflow.compile.supernet import compile_graph
    from nasflow.runs.modeldir import save_model
    from nasflow.space.graph import build_graph
    from nasflow.space.load import load_space

    pytest.importorskip("matplotlib")  # compare draws its figure with it
    space = load_space(Path(__file__).resolve().parents[1] / "spaces" / "dlsr" / "dlsr-s.yaml", {"channels": 4})
    model = str(save_model(tmp_path / "m", space, compile_graph(build_graph(space)).state_dict(), {"scale": 2}))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    compare = ("compare", model, "--image", str(tmp_path / "a.png"), "--box", "8,8,16,16", "--device", "cpu",
               "-o", str(tmp_path / "c.png"))
    upscale = ("upscale", model, str(tmp_path / "a.png"), "-o", str(tmp_path / "a2.png"), "--backend", "eager",
               "--device", "cpu")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    for args in (compare, upscale):
        piped = subprocess.run([sys.executable, "-m", "nasflow.cli.main", *args], capture_output=True, text=True,
                               timeout=120, env={**env, "COLUMNS": "120", "OMP_NUM_THREADS": "1"})
        out = piped.stdout + piped.stderr
        assert piped.returncode == 0 and ("wrote" in out or "ok" in out), out
        assert _plain(out) and "\r" not in out, out
    saved = {k: os.environ.pop(k) for k in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE") if k in os.environ}
    try:
        styled = _on_a_terminal(*compare, OMP_NUM_THREADS="1")
        assert "wrote" in styled and not _plain(styled)  # a terminal gets bold
        plain = _on_a_terminal(*compare, NO_COLOR="1", OMP_NUM_THREADS="1")
        assert "wrote" in plain and _plain(plain), plain
    finally:
        os.environ.update(saved)


def test_the_main_job_by_name_into_a_pipe_has_no_progress_frames(tmp_path) -> None:
    """`nasflow search dlsr` and `nasflow train dlsr/dlsr-s` (two steps each, the shipped
    data) from an empty folder into a pipe: they run by name, and their output has no ANSI
    codes, no carriage-return redraws and no progress bar."""
    tiny = ("--steps", "2", "--batch", "2", "--device", "cpu", "--task-opt", "patch=48", "--set", "channels=8")
    env = {**os.environ, "COLUMNS": "120", "OMP_NUM_THREADS": "1"}
    runs = [("search", "dlsr", "--warmup", "1", "--levers", "given", "--no-fuse", "--snapshot-steps", "none",
             "--out", "s", *tiny),
            ("train", "dlsr/dlsr-s", "--validate-every", "2", "--out", "t", *tiny)]
    for args in runs:
        done = subprocess.run([sys.executable, "-m", "nasflow.cli.main", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env=env)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-3000:]
        assert _plain(out) and "\r" not in out, out[-3000:]
        assert "━" not in out and "ETA" not in out and "remaining" not in out, out[-3000:]
    assert (tmp_path / "s" / "checkpoint.safetensors").is_file()
    assert (tmp_path / "t" / "model" / "weights.safetensors").is_file()


def _script() -> str | None:
    """The installed `nasflow` script: completion keys on the program's name."""
    import shutil
    from pathlib import Path

    beside = Path(sys.executable).parent / "nasflow"
    return str(beside) if beside.is_file() else shutil.which("nasflow")


def test_shell_completion(tmp_path) -> None:
    script = _script()
    if script is None:
        import pytest

        pytest.skip("no installed nasflow script on PATH")
    assert "--install-completion" in _help() and "--show-completion" in _help()
    shown = subprocess.run([script, "--show-completion", "bash"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "_NASFLOW_COMPLETE=complete_bash" in shown.stdout
    assert "complete -o default -F _nasflow_completion nasflow" in shown.stdout

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_NASFLOW_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        done = subprocess.run([script], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert {"search", "spaces", "strategies", "sweep"} <= set(complete("nasflow s"))
    assert "--strategy" in complete("nasflow search --str") and "--set" in complete("nasflow validate --")
    home = tmp_path / "home"
    home.mkdir()
    installed = subprocess.run(["bash", "-c", f"'{script}' --install-completion"], capture_output=True, text=True,
                               timeout=120, env={**os.environ, "HOME": str(home), "SHELL": "/bin/bash"})
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "_nasflow_completion" in (home / ".bash_completions" / "nasflow.sh").read_text()
    assert ".bash_completions/nasflow.sh" in (home / ".bashrc").read_text()
