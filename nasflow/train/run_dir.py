"""Training run directories: a search run directory's files, plus the model directories.

    RUN_DIR/
      config.json               the resolved TrainConfig
      space.yaml                the architecture trained, --scale / --set applied
      metrics.jsonl             {"step", "lr", "steps_per_s", "losses"} and {"step", "valid"} records
      checkpoint.safetensors    latest: weights, optimizer, LR schedule, step, RNG, data streams
      best/                     model directory of the best validation so far
      model/                    model directory of the final weights (written when the run ends)

The files, their atomic writes and the metrics log are RunFiles'; this class only reads its
config as a TrainConfig and names the two model directories.
"""
from __future__ import annotations

from pathlib import Path

from nasflow.runs.files import RunFiles
from nasflow.train.config import TrainConfig

MODEL = "model"
BEST = "best"


class TrainRunDir(RunFiles[TrainConfig]):
    CONFIG = TrainConfig
    KIND = "training"
    HOLDS = "architecture"
    WRONG_KIND_HINT = "; is '{path}' a search run? Resume it with `nasflow search --resume`"

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def best_path(self) -> Path:
        return self.path / BEST
