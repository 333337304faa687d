"""The genotype: what a search chose, as a plain record keyed by decision label."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Genotype:
    choices: dict[str, str] = field(default_factory=dict)  # alpha label -> op
    edges: dict[str, list[str]] = field(default_factory=dict)  # beta label -> inputs kept
    values: dict[str, int] = field(default_factory=dict)  # value decision -> its number

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"choices": self.choices, "edges": self.edges}
        if self.values:  # absent from the genotypes of spaces without value decisions
            out["values"] = self.values
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Genotype:
        return cls(dict(data.get("choices", {})), {k: list(v) for k, v in data.get("edges", {}).items()},
                   {k: int(v) for k, v in data.get("values", {}).items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.choices.items()]
        parts += [f"{k}<-({','.join(v)})" for k, v in self.edges.items()]
        parts += [f"{k}={v}" for k, v in self.values.items()]
        return " ".join(parts)
