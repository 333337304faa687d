"""nasflow: a declarative, differentiable neural architecture search engine.

The public API, one name per step of the pipeline (docs/architecture.md maps them):

    space = load_space("spaces/dlsr/space.yaml")          # or Space(...) built in Python
    graph = build_graph(space)                             # expanded, validated, channels inferred
    supernet = compile_graph(graph)                        # weights + arch parameters (alpha, beta)
    result = run_search(SearchConfig(...), "runs/a")       # a strategy + a task + regularizers
    derived = derive_run("runs/a")                         # a Space with no choices
    model = compile_graph(build_graph(derived.space))      # the same compiler builds the model

Names resolve on first use, so `import nasflow` (and `nasflow --help`) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_API: dict[str, str] = {
    # the space language
    "Space": "nasflow.space.schema", "Block": "nasflow.space.schema", "op": "nasflow.space.schema",
    "choice": "nasflow.space.schema", "dense": "nasflow.space.schema", "combine": "nasflow.space.schema",
    "block": "nasflow.space.schema", "stack": "nasflow.space.schema",
    "load_space": "nasflow.space.load", "load_graph": "nasflow.space.load",
    "build_graph": "nasflow.space.graph", "Graph": "nasflow.space.graph",
    "graph_cost": "nasflow.space.cost",
    "NodeKind": "nasflow.space.kinds", "register_node_kind": "nasflow.space.kinds",
    # ops and the compiler
    "OPS": "nasflow.ops", "register_op": "nasflow.ops",
    "compile_graph": "nasflow.compile.supernet", "Supernet": "nasflow.compile.supernet",
    "register_mixed_op": "nasflow.compile.mixed_ops",
    "CompiledKind": "nasflow.compile.kinds", "register_compiled_kind": "nasflow.compile.kinds",
    # tasks
    "Task": "nasflow.tasks.contract", "Metric": "nasflow.tasks.contract", "register_task": "nasflow.tasks.contract",
    "make_task": "nasflow.tasks.contract",
    # derivation
    "Genotype": "nasflow.derive.genotype", "genotype_from_arch": "nasflow.derive.genotype",
    "derive_space": "nasflow.derive.genotype",
    "DerivedKind": "nasflow.derive.kinds", "register_derived_kind": "nasflow.derive.kinds",
    # search
    "SearchConfig": "nasflow.search.config", "run_search": "nasflow.search.loop",
    "derive_run": "nasflow.search.derive_run", "register_regularizer": "nasflow.search.regularizers",
    "Strategy": "nasflow.strategies", "register_strategy": "nasflow.strategies",
    # training and models
    "TrainConfig": "nasflow.train.config", "run_train": "nasflow.train.loop",
    "save_model": "nasflow.runs.modeldir", "load_model": "nasflow.runs.modeldir",
    "Predictor": "nasflow.deploy.predictor",
    # errors
    "NasflowError": "nasflow.errors", "SpaceError": "nasflow.errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # one source: the installed package's metadata (pyproject.toml)
        from importlib.metadata import version

        return version("nasflow")
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'nasflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return __all__
