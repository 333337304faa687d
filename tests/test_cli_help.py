"""The command line says what will happen (issue 15): help shows that the preset decides the
defaults, search and train share --data, errors name the flag typed, --version answers."""
from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

from nasflow.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _help(command: str) -> str:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return re.sub(r"\s+", " ", result.output.replace("│", " "))


def test_help_says_the_preset_decides_the_defaults() -> None:
    for command, flags in (("search", ("--steps", "--batch", "--lr", "--warmup")),
                           ("train", ("--steps", "--batch", "--lr", "--lr-halve-every"))):
        text = _help(command)
        for flag in flags:
            described = re.search(rf"{flag} <\S+> (.*?)(?= --|$)", text)
            assert described and "Default: the preset's (--preset)" in described.group(1), (command, flag)
        assert "(default 200000)" not in text and "(default 64)" not in text


def test_search_and_train_take_the_same_data_flag(tmp_path) -> None:
    assert "--data <path> Folder of training images" in _help("search")
    assert "--data <path> Folder of training images" in _help("train")
    missing = tmp_path / "no-such-images"
    result = runner.invoke(app, ["search", str(ROOT / "spaces" / "dlsr" / "space.yaml"), "--data", str(missing),
                                 "--steps", "2", "--warmup", "1", "-o", str(tmp_path / "run")])
    assert result.exit_code != 0 and str(missing) in str(result.exception)


def test_errors_name_the_flag_typed(tmp_path) -> None:
    space = str(ROOT / "spaces" / "dlsr" / "space.yaml")
    for args, start in ((["--steps", "0"], "--steps 0:"), (["--batch", "0"], "--batch 0:"),
                        (["--lr", "-1"], "--lr -1.0:")):
        result = runner.invoke(app, ["search", space, *args, "-o", str(tmp_path / "s")])
        assert str(result.exception).startswith(start), result.exception
        assert "search config" not in str(result.exception)
    result = runner.invoke(app, ["train", str(ROOT / "spaces" / "dlsr" / "dlsr.yaml"), "--lr-halve-every", "0",
                                 "-o", str(tmp_path / "t")])
    assert str(result.exception).startswith("--lr-halve-every 0:"), result.exception


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"nasflow {version('nasflow')}"


def test_the_command_list_shows_each_first_paragraph_as_running_text() -> None:
    """typer's rich mode keeps a docstring's line breaks in the command list, which then wraps
    raggedly ("periodic validation;" alone on a line); the list shows the paragraph joined."""
    import subprocess
    import sys

    import typer

    from nasflow.cli.app import add_short_help

    add_short_help(app)
    infos = {typer.main.get_command_name(i.callback.__name__) if i.name is None else i.name: i
             for i in app.registered_commands}
    assert all(i.short_help is None or "\n" not in i.short_help for i in infos.values())
    joined = infos["train"].short_help
    assert joined and joined.startswith("Retrain a derived architecture") and "RUN/model" in joined
    fast = subprocess.run([sys.executable, "-m", "nasflow.cli.main", "--help"], capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "COLUMNS": "250"})
    full = runner.invoke(app, ["--help"], env={"COLUMNS": "250"}).output
    for text in (fast.stdout, full):  # the fast path (no torch) and the full app print the same
        assert any(joined in line for line in text.splitlines()), text


SPACE_COMMANDS = ("validate", "cost", "search", "sweep", "profile", "draw")  # their first argument is a space


def test_examples_show_spaces_by_their_built_in_names() -> None:
    """A user types `nasflow profile dlsr ...` from any folder (an installed wheel has no
    spaces/ folder): the examples show the built-in names, each one nasflow resolves, and the
    help of every command taking a space says it takes a name."""
    from nasflow.cli.examples import EXAMPLES
    from nasflow.space.builtin import builtin_spaces

    from test_readme import nasflow_calls

    for command in SPACE_COMMANDS:
        (args,) = nasflow_calls(EXAMPLES[command])
        assert args[0] == command and args[1] in builtin_spaces(), (command, EXAMPLES[command])
        assert "built-in" in _help(command), command
    shown = [e for e in EXAMPLES.values() if re.search(r"\S+\.ya?ml\b", e)]
    assert not shown, f"examples naming a space file where a built-in name would do: {shown}"


def test_the_space_examples_run_as_shown(tmp_path, monkeypatch) -> None:
    """The quick ones, run from an empty folder (search, sweep and profile take minutes; their
    names resolve as validate's do: the test above)."""
    import pytest

    from nasflow.cli.examples import EXAMPLES

    from test_readme import nasflow_calls

    monkeypatch.chdir(tmp_path)
    runs = ["validate", "cost"] + (["draw"] if _has_matplotlib() else [])
    for command in runs:
        (args,) = nasflow_calls(EXAMPLES[command])
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, (command, result.output, result.exception)
    if "draw" in runs:
        assert (tmp_path / "dlsr.png").stat().st_size > 0
    else:
        pytest.skip("matplotlib absent: draw's example not run")


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _listed(text: str) -> list[str]:
    """The command names of a --help's panels, in order, with the tools panel's title where it
    starts (continuation lines begin with spaces, options with --)."""
    names = []
    for line in text.splitlines():
        if "Spaces, costs and tools" in line:
            names.append("<tools>")
        found = re.match(r"^[|│] ([a-z][\w-]*)\s{2,}\S", line)
        if found:
            names.append(found.group(1))
    return names


def test_help_lists_commands_in_the_users_order() -> None:
    """The main job first (search, derive, train, eval), then what a user does with its model,
    the tools in a panel of their own: the same in the fast help (no torch) and the full app."""
    import os
    import subprocess
    import sys

    fast = subprocess.run([sys.executable, "-m", "nasflow.cli.main", "--help"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"}).stdout
    full = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for text in (fast, full):
        names = _listed(text)
        assert names[:5] == ["search", "derive", "train", "eval", "upscale"], names
        tools = names.index("<tools>")
        assert {"export", "report", "sweep"} <= set(names[:tools]), names
        assert {"spaces", "validate", "cost", "ops", "strategies", "bench", "check"} <= set(names[tools:]), names
    assert _listed(fast) == _listed(full)
