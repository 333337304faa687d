"""SearchConfig: the one schema of a search run's configuration (the run's config.json).

Defaults are the DLSR paper's (section IV-B): 2e5 steps with 2e4 of warm-up, batch 64,
MiLeNAS with lambda 1, L_P with gamma 0.2, Adam 3e-4 for both weights and arch, genotype
snapshots at 5e4, 1e5 and 1.5e5 steps.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from nasflow.runs.config import AdamConfig, OptionValue, RunConfig


class SearchConfig(RunConfig):
    KIND: ClassVar[str] = "search"

    # what is searched, on what
    space: str | None = None  # the space file the run started from; the run keeps its own copy
    overrides: dict[str, int] = {}  # space params set on the command line (--set C=18)
    task: str | None = None  # None: the space's `task:`
    task_options: dict[str, OptionValue] = {}
    # how
    strategy: str = "milenas"
    regularizer: str | None = "params"
    lam: float = Field(1.0, alias="lambda", ge=0)  # MiLeNAS: weight of grad_A L_val
    gamma: float = Field(0.2, ge=0)  # weight of the regularizer
    latency_table: str | None = None  # `nasflow profile`'s table, for regularizer latency / budgets
    budget: str | None = None  # e.g. "latency=40ms", "params=300k", "madds=20G" (search/budget.py)
    steps: int = Field(200_000, ge=1)  # warm-up included
    warmup: int = Field(20_000, ge=0)  # steps that update only the weights
    batch_size: int = Field(64, ge=1)
    weights_optim: AdamConfig = AdamConfig()
    arch_optim: AdamConfig = AdamConfig(betas=(0.5, 0.999))
    seed: int = 0
    fuse: bool = True  # compute mixed ops with the fused kernels (same parameters)
    # Speed levers (nasflow/levers.py, bench/speed.py). channels_last None: on for the CPU.
    channels_last: bool | None = None
    amp: Literal["none", "bf16"] = "none"  # bf16 autocast of the forward: faster, not exact
    # MiLeNAS: take grad_A L_train from the weights step's own backward, i.e. at the weights
    # before their update, saving one forward/backward per step (strategies/milenas.py).
    reuse_forward: bool = False
    device: str = "auto"  # "auto": cuda when there is one
    # what is kept
    snapshot_steps: list[int] = [50_000, 100_000, 150_000]
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(1000, ge=1)

    # Fields a resumed run may change: they do not alter the trajectory of the search.
    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"space", "steps", "snapshot_steps", "log_every", "checkpoint_every", "device"})

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if self.warmup > self.steps:
            raise ValueError(f"warmup ({self.warmup}) is longer than the run ({self.steps} steps)")
        if self.budget is not None:
            from nasflow.search.budget import Budget

            Budget.parse(self.budget)
            if self.gamma == 0:
                raise ValueError("a budget acts through the regularizer's weight: gamma must be above 0")
        return self
