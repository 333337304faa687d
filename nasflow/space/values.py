"""Value decisions: numbers a space searches (a width, a kernel size, an expansion ratio, a
stack's depth), and the integers that depend on them.

A space lists them under `values:` (`values: {C: [16, 24, 32, 48]}`); each name is one
decision, labelled by the name, usable in every integer expression as a param is (`out: C`,
`out: C // 2`, `args: {k: K}`, `stack: depth`). Every place that reads a name shares its
decision, so tensors whose widths come from one name always agree.

While a graph is built, a value decision's name is bound to a `Sym`: an int whose own value
is the one at the decisions' largest values (so the graph, the supernet's shapes and its
weights are the largest network's), carrying the table of its value at every combination of
the decisions it depends on. Arithmetic on Syms makes Syms, so a node's channels, its args,
and the cost functions of the op registry (plain Python arithmetic on c_in and c_out) give
exact tables per value: the costs per value are the registry's own formulas, evaluated.
The compiler slices weights and masks channels from the same tables (nasflow.compile.values).

Conditions (`i >= layers // 3`, `a if c else b`) may not read a value decision: a graph has
one structure, and only a stack's count (its depth) may vary, as its first instances.
"""
from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Assignment = Mapping[str, int]  # value decision label -> the value it takes


class Sym(int):
    """An integer that depends on value decisions: int-valued at their largest values, with
    its value at each combination of the decisions in `deps` (`table`, keyed by the values
    in `deps` order). `domains[j]` lists the values of decision `deps[j]`."""

    deps: tuple[str, ...]
    domains: tuple[tuple[int, ...], ...]
    table: dict[tuple[int, ...], int]

    def __new__(cls, deps: tuple[str, ...], domains: tuple[tuple[int, ...], ...],
                table: dict[tuple[int, ...], int]) -> Sym:
        top = tuple(max(d) for d in domains)
        self = super().__new__(cls, table[top])
        self.deps, self.domains, self.table = deps, domains, table
        return self

    @classmethod
    def decision(cls, label: str, values: Iterable[int]) -> Sym:
        """The value of decision `label` itself."""
        vals = tuple(values)
        return cls((label,), (vals,), {(v,): v for v in vals})

    # --- reading ------------------------------------------------------------------------
    def at(self, assignment: Assignment) -> int:
        """The value under `assignment` (it must give every decision this one reads)."""
        return self.table[tuple(assignment[d] for d in self.deps)]

    @property
    def values(self) -> list[int]:
        return list(self.table.values())

    def describe(self) -> str:
        """`16..48 by C` (for messages)."""
        vals = sorted(set(self.table.values()))
        shown = ", ".join(map(str, vals)) if len(vals) <= 4 else f"{vals[0]}..{vals[-1]}"
        return f"{{{shown}}} by {', '.join(self.deps)}"

    def __repr__(self) -> str:
        return int.__repr__(self)

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickles (and deep-copies) as itself
        return (Sym, (self.deps, self.domains, self.table))

    # --- arithmetic: Syms make Syms ----------------------------------------------------
    def _lift(self, other: Any, fn: Callable[[int, int], int], swap: bool = False) -> Any:
        if isinstance(other, bool) or not isinstance(other, int):
            return NotImplemented
        return combine([self, other] if not swap else [other, self], lambda a, b: fn(a, b))

    def __add__(self, o: Any) -> Any: return self._lift(o, operator.add)
    def __radd__(self, o: Any) -> Any: return self._lift(o, operator.add, True)
    def __sub__(self, o: Any) -> Any: return self._lift(o, operator.sub)
    def __rsub__(self, o: Any) -> Any: return self._lift(o, operator.sub, True)
    def __mul__(self, o: Any) -> Any: return self._lift(o, operator.mul)
    def __rmul__(self, o: Any) -> Any: return self._lift(o, operator.mul, True)
    def __floordiv__(self, o: Any) -> Any: return self._lift(o, operator.floordiv)
    def __rfloordiv__(self, o: Any) -> Any: return self._lift(o, operator.floordiv, True)
    def __mod__(self, o: Any) -> Any: return self._lift(o, operator.mod)
    def __rmod__(self, o: Any) -> Any: return self._lift(o, operator.mod, True)
    def __pow__(self, o: Any) -> Any: return self._lift(o, operator.pow)
    def __rpow__(self, o: Any) -> Any: return self._lift(o, operator.pow, True)
    def __neg__(self) -> Any: return apply(self, operator.neg)
    def __pos__(self) -> Any: return self


def is_sym(x: Any) -> bool:
    return isinstance(x, Sym)


def combine(xs: list[int], fn: Callable[..., int]) -> int:
    """fn applied to ints and Syms: a Sym over the union of their decisions (an int if none)."""
    syms = [x for x in xs if isinstance(x, Sym)]
    if not syms:
        return fn(*(int(x) for x in xs))
    domains: dict[str, tuple[int, ...]] = {}
    for s in syms:
        domains.update(zip(s.deps, s.domains))
    deps = tuple(sorted(domains))
    table = {}
    for combo in itertools.product(*(domains[d] for d in deps)):
        a = dict(zip(deps, combo))
        table[combo] = fn(*(x.at(a) if isinstance(x, Sym) else int(x) for x in xs))
    if len(set(table.values())) == 1:  # no decision moves it (instance 0 of any depth exists)
        return next(iter(table.values()))
    return Sym(deps, tuple(domains[d] for d in deps), table)


def apply(x: int, fn: Callable[[int], int]) -> int:
    """fn of one int or Sym."""
    return combine([x], fn)


def at(x: Any, assignment: Assignment) -> Any:
    """x's value under `assignment` (a decision it does not give: its largest value): a Sym's
    entry, anything else as it is."""
    if not isinstance(x, Sym):
        return x
    return x.table[tuple(assignment.get(d, max(dom)) for d, dom in zip(x.deps, x.domains))]


def deps_of(*xs: Any) -> set[str]:
    """The value decisions any of `xs` (ints, Syms, lists and dicts of them) depends on."""
    out: set[str] = set()
    for x in xs:
        if isinstance(x, Sym):
            out.update(x.deps)
        elif isinstance(x, dict):
            out |= deps_of(*x.values())
        elif isinstance(x, (list, tuple)):
            out |= deps_of(*x)
    return out


def same(a: int, b: int) -> bool:
    """Whether two ints or Syms are equal under every combination of their decisions."""
    if not isinstance(a, Sym) and not isinstance(b, Sym):
        return int(a) == int(b)
    diff = combine([a, b], lambda x, y: int(x != y))
    return not any(diff.values) if isinstance(diff, Sym) else not diff


def smallest(x: int) -> int:
    return min(x.values) if isinstance(x, Sym) else int(x)


def largest_at_top(x: int) -> bool:
    """Whether x is largest at the decisions' largest values (the supernet holds one weight
    at those values, so nothing may need more there than at the top)."""
    return not isinstance(x, Sym) or int(x) == max(x.values)


def combos(domains: Mapping[str, tuple[int, ...]], labels: Iterable[str]) -> list[dict[str, int]]:
    """Every assignment of `labels` (in that order), as dicts."""
    labels = list(labels)
    return [dict(zip(labels, c)) for c in itertools.product(*(domains[d] for d in labels))]
