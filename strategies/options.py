"""Strategy options: one pydantic model per strategy, filled from `--strategy-opt key=value`
(or SearchConfig.strategy_options) and stored in the run's config.json."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import Self

from nasflow.errors import NasflowError


class StrategyOptions(BaseModel):
    """A strategy with no options. Subclass it with fields (defaults required) for yours;
    unknown keys are refused, and a field's alias is the name users type."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @classmethod
    def parse(cls, strategy: str, given: dict[str, Any]) -> Self:
        """Validate `given`; one error naming the strategy, the option and its options."""
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "options"
            offered = ", ".join(option_names(cls)) or "none"
            if err["type"] == "extra_forbidden":
                raise NasflowError(f"strategy '{strategy}' has no option '{where}' (its options: {offered})") from None
            raise NasflowError(f"strategy '{strategy}': option '{where}': {err['msg']}") from None

    def to_json(self) -> dict[str, Any]:
        """Every option, defaults included, by the name users type."""
        return self.model_dump(mode="json", by_alias=True)


def option_names(options: type[StrategyOptions]) -> list[str]:
    return [f.alias or name for name, f in options.model_fields.items()]


def describe_options(options: type[StrategyOptions]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, description) per option, for `nasflow strategies` and --help."""
    rows = []
    for name, f in options.model_fields.items():
        kind = getattr(f.annotation, "__name__", str(f.annotation))
        rows.append((f.alias or name, kind, f.default, f.description or ""))
    return rows


def first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""
