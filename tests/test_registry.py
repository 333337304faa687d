"""One registration style: every registry's public decorator is Registry.decorator's, so ops,
strategies, mixed-op implementations, regularizers and tasks register alike, and no module
adds to a registry by hand."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from synthetic import PlantedTask, planted_space
from torch import nn

from nasflow.compile.mixed_ops import MIXED_OPS, get_mixed_op, register_mixed_op
from nasflow.errors import NasflowError
from nasflow.registry import Registry, UnknownNameError
from nasflow.search.regularizers import REGULARIZERS, get_regularizer, register_regularizer
from nasflow.space.graph import build_graph
from nasflow.strategies import STRATEGIES, Darts, get_strategy, register_strategy
from nasflow.tasks import TASKS, register_task
from nasflow.tasks.contract import make_task

REPO = Path(__file__).resolve().parent.parent


def test_the_decorator_registers_and_returns_the_item():
    things: Registry[object] = Registry("thing")
    register_thing = things.decorator()

    @register_thing("a")
    def a() -> int:
        return 1

    assert a() == 1 and things.get("a") is a  # registered, unchanged
    with pytest.raises(NasflowError, match="thing 'a' is already registered; pick another name"):
        register_thing("a")(lambda: 2)
    with pytest.raises(UnknownNameError, match=r"unknown thing 'b'.*\(known: a\)"):
        things.get("b")
    seen: list[tuple[str, object]] = []
    register_seen = things.decorator(lambda name, item: seen.append((name, item)))
    item = register_seen("c")(object())
    assert seen == [("c", item)] and things.get("c") is item


def test_each_registry_has_its_decorator():
    @register_strategy("test-registry-darts")
    class Mine(Darts):
        pass

    assert STRATEGIES.get("test-registry-darts") is Mine and get_strategy("test-registry-darts") is Mine
    assert Mine.name == "test-registry-darts"  # a strategy learns its name

    @register_regularizer("test-registry-zero")
    def zero(graph):
        return lambda model: (0.0, {})

    assert get_regularizer("test-registry-zero") is zero and "test-registry-zero" in REGULARIZERS
    assert get_regularizer("params")(build_graph(planted_space())).metric == "params"  # the built-ins too

    @register_mixed_op("test-registry-mixed")
    class Mixed(nn.Module):
        pass

    assert get_mixed_op("test-registry-mixed") is Mixed and "test-registry-mixed" in MIXED_OPS

    class Planted(PlantedTask):
        pass

    assert register_task("test-registry-task")(Planted) is Planted and TASKS.get("test-registry-task") is Planted
    assert isinstance(make_task("test-registry-task", {}, planted_space()), Planted)


def test_no_module_adds_to_a_registry_by_hand():
    """`REGISTRY.add(...)` only inside nasflow/registry.py and register_op (whose decorator
    also builds the op's spec)."""
    by_hand = re.compile(r"\b[A-Z][A-Z_]+\.add\(")
    allowed = {"nasflow/registry.py", "nasflow/ops/registry.py"}
    found = [f"{path.relative_to(REPO)}:{i}" for folder in ("nasflow", "strategies", "spaces", "cli")
             for path in (REPO / folder).rglob("*.py") if str(path.relative_to(REPO)) not in allowed
             for i, line in enumerate(path.read_text().splitlines(), 1) if by_hand.search(line)]
    assert not found, f"register with the registry's decorator (@register_...) instead: {found}"


def test_register_op_is_importable_where_the_docs_say():
    from nasflow.ops import register_op
    from nasflow.ops.registry import register_op as same

    assert register_op is same
