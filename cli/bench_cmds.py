"""`nasflow bench`: the speed benchmark of bench/speed.py (plain path vs nasflow's, and each row's share
of the machine's measured peak), run by hand."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import typer

from nasflow.errors import NasflowError

from .app import app

# bench/ sits at the repository root beside nasflow/: present in a checkout (pip install -e .).
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "speed.py"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Seconds per search step, per image and per training step, plain vs nasflow's levers, as
    ratios, each row with its achieved GFLOP/s and % of this machine's measured peak
    (bench/peak.py, cached). Takes bench/speed.py's options: --batch 16 --channels 48 --patch 64
    --scale 2 --steps N --rounds N --reps N --threads 2 --malloc kept|default
    --only search|inference|train --profile (where the time goes, op by op: the default DLSR
    and DARTS steps, eager, onnxruntime and OpenVINO inference) --json FILE (see --help there)."""
    if not SCRIPT.is_file():
        raise NasflowError(f"the benchmark script {SCRIPT} is missing: it ships with a checkout of "
                           "the repository (git clone, then pip install -e .)")
    sys.argv = [str(SCRIPT), *ctx.args]
    runpy.run_path(str(SCRIPT), run_name="__main__")
