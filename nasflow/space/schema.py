"""The space file: one pydantic schema, written in YAML or built in Python.

A space is a typed graph of named nodes. Each node is of one registered node kind
(nasflow.space.kinds), marked by the kind's key: op, choice, dense, combine, block and stack
are built in (nasflow.space.builtin_kinds lists each with an example).
A node is validated by its kind's schema model: `Node` is the discriminated union of the
registered kinds' models, rebuilt when a kind registers, so a kind from a space's `imports:`
is known before its nodes are read. Channels and op arguments may be integer expressions over
the space's (or block's) params. Unknown keys are rejected everywhere, so a misspelt key
never passes silently.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, ValidationError

import nasflow.space.builtin_kinds  # noqa: F401  (registers the builtin kinds, in order)
from nasflow.errors import SpaceError
from nasflow.space.builtin_kinds import BlockNode, ChoiceNode, CombineNode, DenseNode, OpNode, StackNode
from nasflow.space.imports import SpaceImports, import_modules
from nasflow.space.kinds import NODE_KINDS, ArgValue, Expr, kind_of_data, on_register
from nasflow.space.yaml_io import SourceMap, dump_yaml, load_yaml

__all__ = ["ArgValue", "Block", "BlockNode", "ChoiceNode", "CombineNode", "DenseNode", "Expr", "Node",
           "OpNode", "Space", "StackNode", "block", "choice", "combine", "dense", "op", "stack"]


def _keys_message() -> str:
    names = NODE_KINDS.names()
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return f"a node needs one of the keys {listed}"


def node_union() -> Any:
    """The type of a node: the registered kinds' schema models, told apart by their key."""
    members = tuple(Annotated[NODE_KINDS.get(k).schema, Tag(k)] for k in NODE_KINDS)
    return Annotated[Union[members], Discriminator(  # type: ignore[valid-type]
        kind_of_data, custom_error_type="node_kind", custom_error_message=_keys_message())]


Node = node_union()


