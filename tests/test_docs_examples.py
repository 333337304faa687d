"""The Python examples of docs/architecture.md and docs/space-language.md run as printed.

Each doc's ```python blocks run in order in one fresh interpreter inside a temporary folder
(the examples write files and register ops, which must not leak into the other tests).
writing-a-strategy.md and writing-a-task.md have tests of their own."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)


@pytest.mark.parametrize("name", ["architecture.md", "space-language.md"])
def test_doc_examples_run(name: str, tmp_path: Path) -> None:
    blocks = python_blocks(DOCS / name)
    assert blocks, f"{name} has no python example"
    script = tmp_path / "doc_example.py"
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + "\n\n".join(blocks))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{name}'s example failed:\n{done.stderr[-3000:]}"


def test_public_api_resolves_without_importing_torch_first() -> None:
    """`import nasflow` is cheap (the CLI's --help relies on it); every public name resolves."""
    code = ("import sys, nasflow\nassert 'torch' not in sys.modules, 'import nasflow imported torch'\n"
            "missing = [n for n in nasflow.__all__ if getattr(nasflow, n, None) is None]\n"
            "assert not missing, missing\nprint(nasflow.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*\n", done.stdout)
