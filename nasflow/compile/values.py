"""Value decisions in the supernet: one weight at the largest value, each value a part of it.

A node whose channels, args or existence depend on value decisions (nasflow.space.values)
holds its module at the largest values. Each forward computes it in one of two ways:

- **exact** (every value decision has one active value: a sampled path, a sandwich step, a
  fixed subnet): the node runs at that value's own shapes, its weights sliced from the
  largest ones (the first output channels; the input channels its input occupies; the
  centre of a larger kernel), so tensors are only as wide as the values say and a removed
  stack instance is not run. The module built at those shapes is a template on the meta
  device, called with the slices (torch.func.functional_call); gradients reach the shared
  weights through the slices.
- **masked** (differentiable weights over values, FBNetV2): a node whose ops are
  `channelwise` runs once, at the largest values, with each weight multiplied by its
  expected mask: along a dim that a value shrinks, sum_v w_v * [1 where the value's module
  has that entry, 0 elsewhere] (the first channels; the centre of a kernel, so a searched
  kernel size is one conv with an effective kernel). Channels past a width carry whatever
  the node computes there, and every weight that reads them is masked to zero at that width,
  so with one-hot weights this is the subnet exactly; with soft weights, channel j counts as
  much as the probability that it exists. A node with another op runs once per value
  combination of weight > 0, sliced as in exact mode, its output zero-padded and weighted.
  What reads a stack of searched depth reads sum_d w_d * (instance d-1's output).

With one-hot weights both ways compute what the subnet that the values pick computes; the
derived model inherits the same slices (inherit_slice), so they agree with it exactly.

OFA's kernel transform (`kernel_transform=True`): a kernel-size value takes the centre of the
next larger kernel through a learned linear map of its entries (Once-for-All, section 3.2):
7x7 -> centre 5x5 -> times a 25 x 25 matrix -> 5x5 -> centre 3x3 -> times a 9 x 9 matrix. One
matrix per node and size pair, initialised to the identity (so it starts as the plain
centre), held in the supernet's `kernel_transforms` and trained with the weights; a derived
model inherits the transformed kernels.

Channel layout: a tensor's channels sit where the largest network has them. A node's own
output occupies its first c(v) channels; a concatenation keeps each part at its largest
offset (a part narrower than its largest leaves a gap), so a convolution reading it takes
the input columns of the parts' active channels. Only a plain convolution (an op of family
"conv") may read such a gapped input, which the compiler checks.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from nasflow.errors import NasflowError
from nasflow.ops.registry import OPS
from nasflow.space.graph import Graph
from nasflow.space.node import GNode
from nasflow.space.values import Assignment, at, deps_of

Segments = tuple[tuple[int, int], ...]  # (start, count) runs of active channels, in order


def prefix(n: int) -> Segments:
    return ((0, n),) if n else ()


def _join(parts: list[tuple[Segments, int]]) -> Segments:
    """Parts concatenated, each shifted by the largest widths before it; runs merged."""
    out: list[list[int]] = []
    offset = 0
    for segs, width in parts:
        for start, n in segs:
            if out and out[-1][0] + out[-1][1] == offset + start:
                out[-1][1] += n
            else:
                out.append([offset + start, n])
        offset += width
    return tuple((s, n) for s, n in out)


def is_prefix(segs: Segments) -> bool:
    return len(segs) <= 1 and (not segs or segs[0][0] == 0)


def _count(segs: Segments) -> int:
    return sum(n for _, n in segs)


def _index(segs: Segments, device: torch.device) -> Tensor:
    return torch.cat([torch.arange(s, s + n, device=device) for s, n in segs])


def take_channels(x: Tensor, segs: Segments) -> Tensor:
    """The active channels (dim 1) of a tensor laid out at the largest widths."""
    if is_prefix(segs):
        return x if _count(segs) == x.shape[1] else x.narrow(1, 0, _count(segs))
    return x.index_select(1, _index(segs, x.device))


def pad_channels(x: Tensor, width: int) -> Tensor:
    """x with zero channels appended up to `width` (dim 1)."""
    if x.shape[1] == width:
        return x
    zeros = x.new_zeros((x.shape[0], width - x.shape[1], *x.shape[2:]))
    return torch.cat([x, zeros], dim=1)


Pairs = dict[tuple[int, int], Tensor]  # (larger, smaller) kernel side -> its transform matrix


def transform_key(node: str, big: int, small: int) -> str:
    """A kernel transform's name in the supernet's `kernel_transforms` (no '.' allowed)."""
    return f"{node.replace('.', '/')}/{big}to{small}"


def transformed_kernel(w: Tensor, size: int, pairs: Pairs) -> Tensor:
    """A 4-D kernel's centre of side `size`, each step from the side it has to the next
    smaller one its node has a transform for (OFA: centre, then times that matrix)."""
    side = w.shape[-1]
    while side > size:
        smaller = max((b for (a, b) in pairs if a == side and b >= size), default=None)
        if smaller is None:  # no transform from this side: the plain centre
            return w.narrow(2, (side - size) // 2, size).narrow(3, (side - size) // 2, size)
        c = w.narrow(2, (side - smaller) // 2, smaller).narrow(3, (side - smaller) // 2, smaller)
        w = (c.reshape(-1, smaller * smaller) @ pairs[(side, smaller)].t()).reshape(c.shape)
        side = smaller
    return w


def slice_like(t: Tensor, shape: torch.Size, in_segs: Segments | None, name: str, node: str,
               pairs: Pairs | None = None) -> Tensor:
    """The part of a weight (or buffer) held at the largest values that a module of `shape`
    uses: the first entries of each dim, the centre of a conv kernel (dims 2 and 3 of a 4-D
    tensor; transformed when `pairs` holds OFA's matrices), and on dim 1 the input channels
    `in_segs` when they are not the first ones."""
    if t.shape == shape:
        return t
    if t.dim() != len(shape) or any(m > big for m, big in zip(shape, t.shape)):
        raise NasflowError(f"node '{node}': '{name}' needs shape {tuple(shape)} at these values, which does not "
                           f"fit the supernet's {tuple(t.shape)} (held at the decisions' largest values)")
    out = t
    spatial = t.dim() == 4 and pairs and shape[2] == shape[3] and shape[2] < t.shape[2]
    for dim, (m, big) in enumerate(zip(shape, t.shape)):
        if m == big:
            continue
        if dim == 1 and in_segs is not None and not is_prefix(in_segs) and _count(in_segs) == m:
            out = out.index_select(1, _index(in_segs, t.device))
        elif t.dim() == 4 and dim >= 2:
            if not spatial:
                out = out.narrow(dim, (big - m) // 2, m)
        else:
            out = out.narrow(dim, 0, m)
    return transformed_kernel(out, shape[2], pairs) if spatial else out  # type: ignore[arg-type]


def concrete(g: GNode, a: Assignment) -> GNode:
    """Node g as the architecture `a` picks has it: every number an int."""
    return replace(g, c_in=[at(c, a) for c in g.c_in], c_out=at(g.c_out, a), out=at(g.out, a),
                   args={k: at(v, a) for k, v in g.args.items()}, exists=1)


def _ops_of(g: GNode) -> list[str]:
    if g.kind == "choice":
        return list(g.candidates)
    return [g.op] if g.op else []


def channelwise(g: GNode) -> bool:
    """Whether node g at the largest values, its weights masked to a smaller build's shapes,
    computes that build (its ops are channelwise, or it only merges its inputs)."""
    if g.kind == "combine" or (g.kind == "dense" and not g.op):
        return True
    if g.kind not in ("op", "choice", "dense"):
        return False
    return all(OPS.get(o).channelwise for o in _ops_of(g))


def _fresh(g: GNode) -> bool:
    """Whether node g's output is a tensor of its own (its first c_out channels), not its
    inputs' channels passed on (a merge, an op that keeps channels)."""
    if g.kind == "combine" or (g.kind == "dense" and not g.op):
        return False
    if g.kind == "op" and OPS.get(g.op).same_channels:
        return False
    return True


def _reads_gaps_ok(g: GNode) -> bool:
    """Whether node g may read an input whose active channels have gaps: a plain convolution."""
    ops = _ops_of(g)
    return bool(ops) and g.kind in ("op", "choice", "dense") and all(
        (OPS.get(o).family or ("",))[0] == "conv" for o in ops)


def layout(graph: Graph, name: str, a: Assignment) -> Segments:
    """Where node `name`'s active channels sit within its largest width, at the values `a`."""
    g = graph.nodes[name]
    if g.kind == "input" or _fresh(g):
        return prefix(at(g.c_out, a))
    if g.merge == "concat" and g.kind in ("combine", "dense"):
        return _join([(layout(graph, i, a), int(c)) for i, c in zip(g.inputs, g.c_in)])
    return layout(graph, g.inputs[0], a)


def in_layout(graph: Graph, g: GNode, a: Assignment, inputs: list[str] | None = None) -> Segments:
    """The active input channels g's weights read (a concatenating dense node: all its inputs,
    each at its largest offset); `inputs`: a derived node's inputs instead of g's."""
    inputs = g.inputs if inputs is None else inputs
    if not inputs:
        return prefix(at(g.c_out, a))
    if g.kind == "dense" and g.merge == "concat":
        return _join([(layout(graph, i, a), int(graph.nodes[i].c_out)) for i in inputs])
    return layout(graph, inputs[0], a)


class _Call(nn.Module):
    """Runs a node's kind on a template module (functional_call swaps in the weights)."""

    def __init__(self, kind: Any, module: nn.Module, g: GNode) -> None:
        super().__init__()
        self.kind, self.m, self.g = kind, module, g

    def forward(self, values: dict[str, Tensor], weights: dict[str, Tensor],
                active: dict[str, list[int]]) -> Tensor:
        return self.kind.run(self.m, self.g, values, weights, active)


@dataclass
class _Masks:
    """A node's weight masks: per weight, (dim, one row per value combination of `deps`)."""

    deps: tuple[str, ...]
    dims: dict[str, list[tuple[int, Tensor]]]
    call: _Call  # the node's own module, called with the masked weights
    sides: dict[str, list[int]]  # a kernel's side per value combination, where a value sizes it


@dataclass
class _Template:
    call: _Call
    g: GNode
    shapes: dict[str, torch.Size]  # each weight and buffer's shape at these values
    norms: list[tuple[nn.Module, nn.Module]] | None = None  # (template's, supernet's) BatchNorms

    def mirror(self, module: nn.Module) -> None:
        """The template as the supernet's module is now: train / eval (BatchNorm, dropout), and
        each BatchNorm's momentum (None while SPOS recomputes a path's statistics: the plain
        average over batches, which the template must take too)."""
        mine = self.call.m
        if mine.training != module.training:
            mine.train(module.training)
        if self.norms is None:  # found once: a node's module is the same object every forward
            self.norms = [(ours, theirs) for ours, theirs in zip(mine.modules(), module.modules())
                          if isinstance(ours, nn.modules.batchnorm._BatchNorm)]
        for ours, theirs in self.norms:
            if ours.momentum != theirs.momentum:
                ours.momentum = theirs.momentum  # type: ignore[assignment]


class ValuePlan:
    """How the supernet of `graph` computes the nodes that value decisions touch."""

    def __init__(self, graph: Graph, mixed_op: type[nn.Module]) -> None:
        self.graph, self.mixed_op = graph, mixed_op
        self.decisions = graph.value_decisions
        self.labels = list(self.decisions)
        self.nodes: dict[str, GNode] = {
            g.name: g for g in graph.nodes.values() if deps_of(g.c_in, g.c_out, g.args, g.exists)}
        self._templates: dict[tuple[str, tuple[int, ...]], _Template] = {}
        self._masks: dict[str, _Masks | None] = {}
        self._module_of: dict[str, nn.Module] = {}  # filled by the supernet (module_of)
        self.transforms: dict[str, Pairs] = {}  # node -> its kernel transforms (kernel_transform on)
        self.aliases = graph.depth_aliases
        low = {k: min(d.values) for k, d in self.decisions.items()}
        for g in self.nodes.values():  # a gapped input (a concat of narrower parts) needs a plain conv
            if g.kind != "input" and not is_prefix(self.in_layout(g, low)) and not _reads_gaps_ok(g):
                raise NasflowError(
                    f"node '{g.name}' reads a concatenation whose parts' widths are searched, which leaves "
                    f"gaps in its input channels; only a convolution (conv_kxk) can read that: put a conv_1x1 "
                    f"after the concatenation, or give its parts fixed widths")

    def modules(self, by_node: dict[str, nn.Module]) -> None:
        """The supernet's module of each node (their weights are the ones masked)."""
        self._module_of = by_node

    def transform_pairs(self, kinds: dict[str, Any]) -> dict[str, tuple[int, int]]:
        """The kernel transforms OFA's option needs: for every node whose kernels a value
        decision sizes, each (larger, next smaller) side, by transform_key."""
        out: dict[str, tuple[int, int]] = {}
        top = {k: max(d.values) for k, d in self.decisions.items()}
        for name, g in self.nodes.items():
            module = self._module_of.get(name)
            deps = sorted(deps_of(g.c_in, g.c_out, g.args))
            if module is None or not deps or not any(p.dim() == 4 for p in module.parameters()):
                continue
            sides: set[int] = set()
            for c in itertools.product(*(self.decisions[d].values for d in deps)):
                shapes = self._template(g, kinds[name], {**top, **dict(zip(deps, c))}).shapes
                sides |= {s[2] for s in shapes.values() if len(s) == 4 and s[2] == s[3]}
            ordered = sorted(sides, reverse=True)
            for big, small in zip(ordered, ordered[1:]):
                out[transform_key(name, big, small)] = (big, small)
        return out

    def use_transforms(self, params: nn.ParameterDict, pairs: dict[str, tuple[int, int]]) -> None:
        """Kernel-size values read their kernels through these matrices (OFA)."""
        for key, (big, small) in pairs.items():
            node = key.rsplit("/", 1)[0].replace("/", ".")
            self.transforms.setdefault(node, {})[(big, small)] = params[key]

    # --- which way ------------------------------------------------------------------------
    def assignment(self, weights: dict[str, Tensor], active: dict[str, list[int]]) -> dict[str, int] | None:
        """The values of an exact forward (each value decision has one active value), else None."""
        if not active or any(len(active.get(k, ())) != 1 for k in self.labels):
            return None
        return {k: self.decisions[k].values[active[k][0]] for k in self.labels}

    def layout(self, name: str, a: Assignment) -> Segments:
        return layout(self.graph, name, a)

    def in_layout(self, g: GNode, a: Assignment) -> Segments:
        return in_layout(self.graph, g, a)

    # --- exact: one value per decision ------------------------------------------------------
    def exists(self, name: str, a: Assignment) -> bool:
        return bool(at(self.nodes[name].exists, a)) if name in self.nodes else True

    def run_exact(self, g: GNode, module: nn.Module, kind: Any, values: dict[str, Tensor],
                  weights: dict[str, Tensor], active: dict[str, list[int]], a: Assignment) -> Tensor:
        """Node g at the values `a`, on inputs as narrow as they say."""
        out = self._sliced(g, module, kind, values, weights, active, a)
        for label in self._own_deps(g):  # a strategy's gradient to the value's weight
            w = weights[label]
            if w.requires_grad:
                out = out * w[self.decisions[label].values.index(a[label])]
        return out

    def _own_deps(self, g: GNode) -> set[str]:
        return deps_of(g.args, g.c_out if _fresh(g) else 0)

    def _sliced(self, g: GNode, module: nn.Module, kind: Any, values: dict[str, Tensor],
                weights: dict[str, Tensor], active: dict[str, list[int]], a: Assignment) -> Tensor:
        t = self._template(g, kind, a)
        if not t.shapes:  # no weights: its module works at any width
            return kind.run(module, t.g, values, weights, active)
        t.mirror(module)
        segs = self.in_layout(g, a)
        own = _tensors(module)
        pairs = self.transforms.get(g.name)
        sliced = {f"m.{n}": slice_like(own[n], shape, segs, n, g.name, pairs) for n, shape in t.shapes.items()}
        return functional_call(t.call, sliced, (values, weights, active))

    def _template(self, g: GNode, kind: Any, a: Assignment) -> _Template:
        deps = sorted(deps_of(g.c_in, g.c_out, g.args))
        key = (g.name, tuple(a[d] for d in deps))
        found = self._templates.get(key)
        if found is None:
            ga = concrete(g, a)
            with torch.device("meta"), torch.random.fork_rng(devices=[]):
                module = kind.build(ga, self.mixed_op)
            shapes = {n: p.shape for n, p in module.named_parameters()}
            shapes.update({n: b.shape for n, b in module.named_buffers()})
            found = self._templates[key] = _Template(_Call(kind, module, ga), ga, shapes)
        return found

    # --- masked: weights over values ---------------------------------------------------------
    def run_masked(self, g: GNode, module: nn.Module, kind: Any, values: dict[str, Tensor],
                   weights: dict[str, Tensor], active: dict[str, list[int]]) -> Tensor:
        """Node g at the largest values, each weight masked by how likely each of its entries
        is to exist (or, for an op that is not channelwise, once per value and weighted)."""
        masks = self._weight_masks(g, kind)
        if masks is None:
            return kind.run(module, g, values, weights, active)  # no weights: nothing to mask
        if not channelwise(g):
            deps = sorted(deps_of(g.c_in, g.c_out, g.args))
            return self._weighted(g, module, kind, values, weights, active, deps)
        combo = _combo_weights([weights[d] for d in masks.deps])
        tensors: dict[str, Tensor] = {}
        pairs = self.transforms.get(g.name)
        for name, t in _tensors(module).items():
            for dim, rows in masks.dims.get(name, ()):
                if pairs and t.dim() == 4 and dim >= 2 and name in masks.sides:
                    continue  # OFA's transformed kernels, weighted below
                m = combo.to(t.dtype) @ rows.to(t.device, t.dtype)
                shape = [1] * t.dim()
                shape[dim] = -1
                t = t * m.view(shape)
            if pairs and t.dim() == 4 and name in masks.sides:  # sum_v w_v * (v's kernel, zero-padded)
                side, total = t.shape[-1], None
                for size in sorted(set(masks.sides[name])):
                    w = sum(combo[r] for r, s in enumerate(masks.sides[name]) if s == size)
                    k = transformed_kernel(t, size, pairs)
                    pad = (side - size) // 2
                    k = F.pad(k, (pad, pad, pad, pad)) if pad else k
                    total = w * k if total is None else total + w * k
                t = total  # type: ignore[assignment]
            tensors[f"m.{name}"] = t
        return functional_call(masks.call, tensors, (values, weights, active))

    def _weight_masks(self, g: GNode, kind: Any) -> _Masks | None:
        """Per weight of node g, per dim the values shrink: one mask row per value combination
        (itertools.product order of the node's decisions); None for a node without weights."""
        found = self._masks.get(g.name)
        if found is not None or g.name in self._masks:
            return found
        module = self._module_of[g.name]
        params = dict(module.named_parameters())
        if not params:
            self._masks[g.name] = None
            return None
        deps = sorted(deps_of(g.c_in, g.c_out, g.args))
        top = {k: max(d.values) for k, d in self.decisions.items()}
        combos = [dict(zip(deps, c)) for c in itertools.product(*(self.decisions[d].values for d in deps))]
        shapes = [self._template(g, kind, {**top, **c}).shapes for c in combos]
        layouts = [in_layout(self.graph, g, {**top, **c}) for c in combos]
        dims: dict[str, list[tuple[int, Tensor]]] = {}
        sides: dict[str, list[int]] = {}  # a 4-D weight's kernel side per combination, where it varies
        for name, t in params.items():
            if t.dim() == 4 and len({s[name][2] for s in shapes}) > 1:
                sides[name] = [s[name][2] for s in shapes]
            for dim, big in enumerate(t.shape):
                sizes = [s[name][dim] for s in shapes]
                if all(n == big for n in sizes):
                    continue
                rows = torch.zeros(len(combos), big)
                for r, (n, segs) in enumerate(zip(sizes, layouts)):
                    if dim == 1 and not is_prefix(segs) and _count(segs) == n:
                        for start, count in segs:  # the input channels its gapped input occupies
                            rows[r, start:start + count] = 1
                    elif t.dim() == 4 and dim >= 2:
                        rows[r, (big - n) // 2:(big - n) // 2 + n] = 1  # a kernel's centre
                    else:
                        rows[r, :n] = 1
                dims.setdefault(name, []).append((dim, rows))
        found = self._masks[g.name] = _Masks(tuple(deps), dims, _Call(kind, module, g), sides)
        return found

    def _weighted(self, g: GNode, module: nn.Module, kind: Any, values: dict[str, Tensor],
                  weights: dict[str, Tensor], active: dict[str, list[int]], deps: list[str]) -> Tensor:
        """sum over the value combinations of `deps` (weight > 0) of weight * the node there,
        at those values' widths (inputs cut to them, the output padded back)."""
        top = {k: max(d.values) for k, d in self.decisions.items()}
        total: Tensor | None = None
        for combo in itertools.product(*(range(len(self.decisions[d].values)) for d in deps)):
            w = None
            for d, j in zip(deps, combo):
                w = weights[d][j] if w is None else w * weights[d][j]
            if w is None or float(w.detach()) == 0.0:
                continue
            a = {**top, **{d: self.decisions[d].values[j] for d, j in zip(deps, combo)}}
            local = {i: take_channels(values[i], self.layout(i, a)) for i in g.inputs}
            out = pad_channels(self._sliced(g, module, kind, local, weights, active, a), int(g.c_out))
            total = w * out if total is None else total + w * out
        assert total is not None, "softmax weights are never all zero"
        return total

    # --- stacks of searched depth -------------------------------------------------------------
    def alias(self, name: str, values: dict[str, Tensor], weights: dict[str, Tensor],
              a: Assignment | None) -> None:
        """After node `name` ran: where it is what a stack of searched depth gives, store the
        stack's value under the name its readers read."""
        for last, alias in self.aliases.items():
            if a is not None:
                if alias.output_at(alias.count.at(a)) == name:
                    values[last] = values[name]
            elif name == last:
                total: Tensor | None = None
                for combo, depth in alias.count.table.items():
                    w = _combo_weights_at([weights[d] for d in alias.count.deps], combo, alias.count.domains)
                    v = w * values[alias.output_at(depth)]
                    total = v if total is None else total + v
                assert total is not None
                values[last] = total


def _tensors(module: nn.Module) -> dict[str, Tensor]:
    """A module's weights and buffers by name, read now (a probe may have swapped them)."""
    out: dict[str, Tensor] = dict(module.named_parameters())
    out.update(module.named_buffers())
    return out


def _combo_weights(ws: list[Tensor]) -> Tensor:
    """The weight of every value combination (itertools.product order), as one vector."""
    out = ws[0]
    for w in ws[1:]:
        out = (out[:, None] * w[None, :]).reshape(-1)
    return out


def _combo_weights_at(ws: list[Tensor], combo: tuple[int, ...], domains: tuple[tuple[int, ...], ...]) -> Tensor:
    out: Tensor | None = None
    for w, v, dom in zip(ws, combo, domains):
        x = w[dom.index(v)]
        out = x if out is None else out * x
    assert out is not None
    return out


def inherit_slice(supernet: Graph, node: str, inputs: list[str], key: str, tensor: Tensor,
                  shape: torch.Size, a: Assignment, transforms: dict[str, Tensor] | None = None) -> Tensor:
    """A supernet tensor of node `node` cut to a derived model's `shape` at the values `a`
    (`inputs`: the derived node's inputs, whose active channels its weights read);
    `transforms`: the supernet's kernel_transforms (OFA's option), by transform_key."""
    if tensor.shape == shape:
        return tensor
    prefix = node.replace(".", "/") + "/"
    pairs = {tuple(map(int, k[len(prefix):].split("to"))): v for k, v in (transforms or {}).items()
             if k.startswith(prefix) and "/" not in k[len(prefix):]}
    return slice_like(tensor, shape, in_layout(supernet, supernet.nodes[node], a, inputs), key, node,
                      pairs or None)  # type: ignore[arg-type]
