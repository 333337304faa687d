"""Small model directories the tests share."""
from __future__ import annotations

from pathlib import Path

import torch

from nasflow.compile.supernet import compile_graph
from nasflow.runs.modeldir import save_model
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space

DLSR = Path(__file__).resolve().parents[1] / "spaces" / "dlsr"


def tiny_dlsr_s(folder: Path) -> Path:
    """DLSR-S's architecture at 4 channels, randomly initialised (seed 0): small and fast."""
    space = load_space(DLSR / "dlsr-s.yaml", {"channels": 4})
    torch.manual_seed(0)
    model = compile_graph(build_graph(space))
    return save_model(folder / "tiny", space, model.state_dict(), {"scale": 2})
