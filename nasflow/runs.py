"""Run directories: everything a search leaves behind, and what resuming and deriving read.

    RUN_DIR/
      config.json                  the resolved SearchConfig
      space.yaml                   the space searched, --set overrides applied
      metrics.jsonl                one JSON record per logged step
      checkpoint.safetensors       latest: weights, arch, both optimizers, step, RNG, data
      snapshots/step_000050.safetensors + step_000050.genotype.json   arch at snapshot steps
      derived/arch.yaml, genotype.json                                written by `derive`

Every file is written whole to a temporary name and moved into place (os.replace), so an
interrupted write leaves the previous version, never a partial file. Writing goes through
this class only, so a distributed run can later let rank 0 alone write with one check.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

from torch import Tensor
from typing_extensions import Self  # typing.Self is 3.11+

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig, SearchConfig
from .derive import Genotype
from .errors import CheckpointError, RunError
from .graph import Graph
from .space import Space
from .supernet import arch_key

CONFIG = "config.json"
SPACE = "space.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.safetensors"
SNAPSHOTS = "snapshots"
_SNAPSHOT = re.compile(r"^step_(\d+)\.safetensors$")


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
        """Refuse to start a run where one already is."""
        if (Path(path) / CONFIG).exists():
            raise RunError(f"'{path}' already holds a run; pass --resume to continue it, "
                           "or choose another --out")

    @classmethod
    def create(cls, path: str | Path, config: C, space: Space) -> Self:
        cls.check_free(path)
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.space_path, space.to_yaml())
        run.write_config(config)
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
        try:
            return cast(C, self.CONFIG.model_validate_json(self.config_path.read_text()))
        except ValueError as exc:
            raise RunError(f"'{self.config_path}' is not a valid {self.CONFIG.KIND} config ({exc})"
                           f"{self.WRONG_KIND_HINT.format(path=self.path)}") from None

    def space(self) -> Space:
        return Space.from_yaml(self.space_path)

    def write_config(self, config: C) -> None:
        write_text_atomic(self.config_path, json.dumps(config.to_json(), indent=2) + "\n")

    # --- metrics -----------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        lines = self.metrics_path.read_text().splitlines()
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


class RunDir(RunFiles[SearchConfig]):
    """A search run: the shared files, and arch snapshots to derive from."""

    CONFIG = SearchConfig
    KIND = "search"

    def snapshot_path(self, step: int) -> Path:
        return self.path / SNAPSHOTS / f"step_{step:06d}.safetensors"

    def save_snapshot(self, step: int, arch: dict[str, Tensor], genotype: Genotype) -> None:
        path = self.snapshot_path(step)
        path.parent.mkdir(exist_ok=True)
        save_checkpoint(path, arch, {"step": step, "genotype": genotype.to_json()})
        write_text_atomic(path.with_name(f"step_{step:06d}.genotype.json"),
                          json.dumps(genotype.to_json(), indent=2) + "\n")

    def snapshot_steps(self) -> list[int]:
        folder = self.path / SNAPSHOTS
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _SNAPSHOT.match(p.name)))

    def load_arch(self, step: int | None = None) -> tuple[dict[str, Tensor], int]:
        """Arch tensors ('arch.alpha.<label>', ...) and their step: the latest checkpoint's,
        or the snapshot at `step`."""
        if step is None:
            if not self.has_checkpoint():
                raise RunError(f"run '{self.path}' has no checkpoint yet; nothing to derive")
            tensors, state = self.load_checkpoint()
        else:
            path = self.snapshot_path(step)
            if not path.is_file():
                known = ", ".join(map(str, self.snapshot_steps())) or "none"
                raise RunError(f"run '{self.path}' has no snapshot at step {step} (snapshots: {known})")
            tensors, state = load_checkpoint(path)
        arch = {k: v for k, v in tensors.items() if k.startswith("arch.")}
        return arch, int(state.get("step", 0))


def arch_logits(graph: Graph, arch: dict[str, Tensor]) -> dict[str, Tensor]:
    """{decision label: logits} from arch tensors named as the supernet names them."""
    out = {}
    for label, d in graph.decisions.items():
        key = f"arch.{d.kind}.{arch_key(label)}"
        if key not in arch:
            have = ", ".join(sorted(arch)) or "none"
            raise CheckpointError(f"the architecture parameters have no '{key}' for decision "
                                  f"'{label}' (they have: {have}); they are from another space")
        out[label] = arch[key]
    return out
