"""TrainConfig: the one schema of a retraining run's configuration (the run's config.json).

Defaults are the DLSR paper's retraining (section IV-C; ../shared/docs/dlsr-facts.md): Adam
lr 3e-4 betas (0.9, 0.999), the learning rate halved every 4e5 steps, 2e6 steps, batch 32.
No cost regularizer acts while retraining (the paper's gamma = 0): a derived architecture
has no architecture parameters for it to act on.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from typing_extensions import Self

from nasflow.runs.config import AdamConfig, OptionValue, RunConfig, cosine_steps_refused
from nasflow.runs.config_keys import fill_sections, preset_source, unknown_key, unknown_setting
from nasflow.errors import NasflowError


class TrainConfig(RunConfig):
    """The configuration of a retraining run (`run_train`), saved as the run's config.json:
    the architecture and task, the optimizer and its schedule, steps, batch, validation and
    checkpoint intervals. The defaults are the DLSR paper's retraining; `nasflow train`'s
    flags and the task's presets set the fields."""

    KIND: ClassVar[str] = "train"

    # what is trained, on what
    arch: str | None = None  # the architecture file the run started from; the run keeps a copy
    overrides: dict[str, int] = {}  # space params set on the command line (--scale 3, --set C=18)
    task: str | None = None  # None: the architecture's `task:`
    task_options: dict[str, OptionValue] = {}
    init_from: str | None = None  # a model directory to warm-start from (x3 / x4 from x2)
    # how
    steps: int = Field(2_000_000, ge=1)
    batch_size: int = Field(32, ge=1)  # the global batch: shared by the processes of a distributed run
    optim: AdamConfig = AdamConfig(weight_decay=0.0)
    lr_halve_every: int = Field(400_000, ge=1)  # step schedule: lr * 0.5 ** (step // lr_halve_every)
    # A task's preset may ask for another optimizer and schedule (DARTS retrains with SGD,
    # momentum 0.9, and a cosine schedule from optim.lr to 0 over `steps`); optim.lr and
    # optim.weight_decay serve both optimizers, betas only Adam.
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0)  # SGD's
    schedule: Literal["step", "cosine"] = "step"
    # Drop-path (nasflow.compile.drop_path): the branches of the sums inside blocks dropped per
    # sample with a probability growing linearly from 0 to this over `steps` (DARTS: 0.2); 0: off.
    drop_path_prob: float = Field(0.0, ge=0, lt=1)
    # Train with the architecture's auxiliary outputs (its `auxiliary:`, DARTS' auxiliary
    # head): the model returns (output, *auxiliary) to the task's loss while training; they
    # are left out of validation, saved models and parameter counts.
    auxiliary: bool = False
    # Clip the gradient to this L2 norm (over all weights) before each step, as DARTS'
    # retraining does (5); 0: no clipping, the DLSR paper's.
    grad_clip: float = Field(0.0, ge=0)
    seed: int = 0
    # Speed levers, as the search's (nasflow/levers.py). channels_last None: on for the CPU.
    channels_last: bool | None = None
    amp: Literal["none", "bf16"] = "none"  # bf16 autocast of the forward: faster, not exact
    device: str = "auto"  # "auto": cuda when there is one
    # what is kept
    validate_every: int = Field(5000, ge=1)  # the task's evaluate(model), logged and used for best/
    log_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(5000, ge=1)
    tensorboard: bool = False  # also write RUN/tensorboard/ (nasflow.runs.tensorboard)
    # The metric that picks best/: None = the task's `best_metric`, else its first declared
    # metric; better is the direction the task declares for it (nasflow.tasks.Metric).
    best_metric: str | None = None

    # Fields a resumed run may change: they do not alter the trajectory of the weights
    # (validation runs with the RNG state saved and restored around it).
    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"arch", "steps", "validate_every", "log_every", "checkpoint_every", "device", "tensorboard"})

    def resume_consequences(self, run: RunConfig) -> list[str]:
        """`steps` may change; refused with a cosine schedule (laid over the old length, its
        state in the checkpoint), else a warning when drop-path grows over `steps`."""
        assert isinstance(run, TrainConfig)
        if self.steps == run.steps:
            return []
        if self.schedule == "cosine":
            raise cosine_steps_refused(self.steps, run.steps, "a new run")
        if self.drop_path_prob > 0:
            return [f"steps changed from {run.steps} to {self.steps}: drop-path's probability, which grows to "
                    f"{self.drop_path_prob} over the steps, now grows over {self.steps} from where the run "
                    f"stopped, so the result is not that of an uninterrupted {self.steps}-step training"]
        return []

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, data: Any) -> Any:
        """A partial `optim` (a preset's {lr: 1e-3}, --lr) keeps the config's other optimizer
        defaults (weight_decay 0), not AdamConfig's."""
        return fill_sections(cls, data) if isinstance(data, dict) else data

    @classmethod
    def build(cls, data: dict[str, Any], flags: Mapping[str, str] | None = None) -> Self:
        """As RunConfig's, with an unknown key named with the keys its section takes."""
        unknown_key(cls, data)
        return super().build(data, flags)

    def drop_path_at(self, step: int) -> float:
        """Drop-path's probability during step `step` (0-based): DARTS' prob * epoch / epochs, per step."""
        return self.drop_path_prob * min(step, self.steps) / self.steps

    def lr_at(self, step: int) -> float:
        """The learning rate of the step after `step` steps (what the schedule gives)."""
        if self.schedule == "cosine":
            return self.optim.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, self.steps) / self.steps))
        return self.optim.lr * 0.5 ** (step // self.lr_halve_every)


def preset_changes(preset: str, section: dict[str, Any], task: str | None = None) -> dict[str, Any]:
    """TrainConfig data from task `task`'s preset `preset`'s "train" section (keys as the
    task's presets.py documents them: `lr` and `weight_decay` are the optimizer's, `gamma`
    must be 0). An unknown key, top-level or in a nested section (`optim`), is one error
    naming the preset, the key and the keys its section takes."""
    source = preset_source(preset, task)
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key in ("lr", "weight_decay"):
            out["optim"] = {**out.get("optim", {}), key: value}  # into the config's optim (fill_sections)
        elif key == "gamma":
            if value:  # a derived architecture has no arch params for a cost term to act on
                raise NasflowError(f"{source}: train.gamma is {value}, but retraining has no "
                                   "cost regularizer; set it to 0")
        elif key in _PRESET_FIELDS:
            out[key] = {**out.get(key, {}), **value} if key == "optim" and isinstance(value, dict) else value
        else:
            raise unknown_setting(source, key, PRESET_KEYS, "the train section takes")
    unknown_key(TrainConfig, out, source=source)  # the nested sections' keys (optim's)
    return out


_PRESET_FIELDS = [f for f in TrainConfig.model_fields if f not in ("arch", "init_from", "device")]
PRESET_KEYS = ("lr", "weight_decay", "gamma", *_PRESET_FIELDS)  # what a preset's train section takes
