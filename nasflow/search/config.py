"""SearchConfig: the one schema of a search run's configuration (the run's config.json).

Defaults are the DLSR paper's (section IV-B): 2e5 steps with 2e4 of warm-up, batch 64,
MiLeNAS with lambda 1, L_P with gamma 0.2, Adam 3e-4 for both weights and arch, genotype
snapshots at 5e4, 1e5 and 1.5e5 steps.

A strategy's own settings are `strategy_options` (its options model checks them; the search
stores them whole, defaults included). MiLeNAS's `lambda` and `reuse_forward` were top-level
fields before strategies had options: configs written then, and callers still passing them
(`SearchConfig(lam=0.5)`, `model_copy(update={"lam": 0.5})`), are read through
migrate_legacy_options.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from typing_extensions import Self

from nasflow.errors import NasflowError
from nasflow.runs.config import AdamConfig, OptionValue, RunConfig, cosine_steps_refused
from nasflow.runs.config_keys import fill_sections, preset_source, unknown_key

# Former top-level fields -> (MiLeNAS option, the value every other strategy ignored it at).
LEGACY_OPTIONS: dict[str, tuple[str, OptionValue]] = {
    "lambda": ("lambda", 1.0), "lam": ("lambda", 1.0), "reuse_forward": ("reuse_forward", False)}


# (strategy name, options given) -> every option, defaults filled in. nasflow.strategies sets
# it when imported: this module sits below the strategies, which build on it.
OptionDefaults = Callable[[str, dict[str, Any]], dict[str, Any]]
_option_defaults: OptionDefaults | None = None


def set_option_defaults(fill: OptionDefaults) -> None:
    global _option_defaults
    _option_defaults = fill


def migrate_legacy_options(data: dict[str, Any]) -> dict[str, Any]:
    """Config data with top-level "lambda" / "lam" / "reuse_forward" (configs and run
    directories written before strategy options) rewritten with them in strategy_options.

    For MiLeNAS (the default strategy) they move there. Other strategies never read them,
    so they are dropped at their old defaults (1.0, false); other values move too, where the
    strategy's options refuse them by name rather than ignore them. Returns a new dict;
    data without those keys comes back as it is.
    """
    legacy = [k for k in LEGACY_OPTIONS if k in data]
    if not legacy:
        return data
    out = dict(data)
    options = dict(out.get("strategy_options") or {})
    milenas = out.get("strategy", "milenas") == "milenas"
    for key in legacy:
        name, ignored_at = LEGACY_OPTIONS[key]
        value = out.pop(key)
        if milenas or value != ignored_at:
            options[name] = value
    out["strategy_options"] = options
    return out


class SearchConfig(RunConfig):
    """Everything a search run is: the space and task, the strategy and its options, the
    regularizer and budget, the optimizers, steps and speed levers. `nasflow search` builds
    one from a task preset and its flags; RUN/config.json holds it, and `--resume` reads it
    back."""

    KIND: ClassVar[str] = "search"

    # what is searched, on what
    space: str | None = None  # the space file the run started from; the run keeps its own copy
    overrides: dict[str, int] = {}  # space params set on the command line (--set C=18)
    task: str | None = None  # None: the space's `task:`
    task_options: dict[str, OptionValue] = {}
    # how
    strategy: str = "milenas"
    regularizer: str | None = "params"
    # The strategy's options (`--strategy-opt key=value`), checked by its options model.
    strategy_options: dict[str, OptionValue] = {}
    gamma: float = Field(0.2, ge=0)  # weight of the regularizer
    # Clip the weights' gradient to this L2 norm (over all weights) before each weights step,
    # as DARTS' search does (5); 0: no clipping, the DLSR paper's.
    grad_clip: float = Field(0.0, ge=0)
    latency_table: str | None = None  # `nasflow profile`'s table, for regularizer latency / budgets
    budget: str | None = None  # e.g. "latency=40ms", "params=300k", "madds=20G" (search/budget.py)
    steps: int = Field(200_000, ge=1)  # warm-up included
    warmup: int = Field(20_000, ge=0)  # steps that update only the weights
    batch_size: int = Field(64, ge=1)
    weights_optim: AdamConfig = AdamConfig()
    # The weights optimizer and its schedule (a task's preset may choose them: DARTS searches
    # with SGD, momentum 0.9, lr cosine to weights_lr_min over `steps`); weights_optim's lr and
    # weight_decay serve both optimizers, its betas only Adam. arch_optim is always Adam.
    weights_optimizer: Literal["adam", "sgd"] = "adam"
    weights_momentum: float = Field(0.9, ge=0)  # SGD's
    weights_schedule: Literal["constant", "cosine"] = "constant"
    weights_lr_min: float = Field(0.0, ge=0)  # where the cosine schedule ends
    arch_optim: AdamConfig = AdamConfig(betas=(0.5, 0.999))
    seed: int = 0
    fuse: bool = True  # compute mixed ops with the fused kernels (same parameters)
    # OFA's kernel transform: a searched kernel size reads the larger kernel's centre through a
    # learned matrix (nasflow.compile.values), not as it is.
    kernel_transform: bool = False
    # Speed levers (nasflow/levers.py, bench/speed.py). channels_last None: on for the CPU.
    channels_last: bool | None = None
    amp: Literal["none", "bf16"] = "none"  # bf16 autocast of the forward: faster, not exact
    # "auto": fuse and channels_last above were chosen for this machine by timing the exact
    # configurations (nasflow/hardware/auto.py, `nasflow search --levers auto`) and are
    # recorded here, so a resumed run reuses them; "given": as set.
    levers: Literal["auto", "given"] = "given"
    device: str = "auto"  # "auto": cuda when there is one
    # what is kept
    snapshot_steps: list[int] = [50_000, 100_000, 150_000]
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(1000, ge=1)
    tensorboard: bool = False  # also write RUN/tensorboard/ (nasflow.runs.tensorboard)

    # Fields a resumed run may change: they do not alter the trajectory of the search, but for
    # `steps`, whose change resume_consequences warns about (or refuses: a cosine schedule).
    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"space", "steps", "snapshot_steps", "log_every", "checkpoint_every", "device", "tensorboard"})

    def resume_consequences(self, run: RunConfig) -> list[str]:
        """`steps` may change (the run is extended or cut short), but what runs over the total
        bends: refused with a cosine weights schedule (its length is in the checkpoint: past the
        old length the lr would rise again), else a warning that the run will not equal an
        uninterrupted run of the new length."""
        assert isinstance(run, SearchConfig)
        if self.steps == run.steps:
            return []
        if self.weights_schedule == "cosine":
            raise cosine_steps_refused(self.steps, run.steps, f"a new run of {self.steps} steps")
        return [f"steps changed from {run.steps} to {self.steps}: what runs over the total (the strategy's "
                f"on_step(step, total) schedules, e.g. GDAS' temperature; snapshots and warm-up stay at their "
                f"steps) continues toward {self.steps} from where the run stopped, so the result is not that "
                f"of an uninterrupted {self.steps}-step search"]

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        return fill_sections(cls, migrate_legacy_options(data)) if isinstance(data, dict) else data

    @classmethod
    def build(cls, data: dict[str, Any], flags: Mapping[str, str] | None = None) -> Self:
        """As RunConfig's, with an unknown key (a preset's, a misspelt one in Python) named
        with the keys its section takes, the closest first."""
        unknown_key(cls, migrate_legacy_options(data) if isinstance(data, dict) else data)
        return super().build(data, flags)

    @classmethod
    def check_preset(cls, settings: Mapping[str, Any], preset: str, task: str | None) -> None:
        """A task preset's search section: an unknown key is one error naming the preset it
        came from, before the user's settings are merged in (which would hide where it was)."""
        unknown_key(cls, migrate_legacy_options(dict(settings)), source=preset_source(preset, task))

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Self:
        """As pydantic's, with the former fields `lam` / `lambda` / `reuse_forward` accepted
        in `update` (moved into strategy_options)."""
        if update and LEGACY_OPTIONS.keys() & update.keys():
            update = migrate_legacy_options({"strategy": self.strategy,
                                             "strategy_options": self.strategy_options, **update})
        return super().model_copy(update=update, deep=deep)

    def resolved_strategy_options(self) -> dict[str, Any]:
        """strategy_options with the strategy's defaults filled in, through the hook the
        strategies package installs (set_option_defaults); as given without it, or when
        the strategy cannot be found or refuses them (the search reports that itself)."""
        if _option_defaults is None:
            return dict(self.strategy_options)
        try:
            return _option_defaults(self.strategy, dict(self.strategy_options))
        except NasflowError:
            return dict(self.strategy_options)

    def differences(self, other: RunConfig) -> dict[str, tuple[Any, Any]]:
        """As RunConfig's, with strategy options compared one by one, defaults filled in,
        under their own names (prefixed 'strategy_options.' where a name is also a field)."""
        out: dict[str, tuple[Any, Any]] = {}
        fields = {f.alias or n for n, f in type(self).model_fields.items()}
        full = [c.model_copy(update={"strategy_options": c.resolved_strategy_options()})
                if isinstance(c, SearchConfig) else c for c in (self, other)]
        for key, (mine, theirs) in RunConfig.differences(full[0], full[1]).items():
            if key != "strategy_options":
                out[key] = (mine, theirs)
                continue
            for name in dict.fromkeys([*mine, *theirs]):
                if mine.get(name) != theirs.get(name):
                    out[f"strategy_options.{name}" if name in fields else name] = (mine.get(name), theirs.get(name))
        return out

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
