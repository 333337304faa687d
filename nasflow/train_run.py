"""Training run directories: a search run directory's files, plus the model directories.

    RUN_DIR/
      config.json               the resolved TrainConfig
      space.yaml                the architecture trained, --scale / --set applied
      metrics.jsonl             {"step", "lr", "steps_per_s", "losses"} and {"step", "valid"} records
      checkpoint.safetensors    latest: weights, optimizer, LR schedule, step, RNG, data streams
      best/                     model directory of the best validation so far
      model/                    model directory of the final weights (written when the run ends)

The files, their atomic writes and the metrics log are RunDir's; this class only reads its
config as a TrainConfig and names the two model directories.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import RunError
from .runs import RunDir, write_text_atomic
from .space import Space
from .train_config import TrainConfig

MODEL = "model"
BEST = "best"


class TrainRunDir(RunDir):
    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def best_path(self) -> Path:
        return self.path / BEST

    @classmethod
    def create(cls, path: str | Path, config: TrainConfig, space: Space) -> TrainRunDir:  # type: ignore[override]
        cls.check_free(path)
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.space_path, space.to_yaml())
        run.write_config(config)
        return run

    @classmethod
    def open(cls, path: str | Path) -> TrainRunDir:
        run = cls(path)
        if not run.path.is_dir():
            raise RunError(f"run directory '{run.path}' does not exist")
        for p in (run.config_path, run.space_path):
            if not p.is_file():
                raise RunError(f"'{run.path}' is not a training run: it has no {p.name}")
        return run

    def config(self) -> TrainConfig:  # type: ignore[override]
        try:
            return TrainConfig.model_validate_json(self.config_path.read_text())
        except ValueError as exc:
            raise RunError(f"'{self.config_path}' is not a training config ({exc}); is '{self.path}' "
                           "a search run? Resume it with `nasflow search --resume`") from None

    def write_config(self, config: TrainConfig) -> None:  # type: ignore[override]
        write_text_atomic(self.config_path, json.dumps(config.to_json(), indent=2) + "\n")
