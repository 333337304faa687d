"""A population of searches (seeds, sweep points) as Ray tasks: `--executor ray`.

Each search is one Job (search/population.py's `_search_one`, always as --resume: a started
run continues, one not started yet starts) handed to the Ray driver every population shares,
nasflow/runs/population_ray.py: resources per run, lost workers resumed from checkpoints,
OUT/population.json.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nasflow.errors import NasflowError
from nasflow.runs.population import Job, PopulationRecord, SeedOutcome
from nasflow.runs.population_ray import RayOptions, run_population_ray
from nasflow.search.config import SearchConfig
from nasflow.search.population import _search_one
from nasflow.space.schema import Space


def run_searches_ray(configs: list[SearchConfig], paths: list[Path], *, space: Space | None = None,
                     parallel: int | None = None, options: RayOptions | None = None,
                     on_done: Callable[[SeedOutcome], None] | None = None) -> list[SeedOutcome]:
    """configs[i] searched into paths[i] (all in one folder, OUT), each as a Ray task; at most
    `parallel` at a time (default: as many as the cluster's resources hold). Outcomes in the
    configs' order, as multiseed.run_searches gives them."""
    outs = {p.parent for p in paths}
    if len(outs) != 1:
        raise NasflowError(f"a population's runs share one folder, got {sorted(map(str, outs))}")
    jobs = [Job(p.name, p, _search_one, (c, str(p), space, True), c.seed, c.device) for c, p in zip(configs, paths)]
    return run_population_ray(jobs, PopulationRecord.load(outs.pop()), parallel=parallel, options=options,
                              on_done=on_done)
