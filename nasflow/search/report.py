"""What a set of searches found, and how their retrained architectures score.

Per search run: its seed, the genotype derived from its latest arch parameters (choices and
dense edges), the derived architecture's parameters and Multi-Adds, and, where the run's
architecture was retrained, that model's value of a validation metric (default: the one
the task picks best models by, e.g. SR's PSNR). Over the runs with a value: the mean with a
95% confidence interval (Student t, as the DLSR paper's Table X).

The retrained model of a run is, in this order:
  1. given: `models[i]` for `runs[i]` (`nasflow report RUN... --models MODEL...`, in order);
  2. found beside it: RUN/retrained, where `nasflow train RUN/derived/arch.yaml --out
     RUN/retrained` puts it.
Either is a model directory (arch.yaml, weights.safetensors, meta.json) or a training run
directory, whose best/ model is used (else its final model/). The value is what `nasflow train`
recorded in that model's meta.json ("valid": {"psnr": ...}); nothing is re-evaluated here.

A run of a population run on Ray that lost its worker and continued from a checkpoint
carries those steps (`restarts`, from OUT/population.json: search/population.py).

Nothing is written: the genotype is derived in memory (`nasflow derive` writes the files).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasflow.derive.genotype import Genotype, genotype_from_arch
from nasflow.search.derive_run import derivation_rule_of, derive_genotype
from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.space.load import ARCH_FILE
from nasflow.runs.modeldir import WEIGHTS_FILE, read_meta
from nasflow.runs.population import restarts_of
from nasflow.search.run_dir import RunDir, arch_logits
from nasflow.space.schema import Space
from nasflow.search.stats import MeanCI, mean_ci
from nasflow.tasks.contract import task_class_for

RETRAINED = "retrained"  # RUN/retrained: where a run's retrained model is looked for
_TRAIN_MODELS = ("best", "model")  # in a training run directory, in order of preference


@dataclass
class RunReport:
    run: Path
    seed: int
    step: int  # the search step the arch parameters are from
    genotype: Genotype
    params: int
    madds: int
    output_size: tuple[int, int]  # (h, w) the Multi-Adds are counted for
    metric: str  # the validation metric `value` is
    model: Path | None = None  # the retrained model directory, if any
    value: float | None = None  # the retrained model's recorded `metric`
    arch_matches: bool | None = None  # the model's architecture is the run's derived one
    note: str = ""  # why there is no value, or a warning about the model
    restarts: list[int] = field(default_factory=list)  # checkpoint steps it continued from (population.json)

    def to_json(self) -> dict[str, Any]:
        return {"run": str(self.run), "seed": self.seed, "step": self.step, "genotype": self.genotype.to_json(),
                "params": self.params, "madds": self.madds, "output_size": list(self.output_size),
                "model": str(self.model) if self.model else None, self.metric: self.value,
                "arch_matches": self.arch_matches, "note": self.note, "restarts": self.restarts}


@dataclass
class Report:
    runs: list[RunReport]
    metric: str
    summary: MeanCI | None  # of the metric; None with fewer than 2 values

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "runs": [r.to_json() for r in self.runs],
                "summary": self.summary.to_json() if self.summary else None}


def model_dir_of(path: str | Path) -> Path:
    """The model directory at `path`: itself, or a training run's best/ (else model/)."""
    path = Path(path)
    if (path / WEIGHTS_FILE).is_file() and (path / ARCH_FILE).is_file():
        return path
    for name in _TRAIN_MODELS:
        if (path / name / WEIGHTS_FILE).is_file():
            return path / name
    raise NasflowError(f"'{path}' is neither a model directory (arch.yaml + weights.safetensors) nor a "
                       f"training run with a {' or '.join(n + '/' for n in _TRAIN_MODELS)} model; give the "
                       "directory `nasflow train --out` wrote")


def recorded_metric(meta: dict[str, Any], metric: str) -> float | None:
    """The validation `metric` `nasflow train` recorded for these weights, if any."""
    for source in (meta.get("valid"), (meta.get("best") or {}).get("valid")):
        if isinstance(source, dict) and isinstance(source.get(metric), (int, float)):
            return float(source[metric])
    return None


