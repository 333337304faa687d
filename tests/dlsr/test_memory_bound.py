"""`nasflow upscale` and `nasflow eval` stay within --tile-memory plus the fixed base the docs
state (nasflow/deploy/memory.py, docs/howto/limits.md), each measured in a fresh child
process (ru_maxrss from wait4, read by a fresh interpreter). Eval ran the whole image before: this 0.44 MP HR image's LR
took 875 MB of eager activations with DLSR-S, over the bound; now it is tiled within it.
bench/memory.py measures every backend and cache state, up to 12 MP, by hand."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasflow.compile.supernet import compile_graph
from nasflow.deploy.memory import memory_bound
from nasflow.runs.modeldir import save_model
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space

DLSR = Path(__file__).resolve().parents[2] / "spaces" / "dlsr"
TILE_MEMORY = 128  # MiB: small, so the bound is near the base and a whole-image pass breaks it

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB from wait4")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    space = load_space(DLSR / "dlsr-s.yaml")  # DLSR-S as released: 56K params, x2
    torch.manual_seed(0)
    model = compile_graph(build_graph(space)).eval()
    return save_model(tmp_path_factory.mktemp("m") / "dlsr-s", space, model.state_dict(), {"scale": 2})


def _png(path: Path, w: int, h: int) -> Path:
    # Smooth content with some noise: a photo's statistics matter little to memory.
    y, x = np.mgrid[0:h, 0:w]
    base = (np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], axis=-1)).astype(np.int16)
    noise = np.random.default_rng(0).integers(-20, 21, base.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, compress_level=1)
    return path


# A fresh interpreter starts the command and reads its peak: ru_maxrss also counts what a
# child inherited at its fork, and pytest's own resident set (hundreds of MB in a long run)
# would be counted against the command (bench/child.py).
_LAUNCH = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
output = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "peak": usage.ru_maxrss * 1024, "output": output}))
"""


def _peak(args: list[str], tmp_path: Path) -> tuple[int, str]:
    """(peak RSS in bytes, output) of `nasflow ARGS` in a fresh child process (one thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NASFLOW_THREADS": "1", "NASFLOW_CACHE": str(tmp_path / "cache"),
           "TERM": "dumb"}
    done = subprocess.run([sys.executable, "-c", _LAUNCH, sys.executable, "-m", "nasflow.cli.main", *args],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)
    assert got["code"] == 0, got["output"][-3000:]
    return got["peak"], got["output"]

def test_eager_upscale_of_a_megapixel_stays_within_the_bound(model_dir: Path, tmp_path: Path) -> None:
    image = _png(tmp_path / "in.png", 1224, 816)  # 1.0 MP LR -> 2448 x 1632
    peak, _ = _peak(["upscale", str(model_dir), str(image), "-o", str(tmp_path / "out.png"),
                  "--backend", "eager", "--tile-memory", str(TILE_MEMORY), "--overlap", "8"], tmp_path)
    assert peak <= memory_bound(TILE_MEMORY), f"{peak / 2**20:.0f} MiB"
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (2448, 1632)


def test_eager_eval_of_a_megapixel_is_tiled_within_the_bound(model_dir: Path, tmp_path: Path) -> None:
    _png(tmp_path / "bench" / "big.png", 816, 544)  # HR; its LR 408 x 272 whole: 875 MB of eager activations
    peak, output = _peak(["eval", str(model_dir), "--bench", str(tmp_path / "bench"), "--backend", "eager",
                  "--tile-memory", str(TILE_MEMORY), "--json"], tmp_path)
    assert peak <= memory_bound(TILE_MEMORY), f"{peak / 2**20:.0f} MiB"
    score = json.loads(output[output.index("{"):])["sets"][0]["images"][0]
    assert score["name"] == "big" and 64 < score["tile"] < 272  # tiled, and said so
