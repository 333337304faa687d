"""A sweep: one search per value of the cost regularizer's weight gamma, for a Pareto front.

    OUT/gamma-0/   OUT/gamma-0.1/   ...   each a search run directory, its config's gamma set

The searches are independent and run as a --seeds set does (multiseed.run_searches: one
process per GPU, or per CPU_CORES_PER_SEARCH cores). Retrain each derived architecture into
RUN/retrained and `nasflow report OUT --pareto FILE.png` draws quality against cost.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nasflow.errors import NasflowError
from nasflow.search.config import SearchConfig
from nasflow.search.multiseed import SeedOutcome, run_searches
from nasflow.space.schema import Space

GAMMA_DIR = "gamma-{value:g}"


def gamma_dir(out: str | Path, gamma: float) -> Path:
    return Path(out) / GAMMA_DIR.format(value=gamma)


def parse_values(text: str, name: str = "--gamma") -> list[float]:
    """'0,0.1,0.2,0.5' -> [0.0, 0.1, 0.2, 0.5]: numbers >= 0, each once."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise NasflowError(f"{name} '{text}' must be numbers >= 0 separated by commas, e.g. {name} 0,0.1,0.2,0.5")
    if len({GAMMA_DIR.format(value=v) for v in values}) != len(values):
        raise NasflowError(f"{name} '{text}' must name each value once")
    return values


def run_sweep(config: SearchConfig, out: str | Path, gammas: list[float], *, space: Space | None = None,
              resume: bool = False, parallel: int | None = None, reporter: Callable[[int], Any] | None = None,
              on_done: Callable[[SeedOutcome], None] | None = None) -> list[tuple[float, SeedOutcome]]:
    """Search once per gamma (config.gamma replaced) into OUT/gamma-G; (gamma, outcome) in order."""
    if not gammas:
        raise NasflowError("no values to sweep: give --gamma, e.g. --gamma 0,0.1,0.2,0.5")
    if config.regularizer is None:
        raise NasflowError("a gamma sweep needs a cost regularizer (--regularizer params, madds, ...): "
                           "without one gamma changes nothing")
    configs = [config.model_copy(update={"gamma": g}) for g in gammas]
    outcomes = run_searches(configs, [gamma_dir(out, g) for g in gammas], space=space, resume=resume,
                            parallel=parallel, reporter=reporter, on_done=on_done)
    return [(gammas[o.index], o) for o in outcomes]
