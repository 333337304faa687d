"""Derive the architecture a search found: from a run directory (its latest checkpoint or a
snapshot) or from a space file plus an arch safetensors file.

Writes OUT/arch.yaml (a space with no choices, which the same compiler builds) and
OUT/genotype.json, and reports the architecture's cost.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from nasflow.space.imports import copy_local_imports
from nasflow.runs.checkpoint import load_checkpoint
from nasflow.space.cost import graph_cost, input_size_for_output
from nasflow.derive.genotype import Genotype, derive_space, genotype_from_arch
from nasflow.derive.rule import DerivationRule, checked_rule
from nasflow.errors import NasflowError
from nasflow.space.graph import build_graph
from nasflow.space.load import ARCH_FILE, load_space
from nasflow.search.config import SearchConfig
from nasflow.search.run_dir import RunDir, arch_logits, arch_tensors
from nasflow.runs.files import write_text_atomic
from nasflow.space.schema import Space
from nasflow.tasks.contract import default_cost_size

GENOTYPE_FILE = "genotype.json"


@dataclass
class Derived:
    space: Space  # the derived architecture
    genotype: Genotype
    params: int
    madds: int
    output_size: tuple[int, int]  # (h, w) the Multi-Adds are counted for
    step: int | None = None  # the search step the arch parameters are from, when known
    out_dir: Path | None = None  # where arch.yaml and genotype.json were written


def derivation_rule_of(config: SearchConfig, run: RunDir | None = None) -> DerivationRule:
    """The derivation rule of the strategy a run's config names, with its options; `run`: the
    run directory, where a strategy its space registers or whose module it carries is found."""
    if run is not None:
        cls = run.strategy_class(config)
    else:
        # Imported here: the strategies package builds on nasflow.search itself.
        from nasflow.strategies import get_strategy

        cls = get_strategy(config.strategy)
    return checked_rule(f"strategy '{cls.name}' derivation_rule", cls(config=config).derivation_rule())


def derive_run(run_dir: str | Path, *, step: int | None = None, topk: int | None = None,
               out: str | Path | None = None, size: tuple[int, int] | None = None,
               rule: DerivationRule | None = None, overrides: dict[str, int] | None = None) -> Derived:
    """The genotype the run's strategy chose at the end (RUN/chosen.json, SPOS's evolution)
    when there is one and no `step` is asked for; else from the run's latest checkpoint, or
    its snapshot at `step`, by the rule; `topk` overrides every dense node's k (arch params only); `size` is the output (h, w) Multi-Adds are counted at (default: the
    task's cost_size); `rule` defaults to the derivation rule of the run's strategy;
    `overrides` sets params of the derived architecture (the searched cells rebuilt at
    evaluation width: {"C": 36}), the genotype being read at the search's."""
    run = RunDir.open(run_dir)
    default = run.path / ("derived" if step is None else f"derived_step_{step}")
    chosen = run.chosen() if step is None else None
    if chosen is not None:
        if topk is not None:
            raise NasflowError(f"run '{run.path}': its strategy ({run.config().strategy}) chose the architecture "
                               "itself, so --topk does not apply; drop --topk (or derive a snapshot with --step)")
        return _write(derive_genotype(run.space().with_params(overrides) if overrides else run.space(),
                                      chosen[0], size), chosen[1], Path(out) if out else default)
    arch, found_step = run.load_arch(step)
    _check_finite(arch, f"run '{run.path}' at step {found_step}", lambda: _finite_snapshot_hint(run, found_step))
    rule = rule if rule is not None else derivation_rule_of(run.config(), run)
    return _derive(run.space(), arch, found_step, topk, Path(out) if out else default, size, rule, overrides)


def derive_from_arch(space_path: str | Path, arch_path: str | Path, *, overrides: dict[str, int] | None = None,
                     topk: int | None = None, out: str | Path | None = None,
                     size: tuple[int, int] | None = None, rule: DerivationRule | None = None) -> Derived:
    """From a space file and a safetensors file with its arch tensors: a checkpoint or a
    snapshot of a run, or any file with one tensor per decision named
    'arch.<alpha|beta|value>.<label>' (`supernet.state_dict()`'s names; 'arch.' may be left out,
    as `supernet.arch.state_dict()` writes them; a label's '.' may be written '/');
    `rule`: default argmax alpha / top-k beta. A mismatch names the missing and the
    unexpected keys."""
    tensors, state = load_checkpoint(arch_path)
    arch = arch_tensors(tensors)
    step = state.get("step")
    _check_finite(arch, f"'{arch_path}'", lambda: "give the arch of a step before it diverged")
    default = Path(arch_path).parent / "derived"
    return _derive(load_space(space_path, overrides), arch, step, topk, Path(out) if out else default, size, rule)


def _derive(space: Space, arch: dict[str, Tensor], step: int | None, topk: int | None,
            out: Path, size: tuple[int, int] | None, rule: DerivationRule | None,
            overrides: dict[str, int] | None = None) -> Derived:
    graph = build_graph(space)
    if graph.is_derived:
        raise NasflowError(f"space '{space.name}' has no choices left: it is already an architecture")
    genotype = genotype_from_arch(graph, arch_logits(graph, arch), topk, rule)
    result = derive_genotype(space.with_params(overrides) if overrides else space, genotype, size)
    return _write(result, step, out)


def _check_finite(arch: dict[str, Tensor], where: str, hint: Callable[[], str]) -> None:
    """Refuse arch parameters holding NaN or inf: argmax over NaN picks an op at random, and a
    derivation from a diverged search looked like any other. `hint`: where finite ones are."""
    for name, t in arch.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            what = "NaN" if bool(torch.isnan(t).any()) else "inf"
            bad = int((~torch.isfinite(t)).sum())
            raise NasflowError(f"{where}: arch tensor '{name}' holds {what} ({bad} of {t.numel()} values): the search "
                               f"diverged; {hint()}, or re-run the search with lower learning rates (--arch-lr, --lr)")


def _finite_snapshot_hint(run: RunDir, step: int) -> str:
    """Derive the latest snapshot before `step` whose arch is finite, or resume a copy of the
    run from before it diverged (one checkpoint is kept: it is the diverged one)."""
    for earlier in reversed([s for s in run.snapshot_steps() if s < step]):
        arch, _ = run.load_arch(earlier)
        if all(bool(torch.isfinite(t).all()) for t in arch.values() if t.is_floating_point()):
            return f"derive the snapshot at step {earlier}, the latest finite one (--step {earlier})"
    return "resume from an earlier checkpoint (a copy of the run from before it diverged)"


def _write(result: Derived, step: int | None, out: Path) -> Derived:
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / ARCH_FILE, result.space.to_yaml())
    copy_local_imports(result.space, out)  # so the architecture builds from any folder
    write_text_atomic(out / GENOTYPE_FILE, json.dumps(result.genotype.to_json(), indent=2) + "\n")
    result.step, result.out_dir = step, out
    return result


def derive_genotype(space: Space, genotype: Genotype, size: tuple[int, int] | None = None) -> Derived:
    """The architecture `genotype` picks from `space`, and its cost for an output of `size`
    (default: the cost_size of the space's task)."""
    derived = derive_space(space, genotype)
    graph = build_graph(derived)
    size = size if size is not None else default_cost_size(space)
    try:
        report = graph_cost(graph, input_size_for_output(graph, size))
    except ValueError as exc:
        raise NasflowError(str(exc)) from None
    return Derived(derived, genotype, report.params, report.madds, report.output_size)
