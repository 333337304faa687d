"""The one line a population command (sweep, search --seeds, train of several runs) ends with
when some of its runs failed: each failure, and, when they failed on a full disk or a
read-only folder, what was kept and how to continue, said once."""
from __future__ import annotations

from nasflow.runs.population import SeedOutcome


def population_failure(noun: str, total: int, failed: list[tuple[str, SeedOutcome]], finished: list[str],
                       again: str) -> str:
    """`failed`: (name, outcome) of each failed run; `finished`: the names of the runs that
    ended; `again`: how to continue the rest ("continue the rest with: nasflow sweep ...")."""
    head = f"{len(failed)} of {total} {noun} failed: " + "; ".join(f"{name}: {o.error}" for name, o in failed)
    remedies = list(dict.fromkeys(o.remedy for _, o in failed if o.remedy))
    if not remedies:  # not the file system: the errors say what to change
        return head
    kept = f"Finished and kept: {', '.join(finished)}" if finished else "None finished"
    remedy = " and ".join(remedies)
    # Every run file is replaced only once written whole: a stopped run keeps its last checkpoint.
    return f"{head}. {kept}; a started run keeps its last checkpoint. {remedy[:1].upper()}{remedy[1:]}, then {again}"