class Block(BaseModel):
    """A reusable cell: its own params (None = must be given), input ports, nodes, output."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    params: dict[str, Expr | None] = {}
    inputs: list[str]
    nodes: dict[str, Node]  # type: ignore[valid-type]
    output: str


class Space(BaseModel):
    """A search space, or an architecture (a space with no choices): the schema of a space
    file, read with `Space.from_yaml(path)` (errors say `file:line`) or built in Python with
    `op`, `choice`, `dense`, `combine`, `block` and `stack`.

    Attributes:
        name: The space's name (run and model directories carry it).
        description: One line saying what it is (`nasflow spaces` shows it).
        task: The task adapter it is meant for, e.g. `sr` or `classify`.
        imports: Python modules imported before validation (ops and kinds they register).
        params: Integer params usable in expressions (`C`, `scale`); `--set` overrides them.
        values: Value decisions: a name searched over these integers (`channels: [16, 32]`).
        inputs: Input name -> its channels.
        blocks: Reusable cells by name, instantiated by `block` and `stack` nodes.
        nodes: Node name -> node, in any order (the graph sorts them).
        output: The node whose result the network returns.
        auxiliary: Nodes computed only in training (DARTS' auxiliary head).
        meta: Provenance of a derived space: what it was derived from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    task: str | None = None  # the task adapter this space is meant for (e.g. "sr")
    # Python modules imported before validation, so ops they register (@register_op) can be
    # named here; a module next to the space file is found too.
    imports: list[str] = []
    params: dict[str, int] = {}
    # Value decisions: a name that takes one of these integers, searched (nasflow.space.values).
    # Usable in expressions as a param is; every place that reads one name shares its decision.
    values: dict[str, list[int]] = {}
    inputs: dict[str, Expr]  # input name -> channels
    blocks: dict[str, Block] = {}
    nodes: dict[str, Node]  # type: ignore[valid-type]
    output: str
    # Auxiliary outputs (DARTS' auxiliary head): nodes computed only while training with the
    # train config's `auxiliary` on, the model then returning (output, *auxiliary) for the
    # task's loss. What only they read is never built otherwise: not exported, evaluated,
    # saved in model directories or counted in costs.
    auxiliary: list[str] = []
    meta: dict[str, Any] = {}  # provenance: what it was derived from, by whom

    # Where each part came from, for error messages. Not part of the schema.
    _source: SourceMap = SourceMap(None)

    @property
    def source(self) -> SourceMap:
        return self._source

    def with_params(self, overrides: dict[str, int]) -> Space:
        """A copy with space-level params overridden (`--set channels=18`); a value decision
        given a number is fixed to it (it becomes a param: `--set C=24`)."""
        unknown = sorted(set(overrides) - set(self.params) - set(self.values))
        if unknown:
            known = [*self.params, *self.values]
            raise SpaceError(
                f"space '{self.name}' has no param {', '.join(map(repr, unknown))}"
                f" (its params: {', '.join(known) or 'none'})"
            )
        values = {k: v for k, v in self.values.items() if k not in overrides}
        copy = self.model_copy(update={"params": {**self.params, **overrides}, "values": values})
        copy._source = self._source
        return copy

    def fix_values(self, assignment: dict[str, int]) -> Space:
        """A copy with value decisions fixed (they become params); the architecture an
        assignment of every value picks, when it gives them all."""
        unknown = sorted(set(assignment) - set(self.values))
        if unknown:
            raise SpaceError(f"space '{self.name}' has no value decision {', '.join(map(repr, unknown))} "
                             f"(its value decisions: {', '.join(self.values) or 'none'})")
        return self.with_params(dict(assignment)) if assignment else self

    # --- YAML -------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path) -> Space:
        data, source = load_yaml(path)
        return cls.from_data(data, source)

    @classmethod
    def from_data(cls, data: Any, source: SourceMap | None = None) -> Space:
        source = source or SourceMap(None)
        if not isinstance(data, dict):
            raise SpaceError("a space file must be a mapping with name, inputs, nodes, output",
                             source.where(()))
        imports = data.get("imports")
        found = SpaceImports()
        if isinstance(imports, list) and all(isinstance(m, str) for m in imports):
            found = import_modules(imports, source)  # they may register node kinds the nodes use
        try:
            space = cls.model_validate(data)
        except ValidationError as exc:
            hint = found.unknown_op_hint() if exc.errors()[0]["type"] == "node_kind" else ""
            raise SpaceError(_explain(exc) + hint, source.where(_first_loc(exc))) from None
        space._source = source
        return space

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = dump_yaml(self.to_data())
        if path is not None:
            Path(path).write_text(text)
        return text


def _rebuild_node_union() -> None:
    """A kind registered: nodes of it validate from now on (Block's, then Space's schema)."""
    global Node
    Node = node_union()
    for model in (Block, Space):
        model.model_fields["nodes"].annotation = dict[str, Node]  # type: ignore[valid-type]
        model.model_rebuild(force=True)


on_register(_rebuild_node_union)


def _first_loc(exc: ValidationError) -> tuple[str | int, ...]:
    loc = exc.errors()[0]["loc"]
    # Drop the union tag pydantic inserts after a node's name, so the path matches the file.
    return tuple(p for i, p in enumerate(loc)
                 if not (i >= 2 and loc[i - 2] == "nodes" and p in NODE_KINDS))


def _explain(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = _first_loc(exc)
    path = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = f"unknown key '{loc[-1]}'; remove it or check its spelling"
        path = ".".join(str(p) for p in loc[:-1]) or "(top level)"
    elif err["type"] == "missing":
        msg = f"missing required key '{loc[-1]}'"
        path = ".".join(str(p) for p in loc[:-1]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{path}: {msg}{more}"


# --- Python builder API: the same schema objects, with short constructors ---------------
def op(name: str, input: str, out: Expr | None = None, act: str | None = None, **args: ArgValue) -> OpNode:
    """A fixed op: `name` (a registered op) on node `input`, with `out` channels (default:
    what the op gives, else the input's), an optional activation `act` after it, and the op's
    own arguments."""
    return OpNode(op=name, input=input, out=out, act=act, args=args)


def choice(candidates: list[str], input: str, out: Expr | None = None, act: str | None = None,
           label: str | None = None, never_derive: list[str] | None = None, **args: ArgValue) -> ChoiceNode:
    """An alpha decision: one of the `candidates` ops on `input`, weighted by softmax(alpha)
    while searching. Nodes with the same `label` share one alpha; `never_derive` names
    candidates (e.g. `none`) the derivation never picks."""
    return ChoiceNode(choice=candidates, input=input, out=out, act=act, label=label,
                      never_derive=never_derive or [], args=args)


def dense(candidates: list[str], topk: int = 1, merge: Literal["concat", "sum"] = "concat",
          op: str | None = None, out: Expr | None = None, act: str | None = None,
          label: str | None = None, **args: ArgValue) -> DenseNode:
    """A beta decision: which of the `candidates` nodes feed this one, the `topk` kept at
    derivation, merged by `concat` or `sum` (then `op`, if given, applied to the merge)."""
    return DenseNode(dense=candidates, topk=topk, merge=merge, op=op, out=out, act=act,
                     label=label, args=args)


def combine(kind: Literal["add", "concat", "mul"], inputs: list[str], act: str | None = None) -> CombineNode:
    """A fixed merge of `inputs`: element-wise `add` or `mul`, or channel `concat`."""
    return CombineNode(combine=kind, inputs=inputs, act=act)


def block(name: str, inputs: str | list[str], **args: Expr) -> BlockNode:
    """One instance of the space's block `name` on `inputs`, its params set by `args`."""
    return BlockNode(block=name, inputs=inputs, args=args)


def stack(count: Expr, block: str, inputs: str | list[str], let: dict[str, Expr] | None = None,
          **args: Expr) -> StackNode:
    """`count` instances of `block` (a name or an expression over i), see StackNode."""
    return StackNode(stack=count, block=block, inputs=inputs, let=let or {}, args=args)
