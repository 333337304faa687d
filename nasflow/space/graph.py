"""Expand a space into a flat networkx DAG, infer channels and sizes, and validate it.

Everything that can be wrong with a space is found here, before any tensor exists: cycles,
unknown ops or blocks, undefined or unused inputs, channel mismatches, empty choices, topk
larger than the candidates, bad expressions, duplicate names. Block instances expand to
dotted names (`cell1.m1`); a reference to a block instance means its output node.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import networkx as nx

from nasflow.errors import SpaceError
from nasflow.space.expr import ExprError, evaluate
from nasflow.ops.registry import OPS, find_op, is_activation
from nasflow.space.imports import SpaceImports, import_space_modules
from nasflow.space.kinds import kind, kind_of_data
from nasflow.space.node import GNode
from nasflow.space.schema import Block, BlockNode, Node, Space
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
    "arch_state_dict", "relaxation", "mixed_op"})


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


@dataclass
class Graph:
    space: Space
    nodes: dict[str, GNode]  # topological order
    inputs: list[str]
    output: str
    decisions: dict[str, Decision]
    dag: nx.DiGraph

    @property
    def is_derived(self) -> bool:
        """True when the space has no choices left (a derived architecture)."""
        return not self.decisions


def build_graph(space: Space, overrides: dict[str, int] | None = None, *,
                check_unused: bool = True) -> Graph:
    """Expand, infer and validate; raises SpaceError naming the node and the fix."""
    if overrides:
        space = space.with_params(overrides)
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

    def fail(self, loc: Loc, message: str) -> SpaceError:
        return SpaceError(message, self.space.source.where(loc))

    # --- expansion -------------------------------------------------------------------
    def build(self) -> Graph:
        s = self.space
        self.imports = import_space_modules(s)
        for name in s.params:
            self._check_name(name, ("params", name), "param")
        env = dict(s.params)
        ports: dict[str, str] = {}
        for name, channels in s.inputs.items():
            self._check_name(name, ("inputs", name), "input")
            c = self._int(channels, env, ("inputs", name), f"input '{name}'")
            self.nodes[name] = GNode(name, "input", [], ("inputs", name), out=c, c_out=c)
            ports[name] = name
        self._expand_scope(s.nodes, env, "", ports, ("nodes",), stack=())
        return self._finish(self._resolve(s.output, s.nodes, "", ports, ("output",), "the space's output"))

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
        for name, node in nodes.items():
            nloc = (*loc, name)
            path = prefix + name
            res = lambda ref, field_loc, what=f"node '{path}'": self._resolve(  # noqa: E731
                ref, nodes, prefix, ports, field_loc, what)
            node_kind = kind(kind_of_data(node))
            if node_kind.inline:
                self._expand_block(node, env, path, [res(r, (*nloc, "in")) for r in node.input_list],
                                   nloc, stack)
                continue
            g = GNode(path, node_kind.name, [], nloc)
            node_kind.expand(node, g, _Scope(self, path, nloc, env, res))
            g.act = getattr(node, "act", None)
            if g.act is not None and not is_activation(g.act):
                raise self.fail((*nloc, "act"), f"node '{path}': '{g.act}' is not an activation; "
                                + _suggest(g.act, [n for n in OPS if is_activation(n)]))
            out = getattr(node, "out", None)
            g.out = None if out is None else self._int(out, env, (*nloc, "out"), f"node '{path}'")
            self.nodes[path] = g

    def _expand_block(self, node: BlockNode, env: dict[str, int], path: str, sources: list[str],
                      loc: Loc, stack: tuple[str, ...]) -> None:
        blk = self._block(node.block, (*loc, "block"), path)
        if node.block in stack:
            raise self.fail((*loc, "block"), f"block '{node.block}' uses itself (through {' -> '.join(stack)}); blocks cannot recurse")
        if len(sources) != len(blk.inputs):
            raise self.fail((*loc, "in"), f"node '{path}': block '{node.block}' takes {len(blk.inputs)} "
                            f"input(s) ({', '.join(blk.inputs)}), got {len(sources)}")
        unknown = sorted(set(node.args) - set(blk.params))
        if unknown:
            raise self.fail((*loc, "args"), f"node '{path}': block '{node.block}' has no param '{unknown[0]}' "
                            + _suggest(unknown[0], list(blk.params)))
        benv = dict(self.space.params)  # blocks see the space's params, then their own
        for pname, default in blk.params.items():
            if pname in node.args:
                benv[pname] = self._int(node.args[pname], env, (*loc, "args", pname), f"node '{path}'")
            elif default is not None:
                benv[pname] = self._int(default, benv, ("blocks", node.block, "params", pname), f"block '{node.block}'")
            else:
                raise self.fail((*loc, "args"), f"node '{path}': block '{node.block}' needs param '{pname}'; "
                                f"add it under args")
        ports = dict(zip(blk.inputs, sources))
        bloc: Loc = ("blocks", node.block, "nodes")
        self._expand_scope(blk.nodes, benv, path + ".", ports, bloc, (*stack, node.block))
        self._check_ports_used(node.block, blk)

    def _check_ports_used(self, name: str, blk: Block) -> None:
        refs: set[str] = set()
        for n in blk.nodes.values():
            refs.update(_refs(n))
        refs.add(blk.output)
        for port in blk.inputs:
            if port not in refs:
                raise self.fail(("blocks", name, "inputs"), f"block '{name}': input '{port}' is never used; "
                                "use it or remove it")

    def _block(self, name: str, loc: Loc, path: str) -> Block:
        if name not in self.space.blocks:
            raise self.fail(loc, f"node '{path}': unknown block '{name}' " + _suggest(name, list(self.space.blocks)))
        return self.space.blocks[name]

    def _resolve(self, ref: str, nodes: dict[str, Node], prefix: str, ports: dict[str, str],
                 loc: Loc, what: str) -> str:
        """Expanded name a local reference points at (a block instance means its output)."""
        if ref in nodes:
            node = nodes[ref]
            if isinstance(node, BlockNode):
                blk = self._block(node.block, loc, prefix + ref)
                if blk.output in blk.inputs:
                    return self._resolve(blk.output, {}, "", dict(zip(blk.inputs, [
                        self._resolve(r, nodes, prefix, ports, loc, what) for r in node.input_list])), loc, what)
                if blk.output not in blk.nodes:
                    raise self.fail(("blocks", node.block, "output"), f"block '{node.block}': output "
                                    f"'{blk.output}' is not one of its nodes " + _suggest(blk.output, list(blk.nodes)))
                return self._resolve(blk.output, blk.nodes, f"{prefix}{ref}.", {}, loc, what)
            return prefix + ref
        if ref in ports:
            return ports[ref]
        raise self.fail(loc, f"{what} reads '{ref}', which is not defined "
                        + _suggest(ref, [*nodes, *ports]))

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
        if value <= 0:
            raise self.fail(loc, f"{what}: {expr!r} evaluates to {value}; channels must be positive")
        return value

    def _check_name(self, name: str, loc: Loc, what: str) -> None:
        if not _NAME.match(str(name)):
            raise self.fail(loc, f"{what} name '{name}' must be an identifier (letters, digits, _)")

    # --- graph-wide checks and inference ------------------------------------------------
    def _finish(self, output: str) -> Graph:
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
        reach = nx.ancestors(dag, output) | {output}
        for g in self.nodes.values():
            if g.name not in reach and self.check_unused:
                what = "input" if g.kind == "input" else "node"
                raise self.fail(g.loc, f"{what} '{g.name}' is never used on the way to the output "
                                f"'{output}'; connect it or remove it")
        order = list(nx.lexicographical_topological_sort(dag, key=lambda n: list(self.nodes).index(n)))
        ordered = {n: self.nodes[n] for n in order}
        for g in ordered.values():
            if g.kind != "input":
                self._infer(g, ordered)
        return Graph(self.space, ordered, list(self.space.inputs), output, self._decisions(ordered), dag)

    def _infer(self, g: GNode, nodes: dict[str, GNode]) -> None:
        srcs = [nodes[i] for i in g.inputs]
        g.c_in = [s.c_out for s in srcs]
        sizes = {s.size for s in srcs}
        if len(sizes) > 1:
            detail = ", ".join(f"{s.name} at x{s.size}" for s in srcs)
            raise self.fail(g.loc, f"node '{g.name}' mixes inputs of different sizes ({detail})")
        g.size = srcs[0].size
        kind(g.kind).infer(g, srcs, self)

    def _decisions(self, nodes: dict[str, GNode]) -> dict[str, Decision]:
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


def _refs(node: Node) -> list[str]:
    return kind(kind_of_data(node)).refs(node)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=2)
    if close:
        return f"(did you mean {' or '.join(repr(c) for c in close)}?)"
    return f"(known: {', '.join(known)})" if known else ""
