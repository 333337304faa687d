"""TensorBoard event files beside metrics.jsonl (`--tensorboard`): RUN/tensorboard/.

Each record the loop appends to metrics.jsonl is written again as TensorBoard sees it:
    losses/<name>            every loss, loss term and regularizer term ("losses/train/loss")
    valid/<metric>, lr, steps_per_s
    weights/<label>/<option> each decision weight (the relaxation's), one curve per candidate op or input
    arch/<label>             a histogram of the decision's weights (the Distributions tab)
Written by rank 0 only, from the same record, so the two logs never disagree. The writer
comes from torch.utils.tensorboard, which needs the tensorboard package: an optional extra
(`pip install 'nasflow[tensorboard]'`), imported only when a run asks for it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasflow.errors import NasflowError
from nasflow.runs.records import decision_weights

FOLDER = "tensorboard"
INSTALL_HINT = "pip install 'nasflow[tensorboard]'"


def open_tensorboard(wanted: bool, run_dir: str | Path, graph: Any = None) -> TensorBoardLog | None:
    """The writer for a run that asked for one (on rank 0), else None; `graph` (a space Graph)
    names each decision's candidates."""
    if not wanted:
        return None
    options = {label: d.options for label, d in graph.decisions.items()} if graph is not None else None
    return TensorBoardLog(run_dir, options)


class TensorBoardLog:
    """Writes metrics records as TensorBoard scalars and histograms into RUN/tensorboard/."""

    def __init__(self, run_dir: str | Path, options: Mapping[str, Sequence[str]] | None = None) -> None:
        """`options`: each decision's candidate names, so curves are labelled by op or input."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise NasflowError(f"--tensorboard needs the tensorboard package, which is not installed: "
                               f"{INSTALL_HINT}") from None
        self.path = Path(run_dir) / FOLDER
        self.options = {k: list(v) for k, v in (options or {}).items()}
        self.writer = SummaryWriter(str(self.path))

    def write(self, record: Mapping[str, Any]) -> None:
        step = int(record["step"])
        for name, value in (record.get("losses") or {}).items():
            self.writer.add_scalar(f"losses/{name}", float(value), step)
        for name, value in (record.get("valid") or {}).items():
            self.writer.add_scalar(f"valid/{name}", float(value), step)
        for name in ("lr", "steps_per_s"):
            if isinstance(record.get(name), (int, float)):
                self.writer.add_scalar(name, float(record[name]), step)
        for label, weights in (decision_weights(record) or {}).items():
            names = self.options.get(label) or [str(j) for j in range(len(weights))]
            for option, w in zip(names, weights):
                self.writer.add_scalar(f"weights/{label}/{option}", float(w), step)
            import torch

            self.writer.add_histogram(f"arch/{label}", torch.tensor(weights, dtype=torch.float64), step)
        self.writer.flush()  # a running search is watched while it runs

    def close(self) -> None:
        self.writer.close()
