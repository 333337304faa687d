"""A search as one run of a population (OUT/seed-N, OUT/gamma-G, OUT/budget-...): `_search_one`,
the Job function that multiseed.py's processes and ray_executor.py's Ray tasks run.

What every population shares, whatever stage its runs are of (the outcome, the record
OUT/population.json, Job, Plan, BoardReporter), is nasflow/runs/population.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nasflow.runs.population import SeedOutcome, failed_outcome
from nasflow.search.config import SearchConfig
from nasflow.space.schema import Space


def _search_one(config: SearchConfig, out: str, space: Space | None, resume: bool, reporter: Any = None) -> SeedOutcome:
    """Search `config` in `out` (a run directory of its own)."""
    from nasflow.search.loop import run_search  # the search loop is heavy to import; workers need it anyway

    path = Path(out)
    try:
        resume_this = resume and (path / "config.json").is_file()  # a seed not started yet starts
        result = run_search(config, path, space=None if resume_this else space, resume=resume_this,
                            reporter=reporter)
        return SeedOutcome(config.seed, path, result.step, result.finished)
    except Exception as exc:  # noqa: BLE001 - one failed seed must not lose the others
        return failed_outcome(config.seed, path, exc)
