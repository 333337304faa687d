"""The genotype: what a search chose, as a plain record keyed by decision label.

A choice holds one op, or a list of the ops a rule that keeps several (a threshold rule, as
Fair DARTS') kept: the derived node is their sum. One op stays a string, so genotypes of
one op per choice read and write as before.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Genotype:
    """What a search found, as a flat record: the op of each alpha decision, the inputs
    kept by each beta decision and the number of each value decision. `derive_space` turns it
    into a space with no choices; RUN/derived/genotype.json holds its `to_json()`."""

    choices: dict[str, str | list[str]] = field(default_factory=dict)  # alpha label -> op (or ops, summed)
    edges: dict[str, list[str]] = field(default_factory=dict)  # beta label -> inputs kept
    values: dict[str, int] = field(default_factory=dict)  # value decision -> its number

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"choices": self.choices, "edges": self.edges}
        if self.values:  # absent from the genotypes of spaces without value decisions
            out["values"] = self.values
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Genotype:
        choices = {k: v if isinstance(v, str) else list(v) for k, v in data.get("choices", {}).items()}
        return cls(choices, {k: list(v) for k, v in data.get("edges", {}).items()},
                   {k: int(v) for k, v in data.get("values", {}).items()})

    def ops(self, label: str) -> list[str]:
        """The op(s) choice `label` keeps, as a list (one op: a list of one)."""
        op = self.choices[label]
        return [op] if isinstance(op, str) else list(op)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def __str__(self) -> str:
        parts = [f"{k}={'+'.join(self.ops(k))}" for k in self.choices]
        parts += [f"{k}<-({','.join(v)})" for k, v in self.edges.items()]
        parts += [f"{k}={v}" for k, v in self.values.items()]
        return " ".join(parts)
