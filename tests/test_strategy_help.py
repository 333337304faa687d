"""cli/strategy_help.py: the torch-free table `nasflow search --help` shows is the one the
strategies' Options models give, and plug-ins are named."""
from __future__ import annotations

import sys

import pytest

from nasflow.cli import strategy_help
from nasflow.strategies import STRATEGIES
from nasflow.strategies.catalog import strategy_catalog

BUILTIN_MODULES = "nasflow.strategies."


def test_the_static_table_is_the_builtin_strategies_options() -> None:
    """Fails when a built-in strategy or an option's default changes: paste the table printed."""
    builtin = {info.name: ", ".join(f"{n}={d}" for n, _, d, _ in info.options) or "no options"
               for info in strategy_catalog()
               if STRATEGIES.get(info.name).__module__.startswith(BUILTIN_MODULES)}
    table = "".join(f"    {name!r}: {text!r},\n" for name, text in sorted(builtin.items()))
    assert strategy_help.BUILTIN == builtin, f"update BUILTIN in cli/strategy_help.py:\n{table}"


def test_a_strategy_registered_in_the_process_is_named_with_its_options() -> None:
    from pydantic import BaseModel

    from nasflow.strategies import Darts, register_strategy

    class _Opts(BaseModel):
        depth: int = 3

    @register_strategy("test_help_plugin")
    class _Plugin(Darts):
        Options = _Opts

    try:
        assert "test_help_plugin" in strategy_help.strategy_names()
        assert "test_help_plugin: depth=3" in strategy_help.options_help()
    finally:
        STRATEGIES.remove("test_help_plugin")


def test_an_entry_point_strategy_is_named_without_being_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    class _EntryPoint:
        name = "test_ep_strategy"

        def load(self) -> None:
            raise AssertionError("help must not load a plug-in")

    monkeypatch.setattr(strategy_help, "entry_points", lambda group: [_EntryPoint()])
    monkeypatch.delitem(sys.modules, "nasflow.strategies.catalog")  # as in a process without torch
    assert "test_ep_strategy" in strategy_help.strategy_names()
    assert strategy_help.options_help().endswith("; test_ep_strategy")
    assert "milenas: lambda=1.0" in strategy_help.options_help()
