"""`nasflow --help` and `nasflow --version` without importing the command modules: they
import torch (~1.3 s), which neither answer needs; and which module a core command lives
in, so running one imports that module alone (main.main). The version comes from the package
metadata; the command list from the command modules' source, read with `ast`: each
`@app.command(...)` function's name and docstring, in the order a real import registers
them, as placeholders on the same app, so typer prints the same help (cli/order.py then
puts both in the user's order). Plugin commands (the `nasflow.commands` entry points) are
registered for real: they import nothing heavy.
"""
from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _commands_in(module: str, seen: set[str]) -> list[tuple[str, str, str]]:
    """(command name, docstring, cli/ module) of `module` (a cli/ module name), after those
    of the cli/ modules it imports first, as Python's import order registers them."""
    if module in seen:
        return []
    seen.add(module)
    return _commands_of(ast.parse((HERE / f"{module}.py").read_text()).body, seen, module)


def _commands_of(body: list[ast.stmt], seen: set[str], module: str) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for node in body:  # in order: imports run before the definitions below them
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found += _commands_in(node.module, seen)
            else:  # from . import a, b
                found += [c for alias in node.names if (HERE / f"{alias.name}.py").is_file()
                          for c in _commands_in(alias.name, seen)]
        elif isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) \
                        and deco.func.attr == "command" and isinstance(deco.func.value, ast.Name) \
                        and deco.func.value.id == "app":
                    name = deco.args[0].value if deco.args and isinstance(deco.args[0], ast.Constant) \
                        else node.name.replace("_", "-")
                    found.append((str(name), ast.get_docstring(node) or "", module))
    return found


def core_commands() -> list[tuple[str, str, str]]:
    """(name, docstring, cli/ module) of every command main._load_commands's imports
    register, in order."""
    tree = ast.parse((HERE / "main.py").read_text())
    (load,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_load_commands"]
    return _commands_of(load.body, {"main"}, "main")


def command_module(argv: list[str]) -> str | None:
    """The cli/ module defining the core command `argv` runs (None: a plugin's, or none),
    so `nasflow validate` imports that module alone: `validate` and `cost` need no torch."""
    name = next((a for a in argv if not a.startswith("-")), None)  # the app's options are flags
    return next((m for n, _, m in core_commands() if n == name), None)


COMPLETION_FLAGS = ("--install-completion", "--show-completion")


def completion_args() -> list[str] | None:
    """When the shell asks for completions (typer's `_NASFLOW_COMPLETE` protocol), the words
    typed before the one being completed; None otherwise."""
    if not os.environ.get("_NASFLOW_COMPLETE"):  # typer's variable for the program `nasflow`
        return None
    from click.shell_completion import split_arg_string

    if "COMP_WORDS" in os.environ:  # bash: the words and the cursor's word
        words = split_arg_string(os.environ["COMP_WORDS"])
        return words[1:int(os.environ.get("COMP_CWORD", len(words)))]
    line = os.environ.get("_TYPER_COMPLETE_ARGS", "")  # zsh, fish, powershell: the line so far
    words = split_arg_string(line)[1:]
    return words if line.endswith(" ") or not words else words[:-1]


def answer(argv: list[str]) -> bool:
    """Answer `--version`, the top-level `--help` (also: no arguments), `--show-completion`
    / `--install-completion`, and the shell's completion of a command's name here; False when
    a command's module is needed (main imports that one alone)."""
    if argv == ["--version"]:
        from importlib.metadata import version

        print(f"nasflow {version('nasflow')}")
        return True
    completing = completion_args()
    if completing is not None:
        if command_module(completing) is not None:  # a core command's options: its module
            return False
    elif argv not in ([], ["--help"]) and not (argv and argv[0] in COMPLETION_FLAGS):
        return False
    from .app import app, run
    from .plugins import register_plugin_commands

    for name, doc, _ in core_commands():
        app.command(name, help=inspect.cleandoc(doc) or None)(lambda: None)
    register_plugin_commands(app)
    run(argv or ["--help"])
    return True