def _same_architecture(a: Space, b: Space) -> bool:
    """Same inputs, nodes (ops, wiring) and output; the params may differ (x3 from x2)."""
    parts = ("inputs", "nodes", "output")
    da, db = a.to_data(), b.to_data()
    return all(da.get(k) == db.get(k) for k in parts)


def report_metric(run_dir: str | Path) -> str:
    """The metric a run's task picks best models by (its `best_metric`)."""
    run = RunDir.open(run_dir)
    return task_class_for(run.space(), run.config().task).best().name


def report_run(run_dir: str | Path, model: str | Path | None = None, *, metric: str | None = None,
               size: tuple[int, int] | None = None) -> RunReport:
    """One search run's row; `model` is its retrained model (default: RUN/retrained if present);
    `metric` defaults to the task's best_metric, `size` to its cost_size."""
    run = RunDir.open(run_dir)
    space = run.space()
    metric = metric or report_metric(run_dir)
    graph = build_graph(space)
    chosen = run.chosen()  # the strategy's own pick (SPOS), else the arch params by its rule
    arch, step = run.load_arch() if chosen is None else ({}, chosen[1])
    try:
        rule = derivation_rule_of(run.config(), run)
        genotype = chosen[0] if chosen is not None else genotype_from_arch(graph, arch_logits(graph, arch), rule=rule)
        derived = derive_genotype(space, genotype, size)
    except NasflowError as exc:  # e.g. an output size the run's scale does not divide
        raise NasflowError(f"run '{run.path}': {exc}; pass --size WIDTHxHEIGHT that fits it") from None
    row = RunReport(run.path, run.config().seed, step, derived.genotype, derived.params, derived.madds,
                    derived.output_size, metric, restarts=restarts_of(run.path))
    if model is None and (run.path / RETRAINED).is_dir():
        model = run.path / RETRAINED
    if model is None:
        row.note = f"not retrained (no --models entry, no {RETRAINED}/)"
        return row
    row.model = model_dir_of(model)
    row.arch_matches = _same_architecture(Space.from_yaml(row.model / ARCH_FILE), derived.space)
    row.value = recorded_metric(read_meta(row.model), metric)
    notes = []
    if row.value is None:
        notes.append(f"meta.json records no validation '{metric}'")
    if not row.arch_matches:
        notes.append("its architecture is not this run's derived one")
    row.note = "; ".join(notes)
    return row


def build_report(runs: list[str | Path], models: list[str | Path] | None = None, *, metric: str | None = None,
                 confidence: float = 0.95, size: tuple[int, int] | None = None) -> Report:
    """Rows for `runs` (models[i] is runs[i]'s retrained model) and the metric's mean and CI;
    `metric` defaults to the first run's task's best_metric."""
    if not runs:
        raise NasflowError("give at least one search run directory to report on")
    if models and len(models) != len(runs):
        raise NasflowError(f"{len(models)} model(s) for {len(runs)} run(s): --models pairs with the runs "
                           "in order, one model per run")
    metric = metric or report_metric(runs[0])
    rows = [report_run(r, models[i] if models else None, metric=metric, size=size) for i, r in enumerate(runs)]
    values = [r.value for r in rows if r.value is not None]
    return Report(rows, metric, mean_ci(values, confidence) if len(values) >= 2 else None)


def _sweep_order(d: Path) -> tuple[str, float, str]:
    """seed-N and gamma-G by their number; budget-METRIC-LIMIT by metric, then limit."""
    kind, _, value = d.name.partition("-")
    if kind == "budget":
        from nasflow.search.budget import Budget

        try:
            b = Budget.parse(value.replace("-", "=", 1))
            return f"budget {b.metric}", b.limit, d.name
        except NasflowError:
            return kind, float("inf"), d.name
    try:
        return kind, float(value), d.name
    except ValueError:
        return kind, float("inf"), d.name


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories as given, a multi-seed directory (OUT/seed-*) standing for its seeds
    and a sweep's (OUT/gamma-*, OUT/budget-*: search/sweep.py) for its runs, in the order of
    their values."""
    out: list[Path] = []
    for p in map(Path, paths):
        runs = sorted((d for d in (*p.glob("seed-*"), *p.glob("gamma-*"), *p.glob("budget-*"))
                       if (d / "config.json").is_file()),
                      key=_sweep_order)
        out.extend(runs if runs and not (p / "config.json").is_file() else [p])
    return out
