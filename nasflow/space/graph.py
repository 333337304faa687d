"""Expand a space into a flat networkx DAG, infer channels and sizes, and validate it.

Everything that can be wrong with a space is found here, before any tensor exists: cycles,
unknown ops or blocks, undefined or unused inputs, channel mismatches, empty choices, topk
larger than the candidates, bad expressions, duplicate names. Block instances expand to
dotted names (`cell1.m1`); a reference to a block instance means its output node. A stack
node `cell` expands to block instances cell0, cell1, ... (nasflow.space.stack); `cell[k]`
reads instance k's output, `cell` the last one's.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from nasflow import limits
from nasflow.errors import SpaceError
from nasflow.space import stack as stacks
from nasflow.space.expr import ExprError, evaluate, evaluate_ref, is_plain_name, ref_names
from nasflow.ops.registry import OPS, find_op, is_activation
from nasflow.space.imports import SpaceImports, import_space_modules
from nasflow.space.kinds import checked_inferred, checked_refs, kind, kind_of_data
from nasflow.space.node import GNode
from nasflow.space.schema import Block, BlockNode, Node, Space, StackNode
from nasflow.space.values import Sym, apply, combine, deps_of, largest_at_top, same, smallest
from nasflow.space.yaml_io import Loc

__all__ = ["Decision", "GNode", "Graph", "build_graph", "reserved_name"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A compiled node is an attribute of the model (a top-level node) or of a plain torch module
# (a node inside a block), so a node named like one of their own attributes would replace it
# (a node `arch` replaced the architecture parameters) or fail inside torch. These are
# torch.nn.Module's public attributes and the compiled model's own (nasflow.compile.supernet:
# Supernet); names starting with '_' are reserved too. Kept here, not read from those
# classes, so that validating a space needs no torch; tests/test_graph.py checks it is whole.
MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children",
    "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu",
    "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad"})
MODEL_ATTRIBUTES = frozenset({
    "arch", "graph", "weights", "named_weights", "arch_parameters", "weights_state_dict",
    "arch_state_dict", "relaxation", "mixed_op", "drop_path", "auxiliary", "eval_state_dict",
    "eval_parameters", "kernel_transforms"})


def reserved_name(name: str, top_level: bool) -> str | None:
    """What a node name clashes with, or None: `top_level` nodes become attributes of the
    compiled model, the others of a plain module."""
    if name.startswith("_"):
        return "a private attribute (names starting with '_' are reserved)"
    if top_level and name in MODEL_ATTRIBUTES:
        return f"the compiled model's own '{name}'"
    if name in MODULE_ATTRIBUTES:
        return f"torch.nn.Module's '{name}'"
    return None


@dataclass(frozen=True)
class Decision:
    """One architecture decision: a row of alpha (ops) or beta (inputs), maybe shared."""

    label: str
    kind: str  # "alpha" | "beta"
    options: tuple[str, ...]
    topk: int
    nodes: tuple[str, ...]
    never_derive: tuple[str, ...] = ()  # options the space says are never derived
    rank: str = "beta"  # beta: how its inputs rank ("beta", "alpha", "beta_alpha"; DenseNode.rank)
    values: tuple[int, ...] = ()  # a value decision's numbers (its options are their strings)


@dataclass(frozen=True)
class DepthAlias:
    """A stack whose count is a value decision: what reads the stack (its last instance's
    output) reads instance d-1's output when the count is d."""

    stack: str
    count: Sym
    outputs: tuple[str, ...]  # each instance's output node

    def output_at(self, depth: int) -> str:
        return self.outputs[depth - 1]


