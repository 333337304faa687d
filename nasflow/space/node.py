"""GNode: one node of the expanded graph, as the compiler, the cost model and the tools read it.

Its fields are shared by every node kind; which ones a kind fills is up to the kind
(nasflow.space.kinds): `op` for op nodes and dense nodes' merge op, `candidates` for a
choice's ops or a dense node's inputs as written, `extra` for a kind's own settings.
In a space with value decisions, channels, args and `exists` may be Syms
(nasflow.space.values): ints at the largest values, with a table per value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from nasflow.space.yaml_io import Loc


@dataclass
class GNode:
    """One node of the expanded graph, with everything the compiler and cost model need."""

    name: str  # dotted instance path, e.g. "cell1.m1"
    kind: str  # "input" or a registered node kind: op | choice | dense | combine | ...
    inputs: list[str]  # expanded names of its inputs (for dense: all candidates)
    loc: Loc  # where it is written in the space file
    op: str | None = None  # op node: the op; dense node: the op after the merge
    candidates: list[str] = field(default_factory=list)  # choice: ops; dense: inputs as written
    args: dict[str, Any] = field(default_factory=dict)  # as written (evaluated), before defaults
    act: str | None = None
    label: str | None = None  # the arch decision this node reads (choice, dense)
    topk: int = 1
    merge: str = "concat"  # dense / combine kind
    out: int | None = None  # declared out channels
    c_in: list[int] = field(default_factory=list)
    c_out: int = 0
    size: Fraction = Fraction(1)  # spatial size relative to the space's inputs
    never_derive: list[str] = field(default_factory=list)  # choice: candidates never derived
    extra: dict[str, Any] = field(default_factory=dict)  # a kind's own settings (repeat: times)
    # 1, or a Sym of 0/1 when a searched depth removes the node (an instance of a stack whose
    # count is a value decision exists while its index is below the count).
    exists: int = 1

    @property
    def merge_in(self) -> int:
        """Channels entering a dense node's op after the merge (all candidates)."""
        return sum(self.c_in) if self.merge == "concat" else self.c_in[0]
