"""The README stays a five-minute read whose commands are the ones the CLI and the docs
define (issue 27): every `nasflow ...` in a bash block of the README or of a docs page names
a command the CLI has, with options that command takes; the README's two commands are the
ones Getting started gives and CI runs; each line of its "What a user does" table is in a
docs page too."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from nasflow.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def bash_blocks(path: Path) -> list[str]:
    return re.findall(r"```(?:bash|sh)\n(.*?)```", path.read_text(), flags=re.S)


def command_lines(block: str) -> list[str]:
    """One entry per shell line: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split(" #")[0].strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def nasflow_calls(line: str) -> list[list[str]]:
    """The argument lists of every nasflow invocation on a shell line (`nasflow ...`, or
    `... -m nasflow.cli.main ...` under torchrun)."""
    calls = []
    for part in re.split(r"&&|;|\|\|?", line):
        words = shlex.split(part.replace("[", " ").replace("]", " "))
        for i, word in enumerate(words):
            if word == "nasflow" or (word == "nasflow.cli.main" and i and words[i - 1] == "-m"):
                calls.append(words[i + 1:])
                break
    return calls


CLI = typer.main.get_command(app)


def _option_names(command) -> set[str]:
    return {name for p in command.params for name in (*p.opts, *getattr(p, "secondary_opts", []))
            if name.startswith("-")}


def check_call(args: list[str], where: str) -> None:
    root_options = _option_names(CLI)
    i = 0
    while i < len(args) and args[i] in root_options:
        i += 1
    assert i < len(args), f"{where}: `nasflow {' '.join(args)}` names no command"
    name = args[i]
    command = CLI.commands.get(name)  # type: ignore[attr-defined]
    assert command is not None, f"{where}: `nasflow {name}` is not a command of the CLI"
    if command.context_settings.get("ignore_unknown_options"):  # e.g. eval: the task's own options
        return
    known = _option_names(command) | {"--help"}
    for word in args[i + 1:]:
        if word.startswith("-") and word not in ("-", "...") and not re.fullmatch(r"-?\d[\d.e-]*", word):
            flag = word.split("=")[0]
            assert flag in known, f"{where}: `nasflow {name}` has no option {flag}"


PAGES = [README, *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_nasflow_command_shown_is_one_the_cli_defines(page: Path) -> None:
    for block in bash_blocks(page):
        for line in command_lines(block):
            for args in nasflow_calls(line):
                check_call(args, f"{page.relative_to(ROOT)}: {line[:80]}")


def test_readme_is_a_five_minute_read() -> None:
    assert len(README.read_text().splitlines()) <= 150


def test_readme_two_commands_are_the_ones_getting_started_and_ci_run() -> None:
    blocks = bash_blocks(README)
    main_job, tests = blocks[0].strip(), blocks[1].strip()
    assert "nasflow search dlsr " in main_job and "nasflow eval" in main_job
    assert main_job in (DOCS / "getting-started.md").read_text()
    assert tests.endswith("python -m pytest") and 'pip install -e ".[test]"' in tests
    assert tests in (DOCS / "getting-started.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q torch==2.13.0" in ci and "python -m pytest" in ci


def test_readme_what_a_user_does_lines_are_in_the_docs() -> None:
    section = README.read_text().split("## What a user does", 1)[1]
    lines = command_lines(re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1))
    docs_text = "\n".join(p.read_text() for p in DOCS.rglob("*.md"))
    docs_lines = {re.sub(r"\s+", " ", line) for block in re.findall(r"```(?:bash|sh)\n(.*?)```", docs_text, flags=re.S)
                  for line in command_lines(block)}
    missing = [line for line in lines if re.sub(r"\s+", " ", line) not in docs_lines]
    assert not missing, f"README commands no docs page shows: {missing}"
