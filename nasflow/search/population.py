"""One run of a population (OUT/seed-N, OUT/gamma-G, OUT/budget-...) and what the population
records about itself.

A run is `_search_one`: a search into its own run directory, its outcome a SeedOutcome, the
same whichever executor runs it (multiseed.py's processes here, ray_executor.py's tasks).

    OUT/population.json   {"format": 1, "executor": "ray",
                           "runs": {"seed-1": {"finished": true, "restarts": [{"step": 4, "reason": "..."}]}}}

Written by the driver of a population run on an executor that can lose workers (Ray,
search/ray_executor.py), never by the runs themselves: which runs finished (so the same
command run again skips them and writes nothing into them) and, per run, each restart (a
lost worker, or the whole population stopped and started again) with the checkpoint step it
continued from. `nasflow report` shows the restarts beside each run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasflow.errors import RunError
from nasflow.runs.durable import write_atomic
from nasflow.search.config import SearchConfig
from nasflow.space.schema import Space

POPULATION_FILE = "population.json"
FORMAT = 1
CPU_CORES_PER_SEARCH = 8  # a search's convolutions use this many threads well; fewer is slow


@dataclass
class SeedOutcome:
    seed: int
    run_dir: Path
    step: int = 0
    finished: bool = False
    error: str | None = None  # the error that stopped this seed's search
    index: int = 0  # its place in the searches run together
    restarts: list[int] = field(default_factory=list)  # steps it continued from after a lost worker (Ray)


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
        return SeedOutcome(config.seed, path, error=f"{type(exc).__name__}: {exc}")


@dataclass
class PopulationRecord:
    out: Path
    executor: str = "ray"
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.out / POPULATION_FILE

    @classmethod
    def load(cls, out: str | Path, executor: str = "ray") -> PopulationRecord:
        """OUT's record, or an empty one when it has none."""
        path = Path(out) / POPULATION_FILE
        if not path.is_file():
            return cls(Path(out), executor)
        try:
            data = json.loads(path.read_text())
            runs = data["runs"]
            if not isinstance(runs, dict):
                raise TypeError("runs is not a mapping")
        except (ValueError, KeyError, TypeError) as exc:
            raise RunError(f"'{path}' is not a population record ({exc}); delete it and run the same "
                           "command again (finished runs are then continued, not redone)") from None
        return cls(Path(out), str(data.get("executor", executor)), runs)

    def save(self) -> None:
        data = {"format": FORMAT, "executor": self.executor, "runs": self.runs}
        self.out.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))

    def _run(self, name: str) -> dict[str, Any]:
        return self.runs.setdefault(name, {"finished": False, "restarts": []})

    def finished(self, name: str) -> bool:
        return bool(self.runs.get(name, {}).get("finished"))

    def mark(self, name: str, finished: bool) -> None:
        self._run(name)["finished"] = finished

    def restart(self, name: str, step: int, reason: str) -> None:
        self._run(name)["restarts"].append({"step": step, "reason": reason})

    def restarts(self, name: str) -> list[int]:
        """The checkpoint steps run `name` was restarted from, in order."""
        return [int(r["step"]) for r in self.runs.get(name, {}).get("restarts", [])]


def restarts_of(run_dir: str | Path) -> list[int]:
    """The steps the run at `run_dir` restarted from, from its population's record (none: [])."""
    run_dir = Path(run_dir)
    if not (run_dir.parent / POPULATION_FILE).is_file():
        return []
    return PopulationRecord.load(run_dir.parent).restarts(run_dir.name)
