"""Run directories: the files every run has, search or training, and what resuming reads.

    RUN_DIR/
      config.json                  the resolved run config (SearchConfig, TrainConfig) and the
                                   file format (runs/formats.py: older ones are migrated on load)
      space.yaml                   the space run, --set overrides applied
      metrics.jsonl                one JSON record per logged step
      checkpoint.safetensors       latest: weights, arch, optimizers, step, RNG, data

Every file is written whole to a temporary name, fsynced and moved into place (os.replace,
then the directory fsynced), so an interrupted write or a power loss leaves the previous
version or the new one, never a partial file. Writing goes through
this class only, so a distributed run can later let rank 0 alone write with one check.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

from torch import Tensor
from typing_extensions import Self  # typing.Self is 3.11+

from nasflow.space.imports import copy_local_imports
from nasflow.runs.checkpoint import load_checkpoint, save_checkpoint
from nasflow.runs.config import RunConfig
from nasflow.runs.durable import write_atomic
from nasflow.errors import CheckpointError, RunError
from nasflow.runs.formats import migrate, read_version, stamped
from nasflow.runs.lock import LOCK, taken_over
from nasflow.space.schema import Space

CONFIG = "config.json"
SPACE = "space.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.safetensors"


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically and durably (runs/durable.py)."""
    write_atomic(path, lambda tmp: tmp.write_text(text))


C = TypeVar("C", bound=RunConfig)


class RunFiles(Generic[C]):
    """The files every run has (config, space, metrics, checkpoint), for a config class C.
    RunDir is a search run; TrainRunDir (train_run.py) a training run."""

    CONFIG: ClassVar[type[RunConfig]]  # C itself (a ClassVar cannot name a type variable)
    KIND: ClassVar[str]  # in messages: "'x' is not a search run"
    HOLDS: ClassVar[str] = "space"  # what space.yaml holds, in messages
    WRONG_KIND_HINT: ClassVar[str] = ""  # said when config.json does not parse as CONFIG

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # --- paths -----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def space_path(self) -> Path:
        return self.path / SPACE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    # --- creating and opening ----------------------------------------------------------------
    @staticmethod
    def check_free(path: str | Path) -> None:
        """Refuse to start a run where one already is, or in a folder of other files."""
        p = Path(path)
        if (p / CONFIG).exists():
            raise RunError(f"'{path}' already holds a run; pass --resume to continue it, "
                           "or choose another --out")
        if p.exists() and not p.is_dir():
            raise RunError(f"--out '{path}' is a file; give a directory for the run")
        # The lock of the run being made is there; what a run killed while being made wrote is
        # its own (its lock, left behind, was taken over): made again, as after a clean failure.
        if p.is_dir() and any(c.name != LOCK for c in p.iterdir()) and not taken_over(p):
            raise RunError(f"--out '{path}' is a folder of other files, not a run; choose an empty "
                           "or new --out")

    @classmethod
    def create(cls, path: str | Path, config: C, space: Space) -> Self:
        cls.check_free(path)
        run = cls(path)
        new = not run.path.exists()
        run.path.mkdir(parents=True, exist_ok=True)
        # Listed before they are written: an interrupt between a write and its record would
        # leave a file that makes the same command refuse the folder.
        written: list[Path] = [run.space_path, run.config_path]
        try:
            write_text_atomic(run.space_path, space.to_yaml())
            # The modules the space imports from its folder travel with the run (still untrusted).
            written += copy_local_imports(space, run.path)
            run.write_config(config)
        except BaseException:  # a full disk, an interrupt: no half-made run blocks the same command again
            for p in written:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
            if new:
                shutil.rmtree(run.path, ignore_errors=True)
            raise
        return run

    @classmethod
    def open(cls, path: str | Path) -> Self:
        run = cls(path)
        if not run.path.is_dir():
            raise RunError(f"run directory '{run.path}' does not exist")
        for p in (run.config_path, run.space_path):
            if not p.is_file():
                raise RunError(f"'{run.path}' is not a {cls.KIND} run: it has no {p.name}")
        return run

    def config(self) -> C:
        """The run's config, migrated from the format an older nasflow wrote (runs/formats.py)."""
        try:
            data = json.loads(self.config_path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
            data = migrate(f"{self.CONFIG.KIND} config", read_version(data, str(self.config_path)), data)
            return cast(C, self.CONFIG.model_validate(data))
        except CheckpointError:  # a format this nasflow cannot read: said as it is
            raise
        except ValueError as exc:
            raise RunError(f"'{self.config_path}' is not a valid {self.CONFIG.KIND} config ({exc})"
                           f"{self.WRONG_KIND_HINT.format(path=self.path)}") from None

    def space(self) -> Space:
        return Space.from_yaml(self.space_path)

    def write_config(self, config: C) -> None:
        write_text_atomic(self.config_path, json.dumps(stamped(config.to_json()), indent=2) + "\n")

    # --- metrics -----------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        try:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:  # a full disk names no file: say which (a torn line is dropped on resume)
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror, str(self.metrics_path)) from exc

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records; a last line without its newline is a record a killed process was
        appending (torn: its step is past the last checkpoint, so a resume writes it again)."""
        if not self.metrics_path.exists():
            return []
        text = self.metrics_path.read_text()
        lines = text.split("\n")[:-1]  # the piece after the last newline: empty, or torn
        return [json.loads(line) for line in lines if line.strip()]

    def truncate_metrics(self, step: int) -> None:
        """Drop records past `step`: a run killed after its last checkpoint logged steps that
        the resumed run will log again."""
        kept = [r for r in self.read_metrics() if r["step"] <= step]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    # --- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
        save_checkpoint(self.checkpoint_path, tensors, state)

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def load_checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return load_checkpoint(self.checkpoint_path)
