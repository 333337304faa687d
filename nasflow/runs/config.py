"""What every run's configuration shares (search and train): validation of user data with
errors that name the field, the JSON form, the fields a resumed run may change; Adam settings."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from typing_extensions import Self  # typing.Self is 3.11+; pydantic depends on typing_extensions

from nasflow.errors import NasflowError, RunError
from nasflow.runs.formats import KEY

OptionValue = Union[bool, int, float, str]


class AdamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lr: float = Field(3e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(1e-8, ge=0)


def cosine_steps_refused(new: int, old: int, what: str) -> RunError:
    """The error a resume that changes `steps` under a cosine schedule gets: the schedule is
    laid over the run's old length (its state is in the checkpoint), so past it the lr would
    rise again. `what`: how to start anew instead ("a new run of 400 steps")."""
    return RunError(f"cannot resume with steps {new}: the run's cosine lr schedule is laid over its {old} steps "
                    f"(the schedule's state is in the checkpoint, and past them the lr would rise again); resume "
                    f"with --steps {old}, or start {what}")


class RunConfig(BaseModel):
    """What a run's config (search or train) shares: validation of user data with errors that
    name the field, its JSON form, and the fields a resumed run may change."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    KIND: ClassVar[str] = "run"  # names the config in error messages
    RESUMABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_format(cls, data: Any) -> Any:
        """config.json's file format is not a setting (RunFiles.config reads and migrates it);
        dropped so that the file also validates as it is."""
        if isinstance(data, dict) and KEY in data:
            return {k: v for k, v in data.items() if k != KEY}
        return data

    @classmethod
    def build(cls, data: dict[str, Any], flags: Mapping[str, str] | None = None) -> Self:
        """Validate user-given config data; errors name the field and the problem, or the
        command-line flag that set the field when `flags` ({"batch_size": "--batch", ...}) has it."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
            msg = msg.removeprefix("Value error, ")
            if flags and where in flags:
                raise NasflowError(f"{flags[where]} {err['input']}: {msg}") from None
            raise NasflowError(f"{cls.KIND} config: {where + ': ' if where else ''}{msg}") from None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def resume_consequences(self, run: RunConfig) -> list[str]:
        """Resuming the run whose config is `run` with this one, which differs only in RESUMABLE
        fields: what a change that bends the run's trajectory does (warnings), or a RunError
        for one that cannot be made. Default: nothing."""
        return []

    def differences(self, other: RunConfig) -> dict[str, tuple[Any, Any]]:
        """{field: (self's value, other's value)} for fields that would change the run."""
        mine, theirs = self.to_json(), other.to_json()
        skip = {type(self).model_fields[f].alias or f for f in self.RESUMABLE}
        return {k: (mine[k], theirs[k]) for k in mine if k not in skip and mine[k] != theirs[k]}
