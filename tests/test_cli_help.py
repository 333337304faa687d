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
