"""Search run directories: a run's shared files (nasflow.runs.files) plus arch snapshots.

    RUN_DIR/snapshots/step_000050.safetensors + step_000050.genotype.json   arch at snapshot steps
    RUN_DIR/chosen.json        the genotype the strategy chose at the end (SPOS's evolution), if any
    RUN_DIR/derived/arch.yaml, genotype.json                                written by `derive`
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from torch import Tensor

from nasflow.compile.state import arch_param_name, from_checkpoint
from nasflow.derive.genotype import Genotype
from nasflow.errors import CheckpointError, RunError
from nasflow.runs.checkpoint import load_checkpoint, save_checkpoint
from nasflow.runs.files import RunFiles, write_text_atomic
from nasflow.runs.formats import migration
from nasflow.search.config import SearchConfig, migrate_legacy_options
from nasflow.space.graph import Graph

SNAPSHOTS = "snapshots"
CHOSEN = "chosen.json"

# Format 0 (config.json before format versions) held MiLeNAS's `lambda` and `reuse_forward`
# at its top level; they are strategy options since format 1.
migration("search config", 0)(migrate_legacy_options)
_SNAPSHOT = re.compile(r"^step_(\d+)\.safetensors$")


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

    def save_chosen(self, genotype: Genotype, strategy: str, step: int) -> None:
        """The genotype the strategy's finish hook chose after `step` supernet steps."""
        write_text_atomic(self.path / CHOSEN, json.dumps(
            {"strategy": strategy, "step": step, "genotype": genotype.to_json()}, indent=2) + "\n")

    def chosen(self) -> tuple[Genotype, int] | None:
        """(genotype, step) the strategy chose, or None when it left it to the arch params."""
        path = self.path / CHOSEN
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return Genotype.from_json(data["genotype"]), int(data["step"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RunError(f"'{path}' is not a chosen genotype ({exc}); delete it to derive from "
                           "the arch params, or resume the run to choose again") from None

    def clear_chosen(self) -> None:
        (self.path / CHOSEN).unlink(missing_ok=True)

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
        arch = from_checkpoint(tensors)[1]
        return arch, int(state.get("step", 0))


def arch_logits(graph: Graph, arch: dict[str, Tensor]) -> dict[str, Tensor]:
    """{decision label: logits} from arch tensors named as the supernet names them."""
    out = {}
    for label, d in graph.decisions.items():
        key = arch_param_name(d.kind, label)
        if key not in arch:
            have = ", ".join(sorted(arch)) or "none"
            raise CheckpointError(f"the architecture parameters have no '{key}' for decision "
                                  f"'{label}' (they have: {have}); they are from another space")
        out[label] = arch[key]
    return out
