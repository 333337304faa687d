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

    def to_json(self) -> dict[str, Any]:
        return {"choices": self.choices, "edges": self.edges}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Genotype:
        return cls(dict(data.get("choices", {})), {k: list(v) for k, v in data.get("edges", {}).items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.choices.items()]
        parts += [f"{k}<-({','.join(v)})" for k, v in self.edges.items()]
        return " ".join(parts)
