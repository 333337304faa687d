"""The end of a search: what a strategy's `finish` hook gets after the last supernet step.

Most strategies read their architecture off the arch parameters (the derivation rule's
argmax / top-k); a one-shot method (SPOS) instead searches the trained supernet for it
(an evolution scored on the task's metric) and returns the genotype it chose. The hook runs
on every rank, after the last step, once the final checkpoint is written; the loop saves
what it returns in the run directory (RUN/chosen.json), and `nasflow derive RUN` derives it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nasflow.compile.supernet import Supernet
from nasflow.runs.distributed import DistContext, single
from nasflow.runs.loop import BatchStream
from nasflow.search.config import SearchConfig
from nasflow.space.graph import Graph
from nasflow.tasks.contract import Batch, Task

# Fixed batches are drawn from a stream of their own, seeded away from the search's streams.
_FIXED_SEED_OFFSET = 7919


@dataclass
class SearchEnd:
    """The trained supernet and what a strategy needs to pick an architecture from it.

    `save()` writes a checkpoint now, the strategy's `state_dict()` included: call it (on
    every rank, it is a collective) after each unit of progress a long end should not lose.
    `stop_requested()` (a collective too) is true once Ctrl-C or SIGTERM came on any rank:
    return None then; the run counts as stopped, its checkpoint holds the state last saved,
    and a resumed run calls `finish` again. `notes` are what the CLI prints after the search:
    strings or rich renderables (a table).
    """

    model: Supernet
    graph: Graph
    task: Task
    config: SearchConfig
    run_dir: Path
    ctx: DistContext
    step: int  # the supernet step the search ended at
    device: torch.device
    save: Callable[[], None]
    stop_requested: Callable[[], bool]
    notes: list[Any] = field(default_factory=list)

    def train_batches(self, n: int) -> list[Batch]:
        """`n` fixed batches of the train split (config.batch_size each, whole on every rank:
        every rank computes alike), from a stream of their own seeded by the run's seed: the
        same batches every time they are asked for, a resumed run included, and the search's
        own data streams do not move."""
        stream = BatchStream(self.task, "train", self.config.batch_size, self.config.seed + _FIXED_SEED_OFFSET,
                             self.device, single(self.device))
        return [stream.next() for _ in range(n)]
