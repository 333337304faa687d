"""`nasflow --help` and `--version` answer without importing torch (issue 15), and the
fast help is exactly the help of the app with every command loaded."""
from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

from typer.testing import CliRunner

from nasflow.cli.main import app

_PROBE = ("import sys\n"
          "sys.argv = ['nasflow', *sys.argv[1:]]\n"
          "from nasflow.cli.main import main\n"
          "try:\n    main()\n"
          "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
          "print('TORCH', 'torch' in sys.modules, file=sys.stderr)\n")


def _fast(*args: str) -> tuple[str, str]:
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_version_and_help_do_not_import_torch() -> None:
    out, err = _fast("--version")
    assert out.strip() == f"nasflow {version('nasflow')}" and "TORCH False" in err
    out, err = _fast("--help")
    assert "TORCH False" in err and "search" in out and "upscale" in out


def test_fast_help_is_the_full_apps_help() -> None:
    full = CliRunner().invoke(app, ["--help"], prog_name="nasflow", env={"COLUMNS": "120", "TERM": "dumb"})
    assert full.exit_code == 0
    fast, _ = _fast("--help")
    assert fast == full.output
