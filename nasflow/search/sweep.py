"""A sweep: one search per value of the cost term, for a Pareto front.

    nasflow sweep SPACE --gamma 0,0.1,0.2,0.5     OUT/gamma-0/  OUT/gamma-0.1/ ...  (config.gamma)
    nasflow sweep SPACE --budget params=100k,params=300k
                                                  OUT/budget-params-100k/ ...        (config.budget)

Each folder is a search run directory. The searches are independent and run as a --seeds set
does (multiseed.run_searches: one process per GPU, or per CPU_CORES_PER_SEARCH cores; or
one Ray task each with --executor ray).
Retrain each derived architecture into RUN/retrained and `nasflow report OUT --pareto
FILE.png` draws quality against cost.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasflow.errors import NasflowError
from nasflow.search.budget import Budget
from nasflow.search.config import SearchConfig
from nasflow.search.multiseed import SeedOutcome, run_searches
from nasflow.space.schema import Space

if TYPE_CHECKING:
    from nasflow.runs.population_ray import RayOptions

GAMMA_DIR = "gamma-{value:g}"


@dataclass(frozen=True)
class SweepValue:
    """One search of a sweep: its folder name, how messages call it, the config fields it sets."""

    name: str
    label: str
    update: dict[str, Any] = field(default_factory=dict, hash=False)


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


def gamma_values(gammas: list[float]) -> list[SweepValue]:
    return [SweepValue(GAMMA_DIR.format(value=g), f"gamma {g:g}", {"gamma": g}) for g in gammas]


def budget_values(text: str) -> list[SweepValue]:
    """'params=100k,params=300k' -> one value per budget (search/budget.py's format)."""
    budgets = [Budget.parse(t) for t in text.split(",") if t.strip()]
    if not budgets:
        raise NasflowError(f"--budget '{text}' must be budgets separated by commas, e.g. --budget params=100k,params=300k")
    values = [SweepValue(f"budget-{b.metric}-{b.span()}", f"budget {b}", {"budget": str(b)}) for b in budgets]
    if len({v.name for v in values}) != len(values):
        raise NasflowError(f"--budget '{text}' must name each budget once")
    return values


def run_sweep(config: SearchConfig, out: str | Path, values: list[SweepValue], *, space: Space | None = None,
              resume: bool = False, parallel: int | None = None, reporter: Callable[[int], Any] | None = None,
              on_done: Callable[[SeedOutcome], None] | None = None, executor: str = "local",
              ray: RayOptions | None = None) -> list[tuple[SweepValue, SeedOutcome]]:
    """One search per value (its fields set in `config`) into OUT/<value's name>; in order.
    executor="ray": each search a Ray task (multiseed.run_searches)."""
    if not values:
        raise NasflowError("no values to sweep: give --gamma 0,0.1,0.2,0.5 or --budget params=100k,params=300k")
    if config.regularizer is None and any("gamma" in v.update for v in values):
        raise NasflowError("a gamma sweep needs a cost regularizer (--regularizer params, madds, ...): "
                           "without one gamma changes nothing")
    configs = [SearchConfig.build({**config.to_json(), **v.update}) for v in values]
    outcomes = run_searches(configs, [Path(out) / v.name for v in values], space=space, resume=resume,
                            parallel=parallel, reporter=reporter, on_done=on_done, executor=executor, ray=ray)
    return [(values[o.index], o) for o in outcomes]
