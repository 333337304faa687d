"""A run's records as plottable series: what `nasflow plot` draws, and what its tests check.

    history = run_history("runs/a")        # a search or training run, finished or not
    history.decisions["mrb1"].weights[-1]  # the decision weights at the last logged step

Read from metrics.jsonl as the loop wrote it, nothing recomputed; the decision kinds and
candidate names come from the run's own space.yaml (a decision's columns are its own
candidate list). A run still being written may end in a half-written line: it is skipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasflow.errors import RunError
from nasflow.runs.files import CONFIG, METRICS, RunFiles
from nasflow.runs.records import decision_weights
from nasflow.search.config import SearchConfig
from nasflow.search.run_dir import RunDir
from nasflow.space.graph import build_graph
from nasflow.train.run_dir import TrainRunDir



@dataclass
class Series:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)


@dataclass
class DecisionHistory:
    """One decision's weights over the logged steps: weights[i][j] is option j at steps[i]."""

    label: str
    kind: str  # "alpha": ops of a choice; "beta": inputs of a dense node; "value": a value decision's numbers
    options: tuple[str, ...]
    nodes: tuple[str, ...]  # the nodes this label decides (several when shared)
    steps: list[int] = field(default_factory=list)
    weights: list[list[float]] = field(default_factory=list)
    picks: list[tuple[str, ...]] = field(default_factory=list)  # the genotype's pick at each step

    def option_series(self, j: int) -> Series:
        return Series(list(self.steps), [w[j] for w in self.weights])


@dataclass
class Change:
    """The genotype's pick for `label` changed between two logged steps."""

    step: int
    label: str
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass
class RunHistory:
    path: Path
    kind: str  # "search" | "train"
    total_steps: int
    warmup: int
    gamma: float | None  # the regularizer's weight (search runs with a regularizer)
    regularizer: str | None
    strategy: str | None
    # the function of the arch parameters the weights are (the relaxation's weights_name:
    # "sigmoid" for a sigmoid relaxation), as the search's records say; softmax by default
    weights_name: str = "softmax"
    decisions: dict[str, DecisionHistory] = field(default_factory=dict)
    losses: dict[str, Series] = field(default_factory=dict)  # "train/loss", "valid/loss", ...
    terms: dict[str, Series] = field(default_factory=dict)  # the task's loss terms ("train/l1", ...)
    reg: dict[str, Series] = field(default_factory=dict)  # "reg/penalty", "reg/params/m", ...
    valid: dict[str, Series] = field(default_factory=dict)  # training runs' validation metrics
    lr: Series = field(default_factory=Series)
    changes: list[Change] = field(default_factory=list)
    last_step: int = 0
    skipped: int = 0  # unreadable lines (a half-written last line of a running search)

    @property
    def finished(self) -> bool:
        return self.last_step >= self.total_steps


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """metrics.jsonl's records, and how many lines could not be read."""
    if not path.is_file():
        return [], 0
    records, bad = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        else:
            bad += 1
    return records, bad


def run_kind(path: str | Path) -> str:
    """'search' or 'train', from the run's config.json."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise RunError(f"'{path}' is not a run directory: it has no {CONFIG} "
                       "(give a directory `nasflow search` or `nasflow train` wrote)")
    data = json.loads((path / CONFIG).read_text())
    return "search" if "strategy" in data else "train"


def _picks(genotype: dict[str, Any], label: str, kind: str) -> tuple[str, ...]:
    if kind == "alpha":
        pick = (genotype.get("choices") or {}).get(label)
        return () if pick is None else (pick,) if isinstance(pick, str) else tuple(pick)  # a list: ops kept together
    if kind == "value":
        number = (genotype.get("values") or {}).get(label)
        return (str(number),) if number is not None else ()
    return tuple((genotype.get("edges") or {}).get(label, ()))


def run_history(path: str | Path) -> RunHistory:
    """The series of a search or training run directory."""
    path = Path(path)
    kind = run_kind(path)
    run: RunFiles[Any] = RunDir.open(path) if kind == "search" else TrainRunDir.open(path)
    config = run.config()
    records, bad = read_records(path / METRICS)
    if isinstance(config, SearchConfig):
        history = RunHistory(path, kind, config.steps, config.warmup,
                             config.gamma if config.regularizer else None, config.regularizer, config.strategy)
        graph = build_graph(run.space())
        for label, d in graph.decisions.items():
            history.decisions[label] = DecisionHistory(label, d.kind, d.options, d.nodes)
    else:
        history = RunHistory(path, kind, config.steps, 0, None, None, None)
    history.skipped = bad
    previous: dict[str, tuple[str, ...]] = {}
    for record in records:
        step = record["step"]
        history.last_step = max(history.last_step, step)
        for name, value in (record.get("losses") or {}).items():
            group = history.reg if name.startswith("reg/") else (
                history.losses if name.endswith("/loss") else history.terms)
            group.setdefault(name, Series()).add(step, float(value))
        for name, value in (record.get("valid") or {}).items():
            history.valid.setdefault(name, Series()).add(step, float(value))
        if "lr" in record:
            history.lr.add(step, float(record["lr"]))
        weights = decision_weights(record)  # `weights`, or an older run's `softmax`
        if weights is None:
            continue
        if isinstance(record.get("weights_name"), str):
            history.weights_name = record["weights_name"]
        genotype = record.get("genotype") or {}
        for label, d in history.decisions.items():
            if label not in weights:
                continue
            d.steps.append(step)
            d.weights.append([float(x) for x in weights[label]])
            pick = _picks(genotype, label, d.kind)
            d.picks.append(pick)
            if label in previous and previous[label] != pick:
                history.changes.append(Change(step, label, previous[label], pick))
            previous[label] = pick
    return history