@dataclass
class Graph:
    """A space expanded and validated (`build_graph`): blocks and stacks inlined, every
    node's channels and size inferred, in topological order; what the compiler builds and
    what costs are counted on.

    Attributes:
        space: The space it was built from.
        nodes: Expanded node name -> node, in topological order.
        inputs: The input names.
        output: The output node's expanded name.
        decisions: Decision label -> decision (alpha, beta and value decisions).
        dag: The data flow as a networkx DiGraph.
    """

    space: Space
    nodes: dict[str, GNode]  # topological order
    inputs: list[str]
    output: str
    decisions: dict[str, Decision]
    dag: nx.DiGraph
    # Each stack node's expanded name -> the block of each of its instances, in order.
    stacks: dict[str, list[str]] = field(default_factory=dict)
    auxiliary: list[str] = field(default_factory=list)  # the auxiliary outputs, expanded names
    aux_only: frozenset[str] = frozenset()  # nodes only the auxiliary outputs read
    # Stacks of searched depth, by the node that reads as the stack (its last instance's output).
    depth_aliases: dict[str, DepthAlias] = field(default_factory=dict)

    @property
    def value_decisions(self) -> dict[str, Decision]:
        """The decisions that are numbers (`values:`), by label."""
        return {k: d for k, d in self.decisions.items() if d.kind == "value"}

    @property
    def is_derived(self) -> bool:
        """True when the space has no choices left (a derived architecture)."""
        return not self.decisions


def build_graph(space: Space, overrides: dict[str, int] | None = None, *,
                check_unused: bool = True, values: dict[str, int] | None = None) -> Graph:
    """Expand, infer and validate; raises SpaceError naming the node and the fix.

    A space with value decisions builds at their largest values, its numbers Syms
    (nasflow.space.values); `values` fixes some or all of them (the architecture they pick)."""
    if overrides:
        space = space.with_params(overrides)
    if values:
        space = space.fix_values(values)
    return _Builder(space, check_unused).build()


