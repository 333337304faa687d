"""MkDocs hook: the command-line reference (reference/cli.md) generated from the typer app,
so the page lists exactly the commands and options `nasflow --help` shows."""
from __future__ import annotations

import re
from typing import Any

MARKER = "<!-- nasflow-cli-reference -->"


def _cell(text: str) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    return text.replace("|", "\\|")


def _param_row(param: Any, ctx: Any) -> str:
    if param.param_type_name == "argument":
        names = f"`{(param.metavar or param.name).upper()}`"
    else:
        names = ", ".join(f"`{n}`" for n in [*param.opts, *getattr(param, "secondary_opts", [])])
    is_flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
    shown = param.display_type_rich(ctx) if hasattr(param, "display_type_rich") else param.make_metavar(ctx)
    kind = "" if is_flag else _cell(f"`{shown}`" if shown else "")
    help_text = _cell(getattr(param, "help", "") or "")
    if param.required:
        help_text = (help_text + " Required.").strip()
    return f"| {names} | {kind} | {help_text} |"


def cli_reference() -> str:
    """Markdown for every command of `nasflow`: usage, help, arguments and options."""
    import click
    import typer

    from nasflow.cli.main import app

    root = typer.main.get_command(app)
    root_ctx = click.Context(root, info_name="nasflow")
    out: list[str] = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        ctx = click.Context(command, info_name=name, parent=root_ctx)
        usage = " ".join(command.collect_usage_pieces(ctx))
        out += [f"## `nasflow {name}`", "", "```", f"nasflow {name} {usage}", "```", ""]
        paragraphs = [p.strip() for p in (command.help or "").split("\n\n") if p.strip()]
        out += [re.sub(r"\s*\n\s*", " ", p) + "\n" for p in paragraphs]
        if command.epilog:
            out += [f"```bash\n{command.epilog.removeprefix('Example: ').strip()}\n```", ""]
        params = [p for p in command.get_params(ctx) if p.name != "help"]
        if params:
            out += ["| argument / option | value | what |", "|---|---|---|"]
            out += [_param_row(p, ctx) for p in params]
            out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown
