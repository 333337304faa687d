"""Compile a validated graph into a torch module: the supernet, or a plain derived model.

The same compiler builds both: a derived architecture is a space with no choices, so it
compiles to fixed ops only. Architecture parameters (alpha for choice nodes, beta for
dense nodes) live in their own submodule `arch`, keyed by decision label; `weights()` and
`arch_parameters()` split `parameters()` between them. State-dict names follow node names:
`cell1.m1.ops.sep_conv_3x3.1.weight`, `cell3_in.op.weight`, `arch.alpha.mrb1`.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasflow.compile.drop_path import drop_path, drop_path_nodes
from nasflow.compile.kinds import Combine, CompiledKind, DenseEdge, FixedOp, compiled_kind
from nasflow.compile.mixed_ops import MixedOp, get_mixed_op
from nasflow.compile.relaxation import Relaxation, active_candidates, checked_weights
from nasflow.compile.state import arch_key, is_arch, split_state
from nasflow.compile.values import ValuePlan
from nasflow.errors import NasflowError, SpaceError, hook_error
from nasflow.limits import check_memory
from nasflow.space.graph import Decision, GNode, Graph

__all__ = ["ArchParameters", "Combine", "DenseEdge", "FixedOp", "Supernet", "compile_graph"]


class ArchParameters(nn.Module):
    """alpha and beta, one vector per decision label, initialised like DARTS (1e-3 * N(0, 1));
    a value decision's logits (one per value) are `value`."""

    def __init__(self, decisions: dict[str, Decision]) -> None:
        super().__init__()
        self.alpha = nn.ParameterDict()
        self.beta = nn.ParameterDict()
        self.value = nn.ParameterDict()
        self.decisions = decisions
        for d in decisions.values():
            getattr(self, d.kind)[arch_key(d.label)] = nn.Parameter(1e-3 * torch.randn(len(d.options)))

    def logits(self, label: str) -> nn.Parameter:
        d = self.decisions[label]
        return getattr(self, d.kind)[arch_key(label)]

    def softmax(self) -> dict[str, Tensor]:
        return {label: F.softmax(self.logits(label), dim=-1) for label in self.decisions}


class Supernet(nn.Module):
    """Runs the graph's nodes in topological order; one module per node, at its path.

    `mixed_op` names the implementation of choice nodes in the MIXED_OPS registry: "plain"
    (every candidate separately, the default) or one registered elsewhere ("fused", by
    nasflow.accel: same parameters and state dict, fewer and larger kernels). `fuse` is the
    older spelling: True means "fused", False "plain".

    `relaxation` turns the arch parameters into decision weights on each forward (softmax
    unless a strategy installs another); see nasflow.compile.relaxation.

    `drop_path` (a probability, 0 by default) drops the branches of the sums inside blocks
    per sample while training; see nasflow.compile.drop_path.

    `kernel_transform`: a kernel-size value decision reads its kernel through OFA's learned
    transform of the larger kernel's centre (nasflow.compile.values), not the plain centre.

    `auxiliary`: build the space's auxiliary outputs (Space.auxiliary); in training mode the
    model then returns (output, *auxiliary). Off (the default), or in eval mode, the model
    is the one exported and evaluated; eval_state_dict() / eval_parameters() leave them out.
    """

    def __init__(self, graph: Graph, fuse: bool | None = None, mixed_op: str | None = None,
                 auxiliary: bool = False, kernel_transform: bool = False) -> None:
        super().__init__()
        if mixed_op is None:
            mixed_op = "fused" if fuse else "plain"
        elif fuse is not None and fuse != (mixed_op == "fused"):
            raise NasflowError(f"fuse={fuse} contradicts mixed_op='{mixed_op}'; give one of them")
        check_weights_fit(graph)
        self.graph = graph
        self.mixed_op = mixed_op
        self.relaxation: Relaxation = Relaxation()
        self.arch = ArchParameters(graph.decisions)
        # Each node's module, built and run by its kind (nasflow.compile.kinds).
        self._steps: list[tuple[GNode, nn.Module, CompiledKind]] = []
        mixed = get_mixed_op(mixed_op) if graph.decisions else MixedOp
        # Drop-path's probability (0: off; the train loop sets it); the nodes it acts on are
        # found on first use (nasflow.compile.drop_path).
        self.drop_path = 0.0
        self._droppable: frozenset[str] | None = None
        # The space's auxiliary outputs are built only when asked for (a training run's
        # `auxiliary`), and computed only in training mode.
        self.auxiliary = auxiliary and bool(graph.auxiliary)
        for g in graph.nodes.values():
            if g.kind == "input" or (g.name in graph.aux_only and not self.auxiliary):
                continue
            kind = compiled_kind(g.kind)
            module = kind.build(g, mixed)
            if not isinstance(module, nn.Module):
                raise hook_error(f"node kind '{g.kind}' build", f"a torch.nn.Module for node '{g.name}'", module)
            self._place(g.name, module)
            self._steps.append((g, module, kind))
        # Value decisions: the nodes they touch hold their weights at the largest values and
        # run sliced or masked (nasflow.compile.values).
        self._values: ValuePlan | None = ValuePlan(graph, mixed) if graph.value_decisions else None
        if self._values is not None:
            self._values.modules({g.name: module for g, module, _ in self._steps})
        # OFA's kernel transforms: weights (trained with them), one matrix per node and size pair.
        self.kernel_transforms: nn.ParameterDict | None = None
        if kernel_transform and self._values is not None:
            pairs = self._values.transform_pairs({g.name: kind for g, _, kind in self._steps})
            self.kernel_transforms = nn.ParameterDict(
                {k: nn.Parameter(torch.eye(small * small)) for k, (_, small) in pairs.items()})
            self._values.use_transforms(self.kernel_transforms, pairs)

    def _place(self, path: str, module: nn.Module) -> None:
        parent: nn.Module = self
        *scopes, leaf = path.split(".")
        for scope in scopes:
            if scope not in parent._modules:
                self._check_free(parent, scope, path)
                parent.add_module(scope, nn.Module())
            parent = getattr(parent, scope)
        self._check_free(parent, leaf, path)
        parent.add_module(leaf, module)

    def _check_free(self, parent: nn.Module, name: str, path: str) -> None:
        """Graph validation refuses the reserved names (nasflow.space.graph.reserved_name);
        this catches an attribute added to the model since, before it is silently replaced."""
        if hasattr(parent, name):
            where = self.graph.space.source.where(self.graph.nodes[path].loc)
            raise SpaceError(f"node '{path}': '{name}' is already an attribute of the compiled model; "
                             "rename the node (and add the name to nasflow.space.graph.MODEL_ATTRIBUTES)", where)

    # --- parameters --------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.arch.parameters())

    def weights(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch.parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if not is_arch(n))

    def weights_state_dict(self) -> dict[str, Tensor]:
        return split_state(self.state_dict())[0]

    def arch_state_dict(self) -> dict[str, Tensor]:
        return split_state(self.state_dict())[1]

    # --- forward -----------------------------------------------------------------------
    def eval_state_dict(self) -> dict[str, Tensor]:
        """state_dict() without the auxiliary outputs' modules: the weights of the network
        that is evaluated, exported and saved as a model."""
        aux = tuple(f"{name}." for name in self.graph.aux_only)
        return {k: v for k, v in self.state_dict().items() if not k.startswith(aux)} if aux else self.state_dict()

    def eval_parameters(self) -> list[nn.Parameter]:
        """parameters() without the auxiliary outputs' (what parameter counts count)."""
        aux = tuple(f"{name}." for name in self.graph.aux_only)
        return [p for n, p in self.named_parameters() if not (aux and n.startswith(aux))]

    def forward(self, *args: Tensor, **kwargs: Tensor) -> Tensor | tuple[Tensor, ...]:
        if len(args) > len(self.graph.inputs):
            raise NasflowError(f"model takes {len(self.graph.inputs)} input(s) "
                               f"({', '.join(self.graph.inputs)}), got {len(args)}; pass inputs by name")
        values: dict[str, Tensor] = dict(zip(self.graph.inputs, args), **kwargs)
        self._check_inputs(values)
        weights = (checked_weights(self.relaxation, self.graph.decisions, self.relaxation(self.arch))
                   if self.graph.decisions else {})
        # A sparse relaxation's zero weights name candidates that need not run at all.
        active = ({label: active_candidates(w) for label, w in weights.items()}
                  if self.relaxation.sparse else {})
        drop = self.drop_path if self.training else 0.0
        if drop > 0 and self._droppable is None:
            self._droppable = drop_path_nodes(self.graph)
        aux = self.auxiliary and self.training
        plan = self._values
        # One value per value decision (a sampled path): every node at those values' shapes.
        at = plan.assignment(weights, active) if plan is not None else None
        for g, module, kind in self._steps:
            if not aux and g.name in self.graph.aux_only:
                continue
            if plan is not None and g.name in plan.nodes:
                if at is not None:
                    if not plan.exists(g.name, at):
                        continue  # an instance past a searched depth
                    values[g.name] = plan.run_exact(g, module, kind, values, weights, active, at)
                else:
                    values[g.name] = plan.run_masked(g, module, kind, values, weights, active)
            else:
                values[g.name] = kind.run(module, g, values, weights, active)
            if drop > 0 and g.name in self._droppable:  # type: ignore[operator]
                values[g.name] = drop_path(values[g.name], drop)
            if plan is not None and plan.aliases:
                plan.alias(g.name, values, weights, at)
        if aux:
            return (values[self.graph.output], *(values[a] for a in self.graph.auxiliary))
        return values[self.graph.output]

    def _check_inputs(self, values: dict[str, Tensor]) -> None:
        missing = [n for n in self.graph.inputs if n not in values]
        if missing:
            raise NasflowError(f"model input(s) {', '.join(missing)} not given")
        for name in self.graph.inputs:
            x = values[name]
            want = self.graph.nodes[name].c_out
            # Dim 1 is the channel / feature dimension whatever the task's layout (N x C x H x W
            # images, N x F vectors); the task checks the rest.
            if x.dim() < 2 or x.shape[1] != want:
                raise NasflowError(f"input '{name}' must be N x {want} x ... ({want} channels or features "
                                   f"along dim 1), got {tuple(x.shape)}")


def check_weights_fit(graph: Graph) -> None:
    """Refuse, before one tensor is allocated, a graph whose float32 weights alone exceed the
    memory available (nasflow.limits.check_memory): `--set channels=100000` asked DLSR's
    supernet for 64 TB and was killed after taking 20 GB."""
    from nasflow.space.cost import graph_cost

    try:
        params = graph_cost(graph, (64, 64)).params
    except Exception:  # noqa: BLE001 - a guard, not the cost's check: costs report their own errors
        return
    what = "supernet" if graph.decisions else "model"
    widths = ", ".join(f"{k}={v}" for k, v in graph.space.params.items() if isinstance(v, int))
    check_memory(params * 4, f"the {what} of space '{graph.space.name}' ({params:,} weights in float32)",
                 f"lower its widths ({widths or 'its params'}: --set NAME=VALUE)")


def compile_graph(graph: Graph, fuse: bool | None = None, mixed_op: str | None = None,
                  auxiliary: bool = False, kernel_transform: bool = False) -> Supernet:
    """The supernet of `graph` (see Supernet for `fuse`, `mixed_op` (default "plain"),
    `auxiliary` and `kernel_transform`)."""
    return Supernet(graph, fuse=fuse, mixed_op=mixed_op, auxiliary=auxiliary, kernel_transform=kernel_transform)
