"""One short example per command, shown at the end of its --help (and in the docs' command
reference). Kept here, apart from the command modules, so every command (plugins' included)
gets one from a single table; tests/test_cli_conventions.py checks each against the CLI. A
space is shown by its built-in name (`dlsr`, `dlsr/dlsr`: `nasflow spaces`), as a user types
it from any folder; tests/test_cli_help.py checks each name resolves."""
from __future__ import annotations

import typer

EXAMPLES: dict[str, str] = {
    "validate": "nasflow validate dlsr",
    "cost": "nasflow cost dlsr/dlsr --size 1280x720",
    "ops": "nasflow ops",
    "spaces": "nasflow spaces",
    "strategies": "nasflow strategies",
    "check": "nasflow check my_plugins",
    "search": "nasflow search dlsr --strategy milenas --out runs/a",
    "derive": "nasflow derive runs/a --topk-edges 2",
    "train": "nasflow train runs/a/derived --scale 2 --out runs/a-x2",
    "eval": "nasflow eval runs/a-x2/model --json",
    "export": "nasflow export models/dlsr --onnx dlsr.onnx",
    "report": "nasflow report runs/seeds",
    "sweep": "nasflow sweep dlsr --gamma 0,0.1,0.2,0.5 --out runs/sweep",
    "profile": "nasflow profile dlsr --set channels=16 --threads 2 -o dlsr16.json",
    "bench": "nasflow bench --threads 2",
    "draw": "nasflow draw dlsr/dlsr -o dlsr.png",
    "plot": "nasflow plot runs/a",
    "import": "nasflow import ../shared/weights/dlsr/RFDN_beta21_ps128_20210128_1000.pt -o models/dlsr",
    "upscale": "nasflow upscale runs/a-x2/model photo.png -o photo-x2.png",
    "prepare-data": "nasflow prepare-data DF2K --scale 2",
    "compare": "nasflow compare models/dlsr models/dlsr-s --image spaces/dlsr/data/Set5/butterfly.png "
               "--box 100,100,64,64 -o butterfly.png",
}


def command_name(info: typer.models.CommandInfo) -> str:
    return info.name or typer.main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]


def add_examples(app: typer.Typer) -> None:
    """Give every registered command without an epilog its example (idempotent)."""
    for info in app.registered_commands:
        example = EXAMPLES.get(command_name(info))
        if example and not info.epilog:
            info.epilog = f"Example: {example}"
