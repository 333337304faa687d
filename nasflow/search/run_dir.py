"""Search run directories: a run's shared files (nasflow.runs.files) plus arch snapshots.

    RUN_DIR/snapshots/step_000050.safetensors + step_000050.genotype.json   arch at snapshot steps
    RUN_DIR/chosen.json        the genotype the strategy chose at the end (SPOS's evolution), if any
    RUN_DIR/latency_table.json + latency_table.source.json    the run's copy of --latency-table,
                               with where it came from and its sha256 (a resume reads the copy)
    RUN_DIR/derived/arch.yaml, genotype.json                                written by `derive`
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from nasflow.compile.state import ARCH, arch_param_name, from_checkpoint
from nasflow.derive.genotype import Genotype
from nasflow.errors import CheckpointError, NasflowWarning, RunError
from nasflow.runs.checkpoint import load_checkpoint, save_checkpoint
from nasflow.runs.durable import write_atomic
from nasflow.runs.files import RunFiles, write_text_atomic
from nasflow.runs.formats import migration
from nasflow.search.config import SearchConfig, migrate_legacy_options
from nasflow._plugins import local_plugin
from nasflow.space.graph import Graph
from nasflow.space.imports import copy_into
from nasflow.space.schema import Space

if TYPE_CHECKING:  # the strategies package builds on nasflow.search
    from nasflow.strategies import Strategy

SNAPSHOTS = "snapshots"
CHOSEN = "chosen.json"
LATENCY_TABLE = "latency_table.json"
LATENCY_SOURCE = "latency_table.source.json"

# Format 0 (config.json before format versions) held MiLeNAS's `lambda` and `reuse_forward`
# at its top level; they are strategy options since format 1.
migration("search config", 0)(migrate_legacy_options)
_SNAPSHOT = re.compile(r"^step_(\d+)\.safetensors$")


class RunDir(RunFiles[SearchConfig]):
    """A search run: the shared files, and arch snapshots to derive from."""

    CONFIG = SearchConfig
    KIND = "search"

    @classmethod
    def create(cls, path: str | Path, config: SearchConfig, space: Space) -> RunDir:
        run = super().create(path, config, space)
        # A strategy named 'module:Class' from a folder (not installed) travels with the run too.
        local = local_plugin(config.strategy)
        if local is not None:
            copy_into(local, run.path)
        if config.latency_table is not None:
            run._copy_latency_table(Path(config.latency_table))
        return run

    # --- the latency table -----------------------------------------------------------------
    def _copy_latency_table(self, source: Path) -> None:
        """The table travels with the run (a resume from another folder finds it; an edit of
        the original after the start does not change the costs mid-run)."""
        data = source.read_bytes()
        write_atomic(self.path / LATENCY_TABLE, lambda tmp: tmp.write_bytes(data))
        write_text_atomic(self.path / LATENCY_SOURCE, json.dumps(
            {"path": str(source.resolve()), "sha256": _sha256(data)}, indent=2) + "\n")

    def latency_table(self, given: str | None, say: bool = True) -> str | None:
        """The table to read for this run (a resume, derive --budget, a report): its own copy,
        checked against the hash recorded when it was made; a warning (`say`) when the table it
        came from has changed since (the copy is used). `given`: the config's table, read as
        before by a run that has no copy (an older nasflow's)."""
        copy, source = self.path / LATENCY_TABLE, self.path / LATENCY_SOURCE
        if given is None or not copy.is_file() or not source.is_file():
            return given
        try:
            record = json.loads(source.read_text())
            origin, recorded = Path(record["path"]), str(record["sha256"])
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise RunError(f"'{source}' is not a latency table record ({exc}); start a new run") from None
        if _sha256(copy.read_bytes()) != recorded:
            raise RunError(f"'{copy}', the run's latency table, was changed after the run started (its sha256 "
                           f"is no longer {recorded[:12]}...): put the original back (from '{origin}'), or start a "
                           "new run to search with another table")
        try:
            now = _sha256(origin.read_bytes())
        except OSError:  # moved or gone: the copy is what the run searches with anyway
            now = recorded
        if now != recorded and say:
            warnings.warn(NasflowWarning(
                f"latency table '{origin}' changed since run '{self.path}' started; the run's costs stay those "
                f"of the table it started with ({copy}): start a new run to search with the new one"), stacklevel=2)
        return str(copy)

    def strategy_class(self, config: SearchConfig | None = None) -> type[Strategy]:
        """The strategy the run searched with (`config`: the run's own by default), found from
        the run directory alone: a name registered by a module the run's space imports (the
        space is read, which imports them), or 'module:Class' whose module the run carries."""
        # Imported here: the strategies package builds on nasflow.search itself.
        from nasflow.strategies import get_strategy

        config = config if config is not None else self.config()
        if not _known_strategy(config.strategy):
            self.space()  # imports the modules the space names, which may register it
        return get_strategy(config.strategy, [self.path])

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



def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _known_strategy(name: str) -> bool:
    from nasflow.strategies import STRATEGIES

    return name in STRATEGIES or ":" in name


def arch_logits(graph: Graph, arch: dict[str, Tensor]) -> dict[str, Tensor]:
    """{decision label: logits} from arch tensors named as the supernet names them."""
    expected = {arch_param_name(d.kind, label): label for label, d in graph.decisions.items()}
    missing = [k for k in expected if k not in arch]
    if missing:
        unexpected = sorted(k for k in arch if k not in expected)
        raise CheckpointError(f"the architecture parameters do not fit space '{graph.space.name}': missing "
                              f"{_few(missing)}; unexpected {_few(unexpected)} (keys are "
                              "'arch.<alpha|beta|value>.<label>', a label's dots written '/': "
                              "docs/reference/file-formats.md#arch-tensors)")
    return {label: arch[key] for key, label in expected.items()}


def _few(keys: list[str], n: int = 6) -> str:
    if not keys:
        return "none"
    shown = ", ".join(f"'{k}'" for k in keys[:n])
    return f"{shown} and {len(keys) - n} more" if len(keys) > n else shown


def arch_tensors(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The arch tensors of a file named as the supernet names them ('arch.alpha.<label>'),
    from a checkpoint or snapshot (arch.* beside weights.*), or a file of `supernet.arch`'s
    own state dict ('alpha.<label>'); a label's '.' (a block path) may be written '.' or '/'.
    Other entries are left out."""
    out = {}
    for key, value in tensors.items():
        rest = key.removeprefix(ARCH + ".")
        kind, _, label = rest.partition(".")
        if kind in ("alpha", "beta", "value") and label:
            out[arch_param_name(kind, label)] = value
    return out
