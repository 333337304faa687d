"""`nasflow upscale --tile N` stays within --tile-memory: a tile given by hand whose estimated
activations exceed the budget is refused with one line naming both flags and the tile that
fits (nasflow/deploy/memory.py check_tile), before any tile runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import tiny_dlsr_s
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.deploy.memory import activation_bytes_per_pixel, check_tile, tile_for_memory
from nasflow.errors import NasflowError
from nasflow.runs.modeldir import load_model

runner = CliRunner()
BUDGET_MIB = 16  # the smallest --tile-memory: the tiny model's eager tile that fits is 95 px


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DLSR-S's architecture at 4 channels, randomly initialised: small and fast."""
    return tiny_dlsr_s(tmp_path_factory.mktemp("m"))


def _png(path: Path, side: int) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_check_tile_refuses_only_what_exceeds_the_budget(model_dir: Path) -> None:
    graph = load_model(model_dir)[0].graph
    budget = BUDGET_MIB << 20
    fits = tile_for_memory(graph, budget, 32)
    assert fits ** 2 * activation_bytes_per_pixel(graph) <= budget
    check_tile(graph, fits, budget, "eager")  # the largest that fits: accepted
    with pytest.raises(NasflowError) as err:
        check_tile(graph, fits + 1, budget, "eager")
    msg = str(err.value)
    assert f"--tile {fits + 1}" in msg and f"--tile-memory {BUDGET_MIB}" in msg and f"use --tile {fits} " in msg
    assert "\n" not in msg
    # The tile covers at most the image: a large tile on a small image is that image.
    check_tile(graph, 4 * fits, budget, "eager", shape=(fits // 2, fits // 2))
    # onnxruntime reuses buffers: its estimate per pixel is smaller, so a larger tile fits.
    onnx_fits = tile_for_memory(graph, budget, 32, backend="onnx")
    assert onnx_fits > fits
    check_tile(graph, onnx_fits, budget, "onnx")
    with pytest.raises(NasflowError, match=f"use --tile {onnx_fits} "):
        check_tile(graph, onnx_fits + 1, budget, "onnx")


def test_upscale_refuses_a_hand_tile_over_tile_memory(model_dir: Path, tmp_path: Path) -> None:
    image = _png(tmp_path / "in.png", 120)
    out = tmp_path / "out.png"
    args = ["upscale", str(model_dir), str(image), "-o", str(out), "--backend", "eager",
            "--tile-memory", str(BUDGET_MIB), "--overlap", "8"]
    refused = runner.invoke(app, [*args, "--tile", "120"])
    assert isinstance(refused.exception, NasflowError), refused.output
    assert "--tile 120 needs" in str(refused.exception) and "--tile-memory 16" in str(refused.exception)
    assert not out.exists()  # refused before any tile ran
    ok = runner.invoke(app, [*args, "--tile", "64"])
    assert ok.exit_code == 0, ok.output
    with Image.open(out) as sr:
        assert sr.size == (240, 240)


def test_upscale_refusal_is_one_line_with_exit_code_2(model_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    image = _png(tmp_path / "in.png", 120)
    done = subprocess.run([sys.executable, "-m", "nasflow.cli.main", "upscale", str(model_dir), str(image),
                           "-o", str(tmp_path / "o.png"), "--backend", "eager", "--tile", "120",
                           "--tile-memory", str(BUDGET_MIB)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0] and "--tile-memory 16" in lines[0], lines


def test_help_states_the_bound_the_code_holds() -> None:
    """Where users look (--help of upscale and eval), the base is the one memory_bound adds."""
    from nasflow.deploy.memory import BASE_MEMORY_MIB

    for command in ("upscale", "eval"):
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
        assert shown.exit_code == 0, shown.output
        text = " ".join(shown.output.replace("|", " ").replace("\u2502", " ").split())  # the options' box
        assert f"plus a {BASE_MEMORY_MIB} MiB base" in text, command
