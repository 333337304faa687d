"""What a retraining population trains (`nasflow train P1 P2 ...`): each search run's derived
architecture RUN/derived/arch.yaml, retrained into RUN/retrained, where `nasflow report` looks
for it. Found from derived folders, search runs or population folders; a finished search run
not derived yet is derived first, as `nasflow derive RUN` does. train/population.py trains them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nasflow.errors import NasflowError

RETRAINED = "retrained"  # RUN/retrained, where `nasflow report` finds a run's retrained model
DERIVED = "derived"
ARCH_FILE = "arch.yaml"


@dataclass(frozen=True)
class Target:
    """One retraining: the architecture file and the run directory it is trained into."""

    arch: Path
    out: Path
    derived_now: bool = False  # its search run had no derived/: derived here, as `nasflow derive RUN` does


def _derived_of(run: Path, derive: bool) -> Target:
    """RUN/derived/arch.yaml; with `derive`, a finished search run without one is derived first."""
    from nasflow.search.derive_run import derive_run
    from nasflow.runs.population import checkpoint_step
    from nasflow.search.run_dir import RunDir

    arch = run / DERIVED / ARCH_FILE
    if arch.is_file():
        return Target(arch, run / RETRAINED)
    if "arch" in _config_keys(run):  # a TrainConfig's field, not a search's
        raise NasflowError(f"'{run}' is a training run, not a search run: its model is {run / 'model'}; give the "
                           "search runs (or their population folder) to retrain")
    if not derive:
        raise NasflowError(f"search run '{run}' has no derived architecture ({arch}); derive it first: "
                           f"nasflow derive {run}")
    step, steps = checkpoint_step(run, RunDir), RunDir.open(run).config().steps
    if step is None or step < steps:
        raise NasflowError(f"search run '{run}' stopped at step {step or 0} of {steps} and has no derived "
                           f"architecture: finish the search, or derive it as it is (nasflow derive {run})")
    derive_run(run)
    return Target(arch, run / RETRAINED, derived_now=True)


def _config_keys(run: Path) -> set[str]:
    try:
        data = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def targets(paths: list[Path], derive: bool = False) -> list[Target]:
    """What `nasflow train P1 P2 ...` retrains: each P a derived folder (RUN/derived), its
    arch.yaml, a search run (RUN) or a population folder (OUT/seed-N, OUT/gamma-G, ...); each
    into RUN/retrained. In the order given, populations in their runs' order. `derive`: a
    finished search run not derived yet is derived first (RUN/derived, the run's own rule)."""
    from nasflow.search.report import expand_runs

    found: list[Target] = []
    for p in paths:
        if p.is_file() and p.name == ARCH_FILE and p.parent.name == DERIVED:
            arch = p
        elif p.is_dir() and p.name == DERIVED and (p / ARCH_FILE).is_file():
            arch = p / ARCH_FILE
        elif p.is_dir():
            runs = [r for r in expand_runs([p]) if (r / "config.json").is_file()]
            if not runs:
                raise NasflowError(f"'{p}' is neither a derived folder (RUN/derived with arch.yaml), a search run "
                                   "nor a population folder (seed-N, gamma-G, budget-...); give RUN/derived")
            found += [_derived_of(r, derive) for r in runs]
            continue
        elif not p.exists():
            raise NasflowError(f"'{p}' does not exist: give each run's derived folder (RUN/derived), a search run or "
                               "a population folder")
        else:
            raise NasflowError(f"'{p}': with several architectures each must be a run's derived folder "
                               "(RUN/derived, retrained into RUN/retrained), a search run or a population "
                               "folder; train another architecture on its own with --out")
        found.append(Target(arch, arch.parent.parent / RETRAINED))
    outs = [t.out.resolve() for t in found]
    twice = sorted({str(o) for o in outs if outs.count(o) > 1})
    if twice:
        raise NasflowError(f"each architecture once: {', '.join(twice)} would be trained twice")
    return found