class _Scope:
    """What a node kind sees of the builder while expanding one node (kinds.ExpandContext)."""

    def __init__(self, builder: _Builder, path: str, loc: Loc, env: dict[str, int], res: Any) -> None:
        self.builder, self.path, self.loc, self.env, self._res = builder, path, loc, env, res

    def fail(self, loc: Loc, message: str) -> SpaceError:
        return self.builder.fail(loc, message)

    def resolve(self, ref: str, loc: Loc) -> str:
        return self._res(ref, loc)

    def op_args(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        return self.builder.op_args(op, args, self.env, self.loc, self.path)

    def int(self, expr: int | str, loc: Loc, what: str) -> int:
        return self.builder._int(expr, self.env, loc, what)


class _Builder:
    def __init__(self, space: Space, check_unused: bool = True) -> None:
        self.space = space
        self.check_unused = check_unused
        self.nodes: dict[str, GNode] = {}
        self.imports = SpaceImports()
        self.stacks: dict[str, list[str]] = {}
        self.instance_outputs: dict[str, str] = {}  # stack instance -> the node that is its output
        self.top_env: dict[str, int] = {}  # the space's params and value decisions
        self.exists: int = 1  # whether nodes expanded now exist (a Sym inside a searched depth)
        self.depth_aliases: dict[str, DepthAlias] = {}
        self.max_nodes = limits.value("nodes")  # checked as nodes are expanded (nasflow.limits)
        self.max_block_depth = limits.value("block_depth")

    def fail(self, loc: Loc, message: str) -> SpaceError:
        return SpaceError(message, self.space.source.where(loc))

    # --- expansion -------------------------------------------------------------------
    def build(self) -> Graph:
        s = self.space
        self.imports = import_space_modules(s)
        for name in s.params:
            self._check_name(name, ("params", name), "param")
        env = dict(s.params)
        for name, vals in s.values.items():
            env[name] = self._value_decision(name, vals)
        self.top_env = dict(env)
        ports: dict[str, str] = {}
        for name, channels in s.inputs.items():
            self._check_name(name, ("inputs", name), "input")
            c = self._int(channels, env, ("inputs", name), f"input '{name}'")
            self.nodes[name] = GNode(name, "input", [], ("inputs", name), out=c, c_out=c)
            ports[name] = name
        self._expand_scope(s.nodes, env, "", ports, ("nodes",), stack=())
        aux = [self._resolve(a, s.nodes, "", ports, ("auxiliary", i), "an auxiliary output", env)
               for i, a in enumerate(s.auxiliary)]
        return self._finish(self._resolve(s.output, s.nodes, "", ports, ("output",), "the space's output", env),
                            aux)

    def _value_decision(self, name: str, vals: list[int]) -> Sym:
        loc = ("values", name)
        self._check_name(name, loc, "value decision")
        if name in self.space.params:
            raise self.fail(loc, f"'{name}' is both a param and a value decision; keep one of them")
        if not vals:
            raise self.fail(loc, f"value decision '{name}' lists no values; list at least one")
        if len(set(vals)) != len(vals):
            dup = next(v for v in vals if vals.count(v) > 1)
            raise self.fail(loc, f"value decision '{name}' lists {dup} twice")
        return Sym.decision(name, vals)

    def _expand_scope(self, nodes: dict[str, Node], env: dict[str, int], prefix: str,
                      ports: dict[str, str], loc: Loc, stack: tuple[str, ...]) -> None:
        for name in nodes:
            self._check_name(name, (*loc, name), "node")
            clash = reserved_name(name, top_level=not prefix)
            if clash is not None:
                raise self.fail((*loc, name), f"node '{prefix}{name}' is named like {clash}; nodes become "
                                f"attributes of the compiled model: rename it (e.g. '{name.strip('_')}_node')")
            if name in ports:
                raise self.fail((*loc, name), f"node '{prefix}{name}' has the name of an input; rename it")
            if isinstance(nodes[name], StackNode):
                self._check_instance_names(name, nodes, env, prefix, ports, (*loc, name))
        for name, node in nodes.items():
            nloc = (*loc, name)
            path = prefix + name
            res = lambda ref, field_loc, what=f"node '{path}'": self._resolve(  # noqa: E731
                ref, nodes, prefix, ports, field_loc, what, env)
            node_kind = kind(kind_of_data(node))
            if isinstance(node, StackNode):
                self._expand_stack(node, name, nodes, env, prefix, ports, nloc, stack)
                continue
            if node_kind.inline:
                self._expand_block(node.block, node.args, env, path,
                                   [res(r, (*nloc, "in")) for r in node.input_list], nloc, stack)
                continue
            g = GNode(path, node_kind.name, [], nloc, exists=self.exists)
            node_kind.expand(node, g, _Scope(self, path, nloc, env, res))
            g.act = getattr(node, "act", None)
            if g.act is not None and not is_activation(g.act):
                raise self.fail((*nloc, "act"), f"node '{path}': '{g.act}' is not an activation; "
                                + _suggest(g.act, [n for n in OPS if is_activation(n)]))
            out = getattr(node, "out", None)
            g.out = None if out is None else self._int(out, env, (*nloc, "out"), f"node '{path}'")
            self.nodes[path] = g
            self._check_size(nloc, 0)

    def _expand_block(self, name: str, args: dict[str, Any], env: dict[str, int], path: str,
                      sources: list[str], loc: Loc, stack: tuple[str, ...], check_ports: bool = True) -> None:
        blk = self._block(name, (*loc, "block"), path)
        if name in stack:
            raise self.fail((*loc, "block"), f"block '{name}' uses itself (through {' -> '.join(stack)}); blocks cannot recurse")
        if len(stack) >= self.max_block_depth:
            raise self.fail((*loc, "block"), _limit_message("block_depth", len(stack) + 1, f"node '{path}'"))
        if len(sources) != len(blk.inputs):
            raise self.fail((*loc, "in"), f"node '{path}': block '{name}' takes {len(blk.inputs)} "
                            f"input(s) ({', '.join(blk.inputs)}), got {len(sources)}")
        benv = self._block_env(name, args, env, path, loc)
        ports = dict(zip(blk.inputs, sources))
        bloc: Loc = ("blocks", name, "nodes")
        self._expand_scope(blk.nodes, benv, path + ".", ports, bloc, (*stack, name))
        if check_ports:
            self._check_ports_used(name, blk)

    def _block_env(self, name: str, args: dict[str, Any], env: dict[str, int], path: str, loc: Loc) -> dict[str, int]:
        """The params an instance of block `name` sees: the space's, then the block's own
        (from `args`, evaluated in the instance's scope `env`, or their defaults)."""
        blk = self._block(name, (*loc, "block"), path)
        unknown = sorted(set(args) - set(blk.params))
        if unknown:
            raise self.fail((*loc, "args"), f"node '{path}': block '{name}' has no param '{unknown[0]}' "
                            + _suggest(unknown[0], list(blk.params)))
        benv = dict(self.top_env)  # blocks see the space's params and values, then their own
        for pname, default in blk.params.items():
            if pname in args:
                benv[pname] = self._int(args[pname], env, (*loc, "args", pname), f"node '{path}'")
            elif default is not None:
                benv[pname] = self._int(default, benv, ("blocks", name, "params", pname), f"block '{name}'")
            else:
                raise self.fail((*loc, "args"), f"node '{path}': block '{name}' needs param '{pname}'; "
                                f"add it under args")
        return benv

    def _check_ports_used(self, name: str, blk: Block) -> None:
        refs = _block_refs(blk)
        for port in blk.inputs:
            if port not in refs:
                raise self.fail(("blocks", name, "inputs"), f"block '{name}': input '{port}' is never used; "
                                "use it or remove it")

    # --- stacks ------------------------------------------------------------------------
    def _stack_call(self, fn: Any, loc: Loc, path: str, *args: Any) -> Any:
        """A nasflow.space.stack function, its problems as one error at file:line."""
        try:
            return fn(*args)
        except stacks.StackProblem as exc:
            raise self.fail((*loc, *exc.where), f"stack node '{path}': {exc.message}") from None

    def _instance(self, node: StackNode, i: int, env: dict[str, int], path: str, loc: Loc) -> tuple[str, dict[str, int]]:
        """Instance i's block and scope."""
        ienv = self._stack_call(stacks.instance_env, loc, path, node, env, i)
        return self._stack_call(stacks.instance_block, loc, path, node, ienv), ienv

    def _check_instance_names(self, name: str, nodes: dict[str, Node], env: dict[str, int], prefix: str,
                              ports: dict[str, str], loc: Loc) -> None:
        n = self._stack_call(stacks.count, loc, prefix + name, nodes[name], env)
        self._check_size(loc, int(n))
        for i in range(n):
            inst = stacks.instance_name(name, i)
            if inst in nodes or inst in ports:
                raise self.fail(loc, f"stack node '{prefix}{name}' names its instance {i} '{prefix}{inst}', "
                                f"which is also a {'node' if inst in nodes else 'input'}; rename one of them")
            clash = reserved_name(inst, top_level=not prefix)
            if clash is not None:
                raise self.fail(loc, f"stack node '{prefix}{name}': instance '{inst}' is named like {clash}; rename the stack")

    def _expand_stack(self, node: StackNode, name: str, nodes: dict[str, Node], env: dict[str, int],
                      prefix: str, ports: dict[str, str], loc: Loc, stack: tuple[str, ...]) -> None:
        path = prefix + name
        n = self._stack_call(stacks.count, loc, path, node, env)
        self._check_size(loc, int(n))  # before expanding: a stack of 1e8 instances never returned
        used: list[str] = []
        outer = self.exists
        for i in range(n):
            if isinstance(n, Sym):  # a searched depth: instance i exists while i < the count
                self.exists = combine([outer, apply(n, lambda c, i=i: int(i < c))], lambda a, b: a * b)
            block_name, ienv = self._instance(node, i, env, path, loc)
            inst = prefix + stacks.instance_name(name, i)
            sources = [self._stack_input(node, name, i, r, nodes, prefix, ports, (*loc, "in", j), env, ienv, path)
                       for j, r in enumerate(node.input_list)]
            self._expand_block(block_name, node.args, ienv, inst, sources, loc, stack, check_ports=False)
            self.instance_outputs[inst] = self._block_output(block_name, node.args, ienv, inst, lambda: sources,
                                                             loc, f"stack node '{path}'")
            used.append(block_name)
        self.exists = outer
        self.stacks[path] = used
        if isinstance(n, Sym):
            outs = tuple(self.instance_outputs[prefix + stacks.instance_name(name, k)] for k in range(n))
            if any(not o.startswith(prefix + stacks.instance_name(name, k) + ".") for k, o in enumerate(outs)):
                raise self.fail(loc, f"stack node '{path}': its depth is searched ({n.describe()}), so its "
                                "block's output must be one of the block's nodes, not an input passed through")
            self.depth_aliases[outs[-1]] = DepthAlias(path, n, outs)
        # A stacked block may leave an input unused (a derived cell that reads only its
        # second input), as long as one of the blocks the stack may use reads each input.
        may_use = list(dict.fromkeys([*used, *(b for b in stacks.block_names(node) if b in self.space.blocks)]))
        for j, ref in enumerate(node.input_list):
            if not any(j < len(self.space.blocks[b].inputs)
                       and self.space.blocks[b].inputs[j] in _block_refs(self.space.blocks[b]) for b in may_use):
                raise self.fail((*loc, "in", j), f"stack node '{path}': input {j} ({ref!r}) is read by none of "
                                f"its blocks ({', '.join(may_use)}); remove it")

    def _stack_input(self, node: StackNode, name: str, i: int, ref: str, nodes: dict[str, Node], prefix: str,
                     ports: dict[str, str], loc: Loc, env: dict[str, int], ienv: dict[str, int], path: str) -> str:
        """What instance i reads for one of its inputs: an earlier instance, or a node. The
        reference is evaluated in the instance's scope `ienv`, what it names lives in `env`."""
        target, index = self._parse_ref(ref, ienv, loc, f"stack node '{path}'")
        if target == name:
            if index is None:
                raise self.fail(loc, f"stack node '{path}' reads itself; read an earlier instance, {name}[i - 1]")
            if not 0 <= index < i:
                have = f"0..{i - 1}" if i else "none yet"
                raise self.fail(loc, f"stack node '{path}': instance {i} reads {name}[{index}]; an instance reads "
                                f"only earlier ones ({have}): guard it, e.g. \"{name}[i - 1] if i >= 1 else stem\"")
        return self._resolve_name(target, index, ref, nodes, prefix, ports, loc,
                                  f"stack node '{path}' (instance {i})", env, own=target == name)

    def _parse_ref(self, ref: str, env: dict[str, int], loc: Loc, what: str) -> tuple[str, int | None]:
        if is_plain_name(ref):
            return ref, None
        try:
            return evaluate_ref(ref, env)
        except ExprError as exc:
            raise self.fail(loc, f"{what}: {exc}") from None

    def _block(self, name: str, loc: Loc, path: str) -> Block:
        if name not in self.space.blocks:
            raise self.fail(loc, f"node '{path}': unknown block '{name}' " + _suggest(name, list(self.space.blocks)))
        return self.space.blocks[name]

    def _resolve(self, ref: str, nodes: dict[str, Node], prefix: str, ports: dict[str, str],
                 loc: Loc, what: str, env: dict[str, int]) -> str:
        """Expanded name a local reference points at (a block instance means its output,
        a stack its last instance's, `cell[k]` instance k's); `env`: the scope's values."""
        name, index = self._parse_ref(ref, env, loc, what)
        return self._resolve_name(name, index, ref, nodes, prefix, ports, loc, what, env)

    def _resolve_name(self, name: str, index: int | None, ref: str, nodes: dict[str, Node], prefix: str,
                      ports: dict[str, str], loc: Loc, what: str, env: dict[str, int], own: bool = False) -> str:
        """`own`: the stack's instances read one another (they exist together)."""
        if name in nodes:
            node = nodes[name]
            if isinstance(node, StackNode):
                return self._resolve_instance(node, name, index, nodes, prefix, ports, loc, what, env, own)
            if index is not None:
                raise self.fail(loc, f"{what} reads {ref!r}, but '{name}' is no stack: only a stack's "
                                f"instances are numbered; read it as '{name}'")
            if isinstance(node, BlockNode):
                sources = lambda: [self._resolve(r, nodes, prefix, ports, loc, what, env)  # noqa: E731
                                   for r in node.input_list]
                return self._block_output(node.block, node.args, env, prefix + name, sources, loc, what)
            return prefix + name
        if index is None and name in ports:
            return ports[name]
        said = f"'{ref}'" if ref == name else f"{ref!r}, but '{name}'"
        raise self.fail(loc, f"{what} reads {said}, which is not defined " + _suggest(name, [*nodes, *ports]))

    def _resolve_instance(self, node: StackNode, name: str, index: int | None, nodes: dict[str, Node],
                          prefix: str, ports: dict[str, str], loc: Loc, what: str, env: dict[str, int],
                          own: bool = False) -> str:
        path = prefix + name
        n = self._stack_call(stacks.count, loc, path, node, env)
        k = int(n) - 1 if index is None else index  # a searched depth: its largest (what aliases it)
        if not 0 <= k < n:
            raise self.fail(loc, f"{what} reads {name}[{index}], but stack '{path}' has instances 0..{n - 1} "
                            f"(stack: {node.stack})")
        if index is not None and not own and index >= smallest(n):
            raise self.fail(loc, f"{what} reads {name}[{index}], but stack '{path}' has a searched depth "
                            f"({n.describe()}) and may have only {smallest(n)} instance(s); read an instance "
                            f"below {smallest(n)}, or the stack itself ('{name}': its last instance)")
        block_name, ienv = self._instance(node, k, env, path, loc)
        sources = lambda: [self._resolve(r, nodes, prefix, ports, loc, what, ienv)  # noqa: E731
                           for r in node.input_list]
        inst = prefix + stacks.instance_name(name, k)
        return self._block_output(block_name, node.args, ienv, inst, sources, loc, what)

    def _block_output(self, name: str, args: dict[str, Any], env: dict[str, int], path: str,
                      sources: Callable[[], list[str]], loc: Loc, what: str) -> str:
        """The expanded name of the output of block `name`'s instance at `path` (`sources`:
        what the instance reads, needed only when the block passes an input through)."""
        blk = self._block(name, loc, path)
        if blk.output in blk.inputs:
            return sources()[blk.inputs.index(blk.output)]
        if blk.output not in blk.nodes:
            raise self.fail(("blocks", name, "output"), f"block '{name}': output "
                            f"'{blk.output}' is not one of its nodes " + _suggest(blk.output, list(blk.nodes)))
        inner = blk.nodes[blk.output]
        benv = self._block_env(name, args, env, path, loc) if isinstance(inner, (BlockNode, StackNode)) else {}
        return self._resolve(blk.output, blk.nodes, f"{path}.", {}, loc, what, benv)

    def op_args(self, op: str, args: dict[str, Any], env: dict[str, int], loc: Loc, path: str) -> dict[str, Any]:
        if not find_op(op):
            raise self.fail(loc, f"node '{path}': {OPS.unknown_message(op)}{self.imports.unknown_op_hint()}")
        spec = OPS.get(op)
        out: dict[str, Any] = {}
        for key, value in args.items():
            if key not in spec.args:
                raise self.fail((*loc, "args", key), f"node '{path}': op '{op}' has no argument '{key}' "
                                + _suggest(key, list(spec.args)))
            default = spec.args[key]
            if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, str):
                value = self._int(value, env, (*loc, "args", key), f"node '{path}'")
            out[key] = value
        return out  # unbound: each candidate of a choice fills in its own defaults

    def _int(self, expr: int | str, env: dict[str, int], loc: Loc, what: str) -> int:
        try:
            value = evaluate(expr, env)
        except ExprError as exc:
            raise self.fail(loc, f"{what}: {exc}") from None
        if smallest(value) <= 0:
            raise self.fail(loc, f"{what}: {expr!r} evaluates to {smallest(value)}"
                            f"{' at some values' if isinstance(value, Sym) else ''}; channels must be positive")
        return value

    def _check_size(self, loc: Loc, more: int) -> None:
        """The nodes limit, before `more` nodes are expanded."""
        if len(self.nodes) + more > self.max_nodes:
            raise self.fail(loc, _limit_message("nodes", len(self.nodes) + more, f"space '{self.space.name}'"))

    def _check_name(self, name: str, loc: Loc, what: str) -> None:
        if not _NAME.match(str(name)):
            raise self.fail(loc, f"{what} name '{name}' must be an identifier (letters, digits, _)")

    # --- graph-wide checks and inference ------------------------------------------------
    def _finish(self, output: str, aux: list[str]) -> Graph:
        dag = nx.DiGraph()
        for g in self.nodes.values():
            dag.add_node(g.name)
            for src in g.inputs:
                dag.add_edge(src, g.name)
        try:
            cycle = nx.find_cycle(dag)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            names = [a for a, _ in cycle] + [cycle[0][0]]
            first = self.nodes[names[0]]
            raise self.fail(first.loc, f"cycle: {' -> '.join(names)}; a space must be a DAG")
        main = nx.ancestors(dag, output) | {output}
        reach = main.union(*(nx.ancestors(dag, a) | {a} for a in aux))
        # A stack builds every instance, even one whose output nothing reads (a derived cell
        # that drops the input its predecessor fed): like an unused cell of a written-out
        # network in the reference code, it is computed and counted, not an error.
        dead = tuple(inst + "." for inst, out in self.instance_outputs.items() if out not in reach)
        for g in self.nodes.values():
            if g.name not in reach and self.check_unused and not g.name.startswith(dead):
                what = "input" if g.kind == "input" else "node"
                raise self.fail(g.loc, f"{what} '{g.name}' is never used on the way to the output "
                                f"'{output}'; connect it or remove it")
        position = {n: i for i, n in enumerate(self.nodes)}  # not list.index: O(n^2) on 20,000 nodes
        order = list(nx.lexicographical_topological_sort(dag, key=position.__getitem__))
        ordered = {n: self.nodes[n] for n in order}
        for g in ordered.values():
            if g.kind != "input":
                self._infer(g, ordered)
        aux_only = frozenset(reach - main - set(self.space.inputs))
        if self.space.values:
            self._check_values(ordered)
        return Graph(self.space, ordered, list(self.space.inputs), output, self._decisions(ordered), dag,
                     self.stacks, aux, aux_only, self.depth_aliases)

    def _check_values(self, nodes: dict[str, GNode]) -> None:
        """What value decisions must keep: weights fit at the largest values, nothing reads a
        node a searched depth removes, a searched depth's instances give one shape."""
        for g in nodes.values():
            for what, x in [("channels", g.c_out), *((f"argument '{k}'", v) for k, v in g.args.items())]:
                if not largest_at_top(x):
                    raise self.fail(g.loc, f"node '{g.name}': its {what} {x.describe()} are not largest at the "
                                    "decisions' largest values; the supernet holds each weight at those: "
                                    "write the expression so that it grows with the values")
            for src in g.inputs:
                if src in self.depth_aliases:
                    continue
                gone = combine([g.exists, nodes[src].exists], lambda a, b: int(a and not b))
                if isinstance(gone, Sym) and any(gone.values):
                    raise self.fail(g.loc, f"node '{g.name}' reads '{src}', which a searched depth "
                                    f"({', '.join(gone.deps)}) removes while '{g.name}' stays; read the stack "
                                    "itself or an instance every depth keeps")
        for alias in self.depth_aliases.values():
            outs = [nodes[o] for o in alias.outputs[smallest(alias.count) - 1:]]
            if not all(same(o.c_out, outs[0].c_out) and o.size == outs[0].size for o in outs):
                detail = ", ".join(f"{o.name}: {_width(o.c_out)}" for o in outs)
                raise self.fail(nodes[alias.outputs[-1]].loc, f"stack '{alias.stack}' has a searched depth, but "
                                f"its instances' outputs may differ in shape ({detail}); what reads the "
                                "stack needs one shape at every depth and value")

    def _infer(self, g: GNode, nodes: dict[str, GNode]) -> None:
        srcs = [nodes[i] for i in g.inputs]
        g.c_in = [s.c_out for s in srcs]
        sizes = {s.size for s in srcs}
        if len(sizes) > 1:
            detail = ", ".join(f"{s.name} at x{s.size}" for s in srcs)
            raise self.fail(g.loc, f"node '{g.name}' mixes inputs of different sizes ({detail})")
        g.size = srcs[0].size
        kind(g.kind).infer(g, srcs, self)
        checked_inferred(g.kind, g)

    def _decisions(self, nodes: dict[str, GNode]) -> dict[str, Decision]:
        found = self._node_decisions(nodes)
        for name, vals in self.space.values.items():  # after the others: their order is unchanged
            readers = tuple(g.name for g in nodes.values()
                            if name in deps_of(g.c_in, g.c_out, g.args, g.exists))
            if not readers:
                raise self.fail(("values", name), f"value decision '{name}' is read by no node; use it "
                                "(out: {name}, args, a stack's count) or remove it".replace("{name}", name))
            if name in found:
                raise self.fail(("values", name), f"'{name}' labels both a value decision and node "
                                f"'{found[name].nodes[0]}'; rename one of them")
            found[name] = Decision(name, "value", tuple(str(v) for v in vals), 1, readers, values=tuple(vals))
        return found

    def _node_decisions(self, nodes: dict[str, GNode]) -> dict[str, Decision]:
        found: dict[str, Decision] = {}
        for g in nodes.values():
            if g.label is None:
                continue
            decision = kind(g.kind).decision
            if decision is None:
                raise self.fail(g.loc, f"node '{g.name}': a {g.kind} node reads no decision, so it takes no label")
            options, never, rank = tuple(g.candidates), tuple(g.never_derive), g.extra.get("rank", "beta")
            prev = found.get(g.label)
            if prev is not None:
                if (prev.kind, prev.options, prev.topk, prev.never_derive, prev.rank) != (decision, options, g.topk, never, rank):
                    raise self.fail(g.loc, f"node '{g.name}' shares label '{g.label}' with '{prev.nodes[0]}' "
                                    "but not the same candidates; give it its own label")
                found[g.label] = Decision(g.label, decision, options, g.topk, (*prev.nodes, g.name), never, rank)
            else:
                found[g.label] = Decision(g.label, decision, options, g.topk, (g.name,), never, rank)
        return found


def _limit_message(name: str, n: int, subject: str) -> str:
    try:
        limits.check(name, n, subject, at_least=True)
    except limits.LimitError as exc:
        return str(exc)
    raise AssertionError(name)  # pragma: no cover - only called over the limit


def _refs(node: Node) -> list[str]:
    """The names a node may read (a reference expression counts each name it mentions)."""
    name = kind_of_data(node)
    return [ref for r in checked_refs(str(name), kind(name).refs(node)) for ref in ref_names(r)]


def _block_refs(blk: Block) -> set[str]:
    """Every name a block's nodes and output read."""
    return {r for n in blk.nodes.values() for r in _refs(n)} | {blk.output}


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=2)
    if close:
        return f"(did you mean {' or '.join(repr(c) for c in close)}?)"
    return f"(known: {', '.join(known)})" if known else ""


def _width(c: int) -> str:
    """A width for an error: a searched one names what it reads ("16 (from W0)")."""
    return f"{int(c)} (from {', '.join(c.deps)})" if isinstance(c, Sym) else str(c)
